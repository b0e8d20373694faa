//! Dial-out on the virtual clock: a leg answered, unanswered (timeout), busy, cancelled
//! when a sibling answers, and the bound on ringing legs.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;

use super::dial_order::{BridgeNode, NumberFlow};
use super::dial_order::{Contact, DialOrder, Endpoint, MAX_LEGS_PER_ORDER, Plan, Ring};
use super::locate::ServerName;
use super::output::SipAction;
use super::tests::{ACCOUNT, Harness, conferences};
use crate::api::events::EventName;
use crate::api::service::{ConfRef, DialFlags, EndpointResponse};
use crate::conference::document::ConferenceDoc;
use crate::conference::settings::ConferencesConfig;
use crate::sip::{Body, CallId, Dial, Event, Protocol, TerminationReason};

const ANSWER: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                      m=audio 30002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";

fn conf() -> ConfRef {
    ConfRef {
        account: ACCOUNT.into(),
        id: "open".into(),
    }
}

pub(super) fn contact(port: u16) -> Contact {
    Contact {
        uri: format!("sip:phone{port}@127.0.0.1:{port}"),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        auth: None,
        host: None,
        protocol: Protocol::Udp,
        caller_id: None,
        confirm: false,
    }
}

/// An order into conference "open" for `endpoints` (each a list of contact ports).
fn order(endpoints: &[&[u16]], flags: DialFlags) -> DialOrder {
    let doc = json!({"name": "open", "play_welcome": false});
    DialOrder {
        conf: conf(),
        doc: ConferenceDoc::from_map(doc.as_object().cloned().unwrap()),
        config: ConferencesConfig::default(),
        endpoints: endpoints
            .iter()
            .enumerate()
            .map(|(i, ports)| {
                let contacts = ports.iter().map(|p| contact(*p)).collect();
                Endpoint::new(format!("device{i}"), contacts, Ring::Simultaneous)
            })
            .collect(),
        caller_id_name: "Open".into(),
        caller_id_number: "1000".into(),
        timeout: Duration::from_secs(20),
        flags,
        outbound_call_id: Some("leg-one".into()),
    }
}

impl Harness {
    fn dial(&mut self, order: DialOrder) -> u64 {
        let id = self.plane.dial(order, self.now);
        self.run();
        id
    }

    /// The INVITEs sent so far.
    pub(super) fn invites(&self) -> Vec<Dial> {
        self.sip
            .iter()
            .filter_map(|a| match a {
                SipAction::Invite(d) => Some((**d).clone()),
                _ => None,
            })
            .collect()
    }

    pub(super) fn cancels(&self) -> Vec<CallId> {
        self.sip
            .iter()
            .filter_map(|a| match a {
                SipAction::Cancel { call } => Some(*call),
                _ => None,
            })
            .collect()
    }

    pub(super) fn answer_leg(&mut self, call: CallId) {
        let body = Some(Body {
            content_type: "application/sdp".into(),
            bytes: ANSWER.as_bytes().to_vec(),
        });
        self.sip_event(Event::Progress {
            call,
            status: 180,
            body: None,
        });
        self.sip_event(Event::Answered { call, body });
    }

    fn responses(&self, order: u64) -> Vec<EndpointResponse> {
        let found = self.dialed.iter().find(|(o, _)| *o == order);
        found
            .map(|(_, r)| r.clone())
            .expect("the order is answered")
    }
}

fn response(endpoint_id: &str, outcome: Result<&str, &str>) -> EndpointResponse {
    EndpointResponse {
        endpoint_id: endpoint_id.into(),
        outcome: outcome.map(str::to_string).map_err(str::to_string),
    }
}

#[test]
fn an_answered_leg_joins_with_its_flags_and_is_reported_once_added() {
    let mut h = Harness::new(conferences());
    let flags = DialFlags {
        mute: true,
        ..DialFlags::default()
    };
    let order = h.dial(order(&[&[5070]], flags));
    let [invite] = h.invites().try_into().expect("one INVITE");
    assert_eq!(invite.target, "sip:phone5070@127.0.0.1:5070");
    assert_eq!(invite.from, "\"Open\" <sip:1000@127.0.0.1>");
    assert_eq!(invite.call_id.as_deref(), Some("leg-one"));
    let offer = String::from_utf8_lossy(&invite.body.as_ref().expect("offer").bytes).into_owned();
    assert!(
        offer.contains("m=audio 40000 RTP/AVP"),
        "our port in the offer: {offer}"
    );
    let call = invite.call.expect("the plane chose the handle");
    h.answer_leg(call);
    assert_eq!(h.media, ["lobby", "confirm", "attach"]);
    assert!(h.dialed.is_empty(), "decided only once the mixer adds it");
    h.joined(call, 1);
    assert_eq!(h.responses(order), [response("device0", Ok("leg-one"))]);
    assert_eq!(
        h.events,
        [EventName::ConferenceCreate, EventName::AddMember]
    );
    let live = h.plane.live_state(ACCOUNT, "open").expect("running");
    assert_eq!(live.participants.len(), 1);
    assert!(!live.participants[0].speak, "joined muted");
    assert_eq!(live.participants[0].call.direction, "outbound");
    // It hangs up like any member.
    h.sip_event(Event::Bye { call });
    assert_eq!(h.plane.gauges(), (0, 0));
    assert!(h.plane.is_idle());
}

#[test]
fn no_answer_is_cancelled_at_the_timeout() {
    let mut h = Harness::new(conferences());
    let order = h.dial(order(&[&[5070]], DialFlags::default()));
    let call = h.invites()[0].call.unwrap();
    h.sip_event(Event::Progress {
        call,
        status: 180,
        body: None,
    });
    h.advance(Duration::from_secs(19));
    assert!(h.dialed.is_empty() && h.cancels().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.cancels(), [call]);
    assert_eq!(h.responses(order), [response("device0", Err("timeout"))]);
    assert_eq!(h.released, [call], "its port pair is freed");
    // The 487 that answers the CANCEL changes nothing.
    h.sip_event(Event::Rejected { call, status: 487 });
    assert_eq!(h.dialed.len(), 1);
    assert!(h.plane.is_idle());
}

#[test]
fn busy_fails_the_endpoint_with_its_cause() {
    let mut h = Harness::new(conferences());
    let order = h.dial(order(&[&[5070], &[5072]], DialFlags::default()));
    let invites = h.invites();
    h.sip_event(Event::Rejected {
        call: invites[0].call.unwrap(),
        status: 486,
    });
    assert!(h.dialed.is_empty(), "the other endpoint still rings");
    let other = invites[1].call.unwrap();
    h.answer_leg(other);
    h.joined(other, 1);
    assert_eq!(
        h.responses(order),
        [
            response("device0", Err("USER_BUSY")),
            response("device1", Ok(invites[1].call_id.as_deref().unwrap())),
        ]
    );
}

#[test]
fn the_first_answer_cancels_the_endpoints_other_contacts() {
    let mut h = Harness::new(conferences());
    let order = h.dial(order(&[&[5070, 5072, 5074]], DialFlags::default()));
    let calls: Vec<CallId> = h.invites().iter().map(|d| d.call.unwrap()).collect();
    assert_eq!(calls.len(), 3, "every contact rings at once");
    h.answer_leg(calls[1]);
    let mut cancelled = h.cancels();
    cancelled.sort();
    assert_eq!(cancelled, [calls[0], calls[2]]);
    // A 200 that crosses our CANCEL is hung up.
    h.sip_event(Event::Answered {
        call: calls[0],
        body: None,
    });
    assert_eq!(h.sip.last(), Some(&SipAction::Bye { call: calls[0] }));
    h.joined(calls[1], 1);
    assert_eq!(h.responses(order).len(), 1);
    assert!(h.responses(order)[0].outcome.is_ok());
    assert_eq!(h.plane.gauges(), (1, 1));
}

#[test]
fn an_unregistered_device_fails_at_once() {
    let mut h = Harness::new(conferences());
    let order = h.dial(order(&[&[]], DialFlags::default()));
    assert!(h.invites().is_empty());
    assert_eq!(
        h.responses(order),
        [response("device0", Err("USER_NOT_REGISTERED"))]
    );
}

#[test]
fn ringing_legs_per_account_are_bounded() {
    // The harness allows 4 ringing legs per account.
    let mut h = Harness::new(conferences());
    let first = h.dial(order(&[&[5070, 5072, 5074]], DialFlags::default()));
    let second = h.dial(order(&[&[5076], &[5078]], DialFlags::default()));
    assert_eq!(h.invites().len(), 4, "the fifth leg is refused");
    // Once the legs are done, there is room again.
    h.advance(Duration::from_secs(20));
    assert_eq!(h.responses(first), [response("device0", Err("timeout"))]);
    assert_eq!(
        h.responses(second),
        [
            response("device0", Err("timeout")),
            response("device1", Err("NORMAL_CIRCUIT_CONGESTION"))
        ]
    );
    h.dial(order(&[&[5080]], DialFlags::default()));
    assert_eq!(h.invites().len(), 5);
}

#[test]
fn join_existing_does_not_open_a_conference() {
    let mut h = Harness::new(conferences());
    let flags = DialFlags {
        join_existing: true,
        ..DialFlags::default()
    };
    let order = h.dial(order(&[&[5070]], flags));
    let call = h.invites()[0].call.unwrap();
    h.answer_leg(call);
    assert_eq!(h.sip.last(), Some(&SipAction::Bye { call }));
    assert_eq!(
        h.responses(order),
        [response("device0", Err("NO_ROUTE_DESTINATION"))]
    );
    assert_eq!(h.plane.gauges(), (0, 0));
}

#[test]
fn gateways_fail_over_on_5xx_but_not_on_busy() {
    let mut h = Harness::new(conferences());
    let mut trunk = order(&[&[5070, 5072, 5074]], DialFlags::default());
    trunk.endpoints[0].ring = Ring::Failover;
    let order = h.dial(trunk);
    let first = h.invites();
    assert_eq!(first.len(), 1, "one gateway at a time");
    h.sip_event(Event::Rejected {
        call: first[0].call.unwrap(),
        status: 503,
    });
    let invites = h.invites();
    assert_eq!(invites.len(), 2);
    assert_eq!(invites[1].target, "sip:phone5072@127.0.0.1:5072");
    assert!(h.dialed.is_empty());
    h.sip_event(Event::Rejected {
        call: invites[1].call.unwrap(),
        status: 486,
    });
    assert_eq!(
        h.invites().len(),
        2,
        "busy is the callee's answer: no failover"
    );
    assert_eq!(h.responses(order), [response("device0", Err("USER_BUSY"))]);
    assert!(h.plane.is_idle());
}

#[test]
fn a_gateway_that_never_answers_fails_over_on_408() {
    let mut h = Harness::new(conferences());
    let mut trunk = order(&[&[5070, 5072]], DialFlags::default());
    trunk.endpoints[0].ring = Ring::Failover;
    let order = h.dial(trunk);
    h.sip_event(Event::Rejected {
        call: h.invites()[0].call.unwrap(),
        status: 408,
    });
    let second = h.invites()[1].call.unwrap();
    h.answer_leg(second);
    h.joined(second, 1);
    assert!(h.responses(order)[0].outcome.is_ok());
}

#[test]
fn legs_per_order_are_bounded() {
    let mut h = Harness::new(conferences());
    h.plane.settings.max_outbound = 100;
    let ports: Vec<u16> = (0..=MAX_LEGS_PER_ORDER as u16).map(|i| 6000 + i).collect();
    let endpoints: Vec<&[u16]> = ports.iter().map(std::slice::from_ref).collect();
    let order = h.dial(order(&endpoints, DialFlags::default()));
    assert_eq!(h.invites().len(), MAX_LEGS_PER_ORDER);
    h.advance(Duration::from_secs(20));
    let last = h.responses(order).pop().unwrap();
    assert_eq!(last.outcome, Err("NORMAL_CIRCUIT_CONGESTION".to_string()));
}

/// An order for one number whose callflow rings `branches` (contact ports) with `plan`.
fn callflow_order(branches: &[u16], plan: Plan, branch_timeout: Option<u64>) -> DialOrder {
    let mut dial = order(&[&[]], DialFlags::default());
    let endpoints = branches
        .iter()
        .map(|p| {
            let mut e = Endpoint::new(format!("desk{p}"), vec![contact(*p)], Ring::Simultaneous);
            e.timeout = branch_timeout.map(Duration::from_secs);
            e
        })
        .collect();
    dial.endpoints[0] = Endpoint::new("5000".into(), Vec::new(), Ring::Failover);
    let node = BridgeNode {
        endpoints,
        plan,
        ringback: None,
        ignore_early_media: false,
    };
    let children = Vec::new();
    dial.endpoints[0].callflow = Some(Box::new(NumberFlow { node, children }));
    dial
}

/// `dial` whose number's callflow has a child `name` ringing `port`.
fn with_child(mut dial: DialOrder, name: &str, port: u16) -> DialOrder {
    let endpoint = Endpoint::new(
        format!("desk{port}"),
        vec![contact(port)],
        Ring::Simultaneous,
    );
    let node = BridgeNode {
        endpoints: vec![endpoint],
        plan: Plan::once(Duration::from_secs(30)),
        ringback: None,
        ignore_early_media: false,
    };
    let child = NumberFlow {
        node,
        children: Vec::new(),
    };
    let flow = dial.endpoints[0].callflow.as_mut().expect("a callflow");
    flow.children.push((name.into(), child));
    dial
}

#[test]
fn a_failed_numbers_callflow_rings_the_child_for_its_cause() {
    let mut h = Harness::new(conferences());
    let dial = callflow_order(&[5070], Plan::once(Duration::from_secs(30)), None);
    let dial = with_child(with_child(dial, "busy", 5074), "_", 5076);
    let order = h.dial(dial);
    let [first] = h.invites().try_into().expect("the first node");
    h.sip_event(Event::Rejected {
        call: first.call.unwrap(),
        status: 486,
    });
    let invites = h.invites();
    assert_eq!(invites.len(), 2);
    assert_eq!(
        invites[1].target, "sip:phone5074@127.0.0.1:5074",
        "busy: its child"
    );
    assert!(h.dialed.is_empty(), "not decided while the child rings");
    let call = invites[1].call.unwrap();
    h.answer_leg(call);
    h.joined(call, 1);
    let call_id = invites[1].call_id.as_deref().unwrap();
    assert_eq!(h.responses(order), [response("5000", Ok(call_id))]);
}

#[test]
fn a_number_rings_its_callflows_ring_group_and_the_first_answer_joins() {
    let mut h = Harness::new(conferences());
    let plan = Plan::once(Duration::from_secs(30));
    let order = h.dial(callflow_order(&[5070, 5072], plan, None));
    let invites = h.invites();
    let targets: Vec<&str> = invites.iter().map(|d| d.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "sip:phone5070@127.0.0.1:5070",
            "sip:phone5072@127.0.0.1:5072"
        ],
        "the group rings at once"
    );
    let (first, second) = (invites[0].call.unwrap(), invites[1].call.unwrap());
    h.answer_leg(second);
    assert_eq!(h.cancels(), [first], "the first answer wins the group");
    assert!(h.dialed.is_empty(), "decided once the mixer adds it");
    h.joined(second, 1);
    let call_id = invites[1].call_id.as_deref().unwrap();
    assert_eq!(h.responses(order), [response("5000", Ok(call_id))]);
    assert_eq!(
        h.events,
        [EventName::ConferenceCreate, EventName::AddMember]
    );
    assert_eq!(h.plane.gauges(), (1, 1));
}

#[test]
fn a_single_ring_group_behind_a_number_fails_with_its_busy_cause() {
    let mut h = Harness::new(conferences());
    let plan = Plan {
        sequential: true,
        ..Plan::once(Duration::from_secs(30))
    };
    let order = h.dial(callflow_order(&[5070, 5072], plan, Some(5)));
    let [first] = h.invites().try_into().expect("one member at a time");
    h.sip_event(Event::Rejected {
        call: first.call.unwrap(),
        status: 486,
    });
    let invites = h.invites();
    assert_eq!(invites.len(), 2, "busy: the next member rings");
    assert_eq!(invites[1].target, "sip:phone5072@127.0.0.1:5072");
    h.advance(Duration::from_secs(5));
    assert_eq!(h.cancels(), [invites[1].call.unwrap()]);
    assert_eq!(h.responses(order), [response("5000", Err("USER_BUSY"))]);
    assert!(h.plane.is_idle());
}

#[test]
fn the_dials_timeout_cancels_a_numbers_ring_group() {
    let mut h = Harness::new(conferences());
    let plan = Plan::once(Duration::from_secs(60));
    let dial = with_child(callflow_order(&[5070, 5072], plan, None), "_", 5074);
    let order = h.dial(dial);
    h.advance(Duration::from_secs(19));
    assert!(h.cancels().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.cancels().len(), 2, "at the dial's 20 s, every branch");
    assert_eq!(h.invites().len(), 2, "and the callflow stops there");
    assert_eq!(h.responses(order), [response("5000", Err("timeout"))]);
    assert!(h.plane.is_idle());
}

#[test]
fn a_gateway_named_by_dns_is_resolved_and_one_that_is_not_fails_over() {
    let mut h = Harness::new(conferences());
    let mut trunk = order(&[&[5070, 5072]], DialFlags::default());
    trunk.endpoints[0].ring = Ring::Failover;
    for (contact, name) in trunk.endpoints[0]
        .contacts
        .iter_mut()
        .zip(["gateway.invalid", "localhost"])
    {
        name_contact(contact, name, Some(contact.addr.port()));
    }
    let order = h.dial(trunk);
    let [invite] = h
        .invites()
        .try_into()
        .expect("the name that resolves rings");
    assert_eq!(invite.to_addr, SocketAddr::from(([127, 0, 0, 1], 5072)));
    h.answer_leg(invite.call.unwrap());
    h.joined(invite.call.unwrap(), 1);
    assert!(h.responses(order)[0].outcome.is_ok());
}

/// `contact` names its server `name` (at `port`, else located by SRV).
fn name_contact(contact: &mut Contact, name: &str, port: Option<u16>) {
    contact.host = Some(ServerName {
        name: name.into(),
        port,
    });
    contact.addr = SocketAddr::from(([0, 0, 0, 0], port.unwrap_or(5060)));
}

/// A number's two gateways, the first named `srv.test` whose SRV targets are 127.0.0.1 at
/// 5081, 5082 and 5083, the second at 5090.
fn srv_trunk() -> (Harness, u64) {
    let mut h = Harness::new(conferences());
    h.srv_servers = (5081..=5083)
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        .collect();
    let mut trunk = order(&[&[5060, 5090]], DialFlags::default());
    trunk.endpoints[0].ring = Ring::Failover;
    name_contact(&mut trunk.endpoints[0].contacts[0], "srv.test", None);
    let order = h.dial(trunk);
    (h, order)
}

/// The ports the INVITEs so far went to.
fn invited_ports(h: &Harness) -> Vec<u16> {
    h.invites().iter().map(|d| d.to_addr.port()).collect()
}

#[test]
fn a_timeout_or_503_tries_the_servers_next_address_before_the_next_gateway() {
    let (mut h, order) = srv_trunk();
    assert_eq!(invited_ports(&h), [5081], "the first SRV target first");
    let first = h.invites()[0].call.unwrap();
    h.sip_event(Event::Rejected {
        call: first,
        status: 503,
    });
    assert_eq!(invited_ports(&h), [5081, 5082], "503: the next SRV target");
    let second = h.invites()[1].call.unwrap();
    h.sip_event(Event::Rejected {
        call: second,
        status: 408,
    });
    assert_eq!(
        invited_ports(&h),
        [5081, 5082, 5083],
        "timeout: the next one"
    );
    let third = h.invites()[2].call.unwrap();
    h.answer_leg(third);
    h.joined(third, 1);
    assert!(h.responses(order)[0].outcome.is_ok());
    assert!(h.released.contains(&first) && h.released.contains(&second));
}

#[test]
fn another_failure_or_the_last_address_fails_over_to_the_next_gateway() {
    let (mut h, _) = srv_trunk();
    let first = h.invites()[0].call.unwrap();
    h.sip_event(Event::Rejected {
        call: first,
        status: 500,
    });
    assert_eq!(invited_ports(&h), [5081, 5090], "500: the server said no");

    let (mut h, _) = srv_trunk();
    for _ in 0..3 {
        let last = h.invites().last().unwrap().call.unwrap();
        h.sip_event(Event::Rejected {
            call: last,
            status: 503,
        });
    }
    assert_eq!(invited_ports(&h), [5081, 5082, 5083, 5090]);
}

#[test]
fn a_server_that_is_not_reached_tries_its_next_address() {
    let (mut h, _) = srv_trunk();
    let first = h.invites()[0].call.unwrap();
    h.sip_event(Event::Terminated {
        call: first,
        reason: TerminationReason::TransportClosed,
    });
    assert_eq!(invited_ports(&h), [5081, 5082]);
}

#[test]
fn a_leg_with_its_own_caller_id_presents_it_and_the_others_the_orders() {
    let mut h = Harness::new(conferences());
    let mut dial = order(&[&[5070, 5072]], DialFlags::default());
    dial.endpoints[0].contacts[1].caller_id = Some(("Desk".into(), "+14155550002".into()));
    h.dial(dial);
    let froms: Vec<String> = h.invites().into_iter().map(|d| d.from).collect();
    assert_eq!(
        froms,
        [
            "\"Open\" <sip:1000@127.0.0.1>",
            "\"Desk\" <sip:+14155550002@127.0.0.1>"
        ]
    );
}

/// A dialed forward that must confirm, answered: (harness, dial order, its leg).
fn answered_forward_that_must_confirm() -> (Harness, u64, CallId) {
    let mut h = Harness::new(conferences());
    let mut dial = order(&[&[5070]], DialFlags::default());
    dial.endpoints[0].contacts[0].confirm = true;
    let order_id = h.dial(dial);
    let call = h.invites()[0].call.expect("a leg handle");
    h.answer_leg(call);
    (h, order_id, call)
}

#[test]
fn a_forward_that_must_confirm_joins_once_its_callee_presses_1_and_fails_without() {
    let (mut h, order_id, call) = answered_forward_that_must_confirm();
    assert_eq!(
        h.media,
        ["lobby", "confirm"],
        "media up, not in the room yet"
    );
    assert_eq!(
        h.played,
        [vec!["tts://Press 1 to accept the call.".to_string()]]
    );
    h.digits(call, "2");
    assert!(h.plane.conferences.is_empty(), "only 1 accepts");
    h.digits(call, "1");
    assert_eq!(
        h.media,
        ["lobby", "confirm", "attach"],
        "into the room, not moved"
    );
    h.joined(call, 1);
    assert_eq!(h.responses(order_id), [response("device0", Ok("leg-one"))]);

    // Nobody presses a key: the callee is hung up after 10 s and the endpoint fails.
    let (mut h, order_id, call) = answered_forward_that_must_confirm();
    h.advance(Duration::from_millis(9_999));
    assert_eq!(h.byes(), 0);
    h.advance(Duration::from_millis(1));
    assert!(h.sip.contains(&SipAction::Bye { call }));
    assert_eq!(
        h.responses(order_id),
        [response("device0", Err("NO_ANSWER"))]
    );
    assert!(h.plane.is_idle());
}
