//! Requests from peers: admission, authentication, validation and screening, then new
//! calls, in-dialog requests, CANCEL and ACK.

use super::*;
use crate::sip::admission::{Kind, Refusal, Verdict};
use crate::sip::digest::Outcome;

/// Methods that exist (RFC 3261 and extensions) but that a conference server does not serve.
const NOT_ALLOWED: &[&str] = &[
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "MESSAGE",
    "REFER",
    "UPDATE",
    "PRACK",
];

impl Endpoint {
    pub(super) fn handle_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        msg: Message,
    ) {
        if !self.admission.permits(from.ip()) {
            return self.refuse(now, &msg, from, transport, Refusal::Forbidden);
        }
        let req = match Request::from_message(msg.clone()) {
            Ok(req) => req,
            Err(d) => {
                if self.admission.may_refuse(now, from.ip()) {
                    self.reply_stateless(&msg, from, transport, d.status, &d.reason, vec![]);
                } else {
                    self.turned_away += 1;
                }
                return;
            }
        };
        let key = TxKey::of(&req);
        if req.method != "ACK"
            && let Some(entry) = self.server.get(&key)
        {
            // A retransmission: the last response again, nothing new for the TU.
            if let Some(bytes) = entry.tx.last_response() {
                self.transmits.push_back(Transmit {
                    transport: entry.transport,
                    to: entry.to,
                    bytes: bytes.to_vec(),
                });
            }
            return;
        }
        if req.method == "ACK" {
            return self.handle_ack(now, &key, req);
        }
        let kind = self.kind_of(&req, &key);
        match self.admission.admit(now, from.ip(), kind) {
            Verdict::Admit => {}
            Verdict::Refuse(why) => return self.send_refusal(&req.msg, from, transport, why),
            Verdict::Drop => {
                self.turned_away += 1;
                return;
            }
        }
        if kind == Kind::NewInvite && !self.authenticated(now, &req, from, transport) {
            return;
        }
        let merge = req.to.tag.is_none().then(|| {
            (
                req.call_id.clone(),
                req.from.tag.clone().unwrap_or_default(),
                req.cseq,
                req.method.clone(),
            )
        });
        let merged = merge
            .as_ref()
            .and_then(|m| self.merges.get(m))
            .is_some_and(|k| self.server.contains_key(k));
        let to = match transport {
            Transport::Udp => response_destination(Some(&req.via), from),
            Transport::Tcp(_) => from,
        };
        let to_tag = self.fresh_token();
        self.admission.opened(from.ip());
        self.server.insert(
            key.clone(),
            ServerEntry {
                tx: ServerTx::new(req.method == "INVITE", transport.reliable()),
                req: req.msg.clone(),
                source: from.ip(),
                to,
                transport,
                to_tag,
                call: None,
                merge: None,
            },
        );
        if merged {
            return self.reply(now, &key, 482, "Loop Detected", vec![], None);
        }
        if let (Some(m), Some(mut e)) = (merge, self.server.get_mut(&key)) {
            e.merge = Some(m.clone());
            self.merges.insert(m, key.clone());
        }
        if let Err(d) = self.screen(&req) {
            let extra = match d.status {
                405 => vec![("Allow", ALLOW.to_string())],
                415 => vec![("Accept", ACCEPT.to_string())],
                420 => vec![("Unsupported", unsupported(&req).join(", "))],
                _ => vec![],
            };
            return self.reply(now, &key, d.status, &d.reason, extra, None);
        }
        let peer = Peer {
            addr: from,
            transport,
        };
        match (req.method.as_str(), req.to.tag.is_some()) {
            ("INVITE", false) => self.new_invite(now, key, req, peer),
            ("OPTIONS", false) => self.reply(now, &key, 200, "OK", capabilities(), None),
            ("REGISTER", _) => self.incoming_register(now, key, req, peer),
            ("CANCEL", _) => self.incoming_cancel(now, &key),
            (_, false) => self.reply(
                now,
                &key,
                481,
                "Call/Transaction Does Not Exist",
                vec![],
                None,
            ),
            (_, true) => self.in_dialog(now, key, req, peer),
        }
    }

    /// What admission weighs this request as: requests of calls and transactions we hold
    /// pass, whatever the rates.
    fn kind_of(&self, req: &Request, key: &TxKey) -> Kind {
        match (req.method.as_str(), req.to.tag.is_some()) {
            ("INVITE", false) => Kind::NewInvite,
            ("REGISTER", false) => Kind::Register,
            ("CANCEL", _) if self.server.contains_key(&key.invite()) => Kind::Existing,
            (_, true) if self.dialogs.contains_key(&in_dialog_key(req)) => Kind::Existing,
            _ => Kind::Other,
        }
    }

    /// With dial-in authentication on, a new INVITE without the right credentials is
    /// challenged (401) or refused (403), statelessly; true when it may go on.
    fn authenticated(
        &mut self,
        now: Instant,
        req: &Request,
        from: SocketAddr,
        transport: Transport,
    ) -> bool {
        let Some(digest) = self.digest.as_mut() else {
            return true;
        };
        let credentials = req.msg.headers_named("Authorization");
        match digest.check(now, &req.method, credentials) {
            Outcome::Authorized { .. } => true,
            Outcome::Challenge { stale } => {
                let challenges = digest.challenges(now, stale);
                let headers = challenges
                    .into_iter()
                    .map(|c| ("WWW-Authenticate", c))
                    .collect();
                self.reply_stateless(&req.msg, from, transport, 401, "Unauthorized", headers);
                false
            }
            Outcome::Refused => {
                self.refuse(now, &req.msg, from, transport, Refusal::Forbidden);
                false
            }
        }
    }

    /// Answers with `why` if the refusal budget allows it.
    fn refuse(
        &mut self,
        now: Instant,
        msg: &Message,
        from: SocketAddr,
        transport: Transport,
        why: Refusal,
    ) {
        if self.admission.may_refuse(now, from.ip()) {
            self.send_refusal(msg, from, transport, why);
        } else {
            self.turned_away += 1;
        }
    }

    /// 403, or 503 with Retry-After, without a transaction: a retransmission is weighed again.
    fn send_refusal(
        &mut self,
        msg: &Message,
        from: SocketAddr,
        transport: Transport,
        why: Refusal,
    ) {
        self.turned_away += 1;
        match why {
            Refusal::Forbidden => {
                self.reply_stateless(msg, from, transport, 403, "Forbidden", vec![])
            }
            Refusal::Busy => {
                let retry = self.admission.limits().retry_after_secs.to_string();
                let headers = vec![("Retry-After", retry)];
                self.reply_stateless(msg, from, transport, 503, "Service Unavailable", headers)
            }
        }
    }

    /// Method, Max-Forwards, Require and body checks, in §8.2 order.
    fn screen(&self, req: &Request) -> Result<(), Defect> {
        let m = req.method.as_str();
        let registrar = m == "REGISTER" && self.config.registrar;
        if NOT_ALLOWED.contains(&m) && !registrar {
            return Err(Defect::new(405, "Method Not Allowed"));
        }
        if !ALLOW.split(", ").any(|a| a == m) && !registrar {
            return Err(Defect::new(501, "Not Implemented"));
        }
        if req.max_forwards == Some(0) {
            return Err(Defect::new(483, "Too Many Hops"));
        }
        if m != "CANCEL" && !unsupported(req).is_empty() {
            return Err(Defect::new(420, "Bad Extension"));
        }
        let encoded = req
            .msg
            .header("Content-Encoding")
            .is_some_and(|e| !e.eq_ignore_ascii_case("identity"));
        let foreign_body = m == "INVITE"
            && !req.msg.body.is_empty()
            && !req
                .msg
                .header("Content-Type")
                .is_some_and(|t| t.to_ascii_lowercase().starts_with(ACCEPT));
        if encoded || foreign_body {
            return Err(Defect::new(415, "Unsupported Media Type"));
        }
        Ok(())
    }

    fn new_invite(&mut self, now: Instant, key: TxKey, req: Request, peer: Peer) {
        let local_tag = self
            .server
            .get(&key)
            .map(|e| e.to_tag.clone())
            .unwrap_or_default();
        let first_cseq = (self.random.hash_one(self.next_id) % 10_000) as u32 + 1;
        let Some(dialog) = Dialog::from_invite(&req, local_tag, first_cseq) else {
            return self.reply(now, &key, 400, "Missing Contact", vec![], None);
        };
        let call = CallId(self.fresh_id());
        self.admission.call_opened(peer.addr.ip());
        self.dialogs.insert(dialog_key(&dialog), call);
        self.calls.insert(
            call,
            Call {
                dialog,
                peer,
                invite: Some(PendingInvite {
                    key: key.clone(),
                    cseq: req.cseq,
                    reinvite: false,
                }),
                awaiting_ack: None,
                bye_after_ack: false,
                admitted: Some(Admitted {
                    source: peer.addr.ip(),
                    confirmed: false,
                }),
            },
        );
        if let Some(mut e) = self.server.get_mut(&key) {
            e.call = Some(call);
        }
        self.reply(now, &key, 100, "Trying", vec![], None);
        const PASSED: &[&str] = &["User-Agent", "P-Asserted-Identity"];
        let headers = req
            .msg
            .headers
            .iter()
            .filter(|(n, _)| {
                n.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("x-"))
                    || PASSED.iter().any(|p| p.eq_ignore_ascii_case(n))
            })
            .cloned()
            .collect();
        let uri_user = uri_user(&req.uri);
        self.events.push_back(Event::Invite {
            call,
            call_id: req.call_id.clone(),
            body: req.body(),
            from: req.from,
            to: req.to,
            request_uri: req.uri,
            request_uri_user: uri_user,
            headers,
            source: peer.addr,
            transport: peer.transport,
        });
    }

    fn in_dialog(&mut self, now: Instant, key: TxKey, req: Request, peer: Peer) {
        let found = self.dialogs.get(&in_dialog_key(&req)).copied();
        let Some((call, c)) = found.and_then(|call| Some((call, self.calls.get_mut(&call)?)))
        else {
            return self.reply(
                now,
                &key,
                481,
                "Call/Transaction Does Not Exist",
                vec![],
                None,
            );
        };
        if !c.dialog.accept_remote_cseq(req.cseq) {
            return self.reply(now, &key, 500, "CSeq Out Of Order", vec![], None);
        }
        c.peer = peer;
        if let Some(mut e) = self.server.get_mut(&key) {
            e.call = Some(call);
        }
        match req.method.as_str() {
            "BYE" => {
                self.reply(now, &key, 200, "OK", vec![], None);
                self.end_call(now, call);
                self.events.push_back(Event::Bye { call });
            }
            "INFO" => {
                self.reply(now, &key, 200, "OK", vec![], None);
                self.events.push_back(Event::Info {
                    call,
                    body: req.body(),
                });
            }
            "OPTIONS" => self.reply(now, &key, 200, "OK", capabilities(), None),
            _ => self.reinvite(now, key, call, req),
        }
    }

    fn reinvite(&mut self, now: Instant, key: TxKey, call: CallId, req: Request) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.invite.is_some() || c.awaiting_ack.is_some() {
            // §14.2: one offer/answer at a time.
            let retry = ("Retry-After", "2".to_string());
            return self.reply(now, &key, 500, "Server Internal Error", vec![retry], None);
        }
        c.dialog.refresh_target(&req.msg);
        c.invite = Some(PendingInvite {
            key: key.clone(),
            cseq: req.cseq,
            reinvite: true,
        });
        self.reply(now, &key, 100, "Trying", vec![], None);
        self.events.push_back(Event::ReInvite {
            call,
            body: req.body(),
        });
    }

    fn incoming_cancel(&mut self, now: Instant, key: &TxKey) {
        let invite_key = key.invite();
        let pending = self
            .server
            .get(&invite_key)
            .filter(|e| e.tx.final_status().is_none())
            .map(|e| e.call);
        let Some(call) = pending else {
            return self.reply(
                now,
                key,
                481,
                "Call/Transaction Does Not Exist",
                vec![],
                None,
            );
        };
        self.reply(now, key, 200, "OK", vec![], None);
        self.reply(now, &invite_key, 487, "Request Terminated", vec![], None);
        let Some(call) = call else { return };
        let reinvite = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.invite.take())
            .is_some_and(|p| p.reinvite);
        if !reinvite {
            self.end_call(now, call);
            self.events.push_back(Event::Cancelled { call });
        }
    }

    fn handle_ack(&mut self, now: Instant, key: &TxKey, req: Request) {
        let t = self.config.timers;
        if let Some(mut e) = self.server.get_mut(key)
            && e.tx.final_status().is_some_and(|s| s >= 300)
        {
            e.tx.ack(now, &t);
            return;
        }
        let Some(call) = self.dialogs.get(&in_dialog_key(&req)).copied() else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some((_, invite)) = c.awaiting_ack.take_if(|(cseq, _)| *cseq == req.cseq) else {
            return;
        };
        if let Some(a) = c.admitted.as_mut().filter(|a| !a.confirmed) {
            a.confirmed = true;
            self.admission.call_confirmed(a.source);
        }
        let bye = std::mem::take(&mut c.bye_after_ack);
        if let Some(mut e) = self.server.get_mut(&invite) {
            e.tx.ack(now, &t);
        }
        self.events.push_back(Event::Ack {
            call,
            body: req.body(),
        });
        if bye {
            self.send_bye(now, call, true);
        }
    }

    /// Answers a request outside any transaction: only requests (never ACK) with a Via we
    /// can route to; anything else is dropped.
    fn reply_stateless(
        &mut self,
        msg: &Message,
        from: SocketAddr,
        transport: Transport,
        status: u16,
        reason: &str,
        mut headers: Vec<(&'static str, String)>,
    ) {
        if matches!(&msg.start, StartLine::Request { method, .. } if method == "ACK") {
            return;
        }
        let Some(via) = msg.header("Via") else {
            return;
        };
        let to = match transport {
            Transport::Udp => response_destination(Via::parse(via).as_ref(), from),
            Transport::Tcp(_) => from,
        };
        let tag = self.fresh_token();
        headers.push(("Server", self.config.user_agent.clone()));
        let parts = ResponseParts {
            status,
            reason,
            to_tag: Some(&tag),
            headers: &headers,
            body: None,
        };
        self.transmits.push_back(Transmit {
            transport,
            to,
            bytes: build_response(msg, from, &parts),
        });
    }
}

/// The dialog an in-dialog request names, as our dialogs are keyed (local tag first).
fn in_dialog_key(req: &Request) -> DialogKey {
    (
        req.call_id.clone(),
        req.to.tag.clone().unwrap_or_default(),
        req.from.tag.clone().unwrap_or_default(),
    )
}

/// What OPTIONS advertises.
fn capabilities() -> Vec<(&'static str, String)> {
    vec![("Allow", ALLOW.to_string()), ("Accept", ACCEPT.to_string())]
}

/// Option tags in Require that we do not support (all of them: we support no extensions).
fn unsupported(req: &Request) -> Vec<String> {
    req.msg
        .headers_named("Require")
        .map(str::to_string)
        .collect()
}
