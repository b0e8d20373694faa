//! Per-member PCM ingress: a lock-free SPSC ring from the member's network
//! thread to the mixer, read one frame per tick with a pre-roll delay.
//!
//! Pre-roll: each talker's audio reaches the mix [`PREROLL_MS`] late. The
//! delayed samples stay in the ring (nothing is copied for members who are
//! gated out), so when a frame opens the gate, the emitted frame starts with
//! the last `PREROLL_MS` of the previous frame: the soft attack of the first
//! syllable that did not yet cross the energy level. Cost: `PREROLL_MS` of
//! added latency on the talker-to-listener path. The frame stays in the
//! ring until the tick ends, so talkers at the mix rate are mixed from it
//! in place (`Ingress::frame`).
//!
//! Clocking: a missing frame is silence (never a stall), late samples are
//! simply the next frame, and a backlog beyond [`MAX_QUEUED_FRAMES`] is
//! trimmed to one frame so latency cannot grow.
//!
//! Scoring: `push` also records each chunk's sum of |x| in a small side
//! ring while the samples are hot in the pushing thread's cache. When the
//! chunks tile the mixer's frame exactly (the usual case: one decoded
//! packet per frame) the gate reads those sums and never touches a gated
//! -out member's samples; otherwise it sums the samples itself.

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::mix::Runs;

/// Pre-roll delay (capped at one frame).
pub const PREROLL_MS: u32 = 10;
/// Queued frames beyond which the oldest input is dropped.
pub const MAX_QUEUED_FRAMES: usize = 4;
/// Pushed chunks whose scores are remembered.
const MARKS: usize = 64;

/// The sum of |x| over pushed samples `start..start + len`.
#[derive(Debug, Clone, Copy)]
struct Mark {
    start: u64,
    len: u32,
    sum: u32,
}

/// The producer side a member's receive path pushes decoded PCM into.
pub struct MemberInput {
    prod: HeapProd<i16>,
    marks: HeapProd<Mark>,
    pushed: u64,
}

impl MemberInput {
    /// Queues PCM at the member's rate; returns how many samples fit (the
    /// rest is dropped: the mixer is behind by more than the ring holds).
    pub fn push(&mut self, pcm: &[i16]) -> usize {
        let n = self.prod.push_slice(pcm);
        if n > 0 {
            let mark = Mark {
                start: self.pushed,
                len: n as u32,
                sum: sum_abs(&pcm[..n]) as u32,
            };
            // A full mark ring only means the mixer sums those samples itself.
            let _ = self.marks.try_push(mark);
            self.pushed += n as u64;
        }
        n
    }
}

/// The mixer side of a member's ring.
pub(crate) struct Ingress {
    cons: HeapCons<i16>,
    marks: HeapCons<Mark>,
    /// Samples consumed so far: the stream position of the ring's front.
    consumed: u64,
    frame: usize,
    preroll: usize,
    /// Delayed samples from the previous frame at the front of the ring.
    held: usize,
    /// Samples of the current frame present this tick.
    take: usize,
}

/// A connected producer/consumer pair for frames of `frame` samples.
pub(crate) fn channel(frame: usize, rate: u32) -> (MemberInput, Ingress) {
    let preroll = ((rate * PREROLL_MS / 1000) as usize).min(frame);
    let cap = frame * (MAX_QUEUED_FRAMES + 2) + preroll;
    let (prod, cons) = HeapRb::<i16>::new(cap.max(1)).split();
    let (mark_tx, marks) = HeapRb::<Mark>::new(MARKS).split();
    let ingress = Ingress {
        cons,
        marks,
        consumed: 0,
        frame,
        preroll,
        held: 0,
        take: 0,
    };
    let input = MemberInput {
        prod,
        marks: mark_tx,
        pushed: 0,
    };
    (input, ingress)
}

/// `len` samples from `start` of the ring's two slices, as two slices.
fn range<'a>(s: (&'a [i16], &'a [i16]), start: usize, len: usize) -> (&'a [i16], &'a [i16]) {
    let (a, b) = s;
    let end = start + len;
    let a_part = &a[start.min(a.len())..end.min(a.len())];
    let b_part = &b[start.saturating_sub(a.len())..end.saturating_sub(a.len())];
    (a_part, b_part)
}

/// Sum of |x|. A pushed chunk is at most one ring (35 040 samples at
/// 48 kHz/120 ms), so its sum fits the u32 of a [`Mark`].
fn sum_abs(s: &[i16]) -> u64 {
    s.chunks(1 << 16)
        .map(|c| c.iter().map(|x| x.unsigned_abs() as u32).sum::<u32>() as u64)
        .sum()
}

impl Ingress {
    /// Starts a tick: trims any backlog and returns the score (mean |x|,
    /// missing samples counting as silence) of the newest frame.
    pub fn begin(&mut self) -> u32 {
        let queued = self.cons.occupied_len().saturating_sub(self.held);
        if queued > self.frame * MAX_QUEUED_FRAMES {
            self.consume(self.held + queued - self.frame);
            self.held = 0;
        }
        self.take = self
            .cons
            .occupied_len()
            .saturating_sub(self.held)
            .min(self.frame);
        let start = self.consumed + self.held as u64;
        let sum = self.marked_sum(start, self.take).unwrap_or_else(|| {
            let (a, b) = range(self.cons.as_slices(), self.held, self.take);
            sum_abs(a) + sum_abs(b)
        });
        (sum / self.frame.max(1) as u64) as u32
    }

    /// The sum of |x| over stream samples `start..start + len` from the
    /// pushed chunks' marks, if they tile that range exactly.
    fn marked_sum(&mut self, start: u64, len: usize) -> Option<u64> {
        while self
            .marks
            .first()
            .is_some_and(|m| m.start + m.len as u64 <= start)
        {
            self.marks.try_pop();
        }
        let end = start + len as u64;
        let (mut pos, mut sum) = (start, 0u64);
        for m in self.marks.iter() {
            if pos == end {
                break;
            }
            if m.start != pos || m.start + m.len as u64 > end {
                return None;
            }
            pos += m.len as u64;
            sum += m.sum as u64;
        }
        (pos == end).then_some(sum)
    }

    fn consume(&mut self, n: usize) {
        self.consumed += self.cons.skip(n) as u64;
    }

    /// The delayed frame, in place in the ring: pre-roll tail of the
    /// previous frame, then the head of this one. Valid until `advance`.
    pub fn frame(&self) -> Runs<'_> {
        let lost = self.preroll - self.held;
        let avail = (self.held + self.take).min(self.frame - lost);
        let (a, b) = range(self.cons.as_slices(), 0, avail);
        [(lost, a), (lost + a.len(), b)]
    }

    /// Writes the delayed frame, zero-filled where input was missing.
    pub fn emit(&self, out: &mut [i16]) {
        let out = &mut out[..self.frame];
        out.fill(0);
        for (at, run) in self.frame() {
            out[at..at + run.len()].copy_from_slice(run);
        }
    }

    /// Ends a tick: consumes the frame, keeping its tail as the next pre-roll.
    pub fn advance(&mut self) {
        if self.take == self.frame {
            self.consume(self.held + self.frame - self.preroll);
            self.held = self.preroll;
        } else {
            // Underrun: the tail is silence, so no pre-roll is kept.
            self.consume(self.held + self.take);
            self.held = 0;
        }
    }

    /// Discards everything queued (a muted member's audio).
    pub fn drain(&mut self) {
        self.consumed += self.cons.clear() as u64;
        self.held = 0;
        self.take = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(ing: &mut Ingress) -> (u32, Vec<i16>) {
        let score = ing.begin();
        let mut out = vec![7; ing.frame];
        ing.emit(&mut out);
        ing.advance();
        (score, out)
    }

    #[test]
    fn frames_are_delayed_by_the_preroll_without_gaps() {
        // 8 kHz, 20 ms frames: 160 samples, 80 samples of pre-roll.
        let (mut tx, mut rx) = channel(160, 8000);
        let stream: Vec<i16> = (0..640).map(|i| i as i16).collect();
        let mut got = Vec::new();
        for f in stream.chunks(160) {
            tx.push(f);
            got.extend(tick(&mut rx).1);
        }
        assert_eq!(&got[..80], &[0; 80]);
        assert_eq!(&got[80..], &stream[..560]);
    }

    #[test]
    fn missing_input_is_silence_and_backlog_is_trimmed() {
        let (mut tx, mut rx) = channel(160, 8000);
        assert_eq!(tick(&mut rx), (0, vec![0; 160]));
        tx.push(&[100; 80]);
        let (score, out) = tick(&mut rx);
        assert_eq!(score, 50);
        assert_eq!((&out[..80], &out[80..]), (&[0; 80][..], &[100; 80][..]));
        let pushed = tx.push(&[1; 160 * 10]);
        assert!(pushed < 160 * 10);
        tick(&mut rx);
        assert!(rx.cons.occupied_len() <= 160);
    }

    #[test]
    fn scores_from_marks_match_scores_from_samples() {
        let stream: Vec<i16> = (0..160 * 12)
            .map(|i| ((i * 7919) % 2001) as i16 - 1000)
            .collect();
        let mut scores = Vec::new();
        // Frame-sized pushes (marks tile), odd chunks (partly), one sample
        // at a time (marks overflow): the scores must not differ.
        for chunk in [160, 70, 1] {
            let (mut tx, mut rx) = channel(160, 8000);
            let mut got = Vec::new();
            for frame in stream.chunks(160) {
                frame.chunks(chunk).for_each(|c| {
                    tx.push(c);
                });
                got.push(tick(&mut rx).0);
            }
            scores.push(got);
        }
        assert_eq!(scores[0], scores[1]);
        assert_eq!(scores[0], scores[2]);
        assert!(scores[0].iter().all(|s| (400..600).contains(s)));
    }

    #[test]
    fn aligned_pushes_are_scored_from_marks() {
        let (mut tx, mut rx) = channel(160, 8000);
        tx.push(&[-300; 160]);
        assert_eq!(rx.marked_sum(0, 160), Some(300 * 160));
        tick(&mut rx);
        tx.push(&[200; 100]);
        tx.push(&[100; 60]);
        assert_eq!(rx.marked_sum(160, 160), Some(200 * 100 + 100 * 60));
        assert_eq!(rx.marked_sum(160, 100), Some(200 * 100));
        assert_eq!(rx.marked_sum(170, 150), None);
    }

    #[test]
    fn drain_discards() {
        let (mut tx, mut rx) = channel(160, 8000);
        tx.push(&[5; 320]);
        rx.drain();
        assert_eq!(tick(&mut rx).0, 0);
    }
}
