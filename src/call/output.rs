//! What the call plane asks of the world: the outputs its shell carries out. Work that
//! needs the world back (a store lookup, an RTP port pair, a recorded name on disk) is a
//! request the shell answers with the matching `handle_*` input.

use std::net::SocketAddr;

use crate::api::events::ConferenceEvent;
use crate::api::service::EndpointResponse;
use crate::api::webhooks::StatusHook;
use crate::conference::document::ConferenceDoc;
use crate::conference::settings::ConferencesConfig;
use crate::media::leg::LegConfig;
use crate::media::worker::{CallKey, Command, Target};
use crate::sip::{Body, CallId, Dial, Protocol};

use super::locate::ServerName;

pub enum Output {
    Sip(SipAction),
    /// A command for media worker `worker`.
    Media {
        worker: usize,
        command: MediaCommand,
    },
    /// Answer with [`super::CallPlane::handle_store_answer`].
    Store(StoreRequest),
    /// Bind an RTP/RTCP port pair for the call; answer with
    /// [`super::CallPlane::handle_ports`].
    AllocatePorts {
        call: CallId,
    },
    /// Locate a leg's server by DNS (RFC 3263: SRV, then A/AAAA) off the plane; answer
    /// with [`super::CallPlane::handle_resolved`].
    Resolve {
        call: CallId,
        server: ServerName,
        protocol: Protocol,
    },
    /// Keep a recorded name as a file; answer with [`super::CallPlane::handle_name_saved`].
    SaveName {
        call: CallId,
        account: String,
        /// Whose name it is (see [`Caller`]): kept as their `play_name` media for next time.
        caller: Option<Caller>,
        rate: u32,
        pcm: Vec<i16>,
    },
    /// Start fetching media (URLs) before they are played.
    Prefetch {
        media: Vec<String>,
        language: String,
        account: String,
    },
    /// Post `body` (the call's info) to a jambonz enter or wait hook; answer with
    /// [`super::CallPlane::handle_hook`] and the media of its verbs.
    FetchHook {
        call: CallId,
        url: String,
        body: serde_json::Value,
    },
    /// For WebSocket subscribers and status webhooks.
    Event(Box<ConferenceEvent>),
    /// The conference's status hook (jambonz statusHook).
    Hook {
        account: String,
        id: String,
        hook: StatusHook,
    },
    /// For the focus registry (cluster only); its answers come to
    /// [`super::CallPlane::handle_focus`].
    Focus(crate::cluster::registry::Request),
    /// The call is gone: its unused port pair and its recorded name can go too.
    Released {
        call: CallId,
        name_file: Option<String>,
    },
    /// Dial order `order` is decided: every endpoint joined or failed.
    Dialed {
        order: u64,
        responses: Vec<EndpointResponse>,
    },
}

/// SIP requests and responses, as [`crate::sip::SipHandle`] sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipAction {
    Respond {
        call: CallId,
        reinvite: bool,
        status: u16,
        reason: &'static str,
        body: Option<Body>,
    },
    Reject {
        call: CallId,
        reinvite: bool,
        status: u16,
        reason: &'static str,
        headers: Vec<(&'static str, String)>,
    },
    Bye {
        call: CallId,
    },
    /// Place a call (its handle is [`Dial::call`]); its outcome comes back as SIP events.
    Invite(Box<Dial>),
    /// Give up a call we placed that is not answered yet.
    Cancel {
        call: CallId,
    },
}

/// A worker command, or one the shell completes with what it owns: the port pair of a
/// call entering the lobby, the sound source of a playback.
pub enum MediaCommand {
    Lobby {
        call: CallKey,
        rtcp_mux: bool,
        leg: Box<LegConfig>,
    },
    Play {
        target: Target,
        id: u64,
        sound: Sound,
    },
    Do(Command),
}

/// A playback to open: `media` in turn, then `looping` for as long as it plays. One that
/// cannot be opened is answered with a [`crate::media::worker::Report::PlaybackDone`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sound {
    pub media: Vec<String>,
    pub looping: Option<String>,
    pub language: String,
    pub account: String,
    /// The conference profile's `tts-voice`, for `tts://` media.
    pub voice: Option<String>,
    /// PCM rate of the mixer it plays in.
    pub rate: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRequest {
    pub id: u64,
    pub account: String,
    pub query: StoreQuery,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreQuery {
    /// The `conferences` config, the documents with this number, and the caller's kept
    /// `play_name` media.
    Route {
        number: String,
        caller: Option<Caller>,
    },
    /// The documents with this number.
    FindByNumber { number: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum StoreAnswer {
    Route {
        config: ConferencesConfig,
        found: Vec<(String, ConferenceDoc)>,
        /// The media id of the caller's recorded name, reused instead of recording.
        name: Option<String>,
        /// The account's callflow for the number, resolved (`super::callflow`).
        callflow: Option<Box<super::callflow_node::Node>>,
    },
    Found(Vec<(String, ConferenceDoc)>),
}

/// A caller as their From names them (`user`, `host` without port), when it names someone
/// (not `anonymous`): the device or user a recorded name is kept for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub host: String,
}

impl Caller {
    pub fn from_uri(uri: &str) -> Option<Caller> {
        let rest = uri
            .strip_prefix("sips:")
            .or_else(|| uri.strip_prefix("sip:"))?;
        let rest = rest.split([';', '?', '>']).next()?;
        let (user, host) = rest.rsplit_once('@')?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next()?,
            None => host.split(':').next()?,
        };
        let plain = |s: &str| !s.is_empty() && s.len() <= 64 && !s.contains(char::is_whitespace);
        let named = plain(user) && plain(host) && !user.eq_ignore_ascii_case("anonymous");
        named.then(|| Caller {
            user: user.to_string(),
            host: host.to_ascii_lowercase(),
        })
    }
}

/// Where a call's RTP is received: the port pair the shell bound.
pub type Ports = Result<SocketAddr, String>;
