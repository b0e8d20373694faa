//! The narrow interface between the HTTP layer and the control plane.
//!
//! Handlers send a [`Request`] down an mpsc channel and await its oneshot reply, so the control
//! plane can answer from the single task that owns all call and conference state.

use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};

pub type Reply<T> = oneshot::Sender<Result<T, ServiceError>>;

/// Which conference of which account a request is about; also how the control plane keys
/// its running conferences, so one account's id never reaches another's conference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConfRef {
    pub account: String,
    pub id: String,
}

impl std::fmt::Display for ConfRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.account, self.id)
    }
}

#[derive(Debug)]
pub enum Request {
    /// Every conference document of the account (full documents; the API projects them).
    List {
        account: String,
        reply: Reply<Vec<Conference>>,
    },
    /// One document; an unknown id may answer a synthetic ad-hoc document (Kazoo does).
    Get {
        conf: ConfRef,
        reply: Reply<Conference>,
    },
    /// Validate (defaults, schema, unique numbers), store, answer the stored document.
    Create {
        account: String,
        doc: Value,
        reply: Reply<Value>,
    },
    Replace {
        conf: ConfRef,
        doc: Value,
        reply: Reply<Value>,
    },
    /// Merge `patch` into the stored document, then validate as `Replace`.
    Patch {
        conf: ConfRef,
        patch: Value,
        reply: Reply<Value>,
    },
    /// Soft delete; answers the deleted document or `NotFound`.
    Delete { conf: ConfRef, reply: Reply<Value> },
    Conference {
        conf: ConfRef,
        action: ConferenceAction,
        reply: Reply<()>,
    },
    /// `Target::All` carries Kazoo's bulk rules: mute/unmute/deaf/undeaf touch only
    /// non-moderators whose state differs; kick removes everyone.
    Participants {
        conf: ConfRef,
        target: Target,
        action: ParticipantAction,
        reply: Reply<()>,
    },
    /// `NotFound(pid)` when either participant is not in the conference.
    Relate {
        conf: ConfRef,
        relate: Relate,
        reply: Reply<()>,
    },
    Recordings {
        conf: ConfRef,
        reply: Reply<Vec<Recording>>,
    },
    /// The WAV file of one recording (the name is already checked to be a plain file name).
    Recording {
        conf: ConfRef,
        name: String,
        reply: Reply<PathBuf>,
    },
    /// The `dial` action (spec §7): answered once every endpoint joined or failed.
    Dial {
        conf: ConfRef,
        dial: DialArgs,
        reply: Reply<Vec<EndpointResponse>>,
    },
}

/// The `dial` action's arguments, checked by the API (schema `conferences.dial`).
#[derive(Debug, Clone, PartialEq)]
pub struct DialArgs {
    pub endpoints: Vec<EndpointSpec>,
    pub caller_id_name: Option<String>,
    pub caller_id_number: Option<String>,
    /// How long each endpoint rings.
    pub timeout: Duration,
    pub flags: DialFlags,
    /// The Call-ID of the (first) leg; later legs get random ones.
    pub outbound_call_id: Option<String>,
}

/// One entry of `endpoints`, by its form; the control plane resolves ids from the store.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointSpec {
    /// A 32-hex document id: a device or a user.
    Id(String),
    /// `sip:user@host[:port]`.
    Uri(String),
    /// An inline device document (its `sip` credentials name what to ring).
    Device(Value),
    /// A number (extension or DID): rung through its callflow, else the carriers.
    Number(String),
}

/// `participant_flags` as the join uses them (`ghost` and `video_mute` are accepted and
/// have no effect: every member is counted, and there is no video).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DialFlags {
    pub mute: bool,
    pub deaf: bool,
    pub moderator: bool,
    pub distribute_dtmf: bool,
    pub disable_moh: bool,
    /// Only join a conference that is already running.
    pub join_existing: bool,
}

/// One endpoint's outcome, as Kazoo's `endpoint_responses[]` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointResponse {
    pub endpoint_id: String,
    /// The joined leg's Call-ID, or the failure (a hangup cause, or `timeout`).
    pub outcome: Result<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServiceError {
    /// 404 `bad_identifier` with this cause (a conference, participant or media id).
    NotFound(String),
    /// 400 `validation error` with a Kazoo map `{"field.path":{"rule":{"message",...}}}`.
    Validation(Value),
    /// The control plane did not answer.
    Unavailable,
}

impl From<crate::store::StoreError> for ServiceError {
    /// Kazoo's shapes: unknown ids 404, invalid documents, taken ids and stale revisions 400;
    /// a database fault is logged and answered as the datastore being unavailable.
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as E;
        match e {
            E::NotFound(id) => Self::NotFound(id),
            E::Invalid(v) => Self::Validation(v.to_json()),
            E::Exists(id) => Self::Validation(serde_json::json!(
                {"id": {"unique": {"message": "Document already exists", "cause": id}}}
            )),
            E::Conflict { expected, stored } => Self::Validation(serde_json::json!({
                "revision": {"conflict": {"message": "Revision conflict", "value": expected, "target": stored}}
            })),
            e => {
                tracing::error!(error = %e, "store");
                Self::Unavailable
            }
        }
    }
}

/// A document and, when the conference is running here, its live state.
#[derive(Debug, Clone, PartialEq)]
pub struct Conference {
    pub doc: Value,
    pub live: Option<Live>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub uuid: String,
    pub started_at: SystemTime,
    pub is_locked: bool,
    pub participants: Vec<Participant>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Participant {
    pub call_id: String,
    /// The engine's member id (Kazoo `participant_id` / `member_id`).
    pub participant_id: u32,
    pub joined_at: SystemTime,
    pub caller_id_name: String,
    pub caller_id_number: String,
    pub custom_channel_vars: Value,
    pub custom_application_vars: Value,
    pub is_moderator: bool,
    pub floor: bool,
    pub video: bool,
    pub see: bool,
    pub speak: bool,
    pub hear: bool,
    pub talking: bool,
    pub mute_detect: bool,
    pub energy_level: u32,
    pub current_energy: u32,
    /// What the server adds to the member's audio, in and out (jitter buffer, mix,
    /// pacing); `None` until its media flows.
    pub latency_ms: Option<u32>,
    pub member_ghost: bool,
    pub call: CallInfo,
}

/// SIP facts about the participant's call that status webhooks report.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallInfo {
    /// `inbound` or `outbound`.
    pub direction: String,
    /// The caller's From `user@host`; also the event's `Channel-Presence-ID`.
    pub from: String,
    pub to: String,
    /// The final status sent or received for the INVITE (200 once joined).
    pub sip_status: u16,
    /// jambonz's call status: `in-progress` while in the conference, then `completed`.
    pub call_status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConferenceAction {
    Lock,
    Unlock,
    Play { media_id: String },
    Record(RecordAction),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordAction {
    Start,
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    All,
    One(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParticipantAction {
    Mute,
    Unmute,
    Deaf,
    Undeaf,
    Kick,
    Play { media_id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relate {
    pub participant_id: u32,
    pub other_participant: u32,
    pub relationship: Relationship,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relationship {
    Deaf,
    Mute,
    Clear,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub name: String,
    pub bytes: u64,
    pub created: SystemTime,
}

/// The handlers' end of the request channel.
#[derive(Debug, Clone)]
pub struct Service {
    tx: mpsc::Sender<Request>,
}

/// A control plane that has not answered by then is treated as down, so a request never hangs.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

impl Service {
    /// A handle and the receiver the control plane serves requests from.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<Request>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx }, rx)
    }

    pub async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, ServiceError> {
        self.call_within(REPLY_TIMEOUT, make).await
    }

    /// [`Service::call`] for a request that takes `limit` by design (a dial rings).
    pub async fn call_within<T>(
        &self,
        limit: Duration,
        make: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<T, ServiceError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| ServiceError::Unavailable)?;
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(result)) => result,
            _ => Err(ServiceError::Unavailable),
        }
    }
}
