//! Bounds on a leg's DTMF, sans-IO: digits it reports (a token bucket) and digits queued to
//! send (a short queue with a gap of audio after each digit), so a peer that floods
//! telephone-events neither floods the control plane nor silences the other members.

use std::collections::VecDeque;
use std::time::Instant;

use crate::media::dtmf::{self, DtmfPacket};

/// Length of a sent DTMF digit.
const DIGIT_MS: u32 = 100;
/// Audio sent between two digits (ITU-T Q.24 asks for a pause; it also means a queue of
/// digits never replaces more than one digit's worth of audio in a row).
const GAP_MS: u32 = 100;

/// Received digits allowed per second, in bursts of up to one second's worth.
pub struct DigitRate {
    per_sec: u32,
    tokens: f64,
    last: Option<Instant>,
}

impl DigitRate {
    pub fn new(per_sec: u32) -> Self {
        DigitRate {
            per_sec,
            tokens: f64::from(per_sec),
            last: None,
        }
    }

    /// Whether a digit received at `now` may be reported.
    pub fn allow(&mut self, now: Instant) -> bool {
        let rate = f64::from(self.per_sec);
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * rate;
            self.tokens = (self.tokens + refill).min(rate);
        }
        self.last = Some(now);
        let ok = self.tokens >= 1.0;
        if ok {
            self.tokens -= 1.0;
        }
        ok
    }
}

/// Digits waiting to go out as RFC 4733 events, the one playing included.
pub struct DtmfQueue {
    max: usize,
    waiting: VecDeque<char>,
    /// The packets left of the digit playing.
    playing: VecDeque<DtmfPacket>,
    /// Audio packets still due before the next digit may start.
    gap: u32,
}

impl DtmfQueue {
    pub fn new(max: usize) -> Self {
        DtmfQueue {
            max,
            waiting: VecDeque::new(),
            playing: VecDeque::new(),
            gap: 0,
        }
    }

    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Queues a DTMF digit; false (the digit is dropped) when the queue is full or it is
    /// not a DTMF digit.
    pub fn push(&mut self, digit: char) -> bool {
        let queued = self.waiting.len() + usize::from(!self.playing.is_empty());
        let ok = queued < self.max && dtmf::event_of(digit).is_some();
        if ok {
            self.waiting.push_back(digit);
        }
        ok
    }

    /// The event to send in place of the next audio packet, if one is due; each call
    /// stands for one packet of `ptime_ms` at the event clock `clock`.
    pub fn next(&mut self, clock: u32, ptime_ms: u32) -> Option<DtmfPacket> {
        if self.playing.is_empty() {
            if self.gap > 0 {
                self.gap -= 1;
                return None;
            }
            let digit = self.waiting.pop_front()?;
            self.playing
                .extend(dtmf::digit_packets(digit, clock, ptime_ms, DIGIT_MS)?);
        }
        let packet = self.playing.pop_front();
        if self.playing.is_empty() {
            self.gap = GAP_MS.div_ceil(ptime_ms.max(1));
        }
        packet
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn received_digits_are_rate_bounded() {
        let mut rate = DigitRate::new(10);
        let t = Instant::now();
        // A flood of 1000 digits in one second: the burst, then the refill.
        let allowed = (0..1000)
            .filter(|&i| rate.allow(t + Duration::from_millis(i)))
            .count();
        assert!((19..=21).contains(&allowed), "{allowed}");
        // A pause refills the bucket, but never beyond a second's worth.
        let later = t + Duration::from_secs(60);
        assert_eq!((0..100).filter(|_| rate.allow(later)).count(), 10);
    }

    #[test]
    fn a_person_keying_is_never_throttled() {
        let mut rate = DigitRate::new(10);
        let t = Instant::now();
        // 40 digits at 8 per second (faster than people key).
        assert!((0..40).all(|i| rate.allow(t + Duration::from_millis(125 * i))));
    }

    /// Digits (or '-' for audio) that the next `packets` sends carry, one per started digit.
    fn play(q: &mut DtmfQueue, packets: usize) -> String {
        (0..packets)
            .map(|_| match q.next(8000, 20) {
                Some(p) if p.marker => char::from(b"0123456789*#ABCD"[p.payload[0] as usize]),
                Some(_) => '=',
                None => '-',
            })
            .collect()
    }

    #[test]
    fn the_queue_is_bounded_and_leaves_audio_between_digits() {
        let mut q = DtmfQueue::new(2);
        assert!(q.push('1') && q.push('2'));
        assert!(!q.push('3'), "full");
        assert!(!DtmfQueue::new(4).push('x'), "not a digit");
        // Each digit: 7 event packets (100 ms and three end packets), then 100 ms of audio.
        assert_eq!(play(&mut q, 26), "1======-----2======-------");
        // The playing digit counts: one more fits while '3' plays, not two.
        assert!(q.push('3'));
        assert_eq!(play(&mut q, 1), "3");
        assert!(q.push('4') && !q.push('5'));
        assert_eq!(play(&mut q, 14), "======-----4==");
    }
}
