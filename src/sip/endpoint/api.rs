//! The public types of the endpoint API: handles, configuration, transmits, events, errors.

use std::net::SocketAddr;

use crate::sip::admission::{Acl, Limits};
use crate::sip::digest::Algorithm;
use crate::sip::message::{Body, NameAddr};
use crate::sip::transaction::Timers;

/// A TCP connection: accepted ones are numbered by the transport from 1, the ones the
/// endpoint asks for ([`crate::sip::Endpoint::poll_connect`]) carry [`ConnId::OUTBOUND_BIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

impl ConnId {
    pub const OUTBOUND_BIT: u64 = 1 << 62;
}

/// The transport a call we place asks for ([`crate::sip::Dial::protocol`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    #[default]
    Udp,
    /// Over the endpoint's connection to the callee's address, opened when there is none.
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp(ConnId),
}

impl Transport {
    /// TCP: no retransmissions below the TU, no absorption windows.
    pub fn reliable(self) -> bool {
        matches!(self, Transport::Tcp(_))
    }
}

/// Handle of one call (pending INVITE, then dialog). Never reused within an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl CallId {
    /// Set in handles an application chooses for its dial-outs ([`crate::sip::Dial::call`]);
    /// the endpoint counts its own from 1 and never reaches it. Not the top bit: the media
    /// workers shift call handles left by one into their socket tokens.
    pub const APP_BIT: u64 = 1 << 62;
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// Handle of an in-dialog request the application sent with [`Endpoint::request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub user_agent: String,
    /// Host (name or IP literal) put in our Contact and Via headers.
    pub contact_host: String,
    pub udp_port: u16,
    pub tcp_port: u16,
    pub timers: Timers,
    /// Rates and caps for requests from peers (see [`crate::sip::admission`]).
    pub limits: Limits,
    pub acl: Acl,
    /// New INVITEs must authenticate as one of these users; `None`: no challenge.
    pub auth: Option<DialInAuth>,
    /// REGISTER goes to the application ([`Endpoint::poll_register`]); else 405.
    pub registrar: bool,
}

/// A REGISTER awaiting [`Endpoint::respond_register`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegisterId(pub u64);

/// A REGISTER as the registrar needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingRegister {
    pub id: RegisterId,
    pub call_id: String,
    pub cseq: u32,
    /// The address-of-record (To): user and lower-case host.
    pub user: String,
    pub host: String,
    /// The Expires header.
    pub expires: Option<u32>,
    /// `Contact: *`.
    pub star: bool,
    /// Contact URIs and their `expires` parameters (none: a query).
    pub contacts: Vec<(String, Option<u32>)>,
    /// The Authorization header values.
    pub authorizations: Vec<String>,
    pub source: SocketAddr,
}

/// Digest credentials for dial-in calls.
#[derive(Clone)]
pub struct DialInAuth {
    pub realm: String,
    /// Offered in this order (RFC 8760: most preferred first).
    pub algorithms: Vec<Algorithm>,
    /// Username and password.
    pub users: Vec<(String, String)>,
}

impl std::fmt::Debug for DialInAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(u, _)| u.as_str()).collect();
        f.debug_struct("DialInAuth")
            .field("realm", &self.realm)
            .field("algorithms", &self.algorithms)
            .field("users", &users)
            .finish()
    }
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub transport: Transport,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminationReason {
    /// We answered 2xx and no ACK came within 64*T1 (timer H); we sent BYE.
    AckTimeout,
    /// Our BYE got this final status.
    ByeCompleted(u16),
    /// Our BYE was never answered (timer F).
    ByeTimeout,
    /// The TCP connection carrying the dialog closed.
    TransportClosed,
}

// A handful of events per call: boxing Invite would only make matching clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new call. Answer with [`Endpoint::respond`]; 100 Trying has already been sent.
    Invite {
        call: CallId,
        call_id: String,
        from: NameAddr,
        to: NameAddr,
        request_uri: String,
        request_uri_user: Option<String>,
        /// X-* headers and User-Agent, P-Asserted-Identity, as received.
        headers: Vec<(String, String)>,
        body: Option<Body>,
        source: SocketAddr,
        transport: Transport,
    },
    /// The ACK for our 2xx (initial or re-INVITE); with a late offer it carries the answer.
    Ack { call: CallId, body: Option<Body> },
    /// A re-INVITE; answer with [`Endpoint::respond_reinvite`].
    ReInvite { call: CallId, body: Option<Body> },
    /// An INFO (already answered 200).
    Info { call: CallId, body: Option<Body> },
    /// The peer hung up (already answered 200). The call is gone.
    Bye { call: CallId },
    /// The peer cancelled an unanswered INVITE (answered 487). The call is gone.
    Cancelled { call: CallId },
    /// Final status of a request sent with [`Endpoint::request`] (408 on timeout).
    Response {
        call: CallId,
        request: RequestId,
        status: u16,
    },
    /// A provisional response to our INVITE (dial-out); `body` is early media SDP if any.
    Progress {
        call: CallId,
        status: u16,
        body: Option<Body>,
    },
    /// Our INVITE was answered (ACK already sent); the call is established.
    Answered { call: CallId, body: Option<Body> },
    /// Our INVITE failed: the final status, 487 after cancel, 408 when nobody answered.
    Rejected { call: CallId, status: u16 },
    /// The call ended for a reason other than the peer's BYE or CANCEL.
    Terminated {
        call: CallId,
        reason: TerminationReason,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    #[error("no such call")]
    UnknownCall,
    #[error("no INVITE of that kind is waiting for an answer on this call")]
    NoPendingInvite,
    #[error("status must be 100..=699")]
    InvalidStatus,
    #[error("the call is not established")]
    NotEstablished,
    #[error("use bye(), or a method that is not INVITE/ACK/CANCEL/BYE")]
    InvalidMethod,
    #[error("the SIP task has stopped")]
    Stopped,
}
