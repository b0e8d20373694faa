//! The control plane's side of the REST API (`api::service`): documents from the store,
//! live state from the running conferences, actions applied to the live media at once;
//! and the conference events it publishes for WebSocket clients and status webhooks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;
use tokio::sync::broadcast;

use crate::api::events::{ConferenceEvent, EventName};
use crate::api::metrics::Metrics;
use crate::api::service::{
    self as svc, CallInfo, ConfRef, ConferenceAction, ParticipantAction, RecordAction,
    Relationship, Request, ServiceError, Target,
};
use crate::api::webhooks::{StatusEvent, StatusHook, Webhooks};
use crate::media::worker::{Command, Target as PlayTarget};
use crate::sip::CallId;
use crate::sounds::{Refused, Scope};
use crate::store::StoreError;

use super::Calls;
use super::live::Live;

/// What the API side needs: where to publish, hooks to register, gauges to keep.
pub struct ApiLink {
    pub events: broadcast::Sender<ConferenceEvent>,
    pub webhooks: Webhooks,
    pub metrics: Arc<Metrics>,
    /// Conference recordings, a folder per conference.
    pub recordings: PathBuf,
}

impl Calls {
    pub(super) async fn on_request(&mut self, request: Request) {
        match request {
            Request::List { account, reply } => {
                let _ = reply.send(self.list(&account));
            }
            Request::Get { conf, reply } => {
                let _ = reply.send(Ok(self.get(&conf)));
            }
            Request::Create {
                account,
                doc,
                reply,
            } => {
                let r = self.store.create_conference(&account, None, doc);
                let _ = reply.send(r.map(|c| c.doc.to_api(&c.id)).map_err(store_error));
            }
            Request::Replace { conf, doc, reply } => {
                let r = self
                    .store
                    .replace_conference(&conf.account, &conf.id, doc, None);
                let _ = reply.send(r.map(|c| c.doc.to_api(&c.id)).map_err(store_error));
            }
            Request::Patch { conf, patch, reply } => {
                let r = self
                    .store
                    .patch_conference(&conf.account, &conf.id, &patch, None);
                let _ = reply.send(r.map(|c| c.doc.to_api(&c.id)).map_err(store_error));
            }
            Request::Delete { conf, reply } => {
                let r = self.store.delete_conference(&conf.account, &conf.id, None);
                let _ = reply.send(r.map(|c| c.doc.to_api(&c.id)).map_err(store_error));
            }
            Request::Conference {
                conf,
                action,
                reply,
            } => {
                let r = self.conference_action(&conf, action);
                let _ = reply.send(r);
            }
            Request::Participants {
                conf,
                target,
                action,
                reply,
            } => {
                let r = self.participant_action(&conf, target, action).await;
                let _ = reply.send(r);
            }
            Request::Relate {
                conf,
                relate,
                reply,
            } => {
                let _ = reply.send(self.relate(&conf, relate));
            }
            Request::Recordings { conf, reply } => {
                let _ = reply.send(Ok(self.recordings(&conf)));
            }
            Request::Recording { conf, name, reply } => {
                let path = self.recording_dir(&conf).join(&name);
                let found = path.is_file().then_some(path);
                let _ = reply.send(found.ok_or(ServiceError::NotFound(name)));
            }
        }
    }

    fn list(&self, account: &str) -> Result<Vec<svc::Conference>, ServiceError> {
        let docs = self.store.list_conferences(account).map_err(store_error)?;
        Ok(docs
            .into_iter()
            .map(|c| svc::Conference {
                live: self.live_state(account, &c.id),
                doc: c.doc.to_api(&c.id),
            })
            .collect())
    }

    /// Kazoo answers an unknown id with a synthetic ad-hoc document, not a 404.
    fn get(&self, conf: &ConfRef) -> svc::Conference {
        let doc = match self.store.get_conference(&conf.account, &conf.id) {
            Ok(c) => c.doc.to_api(&c.id),
            Err(_) => json!({"id": conf.id, "name": conf.id}),
        };
        svc::Conference {
            doc,
            live: self.live_state(&conf.account, &conf.id),
        }
    }

    /// A running conference of this account; another account's is not found.
    fn live_of(&self, conf: &ConfRef) -> Result<&Live, ServiceError> {
        self.conferences
            .get(conf)
            .ok_or_else(|| ServiceError::NotFound(conf.id.clone()))
    }

    fn live_state(&self, account: &str, id: &str) -> Option<svc::Live> {
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
                .filter_map(|c| self.participant(live, *c))
                .collect(),
        })
    }

    /// A member as the API shows it; members the mixer has not confirmed yet are left out.
    pub(super) fn participant(&self, live: &Live, call: CallId) -> Option<svc::Participant> {
        let m = live.members.get(&call)?;
        let c = self.calls.get(&call)?;
        let from = c.from.uri.trim_start_matches("sip:").to_string();
        Some(svc::Participant {
            call_id: c.sip_call_id.clone(),
            participant_id: m.member_id?,
            joined_at: m.joined_at,
            caller_id_name: c.from.display_name.clone().unwrap_or_default(),
            caller_id_number: c.from.user.clone().unwrap_or_default(),
            custom_channel_vars: json!({}),
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
            member_ghost: false,
            call: CallInfo {
                direction: "inbound".into(),
                from,
                to: live.doc.name().unwrap_or_default().to_string(),
                sip_status: 200,
                call_status: "in-progress".into(),
            },
        })
    }

    fn conference_action(
        &mut self,
        conf: &ConfRef,
        action: ConferenceAction,
    ) -> Result<(), ServiceError> {
        let (key, worker) = self.live_of(conf).map(|l| (l.key, l.worker))?;
        match action {
            ConferenceAction::Lock | ConferenceAction::Unlock => {
                let locked = action == ConferenceAction::Lock;
                self.set_locked(conf, locked);
            }
            ConferenceAction::Play { media_id } => {
                self.play_checked(conf, PlayTarget::Conference(key), &media_id)?;
            }
            ConferenceAction::Record(RecordAction::Start) => {
                let dir = self.recording_dir(conf);
                std::fs::create_dir_all(&dir).map_err(|_| ServiceError::Unavailable)?;
                let stamp = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let id = self.new_id();
                let path = dir.join(format!("{}-{stamp}.wav", conf.id));
                self.conference_recordings.insert(conf.clone(), id);
                self.workers[worker].send(Command::RecordConference {
                    conference: key,
                    path,
                    id,
                });
            }
            ConferenceAction::Record(RecordAction::Stop) => {
                if let Some(id) = self.conference_recordings.remove(conf) {
                    self.workers[worker].send(Command::StopRecording { id });
                }
            }
        }
        Ok(())
    }

    /// Locks or unlocks (API or caller control), announcing it.
    pub(super) fn set_locked(&mut self, id: &ConfRef, locked: bool) {
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
            self.publish(id, name, None);
        }
    }

    /// Plays `media` if it may play: a refused source is a validation error naming the
    /// field, answered at once; a prompt or file that is not there is not found.
    fn play_checked(
        &mut self,
        id: &ConfRef,
        target: PlayTarget,
        media: &str,
    ) -> Result<(), ServiceError> {
        let language = self.live_of(id)?.profile.language.clone();
        let scope = Scope {
            language: &language,
            account: &id.account,
        };
        match self.sounds.resolve(media, scope) {
            Ok(Some(_)) => {}
            Ok(None) | Err(Refused::Missing) => return Err(ServiceError::NotFound(media.into())),
            Err(Refused::Invalid(message)) => {
                return Err(ServiceError::Validation(json!({
                    "data.media_id": {"media": {"message": message, "value": media}}
                })));
            }
        }
        match self.play(id, target, &[media.to_string()]) {
            true => Ok(()),
            false => Err(ServiceError::NotFound(media.to_string())),
        }
    }

    async fn participant_action(
        &mut self,
        conf: &ConfRef,
        target: Target,
        action: ParticipantAction,
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
                ParticipantAction::Kick => self.hang_up(call).await,
                ParticipantAction::Play { media_id } => {
                    self.play_checked(conf, PlayTarget::Call(call.0), media_id)?;
                }
                _ if bulk && moderator => {}
                ParticipantAction::Mute => self.set_member(conf, call, Some(true), None),
                ParticipantAction::Unmute => self.set_member(conf, call, Some(false), None),
                ParticipantAction::Deaf => self.set_member(conf, call, None, Some(true)),
                ParticipantAction::Undeaf => self.set_member(conf, call, None, Some(false)),
            }
        }
        Ok(())
    }

    fn relate(&mut self, conf: &ConfRef, relate: svc::Relate) -> Result<(), ServiceError> {
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
        self.workers[live.worker].send(cmd);
        Ok(())
    }

    fn recordings(&self, conf: &ConfRef) -> Vec<svc::Recording> {
        let Ok(dir) = std::fs::read_dir(self.recording_dir(conf)) else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter_map(|e| {
                let meta = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
                Some(svc::Recording {
                    name: e.file_name().to_string_lossy().into_owned(),
                    bytes: meta.len(),
                    created: meta.modified().ok()?,
                })
            })
            .collect()
    }

    /// `{recordings}/{account}/{conference}`: an account only ever reaches its own folder.
    fn recording_dir(&self, conf: &ConfRef) -> PathBuf {
        self.api
            .recordings
            .join(path_component(&conf.account))
            .join(path_component(&conf.id))
    }

    /// Publishes a conference event (for WebSocket subscribers and status webhooks).
    pub(super) fn publish(&self, id: &ConfRef, name: EventName, call: Option<CallId>) {
        let participant = call.and_then(|c| self.participant(self.conferences.get(id)?, c));
        self.publish_about(id, name, participant);
    }

    /// Publishes an event about `participant`, who may have left already.
    pub(super) fn publish_about(
        &self,
        id: &ConfRef,
        name: EventName,
        participant: Option<svc::Participant>,
    ) {
        let Some(live) = self.conferences.get(id) else {
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
            at: SystemTime::now(),
            participant,
        };
        // No subscriber is fine: events are for whoever listens.
        let _ = self.api.events.send(event);
    }

    /// Registers the conference's status hook (jambonz statusHook), owned by its starter.
    pub(super) fn register_hook(&self, id: &ConfRef, starter: CallId) {
        let Some(live) = self.conferences.get(id) else {
            return;
        };
        let hook = live.doc.status_hook().map(|url| StatusHook {
            url: url.to_string(),
            events: live
                .doc
                .status_events()
                .into_iter()
                .filter_map(StatusEvent::parse)
                .collect(),
            owner_call_id: self.calls.get(&starter).map(|c| c.sip_call_id.clone()),
        });
        if hook.is_some() {
            self.api.webhooks.set(&id.account, &id.id, hook);
        }
    }

    /// Keeps the conference and member gauges.
    pub(super) fn count(&self) {
        let members: usize = self.conferences.values().map(|l| l.members.len()).sum();
        let m = &self.api.metrics;
        m.conferences.store(
            self.conferences.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        m.members
            .store(members as u64, std::sync::atomic::Ordering::Relaxed);
    }
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

fn store_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound(id) => ServiceError::NotFound(id),
        StoreError::Invalid(v) => ServiceError::Validation(v.to_json()),
        StoreError::Exists(id) => ServiceError::Validation(
            json!({"id": {"unique": {"message": "Conference already exists", "cause": id}}}),
        ),
        StoreError::Conflict { expected, stored } => ServiceError::Validation(json!({
            "revision": {"conflict": {"message": "Revision conflict", "value": expected, "target": stored}}
        })),
        e => {
            tracing::error!(error = %e, "store");
            ServiceError::Unavailable
        }
    }
}
