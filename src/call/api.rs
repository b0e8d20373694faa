//! The call plane's side of the REST API (`api::service`): live state from the running
//! conferences, actions applied to the live media at once, and the conference events it
//! publishes for WebSocket clients and status webhooks. Documents and files are the
//! shell's (`super::shell`).

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde_json::json;

use crate::api::events::{ConferenceEvent, EventName};
use crate::api::service::{
    self as svc, CallInfo, ConfRef, ConferenceAction, ParticipantAction, RecordAction,
    Relationship, ServiceError, Target,
};
use crate::api::webhooks::{StatusEvent, StatusHook};
use crate::media::worker::{Command, Target as PlayTarget};
use crate::sip::CallId;

use super::live::Live;
use super::output::Output;
use super::plane::CallPlane;

impl CallPlane {
    /// A running conference of this account; another account's is not found.
    pub fn live_of(&self, conf: &ConfRef) -> Result<&Live, ServiceError> {
        self.conferences
            .get(conf)
            .filter(|l| !l.private)
            .ok_or_else(|| ServiceError::NotFound(conf.id.clone()))
    }

    /// A running conference as the API shows it.
    pub fn live_state(&self, account: &str, id: &str) -> Option<svc::Live> {
        let conf = ConfRef {
            account: account.into(),
            id: id.into(),
        };
        let live = self.live_of(&conf).ok()?;
        Some(svc::Live {
            uuid: format!("{:016x}", live.key.0),
            started_at: live.started_at,
            is_locked: live.locked,
            participants: live
                .members
                .keys()
                .filter_map(|c| self.participant(account, live, *c))
                .collect(),
        })
    }

    /// A member as the API shows it; members the mixer has not confirmed yet are left out.
    pub(super) fn participant(
        &self,
        account: &str,
        live: &Live,
        call: CallId,
    ) -> Option<svc::Participant> {
        let m = live.members.get(&call)?;
        let c = self.calls.get(&call)?;
        let from = c.party.from.uri.trim_start_matches("sip:").to_string();
        Some(svc::Participant {
            call_id: c.party.sip_call_id.clone(),
            participant_id: m.member_id?,
            joined_at: m.joined_at,
            caller_id_name: c.party.from.display_name.clone().unwrap_or_default(),
            caller_id_number: c.party.from.user.clone().unwrap_or_default(),
            custom_channel_vars: custom_channel_vars(account, &c.party.vars),
            custom_application_vars: json!({}),
            is_moderator: m.flags.moderator,
            floor: m.talking,
            video: false,
            see: false,
            speak: !m.flags.mute,
            hear: !m.flags.deaf,
            talking: m.talking,
            mute_detect: false,
            energy_level: m.energy_level.unwrap_or(live.profile.mixer.energy_level()),
            current_energy: m.energy,
            latency_ms: m.latency.map(|d| d.as_millis() as u32),
            member_ghost: false,
            call: CallInfo {
                direction: c.party.direction.as_str().into(),
                from,
                to: live.doc.name().unwrap_or_default().to_string(),
                sip_status: 200,
                call_status: "in-progress".into(),
            },
        })
    }

    /// A conference action. Media to play was checked by the shell, and a recording's
    /// folder ([`recording_dir`]) made.
    pub fn conference_action(
        &mut self,
        conf: &ConfRef,
        action: ConferenceAction,
        now: Instant,
    ) -> Result<(), ServiceError> {
        let (key, worker) = self.live_of(conf).map(|l| (l.key, l.worker))?;
        match action {
            ConferenceAction::Lock | ConferenceAction::Unlock => {
                let locked = action == ConferenceAction::Lock;
                self.set_locked(conf, locked, now);
            }
            ConferenceAction::Play { media_id } => {
                self.play(conf, PlayTarget::Conference(key), &[media_id]);
            }
            ConferenceAction::Record(RecordAction::Start) => self.record(conf, None, now),
            ConferenceAction::Record(RecordAction::Stop) => {
                if let Some(id) = self.conference_recordings.remove(conf) {
                    self.command_to(worker, Command::StopRecording { id });
                }
            }
        }
        Ok(())
    }

    /// Records the conference into its folder ([`recording_dir`]) as `{name}-{ms since
    /// 1970}.wav`, the conference id by default (a later run never overwrites it).
    pub(super) fn record(&mut self, conf: &ConfRef, name: Option<&str>, now: Instant) {
        let Some((key, worker)) = self.conferences.get(conf).map(|l| (l.key, l.worker)) else {
            return;
        };
        let stamp = self
            .wall(now)
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let file = format!("{}-{stamp}.wav", path_component(name.unwrap_or(&conf.id)));
        let path = recording_dir(&self.settings.recordings, conf).join(file);
        let id = self.new_id();
        self.conference_recordings.insert(conf.clone(), id);
        let conference = key;
        self.command_to(
            worker,
            Command::RecordConference {
                conference,
                path,
                id,
            },
        );
    }

    /// Locks or unlocks (API or caller control), announcing it.
    pub(super) fn set_locked(&mut self, id: &ConfRef, locked: bool, now: Instant) {
        let Some(live) = self.conferences.get_mut(id) else {
            return;
        };
        if live.locked != locked {
            live.locked = locked;
            let name = if locked {
                EventName::Lock
            } else {
                EventName::Unlock
            };
            self.publish(id, name, None, now);
        }
    }

    /// A participant action. Media to play was checked by the shell.
    pub fn participant_action(
        &mut self,
        conf: &ConfRef,
        target: Target,
        action: ParticipantAction,
        now: Instant,
    ) -> Result<(), ServiceError> {
        let live = self.live_of(conf)?;
        let calls: Vec<(CallId, bool)> = match target {
            Target::All => live
                .members
                .iter()
                .map(|(c, m)| (*c, m.flags.moderator))
                .collect(),
            Target::One(pid) => {
                let found = live
                    .members
                    .iter()
                    .find(|(_, m)| m.member_id == Some(pid))
                    .map(|(c, m)| (*c, m.flags.moderator));
                vec![found.ok_or_else(|| ServiceError::NotFound(pid.to_string()))?]
            }
        };
        // Bulk mute/unmute/deaf/undeaf leave moderators alone; a kick takes everyone.
        let bulk = target == Target::All;
        for (call, moderator) in calls {
            match &action {
                ParticipantAction::Kick => self.hang_up(call, now),
                ParticipantAction::Play { media_id } => {
                    self.play(
                        conf,
                        PlayTarget::Call(call.0),
                        std::slice::from_ref(media_id),
                    );
                }
                _ if bulk && moderator => {}
                ParticipantAction::Mute => self.set_member(conf, call, (Some(true), None), now),
                ParticipantAction::Unmute => self.set_member(conf, call, (Some(false), None), now),
                ParticipantAction::Deaf => self.set_member(conf, call, (None, Some(true)), now),
                ParticipantAction::Undeaf => self.set_member(conf, call, (None, Some(false)), now),
            }
        }
        Ok(())
    }

    pub fn relate(&mut self, conf: &ConfRef, relate: svc::Relate) -> Result<(), ServiceError> {
        let live = self.live_of(conf)?;
        let find = |pid: u32| {
            live.members
                .iter()
                .find(|(_, m)| m.member_id == Some(pid))
                .map(|(c, _)| *c)
                .ok_or_else(|| ServiceError::NotFound(pid.to_string()))
        };
        let (a, b) = (
            find(relate.participant_id)?,
            find(relate.other_participant)?,
        );
        // FreeSWITCH relate: `deaf` = a does not hear b (nohear), `mute` = b does not hear a.
        let (hear, speak) = match relate.relationship {
            Relationship::Deaf => (false, true),
            Relationship::Mute => (true, false),
            Relationship::Clear => (true, true),
        };
        let cmd = Command::Relate {
            a: a.0,
            b: b.0,
            hear,
            speak,
        };
        let worker = live.worker;
        self.command_to(worker, cmd);
        Ok(())
    }

    /// Publishes a conference event (for WebSocket subscribers and status webhooks).
    pub(super) fn publish(
        &mut self,
        id: &ConfRef,
        name: EventName,
        call: Option<CallId>,
        now: Instant,
    ) {
        let participant =
            call.and_then(|c| self.participant(&id.account, self.conferences.get(id)?, c));
        self.publish_about(id, name, participant, now);
    }

    /// Publishes an event about `participant`, who may have left already.
    pub(super) fn publish_about(
        &mut self,
        id: &ConfRef,
        name: EventName,
        participant: Option<svc::Participant>,
        now: Instant,
    ) {
        self.publish_with(id, name, participant, None, now);
    }

    /// The shell's report that media played to `target` could not be had: a `play-failed`
    /// event for its conference (about the member, for one played to a member).
    pub fn handle_play_failed(
        &mut self,
        target: PlayTarget,
        media: String,
        error: String,
        now: Instant,
    ) {
        let found = self.conferences.iter().find_map(|(id, live)| match target {
            PlayTarget::Conference(key) if live.key == key => Some((id.clone(), None)),
            PlayTarget::Call(call) if live.members.contains_key(&CallId(call)) => {
                Some((id.clone(), Some(CallId(call))))
            }
            _ => None,
        });
        let Some((id, call)) = found else {
            return;
        };
        let participant =
            call.and_then(|c| self.participant(&id.account, &self.conferences[&id], c));
        let failure = Some((media, error));
        self.publish_with(&id, EventName::PlayFailed, participant, failure, now);
    }

    fn publish_with(
        &mut self,
        id: &ConfRef,
        name: EventName,
        participant: Option<svc::Participant>,
        failure: Option<(String, String)>,
        now: Instant,
    ) {
        let Some(live) = self.conferences.get(id).filter(|l| !l.private) else {
            return;
        };
        let event = ConferenceEvent {
            name,
            account_id: id.account.clone(),
            conference_id: id.id.clone(),
            conference_name: live.doc.name().unwrap_or(&id.id).to_string(),
            instance_id: format!("{:016x}", live.key.0),
            profile: live.profile.name.clone(),
            // The engine's count: members the mixer has confirmed.
            members: live
                .members
                .values()
                .filter(|m| m.member_id.is_some())
                .count() as u32,
            started_at: live.started_at,
            at: self.wall(now),
            participant,
            msg_id: uuid::Uuid::new_v4().simple().to_string(),
            failure,
        };
        self.push(Output::Event(Box::new(event)));
    }

    /// Registers the conference's status hook (jambonz statusHook), owned by its starter,
    /// and its action hook.
    pub(super) fn register_hook(&mut self, id: &ConfRef, starter: CallId) {
        let Some(live) = self.conferences.get(id) else {
            return;
        };
        let (status, action) = (live.doc.status_hook(), live.doc.action_hook());
        let hook = (status.is_some() || action.is_some()).then(|| StatusHook {
            url: status.unwrap_or_default().to_string(),
            action_url: action.map(str::to_owned),
            events: live
                .doc
                .status_events()
                .into_iter()
                .filter_map(StatusEvent::parse)
                .collect(),
            owner_call_id: self
                .calls
                .get(&starter)
                .map(|c| c.party.sip_call_id.clone()),
        });
        if let Some(hook) = hook {
            let (account, id) = (id.account.clone(), id.id.clone());
            self.push(Output::Hook { account, id, hook });
        }
    }
}

/// Kazoo's `Custom-Channel-Vars`: the call's own (its `X-` headers), then the account.
fn custom_channel_vars(account: &str, vars: &[(String, String)]) -> serde_json::Value {
    let mut map: serde_json::Map<String, serde_json::Value> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    map.insert("Account-ID".into(), account.into());
    serde_json::Value::Object(map)
}

/// `{recordings}/{account}/{conference}`: an account only ever reaches its own folder.
pub fn recording_dir(recordings: &Path, conf: &ConfRef) -> PathBuf {
    recordings
        .join(path_component(&conf.account))
        .join(path_component(&conf.id))
}

/// Ids come from URLs: only letters, digits, `-` and `_` reach a path (never `..` or `/`).
fn path_component(id: &str) -> String {
    let safe: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_".contains(*c))
        .collect();
    // Never the parent folder itself, whose entries are other conferences.
    if safe.is_empty() { "_".into() } else { safe }
}
