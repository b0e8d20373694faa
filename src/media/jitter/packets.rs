//! The packet side of the jitter buffer: a ring indexed by extended sequence number that
//! reorders and deduplicates, and a playout position in RTP timestamps that says which
//! packet is due, which are lost and which came too late to play.
//!
//! Playout runs on timestamps, as a receiver's clock should: a missing packet's time is
//! concealed once and never again (the packet is dropped if it turns up later), and a
//! packet whose timestamp is ahead of the position (after silence suppression) starts a
//! new talkspurt. When nothing has arrived for `RESTART`, playout stops; the next packet
//! anchors it afresh.

use std::time::{Duration, Instant};

/// Slots in the ring: 64 frames is over a second at 20 ms, far above any sane delay.
pub(super) const CAPACITY: u64 = 64;
/// A timestamp jump larger than this (against what the sequence numbers imply) restarts
/// the stream, e.g. after a sender restart that kept its SSRC.
const MAX_TS_JUMP: Duration = Duration::from_secs(2);
/// Dry for this long (concealment has faded to silence): stop, and re-anchor on the next
/// packet instead of dropping a late talkspurt packet by packet.
const RESTART: Duration = Duration::from_millis(60);
/// How far past a lost packet to look for one to conceal toward: as long as concealment
/// lasts before it falls silent.
const BRIDGE: Duration = Duration::from_millis(60);

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
pub(super) enum Pop<'a> {
    /// The packet due now. `start`: the first of a talkspurt (playout was stopped, or the
    /// timestamps jumped ahead), where the delay may be set freely.
    Frame {
        payload: &'a [u8],
        timestamp: u32,
        arrival: Instant,
        start: bool,
    },
    /// Due but missing: conceal one packet's worth. `next`: the first packet buffered after
    /// it within `BRIDGE`, and how many packets on (1: the very next), which Opus rebuilds
    /// the lost frame from and G.711 concealment steers into. `dry`: nothing is buffered.
    Lost {
        next: Option<(&'a [u8], usize)>,
        dry: bool,
    },
    /// Not playing.
    Idle,
}

/// What became of a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pushed {
    Stored,
    Duplicate,
    /// Its time has been played (or concealed) already.
    Late,
}

/// Counters for metrics and RTCP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub received: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicates: u64,
    pub dropped: u64,
    pub resets: u64,
}

/// A packet's place in the ring; its payload buffer is there only while it is filled.
#[derive(Default)]
struct Slot {
    seq: u64,
    ts: u32,
    filled: bool,
    arrival: Option<Instant>,
    payload: Vec<u8>,
}

pub(super) struct Packets {
    clock_rate: u32,
    slots: Vec<Slot>,
    /// Payload buffers not in a slot: as many as packets were ever held at once, not one
    /// per slot (a steady stream holds a few, the ring has [`CAPACITY`] slots).
    spare: Vec<Vec<u8>>,
    /// The payload of the frame `pop` returned last.
    played: Vec<u8>,
    ssrc: Option<u32>,
    /// Highest extended sequence number and its timestamp.
    highest: Option<(u64, u32)>,
    /// Next sequence number to play.
    next: Option<u64>,
    /// Timestamp of the audio due next; `None` while stopped.
    play_ts: Option<u32>,
    /// Timestamp ticks concealed since the last packet played.
    dry: u32,
    pub packet_ticks: u32,
    pub counts: Counts,
}

/// Whether timestamp `a` is before `b` (modulo 2^32).
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl Packets {
    pub fn new(clock_rate: u32, packet_ticks: u32) -> Self {
        Packets {
            clock_rate,
            slots: (0..CAPACITY).map(|_| Slot::default()).collect(),
            spare: Vec::new(),
            played: Vec::new(),
            ssrc: None,
            highest: None,
            next: None,
            play_ts: None,
            dry: 0,
            packet_ticks,
            counts: Counts::default(),
        }
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        let s = &self.slots[(seq % CAPACITY) as usize];
        (s.filled && s.seq == seq).then_some(s)
    }

    /// Empties slot `seq`, keeping its buffer for the next packet.
    fn clear(&mut self, seq: u64) {
        let slot = &mut self.slots[(seq % CAPACITY) as usize];
        slot.filled = false;
        self.spare.push(std::mem::take(&mut slot.payload));
    }

    /// Forgets the stream (new SSRC or discontinuity).
    fn reset(&mut self) {
        for seq in 0..CAPACITY {
            if self.slots[seq as usize].filled {
                self.clear(seq);
            }
        }
        self.highest = None;
        self.next = None;
        self.play_ts = None;
        self.counts.resets += 1;
    }

    /// Stores a packet; says what became of it and whether the stream restarted (new SSRC
    /// or timestamp jump).
    pub fn push(&mut self, now: Instant, p: &PacketInfo<'_>) -> (Pushed, bool) {
        self.counts.received += 1;
        let mut restarted = false;
        if self.ssrc != Some(p.ssrc) {
            restarted = self.ssrc.is_some();
            if restarted {
                self.reset();
            }
            self.ssrc = Some(p.ssrc);
        }
        let mut seq = self.extend_seq(p.seq);
        if self.is_discontinuity(seq, p.timestamp) {
            self.reset();
            restarted = true;
            seq = self.extend_seq(p.seq);
        }
        let late = self.next.is_some_and(|n| seq < n)
            && (self.play_ts.is_some() || self.next.is_some_and(|n| n - seq >= CAPACITY));
        if late {
            self.counts.late += 1;
            return (Pushed::Late, restarted);
        }
        if self.next.is_none_or(|n| seq < n) {
            self.next = Some(seq);
        }
        (self.store(now, seq, p), restarted)
    }

    fn store(&mut self, now: Instant, seq: u64, p: &PacketInfo<'_>) -> Pushed {
        let slot = &mut self.slots[(seq % CAPACITY) as usize];
        if slot.filled && slot.seq == seq {
            self.counts.duplicates += 1;
            return Pushed::Duplicate;
        }
        let mut payload = if slot.filled {
            self.counts.dropped += 1;
            std::mem::take(&mut slot.payload)
        } else {
            self.spare.pop().unwrap_or_default()
        };
        payload.clear();
        payload.extend_from_slice(p.payload);
        *slot = Slot {
            seq,
            ts: p.timestamp,
            filled: true,
            arrival: Some(now),
            payload,
        };
        self.learn_packet_ticks(seq, p.timestamp);
        if self.highest.is_none_or(|(h, _)| seq > h) {
            self.highest = Some((seq, p.timestamp));
        }
        // Too far ahead of playout: skip the oldest frames so the ring never aliases.
        if let Some(n) = self.next
            && seq >= n + CAPACITY
        {
            let skip_to = seq + 1 - CAPACITY / 2;
            self.counts.dropped += skip_to - n;
            self.next = (skip_to..=seq).find(|&s| self.slot(s).is_some());
            self.play_ts = None;
        }
        Pushed::Stored
    }

    /// Sequence number extended past 16 bits relative to the highest seen.
    pub fn extend_seq(&self, seq: u16) -> u64 {
        match self.highest {
            Some((h, _)) => {
                let delta = seq.wrapping_sub(h as u16) as i16 as i64;
                (h as i64 + delta).max(0) as u64
            }
            // Start high so that reordered packets before the first one stay positive.
            None => (1 << 32) + seq as u64,
        }
    }

    /// The timestamp a packet of `seq` carries, extrapolated from the highest.
    pub fn timestamp_of(&self, seq: u16) -> Option<u32> {
        let (h, hts) = self.highest?;
        let ticks = (self.extend_seq(seq) as i64 - h as i64) * self.packet_ticks as i64;
        Some(hts.wrapping_add(ticks as u32))
    }

    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    fn is_discontinuity(&self, seq: u64, ts: u32) -> bool {
        let Some((h, hts)) = self.highest else {
            return false;
        };
        let seq_delta = seq as i64 - h as i64;
        let expected = seq_delta * self.packet_ticks as i64;
        let actual = ts.wrapping_sub(hts) as i32 as i64;
        let max_jump = (MAX_TS_JUMP.as_secs_f64() * self.clock_rate as f64) as i64;
        seq_delta.unsigned_abs() > 2 * CAPACITY || (actual - expected).abs() > max_jump
    }

    fn learn_packet_ticks(&mut self, seq: u64, ts: u32) {
        let Some(prev) = seq.checked_sub(1).and_then(|s| self.slot(s)) else {
            return;
        };
        let d = ts.wrapping_sub(prev.ts);
        // Accept 2.5..120 ms: anything else is a timestamp glitch, not a frame size.
        if d >= self.clock_rate / 400 && d <= self.clock_rate * 3 / 25 {
            self.packet_ticks = d;
        }
    }

    /// Takes what is due at the playout position; call once per packet time.
    pub fn pop(&mut self) -> Pop<'_> {
        let Some(mut seq) = self.next else {
            return Pop::Idle;
        };
        let highest = self.highest.map_or(0, |h| h.0);
        let Some(play_ts) = self.play_ts else {
            // Stopped: anchor on the oldest buffered packet.
            let Some(first) = (seq..=highest).find(|&s| self.slot(s).is_some()) else {
                return Pop::Idle;
            };
            return self.take(first, true);
        };
        while seq <= highest {
            if let Some(slot) = self.slot(seq) {
                if before(slot.ts, play_ts) {
                    self.clear(seq);
                    self.counts.late += 1;
                    seq += 1;
                    self.next = Some(seq);
                    continue;
                }
                let start = before(play_ts.wrapping_add(self.packet_ticks / 2), slot.ts);
                return self.take(seq, start);
            }
            // Missing: lost if a later packet shows its time is due, skipped if already
            // concealed.
            let Some((m, ts_m)) =
                (seq + 1..=highest).find_map(|s| self.slot(s).map(|slot| (s, slot.ts)))
            else {
                break;
            };
            let expected = ts_m.wrapping_sub(((m - seq) as u32).wrapping_mul(self.packet_ticks));
            seq += 1;
            self.next = Some(seq);
            // Concealed already, while nothing was buffered.
            if before(expected, play_ts) {
                self.counts.lost += 1;
                continue;
            }
            self.play_ts = Some(play_ts.wrapping_add(self.packet_ticks));
            self.counts.lost += 1;
            self.dry = 0;
            let reach = (BRIDGE.as_secs_f64() * self.clock_rate as f64) as u64
                / self.packet_ticks.max(1) as u64;
            let next = (seq..seq + reach.max(1)).find_map(|s| {
                self.slot(s)
                    .map(|slot| (&slot.payload[..], (s + 1 - seq) as usize))
            });
            return Pop::Lost { next, dry: false };
        }
        self.dry_pop(play_ts)
    }

    /// Nothing buffered: conceal, advancing the position; stop once dry for `RESTART`.
    fn dry_pop(&mut self, play_ts: u32) -> Pop<'static> {
        self.dry = self.dry.saturating_add(self.packet_ticks);
        let restart = (RESTART.as_secs_f64() * self.clock_rate as f64) as u32;
        if self.dry > restart {
            self.play_ts = None;
            return Pop::Idle;
        }
        self.play_ts = Some(play_ts.wrapping_add(self.packet_ticks));
        Pop::Lost {
            next: None,
            dry: true,
        }
    }

    fn take(&mut self, seq: u64, start: bool) -> Pop<'_> {
        self.next = Some(seq + 1);
        self.dry = 0;
        let slot = &mut self.slots[(seq % CAPACITY) as usize];
        slot.filled = false;
        let payload = std::mem::take(&mut slot.payload);
        self.spare
            .push(std::mem::replace(&mut self.played, payload));
        self.play_ts = Some(slot.ts.wrapping_add(self.packet_ticks));
        Pop::Frame {
            payload: &self.played,
            timestamp: slot.ts,
            arrival: slot.arrival.expect("a stored packet has its arrival"),
            start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16, payload: &[u8]) -> PacketInfo<'_> {
        PacketInfo {
            seq,
            timestamp: (seq as u32).wrapping_mul(160),
            ssrc: 1,
            marker: false,
            payload,
        }
    }

    /// What one pop yields: `Some(first byte)` for a frame, `None` for a loss.
    fn pop(p: &mut Packets) -> Option<Option<u8>> {
        match p.pop() {
            Pop::Frame { payload, .. } => Some(Some(payload[0])),
            Pop::Lost { .. } => Some(None),
            Pop::Idle => None,
        }
    }

    fn packets() -> Packets {
        Packets::new(8000, 160)
    }

    #[test]
    fn reorder_duplicates_loss_and_late() {
        let (mut p, t) = (packets(), Instant::now());
        p.push(t, &pkt(10, &[10]));
        let mut got = vec![pop(&mut p)];
        for seq in [12u16, 11, 11] {
            p.push(t, &pkt(seq, &[seq as u8]));
        }
        got.extend([pop(&mut p), pop(&mut p)]);
        p.push(t, &pkt(14, &[14]));
        got.extend([pop(&mut p), pop(&mut p)]);
        // 13 turns up after its time was concealed: too late.
        assert_eq!(p.push(t, &pkt(13, &[13])).0, Pushed::Late);
        let want = [Some(10), Some(11), Some(12), None, Some(14)];
        assert_eq!(got, want.map(Some));
        let c = p.counts;
        assert_eq!((c.duplicates, c.lost, c.late), (1, 1, 1));
    }

    #[test]
    fn a_lost_packet_points_at_the_next_one_buffered_within_60_ms() {
        let (mut p, t) = (packets(), Instant::now());
        for seq in [1u16, 4, 5, 10] {
            p.push(t, &pkt(seq, &[seq as u8]));
        }
        let lost = |p: &mut Packets| match p.pop() {
            Pop::Lost { next, dry: false } => next.map(|(payload, ahead)| (payload[0], ahead)),
            other => panic!("{other:?}"),
        };
        assert_eq!(pop(&mut p), Some(Some(1)));
        // 2 and 3 are lost: 4 lies two, then one packet on.
        assert_eq!(lost(&mut p), Some((4, 2)));
        assert_eq!(lost(&mut p), Some((4, 1)));
        assert_eq!([pop(&mut p), pop(&mut p)], [Some(Some(4)), Some(Some(5))]);
        // 6 to 9 are lost: 10 is out of reach (80 ms on) until 7's turn.
        assert_eq!(lost(&mut p), None);
        assert_eq!(lost(&mut p), Some((10, 3)));
    }

    #[test]
    fn a_late_packet_is_dropped_once_its_time_was_concealed() {
        let (mut p, t) = (packets(), Instant::now());
        p.push(t, &pkt(1, &[1]));
        assert_eq!(pop(&mut p), Some(Some(1)));
        // 2 is late: its time is concealed (nothing buffered), then 2 and 3 arrive.
        assert_eq!(
            p.pop(),
            Pop::Lost {
                next: None,
                dry: true
            }
        );
        p.push(t, &pkt(2, &[2]));
        p.push(t, &pkt(3, &[3]));
        assert_eq!(pop(&mut p), Some(Some(3)));
        assert_eq!(p.counts.late, 1);
    }

    #[test]
    fn a_stream_keeps_as_many_payload_buffers_as_packets_it_held_at_once() {
        let (mut p, t) = (packets(), Instant::now());
        let payload = [7u8; 160];
        // Three packets ahead of playout, then one in and one out, round the ring 30 times.
        for seq in 0..3u16 {
            p.push(t, &pkt(seq, &payload));
        }
        for seq in 3..2000u16 {
            p.push(t, &pkt(seq, &payload));
            assert_eq!(pop(&mut p), Some(Some(7)));
        }
        let in_slots = p.slots.iter().filter(|s| s.payload.capacity() > 0).count();
        let buffers = in_slots + p.spare.len() + 1;
        assert_eq!((in_slots, buffers), (3, 5));
    }

    #[test]
    fn sequence_wrap_is_continuous() {
        let (mut p, t) = (packets(), Instant::now());
        for (i, seq) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
            let payload = [i as u8];
            let info = PacketInfo {
                timestamp: 160 * i as u32,
                ..pkt(seq, &payload)
            };
            p.push(t, &info);
        }
        let got: Vec<_> = (0..4).map(|_| pop(&mut p)).collect();
        assert_eq!(got, [0, 1, 2, 3].map(|i| Some(Some(i))));
        assert_eq!(p.counts.lost, 0);
    }

    #[test]
    fn ssrc_change_and_timestamp_jump_restart() {
        let (mut p, t) = (packets(), Instant::now());
        p.push(t, &pkt(100, &[1]));
        assert_eq!(pop(&mut p), Some(Some(1)));
        // A new source with unrelated numbering plays at once, no "late" or "lost".
        let other = PacketInfo {
            ssrc: 2,
            ..pkt(7, &[2])
        };
        assert_eq!(p.push(t, &other), (Pushed::Stored, true));
        assert_eq!(pop(&mut p), Some(Some(2)));
        let jump = PacketInfo {
            timestamp: 7 * 160 + 8000 * 60,
            ssrc: 2,
            ..pkt(8, &[3])
        };
        assert_eq!(p.push(t, &jump), (Pushed::Stored, true));
        assert_eq!(pop(&mut p), Some(Some(3)));
        let c = p.counts;
        assert_eq!((c.resets, c.lost, c.late), (2, 0, 0));
    }

    #[test]
    fn silence_suppression_gaps_start_a_talkspurt_and_long_ones_stop_playout() {
        let (mut p, t) = (packets(), Instant::now());
        p.push(t, &pkt(1, &[1]));
        assert!(matches!(p.pop(), Pop::Frame { start: true, .. }));
        // The sender pauses for 40 ms (two packet times) and resumes: sequence numbers
        // run on, timestamps jump.
        assert_eq!(pop(&mut p), Some(None));
        assert_eq!(pop(&mut p), Some(None));
        let resumed = PacketInfo {
            timestamp: 160 * 5,
            marker: true,
            ..pkt(2, &[2])
        };
        p.push(t, &resumed);
        assert!(matches!(p.pop(), Pop::Frame { start: true, .. }));
        // A longer pause stops playout; the next packet anchors it afresh.
        let dry: Vec<_> = (0..5).map(|_| pop(&mut p)).collect();
        assert_eq!(dry, [Some(None), Some(None), Some(None), None, None]);
        p.push(t, &pkt(3, &[3]));
        assert!(matches!(p.pop(), Pop::Frame { start: true, .. }));
        assert_eq!((p.counts.lost, p.counts.late), (0, 0));
    }
}
