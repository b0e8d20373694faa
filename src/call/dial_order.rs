//! The vocabulary of calling out: a dial order as the shell resolves it, and the legs and
//! orders the call plane keeps while they ring (`super::dialout` drives them).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::api::service::{ConfRef, DialFlags};
use crate::conference::document::ConferenceDoc;
use crate::conference::settings::ConferencesConfig;
use crate::sdp::SdpSession;
use crate::sip::DialAuth;

/// Legs one order may ring in all (a user's devices times their contacts).
pub const MAX_LEGS_PER_ORDER: usize = 16;

/// A dial as the shell resolved it.
#[derive(Debug, Clone)]
pub struct DialOrder {
    pub conf: ConfRef,
    /// The conference's document (an ad-hoc one when it has none) and its account's
    /// config: what opens the conference if the first leg to answer finds it closed.
    pub doc: ConferenceDoc,
    pub config: ConferencesConfig,
    pub endpoints: Vec<Endpoint>,
    /// Our From: `"caller_id_name" <sip:caller_id_number@host>`.
    pub caller_id_name: String,
    pub caller_id_number: String,
    pub timeout: Duration,
    pub flags: DialFlags,
    pub outbound_call_id: Option<String>,
}

/// One entry of the order's `endpoints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    /// Empty: nothing to ring (a device with no registration, a number with no route).
    pub contacts: Vec<Contact>,
    pub ring: Ring,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    /// Every contact at once (a device's registrations, a user's devices).
    Simultaneous,
    /// One after the other, the next when one fails with 5xx or no answer (a number's
    /// gateways).
    Failover,
}

/// Where one leg rings: the Request-URI, the address it is sent to (UDP), and the
/// credentials a trunk's challenge is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub uri: String,
    pub addr: SocketAddr,
    pub auth: Option<DialAuth>,
}

/// A leg placed for an order, until it joined or failed.
pub(super) struct Leg {
    pub order: u64,
    pub endpoint: usize,
    pub contact: Contact,
    pub call_id: String,
    pub state: LegState,
}

pub(super) enum LegState {
    /// Waiting for its RTP port pair.
    Ports,
    /// INVITE sent: the SDP session that made the offer.
    Ringing(Box<SdpSession>),
    /// Answered and joining: the mixer's confirmation decides the endpoint.
    Joining,
}

/// An order in progress.
pub(super) struct Order {
    pub conf: ConfRef,
    pub doc: ConferenceDoc,
    pub config: ConferencesConfig,
    pub flags: DialFlags,
    pub from: String,
    pub deadline: Instant,
    /// Per endpoint: its id and outcome once decided.
    pub outcomes: Vec<(String, Option<Result<String, String>>)>,
    /// Per endpoint: the gateways a failing one fails over to.
    pub next: Vec<VecDeque<Contact>>,
}
