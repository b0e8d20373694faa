//! The vocabulary of calling out: a dial order as the shell resolves it, and the legs and
//! orders the call plane keeps while they ring (`super::dialout` drives them).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::api::service::{ConfRef, DialArgs, DialFlags};
use crate::conference::document::ConferenceDoc;
use crate::conference::settings::ConferencesConfig;
use crate::conference::{profile, profile_keys};
use crate::sdp::SdpSession;
use crate::sip::{CallId, DialAuth, Protocol};

use super::locate::ServerName;

/// A display name as a quoted string (RFC 3261 §25.1: `"` and `\` escaped).
pub fn quoted(name: &str) -> String {
    let escaped: String = name
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

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

/// Our caller id on a dial: the request's, else the conference profile's `caller-id-name` /
/// `caller-id-number` (checked when written, and again here: a system profile may predate
/// the check), else the conference's name and `conference`.
pub fn caller_id(
    dial: &DialArgs,
    conf: &ConfRef,
    doc: &ConferenceDoc,
    config: &ConferencesConfig,
) -> (String, String) {
    let profile = profile::resolve(doc, config, None).ok();
    let own = |key: &str, ok: fn(&str) -> bool| {
        let value = profile.as_ref().and_then(|p| p.other.get(key));
        value.filter(|v| ok(v)).cloned()
    };
    let name = dial
        .caller_id_name
        .clone()
        .or_else(|| own("caller-id-name", profile_keys::caller_id_name_ok));
    let number = dial
        .caller_id_number
        .clone()
        .or_else(|| own("caller-id-number", profile_keys::caller_id_number_ok));
    (
        name.unwrap_or_else(|| doc.name().unwrap_or(&conf.id).to_string()),
        number.unwrap_or_else(|| "conference".into()),
    )
}

/// One entry of the order's `endpoints` (or one branch of a ring group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    /// Empty: nothing to ring (a device with no registration, a number with no route).
    pub contacts: Vec<Contact>,
    pub ring: Ring,
    /// It starts ringing this long after its turn comes (a ring group member's `delay`).
    pub delay: Duration,
    /// It is given up this long after it started ringing (a ring group member's
    /// `timeout`); `None`: only the order's deadline ends it.
    pub timeout: Option<Duration>,
    /// A dialed number whose callflow starts with a bridging node (a ring group, a
    /// device, a user, resources): that node's branches and plan ring as an order of their
    /// own whose first answer joins, and whose outcome is this endpoint's, unless a child
    /// for its failure rings next. `contacts` is then empty.
    pub callflow: Option<Box<NumberFlow>>,
}

/// A dialed number's callflow as far as it can ring into a conference: a bridging node,
/// and the one to ring next for each failure (`busy`, `no_answer`, ..., else `_`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberFlow {
    pub node: BridgeNode,
    pub children: Vec<(String, NumberFlow)>,
}

impl NumberFlow {
    /// The child for a failure named `child`, else the `_` one, taken out.
    pub fn take_child(&mut self, child: &str) -> Option<NumberFlow> {
        let at = |name: &str| self.children.iter().position(|(k, _)| k == name);
        let i = at(child).or_else(|| at("_"))?;
        Some(self.children.swap_remove(i).1)
    }
}

impl Endpoint {
    /// An endpoint that rings at once, until the order's deadline.
    pub fn new(id: String, contacts: Vec<Contact>, ring: Ring) -> Self {
        Endpoint {
            id,
            contacts,
            ring,
            delay: Duration::ZERO,
            timeout: None,
            callflow: None,
        }
    }

    /// Whether it has nothing to ring, not even through its callflow.
    pub fn rings_nothing(&self) -> bool {
        let mut branches = self.callflow.iter().flat_map(|c| &c.node.endpoints);
        self.contacts.is_empty() && branches.all(|b| b.contacts.is_empty())
    }
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
    /// A server named by DNS: the shell locates it when the leg is placed
    /// ([`super::output::Output::Resolve`], RFC 3263), off the plane; `addr` holds its
    /// port (5060 when none was given) until then.
    pub host: Option<ServerName>,
    pub protocol: Protocol,
    /// The caller id (name, number) this leg presents instead of the order's: a device's
    /// call forward with `keep_caller_id: false` shows the device's.
    pub caller_id: Option<(String, String)>,
    /// The callee must press 1 before it is bridged (a device's call forward with
    /// `require_keypress`); else the leg fails.
    pub confirm: bool,
}

/// A leg placed for an order, until it joined or failed.
pub(super) struct Leg {
    pub order: u64,
    pub endpoint: usize,
    pub contact: Contact,
    pub call_id: String,
    pub state: LegState,
    /// The other addresses of its server (SRV targets, A records) in the order they are
    /// tried: the next takes over on a timeout or 503 before the next gateway does.
    pub servers: VecDeque<SocketAddr>,
}

pub(super) enum LegState {
    /// Waiting for its RTP port pair.
    Ports,
    /// INVITE sent: the SDP session that made the offer.
    Ringing(Box<SdpSession>),
    /// Answered and joining: the mixer's confirmation decides the endpoint.
    Joining,
    /// Answered, asked to press 1 by this time (its media is up, see
    /// `super::dialout::CONFIRM_KEY`).
    Confirming(Instant, Box<crate::sdp::Negotiated>),
    /// Still ringing, its early media heard by the caller (`super::callee_early`).
    Early(Box<EarlyLeg>),
}

/// A branch whose early media the caller hears (`super::callee_early`).
pub(super) struct EarlyLeg {
    /// The session that offered: the 200 brings the answer that settles it (without
    /// 100rel, the 183's SDP is a preview of it).
    pub sdp: SdpSession,
    /// What the 183's SDP negotiated.
    pub neg: crate::sdp::Negotiated,
    /// Where its media runs: the worker of the caller's early media.
    pub worker: usize,
}

/// What a bridging callflow node rings (device, user, ring group, resources): here, with
/// the dial vocabulary, so a dialed number's endpoint can carry one without an import cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNode {
    pub endpoints: Vec<Endpoint>,
    pub plan: Plan,
    /// What a caller hears while it rings (a ring group's `ringback`: a media id or a
    /// `tone_stream://`); `None`: the default ringback tone.
    pub ringback: Option<String>,
    /// Kazoo's `ignore_early_media`: the caller hears that ringback even when a branch
    /// sends early media of its own (see `super::callee_early`).
    pub ignore_early_media: bool,
}

/// How an order's endpoints take turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Ends every endpoint still ringing.
    pub timeout: Duration,
    /// One endpoint at a time, the next once it failed (ring group `single`); else all at
    /// once, each after its delay.
    pub sequential: bool,
    /// Times the whole order rings again when every endpoint failed (ring group `repeats`).
    pub repeats: u32,
    /// One endpoint refusing (busy, declined) ends the order (ring group
    /// `fail_on_single_reject`).
    pub fail_on_reject: bool,
}

impl Plan {
    /// Every endpoint at once, one round, until `timeout`.
    pub fn once(timeout: Duration) -> Self {
        Plan {
            timeout,
            sequential: false,
            repeats: 0,
            fail_on_reject: false,
        }
    }
}

/// What an answered leg is for.
pub(super) enum Purpose {
    /// An API `dial`: each endpoint's leg joins the conference with the flags.
    Conference(Box<Joining>),
    /// A callflow's bridging module: the first leg to answer, of any endpoint, is bridged
    /// to this unanswered caller and every other leg is cancelled.
    Bridge { caller: CallId },
    /// A service-number caller brought to its conference's focus node (a cluster): the
    /// leg joins the caller's private room; when none answers, the room ends, and with it
    /// the caller's call.
    Relay { room: ConfRef },
}

/// The conference a `dial` order's legs join.
#[derive(Clone)]
pub(super) struct Joining {
    pub conf: ConfRef,
    pub doc: ConferenceDoc,
    pub config: ConferencesConfig,
    pub flags: DialFlags,
    /// The order and endpoint this order rings for (a dialed number's callflow): its
    /// first answer wins it, and its outcome becomes that endpoint's.
    pub within: Option<(u64, usize)>,
}

/// Where an endpoint of an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Turn {
    /// Waiting for the endpoint before it to fail (sequential orders).
    Waiting,
    /// Rings at this time (its delay).
    StartsAt(Instant),
    /// Its legs are placed; given up at this time, if it has a timeout.
    Ringing(Option<Instant>),
    /// Its outcome is decided.
    Done,
}

/// An order in progress.
pub(super) struct Order {
    pub purpose: Purpose,
    pub from: String,
    pub deadline: Instant,
    pub plan: Plan,
    /// The endpoints as ordered: each round starts them again.
    pub endpoints: Vec<Endpoint>,
    pub turns: Vec<Turn>,
    /// Per endpoint: its id and outcome once decided.
    pub outcomes: Vec<(String, Option<Result<String, String>>)>,
    /// Per endpoint: the gateways a failing one fails over to.
    pub next: Vec<VecDeque<Contact>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dial(name: Option<&str>, number: Option<&str>) -> DialArgs {
        DialArgs {
            endpoints: Vec::new(),
            caller_id_name: name.map(str::to_string),
            caller_id_number: number.map(str::to_string),
            timeout: Duration::from_secs(20),
            flags: DialFlags::default(),
            outbound_call_id: None,
        }
    }

    #[test]
    fn the_caller_id_is_the_requests_else_the_profiles_else_the_conferences() {
        let conf = ConfRef {
            account: "a".into(),
            id: "standup".into(),
        };
        let config = ConferencesConfig::default();
        let plain = ConferenceDoc::from_request(json!({"name": "Standup"})).unwrap();
        let profiled = ConferenceDoc::from_request(json!({"name": "Standup",
            "profile": {"caller-id-name": "Acme Bridge", "caller-id-number": "+15550100"}}))
        .unwrap();
        let id = |d: &DialArgs, doc: &ConferenceDoc| caller_id(d, &conf, doc, &config);
        assert_eq!(
            id(&dial(None, None), &plain),
            ("Standup".into(), "conference".into())
        );
        assert_eq!(
            id(&dial(None, None), &profiled),
            ("Acme Bridge".into(), "+15550100".into())
        );
        assert_eq!(
            id(&dial(Some("Ops"), Some("42")), &profiled),
            ("Ops".into(), "42".into())
        );
    }
}
