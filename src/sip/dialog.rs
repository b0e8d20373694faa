//! UAS-side dialog state (RFC 3261 §12): identifiers, route set, remote target, CSeq spaces,
//! and the in-dialog requests we originate.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::message::{Body, NameAddr, Request};
use super::parse::Message;

#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// The INVITE's To value (without tag): our From in requests we send.
    local_uri: String,
    /// The INVITE's From value, tag included: our To.
    remote: String,
    /// Where in-dialog requests are addressed (the peer's Contact), updated by re-INVITE.
    pub remote_target: String,
    /// Record-Route of the INVITE, in order: the UAS uses it as is (§12.1.1).
    route_set: Vec<String>,
    remote_cseq: u32,
    local_cseq: u32,
}

impl Dialog {
    /// Builds the dialog of an initial INVITE; `None` if it has no usable Contact.
    pub fn from_invite(req: &Request, local_tag: String, first_local_cseq: u32) -> Option<Self> {
        Some(Self {
            call_id: req.call_id.clone(),
            local_tag,
            remote_tag: req.from.tag.clone().unwrap_or_default(),
            local_uri: req.msg.header("To")?.to_string(),
            remote: req.msg.header("From")?.to_string(),
            remote_target: contact_uri(&req.msg)?,
            route_set: req
                .msg
                .headers_named("Record-Route")
                .map(str::to_string)
                .collect(),
            remote_cseq: req.cseq,
            local_cseq: first_local_cseq,
        })
    }

    /// Accepts an in-dialog request's CSeq if it is higher than the last (§12.2.2).
    pub fn accept_remote_cseq(&mut self, cseq: u32) -> bool {
        if cseq <= self.remote_cseq {
            return false;
        }
        self.remote_cseq = cseq;
        true
    }

    /// A target refresh (re-INVITE) moves the remote target to its Contact.
    pub fn refresh_target(&mut self, msg: &Message) {
        if let Some(uri) = contact_uri(msg) {
            self.remote_target = uri;
        }
    }

    /// The dialog a 2xx to our INVITE creates (§12.1.2): route set reversed, target from the
    /// answer's Contact. `None` if the answer lacks To tag or Contact.
    pub fn from_answer(invite: &OutgoingInvite, answer: &Message) -> Option<Self> {
        let to = answer.header("To")?;
        Some(Self {
            call_id: invite.call_id.clone(),
            local_tag: invite.local_tag.clone(),
            remote_tag: NameAddr::parse(to)?.tag?,
            local_uri: invite.from.clone(),
            remote: to.to_string(),
            remote_target: contact_uri(answer)?,
            route_set: answer
                .headers_named("Record-Route")
                .rev()
                .map(str::to_string)
                .collect(),
            remote_cseq: 0,
            local_cseq: invite.cseq,
        })
    }

    /// The text of a request within this dialog, taking the next local CSeq.
    pub fn request(
        &mut self,
        method: &str,
        via: &str,
        user_agent: &str,
        body: Option<&Body>,
    ) -> Vec<u8> {
        self.local_cseq += 1;
        self.build(method, self.local_cseq, via, user_agent, body)
    }

    /// The ACK for a 2xx: the INVITE's CSeq number, its own branch (§13.2.2.4).
    pub fn ack(&self, cseq: u32, via: &str, user_agent: &str) -> Vec<u8> {
        self.build("ACK", cseq, via, user_agent, None)
    }

    fn build(
        &self,
        method: &str,
        cseq: u32,
        via: &str,
        user_agent: &str,
        body: Option<&Body>,
    ) -> Vec<u8> {
        let mut out = format!(
            "{method} {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n",
            self.remote_target
        );
        let _ = write!(
            out,
            "From: {};tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n",
            self.local_uri, self.local_tag, self.remote, self.call_id
        );
        for route in &self.route_set {
            let _ = write!(out, "Route: {route}\r\n");
        }
        super::message::finish(out, &[("User-Agent", user_agent.to_string())], body)
    }
}

/// An INVITE we sent, kept until its transaction ends: what CANCEL and the non-2xx ACK copy
/// (§9.1, §17.1.1.3) and what the dialog is built from.
#[derive(Debug, Clone)]
pub struct OutgoingInvite {
    pub target: String,
    pub via: String,
    /// Our From without tag.
    pub from: String,
    pub local_tag: String,
    /// Their To as we sent it (no tag).
    pub to: String,
    pub call_id: String,
    pub cseq: u32,
}

impl OutgoingInvite {
    /// INVITE, CANCEL or the ACK of a non-2xx (`to` then carries the response's To tag).
    pub fn request(
        &self,
        method: &str,
        to: &str,
        headers: &[(&str, String)],
        body: Option<&Body>,
    ) -> Vec<u8> {
        let mut out = format!(
            "{method} {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n",
            self.target, self.via
        );
        let _ = write!(
            out,
            "From: {};tag={}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\n",
            self.from, self.local_tag, self.call_id, self.cseq
        );
        super::message::finish(out, headers, body)
    }
}

fn contact_uri(msg: &Message) -> Option<String> {
    NameAddr::parse(msg.header("Contact")?).map(|n| n.uri)
}

/// Where a dialog's peer is reached: the address its last request came from (symmetric
/// signalling, so phones behind NAT work) on the same transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    pub transport: super::Transport,
}
