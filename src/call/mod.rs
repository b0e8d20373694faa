//! The call control plane: SIP events in, media worker commands out. It never touches PCM.
//!
//! A call's life: INVITE -> route the dialed number (a conference document's number, the
//! service number, or an ad-hoc conference) -> take an RTP port pair (none free: 503) -> SDP
//! answer (or our offer in the 200 and the answer in the ACK) -> the call's media waits in a
//! worker's lobby, receiving but silent until the ACK -> from the ACK the caller flow
//! (`conference::flow`) plays prompts and collects digits -> it joins the conference (`conference` module: entry sounds, hold music, wait for a moderator, caller
//! controls) -> re-INVITEs update hold and codec -> BYE, CANCEL, RTP timeout, a control, the
//! end of the conference or shutdown -> it leaves.

mod announce_count;
mod api;
pub mod dtmf_relay;
mod flow;
mod live;
mod members;
mod prefetch;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mixer::ConferenceId;
use tokio::sync::mpsc;

use crate::api::service::ConfRef;
use crate::conference::flow::{CallflowOptions, Flow, FlowSetup, JoinDecision, Target};
use crate::config::Config;
use crate::media::leg::{LegConfig, LegLimits};
use crate::media::ports::{PortPool, RtpSockets};
use crate::media::worker::{Attach, Command, Lobby, Report, WorkerHandle};
use crate::sdp::{Direction, MediaPolicy, Negotiated, SdpError, SdpSession};
use crate::sip::{Body, CallId, Event, NameAddr, SipHandle, TerminationReason};
use crate::sounds::Sounds;
use crate::store::Store;
pub use api::ApiLink;
use flow::CallerFlow;
use live::Live;

const SDP: &str = "application/sdp";
/// Retry-After of the 503 an INVITE gets when no RTP port pair is free (seconds).
const PORTS_BUSY_RETRY_AFTER: &str = "10";

pub struct Calls {
    sip: SipHandle,
    workers: Vec<WorkerHandle>,
    ports: PortPool,
    policy: MediaPolicy,
    limits: LegLimits,
    host: String,
    store: Arc<dyn Store>,
    account: String,
    adhoc: bool,
    service_number: Option<String>,
    sounds: Sounds,
    /// Recorded names live here, a folder per account, until their call ends.
    names: PathBuf,
    calls: HashMap<CallId, Call>,
    /// Running conferences by account and document id (or ad-hoc name).
    conferences: HashMap<ConfRef, Live>,
    /// Playbacks and recordings in flight, by id, and the call they belong to.
    playbacks: HashMap<u64, CallId>,
    recordings: HashMap<u64, CallId>,
    /// Calls detached from their lobby worker, and how they join once adopted.
    moving: HashMap<CallId, (Box<Attach>, Box<JoinDecision>)>,
    /// The recording running in each conference (API `record start`).
    conference_recordings: HashMap<ConfRef, u64>,
    api: ApiLink,
    next_id: u64,
}

struct Call {
    sip_call_id: String,
    from: NameAddr,
    /// Where the INVITE came from: the IP a NAT'd phone's RTP comes from.
    source: IpAddr,
    /// The ACK of the 200 arrived: media may flow to the caller.
    acked: bool,
    sdp: SdpSession,
    /// The worker holding the call's media.
    worker: usize,
    /// The codec's PCM rate: prompts in the lobby play at it.
    rate: u32,
    stage: Stage,
    /// The caller's recorded name, deleted when the call ends.
    name_file: Option<String>,
}

enum Stage {
    /// We offered in the 200; the ACK brings the answer.
    AwaitingAnswer(RtpSockets, Box<FlowSetup>),
    /// In the lobby, going through the caller flow.
    Flow(Box<CallerFlow>),
    /// Leaving its lobby worker for the conference's.
    Moving(ConfRef),
    /// A member of this conference.
    Member(ConfRef),
}

impl Calls {
    pub fn new(
        config: &Config,
        sip: SipHandle,
        workers: Vec<WorkerHandle>,
        store: Arc<dyn Store>,
        names: PathBuf,
        api: ApiLink,
    ) -> Self {
        let ip = config.sip.listen.ip();
        let sounds = Sounds::new(&config.sounds, &config.conferences.prompts, &names);
        Calls {
            sip,
            workers,
            ports: PortPool::new(ip, config.rtp.ports.0.clone()),
            policy: MediaPolicy {
                codecs: config.rtp.codecs.iter().map(|&c| c.into()).collect(),
                ptime_ms: config.rtp.ptime_ms,
                dtmf: true,
            },
            limits: config.rtp.leg_limits(),
            host: ip.to_string(),
            store,
            account: config.conferences.account.clone(),
            adhoc: config.conferences.adhoc,
            service_number: Some(config.conferences.service_number.clone())
                .filter(|n| !n.is_empty()),
            sounds,
            names,
            calls: HashMap::new(),
            conferences: HashMap::new(),
            playbacks: HashMap::new(),
            recordings: HashMap::new(),
            moving: HashMap::new(),
            conference_recordings: HashMap::new(),
            api,
            next_id: 1,
        }
    }

    /// Runs until `shutdown` fires, then hangs up every call and waits (bounded) for the
    /// BYEs to complete.
    pub async fn run(
        mut self,
        mut sip_events: mpsc::Receiver<Event>,
        mut reports: mpsc::UnboundedReceiver<Report>,
        mut requests: mpsc::Receiver<crate::api::service::Request>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let timer = self.next_timeout();
            let sleep = tokio::time::sleep_until(timer.unwrap_or_else(far_future).into());
            tokio::select! {
                Some(ev) = sip_events.recv() => self.on_sip(ev).await,
                Some(r) = reports.recv() => self.on_report(r).await,
                Some(r) = requests.recv() => self.on_request(r).await,
                () = sleep, if timer.is_some() => self.on_timeout(Instant::now()).await,
                () = &mut shutdown => break,
            }
        }
        let calls: Vec<CallId> = self.calls.keys().copied().collect();
        tracing::info!(calls = calls.len(), "shutting down: hanging up every call");
        for call in calls {
            self.hang_up(call).await;
        }
        let drain = async {
            while let Some(ev) = sip_events.recv().await {
                if let Event::Terminated { call, .. } = ev {
                    self.calls.remove(&call);
                }
                if self.calls.is_empty() {
                    break;
                }
            }
        };
        // BYEs are retransmitted for up to 32 s; waiting for answers briefly is enough.
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }

    async fn on_sip(&mut self, ev: Event) {
        match ev {
            Event::Invite {
                call,
                call_id,
                from,
                request_uri_user,
                body,
                source,
                ..
            } => {
                let number = request_uri_user.unwrap_or_default();
                tracing::info!(call = %call_id, from = %from.uri, %number, "incoming call");
                let caller = (from, source.ip());
                self.on_invite(call, call_id, caller, &number, body).await;
            }
            Event::Ack { call, body } => self.on_ack(call, body).await,
            Event::ReInvite { call, body } => self.on_reinvite(call, body).await,
            Event::Info { call, body } => {
                if let Some(digit) = body.as_ref().and_then(dtmf_relay::digit) {
                    self.on_digit(call, digit).await;
                }
            }
            Event::Bye { call } => self.end(call, "caller hung up").await,
            Event::Cancelled { call } => self.end(call, "caller cancelled").await,
            Event::Terminated { call, reason } => {
                let why = match reason {
                    TerminationReason::AckTimeout => "no ACK",
                    TerminationReason::ByeCompleted(_) => "hung up",
                    TerminationReason::ByeTimeout => "BYE unanswered",
                    TerminationReason::TransportClosed => "connection closed",
                };
                self.end(call, why).await;
            }
            // Dial-out outcomes: no dial-out yet.
            Event::Response { .. }
            | Event::Progress { .. }
            | Event::Answered { .. }
            | Event::Rejected { .. } => {}
        }
    }

    /// Where a dialed number leads: a conference document's number, the service number
    /// (asks for a conference number), or an ad-hoc conference named after the number.
    fn route(&self, number: &str) -> Option<FlowSetup> {
        let config = self
            .store
            .conferences_config(&self.account)
            .map_err(|e| tracing::error!(error = %e, "store: conferences config"))
            .ok()?;
        let setup = |target, dialed, callflow| FlowSetup {
            target,
            dialed,
            callflow,
            config: config.clone(),
            name_media: None,
        };
        if self.service_number.as_deref() == Some(number) {
            return Some(setup(Target::ServiceMode, None, CallflowOptions::default()));
        }
        let found = self
            .store
            .find_by_number(&self.account, number)
            .map_err(|e| tracing::error!(error = %e, "store: find by number"))
            .ok()?;
        if let [c] = found.as_slice() {
            let options = CallflowOptions::for_doc(&c.doc);
            let target = Target::Conference {
                id: c.id.clone(),
                doc: c.doc.clone(),
            };
            return Some(setup(target, Some(number.to_string()), options));
        }
        let doc = (self.adhoc && found.is_empty()).then(|| adhoc_doc(number))??;
        let options = CallflowOptions::for_doc(&doc);
        let target = Target::Conference {
            id: number.to_string(),
            doc,
        };
        Some(setup(target, None, options))
    }

    async fn on_invite(
        &mut self,
        call: CallId,
        sip_call_id: String,
        (from, source): (NameAddr, IpAddr),
        number: &str,
        body: Option<Body>,
    ) {
        let Some(setup) = self.route(number) else {
            tracing::info!(call = %sip_call_id, %number, "rejected: no such conference");
            return self.respond(call, 404, "Not Found", None).await;
        };
        if let Target::Conference { doc, .. } = &setup.target {
            self.prefetch_doc(doc);
        }
        let sockets = match self.ports.allocate(Instant::now()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(call = %sip_call_id, error = %e, "rejected: no RTP port");
                let retry = vec![("Retry-After", PORTS_BUSY_RETRY_AFTER.to_string())];
                let result = self
                    .sip
                    .reject(call, false, 503, "Service Unavailable", retry);
                if let Err(e) = result.await {
                    tracing::debug!(call = call.0, error = ?e, "503");
                }
                return;
            }
        };
        let mut sdp = SdpSession::new(self.policy.clone(), sockets.local_addr(), random());
        let worker = self.worker_for(&setup.target);
        let log_id = sip_call_id.clone();
        let new = |sdp, stage| Call {
            sip_call_id,
            from,
            source,
            acked: false,
            sdp,
            worker,
            rate: 8000,
            stage,
            name_file: None,
        };
        let Some(offer) = body.filter(is_sdp) else {
            let offer = sdp.offer(Direction::SendRecv);
            let stage = Stage::AwaitingAnswer(sockets, Box::new(setup));
            self.calls.insert(call, new(sdp, stage));
            return self.respond(call, 200, "OK", Some(sdp_body(offer))).await;
        };
        match sdp.answer(&String::from_utf8_lossy(&offer.bytes)) {
            Ok((neg, answer)) => {
                let flow = Box::new(CallerFlow::new(Flow::new(setup)));
                self.calls.insert(call, new(sdp, Stage::Flow(flow)));
                self.respond(call, 200, "OK", Some(sdp_body(answer))).await;
                self.start_media(call, sockets, &neg);
            }
            Err(e) => {
                tracing::info!(call = %log_id, error = %e, "rejected: SDP");
                self.reject_sdp(call, &e, false).await;
            }
        }
    }

    /// The call's media enters its worker's lobby: it receives at once (a phone sends as
    /// soon as it sees the 200) and sends from the ACK on.
    fn start_media(&mut self, call: CallId, sockets: RtpSockets, neg: &Negotiated) {
        let limits = self.limits;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.rate = neg.codec.pcm_rate();
        tracing::info!(call = %c.sip_call_id, codec = ?neg.codec, ptime = neg.ptime_ms, "answered");
        let lobby = Lobby {
            call: call.0,
            sockets,
            rtcp_mux: neg.rtcp_mux,
            leg: leg_config(neg, c.source, limits),
        };
        self.workers[c.worker].send(Command::Lobby(Box::new(lobby)));
        if neg.on_hold() {
            self.workers[c.worker].send(Command::Update {
                call: call.0,
                leg: Box::new(leg_config(neg, c.source, limits)),
                held: true,
            });
        }
    }

    /// The 200's ACK: media may flow to the caller, and the caller flow starts (its first
    /// prompt is heard from the start).
    async fn confirm(&mut self, call: CallId) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.acked = true;
        self.workers[c.worker].send(Command::Confirm { call: call.0 });
        self.with_flow(call, |f, now| f.on_answered(now)).await;
    }

    async fn on_ack(&mut self, call: CallId, body: Option<Body>) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let answer = body
            .filter(is_sdp)
            .map(|b| String::from_utf8_lossy(&b.bytes).into_owned());
        let awaiting = matches!(c.stage, Stage::AwaitingAnswer(..));
        let first = !c.acked;
        let Some(answer) = answer else {
            if awaiting {
                tracing::info!(call = %c.sip_call_id, "no SDP answer in the ACK");
                return self.hang_up(call).await;
            }
            if first {
                self.confirm(call).await;
            }
            return;
        };
        let neg = match c.sdp.accept_answer(&answer) {
            Ok(neg) => neg,
            Err(e) => {
                tracing::info!(call = %c.sip_call_id, error = %e, "unusable SDP answer in the ACK");
                return self.hang_up(call).await;
            }
        };
        if !awaiting {
            self.update_media(call, &neg);
        } else if let Stage::AwaitingAnswer(sockets, setup) =
            std::mem::replace(&mut c.stage, Stage::Member(ConfRef::default()))
        {
            c.stage = Stage::Flow(Box::new(CallerFlow::new(Flow::new(*setup))));
            self.start_media(call, sockets, &neg);
        }
        if first {
            self.confirm(call).await;
        }
    }

    async fn on_reinvite(&mut self, call: CallId, body: Option<Body>) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if matches!(c.stage, Stage::AwaitingAnswer(..)) {
            return self
                .respond_reinvite(call, 491, "Request Pending", None)
                .await;
        }
        let Some(offer) = body.filter(is_sdp) else {
            // An offerless re-INVITE: we offer, the ACK answers.
            let offer = c.sdp.offer(Direction::SendRecv);
            return self
                .respond_reinvite(call, 200, "OK", Some(sdp_body(offer)))
                .await;
        };
        match c.sdp.answer(&String::from_utf8_lossy(&offer.bytes)) {
            Ok((neg, answer)) => {
                tracing::info!(call = %c.sip_call_id, hold = neg.on_hold(), codec = ?neg.codec, "re-INVITE");
                self.update_media(call, &neg);
                self.respond_reinvite(call, 200, "OK", Some(sdp_body(answer)))
                    .await;
            }
            Err(e) => self.reject_sdp(call, &e, true).await,
        }
    }

    fn update_media(&mut self, call: CallId, neg: &Negotiated) {
        let limits = self.limits;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.rate = neg.codec.pcm_rate();
        self.workers[c.worker].send(Command::Update {
            call: call.0,
            leg: Box::new(leg_config(neg, c.source, limits)),
            held: neg.on_hold(),
        });
    }

    async fn on_report(&mut self, r: Report) {
        match r {
            Report::Joined { call, member } => self.on_joined(CallId(call), member.0),
            Report::JoinFailed { call, reason } => {
                // The flow checks capacity (with its prompt) first; this is a join that raced
                // past it, or a media failure.
                tracing::warn!(call, %reason, "could not join the conference");
                self.hang_up(CallId(call)).await;
            }
            Report::RtpTimeout { call } => {
                tracing::info!(call, "RTP timeout: hanging up");
                self.hang_up(CallId(call)).await;
            }
            Report::Dtmf { call, digit } => self.on_digit(CallId(call), digit).await,
            Report::Talking {
                call,
                talking,
                energy,
            } => self.on_talking(CallId(call), talking, energy),
            Report::Detached { call, session } => self.on_detached(CallId(call), session).await,
            Report::PlaybackDone { id, stopped } => self.on_playback_done(id, stopped).await,
            Report::Recorded {
                id,
                call,
                rate,
                pcm,
            } => self.on_recorded(id, CallId(call), rate, &pcm).await,
            Report::Left { .. } | Report::RecordingDone { .. } | Report::RecordingFailed { .. } => {
            }
        }
    }

    async fn on_digit(&mut self, call: CallId, digit: char) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        tracing::debug!(call = %c.sip_call_id, %digit, "DTMF");
        match &c.stage {
            Stage::Flow(_) => self.with_flow(call, |f, now| f.on_digit(now, digit)).await,
            Stage::Member(conf) => {
                let conf = conf.clone();
                self.member_digit(&conf, call, digit).await;
            }
            Stage::AwaitingAnswer(..) | Stage::Moving(_) => {}
        }
    }

    /// The earliest timer of any caller flow, caller control or ending conference.
    fn next_timeout(&self) -> Option<Instant> {
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
        flows.chain(confs).min()
    }

    async fn on_timeout(&mut self, now: Instant) {
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
            self.with_flow(call, |f, now| f.handle_timeout(now)).await;
        }
        self.conference_timers(now).await;
    }

    fn worker_for(&self, target: &Target) -> usize {
        match target {
            Target::Conference { id, .. } => self.worker_of(id),
            Target::ServiceMode => 0,
        }
    }

    /// A conference always lives on the worker its id hashes to, so callers routed to it
    /// wait in that worker's lobby and join without moving.
    fn worker_of(&self, conference: &str) -> usize {
        (stable_hash(conference) % self.workers.len() as u64) as usize
    }

    /// A conference SIP callers reach: they all belong to `[conferences] account`.
    fn sip_conference(&self, id: &str) -> ConfRef {
        ConfRef {
            account: self.account.clone(),
            id: id.to_string(),
        }
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn conference_key(&mut self) -> ConferenceId {
        // Below 2^63: the workers' lobbies use the top bit.
        ConferenceId(self.new_id())
    }

    /// Forgets a call the SIP side has ended and takes it out of its conference.
    async fn end(&mut self, call: CallId, why: &str) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        tracing::info!(call = %c.sip_call_id, "{why}");
        // Out of its conference first, while the call can still be described in events.
        if let Stage::Member(conf) | Stage::Moving(conf) = &c.stage {
            let conf = conf.clone();
            self.member_left(&conf, call).await;
        }
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        if !matches!(c.stage, Stage::AwaitingAnswer(..)) {
            self.workers[c.worker].send(Command::Leave { call: call.0 });
        }
        self.moving.remove(&call);
        self.playbacks.retain(|_, owner| *owner != call);
        self.recordings.retain(|_, owner| *owner != call);
        if let Some(path) = &c.name_file {
            self.sounds.forget(std::path::Path::new(path));
            let _ = std::fs::remove_file(path);
        }
    }

    async fn hang_up(&mut self, call: CallId) {
        if let Err(e) = self.sip.bye(call).await {
            tracing::debug!(call = call.0, error = ?e, "BYE");
        }
        self.end(call, "hung up by the server").await;
    }

    async fn reject_sdp(&mut self, call: CallId, e: &SdpError, reinvite: bool) {
        let warning = vec![("Warning", e.warning(&self.host))];
        let result = self
            .sip
            .reject(call, reinvite, 488, "Not Acceptable Here", warning)
            .await;
        if let Err(e) = result {
            tracing::debug!(call = call.0, error = ?e, "488");
        }
    }

    async fn respond(&self, call: CallId, status: u16, reason: &str, body: Option<Body>) {
        if let Err(e) = self.sip.respond(call, status, reason, body).await {
            tracing::debug!(call = call.0, status, error = ?e, "respond");
        }
    }

    async fn respond_reinvite(&self, call: CallId, status: u16, reason: &str, body: Option<Body>) {
        if let Err(e) = self.sip.respond_reinvite(call, status, reason, body).await {
            tracing::debug!(call = call.0, status, error = ?e, "respond to re-INVITE");
        }
    }
}

/// An ad-hoc conference: no document, so no numbers, PINs or welcome; callers join unmuted
/// (Kazoo's `join_muted` default only applies to documents created through the API).
fn adhoc_doc(name: &str) -> Option<crate::conference::document::ConferenceDoc> {
    let plausible = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b));
    let doc = serde_json::json!({"name": name, "play_welcome": false});
    let serde_json::Value::Object(map) = doc else {
        return None;
    };
    plausible.then(|| crate::conference::document::ConferenceDoc::from_map(map))
}

fn leg_config(neg: &Negotiated, sip_source: IpAddr, limits: LegLimits) -> LegConfig {
    LegConfig {
        sip_source: Some(sip_source),
        limits,
        ..LegConfig::from_negotiated(neg, random() as u32)
    }
}

fn is_sdp(b: &Body) -> bool {
    b.content_type.eq_ignore_ascii_case(SDP)
}

fn sdp_body(text: String) -> Body {
    Body {
        content_type: SDP.into(),
        bytes: text.into_bytes(),
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// The same value for the same string in every run (worker placement must not depend on
/// the process's random hash keys).
fn stable_hash(s: &str) -> u64 {
    // FNV-1a.
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A random 64-bit value (SSRCs, SDP session ids) from the hasher's per-process random keys.
fn random() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::collections::hash_map::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adhoc_names_are_plausible_numbers_or_names() {
        assert!(adhoc_doc("4242").is_some());
        assert!(adhoc_doc("team-standup").is_some());
        assert!(adhoc_doc("").is_none());
        assert!(adhoc_doc("a b").is_none());
        assert!(adhoc_doc(&"9".repeat(65)).is_none());
        let doc = adhoc_doc("4242").unwrap();
        assert!(!doc.play_welcome());
        assert!(!doc.join_muted(crate::conference::vocabulary::Role::Member));
    }
}
