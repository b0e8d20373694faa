//! Adaptive jitter buffer, sans-IO: packets are pushed with their arrival time and decoded
//! PCM is pulled once per frame by the caller's clock; nothing here reads a clock.
//!
//! - `packets`: reorders, deduplicates, and says per frame which packet is due, which is
//!   lost (concealed by the decoder; Opus uses the next packet's FEC) and which came too
//!   late to play (dropped: its time was already concealed).
//! - `delay`: how late packets arrive relative to the fastest one (NetEq's relative
//!   arrival delay), and its 95th percentile: the slack playout needs. Bursty senders
//!   that keep a rhythm (softphones sending from their own sound clock) give a steady
//!   target; clock drift is not counted as delay.
//! - Here: the decoded audio queue and the decisions. At each packet played, the slack it
//!   had (pull time minus when the fastest path would have brought it) is compared with
//!   the target. Too little: audio is added; more than a margin too much: audio is
//!   removed. Where it cannot be heard: in pauses (a few quiet packets in a row, comfort
//!   noise, the start of a talkspurt) at any length; in speech only when needed, one pitch period at a time
//!   by time-scale modification (`tsm`). A received speech frame is never dropped and a
//!   concealed one never inserted just to move the delay, so a steady or steadily bursty
//!   stream plays at a constant delay, and drift is absorbed in the pauses.
//!
//! After a loss the delay holds one packet more for `LOSS_HOLD` (added and removed in pauses
//! only), so that when the next loss comes the packet after it is already here: Opus then
//! rebuilds the lost frame from that packet's in-band FEC instead of guessing it, and G.711
//! and G.722 concealment bridges into it instead of fading out. Losses come in clusters, so
//! a stream that lost nothing lately keeps the least delay.
//!
//! Slack only changes in whole pull intervals (a packet is either there at a pull or not),
//! so the delay aimed for is the least one, at this phase of the pull clock, whose slack
//! reaches the target: the decoded queue then holds almost nothing beyond the frame due.

mod delay;
mod packets;
mod tsm;

use std::time::{Duration, Instant};

use delay::DelayManager;
pub use packets::PacketInfo;
use packets::{Packets, Pop, Pushed};

use super::codec::Decoder;

/// Slack kept above the arrival delay's 95th percentile.
const MARGIN: Duration = Duration::from_millis(1);
/// In a pause the delay grows before it must, once the slack is within this of the
/// target (drift then rarely catches a talkspurt).
const AHEAD: Duration = Duration::from_millis(3);
/// Extra slack tolerated before the delay shrinks (hysteresis against the target's
/// wobble).
const HYSTERESIS: Duration = Duration::from_millis(6);
/// Excess below this is left alone.
const SLACK: Duration = Duration::from_millis(1);
/// In speech, the delay shrinks (by time-scale modification) only beyond this many
/// frames of excess: drift without pauses, or the end of a long jitter episode.
const SPEECH_SHRINK_FRAMES: u32 = 2;
/// Packets in a row that must be quiet before the delay moves there: a pause, not the
/// gap between two words.
const PAUSE_PACKETS: u32 = 3;
/// In speech the delay grows only when packets are late now: the one just played came
/// with less than `MARGIN` to spare, or a frame found nothing buffered this recently.
/// Otherwise it waits for the next pause.
const UNDERRUN_MEMORY: Duration = Duration::from_secs(2);
/// How long after a loss the delay holds one packet more (see the module comment).
const LOSS_HOLD: Duration = Duration::from_secs(5);
/// Weight of a new sample in the smoothed delay report.
const DELAY_SMOOTHING: f64 = 1.0 / 16.0;

/// Delay bounds and the stream's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the payload.
    pub clock_rate: u32,
    /// Expected packet duration (negotiated ptime); the real one is learned from timestamps.
    pub ptime: Duration,
    /// Bounds of the slack aimed for.
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl JitterConfig {
    /// Defaults: the slack follows the network, up to 200 ms.
    pub fn new(clock_rate: u32, ptime_ms: u32) -> Self {
        JitterConfig {
            clock_rate,
            ptime: Duration::from_millis(ptime_ms as u64),
            min_delay: Duration::ZERO,
            max_delay: Duration::from_millis(200),
        }
    }
}

/// Counters for metrics and RTCP.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    pub received: u64,
    pub lost: u64,
    /// Packets that came after their time was concealed (dropped).
    pub late: u64,
    pub duplicates: u64,
    /// Packets dropped on overflow.
    pub dropped: u64,
    /// Frames concealed because nothing at all was buffered.
    pub underruns: u64,
    pub resets: u64,
    /// Audio added and removed to move the delay.
    pub grown: Duration,
    pub shrunk: Duration,
    /// Of those, pitch periods added or removed in speech.
    pub stretched: u64,
    /// RFC 3550 interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// How long the audio playing now waited here (packet buffer, decoded queue and
    /// concealment look-back), smoothed.
    pub delay: Duration,
    /// The slack aimed for.
    pub target: Duration,
}

/// Reorders, deduplicates, paces, decodes and conceals one RTP stream.
pub struct JitterBuffer {
    cfg: JitterConfig,
    packets: Packets,
    delay: DelayManager,
    /// RFC 3550 jitter state.
    epoch: Option<Instant>,
    last_transit: Option<u32>,
    jitter: f64,
    /// Decoded audio: `played` samples already handed out (kept as the period time-scale
    /// modification may repeat), then the queue.
    pcm: Vec<i16>,
    played: usize,
    frame: Vec<i16>,
    /// Quiet packets in a row, up to the one just decoded.
    quiet_run: u32,
    /// When nothing was buffered for a frame due last.
    last_underrun: Option<Instant>,
    /// Losses seen so far, and when the last one was.
    losses: u64,
    last_loss: Option<Instant>,
    /// Whether the delay set in the last pause included the packet held after a loss: when
    /// the hold ends, the next pause takes it out again.
    holding: bool,
    stats: JitterStats,
}

fn secs(samples: usize, rate: u32) -> Duration {
    Duration::from_secs_f64(samples as f64 / rate as f64)
}

fn samples(d: Duration, rate: u32) -> usize {
    (d.as_secs_f64() * rate as f64).round() as usize
}

/// The least delay from `target` up whose slack lands on the pull clock's phase: `lag`
/// plus or minus whole frames.
fn on_phase(target: Duration, lag: Duration, frame: Duration) -> Duration {
    let (t, l, f) = (
        target.as_micros() as i64,
        lag.as_micros() as i64,
        frame.as_micros().max(1) as i64,
    );
    Duration::from_micros((t + (l - t).rem_euclid(f)) as u64)
}

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> Self {
        let packet_ticks = (cfg.ptime.as_secs_f64() * cfg.clock_rate as f64) as u32;
        JitterBuffer {
            packets: Packets::new(cfg.clock_rate, packet_ticks),
            delay: DelayManager::new(cfg.clock_rate),
            epoch: None,
            last_transit: None,
            jitter: 0.0,
            pcm: Vec::new(),
            played: 0,
            frame: Vec::new(),
            quiet_run: 0,
            last_underrun: None,
            losses: 0,
            last_loss: None,
            holding: false,
            stats: JitterStats::default(),
            cfg,
        }
    }

    pub fn stats(&self) -> JitterStats {
        let c = self.packets.counts;
        JitterStats {
            received: c.received,
            lost: c.lost,
            late: c.late,
            duplicates: c.duplicates,
            dropped: c.dropped,
            resets: c.resets,
            jitter: self.jitter as u32,
            target: self.target(),
            ..self.stats
        }
    }

    /// The slack aimed for: the arrival delay's 95th percentile and a margin.
    fn target(&self) -> Duration {
        let q = self.delay.quantile().unwrap_or_default();
        (q + MARGIN).clamp(self.cfg.min_delay, self.cfg.max_delay)
    }

    /// Adds one received packet.
    pub fn push(&mut self, now: Instant, p: PacketInfo<'_>) {
        let (pushed, restarted) = self.packets.push(now, &p);
        if restarted {
            self.delay.restart();
            self.last_transit = None;
        }
        // A marker starts a talkspurt after silence suppression: its gap is not jitter.
        if p.marker {
            self.last_transit = None;
        }
        if pushed != Pushed::Duplicate {
            self.update_jitter(now, p.timestamp);
            self.delay.arrival(now, p.timestamp);
        }
    }

    /// Accounts for a packet of the stream that carries no audio (an RFC 4733 event sharing
    /// the sequence numbers): it plays as concealment instead of counting as lost. Its
    /// timestamp is extrapolated, and its timing is not measured (end packets come in
    /// bursts).
    pub fn push_filler(&mut self, now: Instant, seq: u16, ssrc: u32) {
        if self.packets.ssrc() != Some(ssrc) {
            return;
        }
        let Some(timestamp) = self.packets.timestamp_of(seq) else {
            return;
        };
        let info = PacketInfo {
            seq,
            timestamp,
            ssrc,
            marker: false,
            payload: &[],
        };
        self.packets.push(now, &info);
    }

    /// RFC 3550 A.8 interarrival jitter (for RTCP reports).
    fn update_jitter(&mut self, now: Instant, ts: u32) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = now.duration_since(epoch).as_secs_f64() * self.cfg.clock_rate as f64;
        let transit = (arrival as u64 as u32).wrapping_sub(ts);
        if let Some(last) = self.last_transit {
            let d = (transit.wrapping_sub(last) as i32).unsigned_abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// The next `n` samples of audio at `rate` (the decoder's PCM rate), decoded, concealed
    /// or adapted; `None` while nothing is playing. Call once per frame time.
    pub fn pull(
        &mut self,
        now: Instant,
        n: usize,
        rate: u32,
        decoder: &mut dyn Decoder,
    ) -> Option<&[i16]> {
        while self.pcm.len() - self.played < n {
            if !self.decode_next(now, n, rate, decoder) {
                break;
            }
        }
        self.note_losses(now);
        let queued = self.pcm.len() - self.played;
        if queued == 0 {
            return None;
        }
        // Playout stopped with a partial frame left: it ends in silence.
        self.pcm.resize(self.played + queued.max(n), 0);
        self.frame.clear();
        self.frame
            .extend_from_slice(&self.pcm[self.played..self.played + n]);
        let keep = pitch_history(rate);
        let end = self.played + n;
        self.pcm.drain(..end.saturating_sub(keep));
        self.played = end.min(keep);
        Some(&self.frame)
    }

    /// Decodes or conceals one packet's worth into the queue; false when nothing is due.
    fn decode_next(
        &mut self,
        now: Instant,
        n: usize,
        rate: u32,
        decoder: &mut dyn Decoder,
    ) -> bool {
        let queued = self.pcm.len() - self.played;
        let packet_samples =
            (self.packets.packet_ticks as u64 * rate as u64 / self.cfg.clock_rate as u64) as usize;
        let played = match self.packets.pop() {
            Pop::Idle => return false,
            Pop::Frame {
                payload: [],
                timestamp,
                arrival,
                start,
            } => {
                decoder.conceal(packet_samples, &mut self.pcm);
                (timestamp, arrival, start)
            }
            Pop::Frame {
                payload,
                timestamp,
                arrival,
                start,
            } => {
                decoder.decode(payload, &mut self.pcm);
                (timestamp, arrival, start)
            }
            Pop::Lost { next, dry } => {
                if dry {
                    self.stats.underruns += 1;
                    self.last_underrun = Some(now);
                }
                match next {
                    Some((next, ahead)) => {
                        decoder.recover(next, ahead, packet_samples, &mut self.pcm)
                    }
                    None => decoder.conceal(packet_samples, &mut self.pcm),
                }
                return true;
            }
        };
        let (timestamp, arrival, start) = played;
        self.adapt(
            now,
            (timestamp, arrival),
            queued,
            start,
            secs(n, rate),
            rate,
        );
        let waited = now.saturating_duration_since(arrival) + secs(queued + decoder.delay(), rate);
        self.note_delay(waited);
        true
    }

    /// Starts the hold when a packet was found lost (its successor came; a packet only
    /// late is not a loss).
    fn note_losses(&mut self, now: Instant) {
        let lost = self.packets.counts.lost;
        if lost > self.losses {
            self.losses = lost;
            self.last_loss = Some(now);
        }
    }

    /// The delay held beyond the target after a recent loss: one packet.
    fn loss_hold(&self, now: Instant) -> Duration {
        match self.last_loss {
            Some(t) if now.saturating_duration_since(t) < LOSS_HOLD => {
                secs(self.packets.packet_ticks as usize, self.cfg.clock_rate)
            }
            _ => Duration::ZERO,
        }
    }

    fn note_delay(&mut self, sample: Duration) {
        let d = self.stats.delay.as_secs_f64();
        let d = d + (sample.as_secs_f64() - d) * DELAY_SMOOTHING;
        self.stats.delay = if self.stats.delay.is_zero() {
            sample
        } else {
            Duration::from_secs_f64(d)
        };
    }

    /// Moves the delay toward the target around the packet just decoded, which starts
    /// `queued` samples into the queue.
    fn adapt(
        &mut self,
        now: Instant,
        (timestamp, arrival): (u32, Instant),
        queued: usize,
        start: bool,
        frame: Duration,
        rate: u32,
    ) {
        let Some(expected) = self.delay.expected(timestamp) else {
            return;
        };
        let lag = now.saturating_duration_since(expected);
        let delay = lag + secs(queued, rate);
        let target = self.target();
        let block = self.played + queued;
        self.quiet_run = match tsm::is_quiet(&self.pcm[block..]) {
            true => self.quiet_run.saturating_add(1),
            false => 0,
        };
        let quiet = start || self.quiet_run >= PAUSE_PACKETS;
        // The hold after a loss moves the delay in pauses only: in speech it neither grows
        // the delay nor counts as excess.
        let hold = self.loss_hold(now);
        let grow_to = on_phase(
            if quiet { target + hold + AHEAD } else { target },
            lag,
            frame,
        );
        // The hold is over: the next pause goes back to the very delay it would have set
        // without it (the hysteresis alone could keep it, or part of it).
        let release = quiet && self.holding && hold.is_zero();
        if quiet {
            self.holding =
                !hold.is_zero() || (release && samples(delay.saturating_sub(grow_to), rate) > 0);
        }
        if delay < grow_to {
            let need = samples(grow_to - delay, rate);
            let added = if start {
                // A talkspurt starts after silence: lead in with more of it.
                self.pcm.splice(block..block, std::iter::repeat_n(0, need));
                need
            } else if quiet {
                tsm::pad_quiet(&mut self.pcm, block, need, rate);
                need
            } else if now.saturating_duration_since(arrival) < MARGIN
                || self
                    .last_underrun
                    .is_some_and(|t| now.saturating_duration_since(t) < UNDERRUN_MEMORY)
            {
                let added = tsm::expand(&mut self.pcm, block, rate);
                self.stats.stretched += (added > 0) as u64;
                added
            } else {
                0
            };
            self.stats.grown += secs(added, rate);
            return;
        }
        let (shrink_to, slack) = match release {
            true => (grow_to, Duration::ZERO),
            false => (on_phase(target + hold + HYSTERESIS, lag, frame), SLACK),
        };
        if delay <= shrink_to + slack {
            return;
        }
        let excess = samples(delay - shrink_to, rate);
        let removed = if quiet {
            tsm::cut_quiet(&mut self.pcm, block, excess, rate)
        } else if delay > shrink_to + frame * SPEECH_SHRINK_FRAMES {
            let removed = tsm::accelerate(&mut self.pcm, self.played, rate);
            self.stats.stretched += (removed > 0) as u64;
            removed
        } else {
            0
        };
        self.stats.shrunk += secs(removed, rate);
    }
}

/// Played samples kept: one longest pitch period, for time-scale modification.
fn pitch_history(rate: u32) -> usize {
    crate::media::pitch::samples(rate, tsm::PERIOD_MAX_MS)
}

#[cfg(test)]
mod tests;
