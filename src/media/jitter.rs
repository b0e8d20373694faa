//! Adaptive jitter buffer, sans-IO: packets are pushed with their arrival time and popped
//! once per frame by the caller's clock; nothing here reads a clock.
//!
//! Playout follows sequence numbers. The delay adapts from the RFC 3550 interarrival jitter:
//! the target is `packet time + 3 x jitter` (about three standard deviations) within
//! `[min_delay, max_delay]`. The delay grows fast: whenever the buffer holds less than the
//! target, or runs dry, a pop conceals without advancing (`Stretch`), adding one frame of
//! delay at once. It shrinks slowly: one frame is dropped per second while the buffer holds
//! more than target + one packet. Clock drift between sender and receiver is absorbed the
//! same way, since only the buffer level is controlled.

use std::time::{Duration, Instant};

/// Slots in the ring: 64 frames is over a second at 20 ms, far above any sane delay.
const CAPACITY: u64 = 64;
/// A timestamp jump larger than this (against what the sequence numbers imply) restarts
/// the stream, e.g. after a sender restart that kept its SSRC.
const MAX_TS_JUMP: Duration = Duration::from_secs(2);
/// How long the buffer must stay above target before one frame is dropped.
const SHRINK_INTERVAL: Duration = Duration::from_secs(1);

/// Delay bounds and the stream's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the payload.
    pub clock_rate: u32,
    /// Expected packet duration (negotiated ptime); the real one is learned from timestamps.
    pub ptime: Duration,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl JitterConfig {
    /// Defaults: 20..200 ms of delay.
    pub fn new(clock_rate: u32, ptime_ms: u32) -> Self {
        JitterConfig {
            clock_rate,
            ptime: Duration::from_millis(ptime_ms as u64),
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        }
    }
}

/// What `push` needs of an RTP packet.
#[derive(Debug, Clone, Copy)]
pub struct PacketInfo<'a> {
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    pub payload: &'a [u8],
}

/// The result of one `pop`.
#[derive(Debug, PartialEq, Eq)]
pub enum Playout<'a> {
    /// The next frame's payload.
    Frame {
        payload: &'a [u8],
        timestamp: u32,
        marker: bool,
    },
    /// A frame is due but missing: conceal one packet's worth (the packet after it, if
    /// already here, is `peek_next`: Opus can rebuild the lost frame from it).
    Lost,
    /// Nothing is missing, but the delay must grow: conceal one packet's worth.
    Stretch,
    /// Nothing to play yet (buffering, or the sender is silent).
    Empty,
}

/// Counters for metrics and RTCP.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    pub received: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicates: u64,
    /// Frames dropped to shrink the delay (or on overflow).
    pub dropped: u64,
    /// Concealed frames inserted on underrun.
    pub stretched: u64,
    pub resets: u64,
    /// RFC 3550 interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Audio buffered at the last pop.
    pub delay: Duration,
    pub target: Duration,
}

#[derive(Default)]
struct Slot {
    seq: u64,
    ts: u32,
    marker: bool,
    filled: bool,
    payload: Vec<u8>,
}

/// Reorders, deduplicates and paces one RTP stream.
pub struct JitterBuffer {
    cfg: JitterConfig,
    slots: Vec<Slot>,
    ssrc: Option<u32>,
    /// Highest extended sequence number and its timestamp.
    highest: Option<(u64, u32)>,
    /// Next sequence number (and its expected timestamp) to play.
    next: Option<(u64, u32)>,
    playing: bool,
    first_arrival: Option<Instant>,
    last_arrival: Option<Instant>,
    epoch: Option<Instant>,
    last_transit: Option<u32>,
    jitter: f64,
    packet_ticks: u32,
    target: Duration,
    /// Since when the buffer has held more than target + one packet.
    above_since: Option<Instant>,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> Self {
        JitterBuffer {
            slots: (0..CAPACITY).map(|_| Slot::default()).collect(),
            ssrc: None,
            highest: None,
            next: None,
            playing: false,
            first_arrival: None,
            last_arrival: None,
            epoch: None,
            last_transit: None,
            jitter: 0.0,
            packet_ticks: ticks(cfg.ptime, cfg.clock_rate),
            target: cfg.min_delay.max(cfg.ptime).min(cfg.max_delay),
            above_since: None,
            stats: JitterStats::default(),
            cfg,
        }
    }

    pub fn stats(&self) -> JitterStats {
        JitterStats {
            jitter: self.jitter as u32,
            target: self.target,
            ..self.stats
        }
    }

    /// The packet that will play next, if it is here (for FEC recovery after `Lost`).
    pub fn peek_next(&self) -> Option<&[u8]> {
        let (seq, _) = self.next?;
        let slot = &self.slots[(seq % CAPACITY) as usize];
        (slot.filled && slot.seq == seq).then_some(&slot.payload[..])
    }

    /// Duration of one packet as learned from timestamps.
    pub fn packet_ticks(&self) -> u32 {
        self.packet_ticks
    }

    /// Forgets the stream (new SSRC or discontinuity); counters and the delay target stay.
    fn reset(&mut self) {
        for s in &mut self.slots {
            s.filled = false;
        }
        self.highest = None;
        self.next = None;
        self.playing = false;
        self.first_arrival = None;
        self.last_transit = None;
        self.stats.resets += 1;
    }

    /// Adds one received packet.
    pub fn push(&mut self, now: Instant, p: PacketInfo<'_>) {
        self.push_inner(now, p, true);
    }

    /// Accounts for a packet of the stream that carries no audio (an RFC 4733 event sharing
    /// the sequence numbers): it plays as an empty frame instead of counting as lost. Its
    /// timestamp is extrapolated, and its timing is not taken as jitter (end packets come
    /// in bursts).
    pub fn push_filler(&mut self, now: Instant, seq: u16, ssrc: u32) {
        let Some((h, hts)) = self.highest.filter(|_| self.ssrc == Some(ssrc)) else {
            return;
        };
        let ext = self.extend_seq(seq);
        let ticks = (ext as i64 - h as i64) * self.packet_ticks as i64;
        let timestamp = hts.wrapping_add(ticks as u32);
        self.push_inner(
            now,
            PacketInfo {
                seq,
                timestamp,
                ssrc,
                marker: false,
                payload: &[],
            },
            false,
        );
    }

    fn push_inner(&mut self, now: Instant, p: PacketInfo<'_>, measure: bool) {
        self.stats.received += 1;
        if self.ssrc != Some(p.ssrc) {
            if self.ssrc.is_some() {
                self.reset();
            }
            self.ssrc = Some(p.ssrc);
        }
        let mut seq = self.extend_seq(p.seq);
        if self.is_discontinuity(seq, p.timestamp) {
            self.reset();
            seq = self.extend_seq(p.seq);
        }
        // A marker starts a talkspurt after silence suppression: its gap is not jitter.
        if p.marker {
            self.last_transit = None;
        }
        if measure {
            self.update_jitter(now, p.timestamp);
        }
        self.last_arrival = Some(now);
        if self.first_arrival.is_none() {
            self.first_arrival = Some(now);
        }
        match self.next {
            Some((n, _)) if seq < n && self.playing => {
                self.stats.late += 1;
                return;
            }
            Some((n, _)) if seq < n && n - seq < CAPACITY => self.next = Some((seq, p.timestamp)),
            None => self.next = Some((seq, p.timestamp)),
            _ => {}
        }
        self.store(seq, p);
    }

    fn store(&mut self, seq: u64, p: PacketInfo<'_>) {
        let slot = &mut self.slots[(seq % CAPACITY) as usize];
        if slot.filled && slot.seq == seq {
            self.stats.duplicates += 1;
            return;
        }
        if slot.filled {
            self.stats.dropped += 1;
        }
        slot.seq = seq;
        slot.ts = p.timestamp;
        slot.marker = p.marker;
        slot.filled = true;
        slot.payload.clear();
        slot.payload.extend_from_slice(p.payload);
        self.learn_packet_ticks(seq, p.timestamp);
        match self.highest {
            Some((h, _)) if h >= seq => {}
            _ => self.highest = Some((seq, p.timestamp)),
        }
        // Too far ahead of playout: skip the oldest frames so the ring never aliases.
        if let Some((n, _)) = self.next
            && seq >= n + CAPACITY
        {
            let skip_to = seq + 1 - CAPACITY / 2;
            self.stats.dropped += skip_to - n;
            self.next = Some((skip_to, p.timestamp));
            self.advance_to_filled_or(skip_to);
        }
    }

    /// After an overflow skip, aims playout at the first buffered frame from `seq` on.
    fn advance_to_filled_or(&mut self, seq: u64) {
        for s in seq..seq + CAPACITY {
            let slot = &self.slots[(s % CAPACITY) as usize];
            if slot.filled && slot.seq == s {
                self.next = Some((s, slot.ts));
                return;
            }
        }
    }

    /// Sequence number extended past 16 bits relative to the highest seen.
    fn extend_seq(&self, seq: u16) -> u64 {
        match self.highest {
            Some((h, _)) => {
                let delta = seq.wrapping_sub(h as u16) as i16 as i64;
                (h as i64 + delta).max(0) as u64
            }
            // Start high so that reordered packets before the first one stay positive.
            None => (1 << 32) + seq as u64,
        }
    }

    fn is_discontinuity(&self, seq: u64, ts: u32) -> bool {
        let Some((h, hts)) = self.highest else {
            return false;
        };
        let seq_delta = seq as i64 - h as i64;
        let expected = seq_delta * self.packet_ticks as i64;
        let actual = ts.wrapping_sub(hts) as i32 as i64;
        let max_jump = ticks(MAX_TS_JUMP, self.cfg.clock_rate) as i64;
        seq_delta.unsigned_abs() > 2 * CAPACITY || (actual - expected).abs() > max_jump
    }

    fn learn_packet_ticks(&mut self, seq: u64, ts: u32) {
        let prev = &self.slots[((seq + CAPACITY - 1) % CAPACITY) as usize];
        if prev.filled && prev.seq + 1 == seq {
            let d = ts.wrapping_sub(prev.ts);
            // Accept 2.5..120 ms: anything else is a timestamp glitch, not a frame size.
            if d >= self.cfg.clock_rate / 400 && d <= self.cfg.clock_rate * 3 / 25 {
                self.packet_ticks = d;
            }
        }
    }

    /// RFC 3550 A.8 interarrival jitter, and the delay target derived from it.
    fn update_jitter(&mut self, now: Instant, ts: u32) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = now.duration_since(epoch).as_secs_f64() * self.cfg.clock_rate as f64;
        let transit = (arrival as u64 as u32).wrapping_sub(ts);
        if let Some(last) = self.last_transit {
            let d = (transit.wrapping_sub(last) as i32).unsigned_abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
        let jitter = Duration::from_secs_f64(self.jitter / self.cfg.clock_rate as f64);
        let wanted =
            (self.packet_duration() + jitter * 3).clamp(self.cfg.min_delay, self.cfg.max_delay);
        if wanted > self.target {
            self.target = wanted;
        } else {
            // Shrink slowly: 1/64 of the gap per packet.
            self.target -= (self.target - wanted) / 64;
        }
    }

    fn packet_duration(&self) -> Duration {
        Duration::from_secs_f64(self.packet_ticks as f64 / self.cfg.clock_rate as f64)
    }

    /// Audio buffered from the next frame to the newest packet.
    fn buffered(&self) -> Duration {
        match (self.next, self.highest) {
            (Some((n, nts)), Some((h, hts))) if h >= n => {
                let t = hts.wrapping_sub(nts) as u64 + self.packet_ticks as u64;
                Duration::from_secs_f64(t as f64 / self.cfg.clock_rate as f64)
            }
            _ => Duration::ZERO,
        }
    }

    /// Takes the frame due now; call once per packet time.
    pub fn pop(&mut self, now: Instant) -> Playout<'_> {
        let Some((mut seq, _)) = self.next else {
            return Playout::Empty;
        };
        let buffered = self.buffered();
        self.stats.delay = buffered;
        if !self.playing {
            let waited = self
                .first_arrival
                .map_or(Duration::ZERO, |t| now.duration_since(t));
            if buffered < self.target && waited < self.target {
                return Playout::Empty;
            }
            self.playing = true;
        }
        let highest = self.highest.map_or(0, |h| h.0);
        if seq > highest {
            return self.underrun(now);
        }
        if buffered + self.packet_duration() < self.target {
            self.stats.stretched += 1;
            return Playout::Stretch;
        }
        if self.should_shrink(now, buffered) && seq < highest {
            self.take(seq);
            self.stats.dropped += 1;
            seq += 1;
        }
        let idx = (seq % CAPACITY) as usize;
        if self.slots[idx].filled && self.slots[idx].seq == seq {
            let ts = self.slots[idx].ts;
            self.next = Some((seq + 1, ts.wrapping_add(self.packet_ticks)));
            let slot = &mut self.slots[idx];
            slot.filled = false;
            return Playout::Frame {
                payload: &slot.payload,
                timestamp: ts,
                marker: slot.marker,
            };
        }
        let nts = self.next.map_or(0, |n| n.1);
        self.next = Some((seq + 1, nts.wrapping_add(self.packet_ticks)));
        self.stats.lost += 1;
        Playout::Lost
    }

    fn take(&mut self, seq: u64) {
        let slot = &mut self.slots[(seq % CAPACITY) as usize];
        if slot.seq == seq {
            slot.filled = false;
        }
    }

    fn should_shrink(&mut self, now: Instant, buffered: Duration) -> bool {
        if buffered <= self.target + self.packet_duration() {
            self.above_since = None;
            return false;
        }
        let since = *self.above_since.get_or_insert(now);
        if now.duration_since(since) < SHRINK_INTERVAL {
            return false;
        }
        self.above_since = Some(now);
        true
    }

    /// Nothing buffered: conceal and wait (adding delay) while the sender seems alive;
    /// once it has been silent longer than the maximum delay, go back to buffering.
    fn underrun(&mut self, now: Instant) -> Playout<'static> {
        let silent = self
            .last_arrival
            .map_or(Duration::MAX, |t| now.duration_since(t));
        if silent > self.cfg.max_delay {
            self.playing = false;
            self.first_arrival = None;
            self.next = None;
            self.highest = None;
            // The silence is not network jitter.
            self.last_transit = None;
            return Playout::Empty;
        }
        self.stats.stretched += 1;
        self.target = (self.target + self.packet_duration()).min(self.cfg.max_delay);
        Playout::Stretch
    }
}

fn ticks(d: Duration, clock_rate: u32) -> u32 {
    (d.as_secs_f64() * clock_rate as f64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS20: Duration = Duration::from_millis(20);

    fn pkt(seq: u16, ssrc: u32, payload: &[u8]) -> PacketInfo<'_> {
        PacketInfo {
            seq,
            timestamp: (seq as u32).wrapping_mul(160),
            ssrc,
            marker: false,
            payload,
        }
    }

    fn jb() -> JitterBuffer {
        JitterBuffer::new(JitterConfig::new(8000, 20))
    }

    /// What one pop yields, as an owned summary.
    fn pop(jb: &mut JitterBuffer, now: Instant) -> Option<Option<u8>> {
        match jb.pop(now) {
            Playout::Frame { payload, .. } => Some(Some(payload[0])),
            Playout::Lost | Playout::Stretch => Some(None),
            Playout::Empty => None,
        }
    }

    #[test]
    fn steady_stream_plays_in_order_after_buffering() {
        let (mut b, t0) = (jb(), Instant::now());
        let mut played = Vec::new();
        for i in 0..50u16 {
            let now = t0 + MS20 * i as u32;
            b.push(now, pkt(i, 1, &[i as u8]));
            if let Some(f) = pop(&mut b, now + Duration::from_millis(1)) {
                played.push(f);
            }
        }
        assert!(played.len() >= 48);
        assert!(played.iter().enumerate().all(|(i, f)| *f == Some(i as u8)));
        let s = b.stats();
        assert_eq!((s.lost, s.late, s.duplicates, s.received), (0, 0, 0, 50));
        assert_eq!(s.target, Duration::from_millis(20));
    }

    #[test]
    fn reorder_duplicates_loss_and_late() {
        let (mut b, t0) = (jb(), Instant::now());
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut got = Vec::new();
        b.push(ms(0), pkt(10, 1, &[10]));
        got.push(pop(&mut b, ms(20)));
        for (seq, at) in [(12u16, 40), (11, 41), (11, 42)] {
            b.push(ms(at), pkt(seq, 1, &[seq as u8]));
        }
        got.push(pop(&mut b, ms(45)));
        got.push(pop(&mut b, ms(65)));
        b.push(ms(80), pkt(14, 1, &[14]));
        got.push(pop(&mut b, ms(85)));
        got.push(pop(&mut b, ms(105)));
        b.push(ms(106), pkt(13, 1, &[13]));
        let want = [Some(10), Some(11), Some(12), None, Some(14)];
        assert_eq!(got, want.map(Some));
        let s = b.stats();
        assert_eq!((s.duplicates, s.lost, s.late, s.stretched), (1, 1, 1, 0));
    }

    #[test]
    fn sequence_wrap_is_continuous() {
        let (mut b, t0) = (jb(), Instant::now());
        let seqs = [65534u16, 65535, 0, 1];
        for (i, &seq) in seqs.iter().enumerate() {
            let p = PacketInfo {
                seq,
                timestamp: 160 * i as u32,
                ssrc: 1,
                marker: false,
                payload: &[i as u8],
            };
            b.push(t0 + MS20 * i as u32, p);
        }
        let now = t0 + MS20 * 4;
        let got: Vec<_> = (0..4).map(|i| pop(&mut b, now + MS20 * i)).collect();
        assert_eq!(
            got,
            vec![Some(Some(0)), Some(Some(1)), Some(Some(2)), Some(Some(3))]
        );
        assert_eq!(b.stats().lost, 0);
    }

    #[test]
    fn ssrc_change_and_timestamp_jump_reset() {
        let (mut b, t0) = (jb(), Instant::now());
        b.push(t0, pkt(100, 1, &[1]));
        assert_eq!(pop(&mut b, t0 + MS20), Some(Some(1)));
        // A new source with unrelated numbering plays at once, no "late" or "lost".
        b.push(t0 + MS20, pkt(7, 2, &[2]));
        assert_eq!(pop(&mut b, t0 + MS20 * 3), Some(Some(2)));
        let jump = PacketInfo {
            seq: 8,
            timestamp: 7 * 160 + 8000 * 60,
            ssrc: 2,
            marker: true,
            payload: &[3],
        };
        b.push(t0 + MS20 * 3, jump);
        assert_eq!(pop(&mut b, t0 + MS20 * 5), Some(Some(3)));
        let s = b.stats();
        assert_eq!((s.resets, s.lost, s.late), (2, 0, 0));
    }

    #[test]
    fn silent_sender_underruns_then_rebuffers() {
        let (mut b, t0) = (jb(), Instant::now());
        b.push(t0, pkt(1, 1, &[1]));
        assert_eq!(pop(&mut b, t0 + MS20), Some(Some(1)));
        assert_eq!(pop(&mut b, t0 + MS20 * 2), Some(None));
        assert_eq!(b.stats().stretched, 1);
        assert_eq!(pop(&mut b, t0 + Duration::from_secs(1)), None);
        // The gap was not loss: the next packet (any sequence) starts cleanly.
        b.push(t0 + Duration::from_secs(1), pkt(2, 1, &[2]));
        assert_eq!(pop(&mut b, t0 + Duration::from_millis(1100)), Some(Some(2)));
        assert_eq!(b.stats().lost, 0);
    }

    #[test]
    fn delay_grows_fast_with_jitter_and_shrinks_slowly() {
        let (mut b, t0) = (jb(), Instant::now());
        let mut seq = 0u16;
        let mut run = |b: &mut JitterBuffer, from: u32, frames: u32, jittery: bool| {
            for i in from..from + frames {
                // Jittery: packets arrive in bursts of three every 60 ms.
                let arrival = if jittery {
                    (i / 3 * 3 + 2) * 20
                } else {
                    i * 20
                };
                b.push(
                    t0 + Duration::from_millis(arrival as u64),
                    pkt(seq, 1, &[0]),
                );
                seq = seq.wrapping_add(1);
                let _ = b.pop(t0 + Duration::from_millis(i as u64 * 20 + 10));
            }
        };
        run(&mut b, 0, 150, true);
        let grown = b.stats().target;
        assert!(grown >= Duration::from_millis(60), "target {grown:?}");
        let s = b.stats();
        assert!(s.jitter > 100);
        // The delay actually followed the target: bursts no longer starve the buffer.
        assert!(s.stretched > 0 && s.lost == 0);
        assert!(s.delay >= Duration::from_millis(40), "delay {:?}", s.delay);
        run(&mut b, 150, 50, false);
        let a_second_later = b.stats().target;
        assert!(
            a_second_later > Duration::from_millis(30),
            "shrank too fast: {a_second_later:?}"
        );
        run(&mut b, 200, 1500, false);
        let settled = b.stats();
        assert!(
            settled.target < Duration::from_millis(30),
            "target {:?}",
            settled.target
        );
        assert!(
            settled.delay <= Duration::from_millis(60),
            "delay {:?}",
            settled.delay
        );
        assert!(settled.dropped > 0);
    }

    /// A lossy, jittery network: 2% loss, delays uniform in 0..60 ms (so reordering), for
    /// 60 s. Playout must lose little beyond the network's loss and keep the delay bounded.
    #[test]
    fn survives_a_bad_network() {
        let (mut b, t0) = (jb(), Instant::now());
        let mut rng = 0x853C_49E6_748F_EA9Bu64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let frames = 3000u32;
        let mut arrivals = Vec::new();
        for i in 0..frames {
            if next() % 50 != 0 {
                arrivals.push((i as u64 * 20_000 + next() % 60_000, i as u16));
            }
        }
        let sent = arrivals.len() as u64;
        arrivals.sort();
        let (mut played, mut concealed, mut next_arrival) = (0u64, 0u64, 0);
        let mut max_delay = Duration::ZERO;
        for tick in 0..frames + 20 {
            let now_us = tick as u64 * 20_000 + 10_000;
            while next_arrival < arrivals.len() && arrivals[next_arrival].0 <= now_us {
                let (at, seq) = arrivals[next_arrival];
                b.push(t0 + Duration::from_micros(at), pkt(seq, 1, &[1]));
                next_arrival += 1;
            }
            match b.pop(t0 + Duration::from_micros(now_us)) {
                Playout::Frame { .. } => played += 1,
                Playout::Lost | Playout::Stretch => concealed += 1,
                Playout::Empty => {}
            }
            max_delay = max_delay.max(b.stats().delay);
        }
        let s = b.stats();
        let late_share = s.late as f64 / sent as f64;
        assert!(late_share < 0.01, "late {late_share} {s:?}");
        assert!(
            played as f64 > 0.97 * sent as f64,
            "played {played} of {sent}, {s:?}"
        );
        assert!(
            concealed < frames as u64 / 20,
            "concealed {concealed}, {s:?}"
        );
        assert!(
            s.target >= Duration::from_millis(40) && s.target <= Duration::from_millis(200),
            "{s:?}"
        );
        assert!(
            max_delay <= Duration::from_millis(200),
            "max delay {max_delay:?}"
        );
    }
}
