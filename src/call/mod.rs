//! The call control plane: SIP events in, media worker commands out. It never touches PCM.
//!
//! A call's life: INVITE -> route the dialed number to a conference -> bind an RTP port ->
//! SDP answer (or, without an offer, our offer in the 200 and the answer in the ACK) ->
//! join the conference's media worker -> re-INVITEs update hold and codec -> BYE, CANCEL,
//! RTP timeout or shutdown -> leave.

pub mod dtmf_relay;
pub mod routing;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::Duration;

use mixer::{ConferenceId, MemberFlags, Profile};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::media::leg::LegConfig;
use crate::media::ports::{PortPool, RtpSockets};
use crate::media::worker::{Command, Join, Report, WorkerHandle};
use crate::sdp::{Direction, MediaPolicy, Negotiated, SdpError, SdpSession};
use crate::sip::{Body, CallId, Event, SipHandle, TerminationReason};
use routing::Router;

const SDP: &str = "application/sdp";

pub struct Calls {
    sip: SipHandle,
    workers: Vec<WorkerHandle>,
    ports: PortPool,
    router: Router,
    policy: MediaPolicy,
    host: String,
    calls: HashMap<CallId, Call>,
    conferences: HashMap<String, ConferenceEntry>,
    next_conference: u64,
}

struct ConferenceEntry {
    id: ConferenceId,
    calls: usize,
}

struct Call {
    sip_call_id: String,
    conference: String,
    sdp: SdpSession,
    stage: Stage,
}

enum Stage {
    /// We offered in the 200; the ACK brings the answer.
    AwaitingAnswer(RtpSockets),
    /// The media is in a worker.
    Joined(ConferenceId),
}

impl Calls {
    pub fn new(config: &Config, sip: SipHandle, workers: Vec<WorkerHandle>) -> Self {
        let ip = config.sip.listen.ip();
        Calls {
            sip,
            workers,
            ports: PortPool::new(ip, config.rtp.ports.0.clone()),
            router: Router::new(config),
            policy: MediaPolicy {
                codecs: config.rtp.codecs.iter().map(|&c| c.into()).collect(),
                ptime_ms: config.rtp.ptime_ms,
                dtmf: true,
            },
            host: ip.to_string(),
            calls: HashMap::new(),
            conferences: HashMap::new(),
            next_conference: 1,
        }
    }

    /// Runs until `shutdown` fires, then hangs up every call and waits (bounded) for the
    /// BYEs to complete.
    pub async fn run(
        mut self,
        mut sip_events: mpsc::Receiver<Event>,
        mut reports: mpsc::UnboundedReceiver<Report>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                Some(ev) = sip_events.recv() => self.on_sip(ev).await,
                Some(r) = reports.recv() => self.on_report(r).await,
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
                ..
            } => {
                let number = request_uri_user.unwrap_or_default();
                tracing::info!(call = %call_id, from = %from.uri, %number, "incoming call");
                self.on_invite(call, call_id, &number, body).await;
            }
            Event::Ack { call, body } => self.on_ack(call, body).await,
            Event::ReInvite { call, body } => self.on_reinvite(call, body).await,
            Event::Info { call, body } => self.on_info(call, body),
            Event::Bye { call } => self.end(call, "caller hung up"),
            Event::Cancelled { call } => self.end(call, "caller cancelled"),
            Event::Terminated { call, reason } => {
                let why = match reason {
                    TerminationReason::AckTimeout => "no ACK",
                    TerminationReason::ByeCompleted(_) => "hung up",
                    TerminationReason::ByeTimeout => "BYE unanswered",
                    TerminationReason::TransportClosed => "connection closed",
                };
                self.end(call, why);
            }
            // Dial-out outcomes: no dial-out yet.
            Event::Response { .. }
            | Event::Progress { .. }
            | Event::Answered { .. }
            | Event::Rejected { .. } => {}
        }
    }

    async fn on_invite(
        &mut self,
        call: CallId,
        sip_call_id: String,
        number: &str,
        body: Option<Body>,
    ) {
        let Some(conference) = self.router.route(number) else {
            tracing::info!(call = %sip_call_id, %number, "rejected: no such conference");
            return self.respond(call, 404, "Not Found", None).await;
        };
        let sockets = match self.ports.allocate() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(call = %sip_call_id, error = %e, "rejected: no RTP port");
                return self.respond(call, 503, "Service Unavailable", None).await;
            }
        };
        let local = sockets.local_addr();
        let mut sdp = SdpSession::new(self.policy.clone(), local, random());
        let Some(offer) = body.filter(is_sdp) else {
            let offer = sdp.offer(Direction::SendRecv);
            self.insert(
                call,
                sip_call_id,
                conference,
                sdp,
                Stage::AwaitingAnswer(sockets),
            );
            return self.respond(call, 200, "OK", Some(sdp_body(offer))).await;
        };
        match sdp.answer(&String::from_utf8_lossy(&offer.bytes)) {
            Ok((neg, answer)) => {
                let id = self.join(call, &conference, sockets, &neg);
                tracing::info!(call = %sip_call_id, %conference, codec = ?neg.codec, ptime = neg.ptime_ms, "answered");
                self.insert(call, sip_call_id, conference, sdp, Stage::Joined(id));
                self.respond(call, 200, "OK", Some(sdp_body(answer))).await;
            }
            Err(e) => {
                tracing::info!(call = %sip_call_id, error = %e, "rejected: SDP");
                self.reject_sdp(call, &e, false).await;
            }
        }
    }

    async fn on_ack(&mut self, call: CallId, body: Option<Body>) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let answer = body
            .filter(is_sdp)
            .map(|b| String::from_utf8_lossy(&b.bytes).into_owned());
        let Some(answer) = answer else {
            if matches!(c.stage, Stage::AwaitingAnswer(_)) {
                tracing::info!(call = %c.sip_call_id, "no SDP answer in the ACK");
                self.hang_up(call).await;
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
        match std::mem::replace(&mut c.stage, Stage::Joined(ConferenceId(0))) {
            Stage::AwaitingAnswer(sockets) => {
                let conference = c.conference.clone();
                tracing::info!(call = %c.sip_call_id, %conference, codec = ?neg.codec, "answered (late offer)");
                let id = self.join(call, &conference, sockets, &neg);
                if let Some(c) = self.calls.get_mut(&call) {
                    c.stage = Stage::Joined(id);
                }
            }
            Stage::Joined(id) => {
                c.stage = Stage::Joined(id);
                self.update(call, id, &neg);
            }
        }
    }

    async fn on_reinvite(&mut self, call: CallId, body: Option<Body>) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Stage::Joined(id) = c.stage else {
            return self
                .respond_reinvite(call, 491, "Request Pending", None)
                .await;
        };
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
                self.update(call, id, &neg);
                self.respond_reinvite(call, 200, "OK", Some(sdp_body(answer)))
                    .await;
            }
            Err(e) => self.reject_sdp(call, &e, true).await,
        }
    }

    fn on_info(&mut self, call: CallId, body: Option<Body>) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if let Some(digit) = body.as_ref().and_then(dtmf_relay::digit) {
            tracing::info!(call = %c.sip_call_id, %digit, "DTMF (INFO)");
        }
    }

    async fn on_report(&mut self, r: Report) {
        match r {
            Report::Joined { call, member } => {
                tracing::debug!(call, member = member.0, "joined the mixer");
            }
            Report::JoinFailed { call, reason } => {
                tracing::warn!(call, %reason, "could not join the conference");
                self.hang_up(CallId(call)).await;
            }
            Report::RtpTimeout { call } => {
                tracing::info!(call, "RTP timeout: hanging up");
                self.hang_up(CallId(call)).await;
            }
            Report::Dtmf { call, digit } => tracing::info!(call, %digit, "DTMF (RFC 4733)"),
            Report::Talking {
                call,
                talking,
                energy,
            } => {
                tracing::debug!(call, talking, energy, "talk state");
            }
            Report::Left { call, conference } => {
                tracing::debug!(call, conference = conference.0, "left the mixer");
            }
            // Answers to commands this control plane does not send yet (caller flows, API).
            Report::Detached { .. }
            | Report::PlaybackDone { .. }
            | Report::Recorded { .. }
            | Report::RecordingDone { .. }
            | Report::RecordingFailed { .. } => {}
        }
    }

    fn insert(
        &mut self,
        call: CallId,
        sip_call_id: String,
        conference: String,
        sdp: SdpSession,
        stage: Stage,
    ) {
        self.calls.insert(
            call,
            Call {
                sip_call_id,
                conference,
                sdp,
                stage,
            },
        );
    }

    /// Puts the call's media into its conference's worker, opening the conference if needed.
    fn join(
        &mut self,
        call: CallId,
        conference: &str,
        sockets: RtpSockets,
        neg: &Negotiated,
    ) -> ConferenceId {
        let next = &mut self.next_conference;
        let entry = self
            .conferences
            .entry(conference.to_string())
            .or_insert_with(|| {
                *next += 1;
                ConferenceEntry {
                    id: ConferenceId(*next - 1),
                    calls: 0,
                }
            });
        entry.calls += 1;
        let id = entry.id;
        let held = neg.on_hold();
        let join = Join {
            call: call.0,
            conference: id,
            profile: Profile::default(),
            sockets,
            rtcp_mux: neg.rtcp_mux,
            leg: leg_config(neg),
            flags: MemberFlags {
                speak: !held,
                hear: !held,
                moderator: false,
            },
        };
        self.worker(id).send(Command::Join(Box::new(join)));
        id
    }

    fn update(&self, call: CallId, id: ConferenceId, neg: &Negotiated) {
        self.worker(id).send(Command::Update {
            call: call.0,
            leg: Box::new(leg_config(neg)),
            held: neg.on_hold(),
        });
    }

    fn worker(&self, id: ConferenceId) -> &WorkerHandle {
        &self.workers[(id.0 % self.workers.len() as u64) as usize]
    }

    /// Forgets a call the SIP side has ended and takes it out of its conference.
    fn end(&mut self, call: CallId, why: &str) {
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        tracing::info!(call = %c.sip_call_id, conference = %c.conference, "{why}");
        let Stage::Joined(id) = c.stage else {
            return;
        };
        self.worker(id).send(Command::Leave { call: call.0 });
        if let Some(e) = self.conferences.get_mut(&c.conference) {
            e.calls -= 1;
            if e.calls == 0 {
                self.conferences.remove(&c.conference);
            }
        }
    }

    async fn hang_up(&mut self, call: CallId) {
        if let Err(e) = self.sip.bye(call).await {
            tracing::debug!(call = call.0, error = ?e, "BYE");
        }
        self.end(call, "hung up by the server");
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

fn leg_config(neg: &Negotiated) -> LegConfig {
    LegConfig::from_negotiated(neg, random() as u32)
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

/// A random 64-bit value (SSRCs, SDP session ids) from the hasher's per-process random keys.
fn random() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::collections::hash_map::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}
