//! A media worker thread: it owns some conferences (a mixer [`Scheduler`]) and the calls in
//! them, waits on their sockets (io_uring or epoll, see [`crate::media::packet_io`]) until the
//! next tick, and on each tick feeds the mixer from the jitter buffers and sends every
//! distinct mix, encoded once per codec group.
//!
//! A call in the lobby (prompts, PIN entry, name recording) sits in a private one-member
//! conference at its codec's rate and ptime: the same feed/mix/encode path paces its
//! prompts, reports its DTMF and records its voice, with no second code path to keep in step.
//! Its member does not speak, so the mixer only drains its input and overlays its playback.
//!
//! Every conference of a worker ticks on one grid (multiples of its interval from the
//! worker's start), so one wake-up serves all conferences due at that instant.
//!
//! Sources handed to [`Command::Play`] produce PCM at the rate of the mixer they play in:
//! the conference profile's rate for a conference or a member of one, the codec's PCM rate
//! ([`super::leg::LegConfig::pcm_rate`]) for a call in the lobby.

mod control;
mod recording;
mod seating;
mod tick;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use mio::Waker;
use mixer::source::Source;
use mixer::{ConferenceId, MemberFlags, MemberId, Profile, Scheduler};

use super::codec::{CodecKind, CodecOptions, Encoder};
use super::leg::LegConfig;
use super::packet_io::{Input, IoMode, PacketIo};
use super::ports::RtpSockets;
use super::rtcp::ntp_timestamp;
use super::session::Session;
use super::wav_writer::Frames;
use crate::api::metrics::Metrics;

/// Identifies a call's media across the control plane and the workers.
pub type CallKey = u64;

/// Liveness and RTCP are checked this often, not every tick.
const HOUSEKEEPING: Duration = Duration::from_millis(500);
/// Waits for a tick at most this far off sleep through input (see `PacketIo::wait`).
const BATCH_WITHIN: Duration = Duration::from_millis(100);

/// What the control plane asks of a worker.
pub enum Command {
    /// New call media, in no conference yet. It receives (a phone sends RTP as soon as it
    /// sees the 200) but sends nothing until [`Command::Confirm`].
    Lobby(Box<Lobby>),
    /// The call's ACK arrived: its media may be sent (see `media::leg` for how much before
    /// the peer's own RTP arrives).
    Confirm {
        call: CallKey,
    },
    /// Moves a call of this worker (lobby or conference) into a conference of this worker.
    Attach(Box<Attach>),
    /// Seats `callee` in the conference `caller` sits in (its lobby: neither is answered
    /// yet), heard by it and hearing nothing: a callee's early media reaches its caller.
    /// Both are on this worker; answered by [`Report::Joined`] for `callee`.
    EarlyMedia {
        callee: CallKey,
        caller: CallKey,
    },
    /// Takes a call out of this worker: answered by [`Report::Detached`].
    Detach {
        call: CallKey,
    },
    /// Takes in a call detached from another worker, into `attach.conference`.
    Adopt {
        session: Box<Session>,
        attach: Box<Attach>,
    },
    /// The call's SDP changed (re-INVITE): new codec or remote, or hold.
    Update {
        call: CallKey,
        leg: Box<LegConfig>,
        held: bool,
    },
    Leave {
        call: CallKey,
    },
    Play {
        target: Target,
        id: u64,
        sound: Box<dyn Source>,
    },
    StopPlayback {
        id: u64,
    },
    /// Mute (`speak`) and deafen (`hear`); hold still silences both while it lasts.
    SetFlags {
        call: CallKey,
        speak: bool,
        hear: bool,
    },
    /// Overrides the profile's energy level for the call; `None` restores it.
    SetEnergyLevel {
        call: CallKey,
        level: Option<u32>,
    },
    /// Volume steps -4..=4; `None` leaves that direction unchanged.
    SetVolume {
        call: CallKey,
        talk: Option<i8>,
        listen: Option<i8>,
    },
    /// Whether `a` hears `b` and `b` hears `a` (both in one conference).
    Relate {
        a: CallKey,
        b: CallKey,
        hear: bool,
        speak: bool,
    },
    RecordCall {
        call: CallKey,
        max: Duration,
        id: u64,
    },
    RecordConference {
        conference: ConferenceId,
        path: PathBuf,
        id: u64,
    },
    StopRecording {
        id: u64,
    },
    /// Sends a digit to the call as RFC 4733 events (a `dist-dtmf` member's key).
    SendDtmf {
        call: CallKey,
        digit: char,
    },
    /// The members of a conference; an unknown conference answers an empty list.
    Snapshot {
        conference: ConferenceId,
        reply: Sender<Vec<MemberState>>,
    },
    Shutdown,
}

/// Who hears a playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One call only: overlaid on its conference mix, or alone in the lobby.
    Call(CallKey),
    /// Everyone in the conference.
    Conference(ConferenceId),
}

pub struct Lobby {
    pub call: CallKey,
    pub sockets: RtpSockets,
    pub rtcp_mux: bool,
    pub leg: LegConfig,
}

pub struct Attach {
    pub call: CallKey,
    /// Below 2^63: the top bit marks the workers' private lobby conferences.
    pub conference: ConferenceId,
    /// Used when this call opens the conference.
    pub profile: Profile,
    pub flags: MemberFlags,
    pub energy_level: Option<u32>,
}

/// One member as a snapshot shows it; `speak`/`hear` are the flags asked for, which
/// `held` overrides while it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    pub call: CallKey,
    pub member: MemberId,
    pub speak: bool,
    pub hear: bool,
    pub held: bool,
    pub moderator: bool,
    pub talking: bool,
    pub energy: u32,
    pub energy_level: u32,
    pub talk_volume: i8,
    pub listen_volume: i8,
    /// The latency the server adds to this member's audio ([`Session::latency`]).
    pub latency: Duration,
}

/// What a worker reports.
#[derive(Debug)]
pub enum Report {
    Joined {
        call: CallKey,
        member: MemberId,
    },
    JoinFailed {
        call: CallKey,
        reason: String,
    },
    /// The call left a conference (hang-up, timeout, attach elsewhere or detach).
    Left {
        call: CallKey,
        conference: ConferenceId,
    },
    /// The call's media, for [`Command::Adopt`] on another worker.
    Detached {
        call: CallKey,
        session: Box<Session>,
    },
    Dtmf {
        call: CallKey,
        digit: char,
    },
    RtpTimeout {
        call: CallKey,
    },
    Talking {
        call: CallKey,
        talking: bool,
        energy: u32,
    },
    /// The latency the server adds to the call's audio moved ([`Session::latency`]); told
    /// once media flows, then on changes of 1 ms or more, at most twice a second.
    Latency {
        call: CallKey,
        latency: Duration,
    },
    /// `stopped`: cut short (stop, its call left, its conference ended, or it never started).
    PlaybackDone {
        id: u64,
        stopped: bool,
    },
    /// The caller's decoded input at `rate` Hz.
    Recorded {
        id: u64,
        call: CallKey,
        rate: u32,
        pcm: Vec<i16>,
    },
    RecordingDone {
        id: u64,
        path: PathBuf,
        seconds: f64,
    },
    RecordingFailed {
        id: u64,
        path: PathBuf,
        reason: String,
    },
}

/// The control plane's handle on one worker thread.
#[derive(Clone)]
pub struct WorkerHandle {
    commands: Sender<Command>,
    waker: Arc<Waker>,
}

impl WorkerHandle {
    pub fn send(&self, cmd: Command) {
        // A worker that has stopped has nothing left to act on.
        if self.commands.send(cmd).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// Starts a worker; `reports` receives what it sees.
pub fn spawn(
    index: usize,
    rtp_timeout: Duration,
    io: IoMode,
    reports: tokio::sync::mpsc::UnboundedSender<Report>,
    metrics: Arc<Metrics>,
) -> io::Result<(WorkerHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    // The ring is made on the thread that uses it (io_uring's single-issuer mode); the
    // thread hands back the waker, or why its I/O could not start.
    let (started_tx, started) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name(format!("media-{index}"))
        .spawn(move || {
            let opened = PacketIo::new(io).and_then(|io| Ok((io.waker()?, io)));
            let io = match opened {
                Ok((waker, io)) => {
                    let _ = started_tx.send(Ok(waker));
                    io
                }
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                    return;
                }
            };
            tracing::info!(worker = index, io = io.kind(), "media worker");
            let now = Instant::now();
            let worker = Worker {
                commands: rx,
                scheduler: Scheduler::new(),
                media: Media {
                    io,
                    sessions: HashMap::new(),
                    conferences: HashMap::new(),
                    playbacks: HashMap::new(),
                    reports,
                    now,
                    payload: Vec::with_capacity(1500),
                    metrics,
                    mixing_since: now,
                },
                rtp_timeout,
                epoch: now,
            };
            worker.run()
        })?;
    let waker = started
        .recv()
        .map_err(|_| io::Error::other("media worker exited at start"))??;
    Ok((
        WorkerHandle {
            commands: tx,
            waker: Arc::new(waker),
        },
        thread,
    ))
}

struct Worker {
    commands: Receiver<Command>,
    scheduler: Scheduler,
    media: Media,
    rtp_timeout: Duration,
    /// Origin of the tick grid every conference of this worker is aligned to.
    epoch: Instant,
}

/// The calls of this worker, apart from the scheduler so ticks can borrow both.
struct Media {
    io: PacketIo,
    sessions: HashMap<CallKey, Session>,
    conferences: HashMap<ConferenceId, ConferenceCalls>,
    /// Where each running playback plays.
    playbacks: HashMap<u64, ConferenceId>,
    reports: tokio::sync::mpsc::UnboundedSender<Report>,
    now: Instant,
    payload: Vec<u8>,
    metrics: Arc<Metrics>,
    /// When the current conference's mixing began (for the mix tick histogram).
    mixing_since: Instant,
}

/// Which encoder serves a group of calls hearing one shared mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SharedEncode {
    codec: CodecKind,
    options: CodecOptions,
    /// The shared mix's listen volume (its rate follows from the codec and options).
    volume: i8,
}

#[derive(Default)]
struct ConferenceCalls {
    by_member: HashMap<MemberId, CallKey>,
    /// One encoder per shared mix and encoder setup: stateful codecs (Opus, G.722) must
    /// encode one mix's frames in sequence.
    shared: HashMap<SharedEncode, Box<dyn Encoder>>,
    /// Conference recordings: a hidden listener member each, feeding a WAV writer.
    recorders: Vec<Recorder>,
}

struct Recorder {
    id: u64,
    member: MemberId,
    frames: Frames,
}

impl Worker {
    fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        let mut next_housekeeping = Instant::now() + HOUSEKEEPING;
        // Arrival times are not taken before the previous pass's clock, which the legs
        // (jitter buffers, latches) have already seen.
        let mut floor = Instant::now();
        loop {
            let tick = self.scheduler.poll_timeout();
            // Without calls or conferences nothing is due: sleep until a command comes,
            // with the gauges brought to zero first.
            let wait = if tick.is_none() && self.media.sessions.is_empty() {
                self.housekeeping(Instant::now());
                None
            } else {
                let deadline = tick.map_or(next_housekeeping, |t| t.min(next_housekeeping));
                Some(deadline.saturating_duration_since(Instant::now()))
            };
            // A tick is near: sleep until it (commands wait for it too, at most a tick).
            let batch = tick.is_some() && wait.is_some_and(|w| w <= BATCH_WITHIN);
            if let Err(e) = self.media.io.wait(wait, batch) {
                tracing::error!(error = %e, "media poll failed");
                return;
            }
            let now = Instant::now();
            let sessions = &mut self.media.sessions;
            self.media.io.drain(|token, input| {
                let (call, rtcp) = (token.0 as u64 >> 1, token.0 & 1 == 1);
                let Some(s) = sessions.get_mut(&call) else {
                    return true;
                };
                match input {
                    Input::Readable => s.receive(now, rtcp, &mut buf),
                    Input::Datagram { from, bytes, at } => {
                        s.deliver(at.max(floor), rtcp, from, bytes);
                        true
                    }
                }
            });
            floor = now;
            self.media.now = now;
            if !self.drain_commands() {
                return;
            }
            self.scheduler.run_due(now, &mut self.media);
            if now >= next_housekeeping {
                self.housekeeping(now);
                next_housekeeping = now + HOUSEKEEPING;
            }
        }
    }

    /// Applies queued commands; false on shutdown.
    fn drain_commands(&mut self) -> bool {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Lobby(l) => self.lobby(*l),
                Command::Confirm { call } => self.confirm(call),
                Command::Attach(a) => self.attach(*a),
                Command::EarlyMedia { callee, caller } => self.early_media(callee, caller),
                Command::Detach { call } => self.detach(call),
                Command::Adopt { session, attach } => self.adopt(session, *attach),
                Command::Update { call, leg, held } => self.update(call, *leg, held),
                Command::Leave { call } => self.leave(call),
                Command::Play { target, id, sound } => self.play(target, id, sound),
                Command::StopPlayback { id } => self.stop_playback(id),
                Command::SetFlags { call, speak, hear } => self.set_flags(call, speak, hear),
                Command::SetEnergyLevel { call, level } => self.set_energy_level(call, level),
                Command::SetVolume { call, talk, listen } => self.set_volume(call, talk, listen),
                Command::Relate { a, b, hear, speak } => self.relate(a, b, hear, speak),
                Command::RecordCall { call, max, id } => self.record_call(call, max, id),
                Command::RecordConference {
                    conference,
                    path,
                    id,
                } => self.record_conference(conference, path, id),
                Command::StopRecording { id } => self.stop_recording(id),
                Command::SendDtmf { call, digit } => self.send_dtmf(call, digit),
                Command::Snapshot { conference, reply } => {
                    // The asker may have given up waiting.
                    let _ = reply.send(self.snapshot(conference));
                }
                Command::Shutdown => return false,
            }
        }
        true
    }

    fn housekeeping(&mut self, now: Instant) {
        let ntp = ntp_timestamp(SystemTime::now());
        let mut dead = Vec::new();
        let (mut jitter_us, mut delay_us) = (0u64, 0u64);
        for (&call, s) in self.media.sessions.iter_mut() {
            s.report(now, ntp, &mut self.media.io);
            s.count_into(&self.media.metrics);
            jitter_us = jitter_us.max((s.leg.stats().jitter_ms * 1000.0) as u64);
            let latency = s.latency();
            delay_us = delay_us.max(latency.as_micros() as u64);
            if s.leg.last_rx().is_some()
                && let Some(latency) = s.latency_change()
            {
                // The control plane outlives the workers; a closed queue means shutdown.
                let _ = self.media.reports.send(Report::Latency { call, latency });
            }
            if s.timed_out(now, self.rtp_timeout) {
                dead.push(call);
            }
        }
        self.media
            .metrics
            .jitter_us
            .store(jitter_us, std::sync::atomic::Ordering::Relaxed);
        self.media
            .metrics
            .delay_us
            .store(delay_us, std::sync::atomic::Ordering::Relaxed);
        for call in dead {
            self.leave(call);
            self.media.report(Report::RtpTimeout { call });
        }
    }
}

impl Media {
    fn report(&self, r: Report) {
        // The control plane outlives the workers; a closed queue means shutdown.
        let _ = self.reports.send(r);
    }
}
