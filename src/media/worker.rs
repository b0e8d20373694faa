//! A media worker thread: it owns some conferences (a mixer [`Scheduler`]) and the calls in
//! them, waits on their sockets with epoll until the next tick, and on each tick feeds the
//! mixer from the jitter buffers and sends every distinct mix, encoded once per codec group.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use mixer::{
    Conference, ConferenceId, Event as MixerEvent, JoinError, MemberConfig, MemberFlags, MemberId,
    Profile, Scheduler, TickHandler, TickOutput,
};

use super::codec::{CodecKind, Encoder, EncoderOptions};
use super::leg::{Leg, LegConfig, LegEvent};
use super::ports::RtpSockets;
use super::rtcp::ntp_timestamp;
use super::session::Session;

/// Identifies a call's media across the control plane and the workers.
pub type CallKey = u64;

const WAKER: Token = Token(usize::MAX);
/// Liveness and RTCP are checked this often, not every tick.
const HOUSEKEEPING: Duration = Duration::from_millis(500);

/// What the control plane asks of a worker.
pub enum Command {
    Join(Box<Join>),
    /// The call's SDP changed (re-INVITE): new codec or remote, or hold.
    Update {
        call: CallKey,
        leg: Box<LegConfig>,
        held: bool,
    },
    Leave {
        call: CallKey,
    },
    Shutdown,
}

pub struct Join {
    pub call: CallKey,
    pub conference: ConferenceId,
    /// Used when this call opens the conference.
    pub profile: Profile,
    pub sockets: RtpSockets,
    pub rtcp_mux: bool,
    pub leg: LegConfig,
    pub flags: MemberFlags,
}

/// What a worker reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Joined {
        call: CallKey,
        member: MemberId,
    },
    JoinFailed {
        call: CallKey,
        reason: String,
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
    reports: tokio::sync::mpsc::UnboundedSender<Report>,
) -> io::Result<(WorkerHandle, std::thread::JoinHandle<()>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (tx, rx) = crossbeam_channel::unbounded();
    let worker = Worker {
        poll,
        commands: rx,
        scheduler: Scheduler::new(),
        media: Media {
            sessions: HashMap::new(),
            conferences: HashMap::new(),
            reports,
            now: Instant::now(),
            payload: Vec::with_capacity(1500),
        },
        rtp_timeout,
    };
    let thread = std::thread::Builder::new()
        .name(format!("media-{index}"))
        .spawn(move || worker.run())?;
    Ok((
        WorkerHandle {
            commands: tx,
            waker,
        },
        thread,
    ))
}

struct Worker {
    poll: Poll,
    commands: Receiver<Command>,
    scheduler: Scheduler,
    media: Media,
    rtp_timeout: Duration,
}

/// The calls of this worker, apart from the scheduler so ticks can borrow both.
struct Media {
    sessions: HashMap<CallKey, Session>,
    conferences: HashMap<ConferenceId, ConferenceCalls>,
    reports: tokio::sync::mpsc::UnboundedSender<Report>,
    now: Instant,
    payload: Vec<u8>,
}

#[derive(Default)]
struct ConferenceCalls {
    by_member: HashMap<MemberId, CallKey>,
    /// One encoder per codec for mixes that several calls share.
    shared: HashMap<CodecKind, Box<dyn Encoder>>,
}

impl Worker {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; 2048];
        let mut next_housekeeping = Instant::now() + HOUSEKEEPING;
        loop {
            let deadline = self
                .scheduler
                .poll_timeout()
                .map_or(next_housekeeping, |t| t.min(next_housekeeping));
            let wait = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(wait))
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "media poll failed");
                return;
            }
            let now = Instant::now();
            for ev in events.iter() {
                if ev.token() == WAKER {
                    continue;
                }
                let (call, rtcp) = (ev.token().0 as u64 >> 1, ev.token().0 & 1 == 1);
                if let Some(s) = self.media.sessions.get_mut(&call) {
                    s.receive(now, rtcp, &mut buf);
                }
            }
            if !self.drain_commands(now) {
                return;
            }
            self.media.now = now;
            self.scheduler.run_due(now, &mut self.media);
            if now >= next_housekeeping {
                self.housekeeping(now);
                next_housekeeping = now + HOUSEKEEPING;
            }
        }
    }

    /// Applies queued commands; false on shutdown.
    fn drain_commands(&mut self, now: Instant) -> bool {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Join(j) => self.join(now, *j),
                Command::Update { call, leg, held } => self.update(call, *leg, held),
                Command::Leave { call } => self.leave(now, call),
                Command::Shutdown => return false,
            }
        }
        true
    }

    fn join(&mut self, now: Instant, j: Join) {
        let call = j.call;
        match self.try_join(now, j) {
            Ok(member) => self.media.report(Report::Joined { call, member }),
            Err(reason) => self.media.report(Report::JoinFailed { call, reason }),
        }
    }

    fn try_join(&mut self, now: Instant, j: Join) -> Result<MemberId, String> {
        let leg = Leg::new(j.leg).map_err(|e| e.to_string())?;
        if self.scheduler.get(j.conference).is_none() {
            self.scheduler
                .insert(j.conference, Conference::new(j.profile), now);
        }
        let cfg = MemberConfig {
            rate: leg.config().codec.pcm_rate(),
            flags: j.flags,
            ..MemberConfig::default()
        };
        let joined = self
            .scheduler
            .update(j.conference, now, |c| c.add_member(cfg))
            .ok_or("conference vanished")?;
        let (member, input) = joined.map_err(|e| match e {
            JoinError::Full { max } => format!("conference full ({max} members)"),
            e => e.to_string(),
        })?;
        let (rtp, rtcp) = self.register(j.call, j.sockets, j.rtcp_mux)?;
        let session = Session::new(leg, rtp, rtcp, j.conference, member, input, now);
        self.media.sessions.insert(j.call, session);
        let calls = self.media.conferences.entry(j.conference).or_default();
        calls.by_member.insert(member, j.call);
        Ok(member)
    }

    fn register(
        &self,
        call: CallKey,
        sockets: RtpSockets,
        rtcp_mux: bool,
    ) -> Result<(UdpSocket, Option<UdpSocket>), String> {
        let setup = |s: std::net::UdpSocket, token: u64| -> io::Result<UdpSocket> {
            s.set_nonblocking(true)?;
            let mut s = UdpSocket::from_std(s);
            self.poll
                .registry()
                .register(&mut s, Token(token as usize), Interest::READABLE)?;
            Ok(s)
        };
        let rtp = setup(sockets.rtp, call << 1).map_err(|e| e.to_string())?;
        // Without rtcp-mux the peer sends RTCP to port + 1, so that socket is read too.
        let rtcp = if rtcp_mux {
            None
        } else {
            Some(setup(sockets.rtcp, (call << 1) | 1).map_err(|e| e.to_string())?)
        };
        Ok((rtp, rtcp))
    }

    fn update(&mut self, call: CallKey, cfg: LegConfig, held: bool) {
        let Some(s) = self.media.sessions.get_mut(&call) else {
            return;
        };
        s.held = held;
        let same_stream = {
            let old = s.leg.config();
            old.codec == cfg.codec && old.payload_type == cfg.payload_type
        };
        if same_stream {
            s.leg.set_direction(cfg.direction);
        } else {
            match Leg::new(cfg) {
                Ok(leg) => s.leg = leg,
                Err(e) => tracing::warn!(call, error = %e, "codec change failed"),
            }
        }
        let (conference, member) = (s.conference, s.member);
        let flags_hold = |c: &mut Conference| {
            if let Some(mut f) = c.member_flags(member) {
                f.hear = !held;
                f.speak = !held;
                let _ = c.set_flags(member, f);
            }
        };
        self.scheduler
            .update(conference, self.media.now, flags_hold);
    }

    fn leave(&mut self, now: Instant, call: CallKey) {
        let Some(mut s) = self.media.sessions.remove(&call) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut s.rtp);
        if let Some(r) = s.rtcp.as_mut() {
            let _ = self.poll.registry().deregister(r);
        }
        let (conference, member) = (s.conference, s.member);
        let media = &mut self.media;
        // A member leaving while talking gets its final stop-talking here.
        let empty = self
            .scheduler
            .update(conference, now, |c| {
                let _ = c.remove_member(member);
                media.forward_events(conference, c);
                c.member_count() == 0
            })
            .unwrap_or(true);
        if empty {
            self.scheduler.remove(conference);
            self.media.conferences.remove(&conference);
        } else if let Some(c) = self.media.conferences.get_mut(&conference) {
            c.by_member.remove(&member);
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        let ntp = ntp_timestamp(SystemTime::now());
        let mut dead = Vec::new();
        for (&call, s) in self.media.sessions.iter_mut() {
            s.report(now, ntp);
            if s.timed_out(now, self.rtp_timeout) {
                dead.push(call);
            }
        }
        for call in dead {
            self.leave(now, call);
            self.media.report(Report::RtpTimeout { call });
        }
    }
}

impl Media {
    fn report(&self, r: Report) {
        // The control plane outlives the workers; a closed queue means shutdown.
        let _ = self.reports.send(r);
    }

    fn forward_events(&mut self, id: ConferenceId, conf: &mut Conference) {
        while let Some(ev) = conf.poll_event() {
            let (member, talking, energy) = match ev {
                MixerEvent::StartTalking { member, energy } => (member, true, energy),
                MixerEvent::StopTalking { member, energy } => (member, false, energy),
                MixerEvent::PlaybackDone { .. } => continue,
            };
            let call = self
                .conferences
                .get(&id)
                .and_then(|c| c.by_member.get(&member));
            if let Some(&call) = call {
                self.report(Report::Talking {
                    call,
                    talking,
                    energy,
                });
            }
        }
    }

    /// Sends one tick's mixes: a mix heard by several calls of one codec is encoded once.
    fn send_mixes(&mut self, id: ConferenceId, out: &TickOutput, profile: &Profile) {
        let Some(calls) = self.conferences.get_mut(&id) else {
            return;
        };
        let mut listeners = vec![0usize; out.mixes().len()];
        for r in out.routes() {
            listeners[r.mix] += 1;
        }
        // Encoded payload per (mix, codec) for this tick.
        let mut encoded: Vec<(usize, CodecKind, std::ops::Range<usize>)> = Vec::new();
        self.payload.clear();
        for r in out.routes() {
            let Some(s) = calls
                .by_member
                .get(&r.member)
                .and_then(|c| self.sessions.get_mut(c))
            else {
                continue;
            };
            let mix = &out.mixes()[r.mix];
            let codec = s.leg.config().codec;
            if listeners[r.mix] < 2 || !s.shares_payload(profile.frame_len_at(mix.rate)) {
                s.send_pcm(self.now, &mix.pcm);
                continue;
            }
            let range = match encoded.iter().find(|(m, c, _)| *m == r.mix && *c == codec) {
                Some((_, _, range)) => range.clone(),
                None => {
                    let Some(enc) = shared_encoder(&mut calls.shared, codec) else {
                        s.send_pcm(self.now, &mix.pcm);
                        continue;
                    };
                    let start = self.payload.len();
                    enc.encode(&mix.pcm, &mut self.payload);
                    encoded.push((r.mix, codec, start..self.payload.len()));
                    start..self.payload.len()
                }
            };
            s.send_payload(self.now, &self.payload[range]);
        }
    }
}

fn shared_encoder(
    shared: &mut HashMap<CodecKind, Box<dyn Encoder>>,
    codec: CodecKind,
) -> Option<&mut Box<dyn Encoder>> {
    match shared.entry(codec) {
        Entry::Occupied(e) => Some(e.into_mut()),
        Entry::Vacant(v) => match codec.encoder(EncoderOptions::default()) {
            Ok(e) => Some(v.insert(e)),
            Err(e) => {
                tracing::warn!(error = %e, "shared encoder");
                None
            }
        },
    }
}

impl TickHandler for Media {
    fn before_tick(&mut self, id: ConferenceId, conf: &mut Conference) {
        let Some(calls) = self.conferences.get(&id) else {
            return;
        };
        for call in calls.by_member.values() {
            if let Some(s) = self.sessions.get_mut(call) {
                let samples = conf.profile().frame_len_at(s.leg.config().codec.pcm_rate());
                s.feed(self.now, samples);
                while let Some(ev) = s.leg.poll_event() {
                    if let LegEvent::Dtmf(digit) = ev {
                        let _ = self.reports.send(Report::Dtmf { call: *call, digit });
                    }
                }
            }
        }
    }

    fn after_tick(&mut self, id: ConferenceId, conf: &mut Conference, out: &TickOutput) {
        self.send_mixes(id, out, conf.profile());
        self.forward_events(id, conf);
    }
}
