//! Acting on live calls: playback, member flags, energy, volume, relations, snapshots.

use mixer::source::Source;
use mixer::{ConferenceId, PlaybackId, PlaybackTarget, Relation};

use super::seating::is_lobby;
use super::{CallKey, MemberState, Report, Target, Worker};

impl Worker {
    pub(super) fn play(&mut self, target: Target, id: u64, sound: Box<dyn Source>) {
        let placed = match target {
            Target::Call(call) => self.media.sessions.get(&call).map(|s| {
                let to = PlaybackTarget::Member(s.seat.member);
                (s.seat.conference, to)
            }),
            Target::Conference(c) => Some((c, PlaybackTarget::All)),
        };
        let started = placed.and_then(|(conference, to)| {
            self.with_conf(conference, |c, _| c.play(PlaybackId(id), to, sound))?
                .ok()
                .map(|()| conference)
        });
        match started {
            Some(conference) => {
                self.media.playbacks.insert(id, conference);
            }
            None => {
                // The control plane waits for this id to finish; it never started.
                tracing::debug!(id, ?target, "playback target not on this worker");
                self.media
                    .report(Report::PlaybackDone { id, stopped: true });
            }
        }
    }

    pub(super) fn stop_playback(&mut self, id: u64) {
        let Some(&conference) = self.media.playbacks.get(&id) else {
            tracing::debug!(id, "stop: no such playback");
            return;
        };
        self.with_conf(conference, |c, media| {
            let _ = c.stop_playback(PlaybackId(id));
            media.forward_events(conference, c);
        });
    }

    pub(super) fn set_flags(&mut self, call: CallKey, speak: bool, hear: bool) {
        let Some(s) = self.media.sessions.get_mut(&call) else {
            tracing::debug!(call, "set flags: no such call");
            return;
        };
        s.flags.speak = speak;
        s.flags.hear = hear;
        self.apply_flags(call);
    }

    pub(super) fn send_dtmf(&mut self, call: CallKey, digit: char) {
        let sent = self
            .media
            .sessions
            .get_mut(&call)
            .is_some_and(|s| s.leg.send_dtmf(digit));
        if !sent {
            tracing::debug!(call, %digit, "dtmf not sent: no such call or no telephone-event");
        }
    }

    pub(super) fn set_energy_level(&mut self, call: CallKey, level: Option<u32>) {
        let Some(s) = self.media.sessions.get(&call) else {
            tracing::debug!(call, "energy level: no such call");
            return;
        };
        let (conference, member) = (s.seat.conference, s.seat.member);
        match self.with_conf(conference, |c, _| c.set_energy_level(member, level)) {
            Some(Ok(())) => {
                if let Some(s) = self.media.sessions.get_mut(&call) {
                    s.energy_level = level;
                }
            }
            Some(Err(e)) => tracing::debug!(call, error = %e, "energy level"),
            None => {}
        }
    }

    pub(super) fn set_volume(&mut self, call: CallKey, talk: Option<i8>, listen: Option<i8>) {
        let Some(s) = self.media.sessions.get_mut(&call) else {
            tracing::debug!(call, "volume: no such call");
            return;
        };
        s.talk_volume = talk.map_or(s.talk_volume, mixer::member::clamp_step);
        s.listen_volume = listen.map_or(s.listen_volume, mixer::member::clamp_step);
        let (conference, member) = (s.seat.conference, s.seat.member);
        let (talk, listen) = (s.talk_volume, s.listen_volume);
        self.with_conf(conference, |c, _| {
            let _ = c.set_talk_volume(member, talk);
            let _ = c.set_listen_volume(member, listen);
        });
    }

    pub(super) fn relate(&mut self, a: CallKey, b: CallKey, hear: bool, speak: bool) {
        let seat = |call| self.media.sessions.get(&call).map(|s| &s.seat);
        let (Some(sa), Some(sb)) = (seat(a), seat(b)) else {
            tracing::debug!(a, b, "relate: call not on this worker");
            return;
        };
        if sa.conference != sb.conference || is_lobby(sa.conference) {
            tracing::debug!(a, b, "relate: calls not in one conference");
            return;
        }
        let (conference, ma, mb) = (sa.conference, sa.member, sb.member);
        self.with_conf(conference, |c, _| {
            let _ = c.relate(ma, mb, Relation { hear, speak });
        });
    }

    pub(super) fn snapshot(&self, conference: ConferenceId) -> Vec<MemberState> {
        let (Some(conf), Some(calls)) = (
            self.scheduler.get(conference),
            self.media.conferences.get(&conference),
        ) else {
            return Vec::new();
        };
        let mut members: Vec<MemberState> = calls
            .by_member
            .iter()
            .filter_map(|(&member, call)| {
                let s = self.media.sessions.get(call)?;
                Some(MemberState {
                    call: *call,
                    member,
                    speak: s.flags.speak,
                    hear: s.flags.hear,
                    held: s.held,
                    moderator: s.flags.moderator,
                    talking: conf.member_talking(member).unwrap_or(false),
                    energy: conf.member_energy(member).unwrap_or(0),
                    energy_level: conf.energy_level(member).unwrap_or(0),
                    talk_volume: s.talk_volume,
                    listen_volume: s.listen_volume,
                    latency: s.latency(),
                })
            })
            .collect();
        members.sort_by_key(|m| m.member);
        members
    }
}
