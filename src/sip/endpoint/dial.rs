//! Calls we place (dial-out): the INVITE client transaction, CANCEL, the ACKs, and the
//! dialog the answer creates.

use super::*;
use crate::sip::dialog::OutgoingInvite;
use crate::sip::transaction::{ClientInviteTx, InviteReply};

/// A call to place with [`Endpoint::invite`].
#[derive(Debug, Clone)]
pub struct Dial {
    /// Request-URI, e.g. `sip:bob@192.0.2.7:5060`.
    pub target: String,
    /// Where to send it: resolving the target is the application's business.
    pub to_addr: SocketAddr,
    pub transport: Transport,
    /// Our From without tag, e.g. `"Conference 42" <sip:42@chorus.example>`.
    pub from: String,
    /// Their To; `<target>` when `None`.
    pub to: Option<String>,
    /// Extra headers (e.g. X-*).
    pub headers: Vec<(String, String)>,
    /// The offer (dial-out always offers in the INVITE).
    pub body: Option<Body>,
}

pub(super) struct Outgoing {
    call: CallId,
    pub(super) tx: ClientInviteTx,
    invite: OutgoingInvite,
    peer: Peer,
    /// The last ACK we sent, resent when the final response is retransmitted.
    ack: Option<Vec<u8>>,
    cancel_requested: bool,
}

impl Deadline for Outgoing {
    fn deadline(&self) -> Option<Instant> {
        self.tx.next_timeout()
    }
}

impl Endpoint {
    /// Places a call; [`Event::Progress`], then [`Event::Answered`] or [`Event::Rejected`].
    pub fn invite(&mut self, now: Instant, dial: Dial) -> CallId {
        let call = CallId(self.fresh_id());
        let (via, branch) = self.new_via(dial.transport);
        let invite = OutgoingInvite {
            to: dial.to.unwrap_or_else(|| format!("<{}>", dial.target)),
            target: dial.target,
            via,
            from: dial.from,
            local_tag: self.fresh_token(),
            call_id: format!("{}@{}", self.fresh_token(), self.config.contact_host),
            cseq: 1,
        };
        let mut headers: Vec<(&str, String)> = vec![
            ("Contact", self.contact(dial.transport)),
            ("Allow", ALLOW.to_string()),
            ("User-Agent", self.config.user_agent.clone()),
        ];
        headers.extend(dial.headers.iter().map(|(n, v)| (n.as_str(), v.clone())));
        let bytes = invite.request("INVITE", &invite.to, &headers, dial.body.as_ref());
        let peer = Peer {
            addr: dial.to_addr,
            transport: dial.transport,
        };
        self.transmits.push_back(Transmit {
            transport: peer.transport,
            to: peer.addr,
            bytes: bytes.clone(),
        });
        let tx = ClientInviteTx::new(now, &self.config.timers, peer.transport.reliable(), bytes);
        let outgoing = Outgoing {
            call,
            tx,
            invite,
            peer,
            ack: None,
            cancel_requested: false,
        };
        self.outgoing.insert(branch, outgoing);
        call
    }

    /// Cancels a dial-out not yet answered: CANCEL goes out once the callee has sent a
    /// provisional response (§9.1); [`Event::Rejected`] with 487 (usually) follows.
    pub fn cancel(&mut self, now: Instant, call: CallId) -> Result<(), SipError> {
        let branch = (self.outgoing.iter())
            .find(|(_, o)| o.call == call)
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
                self.events.push_back(Event::Rejected { call, status })
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
        let (fire, call, peer, cancelled) = (o.tx.fire(now), o.call, o.peer, o.cancel_requested);
        drop(o);
        match fire {
            Fire::Nothing => {}
            Fire::Retransmit(bytes) => self.send_to(peer, bytes),
            Fire::TimedOut => {
                self.outgoing.remove(branch);
                let status = if cancelled { 487 } else { 408 };
                self.events.push_back(Event::Rejected { call, status });
            }
            Fire::Finished => {
                self.outgoing.remove(branch);
            }
        }
    }

    /// Dial-outs still waiting on a closed connection fail.
    pub(super) fn close_outgoing(&mut self, gone: Transport) {
        let calls: Vec<(String, CallId, bool)> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.peer.transport == gone)
            .map(|(b, o)| (b.clone(), o.call, o.ack.is_none()))
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
