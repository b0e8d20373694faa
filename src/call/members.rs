//! Conference membership: joining (entry sounds, hold music while alone, waiting for a
//! moderator), caller controls, leaving (exit sounds, the end of the conference).

use std::time::{Duration, Instant};

use mixer::MemberFlags;

use crate::api::events::EventName;
use crate::api::service::ConfRef;
use crate::conference::controls::{self, DigitMatcher};
use crate::conference::document::BEEP;
use crate::conference::flow::JoinDecision;
use crate::conference::profile;
use crate::conference::vocabulary::{Action, Role, Step, Toggle};
use crate::media::worker::{Attach, Command, Target as PlayTarget};
use crate::sip::CallId;

use super::announce_count;
use super::live::{Live, Member};
use super::output::{MediaCommand, Output, Sound};
use super::plane::{CallPlane, Claiming, Stage};

/// FreeSWITCH's energy step for `energy up` / `energy dn`.
const ENERGY_STEP: u32 = 200;
const ENERGY_MAX: u32 = 1800;

impl CallPlane {
    /// Puts a caller who passed the flow (or a dialed leg) into conference `id`, opening
    /// it if needed.
    pub(super) fn join(&mut self, call: CallId, id: ConfRef, decision: JoinDecision, now: Instant) {
        let Some(config) = self.calls.get(&call).map(|c| c.config.clone()) else {
            return;
        };
        if !self.hosts(call, &id) {
            let waiting = Claiming::Join(Box::new(decision));
            return self.wait_for_claim(call, id, waiting, now);
        }
        if !self.conferences.contains_key(&id) && !self.open_conference(&id, &decision, call, now) {
            return self.hang_up(call, now);
        }
        let joined_at = self.wall(now);
        let Some(live) = self.conferences.get_mut(&id) else {
            return;
        };
        let group = match decision.role {
            Role::Member => &live.profile.caller_controls,
            Role::Moderator => &live.profile.moderator_controls,
        };
        let bindings = controls::group(group, &live.doc, &config);
        let member = Member {
            flags: decision.flags,
            waiting: live.must_wait(decision.role),
            exit_sounds: decision.exit_sounds.clone(),
            controls: DigitMatcher::new(bindings),
            energy_level: None,
            talk_volume: 0,
            listen_volume: 0,
            talking: false,
            energy: 0,
            latency: None,
            member_id: None,
            joined_at,
            moh: None,
        };
        let attach = Attach {
            call: call.0,
            conference: live.key,
            profile: live.profile.mixer.clone(),
            flags: MemberFlags {
                speak: member.speaks(),
                hear: member.hears(),
                moderator: decision.flags.moderator,
            },
            energy_level: None,
        };
        live.members.insert(call, member);
        let worker = live.worker;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        tracing::info!(call = %c.party.sip_call_id, conference = %id, role = ?decision.role, "joins");
        if c.worker == worker {
            c.stage = Stage::Member(id.clone());
            self.command_to(worker, Command::Attach(Box::new(attach)));
            self.after_join(&id, call, &decision, now);
        } else {
            // Its media waits in another worker's lobby: detach it there, adopt it here.
            c.stage = Stage::Moving(id.clone());
            let lobby = c.worker;
            self.command_to(lobby, Command::Detach { call: call.0 });
            self.moving
                .insert(call, (Box::new(attach), Box::new(decision)));
        }
    }

    /// Opens the conference `call` is the first to join: its profile, its worker, its
    /// status hook (owned by this starter), and its conference-create event.
    fn open_conference(
        &mut self,
        id: &ConfRef,
        decision: &JoinDecision,
        call: CallId,
        now: Instant,
    ) -> bool {
        let Some(config) = self.calls.get(&call).map(|c| &c.config) else {
            return false;
        };
        let resolved = match profile::resolve(&decision.doc, config, None) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(conference = %decision.conference_id, error = %e, "bad profile");
                return false;
            }
        };
        let key = self.conference_key();
        let worker = self.worker_of(&decision.conference_id);
        self.push(Output::Prefetch {
            media: resolved.sounds.values().cloned().collect(),
            language: resolved.language.clone(),
            account: id.account.clone(),
        });
        let started_at = self.wall(now);
        let live = Live::new(key, worker, decision.doc.clone(), resolved, started_at);
        self.conferences.insert(id.clone(), live);
        tracing::info!(conference = %id, "conference opened");
        self.register_hook(id, call);
        self.publish(id, EventName::ConferenceCreate, None, now);
        true
    }

    /// The sounds of a join: to the joiner (with the count, under `announce-count`), to
    /// everyone, hold music while alone, and the release of members who waited for this
    /// moderator; the starter of a recorded conference starts its recording.
    pub(super) fn after_join(
        &mut self,
        id: &ConfRef,
        call: CallId,
        decision: &JoinDecision,
        now: Instant,
    ) {
        let Some(live) = self.conferences.get(id) else {
            return;
        };
        let count = live.members.len();
        let waiting = live.members.get(&call).is_some_and(|m| m.waiting);
        // One playback for the joiner, so the count follows the enter sound, not over it.
        let mut to_joiner: Vec<String> = live.sound("member-enter-sound").into_iter().collect();
        if !waiting
            && let Some(n) = live.profile.mixer.announce_count()
            && count >= n as usize
        {
            to_joiner.extend(announce_count::prompts(count - 1));
        }
        if !to_joiner.is_empty() {
            self.play(id, PlayTarget::Call(call.0), &to_joiner);
        }
        if waiting {
            self.start_waiting(id, call);
        } else if count > 1 {
            self.play(
                id,
                PlayTarget::Conference(self.key_of(id)),
                &decision.entry_sounds,
            );
        }
        if decision.doc.beep() {
            self.play(
                id,
                PlayTarget::Conference(self.key_of(id)),
                &[BEEP.to_string()],
            );
        }
        if decision.flags.moderator {
            self.release_waiting(id);
        }
        if count == 1 && decision.doc.records() {
            self.record(id, decision.doc.record_path(), now);
        }
        self.alone_or_together(id);
    }

    /// Hold music plays to a member alone in the conference and stops once someone joins.
    fn alone_or_together(&mut self, id: &ConfRef) {
        let Some(live) = self.conferences.get(id) else {
            return;
        };
        let mixed: Vec<CallId> = live
            .members
            .iter()
            .filter(|(_, m)| !m.waiting)
            .map(|(c, _)| *c)
            .collect();
        if let [alone] = mixed.as_slice() {
            if live.members[alone].moh.is_none() {
                let alone_sound = live.sound("alone-sound");
                self.start_moh(id, *alone, alone_sound);
            }
        } else {
            for call in mixed {
                self.stop_moh(id, call);
            }
        }
    }

    fn release_waiting(&mut self, id: &ConfRef) {
        let Some(live) = self.conferences.get_mut(id) else {
            return;
        };
        let waiting = live.waiting();
        for call in &waiting {
            if let Some(m) = live.members.get_mut(call) {
                m.waiting = false;
            }
        }
        for call in waiting {
            self.stop_moh(id, call);
            self.push_flags(id, call);
        }
    }

    /// Hold music to one member, after `first` (the alone prompt) when given: one
    /// playback, so a joiner stops both.
    pub(super) fn start_moh(&mut self, id: &ConfRef, call: CallId, first: Option<String>) {
        let Some(live) = self.conferences.get(id) else {
            return;
        };
        let looping = live.sound("moh-sound");
        let nomoh = live.members.get(&call).is_some_and(|m| m.flags.nomoh);
        if nomoh || (first.is_none() && looping.is_none()) {
            return;
        }
        self.hold(id, call, first.into_iter().collect(), looping);
    }

    /// Plays `media`, then `looping`, to one member as what it hears on hold (stopped
    /// when it joins the others or stops waiting).
    pub(super) fn hold(
        &mut self,
        id: &ConfRef,
        call: CallId,
        media: Vec<String>,
        looping: Option<String>,
    ) {
        let Some(live) = self.conferences.get(id) else {
            return;
        };
        let sound = Sound {
            media,
            looping,
            language: live.profile.language.clone(),
            account: id.account.clone(),
            voice: live.profile.tts_voice().map(str::to_string),
            rate: live.profile.mixer.rate(),
        };
        let worker = live.worker;
        let playback = self.new_id();
        if let Some(m) = self
            .conferences
            .get_mut(id)
            .and_then(|l| l.members.get_mut(&call))
        {
            m.moh = Some(playback);
        }
        let target = PlayTarget::Call(call.0);
        self.media(
            worker,
            MediaCommand::Play {
                target,
                id: playback,
                sound,
            },
        );
    }

    /// Hold music that ended (it could not play, it ran out, or its member left) is off;
    /// whose it was, if anyone's.
    pub(super) fn moh_done(&mut self, playback: u64) -> Option<(ConfRef, CallId)> {
        self.conferences.iter_mut().find_map(|(conf, live)| {
            let (call, m) = live
                .members
                .iter_mut()
                .find(|(_, m)| m.moh == Some(playback))?;
            m.moh = None;
            Some((conf.clone(), *call))
        })
    }

    fn stop_moh(&mut self, id: &ConfRef, call: CallId) {
        let Some(live) = self.conferences.get_mut(id) else {
            return;
        };
        let worker = live.worker;
        if let Some(playback) = live.members.get_mut(&call).and_then(|m| m.moh.take()) {
            self.command_to(worker, Command::StopPlayback { id: playback });
        }
    }

    /// Plays sounds in a conference (to everyone, or one member), at the conference rate.
    pub(super) fn play(&mut self, id: &ConfRef, target: PlayTarget, media: &[String]) {
        let Some(live) = self.conferences.get(id) else {
            return;
        };
        if media.is_empty() {
            return;
        }
        let sound = Sound {
            media: media.to_vec(),
            looping: None,
            language: live.profile.language.clone(),
            account: id.account.clone(),
            voice: live.profile.tts_voice().map(str::to_string),
            rate: live.profile.mixer.rate(),
        };
        let worker = live.worker;
        let playback = self.new_id();
        self.media(
            worker,
            MediaCommand::Play {
                target,
                id: playback,
                sound,
            },
        );
    }

    fn key_of(&self, id: &ConfRef) -> mixer::ConferenceId {
        self.conferences[id].key
    }

    /// Tells the worker what the member may do now (mute, deaf, waiting).
    fn push_flags(&mut self, id: &ConfRef, call: CallId) {
        let Some(live) = self.conferences.get(id) else {
            return;
        };
        if let Some(m) = live.members.get(&call) {
            let cmd = Command::SetFlags {
                call: call.0,
                speak: m.speaks(),
                hear: m.hears(),
            };
            self.command_to(live.worker, cmd);
        }
    }

    /// The mixer confirmed the join: the member is announced with its member id.
    pub(super) fn on_joined(&mut self, call: CallId, member: u32, now: Instant) {
        let Some(m) = self.member_mut(call) else {
            return;
        };
        m.member_id = Some(member);
        if let Some(Stage::Member(id)) = self.calls.get(&call).map(|c| &c.stage) {
            let id = id.clone();
            self.relate_tags(&id, call);
            self.publish(&id, EventName::AddMember, Some(call), now);
        }
    }

    /// jambonz `memberTag` / `speakOnlyTo`: a member whose role has `speak_only_to: T` is
    /// heard only by members whose role's `member_tag` is T; set between the joiner and
    /// every member confirmed before it.
    fn relate_tags(&mut self, id: &ConfRef, joiner: CallId) {
        let Some(live) = self.conferences.get(id) else {
            return;
        };
        let role = |m: &Member| match m.flags.moderator {
            true => Role::Moderator,
            false => Role::Member,
        };
        let Some(new) = live.members.get(&joiner) else {
            return;
        };
        let doc = &live.doc;
        let (new_tag, new_only) = (doc.member_tag(role(new)), doc.speak_only_to(role(new)));
        let hears = |only: Option<&str>, tag: Option<&str>| only.is_none_or(|o| tag == Some(o));
        let relations: Vec<Command> = live
            .members
            .iter()
            .filter(|(c, m)| **c != joiner && m.member_id.is_some())
            .filter_map(|(other, m)| {
                let (tag, only) = (doc.member_tag(role(m)), doc.speak_only_to(role(m)));
                let hear = hears(only, new_tag);
                let speak = hears(new_only, tag);
                (!hear || !speak).then_some(Command::Relate {
                    a: joiner.0,
                    b: other.0,
                    hear,
                    speak,
                })
            })
            .collect();
        let worker = live.worker;
        for command in relations {
            self.command_to(worker, command);
        }
    }

    pub(super) fn on_talking(&mut self, call: CallId, talking: bool, energy: u32, now: Instant) {
        if let Some(m) = self.member_mut(call) {
            m.talking = talking;
            m.energy = energy;
        }
        if let Some(Stage::Member(id)) = self.calls.get(&call).map(|c| &c.stage) {
            let name = if talking {
                EventName::StartTalking
            } else {
                EventName::StopTalking
            };
            self.publish(&id.clone(), name, Some(call), now);
        }
    }

    pub(super) fn on_latency(&mut self, call: CallId, latency: Duration) {
        if let Some(m) = self.member_mut(call) {
            m.latency = Some(latency);
        }
    }

    fn member_mut(&mut self, call: CallId) -> Option<&mut Member> {
        let Stage::Member(id) = &self.calls.get(&call)?.stage else {
            return None;
        };
        self.conferences.get_mut(id)?.members.get_mut(&call)
    }

    /// A member's digit: its caller controls, or for a `dist-dtmf` member, sent on to
    /// every other member (an IVR or a bridge behind the conference hears it).
    pub(super) fn member_digit(&mut self, id: &ConfRef, call: CallId, digit: char, now: Instant) {
        let Some(live) = self.conferences.get_mut(id) else {
            return;
        };
        let Some(m) = live.members.get_mut(&call) else {
            return;
        };
        if m.flags.dist_dtmf {
            let worker = live.worker;
            let others: Vec<CallId> = live
                .members
                .keys()
                .filter(|&&c| c != call)
                .copied()
                .collect();
            for other in others {
                let cmd = Command::SendDtmf {
                    call: other.0,
                    digit,
                };
                self.command_to(worker, cmd);
            }
            return;
        }
        let action = m.controls.feed(now, digit);
        if let Some(action) = action {
            self.apply_control(id, call, action, now);
        }
    }

    /// Applies a caller control (Kazoo's action vocabulary) to the member.
    pub(super) fn apply_control(
        &mut self,
        id: &ConfRef,
        call: CallId,
        action: Action,
        now: Instant,
    ) {
        let Some(live) = self.conferences.get_mut(id) else {
            return;
        };
        let (worker, locked) = (live.worker, live.locked);
        let Some(m) = live.members.get_mut(&call) else {
            return;
        };
        let (mute, deaf) = (m.flags.mute, m.flags.deaf);
        match action {
            Action::Mute(t) => self.set_member(id, call, (Some(toggle(mute, t)), None), now),
            Action::Deaf(t) => self.set_member(id, call, (None, Some(toggle(deaf, t))), now),
            Action::DeafMute => self.set_member(id, call, (Some(true), Some(true)), now),
            Action::Energy(step) => {
                let now = m.energy_level.unwrap_or(0);
                let level = match step {
                    Step::Up => Some(now.saturating_add(ENERGY_STEP).min(ENERGY_MAX)),
                    Step::Down => Some(now.saturating_sub(ENERGY_STEP)),
                    Step::Reset => None,
                };
                m.energy_level = level;
                self.command_to(
                    worker,
                    Command::SetEnergyLevel {
                        call: call.0,
                        level,
                    },
                );
            }
            Action::TalkVolume(step) => {
                m.talk_volume = volume(m.talk_volume, step);
                let (talk, listen) = (Some(m.talk_volume), None);
                self.command_to(
                    worker,
                    Command::SetVolume {
                        call: call.0,
                        talk,
                        listen,
                    },
                );
            }
            Action::ListenVolume(step) => {
                m.listen_volume = volume(m.listen_volume, step);
                let (talk, listen) = (None, Some(m.listen_volume));
                self.command_to(
                    worker,
                    Command::SetVolume {
                        call: call.0,
                        talk,
                        listen,
                    },
                );
            }
            Action::Lock => self.set_locked(id, !locked, now),
            Action::Hangup => self.hang_up(call, now),
        }
    }

    /// Mutes/unmutes and deafens/undeafens a member (caller control or API): the mixer
    /// follows at once, the member hears the matching prompt, and the change is announced.
    pub(super) fn set_member(
        &mut self,
        id: &ConfRef,
        call: CallId,
        (mute, deaf): (Option<bool>, Option<bool>),
        now: Instant,
    ) {
        let Some(m) = self
            .conferences
            .get_mut(id)
            .and_then(|l| l.members.get_mut(&call))
        else {
            return;
        };
        let mut changes = Vec::new();
        if let Some(mute) = mute.filter(|&v| v != m.flags.mute) {
            m.flags.mute = mute;
            changes.push(if mute {
                ("muted-sound", EventName::MuteMember)
            } else {
                ("unmuted-sound", EventName::UnmuteMember)
            });
        }
        if let Some(deaf) = deaf.filter(|&v| v != m.flags.deaf) {
            m.flags.deaf = deaf;
            changes.push(if deaf {
                ("deaf-sound", EventName::DeafMember)
            } else {
                ("undeaf-sound", EventName::UndeafMember)
            });
        }
        if changes.is_empty() {
            return;
        }
        self.push_flags(id, call);
        let media: Vec<String> = changes
            .iter()
            .filter_map(|(k, _)| self.conferences.get(id).and_then(|l| l.sound(k)))
            .collect();
        self.play(id, PlayTarget::Call(call.0), &media);
        for (_, event) in changes {
            self.publish(id, event, Some(call), now);
        }
    }

    /// A member left (hung up, kicked, timed out): exit sounds, hold music for one left
    /// alone, and the end of the conference when its last `endconf` member goes.
    pub(super) fn member_left(&mut self, id: &ConfRef, call: CallId, now: Instant) {
        // The leaver is described while still listed; the event counts it out.
        let leaver = self
            .conferences
            .get(id)
            .and_then(|live| self.participant(&id.account, live, call));
        let Some(live) = self.conferences.get_mut(id) else {
            return;
        };
        let Some(gone) = live.members.remove(&call) else {
            return;
        };
        if live.private {
            // A bridge: the other call ends with this one.
            let rest: Vec<_> = live.members.keys().copied().collect();
            if rest.is_empty() {
                self.conferences.remove(id);
                // A relayed caller gone before the focus node answered.
                self.abandon_relay(id, now);
            }
            for other in rest {
                self.hang_up(other, now);
            }
            return;
        }
        self.publish_about(id, EventName::DelMember, leaver, now);
        let Some(live) = self.conferences.get_mut(id) else {
            return;
        };
        if live.members.is_empty() {
            // The webhook dispatcher forgets the hook on this event, after delivering.
            self.publish(id, EventName::ConferenceDestroy, None, now);
            self.conferences.remove(id);
            tracing::info!(conference = %id, "conference closed");
            return;
        }
        if gone.flags.endconf && !live.has_endconf() {
            let grace = Duration::from_secs(live.doc.end_conference_duration_s().unwrap_or(0));
            live.ending_at = Some(now + grace);
        }
        let key = live.key;
        self.play(id, PlayTarget::Conference(key), &gone.exit_sounds);
        self.alone_or_together(id);
    }

    /// Ends conferences whose grace time after the last `endconf` member ran out, and
    /// fires caller-control timeouts (a binding that is a prefix of another).
    pub(super) fn conference_timers(&mut self, now: Instant) {
        let ending: Vec<ConfRef> = self
            .conferences
            .iter()
            .filter(|(_, l)| l.ending_at.is_some_and(|t| t <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ending {
            tracing::info!(conference = %id, "the last endconf member left: ending");
            let calls: Vec<CallId> = self.conferences[&id].members.keys().copied().collect();
            for call in calls {
                self.hang_up(call, now);
            }
        }
        let mut fired = Vec::new();
        for (id, live) in self.conferences.iter_mut() {
            for (call, m) in live.members.iter_mut() {
                if m.controls.poll_timeout().is_some_and(|t| t <= now)
                    && let Some(action) = m.controls.handle_timeout(now)
                {
                    fired.push((id.clone(), *call, action));
                }
            }
        }
        for (id, call, action) in fired {
            self.apply_control(&id, call, action, now);
        }
    }
}

fn toggle(state: bool, t: Toggle) -> bool {
    match t {
        Toggle::Toggle => !state,
        Toggle::On => true,
        Toggle::Off => false,
    }
}

/// FreeSWITCH's volume steps, -4..=4.
fn volume(v: i8, step: Step) -> i8 {
    match step {
        Step::Up => (v + 1).min(4),
        Step::Down => (v - 1).max(-4),
        Step::Reset => 0,
    }
}
