//! The sans-IO SIP endpoint: a UAS for conference calls and a UAC for dial-out. Bytes and
//! time go in; datagrams, events and the next deadline come out. See the module docs in `sip/mod.rs` for the API.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::admission::Admission;
use super::dialog::{Dialog, Peer};
use super::digest::Digest;
use super::message::{
    Body, MAGIC, Request, Response, ResponseParts, Via, build_response, response_destination,
    uri_user,
};
use super::parse::{Defect, Framing, Message, StartLine, parse};
use super::timer_map::{Deadline, TimerMap, oversized};
use super::transaction::{ClientTx, Fire, ServerTx, Timers};

mod api;
mod dial;
mod incoming;
pub(crate) mod register;
pub use api::*;
use dial::Outgoing;
pub use dial::{Dial, DialAuth};

/// Methods we implement, in the order advertised in Allow.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO";
/// Session descriptions are the only INVITE bodies we understand.
pub const ACCEPT: &str = "application/sdp";

/// Server transaction key (§17.2.3): branch + sent-by + method, ACK folded into INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct TxKey {
    branch: String,
    sent_by: String,
    method: String,
}

impl TxKey {
    fn of(req: &Request) -> Self {
        let method = match req.method.as_str() {
            "ACK" => "INVITE".to_string(),
            m => m.to_string(),
        };
        let branch = match &req.via.branch {
            Some(b) if b.starts_with(MAGIC) => b.clone(),
            // RFC 2543 peers: fall back to the request's identifying headers.
            _ => format!(
                "{}|{}|{}|{}",
                req.call_id,
                req.from.tag.as_deref().unwrap_or_default(),
                req.cseq,
                req.msg.header("Via").unwrap_or_default()
            ),
        };
        Self {
            branch,
            sent_by: req.via.sent_by(),
            method,
        }
    }

    /// The INVITE transaction a CANCEL with this key cancels.
    fn invite(&self) -> Self {
        Self {
            method: "INVITE".into(),
            ..self.clone()
        }
    }
}

struct ServerEntry {
    tx: ServerTx,
    req: Message,
    /// The request's source address, which admission counts it against.
    source: IpAddr,
    to: SocketAddr,
    transport: Transport,
    to_tag: String,
    call: Option<CallId>,
    merge: Option<MergeKey>,
}

/// Identity of a request without to-tag, to spot the same request arriving twice by
/// different paths (§8.2.2.2).
type MergeKey = (String, String, u32, String);
type DialogKey = (String, String, String);

struct PendingInvite {
    key: TxKey,
    cseq: u32,
    reinvite: bool,
}

struct Call {
    dialog: Dialog,
    peer: Peer,
    invite: Option<PendingInvite>,
    /// The INVITE whose 2xx awaits its ACK: CSeq and transaction.
    awaiting_ack: Option<(u32, TxKey)>,
    bye_after_ack: bool,
    /// An incoming call, as admission counts it; `None` for dial-out.
    admitted: Option<Admitted>,
}

#[derive(Debug, Clone, Copy)]
struct Admitted {
    source: IpAddr,
    /// The initial INVITE's 2xx was acknowledged.
    confirmed: bool,
}

enum Purpose {
    /// `report`: whether the application hears [`Event::Terminated`] when it completes.
    Bye {
        report: bool,
    },
    Request(RequestId),
    /// CANCEL of a dial-out: the INVITE's final response tells the outcome.
    Cancel,
}

impl Deadline for ServerEntry {
    fn deadline(&self) -> Option<Instant> {
        self.tx.next_timeout()
    }
}

struct ClientEntry {
    tx: ClientTx,
    call: CallId,
    method: String,
    purpose: Purpose,
    peer: Peer,
}

impl Deadline for ClientEntry {
    fn deadline(&self) -> Option<Instant> {
        self.tx.next_timeout()
    }
}

pub struct Endpoint {
    config: EndpointConfig,
    server: TimerMap<TxKey, ServerEntry>,
    merges: HashMap<MergeKey, TxKey>,
    client: TimerMap<String, ClientEntry>,
    outgoing: TimerMap<String, Outgoing>,
    calls: HashMap<CallId, Call>,
    dialogs: HashMap<DialogKey, CallId>,
    transmits: VecDeque<Transmit>,
    /// Our TCP connections to peers, by their address, and those not yet handed out.
    outbound: HashMap<SocketAddr, ConnId>,
    connects: VecDeque<(ConnId, SocketAddr)>,
    events: VecDeque<Event>,
    registers: VecDeque<IncomingRegister>,
    awaiting_registers: HashMap<RegisterId, TxKey>,
    admission: Admission,
    digest: Option<Digest>,
    /// Requests refused or dropped by admission or authentication, since the start.
    turned_away: u64,
    next_id: u64,
    random: RandomState,
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Self {
        let admission = Admission::new(config.limits.clone(), config.acl.clone());
        let digest = config.auth.as_ref().map(|a| {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).expect("the OS random source");
            Digest::new(&a.realm, a.algorithms.clone(), a.users.clone(), secret)
        });
        Self {
            config,
            server: TimerMap::new(),
            merges: HashMap::new(),
            client: TimerMap::new(),
            outgoing: TimerMap::new(),
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            transmits: VecDeque::new(),
            outbound: HashMap::new(),
            connects: VecDeque::new(),
            events: VecDeque::new(),
            registers: VecDeque::new(),
            awaiting_registers: HashMap::new(),
            admission,
            digest,
            turned_away: 0,
            next_id: 0,
            random: RandomState::new(),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let maps = [
            self.server.next_deadline(),
            self.client.next_deadline(),
            self.outgoing.next_deadline(),
        ];
        maps.into_iter().flatten().min()
    }

    /// One datagram (UDP) or one framed message (TCP, from [`super::Framer`]).
    pub fn handle_input(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        bytes: &[u8],
    ) {
        let framing = match transport {
            Transport::Udp => Framing::Datagram,
            Transport::Tcp(_) => Framing::Stream,
        };
        let Some(msg) = parse(bytes, framing) else {
            return;
        };
        match &msg.start {
            StartLine::Response { .. } | StartLine::BadStatusLine => {
                if self.admission.permits(from.ip()) {
                    self.handle_response(now, &msg)
                }
            }
            _ => self.handle_request(now, from, transport, msg),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.admission.sweep(now);
        let t = self.config.timers;
        for key in self.server.due(now) {
            self.fire_server(now, &key, &t);
        }
        for branch in self.client.due(now) {
            self.fire_client(now, &branch, &t);
        }
        for branch in self.outgoing.due(now) {
            self.fire_outgoing(now, &branch);
        }
        self.release_memory();
    }

    /// Whether the ACL lets `ip` talk to us (the transport asks before accepting TCP).
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.admission.permits(ip)
    }

    /// How many requests admission or authentication refused or dropped since the start.
    pub fn turned_away(&self) -> u64 {
        self.turned_away
    }

    /// Whether calls or transactions still use this TCP connection (so idleness is no reason
    /// to close it).
    pub fn transport_in_use(&self, conn: ConnId) -> bool {
        let tcp = Transport::Tcp(conn);
        self.calls.values().any(|c| c.peer.transport == tcp)
            || self.server.values().any(|e| e.transport == tcp)
            || self.client.values().any(|e| e.peer.transport == tcp)
    }

    /// The TCP connection is gone: calls signalled over it end, its transactions are dropped.
    pub fn handle_transport_closed(&mut self, now: Instant, conn: ConnId) {
        let gone = Transport::Tcp(conn);
        let calls: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.peer.transport == gone)
            .map(|(id, _)| *id)
            .collect();
        for call in calls {
            self.end_call(now, call);
            self.events.push_back(Event::Terminated {
                call,
                reason: TerminationReason::TransportClosed,
            });
        }
        self.close_outgoing(gone);
        self.transmits.retain(|t| t.transport != gone);
        let admission = &mut self.admission;
        self.server.retain(|_, e| {
            let keep = e.transport != gone;
            if !keep {
                admission.closed(e.source);
            }
            keep
        });
        self.client.retain(|_, e| e.peer.transport != gone);
        let server = &self.server;
        self.merges.retain(|_, k| server.contains_key(k));
    }

    /// Answers the INVITE waiting on `call`: 1xx, 2xx (dialog confirmed by ACK, resent until
    /// then) or 3xx-6xx (the call ends).
    pub fn respond(
        &mut self,
        now: Instant,
        call: CallId,
        status: u16,
        reason: &str,
        body: Option<Body>,
    ) -> Result<(), SipError> {
        self.answer_invite(now, call, false, Answer::new(status, reason, body))
    }

    /// Answers the re-INVITE waiting on `call`; a non-2xx leaves the dialog as it was.
    pub fn respond_reinvite(
        &mut self,
        now: Instant,
        call: CallId,
        status: u16,
        reason: &str,
        body: Option<Body>,
    ) -> Result<(), SipError> {
        self.answer_invite(now, call, true, Answer::new(status, reason, body))
    }

    /// Rejects the pending INVITE or re-INVITE of `call` (status 300..700) with extra
    /// headers, such as the Warning a 488 carries.
    pub fn reject(
        &mut self,
        now: Instant,
        call: CallId,
        reinvite: bool,
        status: u16,
        reason: &str,
        headers: Vec<(&'static str, String)>,
    ) -> Result<(), SipError> {
        if status < 300 {
            return Err(SipError::InvalidStatus);
        }
        let answer = Answer {
            headers,
            ..Answer::new(status, reason, None)
        };
        self.answer_invite(now, call, reinvite, answer)
    }

    /// Hangs up. An unanswered incoming call is rejected with 480 (no further event); a ringing
    /// dial-out is cancelled ([`Event::Rejected`] follows); a 2xx not yet acknowledged is
    /// followed by BYE once the ACK arrives (§15.1.2). A BYE ends with [`Event::Terminated`].
    pub fn bye(&mut self, now: Instant, call: CallId) -> Result<(), SipError> {
        if !self.calls.contains_key(&call) {
            return self.cancel(now, call);
        }
        let c = self.calls.get_mut(&call).ok_or(SipError::UnknownCall)?;
        if c.awaiting_ack.is_some() {
            c.bye_after_ack = true;
            return Ok(());
        }
        if c.invite.as_ref().is_some_and(|p| !p.reinvite) {
            return self.respond(now, call, 480, "Temporarily Unavailable", None);
        }
        self.send_bye(now, call, true);
        Ok(())
    }

    /// Sends INFO with this body on an established call.
    pub fn info(&mut self, now: Instant, call: CallId, body: Body) -> Result<RequestId, SipError> {
        self.request(now, call, "INFO", Some(body))
    }

    /// Sends an in-dialog request (not INVITE/ACK/CANCEL/BYE); [`Event::Response`] follows.
    pub fn request(
        &mut self,
        now: Instant,
        call: CallId,
        method: &str,
        body: Option<Body>,
    ) -> Result<RequestId, SipError> {
        if !super::parse::is_token(method) || ["INVITE", "ACK", "CANCEL", "BYE"].contains(&method) {
            return Err(SipError::InvalidMethod);
        }
        let c = self.calls.get(&call).ok_or(SipError::UnknownCall)?;
        if c.awaiting_ack.is_some() || c.invite.as_ref().is_some_and(|p| !p.reinvite) {
            return Err(SipError::NotEstablished);
        }
        let id = RequestId(self.fresh_id());
        self.send_request(now, call, method, body.as_ref(), Purpose::Request(id));
        Ok(id)
    }

    // ---- responses we send --------------------------------------------------------------

    fn answer_invite(
        &mut self,
        now: Instant,
        call: CallId,
        reinvite: bool,
        answer: Answer<'_>,
    ) -> Result<(), SipError> {
        let Answer {
            status,
            reason,
            body,
            headers: mut extra,
        } = answer;
        if !(100..700).contains(&status) {
            return Err(SipError::InvalidStatus);
        }
        let c = self.calls.get_mut(&call).ok_or(SipError::UnknownCall)?;
        let p = c
            .invite
            .as_ref()
            .filter(|p| p.reinvite == reinvite)
            .ok_or(SipError::NoPendingInvite)?;
        let (key, cseq, transport) = (p.key.clone(), p.cseq, c.peer.transport);
        if status >= 200 {
            c.invite = None;
        }
        if (200..300).contains(&status) {
            c.awaiting_ack = Some((cseq, key.clone()));
        }
        if status > 100 && status < 300 {
            extra.push(("Contact", self.contact(transport)));
            // Dialog-forming responses reflect Record-Route so proxies stay on the path (§12.1.1).
            let routes = self
                .server
                .get(&key)
                .map(|e| e.req.headers_named("Record-Route"));
            extra.extend(
                routes
                    .into_iter()
                    .flatten()
                    .map(|r| ("Record-Route", r.to_string())),
            );
        }
        if (200..300).contains(&status) {
            extra.push(("Allow", ALLOW.to_string()));
        }
        self.reply(now, &key, status, reason, extra, body.as_ref());
        if status >= 300 && !reinvite {
            self.end_call(now, call);
        }
        Ok(())
    }

    /// Sends a response within server transaction `key` and lets the transaction resend it.
    fn reply(
        &mut self,
        now: Instant,
        key: &TxKey,
        status: u16,
        reason: &str,
        mut extra: Vec<(&str, String)>,
        body: Option<&Body>,
    ) {
        let t = self.config.timers;
        let Some(mut e) = self.server.get_mut(key) else {
            return;
        };
        extra.push(("Server", self.config.user_agent.clone()));
        let parts = ResponseParts {
            status,
            reason,
            to_tag: (status > 100).then_some(e.to_tag.as_str()),
            headers: &extra,
            body,
        };
        let bytes = build_response(&e.req, e.to, &parts);
        if e.tx.respond(now, &t, status, bytes.clone()) {
            self.transmits.push_back(Transmit {
                transport: e.transport,
                to: e.to,
                bytes,
            });
        }
    }

    fn fire_server(&mut self, now: Instant, key: &TxKey, t: &Timers) {
        let Some(mut e) = self.server.get_due(key) else {
            return;
        };
        match e.tx.fire(now, t) {
            Fire::Nothing => {}
            Fire::Retransmit(bytes) => self.transmits.push_back(Transmit {
                transport: e.transport,
                to: e.to,
                bytes,
            }),
            Fire::TimedOut | Fire::Finished => {
                let (call, source) = (e.call, e.source);
                drop(e);
                let merge = self.server.remove(key).and_then(|e| e.merge);
                if let Some(m) = merge {
                    self.merges.remove(&m);
                }
                self.admission.closed(source);
                self.ack_timeout(now, call);
            }
        }
    }

    /// Timer H for a 2xx: the dialog never got confirmed, so end it with a BYE (§13.3.1.4).
    fn ack_timeout(&mut self, now: Instant, call: Option<CallId>) {
        let Some(call) = call else { return };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.awaiting_ack.take().is_none() {
            return;
        }
        self.send_bye(now, call, false);
        self.events.push_back(Event::Terminated {
            call,
            reason: TerminationReason::AckTimeout,
        });
    }

    // ---- requests we send ---------------------------------------------------------------

    fn send_bye(&mut self, now: Instant, call: CallId, report: bool) {
        self.send_request(now, call, "BYE", None, Purpose::Bye { report });
        self.end_call(now, call);
    }

    fn send_request(
        &mut self,
        now: Instant,
        call: CallId,
        method: &str,
        body: Option<&Body>,
        purpose: Purpose,
    ) {
        let Some(transport) = self.calls.get(&call).map(|c| c.peer.transport) else {
            return;
        };
        let (via, branch) = self.new_via(transport);
        let ua = self.config.user_agent.clone();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let bytes = c.dialog.request(method, &via, &ua, body);
        let peer = c.peer;
        self.transmits.push_back(Transmit {
            transport: peer.transport,
            to: peer.addr,
            bytes: bytes.clone(),
        });
        let tx = ClientTx::new(now, &self.config.timers, peer.transport.reliable(), bytes);
        self.client.insert(
            branch,
            ClientEntry {
                tx,
                call,
                method: method.to_string(),
                purpose,
                peer,
            },
        );
    }

    fn handle_response(&mut self, now: Instant, msg: &Message) {
        let Some(resp) = Response::from_message(msg) else {
            return;
        };
        if resp.cseq_method == "INVITE" {
            return self.outgoing_response(now, &resp, msg);
        }
        let t = self.config.timers;
        let Some(mut e) = self.client.get_mut(&resp.branch) else {
            return;
        };
        if e.method != resp.cseq_method {
            return;
        }
        if let Some(status) = e.tx.on_response(now, &t, resp.code) {
            let (call, event) = (e.call, final_event(&e, Some(status)));
            drop(e);
            self.events.extend(event);
            if status == 481 || status == 408 {
                // §12.2.1.2: the dialog is gone on the other side.
                if self.calls.contains_key(&call) {
                    self.send_bye(now, call, true);
                }
            }
        }
    }

    fn fire_client(&mut self, now: Instant, branch: &str, t: &Timers) {
        let Some(mut e) = self.client.get_due(branch) else {
            return;
        };
        match e.tx.fire(now, t) {
            Fire::Nothing => {}
            Fire::Retransmit(bytes) => self.transmits.push_back(Transmit {
                transport: e.peer.transport,
                to: e.peer.addr,
                bytes,
            }),
            Fire::TimedOut => {
                let event = final_event(&e, None);
                drop(e);
                self.events.extend(event);
                self.client.remove(branch);
            }
            Fire::Finished => {
                drop(e);
                self.client.remove(branch);
            }
        }
    }

    // ---- bookkeeping --------------------------------------------------------------------

    /// Forgets the call, first closing what it left open: an unanswered INVITE gets 487 and
    /// an unacknowledged 2xx stops being resent.
    fn end_call(&mut self, now: Instant, call: CallId) {
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        if let Some(a) = c.admitted {
            self.admission.call_closed(a.source, a.confirmed);
        }
        self.dialogs.remove(&dialog_key(&c.dialog));
        if let Some(p) = c.invite {
            self.reply(now, &p.key, 487, "Request Terminated", vec![], None);
        }
        if let Some((_, key)) = c.awaiting_ack
            && let Some(mut e) = self.server.get_mut(&key)
        {
            e.tx.ack(now, &self.config.timers);
        }
    }

    /// Gives memory back after a flood: maps and queues keep their largest capacity otherwise.
    fn release_memory(&mut self) {
        self.server.shrink();
        shrink(&mut self.merges);
        self.client.shrink();
        self.outgoing.shrink();
        shrink(&mut self.calls);
        shrink(&mut self.dialogs);
        if oversized(self.transmits.len(), self.transmits.capacity()) {
            self.transmits.shrink_to_fit();
        }
        if oversized(self.events.len(), self.events.capacity()) {
            self.events.shrink_to_fit();
        }
    }

    /// A Via for a request we originate, with a fresh branch (returned too).
    fn new_via(&mut self, transport: Transport) -> (String, String) {
        let branch = format!("{MAGIC}{}", self.fresh_token());
        let (proto, port) = match transport {
            Transport::Udp => ("UDP", self.config.udp_port),
            Transport::Tcp(_) => ("TCP", self.config.tcp_port),
        };
        let host = bracket(&self.config.contact_host);
        let via = format!("SIP/2.0/{proto} {host}:{port};branch={branch};rport");
        (via, branch)
    }

    fn contact(&self, transport: Transport) -> String {
        let host = bracket(&self.config.contact_host);
        match transport {
            Transport::Udp => format!("<sip:chorus@{host}:{}>", self.config.udp_port),
            Transport::Tcp(_) => {
                format!("<sip:chorus@{host}:{};transport=tcp>", self.config.tcp_port)
            }
        }
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Tags and branches: unique per endpoint (counter) and unpredictable (random hash).
    fn fresh_token(&mut self) -> String {
        let n = self.fresh_id();
        format!("{:x}{n:x}", self.random.hash_one(n) >> 16)
    }
}

fn dialog_key(d: &Dialog) -> DialogKey {
    (d.call_id.clone(), d.local_tag.clone(), d.remote_tag.clone())
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// What the TU hears when a client transaction ends; `None` status means timer F.
fn final_event(e: &ClientEntry, status: Option<u16>) -> Option<Event> {
    match e.purpose {
        Purpose::Bye { report: false } | Purpose::Cancel => None,
        Purpose::Bye { report: true } => Some(Event::Terminated {
            call: e.call,
            reason: status.map_or(
                TerminationReason::ByeTimeout,
                TerminationReason::ByeCompleted,
            ),
        }),
        Purpose::Request(request) => Some(Event::Response {
            call: e.call,
            request,
            status: status.unwrap_or(408),
        }),
    }
}

/// The application's final or provisional answer to an INVITE.
struct Answer<'a> {
    status: u16,
    reason: &'a str,
    body: Option<Body>,
    headers: Vec<(&'static str, String)>,
}

impl<'a> Answer<'a> {
    fn new(status: u16, reason: &'a str, body: Option<Body>) -> Self {
        Answer {
            status,
            reason,
            body,
            headers: Vec::new(),
        }
    }
}

/// Shrinks a map holding under a quarter of its capacity.
fn shrink<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>) {
    if oversized(map.len(), map.capacity()) {
        map.shrink_to_fit();
    }
}
