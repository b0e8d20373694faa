//! Where calls sit: joining, the lobby, attaching to a conference, migrating between
//! workers, re-INVITE updates and leaving.

use std::time::{Duration, Instant};

use mio::Token;
use mio::net::UdpSocket;
use mixer::{
    Conference, ConferenceId, JoinError, MemberConfig, MemberFlags, MemberId, PlaybackId, Profile,
};

use super::tick::recorded;
use super::{Attach, CallKey, Lobby, Media, Report, Worker};
use crate::media::leg::{Leg, LegConfig};
use crate::media::ports::{PortLease, RtpSockets};
use crate::media::session::{Seat, Session, with_hold};

/// Marks a call's private lobby conference; the control plane's ids stay below it.
const LOBBY: u64 = 1 << 63;

pub(super) fn is_lobby(id: ConferenceId) -> bool {
    id.0 & LOBBY != 0
}

/// A lobby member only listens: the mixer drains its input and overlays its playback.
const LOBBY_FLAGS: MemberFlags = MemberFlags {
    speak: false,
    hear: true,
    moderator: false,
};

/// A callee's early media in its caller's lobby: heard, hearing nothing (FreeSWITCH passes
/// early media one way, callee to caller).
const EARLY_MEDIA_FLAGS: MemberFlags = MemberFlags {
    speak: true,
    hear: false,
    moderator: false,
};

/// The lobby mixer runs at the codec's rate and ptime, so nothing is resampled and each
/// tick is one packet. A ptime the profile cannot take keeps 20 ms ticks; the session
/// repacketises.
fn lobby_profile(leg: &LegConfig) -> Profile {
    let mut p = Profile::default();
    let rate = leg.pcm_rate().to_string();
    for (key, value) in [
        ("rate", rate.as_str()),
        ("interval", &leg.ptime_ms.to_string()),
        ("comfort-noise", "0"),
    ] {
        if let Err(e) = p.set(key, value) {
            tracing::debug!(error = %e, "lobby profile");
        }
    }
    p
}

/// The first point of the worker's tick grid at or after `now`: conferences of one
/// interval then tick in the same wake-up instead of each waking the thread.
pub(super) fn on_grid(epoch: Instant, now: Instant, interval: Duration) -> Instant {
    let step = interval.as_nanos().max(1);
    let since = now.saturating_duration_since(epoch).as_nanos();
    let steps = since.div_ceil(step);
    epoch + Duration::from_nanos((steps * step) as u64)
}

impl Worker {
    /// Runs `f` on a conference; if that wakes it, its first tick is on the worker's grid.
    pub(super) fn with_conf<R>(
        &mut self,
        id: ConferenceId,
        f: impl FnOnce(&mut Conference, &mut Media) -> R,
    ) -> Option<R> {
        let interval = self.scheduler.get(id)?.profile().interval();
        let at = on_grid(self.epoch, self.media.now, interval);
        let media = &mut self.media;
        self.scheduler.update(id, at, |c| f(c, media))
    }

    pub(super) fn lobby(&mut self, l: Lobby) {
        let call = l.call;
        let attach = Attach {
            call,
            conference: ConferenceId(LOBBY | call),
            profile: lobby_profile(&l.leg),
            flags: LOBBY_FLAGS,
            energy_level: None,
        };
        if let Err(reason) = self.install(l, attach) {
            self.media.report(Report::JoinFailed { call, reason });
        }
    }

    pub(super) fn confirm(&mut self, call: CallKey) {
        match self.media.sessions.get_mut(&call) {
            Some(s) => s.leg.confirm(),
            None => tracing::debug!(call, "confirm: no such call"),
        }
    }

    /// New call media: a leg, its sockets, and a seat in `attach.conference`.
    fn install(&mut self, l: Lobby, attach: Attach) -> Result<MemberId, String> {
        if self.media.sessions.contains_key(&l.call) {
            return Err("call already has media here".into());
        }
        let leg = Leg::new(l.leg).map_err(|e| e.to_string())?;
        let sockets = mio_sockets(l.sockets, l.rtcp_mux).map_err(|e| e.to_string())?;
        let cfg = member_config(&attach, leg.config().pcm_rate(), false, (0, 0));
        let seat = self.seat(&attach, cfg)?;
        let mut session = Session::new(leg, sockets, seat, attach.flags, self.media.now);
        session.energy_level = attach.energy_level;
        if let Err(e) = self.register(l.call, &mut session) {
            self.release(&session.seat);
            return Err(e);
        }
        let member = session.seat.member;
        self.media.sessions.insert(l.call, session);
        Ok(member)
    }

    /// Moves a call to another conference of this worker; on failure it stays put.
    pub(super) fn attach(&mut self, a: Attach) {
        let call = a.call;
        let result = match self.media.sessions.get(&call) {
            Some(s) => self.seat(&a, session_member_config(&a, s)),
            None => Err("no such call on this worker".into()),
        };
        match result {
            Ok(seat) => {
                let member = seat.member;
                if let Some(s) = self.media.sessions.get_mut(&call) {
                    s.flags = a.flags;
                    s.energy_level = a.energy_level;
                    let old = std::mem::replace(&mut s.seat, seat);
                    self.unseat(call, &old);
                }
                self.media.report(Report::Joined { call, member });
            }
            Err(reason) => self.media.report(Report::JoinFailed { call, reason }),
        }
    }

    pub(super) fn early_media(&mut self, callee: CallKey, caller: CallKey) {
        let sits = self.media.sessions.get(&caller).map(|s| s.seat.conference);
        let profile = sits.and_then(|c| self.scheduler.get(c).map(|c| c.profile().clone()));
        let (Some(conference), Some(profile)) = (sits, profile) else {
            let reason = "early media: no such caller on this worker".to_string();
            return self.media.report(Report::JoinFailed {
                call: callee,
                reason,
            });
        };
        self.attach(Attach {
            call: callee,
            conference,
            profile,
            flags: EARLY_MEDIA_FLAGS,
            energy_level: None,
        });
    }

    pub(super) fn detach(&mut self, call: CallKey) {
        match self.take_session(call) {
            Some(session) => self.media.report(Report::Detached {
                call,
                session: Box::new(session),
            }),
            None => tracing::debug!(call, "detach: no such call"),
        }
    }

    pub(super) fn adopt(&mut self, mut session: Box<Session>, a: Attach) {
        let call = a.call;
        let registered = self
            .seat(&a, session_member_config(&a, &session))
            .and_then(|seat| {
                session.seat = seat;
                self.register(call, &mut session).inspect_err(|_| {
                    self.release(&session.seat);
                })
            });
        match registered {
            Ok(()) => {
                session.flags = a.flags;
                session.energy_level = a.energy_level;
                let member = session.seat.member;
                // Datagrams that queued while the session travelled are read at once: epoll
                // reports a socket already readable, and a new multishot receive reads it.
                self.media.sessions.insert(call, *session);
                self.media.report(Report::Joined { call, member });
            }
            Err(reason) => self.media.report(Report::JoinFailed { call, reason }),
        }
    }

    pub(super) fn leave(&mut self, call: CallKey) {
        let Some(mut s) = self.take_session(call) else {
            return;
        };
        // What the network did to the call and what the jitter buffer made of it.
        tracing::info!(call, stats = ?s.leg.jitter_stats(), "media ended");
        if let Some(r) = s.recording.take() {
            self.media.report(recorded(call, r));
        }
    }

    /// Takes a call out of this worker: sockets deregistered, seat given up.
    fn take_session(&mut self, call: CallKey) -> Option<Session> {
        let mut s = self.media.sessions.remove(&call)?;
        s.count_into(&self.media.metrics);
        self.deregister(call, &mut s);
        self.unseat(call, &s.seat);
        Some(s)
    }

    /// A member for the call in `a.conference`, opening the conference if needed.
    fn seat(&mut self, a: &Attach, cfg: MemberConfig) -> Result<Seat, String> {
        if self.scheduler.get(a.conference).is_none() {
            let conf = Conference::new(a.profile.clone());
            self.scheduler.insert(a.conference, conf, self.media.now);
        }
        let joined = self
            .with_conf(a.conference, |c, _| c.add_member(cfg))
            .ok_or("conference vanished")?;
        let (member, input) = match joined {
            Ok(ok) => ok,
            Err(e) => {
                self.close_if_empty(a.conference);
                return Err(match e {
                    JoinError::Full { max } => format!("conference full ({max} members)"),
                    e => e.to_string(),
                });
            }
        };
        let calls = self.media.conferences.entry(a.conference).or_default();
        calls.by_member.insert(member, a.call);
        Ok(Seat {
            conference: a.conference,
            member,
            input,
        })
    }

    /// Gives up a seat and tells the control plane the call left the conference.
    fn unseat(&mut self, call: CallKey, seat: &Seat) {
        self.release(seat);
        if !is_lobby(seat.conference) {
            self.media.report(Report::Left {
                call,
                conference: seat.conference,
            });
        }
    }

    /// Gives up a seat; the last call out closes the conference.
    fn release(&mut self, seat: &Seat) {
        let (conference, member) = (seat.conference, seat.member);
        // A member leaving while talking gets its final stop-talking here, and its
        // playbacks their done reports.
        self.with_conf(conference, |c, media| {
            let _ = c.remove_member(member);
            media.forward_events(conference, c);
        });
        if let Some(c) = self.media.conferences.get_mut(&conference) {
            c.by_member.remove(&member);
        }
        self.close_if_empty(conference);
    }

    /// Closes a conference no call is in: its playbacks end, its recordings finish.
    fn close_if_empty(&mut self, id: ConferenceId) {
        let empty = self
            .media
            .conferences
            .get(&id)
            .is_none_or(|c| c.by_member.is_empty());
        if !empty {
            return;
        }
        let media = &mut self.media;
        if let Some(mut conf) = self.scheduler.remove(id) {
            let ids: Vec<u64> = media
                .playbacks
                .iter()
                .filter(|(_, c)| **c == id)
                .map(|(p, _)| *p)
                .collect();
            for p in ids {
                let _ = conf.stop_playback(PlaybackId(p));
            }
            media.forward_events(id, &mut conf);
        }
        // Dropping the recorders lets their writers finish the files.
        media.conferences.remove(&id);
    }

    fn register(&mut self, call: CallKey, s: &mut Session) -> Result<(), String> {
        let io = &mut self.media.io;
        io.register(rtp_token(call), &mut s.rtp)
            .map_err(|e| e.to_string())?;
        if let Some(r) = s.rtcp.as_mut()
            && let Err(e) = io.register(rtcp_token(call), r)
        {
            io.deregister(rtp_token(call), &mut s.rtp);
            return Err(e.to_string());
        }
        Ok(())
    }

    fn deregister(&mut self, call: CallKey, s: &mut Session) {
        self.media.io.deregister(rtp_token(call), &mut s.rtp);
        if let Some(r) = s.rtcp.as_mut() {
            self.media.io.deregister(rtcp_token(call), r);
        }
    }

    /// A re-INVITE: the leg keeps its numbering, its latch (unless the address changed) and
    /// its confirmation; a new codec rate needs a new mixer member.
    pub(super) fn update(&mut self, call: CallKey, cfg: LegConfig, held: bool) {
        let Some(s) = self.media.sessions.get_mut(&call) else {
            return;
        };
        s.held = held;
        let old_rate = s.leg.config().pcm_rate();
        let had_peer = s.leg.last_rx().is_some();
        if let Err(e) = s.leg.reconfigure(cfg) {
            tracing::warn!(call, error = %e, "codec change failed");
        }
        if had_peer && s.leg.last_rx().is_none() {
            // A new address to learn: the RTP timeout starts over.
            s.waiting_since = self.media.now;
        }
        if s.leg.config().pcm_rate() == old_rate {
            self.apply_flags(call);
        } else {
            self.reseat(call);
        }
    }

    /// A codec of another rate needs a member at that rate: same conference, same flags
    /// (with hold), new member. Its own playbacks end; a lobby keeps its mixing rate.
    fn reseat(&mut self, call: CallKey) {
        let Some(s) = self.media.sessions.get(&call) else {
            return;
        };
        let conference = s.seat.conference;
        let Some(profile) = self.scheduler.get(conference).map(|c| c.profile().clone()) else {
            return;
        };
        let a = Attach {
            call,
            conference,
            profile,
            flags: s.flags,
            energy_level: s.energy_level,
        };
        match self.seat(&a, session_member_config(&a, s)) {
            Ok(seat) => {
                if let Some(s) = self.media.sessions.get_mut(&call) {
                    let old = std::mem::replace(&mut s.seat, seat);
                    self.release(&old);
                }
            }
            Err(e) => tracing::warn!(call, error = %e, "codec change: no member at the new rate"),
        }
    }

    /// Pushes the session's flags (with hold on top) to its mixer member.
    pub(super) fn apply_flags(&mut self, call: CallKey) {
        let Some(s) = self.media.sessions.get(&call) else {
            return;
        };
        let (conference, member, flags) = (s.seat.conference, s.seat.member, s.mixer_flags());
        self.with_conf(conference, |c, _| {
            let _ = c.set_flags(member, flags);
        });
    }
}

/// A call's sockets in the worker's I/O: the low bit tells RTCP from RTP (so call handles
/// stay below 2^63, see [`crate::sip::CallId::APP_BIT`]).
fn rtp_token(call: CallKey) -> Token {
    Token((call << 1) as usize)
}

fn rtcp_token(call: CallKey) -> Token {
    Token(((call << 1) | 1) as usize)
}

fn member_config(a: &Attach, rate: u32, held: bool, (talk, listen): (i8, i8)) -> MemberConfig {
    MemberConfig {
        rate,
        flags: with_hold(a.flags, held),
        energy_level: a.energy_level,
        talk_volume: talk,
        listen_volume: listen,
    }
}

/// A moving call keeps its hold and volumes.
fn session_member_config(a: &Attach, s: &Session) -> MemberConfig {
    let rate = s.leg.config().pcm_rate();
    member_config(a, rate, s.held, (s.talk_volume, s.listen_volume))
}

/// Without rtcp-mux the peer sends RTCP to port + 1, so that socket is read too.
fn mio_sockets(
    sockets: RtpSockets,
    rtcp_mux: bool,
) -> std::io::Result<(UdpSocket, Option<UdpSocket>, PortLease)> {
    let setup = |s: std::net::UdpSocket| -> std::io::Result<UdpSocket> {
        s.set_nonblocking(true)?;
        Ok(UdpSocket::from_std(s))
    };
    let rtcp = if rtcp_mux {
        None
    } else {
        Some(setup(sockets.rtcp)?)
    };
    Ok((setup(sockets.rtp)?, rtcp, sockets.lease))
}
