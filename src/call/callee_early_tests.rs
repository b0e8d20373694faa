//! A callee's early media on the virtual clock: a branch ringing alone with SDP in its
//! 183 is heard instead of our ringback and keeps its media through its 200; a branch
//! that fails gives the ringback back; branches ringing beside others, or of a node that
//! ignores early media, are not heard; an early branch gone silent is given up.

use super::callflow_node::Module;
use super::callflow_tests::{CALLER, device, node, ring, with_callflow};
use super::ringback::DEFAULT_RINGBACK;
use super::tests::{Harness, invite};
use crate::media::worker::Report;
use crate::sip::{Body, CallId, Event};

/// A callee's SDP with its RTP on `port`.
fn sdp(port: u16) -> Option<Body> {
    let text = format!(
        "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    );
    Some(Body {
        content_type: "application/sdp".into(),
        bytes: text.into_bytes(),
    })
}

impl Harness {
    /// Branch `call` answers 183 with SDP: its early media.
    fn early_leg(&mut self, call: CallId) {
        self.sip_event(Event::Progress {
            call,
            status: 183,
            body: sdp(30004),
        });
    }

    fn count(&self, command: &str) -> usize {
        self.media.iter().filter(|m| **m == command).count()
    }
}

/// A caller of 6000, whose callflow rings one device; its branch answered 183 with SDP.
fn a_lone_early_branch() -> (Harness, CallId) {
    let mut h = with_callflow(
        "6000",
        node(ring(vec![device(5070, 20)], false, 20), vec![]),
    );
    h.sip_event(invite(CALLER, "6000"));
    let leg = h.leg(0);
    h.early_leg(leg);
    (h, leg)
}

#[test]
fn a_lone_branchs_early_media_replaces_the_ringback_and_its_answer_keeps_it() {
    let (mut h, leg) = a_lone_early_branch();
    assert_eq!(h.caller_status(), [183]);
    assert!(h.looping.is_empty(), "no ringback: {:?}", h.looping);
    assert_eq!(
        h.media,
        ["lobby", "lobby", "confirm", "early media"],
        "the callee's media, the caller's, heard by the caller before any ACK"
    );

    // The 200 moves the callee's RTP elsewhere: the same media follows it.
    h.sip_event(Event::Answered {
        call: leg,
        body: sdp(30006),
    });
    assert_eq!(h.caller_status(), [183, 200]);
    assert_eq!(h.caller_body(200), h.caller_body(183));
    assert_eq!(h.caller_ports(), 1);
    assert_eq!(h.count("lobby"), 2, "no new media for the callee");
    assert_eq!(h.count("update"), 1, "its new remote");
    h.sip_event(Event::Ack {
        call: CALLER,
        body: None,
    });
    let members: Vec<usize> = h
        .plane
        .conferences
        .values()
        .map(|l| l.members.len())
        .collect();
    assert_eq!(members, [2], "caller and callee in their room");
    assert!(h.cancels().is_empty());
}

#[test]
fn an_early_branch_that_fails_gives_the_ringback_back_until_the_next_one_is_heard() {
    let single = ring(vec![device(5070, 20), device(5072, 20)], true, 40);
    let mut h = with_callflow("6000", node(single, vec![]));
    h.sip_event(invite(CALLER, "6000"));
    let desk = h.leg(0);
    h.early_leg(desk);
    assert!(h.looping.is_empty());
    h.sip_event(Event::Rejected {
        call: desk,
        status: 486,
    });
    assert_eq!(h.count("leave"), 1, "its media goes");
    assert_eq!(h.looping, [Some(DEFAULT_RINGBACK.to_string())]);
    let mobile = h.leg(1);
    h.ring_leg(mobile);
    assert_eq!(h.looping.len(), 1, "the ringback plays on");
    h.early_leg(mobile);
    assert_eq!(h.count("stop playback"), 1);
    assert_eq!(h.count("early media"), 2);

    // The caller hangs up: the branch is cancelled, both media go.
    h.sip_event(Event::Cancelled { call: CALLER });
    assert_eq!(h.cancels(), [mobile]);
    assert_eq!(h.count("leave"), 3);
    assert!(h.plane.is_idle());
}

#[test]
fn early_media_beside_other_branches_or_of_a_node_that_ignores_it_is_not_heard() {
    let both = ring(vec![device(5070, 20), device(5072, 20)], false, 20);
    let mut h = with_callflow("6000", node(both, vec![]));
    h.sip_event(invite(CALLER, "6000"));
    h.early_leg(h.leg(0));
    assert_eq!(h.looping, [Some(DEFAULT_RINGBACK.to_string())]);
    assert_eq!(h.count("early media"), 0);

    let Module::Bridge(mut group) = ring(vec![device(5070, 20)], false, 20) else {
        unreachable!()
    };
    group.ignore_early_media = true;
    let mut h = with_callflow("6000", node(Module::Bridge(group), vec![]));
    h.sip_event(invite(CALLER, "6000"));
    h.early_leg(h.leg(0));
    assert_eq!(h.looping, [Some(DEFAULT_RINGBACK.to_string())]);
    assert_eq!(h.count("early media"), 0);
}

#[test]
fn an_early_branch_silent_past_the_rtp_timeout_is_given_up() {
    let (mut h, leg) = a_lone_early_branch();
    h.report(Report::RtpTimeout { call: leg.0 });
    assert_eq!(h.cancels(), [leg]);
    assert_eq!(h.caller_status(), [183, 503], "its node failed");
    // Our CANCEL's 487 finds nothing left to do.
    h.sip_event(Event::Rejected {
        call: leg,
        status: 487,
    });
    assert!(h.plane.is_idle());
}
