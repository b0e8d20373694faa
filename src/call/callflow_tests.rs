//! Callflows on the virtual clock: a `conference` node's options reach the caller flow, a
//! ring group rings its branches (at once, or one after the other), the first answer is
//! bridged and cancels the others, failures run the child for their cause or `_`, and the
//! walk is bounded.

use std::time::Duration;

use serde_json::json;

use super::callflow_node::{BridgeNode, ConferenceNode, MAX_VISITS, Module, Node};
use super::dial_order::{Endpoint, Plan, Ring};
use super::dialout_tests::contact;
use super::output::SipAction;
use super::ringback::DEFAULT_RINGBACK;
use super::tests::{ACCOUNT, Harness, conferences, doc, invite};
use crate::api::service::ConfRef;
use crate::conference::flow::{CallflowOptions, Target};
use crate::conference::vocabulary::ToneSetting;
use crate::media::worker::Report;
use crate::sip::{CallId, Event};

pub(super) const CALLER: CallId = CallId(1);

/// A device branch ringing `port`, given up after `timeout` seconds.
pub(super) fn device(port: u16, timeout: u64) -> Endpoint {
    let mut e = Endpoint::new(
        format!("device{port}"),
        vec![contact(port)],
        Ring::Simultaneous,
    );
    e.timeout = Some(Duration::from_secs(timeout));
    e
}

pub(super) fn ring(endpoints: Vec<Endpoint>, sequential: bool, timeout: u64) -> Module {
    let plan = Plan {
        sequential,
        ..Plan::once(Duration::from_secs(timeout))
    };
    Module::Bridge(BridgeNode {
        endpoints,
        plan,
        ringback: None,
        ignore_early_media: false,
    })
}

pub(super) fn node(module: Module, children: Vec<(&str, Node)>) -> Node {
    let children = children
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    Node { module, children }
}

/// The conference "open" (number 1000, no welcome of its own) with these options.
fn conference(options: CallflowOptions) -> Node {
    let open = json!({"name": "open", "conference_numbers": ["1000"], "play_welcome": false});
    let target = Target::Conference {
        id: "open".into(),
        doc: doc(open),
    };
    node(
        Module::Conference(Box::new(ConferenceNode { target, options })),
        Vec::new(),
    )
}

pub(super) fn with_callflow(number: &str, flow: Node) -> Harness {
    let mut h = Harness::new(conferences());
    h.callflows.insert(number.into(), flow);
    h
}

impl Harness {
    /// The final status the caller got, if any.
    pub(super) fn caller_status(&self) -> Vec<u16> {
        self.sip
            .iter()
            .filter_map(|a| match a {
                SipAction::Respond { call, status, .. }
                | SipAction::Reject { call, status, .. }
                    if *call == CALLER =>
                {
                    Some(*status)
                }
                _ => None,
            })
            .collect()
    }

    pub(super) fn leg(&self, n: usize) -> CallId {
        self.invites()[n].call.expect("a leg handle")
    }

    fn targets(&self) -> Vec<String> {
        self.invites().into_iter().map(|d| d.target).collect()
    }
}

#[test]
fn a_conference_node_feeds_its_options_to_the_caller_flow() {
    let options = CallflowOptions {
        moderator: true,
        play_entry_tone: Some(ToneSetting::Off),
        play_exit_tone: None,
        welcome: true,
        welcome_media: Some("custom-welcome".into()),
    };
    let mut h = with_callflow("5000", conference(options));
    let call = h.call(1, "5000");
    assert_eq!(h.caller_status(), [200]);
    // "open" does not play a welcome of its own: the callflow's does.
    assert_eq!(h.heard("custom-welcome"), 1);
    let open = ConfRef {
        account: ACCOUNT.into(),
        id: "open".into(),
    };
    let member = &h.plane.conferences[&open].members[&call];
    assert!(member.flags.moderator, "callflow moderator:true");
}

#[test]
fn a_number_without_a_callflow_routes_as_before() {
    let mut h = with_callflow("5000", conference(CallflowOptions::default()));
    h.call(1, "1000");
    assert_eq!(h.caller_status(), [200]);
    assert!(h.invites().is_empty());
}

#[test]
fn a_simultaneous_ring_group_bridges_the_first_answer_and_cancels_the_rest() {
    let flow = node(
        ring(vec![device(5070, 20), device(5072, 20)], false, 20),
        vec![],
    );
    let mut h = with_callflow("6000", flow);
    h.sip_event(invite(CALLER, "6000"));
    assert!(h.caller_status().is_empty(), "nothing rings yet");
    assert_eq!(
        h.targets(),
        [
            "sip:phone5070@127.0.0.1:5070",
            "sip:phone5072@127.0.0.1:5072"
        ]
    );
    let (desk, mobile) = (h.leg(0), h.leg(1));
    h.ring_leg(desk);
    assert_eq!(h.caller_status(), [183], "early media once a branch rings");
    assert_eq!(h.looping, [Some(DEFAULT_RINGBACK.to_string())]);
    assert_eq!(
        h.media,
        ["lobby", "confirm"],
        "ringback flows before any ACK"
    );
    h.ring_leg(mobile);
    assert_eq!(h.caller_status(), [183], "one 183 for the whole ring");
    h.answer_leg(mobile);
    assert_eq!(h.cancels(), [desk]);
    assert_eq!(h.caller_status(), [183, 200]);
    assert_eq!(
        h.caller_body(200),
        h.caller_body(183),
        "the 200 repeats the early answer"
    );
    assert_eq!(h.caller_ports(), 1, "one port pair for the caller");
    assert!(h.media.contains(&"stop playback"), "the ringback stops");
    h.sip_event(Event::Ack {
        call: CALLER,
        body: None,
    });
    let rooms: Vec<_> = h.plane.conferences.values().collect();
    let [room] = rooms.as_slice() else {
        panic!("one bridge room")
    };
    assert!(room.private);
    let mut members: Vec<CallId> = room.members.keys().copied().collect();
    members.sort_by_key(|c| c.0);
    assert_eq!(members, [CALLER, mobile]);
    assert!(h.events.is_empty(), "a bridge publishes nothing");
    assert_eq!(h.plane.gauges(), (0, 0), "nor counts as a conference");
    assert!(h.plane.live_state(ACCOUNT, &h.room_id()).is_none());
    // The caller hangs up: the callee gets a BYE and the room is gone.
    h.sip_event(Event::Bye { call: CALLER });
    assert!(h.sip.contains(&SipAction::Bye { call: mobile }));
    assert!(h.plane.conferences.is_empty());
    assert!(h.plane.is_idle());
}

#[test]
fn a_ring_groups_ringback_plays_and_one_that_cannot_gives_way_to_the_default() {
    let Module::Bridge(mut b) = ring(vec![device(5070, 20)], false, 20) else {
        unreachable!()
    };
    b.ringback = Some("tone_stream://%(1000,3000,425)".into());
    let mut h = with_callflow("6000", node(Module::Bridge(b), vec![]));
    h.sip_event(invite(CALLER, "6000"));
    h.ring_leg(h.leg(0));
    assert_eq!(
        h.looping,
        [Some("tone_stream://%(1000,3000,425)".to_string())]
    );
    // The shell could not open it: it reports the playback over.
    let id = *h.plane.playbacks.keys().next().expect("a ringback");
    h.report(Report::PlaybackDone { id, stopped: false });
    assert_eq!(h.looping[1], Some(DEFAULT_RINGBACK.to_string()));
}

#[test]
fn a_failed_ring_going_on_to_a_conference_answers_with_the_early_session() {
    let flow = node(
        ring(vec![device(5070, 20)], false, 20),
        vec![("_", conference(CallflowOptions::default()))],
    );
    let mut h = with_callflow("6000", flow);
    h.sip_event(invite(CALLER, "6000"));
    let leg = h.leg(0);
    h.ring_leg(leg);
    h.sip_event(Event::Rejected {
        call: leg,
        status: 486,
    });
    assert_eq!(h.caller_status(), [183, 200]);
    assert_eq!(h.caller_body(200), h.caller_body(183));
    assert_eq!(h.caller_ports(), 1, "the early port pair carries on");
    h.sip_event(Event::Ack {
        call: CALLER,
        body: None,
    });
    let open = ConfRef {
        account: ACCOUNT.into(),
        id: "open".into(),
    };
    assert!(h.plane.conferences[&open].members.contains_key(&CALLER));
}

#[test]
fn a_caller_leaving_during_ringback_takes_its_media_and_branches_along() {
    let flow = node(ring(vec![device(5070, 20)], false, 20), vec![]);
    let mut h = with_callflow("6000", flow);
    h.sip_event(invite(CALLER, "6000"));
    h.ring_leg(h.leg(0));
    h.sip_event(Event::Cancelled { call: CALLER });
    assert_eq!(h.cancels(), [h.leg(0)]);
    assert_eq!(h.media.last(), Some(&"leave"));
    assert!(h.plane.is_idle());

    // Silent for the RTP timeout while it rings: 480, and the branches go.
    let flow = node(ring(vec![device(5070, 20)], false, 20), vec![]);
    let mut h = with_callflow("6000", flow);
    h.sip_event(invite(CALLER, "6000"));
    h.ring_leg(h.leg(0));
    h.report(Report::RtpTimeout { call: CALLER.0 });
    assert_eq!(h.caller_status(), [183, 480]);
    assert_eq!(h.cancels(), [h.leg(0)]);
    assert!(h.plane.is_idle());
}

impl Harness {
    pub(super) fn ring_leg(&mut self, call: CallId) {
        self.sip_event(Event::Progress {
            call,
            status: 180,
            body: None,
        });
    }

    pub(super) fn caller_ports(&self) -> usize {
        self.allocated.iter().filter(|c| **c == CALLER).count()
    }

    /// The body of the caller's response `status`.
    pub(super) fn caller_body(&self, status: u16) -> String {
        let body = self.sip.iter().find_map(|a| match a {
            SipAction::Respond {
                call,
                status: s,
                body: Some(b),
                ..
            } if *call == CALLER && *s == status => Some(b),
            _ => None,
        });
        String::from_utf8_lossy(&body.expect("a body").bytes).into_owned()
    }
}

impl Harness {
    fn room_id(&self) -> String {
        let ids = self.plane.conferences.keys();
        ids.map(|r| r.id.clone()).next().unwrap_or_default()
    }
}

#[test]
fn a_single_ring_group_rings_the_next_member_after_a_timeout() {
    let flow = node(
        ring(vec![device(5070, 5), device(5072, 5)], true, 30),
        vec![],
    );
    let mut h = with_callflow("6000", flow);
    h.sip_event(invite(CALLER, "6000"));
    assert_eq!(h.targets(), ["sip:phone5070@127.0.0.1:5070"]);
    h.advance(Duration::from_millis(4999));
    assert_eq!(h.invites().len(), 1);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.cancels(), [h.leg(0)]);
    assert_eq!(h.targets()[1], "sip:phone5072@127.0.0.1:5072");
    // The second is busy: nothing left, the caller gets 486.
    let second = h.leg(1);
    h.sip_event(Event::Rejected {
        call: second,
        status: 486,
    });
    assert_eq!(h.caller_status(), [486], "no branch rang: no ringback");
    assert!(h.plane.is_idle());
}

#[test]
fn busy_runs_the_busy_child() {
    let other = node(ring(vec![device(5080, 20)], false, 20), vec![]);
    let busy = conference(CallflowOptions::default());
    let flow = node(
        ring(vec![device(5070, 20)], false, 20),
        vec![("_", other), ("busy", busy)],
    );
    let mut h = with_callflow("6000", flow);
    h.sip_event(invite(CALLER, "6000"));
    let leg = h.leg(0);
    h.sip_event(Event::Rejected {
        call: leg,
        status: 486,
    });
    assert_eq!(h.caller_status(), [200], "answered into the conference");
    assert_eq!(h.invites().len(), 1, "the `_` child did not run");
}

#[test]
fn no_answer_runs_the_default_child_then_the_caller_gets_480() {
    let busy = conference(CallflowOptions::default());
    let other = node(ring(vec![device(5080, 20)], false, 10), vec![]);
    let flow = node(
        ring(vec![device(5070, 20)], false, 10),
        vec![("busy", busy), ("_", other)],
    );
    let mut h = with_callflow("6000", flow);
    h.sip_event(invite(CALLER, "6000"));
    h.advance(Duration::from_secs(10));
    assert_eq!(h.cancels(), [h.leg(0)]);
    assert_eq!(h.targets()[1], "sip:phone5080@127.0.0.1:5080");
    h.advance(Duration::from_secs(10));
    assert_eq!(h.caller_status(), [480], "no answer");
    assert!(h.plane.is_idle());
}

#[test]
fn repeats_ring_the_group_again() {
    let Module::Bridge(mut b) = ring(vec![device(5070, 5)], false, 5) else {
        unreachable!()
    };
    b.plan.repeats = 1;
    let mut h = with_callflow("6000", node(Module::Bridge(b), vec![]));
    h.sip_event(invite(CALLER, "6000"));
    h.advance(Duration::from_secs(5));
    assert_eq!(h.invites().len(), 2, "a second round");
    h.advance(Duration::from_secs(5));
    assert_eq!(h.invites().len(), 2);
    assert_eq!(h.caller_status(), [480]);
}

#[test]
fn nothing_to_ring_is_404_and_the_caller_cancelling_cancels_the_branches() {
    let unregistered = Endpoint::new("desk".into(), Vec::new(), Ring::Simultaneous);
    let mut h = with_callflow("6000", node(ring(vec![unregistered], false, 20), vec![]));
    h.sip_event(invite(CALLER, "6000"));
    assert_eq!(h.caller_status(), [404]);

    let mut h = with_callflow(
        "6000",
        node(ring(vec![device(5070, 20)], false, 20), vec![]),
    );
    h.sip_event(invite(CALLER, "6000"));
    h.sip_event(Event::Cancelled { call: CALLER });
    assert_eq!(h.cancels(), [h.leg(0)]);
    assert!(h.plane.is_idle());
}

#[test]
fn the_walk_is_bounded() {
    let mut chain = conference(CallflowOptions::default());
    for _ in 0..MAX_VISITS {
        chain = node(Module::Skip, vec![("_", chain)]);
    }
    let mut h = with_callflow("7000", chain);
    h.sip_event(invite(CALLER, "7000"));
    assert_eq!(
        h.caller_status(),
        [500],
        "{} nodes is one too many",
        MAX_VISITS + 1
    );

    let mut h = with_callflow("7000", node(Module::TooLarge, vec![]));
    h.sip_event(invite(CALLER, "7000"));
    assert_eq!(h.caller_status(), [500]);
}

#[test]
fn a_caller_without_an_offer_joins_the_bridge_once_its_ack_answers() {
    let flow = node(ring(vec![device(5070, 20)], false, 20), vec![]);
    let mut h = with_callflow("6000", flow);
    let mut offerless = invite(CALLER, "6000");
    if let Event::Invite { body, .. } = &mut offerless {
        *body = None;
    }
    h.sip_event(offerless);
    let leg = h.leg(0);
    h.answer_leg(leg);
    assert_eq!(h.caller_status(), [180, 200], "our offer in the 200");
    let room = |h: &Harness| {
        h.plane
            .conferences
            .values()
            .map(|l| l.members.len())
            .sum::<usize>()
    };
    assert_eq!(room(&h), 1, "the callee waits for the caller's answer");
    let answer = "v=0\r\no=- 3 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                  m=audio 30004 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";
    let body = Some(crate::sip::Body {
        content_type: "application/sdp".into(),
        bytes: answer.as_bytes().to_vec(),
    });
    h.sip_event(Event::Ack { call: CALLER, body });
    assert_eq!(room(&h), 2);
    // The callee hangs up: so does the caller.
    h.sip_event(Event::Bye { call: leg });
    assert!(h.sip.contains(&SipAction::Bye { call: CALLER }));
    assert!(h.plane.is_idle());
}

#[test]
fn shutdown_while_ringing_runs_no_further_node() {
    let other = node(ring(vec![device(5080, 20)], false, 20), vec![]);
    let flow = node(ring(vec![device(5070, 20)], false, 20), vec![("_", other)]);
    let mut h = with_callflow("6000", flow);
    h.sip_event(invite(CALLER, "6000"));
    h.plane.hang_up_all(h.now);
    h.run();
    assert_eq!(h.caller_status(), [503]);
    assert_eq!(h.cancels(), [h.leg(0)]);
    assert_eq!(h.invites().len(), 1, "the `_` child did not run");
    assert!(h.plane.is_idle());
}

#[test]
fn fail_on_single_reject_ends_the_group_at_the_first_busy_branch() {
    let group = |fail_on_reject| {
        let Module::Bridge(mut b) = ring(vec![device(5070, 20), device(5072, 20)], false, 20)
        else {
            unreachable!()
        };
        b.plan.fail_on_reject = fail_on_reject;
        node(Module::Bridge(b), vec![])
    };
    let mut h = with_callflow("6000", group(true));
    h.sip_event(invite(CALLER, "6000"));
    let (desk, mobile) = (h.leg(0), h.leg(1));
    h.sip_event(Event::Rejected {
        call: desk,
        status: 486,
    });
    assert_eq!(h.cancels(), [mobile]);
    assert_eq!(h.caller_status(), [486]);

    // Without it the other branch rings on.
    let mut h = with_callflow("6000", group(false));
    h.sip_event(invite(CALLER, "6000"));
    let desk = h.leg(0);
    h.sip_event(Event::Rejected {
        call: desk,
        status: 486,
    });
    assert!(h.cancels().is_empty());
    assert_eq!(h.caller_status(), Vec::<u16>::new());
}

#[test]
fn a_confirming_forward_rings_on_beside_the_others_and_is_hung_up_when_one_answers() {
    let mut forward = device(5080, 20);
    forward.contacts[0].confirm = true;
    let flow = node(ring(vec![forward, device(5070, 20)], false, 20), vec![]);
    let mut h = with_callflow("6000", flow);
    h.sip_event(invite(CALLER, "6000"));
    let (cell, desk) = (h.leg(0), h.leg(1));
    h.answer_leg(cell);
    assert_eq!(h.caller_status(), [183], "still ringing for the caller");
    assert!(h.cancels().is_empty(), "the desk rings on");
    h.answer_leg(desk);
    assert!(
        h.sip.contains(&SipAction::Bye { call: cell }),
        "the unconfirmed forward is hung up"
    );
    assert_eq!(h.caller_status(), [183, 200]);

    // Confirmed, it is bridged.
    let mut forward = device(5080, 20);
    forward.contacts[0].confirm = true;
    let mut h = with_callflow("6000", node(ring(vec![forward], false, 20), vec![]));
    h.sip_event(invite(CALLER, "6000"));
    let cell = h.leg(0);
    h.answer_leg(cell);
    h.digits(cell, "1");
    assert_eq!(h.caller_status(), [183, 200]);
    h.sip_event(Event::Ack {
        call: CALLER,
        body: None,
    });
    let members: usize = h.plane.conferences.values().map(|l| l.members.len()).sum();
    assert_eq!(members, 2, "caller and forward in their room");
}
