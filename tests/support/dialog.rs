//! The phone's side of one SIP dialog: identifiers, CSeq, route set, and the requests and
//! responses it writes as text.

use super::sip_text::{self, Message};
use std::net::SocketAddr;

/// How the phone talks SIP to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// A request as sent, kept for retransmission, CANCEL and matching its responses.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub text: String,
    pub method: String,
    pub uri: String,
    pub cseq: u32,
    pub branch: String,
}

pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    local: SocketAddr,
    local_uri: String,
    remote_uri: String,
    /// Request-URI of in-dialog requests: the server's Contact once answered.
    target: String,
    routes: Vec<String>,
    cseq: u32,
    transport: Transport,
}

impl Dialog {
    pub fn new(
        local: SocketAddr,
        server: SocketAddr,
        number: &str,
        user: &str,
        transport: Transport,
    ) -> Dialog {
        let remote_uri = format!("sip:{number}@{server}");
        Dialog {
            call_id: format!("{}@chorus-test-phone", super::unique_token()),
            local_tag: super::unique_token(),
            remote_tag: None,
            local,
            local_uri: format!("sip:{user}@{local}"),
            target: remote_uri.clone(),
            remote_uri,
            routes: Vec::new(),
            cseq: 0,
            transport,
        }
    }

    /// Addresses the call to `number@domain` (Request-URI and To), still sent to the server.
    pub fn address_to(&mut self, number: &str, domain: &str) {
        self.remote_uri = format!("sip:{number}@{domain}");
        self.target = self.remote_uri.clone();
    }

    /// A new request in this dialog (or the initial INVITE), with the next CSeq.
    pub fn request(&mut self, method: &str, body: Option<(&str, &str)>) -> Outgoing {
        self.cseq += 1;
        self.build(method, self.cseq, &super::branch(), body)
    }

    /// The ACK of a 2xx: its own transaction, same CSeq number as the INVITE.
    pub fn ack_2xx(&self, invite_cseq: u32, body: Option<(&str, &str)>) -> Outgoing {
        self.build("ACK", invite_cseq, &super::branch(), body)
    }

    /// The ACK of a failure response: part of the INVITE transaction (same branch and URI).
    pub fn ack_failure(&self, invite: &Outgoing, response: &Message) -> String {
        let to = response.header("To").unwrap_or_default();
        self.lines(
            "ACK",
            &invite.uri,
            invite.cseq,
            &invite.branch,
            to,
            &[],
            None,
        )
    }

    /// CANCEL of a pending INVITE: same branch, Request-URI, From, To and CSeq number.
    pub fn cancel(&self, invite: &Outgoing) -> String {
        let to = format!("<{}>", self.remote_uri);
        self.lines(
            "CANCEL",
            &invite.uri,
            invite.cseq,
            &invite.branch,
            &to,
            &[],
            None,
        )
    }

    /// Takes the dialog state from a 2xx to our INVITE: tag, target and route set.
    pub fn establish(&mut self, response: &Message) {
        self.remote_tag = response.tag("To").map(str::to_string);
        if let Some(contact) = response.header("Contact") {
            self.target = sip_text::uri_of(contact).to_string();
        }
        // A UAC uses the Record-Route of the response in reverse order (RFC 3261 12.1.2).
        self.routes = response
            .headers_all("Record-Route")
            .map(str::to_string)
            .collect();
        self.routes.reverse();
    }

    /// A response to a request the server sent us.
    pub fn respond(
        &self,
        request: &Message,
        status: u16,
        reason: &str,
        body: Option<(&str, &str)>,
    ) -> String {
        let mut head = format!("SIP/2.0 {status} {reason}\r\n");
        for via in request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Via"))
        {
            head += &format!("Via: {}\r\n", via.1);
        }
        let to = request.header("To").unwrap_or_default();
        let to = if sip_text::param(to, "tag").is_some() {
            to.to_string()
        } else {
            format!("{to};tag={}", self.local_tag)
        };
        for name in ["From", "Call-ID", "CSeq"] {
            head += &format!("{name}: {}\r\n", request.header(name).unwrap_or_default());
        }
        head += &format!("To: {to}\r\n");
        if status / 100 == 2 && matches!(request.method(), Some("INVITE" | "OPTIONS")) {
            head += &format!("Contact: {}\r\n", self.contact());
            head += "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO\r\nAccept: application/sdp\r\n";
        }
        finish(head, body)
    }

    fn build(&self, method: &str, cseq: u32, branch: &str, body: Option<(&str, &str)>) -> Outgoing {
        let to = match &self.remote_tag {
            Some(tag) => format!("<{}>;tag={tag}", self.remote_uri),
            None => format!("<{}>", self.remote_uri),
        };
        let routes: Vec<String> = self.routes.iter().map(|r| format!("Route: {r}")).collect();
        Outgoing {
            text: self.lines(method, &self.target, cseq, branch, &to, &routes, body),
            method: method.to_string(),
            uri: self.target.clone(),
            cseq,
            branch: branch.to_string(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn lines(
        &self,
        method: &str,
        uri: &str,
        cseq: u32,
        branch: &str,
        to: &str,
        routes: &[String],
        body: Option<(&str, &str)>,
    ) -> String {
        let transport = self.transport.via_name();
        let mut head = format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <{}>;tag={}\r\n\
             To: {to}\r\n\
             Call-ID: {}\r\n\
             CSeq: {cseq} {method}\r\n",
            self.local, self.local_uri, self.local_tag, self.call_id
        );
        for route in routes {
            head += &format!("{route}\r\n");
        }
        if method == "INVITE" {
            head += &format!(
                "Contact: {}\r\nAllow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO\r\n",
                self.contact()
            );
        }
        head += "User-Agent: chorus-test-phone\r\n";
        finish(head, body)
    }

    fn contact(&self) -> String {
        match self.transport {
            Transport::Udp => format!("<{}>", self.local_uri),
            Transport::Tcp => format!("<{};transport=tcp>", self.local_uri),
        }
    }
}

/// Appends the body headers and the body.
fn finish(mut head: String, body: Option<(&str, &str)>) -> String {
    match body {
        Some((content_type, body)) => {
            head += &format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
        None => head += "Content-Length: 0\r\n\r\n",
    }
    head
}
