//! How late packets arrive, after WebRTC NetEq's delay manager: each packet's arrival
//! delay is measured relative to the fastest packet of the last two seconds (the one that
//! arrived earliest for its timestamp), the largest of each half second goes into a
//! histogram that forgets slowly (about 30 s), and the delay to plan for is its 95th
//! percentile. A sender that bursts on a steady rhythm gives a steady histogram, so the
//! target does not move; one late packet moves it by almost nothing.
//!
//! The fastest packet also anchors the clock: `expected` is when a packet of a timestamp
//! would arrive with no delay, so a receiver knows how much slack its playout has.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the fastest packet is looked for.
const WINDOW: Duration = Duration::from_secs(2);
/// Bound on the window's entries (a flood cannot grow it).
const WINDOW_CAP: usize = 512;
/// The largest delay of each interval goes into the histogram.
const INTERVAL: Duration = Duration::from_millis(500);
/// Histogram buckets of 1 ms; the last one takes everything longer.
const BUCKETS: usize = 512;
/// Weight kept per interval: 0.983^60 = 0.36, so half a minute of memory.
const FORGET: f64 = 0.983;
const QUANTILE: f64 = 0.95;

pub(super) struct DelayManager {
    rate: u32,
    epoch: Option<Instant>,
    /// The last packet's timestamp and its value extended past 32 bits.
    last_ts: Option<(u32, i64)>,
    /// (arrival, offset in us) with offsets increasing: the front is the fastest packet.
    window: VecDeque<(Instant, i64)>,
    interval: Option<(Instant, u32)>,
    histogram: Vec<f64>,
    intervals: u32,
    /// The histogram's quantile, found when it changes (twice a second), not per read (every
    /// tick of every call).
    quantile: Duration,
}

impl DelayManager {
    pub fn new(rate: u32) -> Self {
        DelayManager {
            rate,
            epoch: None,
            last_ts: None,
            window: VecDeque::new(),
            interval: None,
            histogram: vec![0.0; BUCKETS],
            intervals: 0,
            quantile: Duration::ZERO,
        }
    }

    /// A new stream (timestamps unrelated to the old ones): the clock is re-anchored; what
    /// was learnt about the network stays.
    pub fn restart(&mut self) {
        self.last_ts = None;
        self.window.clear();
    }

    fn extend(&self, ts: u32) -> i64 {
        self.last_ts.map_or(ts as i64, |(last, ext)| {
            ext + ts.wrapping_sub(last) as i32 as i64
        })
    }

    fn ts_us(&self, ext: i64) -> i64 {
        ext * 1_000_000 / self.rate as i64
    }

    /// Records a packet's arrival; returns its delay relative to the fastest packet.
    pub fn arrival(&mut self, now: Instant, ts: u32) -> Duration {
        let epoch = *self.epoch.get_or_insert(now);
        let ext = self.extend(ts);
        if self.last_ts.is_none_or(|(_, last)| ext > last) {
            self.last_ts = Some((ts, ext));
        }
        let offset = now.duration_since(epoch).as_micros() as i64 - self.ts_us(ext);
        while self.window.back().is_some_and(|&(_, o)| o >= offset) {
            self.window.pop_back();
        }
        self.window.push_back((now, offset));
        while self.window.len() > WINDOW_CAP
            || self.window.front().is_some_and(|&(t, _)| now - t > WINDOW)
        {
            self.window.pop_front();
        }
        let base = self.window.front().map_or(offset, |&(_, o)| o);
        let rel = Duration::from_micros((offset - base) as u64);
        self.note(now, rel);
        rel
    }

    /// Keeps the interval's largest delay; a finished interval goes into the histogram.
    fn note(&mut self, now: Instant, rel: Duration) {
        let ms = rel.as_millis().min(BUCKETS as u128 - 1) as u32;
        match &mut self.interval {
            Some((start, max)) if now - *start < INTERVAL => *max = (*max).max(ms),
            Some((_, max)) => {
                let done = *max;
                self.interval = Some((now, ms));
                self.add(done);
            }
            None => self.interval = Some((now, ms)),
        }
    }

    fn add(&mut self, ms: u32) {
        // The first intervals weigh more, so a new call learns its network in seconds.
        let f = FORGET.min(1.0 - 2.0 / (self.intervals as f64 + 2.0));
        self.intervals += 1;
        self.histogram.iter_mut().for_each(|p| *p *= f);
        self.histogram[ms as usize] += 1.0 - f;
        let total: f64 = self.histogram.iter().sum();
        let mut acc = 0.0;
        let bucket = self
            .histogram
            .iter()
            .position(|p| {
                acc += p;
                acc >= QUANTILE * total
            })
            .unwrap_or(BUCKETS - 1);
        self.quantile = Duration::from_millis(bucket as u64 + 1);
    }

    /// The delay that 95 % of intervals stayed within (until the first interval ends, the
    /// largest so far); `None` before any packet.
    pub fn quantile(&self) -> Option<Duration> {
        if self.intervals == 0 {
            return self
                .interval
                .map(|(_, max)| Duration::from_millis(max as u64 + 1));
        }
        Some(self.quantile)
    }

    /// When a packet of timestamp `ts` would arrive with no more delay than the fastest.
    pub fn expected(&self, ts: u32) -> Option<Instant> {
        let epoch = self.epoch?;
        let base = self.window.front()?.1;
        let us = base + self.ts_us(self.extend(ts));
        Some(if us >= 0 {
            epoch + Duration::from_micros(us as u64)
        } else {
            epoch - Duration::from_micros(us.unsigned_abs())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_on_a_rhythm_give_a_steady_target() {
        let mut d = DelayManager::new(8000);
        let t0 = Instant::now();
        // Three packets every 60 ms: the first of each burst is 40 ms late.
        for k in 0..1500u32 {
            let at = t0 + Duration::from_millis((k / 3 * 3 + 2) as u64 * 20);
            d.arrival(at, k * 160);
        }
        assert_eq!(d.quantile(), Some(Duration::from_millis(41)));
        // The last packet of a burst is the fastest: it is expected when it came.
        let last = 1499 / 3 * 3 + 2;
        let at = t0 + Duration::from_millis(last as u64 * 20);
        assert_eq!(d.expected(last * 160), Some(at));
    }

    #[test]
    fn one_late_packet_does_not_move_the_target_but_many_do() {
        let mut d = DelayManager::new(8000);
        let t0 = Instant::now();
        let mut run = |from: u32, to: u32, late_every: u32| {
            for k in from..to {
                let late = if k % late_every == 0 { 50 } else { 0 };
                d.arrival(t0 + Duration::from_millis(k as u64 * 20 + late), k * 160);
            }
            d.quantile().unwrap()
        };
        assert_eq!(run(0, 3000, u32::MAX), Duration::from_millis(1));
        assert_eq!(run(3000, 3001, 1), Duration::from_millis(1));
        assert_eq!(run(3001, 6000, 10), Duration::from_millis(51));
    }

    #[test]
    fn drift_is_not_delay() {
        for ppm in [-1000i64, 1000] {
            let mut d = DelayManager::new(8000);
            let t0 = Instant::now();
            for k in 0..3000i64 {
                let us = (k * 20_000 * (1_000_000 + ppm) / 1_000_000) as u64;
                d.arrival(t0 + Duration::from_micros(us), k as u32 * 160);
            }
            assert!(d.quantile().unwrap() <= Duration::from_millis(3), "{ppm}");
        }
    }
}
