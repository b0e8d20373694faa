//! Dial-out on a virtual clock: INVITE client transaction, ACKs, CANCEL, and the UAC dialog.

use std::time::Duration;

use super::endpoint_tests::{Harness, SDP, peer, sdp};
use super::*;

fn dial() -> Dial {
    Dial {
        target: "sip:bob@127.0.0.1:5070".into(),
        to_addr: peer(),
        protocol: Protocol::Udp,
        from: "\"Conference\" <sip:conf@127.0.0.1>".into(),
        to: None,
        headers: vec![("X-Room".into(), "7".into())],
        body: Some(sdp()),
        call: None,
        call_id: None,
        auth: None,
    }
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
}

/// The callee's response to `invite`, with its tag, Contact and Record-Routes.
fn response(invite: &str, status: &str, body: Option<&str>) -> String {
    let mut r = format!("SIP/2.0 {status}\r\n");
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        r.push_str(&format!("{name}: {}\r\n", header(invite, name)));
    }
    r.push_str(&format!("To: {};tag=bob1\r\n", header(invite, "To")));
    r.push_str("Contact: <sip:bob@127.0.0.9:5072>\r\n");
    r.push_str("Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n");
    match body {
        Some(b) => r.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => r.push_str("Content-Length: 0\r\n\r\n"),
    }
    r
}

fn first_lines(out: &[String]) -> Vec<&str> {
    out.iter().filter_map(|m| m.lines().next()).collect()
}

#[test]
fn answered_dial_out_acks_and_builds_the_dialog() {
    let mut h = Harness::new();
    let call = h.ep.invite(h.now, dial());
    let invite = h.out().pop().expect("INVITE");
    assert!(invite.starts_with("INVITE sip:bob@127.0.0.1:5070 SIP/2.0\r\n"));
    assert_eq!(header(&invite, "X-Room"), "7");
    assert!(invite.ends_with(SDP));
    h.send(&response(&invite, "180 Ringing", None));
    h.send(&response(&invite, "200 OK", Some(SDP)));
    assert_eq!(
        h.events(),
        [
            Event::Progress {
                call,
                status: 180,
                body: None
            },
            Event::Answered {
                call,
                body: Some(sdp())
            }
        ]
    );
    let ack = h.out().pop().expect("ACK");
    assert!(
        ack.starts_with("ACK sip:bob@127.0.0.9:5072 SIP/2.0\r\n"),
        "{ack}"
    );
    assert_eq!(header(&ack, "CSeq"), "1 ACK");
    assert_ne!(
        header(&ack, "Via"),
        header(&invite, "Via"),
        "2xx ACK has its own branch"
    );
    assert_eq!(
        ack.lines()
            .filter(|l| l.starts_with("Route:"))
            .collect::<Vec<_>>(),
        ["Route: <sip:p2.example;lr>", "Route: <sip:p1.example;lr>"],
        "UAC route set is the reversed Record-Route"
    );
    h.send(&response(&invite, "200 OK", Some(SDP)));
    assert_eq!(
        first_lines(&h.out()),
        ["ACK sip:bob@127.0.0.9:5072 SIP/2.0"]
    );
    assert!(h.events().is_empty());
    h.ep.bye(h.now, call).expect("bye");
    let bye = h.out().pop().expect("BYE");
    assert_eq!(header(&bye, "CSeq"), "2 BYE");
    assert!(header(&bye, "To").ends_with(";tag=bob1"));
}

#[test]
fn rejected_dial_out_is_acked_in_its_transaction() {
    let mut h = Harness::new();
    let call = h.ep.invite(h.now, dial());
    let invite = h.out().pop().expect("INVITE");
    h.send(&response(&invite, "486 Busy Here", None));
    let ack = h.out().pop().expect("ACK");
    assert_eq!(
        header(&ack, "Via"),
        header(&invite, "Via"),
        "non-2xx ACK reuses the branch"
    );
    assert!(header(&ack, "To").ends_with(";tag=bob1"));
    assert_eq!(h.events(), [Event::Rejected { call, status: 486 }]);
    h.send(&response(&invite, "486 Busy Here", None));
    assert_eq!(
        first_lines(&h.out()),
        ["ACK sip:bob@127.0.0.1:5070 SIP/2.0"]
    );
    assert!(h.events().is_empty());
}

#[test]
fn unanswered_dial_out_resends_and_fails_with_408() {
    let mut h = Harness::new();
    let call = h.ep.invite(h.now, dial());
    h.out();
    let sent = h.advance(Duration::from_secs(40));
    let times: Vec<u128> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(h.events(), [Event::Rejected { call, status: 408 }]);
}

#[test]
fn cancel_waits_for_a_provisional_then_ends_with_487() {
    let mut h = Harness::new();
    let call = h.ep.invite(h.now, dial());
    let invite = h.out().pop().expect("INVITE");
    h.ep.cancel(h.now, call).expect("cancel");
    assert!(h.out().is_empty(), "no CANCEL before a provisional (§9.1)");
    h.send(&response(&invite, "100 Trying", None));
    let cancel = h.out().pop().expect("CANCEL");
    assert!(cancel.starts_with("CANCEL sip:bob@127.0.0.1:5070 SIP/2.0\r\n"));
    assert_eq!(header(&cancel, "Via"), header(&invite, "Via"));
    assert_eq!(header(&cancel, "CSeq"), "1 CANCEL");
    let mut ok = response(&cancel, "200 OK", None);
    ok = ok.replace(";tag=bob1", "");
    h.send(&ok);
    h.send(&response(&invite, "487 Request Terminated", None));
    assert_eq!(
        first_lines(&h.out()),
        ["ACK sip:bob@127.0.0.1:5070 SIP/2.0"]
    );
    assert_eq!(
        h.events(),
        [
            Event::Progress {
                call,
                status: 100,
                body: None
            },
            Event::Rejected { call, status: 487 }
        ]
    );
    assert_eq!(h.ep.cancel(h.now, call), Err(SipError::NoPendingInvite));
}

#[test]
fn callee_ignoring_our_cancel_is_given_up_after_64_t1() {
    // Found by fuzzing (fuzz/fuzz_targets/sip_endpoint.rs): a callee that rang, then
    // answered neither the INVITE nor the CANCEL, kept the dial-out forever and the
    // application never heard how it ended (RFC 3261 §9.1: give up after 64*T1).
    let mut h = Harness::new();
    let call = h.ep.invite(h.now, dial());
    let invite = h.out().pop().expect("INVITE");
    h.send(&response(&invite, "180 Ringing", None));
    h.advance(Duration::from_secs(100));
    assert_eq!(
        h.ep.poll_timeout(),
        None,
        "ringing waits for the application"
    );
    h.ep.bye(h.now, call)
        .expect("bye cancels a ringing dial-out");
    h.send(&response(&invite, "180 Ringing", None));
    h.events();
    h.advance(Duration::from_secs(31));
    assert!(h.events().is_empty(), "still within 64*T1 of the CANCEL");
    h.advance(Duration::from_secs(2));
    assert_eq!(h.events(), [Event::Rejected { call, status: 487 }]);
    assert_eq!(h.ep.poll_timeout(), None);
    assert_eq!(h.ep.cancel(h.now, call), Err(SipError::UnknownCall));
}

#[test]
fn answer_crossing_our_cancel_is_acked_and_hung_up() {
    let mut h = Harness::new();
    let call = h.ep.invite(h.now, dial());
    let invite = h.out().pop().expect("INVITE");
    h.send(&response(&invite, "180 Ringing", None));
    h.ep.bye(h.now, call)
        .expect("bye cancels a ringing dial-out");
    assert_eq!(
        first_lines(&h.out()),
        ["CANCEL sip:bob@127.0.0.1:5070 SIP/2.0"]
    );
    h.send(&response(&invite, "200 OK", Some(SDP)));
    let out = h.out();
    assert_eq!(
        first_lines(&out),
        [
            "ACK sip:bob@127.0.0.9:5072 SIP/2.0",
            "BYE sip:bob@127.0.0.9:5072 SIP/2.0"
        ]
    );
    assert_eq!(
        h.events(),
        [
            Event::Progress {
                call,
                status: 180,
                body: None
            },
            Event::Rejected { call, status: 487 }
        ]
    );
}

#[test]
fn callee_hangs_up_a_placed_call() {
    let mut h = Harness::new();
    let call = h.ep.invite(h.now, dial());
    let invite = h.out().pop().expect("INVITE");
    h.send(&response(&invite, "200 OK", Some(SDP)));
    h.out();
    h.events();
    let bye = format!(
        "BYE sip:conf@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5072;branch=z9hG4bKbb\r\n\
         From: <sip:bob@127.0.0.1:5070>;tag=bob1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        header(&invite, "From"),
        header(&invite, "Call-ID")
    );
    h.send(&bye);
    assert_eq!(first_lines(&h.out()), ["SIP/2.0 200 OK"]);
    assert_eq!(h.events(), [Event::Bye { call }]);
}

/// `response` with a challenge header.
fn challenge(invite: &str, status: &str, header: &str) -> String {
    response(invite, status, None).replacen(
        "Content-Length",
        &format!("{header}: Digest realm=\"trunk\", nonce=\"abc\", qop=\"auth\"\r\nContent-Length"),
        1,
    )
}

#[test]
fn a_challenged_dial_out_retries_once_with_credentials() {
    for (status, asks, answers) in [
        ("401 Unauthorized", "WWW-Authenticate", "Authorization"),
        (
            "407 Proxy Authentication Required",
            "Proxy-Authenticate",
            "Proxy-Authorization",
        ),
    ] {
        let mut h = Harness::new();
        let auth = Some(DialAuth {
            username: "trunkuser".into(),
            password: "trunkpass".into(),
        });
        let call = h.ep.invite(h.now, Dial { auth, ..dial() });
        let first = h.out().pop().expect("INVITE");
        h.send(&challenge(&first, status, asks));
        let sent = h.out();
        assert_eq!(
            first_lines(&sent),
            [
                "ACK sip:bob@127.0.0.1:5070 SIP/2.0",
                "INVITE sip:bob@127.0.0.1:5070 SIP/2.0"
            ]
        );
        assert!(h.events().is_empty(), "the challenge is not the outcome");
        let retry = &sent[1];
        assert_eq!(header(retry, "CSeq"), "2 INVITE");
        assert_eq!(header(retry, "Call-ID"), header(&first, "Call-ID"));
        assert_ne!(
            header(retry, "Via"),
            header(&first, "Via"),
            "a new transaction"
        );
        let credentials = header(retry, answers);
        assert!(
            credentials.contains("username=\"trunkuser\""),
            "{credentials}"
        );
        assert!(credentials.contains("realm=\"trunk\""), "{credentials}");
        // A second challenge is the answer: no loop.
        h.send(&challenge(retry, status, asks));
        let code: u16 = status[..3].parse().unwrap();
        assert_eq!(h.events(), [Event::Rejected { call, status: code }]);
    }
}

#[test]
fn a_challenge_without_credentials_is_a_rejection() {
    let mut h = Harness::new();
    let call = h.ep.invite(h.now, dial());
    let invite = h.out().pop().expect("INVITE");
    h.send(&challenge(&invite, "401 Unauthorized", "WWW-Authenticate"));
    assert_eq!(
        first_lines(&h.out()),
        ["ACK sip:bob@127.0.0.1:5070 SIP/2.0"]
    );
    assert_eq!(h.events(), [Event::Rejected { call, status: 401 }]);
}

#[test]
fn an_application_chosen_handle_and_call_id_are_used() {
    let mut h = Harness::new();
    let chosen = CallId(CallId::APP_BIT | 7);
    let d = Dial {
        call: Some(chosen),
        call_id: Some("kazoo-leg-1".into()),
        ..dial()
    };
    assert_eq!(h.ep.invite(h.now, d), chosen);
    let invite = h.out().pop().expect("INVITE");
    assert_eq!(header(&invite, "Call-ID"), "kazoo-leg-1");
}

#[test]
fn a_tcp_dial_out_opens_one_connection_per_peer_and_fails_its_calls_when_it_closes() {
    let mut h = Harness::new();
    let tcp = || Dial {
        protocol: Protocol::Tcp,
        ..dial()
    };
    let first = h.ep.invite(h.now, tcp());
    let (conn, to) = h.ep.poll_connect().expect("a connection to open");
    assert_eq!(to, peer());
    let sent = h.ep.poll_transmit().expect("INVITE");
    assert_eq!(sent.transport, Transport::Tcp(conn));
    let invite = String::from_utf8_lossy(&sent.bytes).into_owned();
    assert!(header(&invite, "Via").starts_with("SIP/2.0/TCP 127.0.0.1:5060;"));
    assert!(header(&invite, "Contact").ends_with(";transport=tcp>"));
    // A second call to the same peer shares the connection; no timer retransmits over TCP.
    let second = h.ep.invite(h.now, tcp());
    assert_eq!(h.ep.poll_connect(), None);
    assert_eq!(
        h.ep.poll_transmit().map(|t| t.transport),
        Some(Transport::Tcp(conn))
    );
    let resent = h.run_until(h.now + Duration::from_secs(4));
    assert!(resent.is_empty(), "{resent:?}");
    // The connection fails (refused, or closed by the peer): both calls end, and the next
    // call opens a new one.
    h.ep.handle_transport_closed(h.now, conn);
    let ended: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Terminated {
                call,
                reason: TerminationReason::TransportClosed,
            } => Some(call),
            _ => None,
        })
        .collect();
    assert_eq!(ended.len(), 2);
    assert!(ended.contains(&first) && ended.contains(&second));
    h.ep.invite(h.now, tcp());
    let (again, _) = h.ep.poll_connect().expect("a new connection");
    assert_ne!(again, conn);
}
