//! Calls we place (dial-out): the INVITE client transaction, CANCEL, the ACKs, and the
//! dialog the answer creates.

use super::*;
use crate::sip::dialog::OutgoingInvite;
use crate::sip::digest;
use crate::sip::transaction::{ClientInviteTx, InviteReply};

/// A call to place with [`Endpoint::invite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// Request-URI, e.g. `sip:bob@192.0.2.7:5060`.
    pub target: String,
    /// Where to send it: resolving the target is the application's business.
    pub to_addr: SocketAddr,
    pub protocol: Protocol,
    /// Our From without tag, e.g. `"Conference 42" <sip:42@chorus.example>`.
    pub from: String,
    /// Their To; `<target>` when `None`.
    pub to: Option<String>,
    /// Extra headers (e.g. X-*).
    pub headers: Vec<(String, String)>,
    /// The offer (dial-out always offers in the INVITE).
    pub body: Option<Body>,
    /// The handle to use, chosen by the application before the INVITE exists (a call
    /// plane that binds the call's RTP ports first). It must have [`CallId::APP_BIT`] set,
    /// which the endpoint's own handles never have, and be unique. `None`: a fresh one.
    pub call: Option<CallId>,
    /// The Call-ID header (Kazoo's `Outbound-Call-ID`); `None`: a random one.
    pub call_id: Option<String>,
    /// Answers one 401/407 challenge (a trunk that wants digest auth).
    pub auth: Option<DialAuth>,
}

/// The credentials a dial-out answers a digest challenge with.
#[derive(Clone, PartialEq, Eq)]
pub struct DialAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for DialAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DialAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

pub(super) struct Outgoing {
    call: CallId,
    pub(super) tx: ClientInviteTx,
    invite: OutgoingInvite,
    peer: Peer,
    /// The last ACK we sent, resent when the final response is retransmitted.
    ack: Option<Vec<u8>>,
    cancel_requested: bool,
    /// What a retry with credentials resends.
    headers: Vec<(String, String)>,
    body: Option<Body>,
    /// `None` once used: a second challenge is a rejection.
    auth: Option<DialAuth>,
    /// Replaced by the INVITE that answered its challenge: it only absorbs retransmissions.
    superseded: bool,
}

impl Deadline for Outgoing {
    fn deadline(&self) -> Option<Instant> {
        self.tx.next_timeout()
    }
}

impl Endpoint {
    /// Places a call; [`Event::Progress`], then [`Event::Answered`] or [`Event::Rejected`].
    pub fn invite(&mut self, now: Instant, dial: Dial) -> CallId {
        let call = dial
            .call
            .filter(|c| c.0 & CallId::APP_BIT != 0)
            .unwrap_or_else(|| CallId(self.fresh_id()));
        let transport = self.transport_to(dial.to_addr, dial.protocol);
        let (via, _) = self.new_via(transport);
        let call_id = match dial.call_id {
            Some(id) => id,
            None => format!("{}@{}", self.fresh_token(), self.config.contact_host),
        };
        let invite = OutgoingInvite {
            to: dial.to.unwrap_or_else(|| format!("<{}>", dial.target)),
            target: dial.target,
            via,
            from: dial.from,
            local_tag: self.fresh_token(),
            call_id,
            cseq: 1,
        };
        let peer = Peer {
            addr: dial.to_addr,
            transport,
        };
        let mut headers = vec![
            ("Contact".to_string(), self.contact(transport)),
            ("Allow".to_string(), ALLOW.to_string()),
            ("User-Agent".to_string(), self.config.user_agent.clone()),
        ];
        headers.extend(dial.headers);
        let outgoing = Outgoing {
            call,
            // Replaced by `send_invite` with the INVITE's bytes.
            tx: ClientInviteTx::new(now, &self.config.timers, true, Vec::new()),
            invite,
            peer,
            ack: None,
            cancel_requested: false,
            headers,
            body: dial.body,
            auth: dial.auth,
            superseded: false,
        };
        self.send_invite(now, outgoing, None);
        call
    }

    /// Sends `o`'s INVITE (with `authorization`, a header name and value, when answering a
    /// challenge) on a new branch.
    fn send_invite(
        &mut self,
        now: Instant,
        mut o: Outgoing,
        authorization: Option<(&str, String)>,
    ) {
        let (via, branch) = self.new_via(o.peer.transport);
        o.invite.via = via;
        let mut headers: Vec<(&str, String)> = o
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect();
        headers.extend(authorization);
        let bytes = o
            .invite
            .request("INVITE", &o.invite.to, &headers, o.body.as_ref());
        self.send_to(o.peer, bytes.clone());
        o.tx = ClientInviteTx::new(now, &self.config.timers, o.peer.transport.reliable(), bytes);
        self.outgoing.insert(branch, o);
    }

    /// A 401/407 to an INVITE with credentials: the same INVITE again, next CSeq, with the
    /// answer (RFC 3261 §22.2). False when it cannot be answered.
    fn answer_challenge(&mut self, now: Instant, branch: &str, status: u16, msg: &Message) -> bool {
        let (challenge, header) = match status {
            401 => ("WWW-Authenticate", "Authorization"),
            _ => ("Proxy-Authenticate", "Proxy-Authorization"),
        };
        let cnonce = self.fresh_token();
        let Some(mut o) = self.outgoing.get_mut(branch) else {
            return false;
        };
        let Some(auth) = o.auth.take().filter(|_| !o.cancel_requested) else {
            return false;
        };
        let invite = &o.invite;
        let answer = msg.header(challenge).and_then(|c| {
            digest::answer(
                c,
                &auth.username,
                &auth.password,
                "INVITE",
                &invite.target,
                &cnonce,
            )
        });
        let Some(answer) = answer else {
            return false;
        };
        o.superseded = true;
        let retry = Outgoing {
            call: o.call,
            // Replaced by `send_invite` with the INVITE's bytes.
            tx: ClientInviteTx::new(now, &self.config.timers, true, Vec::new()),
            invite: OutgoingInvite {
                cseq: o.invite.cseq + 1,
                ..o.invite.clone()
            },
            peer: o.peer,
            ack: None,
            cancel_requested: false,
            headers: o.headers.clone(),
            body: o.body.clone(),
            auth: None,
            superseded: false,
        };
        drop(o);
        self.send_invite(now, retry, Some((header, answer)));
        true
    }

    /// Cancels a dial-out not yet answered: CANCEL goes out once the callee has sent a
    /// provisional response (§9.1); [`Event::Rejected`] with 487 (usually) follows.
    pub fn cancel(&mut self, now: Instant, call: CallId) -> Result<(), SipError> {
        let branch = (self.outgoing.iter())
            .find(|(_, o)| o.call == call && !o.superseded)
            .map(|(branch, _)| branch.clone())
            .ok_or(SipError::UnknownCall)?;
        let mut o = (self.outgoing.get_mut(&branch)).ok_or(SipError::UnknownCall)?;
        if o.ack.is_some() || o.cancel_requested {
            return Err(SipError::NoPendingInvite);
        }
        o.cancel_requested = true;
        if o.tx.proceeding() {
            drop(o);
            self.send_cancel(now, &branch);
        }
        Ok(())
    }

    fn send_cancel(&mut self, now: Instant, branch: &str) {
        let Some(mut o) = self.outgoing.get_mut(branch) else {
            return;
        };
        o.tx.cancel_sent(now, &self.config.timers);
        let headers = [("User-Agent", self.config.user_agent.clone())];
        let bytes = o.invite.request("CANCEL", &o.invite.to, &headers, None);
        let (call, peer) = (o.call, o.peer);
        drop(o);
        self.transmits.push_back(Transmit {
            transport: peer.transport,
            to: peer.addr,
            bytes: bytes.clone(),
        });
        let tx = ClientTx::new(now, &self.config.timers, peer.transport.reliable(), bytes);
        let entry = ClientEntry {
            tx,
            call,
            method: "CANCEL".into(),
            purpose: Purpose::Cancel,
            peer,
        };
        self.client.insert(branch.to_string(), entry);
    }

    pub(super) fn outgoing_response(&mut self, now: Instant, resp: &Response, msg: &Message) {
        let t = self.config.timers;
        let Some(mut o) = self.outgoing.get_mut(&resp.branch) else {
            return;
        };
        let reply = o.tx.on_response(now, &t, resp.code);
        let ack = match reply {
            InviteReply::Rejected(_) => {
                let to = msg.header("To").unwrap_or(&o.invite.to).to_string();
                o.ack = Some(o.invite.request("ACK", &to, &[], None));
                o.ack.clone()
            }
            InviteReply::AnsweredAgain | InviteReply::RejectedAgain => o.ack.clone(),
            _ => None,
        };
        let (call, peer, cancel_requested) = (o.call, o.peer, o.cancel_requested);
        drop(o);
        if let Some(ack) = ack {
            self.send_to(peer, ack);
        }
        let body = response_body(msg);
        match reply {
            InviteReply::Provisional(status) => {
                self.events
                    .push_back(Event::Progress { call, status, body });
                if cancel_requested && !self.client.contains_key(&resp.branch) {
                    self.send_cancel(now, &resp.branch);
                }
            }
            InviteReply::Answered => self.answered(now, &resp.branch, msg, body),
            InviteReply::Rejected(status) => {
                let challenged = matches!(status, 401 | 407)
                    && self.answer_challenge(now, &resp.branch, status, msg);
                if !challenged {
                    self.events.push_back(Event::Rejected { call, status });
                }
            }
            InviteReply::AnsweredAgain | InviteReply::RejectedAgain | InviteReply::Ignored => {}
        }
    }

    /// The first 2xx: dialog, ACK, and either the call or (if cancelled meanwhile) a BYE.
    fn answered(&mut self, now: Instant, branch: &str, msg: &Message, body: Option<Body>) {
        let Some(o) = self.outgoing.get(branch) else {
            return;
        };
        let (call, peer, cancelled, cseq) = (o.call, o.peer, o.cancel_requested, o.invite.cseq);
        let Some(dialog) = Dialog::from_answer(&o.invite, msg) else {
            return self.events.push_back(Event::Rejected { call, status: 502 });
        };
        let (via, _) = self.new_via(peer.transport);
        let ack = dialog.ack(cseq, &via, &self.config.user_agent);
        if let Some(mut o) = self.outgoing.get_mut(branch) {
            o.ack = Some(ack.clone());
        }
        self.send_to(peer, ack);
        self.dialogs.insert(dialog_key(&dialog), call);
        let c = Call {
            dialog,
            peer,
            invite: None,
            awaiting_ack: None,
            bye_after_ack: false,
            admitted: None,
        };
        self.calls.insert(call, c);
        if cancelled {
            // The answer crossed our CANCEL: end the call we did not want (§15).
            self.send_bye(now, call, false);
            self.events.push_back(Event::Rejected { call, status: 487 });
        } else {
            self.events.push_back(Event::Answered { call, body });
        }
    }

    pub(super) fn fire_outgoing(&mut self, now: Instant, branch: &str) {
        let Some(mut o) = self.outgoing.get_due(branch) else {
            return;
        };
        let fire = o.tx.fire(now);
        let (call, peer, cancelled, superseded) =
            (o.call, o.peer, o.cancel_requested, o.superseded);
        drop(o);
        match fire {
            Fire::Nothing => {}
            Fire::Retransmit(bytes) => self.send_to(peer, bytes),
            Fire::TimedOut => {
                self.outgoing.remove(branch);
                if superseded {
                    return;
                }
                let status = if cancelled { 487 } else { 408 };
                self.events.push_back(Event::Rejected { call, status });
            }
            Fire::Finished => {
                self.outgoing.remove(branch);
            }
        }
    }

    /// Dial-outs still waiting on a closed connection fail.
    /// UDP, or our TCP connection to `addr`: an open one is reused (RFC 3261 §18.1.1), else
    /// a new one is asked of the transport ([`Self::poll_connect`]) and used at once (the
    /// transport queues what is sent on it until it connects, or reports it closed).
    fn transport_to(&mut self, addr: SocketAddr, protocol: Protocol) -> Transport {
        if protocol == Protocol::Udp {
            return Transport::Udp;
        }
        if let Some(conn) = self.outbound.get(&addr) {
            return Transport::Tcp(*conn);
        }
        let conn = ConnId(ConnId::OUTBOUND_BIT | self.fresh_id());
        self.outbound.insert(addr, conn);
        self.connects.push_back((conn, addr));
        Transport::Tcp(conn)
    }

    /// A TCP connection to open (see [`Self::transport_to`]); the transport reports its end
    /// with [`Self::handle_transport_closed`], a failed connect included.
    pub fn poll_connect(&mut self) -> Option<(ConnId, SocketAddr)> {
        self.connects.pop_front()
    }

    pub(super) fn close_outgoing(&mut self, gone: Transport) {
        if let Transport::Tcp(conn) = gone {
            self.outbound.retain(|_, c| *c != conn);
        }
        let calls: Vec<(String, CallId, bool)> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.peer.transport == gone)
            .map(|(b, o)| (b.clone(), o.call, o.ack.is_none() && !o.superseded))
            .collect();
        for (branch, call, pending) in calls {
            self.outgoing.remove(&branch);
            if pending {
                let reason = TerminationReason::TransportClosed;
                self.events.push_back(Event::Terminated { call, reason });
            }
        }
    }

    fn send_to(&mut self, peer: Peer, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit {
            transport: peer.transport,
            to: peer.addr,
            bytes,
        });
    }
}

fn response_body(msg: &Message) -> Option<Body> {
    (!msg.body.is_empty()).then(|| Body {
        content_type: msg
            .header("Content-Type")
            .unwrap_or("application/octet-stream")
            .to_string(),
        bytes: msg.body.clone(),
    })
}
