//! The call plane's state and its inputs: SIP events, worker reports, store answers and
//! the clock go in; [`Output`]s and the next timeout come out. No sockets, no files, no
//! clock of its own.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use mixer::ConferenceId;

use crate::api::service::ConfRef;
use crate::conference::document::ConferenceDoc;
use crate::conference::flow::{Flow, JoinDecision, Target};
use crate::conference::settings::ConferencesConfig;
use crate::media::codec::CodecOptions;
use crate::media::leg::LegLimits;
use crate::media::session::Session;
use crate::media::worker::{Attach, Command, Report};
use crate::sdp::{MediaPolicy, SdpSession};
use crate::sip::{Body, CallId, Event, NameAddr, TerminationReason};

use super::callflow_node::{Next, Walk};
use super::dial_order::{Leg, Order};
use super::live::Live;
use super::output::{Caller, MediaCommand, Output, SipAction, StoreAnswer};

/// What the call plane is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The account SIP callers belong to (`[conferences] account`) unless their
    /// Request-URI host is one of `realms` (lowercase), whose account they belong to.
    pub account: String,
    pub realms: HashMap<String, String>,
    /// Unknown numbers open an ad-hoc conference named after them.
    pub adhoc: bool,
    /// The number that asks for a conference number.
    pub service_number: Option<String>,
    pub workers: usize,
    pub policy: MediaPolicy,
    pub limits: LegLimits,
    /// Opus encoder complexity of the legs (`[rtp] opus_complexity`).
    pub opus_complexity: i32,
    /// Our SIP host, named in SDP Warning headers.
    pub host: String,
    /// Conference recordings, a folder per account and conference.
    pub recordings: std::path::PathBuf,
    /// Outbound legs one account may have ringing at once.
    pub max_outbound: usize,
    /// A conference is hosted only under its focus claim (`crate::cluster`).
    pub cluster: bool,
}

impl Settings {
    /// The legs' codec settings: the Opus rate is the one our SDP announces.
    pub fn codec_options(&self) -> CodecOptions {
        CodecOptions {
            opus_complexity: self.opus_complexity,
            opus_rate: self.policy.opus_rate,
            ..CodecOptions::default()
        }
    }
}

/// Who placed or took the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A caller reached us.
    Inbound,
    /// We called out (dial-out, issue 9 part 5).
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// The other end of a call.
#[derive(Debug, Clone)]
pub struct Party {
    /// The account the call belongs to: its conferences, documents, media and events.
    pub account: String,
    pub direction: Direction,
    pub sip_call_id: String,
    pub from: NameAddr,
    /// Where its SIP came from: the IP a NAT'd phone's RTP comes from.
    pub source: IpAddr,
    /// Its custom channel variables: the INVITE's `X-` headers, prefix dropped
    /// (see [`channel_vars`]).
    pub vars: Vec<(String, String)>,
}

/// Custom channel variables kept per call, at most, and their longest name and value: a
/// caller's headers cannot grow the events without bound.
/// Retry-After of the 503 an INVITE gets when the store cannot be asked where it goes
/// (seconds; the store reconnects within one).
const STORE_DOWN_RETRY_AFTER: &str = "2";

pub const MAX_VARS: usize = 16;
const MAX_VAR_NAME: usize = 64;
const MAX_VAR_VALUE: usize = 256;

/// The `X-` headers of an INVITE as custom channel variables (`X-Customer-Id: 42` is
/// `Customer-Id`): the first [`MAX_VARS`], too long names skipped, too long values cut.
/// `Account-ID` is the server's to say and never taken from a caller.
pub fn channel_vars(headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let Some(var) = name
            .get(2..)
            .filter(|_| name[..2].eq_ignore_ascii_case("x-"))
        else {
            continue;
        };
        let taken = vars.iter().any(|(n, _)| n.eq_ignore_ascii_case(var));
        if var.is_empty()
            || var.len() > MAX_VAR_NAME
            || var.eq_ignore_ascii_case("account-id")
            || taken
        {
            continue;
        }
        let cut = value
            .char_indices()
            .nth(MAX_VAR_VALUE)
            .map_or(value.len(), |(i, _)| i);
        vars.push((var.to_string(), value[..cut].to_string()));
        if vars.len() == MAX_VARS {
            break;
        }
    }
    vars
}

/// An answered call.
pub(super) struct Call {
    pub party: Party,
    /// The ACK of the 200 arrived: media may flow to the caller.
    pub acked: bool,
    pub sdp: SdpSession,
    /// The worker holding the call's media.
    pub worker: usize,
    /// The codec's PCM rate: prompts in the lobby play at it.
    pub rate: u32,
    pub stage: Stage,
    /// The config the call was routed with (caller controls come from it).
    pub config: ConferencesConfig,
    /// The caller's recorded name, deleted when the call ends.
    pub name_file: Option<String>,
    /// The conference whose focus claim it relies on (cluster only).
    pub focus: Option<ConfRef>,
}

impl Call {
    /// A leg we placed that answered, going into `conf` (a conference, or a bridge's room).
    pub fn answered_leg(
        party: Party,
        sdp: SdpSession,
        worker: usize,
        conf: ConfRef,
        config: ConferencesConfig,
    ) -> Call {
        Call {
            party,
            acked: true,
            sdp,
            worker,
            rate: 8000,
            stage: Stage::Member(conf),
            config,
            name_file: None,
            // Set by `join` once the conference's claim covers the leg (cluster only).
            focus: None,
        }
    }
}

pub(super) enum Stage {
    /// We offered in the 200; the ACK brings the answer.
    AwaitingAnswer(Next),
    /// In the lobby, going through the caller flow.
    Flow(Box<CallerFlow>),
    /// Leaving its lobby worker for the conference's.
    Moving(ConfRef),
    /// A member of this conference.
    Member(ConfRef),
    /// A leg we placed, asked to press a key before it goes anywhere.
    Confirming,
}

/// A conference this node holds or is claiming (cluster only; see `super::focus`), and the
/// calls that rely on it.
pub(super) struct Claim {
    pub calls: usize,
    pub granted: bool,
}

/// A call not answered yet.
pub(super) struct Answering {
    pub party: Party,
    pub number: String,
    pub offer: Option<Body>,
    /// Routed, waiting for its port pair (and in a cluster, its conference's claim).
    pub setup: Option<Next>,
    pub focus: Option<ConfRef>,
    /// The callflow it runs, if its number has one.
    pub walk: Option<Walk>,
}

/// The flow of one call and what it has in flight.
pub(super) struct CallerFlow {
    pub flow: Flow,
    pub playback: Option<u64>,
    pub recording: Option<u64>,
    /// In a cluster: what a caller of the service number does once this node holds the
    /// claim of the conference it entered.
    pub claiming: Option<Claiming>,
}

/// What a service-number caller waits to do until its conference's claim is granted.
pub(super) enum Claiming {
    /// Go on with its flow (the PIN next): the conference its number found is claimed
    /// first, so that when another node hosts it the caller is brought there before being
    /// asked anything, and that node alone asks for the PIN.
    Lookup(String, ConferenceDoc),
    /// Join, the flow done.
    Join(Box<JoinDecision>),
}

impl Claiming {
    pub fn doc(&self) -> &ConferenceDoc {
        match self {
            Claiming::Lookup(_, doc) => doc,
            Claiming::Join(decision) => &decision.doc,
        }
    }
}

/// What a store request in flight was for.
pub(super) enum Lookup {
    Route,
    Find,
}

pub struct CallPlane {
    pub(super) settings: Settings,
    /// The wall clock at a monotonic instant: wall times follow from `now`.
    epoch: (Instant, SystemTime),
    /// Calls not answered yet: routing, or waiting for their port pair.
    pub(super) answering: HashMap<CallId, Answering>,
    pub(super) calls: HashMap<CallId, Call>,
    /// Running conferences by account and document id (or ad-hoc name).
    pub(super) conferences: HashMap<ConfRef, Live>,
    /// Playbacks and recordings in flight, by id, and the call they belong to.
    pub(super) playbacks: HashMap<u64, CallId>,
    pub(super) recordings: HashMap<u64, CallId>,
    /// Calls detached from their lobby worker, and how they join once adopted.
    pub(super) moving: HashMap<CallId, (Box<Attach>, Box<JoinDecision>)>,
    /// The recording running in each conference (API `record start`).
    pub(super) conference_recordings: HashMap<ConfRef, u64>,
    /// Store requests in flight.
    pub(super) lookups: HashMap<u64, (CallId, Lookup)>,
    /// Dial orders in progress, and the legs they placed that have not joined yet.
    pub(super) orders: HashMap<u64, Order>,
    pub(super) legs: HashMap<CallId, Leg>,
    /// Focus claims held or asked for (cluster only).
    pub(super) claims: HashMap<ConfRef, Claim>,
    outputs: VecDeque<Output>,
    next_id: u64,
    /// The `conferences` config the last routed call read: calls that read the same share it.
    last_config: ConferencesConfig,
}

impl CallPlane {
    pub fn new(settings: Settings, now: Instant, wall: SystemTime) -> Self {
        CallPlane {
            settings,
            epoch: (now, wall),
            answering: HashMap::new(),
            calls: HashMap::new(),
            conferences: HashMap::new(),
            playbacks: HashMap::new(),
            recordings: HashMap::new(),
            moving: HashMap::new(),
            conference_recordings: HashMap::new(),
            lookups: HashMap::new(),
            orders: HashMap::new(),
            legs: HashMap::new(),
            claims: HashMap::new(),
            outputs: VecDeque::new(),
            next_id: 1,
            last_config: ConferencesConfig::default(),
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub fn handle_sip(&mut self, ev: Event, now: Instant) {
        match ev {
            Event::Invite {
                call,
                call_id,
                from,
                request_uri,
                request_uri_user,
                body,
                source,
                headers,
                ..
            } => {
                let number = request_uri_user.unwrap_or_default();
                let account = self.account_of(&request_uri);
                tracing::info!(call = %call_id, from = %from.uri, %number, %account, "incoming call");
                let party = Party {
                    account,
                    direction: Direction::Inbound,
                    sip_call_id: call_id,
                    from,
                    source: source.ip(),
                    vars: channel_vars(&headers),
                };
                self.on_invite(call, party, number, body);
            }
            Event::Ack { call, body } => self.on_ack(call, body, now),
            Event::ReInvite { call, body } => self.on_reinvite(call, body),
            Event::Info { call, body } => {
                if let Some(digit) = body.as_ref().and_then(super::dtmf_relay::digit) {
                    self.on_digit(call, digit, now);
                }
            }
            Event::Bye { call } => self.end(call, "caller hung up", now),
            Event::Cancelled { call } => self.end(call, "caller cancelled", now),
            Event::Terminated { call, .. }
                if self.is_leg(call) && !self.calls.contains_key(&call) =>
            {
                // Unreachable (transport error, no answer): the server's next address first.
                if !self.next_server(call, now) {
                    self.leg_failed(call, "NORMAL_TEMPORARY_FAILURE", true, now);
                }
            }
            Event::Terminated { call, reason } => {
                let why = match reason {
                    TerminationReason::AckTimeout => "no ACK",
                    TerminationReason::ByeCompleted(_) => "hung up",
                    TerminationReason::ByeTimeout => "BYE unanswered",
                    TerminationReason::TransportClosed => "connection closed",
                };
                self.end(call, why, now);
            }
            Event::Answered { call, body } => self.on_dial_answered(call, body, now),
            Event::Rejected { call, status } => self.on_dial_rejected(call, status, now),
            Event::Progress { call, status, body } => self.on_dial_progress(call, status, body),
            // Answers to in-dialog requests: nothing to do.
            Event::Response { .. } => {}
        }
    }

    pub fn handle_report(&mut self, r: Report, now: Instant) {
        match r {
            Report::Joined { call, member } => {
                self.on_joined(CallId(call), member.0, now);
                self.on_dial_joined(CallId(call), now);
            }
            Report::RtpTimeout { call } | Report::JoinFailed { call, .. }
                if self.is_early_leg(CallId(call)) =>
            {
                self.early_leg_lost(CallId(call), now);
            }
            Report::JoinFailed { call, reason } => {
                // The flow checks capacity (with its prompt) first; this is a join that raced
                // past it, or a media failure.
                tracing::warn!(call, %reason, "could not join the conference");
                self.hang_up(CallId(call), now);
            }
            Report::RtpTimeout { call } if self.answering.contains_key(&CallId(call)) => {
                // Silent through its early media: no answer for it.
                tracing::info!(call, "RTP timeout before the answer: 480");
                self.reject(CallId(call), 480, "Temporarily Unavailable", Vec::new());
                self.abandon_ring(CallId(call), now);
            }
            Report::RtpTimeout { call } => {
                tracing::info!(call, "RTP timeout: hanging up");
                self.hang_up(CallId(call), now);
            }
            Report::Dtmf { call, digit } => self.on_digit(CallId(call), digit, now),
            Report::Talking {
                call,
                talking,
                energy,
            } => self.on_talking(CallId(call), talking, energy, now),
            Report::Latency { call, latency } => self.on_latency(CallId(call), latency),
            Report::Detached { call, session } => self.on_detached(CallId(call), session, now),
            Report::PlaybackDone { id, stopped } => self.on_playback_done(id, stopped, now),
            Report::Recorded {
                id,
                call,
                rate,
                pcm,
            } => self.on_recorded(id, CallId(call), rate, pcm, now),
            Report::Left { .. } | Report::RecordingDone { .. } | Report::RecordingFailed { .. } => {
            }
        }
    }

    /// The answer to [`Output::Store`] request `id`; `Err` is the store's error, logged.
    pub fn handle_store_answer(
        &mut self,
        id: u64,
        answer: Result<StoreAnswer, String>,
        now: Instant,
    ) {
        let Some((call, lookup)) = self.lookups.remove(&id) else {
            return;
        };
        let answer = answer.map_err(|e| tracing::error!(error = %e, "store"));
        match (lookup, answer) {
            (
                Lookup::Route,
                Ok(StoreAnswer::Route {
                    config,
                    found,
                    name,
                    callflow,
                }),
            ) => {
                let config = self.share(config);
                self.on_routed(call, Some((config, found, name, callflow)), now)
            }
            // The store is unreachable (a shared database down): not "no such conference".
            (Lookup::Route, Err(())) => {
                let retry = vec![("Retry-After", STORE_DOWN_RETRY_AFTER.to_string())];
                self.reject(call, 503, "Service Unavailable", retry);
            }
            (Lookup::Route, _) => self.on_routed(call, None, now),
            (Lookup::Find, answer) => {
                let mut found = match answer {
                    Ok(StoreAnswer::Found(found)) => found,
                    _ => Vec::new(),
                };
                if found.len() == 1 {
                    let conf = self.sip_conference(call, &found[0].0);
                    if !self.hosts(call, &conf) {
                        let (id, doc) = found.remove(0);
                        let waiting = Claiming::Lookup(id, doc);
                        return self.wait_for_claim(call, conf, waiting, now);
                    }
                }
                self.with_flow(call, now, |f, now| f.on_lookup(now, found));
            }
        }
    }

    /// `config`, or the same config held already.
    pub(super) fn share(&mut self, config: ConferencesConfig) -> ConferencesConfig {
        if config != self.last_config {
            self.last_config = config;
        }
        self.last_config.clone()
    }

    /// The earliest timer of any caller flow, caller control or ending conference.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let flows = self.calls.values().filter_map(|c| match &c.stage {
            Stage::Flow(f) => f.flow.poll_timeout(),
            _ => None,
        });
        let confs = self.conferences.values().flat_map(|l| {
            l.members
                .values()
                .filter_map(|m| m.controls.poll_timeout())
                .chain(l.ending_at)
        });
        flows.chain(confs).chain(self.dial_timeout()).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| match &c.stage {
                Stage::Flow(f) => f.flow.poll_timeout().is_some_and(|t| t <= now),
                _ => false,
            })
            .map(|(k, _)| *k)
            .collect();
        for call in due {
            self.with_flow(call, now, |f, now| f.handle_timeout(now));
        }
        self.conference_timers(now);
        self.dial_timers(now);
    }

    /// Shutdown: hangs up every call, answered or not.
    pub fn hang_up_all(&mut self, now: Instant) {
        let calls: Vec<CallId> = self.calls.keys().copied().collect();
        tracing::info!(calls = calls.len(), "shutting down: hanging up every call");
        for call in calls {
            self.hang_up(call, now);
        }
        // Unanswered callers first: a callflow whose ring is cancelled below must find
        // its caller gone, not run its next node.
        let unanswered: Vec<CallId> = self.answering.keys().copied().collect();
        for call in unanswered {
            self.reject(call, 503, "Service Unavailable", Vec::new());
        }
        self.cancel_dials(now);
    }

    /// No call left.
    pub fn is_idle(&self) -> bool {
        self.calls.is_empty() && self.answering.is_empty() && self.legs.is_empty()
    }

    /// Running conferences and their members, for the gauges.
    pub fn gauges(&self) -> (usize, usize) {
        let public = self.conferences.values().filter(|l| !l.private);
        let members = public.clone().map(|l| l.members.len()).sum();
        (public.count(), members)
    }

    pub(super) fn push(&mut self, output: Output) {
        self.outputs.push_back(output);
    }

    pub(super) fn sip(&mut self, action: SipAction) {
        self.push(Output::Sip(action));
    }

    pub(super) fn media(&mut self, worker: usize, command: MediaCommand) {
        self.push(Output::Media { worker, command });
    }

    /// Sends a plain command to worker `worker`.
    pub(super) fn command_to(&mut self, worker: usize, command: Command) {
        self.media(worker, MediaCommand::Do(command));
    }

    /// Sends a command to the worker holding the call's media.
    pub(super) fn command(&mut self, call: CallId, command: Command) {
        if let Some(worker) = self.calls.get(&call).map(|c| c.worker) {
            self.command_to(worker, command);
        }
    }

    /// The wall clock at `now`.
    pub(super) fn wall(&self, now: Instant) -> SystemTime {
        let (mono, wall) = self.epoch;
        wall + now.saturating_duration_since(mono)
    }

    pub(super) fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(super) fn conference_key(&mut self) -> ConferenceId {
        // Below 2^63: the workers' lobbies use the top bit.
        ConferenceId(self.new_id())
    }

    pub(super) fn worker_for(&self, target: &Target) -> usize {
        match target {
            Target::Conference { id, .. } => self.worker_of(id),
            Target::ServiceMode => 0,
        }
    }

    /// A conference always lives on the worker its id hashes to, so callers routed to it
    /// wait in that worker's lobby and join without moving.
    pub(super) fn worker_of(&self, conference: &str) -> usize {
        (stable_hash(conference) % self.settings.workers.max(1) as u64) as usize
    }

    /// The account a dial-in to `request_uri` belongs to: its host's realm's (Kazoo),
    /// else the configured one.
    fn account_of(&self, request_uri: &str) -> String {
        let host = Caller::from_uri(request_uri).map(|c| c.host);
        let realm = host.and_then(|h| self.settings.realms.get(&h));
        realm.unwrap_or(&self.settings.account).clone()
    }

    /// The account `call` belongs to.
    pub(super) fn account(&self, call: CallId) -> String {
        self.account_ref(call).to_string()
    }

    pub(super) fn account_ref(&self, call: CallId) -> &str {
        let party = self.calls.get(&call).map(|c| &c.party);
        let party = party.or_else(|| self.answering.get(&call).map(|a| &a.party));
        party.map_or(self.settings.account.as_str(), |p| p.account.as_str())
    }

    /// Conference `id` of the account `call` belongs to.
    pub(super) fn sip_conference(&self, call: CallId, id: &str) -> ConfRef {
        ConfRef {
            account: self.account(call),
            id: id.to_string(),
        }
    }

    /// Forgets a call the SIP side has ended and takes it out of its conference.
    pub(super) fn end(&mut self, call: CallId, why: &str, now: Instant) {
        // A dialed leg that answered but never joined fails its endpoint.
        self.leg_failed(call, "NORMAL_CLEARING", false, now);
        self.drop_early(call);
        if let Some(a) = self.answering.remove(&call) {
            tracing::info!(call = %a.party.sip_call_id, "{why}");
            self.lookups.retain(|_, (owner, _)| *owner != call);
            self.unfocus(a.focus);
            self.abandon_ring(call, now);
            if let Some(Next::Bridge(room)) = &a.setup {
                self.close_room(room, now);
            }
            let name_file = None;
            return self.push(Output::Released { call, name_file });
        }
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        tracing::info!(call = %c.party.sip_call_id, "{why}");
        // Out of its conference first, while the call can still be described in events.
        if let Stage::Member(conf) | Stage::Moving(conf) = &c.stage {
            let conf = conf.clone();
            self.member_left(&conf, call, now);
        }
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        self.lookups.retain(|_, (owner, _)| *owner != call);
        if !matches!(c.stage, Stage::AwaitingAnswer(..)) {
            self.command_to(c.worker, Command::Leave { call: call.0 });
        }
        self.moving.remove(&call);
        self.playbacks.retain(|_, owner| *owner != call);
        self.recordings.retain(|_, owner| *owner != call);
        self.unfocus(c.focus);
        let name_file = c.name_file;
        self.push(Output::Released { call, name_file });
    }

    pub(super) fn hang_up(&mut self, call: CallId, now: Instant) {
        if self.calls.contains_key(&call) {
            self.sip(SipAction::Bye { call });
        }
        self.end(call, "hung up by the server", now);
    }

    /// A final non-2xx answer to an unanswered INVITE: the call is gone.
    pub(super) fn reject(
        &mut self,
        call: CallId,
        status: u16,
        reason: &'static str,
        headers: Vec<(&'static str, String)>,
    ) {
        let reinvite = false;
        self.sip(SipAction::Reject {
            call,
            reinvite,
            status,
            reason,
            headers,
        });
        self.drop_early(call);
        if let Some(a) = self.answering.remove(&call) {
            self.lookups.retain(|_, (owner, _)| *owner != call);
            self.unfocus(a.focus);
            let name_file = None;
            self.push(Output::Released { call, name_file });
        }
    }

    fn on_digit(&mut self, call: CallId, digit: char, now: Instant) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        tracing::debug!(call = %c.party.sip_call_id, %digit, "DTMF");
        match &c.stage {
            Stage::Flow(_) => self.with_flow(call, now, |f, now| f.on_digit(now, digit)),
            Stage::Member(conf) => {
                let conf = conf.clone();
                self.member_digit(&conf, call, digit, now);
            }
            Stage::Confirming => self.on_confirm_digit(call, digit, now),
            Stage::AwaitingAnswer(..) | Stage::Moving(_) => {}
        }
    }

    /// The lobby worker let go of a moving call: the conference's worker takes it in.
    fn on_detached(&mut self, call: CallId, session: Box<Session>, now: Instant) {
        let Some((attach, decision)) = self.moving.remove(&call) else {
            return;
        };
        let Some(Stage::Moving(id)) = self.calls.get(&call).map(|c| &c.stage) else {
            return;
        };
        let id = id.clone();
        let Some(worker) = self.conferences.get(&id).map(|l| l.worker) else {
            return self.hang_up(call, now);
        };
        if let Some(c) = self.calls.get_mut(&call) {
            c.worker = worker;
            c.stage = Stage::Member(id.clone());
        }
        self.command_to(worker, Command::Adopt { session, attach });
        self.after_join(&id, call, &decision, now);
    }
}

/// An SDP body.
pub(super) fn sdp_body(text: String) -> Body {
    Body {
        content_type: SDP.into(),
        bytes: text.into_bytes(),
    }
}

pub(super) fn is_sdp(b: &Body) -> bool {
    b.content_type.eq_ignore_ascii_case(SDP)
}

const SDP: &str = "application/sdp";

/// The same value for the same string in every run (worker placement must not depend on
/// the process's random hash keys).
fn stable_hash(s: &str) -> u64 {
    // FNV-1a.
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
