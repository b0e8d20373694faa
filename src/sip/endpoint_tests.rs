//! Endpoint behaviour on a virtual clock: what a phone on the other side would see.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;

pub const PEER: &str = "127.0.0.1:5070";
pub const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

pub fn peer() -> SocketAddr {
    PEER.parse().expect("literal address")
}

pub struct Harness {
    pub ep: Endpoint,
    pub t0: Instant,
    pub now: Instant,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// A harness whose endpoint config `edit` changed first.
    pub fn with(edit: impl FnOnce(&mut EndpointConfig)) -> Self {
        let now = Instant::now();
        let mut config = EndpointConfig {
            user_agent: "Chorus-test".into(),
            contact_host: "127.0.0.1".into(),
            udp_port: 5060,
            tcp_port: 5060,
            timers: Timers::default(),
            limits: crate::sip::admission::Limits::default(),
            acl: crate::sip::admission::Acl::default(),
            auth: None,
            registrar: false,
        };
        edit(&mut config);
        let ep = Endpoint::new(config);
        Self { ep, t0: now, now }
    }

    /// A datagram from `from` rather than from [`PEER`].
    pub fn send_from(&mut self, from: SocketAddr, msg: &str) {
        self.ep
            .handle_input(self.now, from, Transport::Udp, msg.as_bytes());
    }

    pub fn send(&mut self, msg: &str) {
        self.send_bytes(msg.as_bytes());
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.ep
            .handle_input(self.now, peer(), Transport::Udp, bytes);
    }

    /// Everything transmitted so far, as text.
    pub fn out(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.ep.poll_transmit())
            .map(|t| String::from_utf8_lossy(&t.bytes).into_owned())
            .collect()
    }

    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.ep.poll_event()).collect()
    }

    /// Runs every timer up to `at`, returning (ms since start, first line) of each transmit.
    pub fn run_until(&mut self, at: Instant) -> Vec<(u128, String)> {
        let mut sent = Vec::new();
        while let Some(due) = self.ep.poll_timeout().filter(|d| *d <= at) {
            self.now = self.now.max(due);
            self.ep.handle_timeout(self.now);
            for t in std::iter::from_fn(|| self.ep.poll_transmit()) {
                let text = String::from_utf8_lossy(&t.bytes).into_owned();
                let first = text.lines().next().unwrap_or_default().to_string();
                sent.push(((self.now - self.t0).as_millis(), first));
            }
        }
        self.now = self.now.max(at);
        sent
    }

    pub fn advance(&mut self, d: Duration) -> Vec<(u128, String)> {
        self.run_until(self.now + d)
    }

    /// Sends an INVITE and returns its call handle, checking the 100 Trying.
    pub fn call(&mut self, branch: &str, body: Option<&str>) -> CallId {
        self.send(&request("INVITE", branch, None, 1, &[], body));
        let out = self.out();
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with("SIP/2.0 100 Trying\r\n"), "{}", out[0]);
        match self.events().as_slice() {
            [Event::Invite { call, .. }] => *call,
            other => panic!("expected one Invite, got {other:?}"),
        }
    }

    /// Answers 200 with SDP and returns our to-tag.
    pub fn answer(&mut self, call: CallId) -> String {
        self.ep
            .respond(self.now, call, 200, "OK", Some(sdp()))
            .expect("respond");
        let out = self.out();
        assert!(out[0].starts_with("SIP/2.0 200 OK\r\n"));
        to_tag(&out[0])
    }

    pub fn established(&mut self) -> (CallId, String) {
        let call = self.call("z9hG4bKinv1", Some(SDP));
        let tag = self.answer(call);
        self.send(&request("ACK", "z9hG4bKack1", Some(&tag), 1, &[], None));
        assert!(matches!(self.events().as_slice(), [Event::Ack { .. }]));
        (call, tag)
    }
}

pub fn sdp() -> Body {
    Body {
        content_type: "application/sdp".into(),
        bytes: SDP.as_bytes().to_vec(),
    }
}

/// A request from the phone at PEER to the server, as a real UA would build it.
pub fn request(
    method: &str,
    branch: &str,
    to_tag: Option<&str>,
    cseq: u32,
    extra: &[&str],
    body: Option<&str>,
) -> String {
    let to = match to_tag {
        Some(t) => format!("<sip:conf@127.0.0.1>;tag={t}"),
        None => "<sip:conf@127.0.0.1>".to_string(),
    };
    let mut m = format!(
        "{method} sip:conf@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:alice@127.0.0.1>;tag=al1\r\nTo: {to}\r\n\
         Call-ID: call-1@127.0.0.1\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@127.0.0.1:5070>\r\n"
    );
    for h in extra {
        m.push_str(h);
        m.push_str("\r\n");
    }
    match body {
        Some(b) => m.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => m.push_str("Content-Length: 0\r\n\r\n"),
    }
    m
}

pub fn to_tag(response: &str) -> String {
    let to = response
        .lines()
        .find(|l| l.starts_with("To:"))
        .expect("To header");
    to.split(";tag=").nth(1).expect("to-tag").trim().to_string()
}

pub fn status_of(msg: &str) -> &str {
    msg.get(8..11).unwrap_or_default()
}

pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

#[test]
fn invite_gets_100_trying_and_an_invite_event_with_caller_details() {
    let mut h = Harness::new();
    h.send(&request(
        "INVITE",
        "z9hG4bK1",
        None,
        1,
        &["X-Conference: 42"],
        Some(SDP),
    ));
    let out = h.out();
    assert!(out[0].starts_with("SIP/2.0 100 Trying\r\n"));
    assert!(out[0].contains("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport=5070\r\n"));
    let events = h.events();
    let [
        Event::Invite {
            from,
            request_uri_user,
            headers,
            body,
            ..
        },
    ] = events.as_slice()
    else {
        panic!("expected one Invite: {events:?}");
    };
    assert_eq!(from.display_name.as_deref(), Some("Alice"));
    assert_eq!(from.user.as_deref(), Some("alice"));
    assert_eq!(request_uri_user.as_deref(), Some("conf"));
    assert!(headers.contains(&("X-Conference".to_string(), "42".to_string())));
    assert_eq!(
        body.as_ref().map(|b| b.bytes.as_slice()),
        Some(SDP.as_bytes())
    );
}

#[test]
fn ok_is_resent_doubling_to_t2_until_ack_then_stops() {
    let mut h = Harness::new();
    let call = h.call("z9hG4bKinv1", Some(SDP));
    let tag = h.answer(call);
    let resends = h.advance(Duration::from_millis(9000));
    let times: Vec<u128> = resends.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [500, 1500, 3500, 7500]);
    assert!(resends.iter().all(|(_, l)| l == "SIP/2.0 200 OK"));
    h.send(&request("ACK", "z9hG4bKack1", Some(&tag), 1, &[], None));
    assert!(matches!(
        h.events().as_slice(),
        [Event::Ack { body: None, .. }]
    ));
    assert!(h.advance(Duration::from_secs(60)).is_empty());
    assert_eq!(h.ep.poll_timeout(), None);
}

#[test]
fn missing_ack_ends_the_call_after_64_t1_with_a_bye() {
    let mut h = Harness::new();
    let call = h.call("z9hG4bKinv1", Some(SDP));
    h.answer(call);
    let sent = h.advance(Duration::from_secs(40));
    let first_bye = sent
        .iter()
        .find(|(_, l)| l.starts_with("BYE "))
        .expect("BYE sent");
    assert_eq!(first_bye.0, 32_000);
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call,
            reason: TerminationReason::AckTimeout
        }]
    );
}

#[test]
fn cancel_gets_200_and_the_invite_487_whose_ack_is_absorbed() {
    let mut h = Harness::new();
    let call = h.call("z9hG4bKinv1", Some(SDP));
    h.send(&request("CANCEL", "z9hG4bKinv1", None, 1, &[], None));
    let out = h.out();
    assert_eq!(
        out.iter().map(|m| status_of(m)).collect::<Vec<_>>(),
        ["200", "487"]
    );
    assert!(header(&out[0], "CSeq").is_some_and(|c| c.ends_with("CANCEL")));
    assert_eq!(h.events(), [Event::Cancelled { call }]);
    let tag = to_tag(&out[1]);
    h.send(&request("ACK", "z9hG4bKinv1", Some(&tag), 1, &[], None));
    assert!(h.out().is_empty());
    assert!(h.events().is_empty());
    assert!(
        h.advance(Duration::from_secs(40)).is_empty(),
        "487 must stop after ACK"
    );
    assert_eq!(
        h.ep.respond(h.now, call, 200, "OK", None),
        Err(SipError::UnknownCall)
    );
}

#[test]
fn unanswered_487_is_resent_until_ack() {
    let mut h = Harness::new();
    let call = h.call("z9hG4bKinv1", None);
    h.ep.respond(h.now, call, 486, "Busy Here", None)
        .expect("respond");
    h.out();
    let sent = h.advance(Duration::from_millis(1600));
    assert_eq!(
        sent,
        [
            (500, "SIP/2.0 486 Busy Here".into()),
            (1500, "SIP/2.0 486 Busy Here".into())
        ]
    );
}

#[test]
fn peer_bye_is_answered_once_and_reported_once() {
    let mut h = Harness::new();
    let (call, tag) = h.established();
    let bye = request("BYE", "z9hG4bKbye1", Some(&tag), 2, &[], None);
    h.send(&bye);
    h.send(&bye);
    let out = h.out();
    assert_eq!(
        out.iter().map(|m| status_of(m)).collect::<Vec<_>>(),
        ["200", "200"]
    );
    assert_eq!(h.events(), [Event::Bye { call }]);
    assert_eq!(h.ep.bye(h.now, call), Err(SipError::UnknownCall));
}

#[test]
fn our_bye_is_resent_until_answered() {
    let mut h = Harness::new();
    let (call, tag) = h.established();
    h.ep.bye(h.now, call).expect("bye");
    let bye = h.out().pop().expect("BYE sent");
    assert!(
        bye.starts_with("BYE sip:alice@127.0.0.1:5070 SIP/2.0\r\n"),
        "{bye}"
    );
    assert_eq!(
        header(&bye, "From"),
        Some(format!("<sip:conf@127.0.0.1>;tag={tag}").as_str())
    );
    assert_eq!(
        header(&bye, "To"),
        Some("\"Alice\" <sip:alice@127.0.0.1>;tag=al1")
    );
    let sent = h.advance(Duration::from_millis(1600));
    assert_eq!(
        sent.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        [500, 1500]
    );
    let branch = header(&bye, "Via")
        .and_then(|v| v.split("branch=").nth(1))
        .and_then(|b| b.split(';').next())
        .expect("branch");
    let cseq = header(&bye, "CSeq").expect("cseq");
    h.send(&format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\nFrom: <sip:conf@127.0.0.1>;tag={tag}\r\n\
         To: <sip:alice@127.0.0.1>;tag=al1\r\nCall-ID: call-1@127.0.0.1\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
    ));
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call,
            reason: TerminationReason::ByeCompleted(200)
        }]
    );
    assert!(h.advance(Duration::from_secs(40)).is_empty());
}

#[test]
fn record_route_is_reflected_and_becomes_our_route_set() {
    let mut h = Harness::new();
    let rr = ["Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>"];
    h.send(&request("INVITE", "z9hG4bKrr", None, 1, &rr, Some(SDP)));
    h.out();
    let call = match h.events().as_slice() {
        [Event::Invite { call, .. }] => *call,
        other => panic!("{other:?}"),
    };
    h.ep.respond(h.now, call, 200, "OK", Some(sdp()))
        .expect("respond");
    let ok = h.out().pop().expect("200");
    let routes = |m: &str| -> Vec<String> {
        m.lines()
            .filter_map(|l| {
                l.split_once(": ")
                    .filter(|(n, _)| n.ends_with("Route"))
                    .map(|(_, v)| v.to_string())
            })
            .collect()
    };
    assert_eq!(routes(&ok), ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]);
    h.send(&request(
        "ACK",
        "z9hG4bKrra",
        Some(&to_tag(&ok)),
        1,
        &[],
        None,
    ));
    h.ep.bye(h.now, call).expect("bye");
    let bye = h.out().pop().expect("BYE");
    assert!(
        bye.contains("Route: <sip:p1.example;lr>\r\nRoute: <sip:p2.example;lr>\r\n"),
        "{bye}"
    );
}

#[test]
fn unanswered_bye_gives_up_at_timer_f() {
    let mut h = Harness::new();
    let (call, _) = h.established();
    h.ep.bye(h.now, call).expect("bye");
    h.out();
    let sent = h.advance(Duration::from_secs(40));
    assert_eq!(sent.len(), 10, "E doubles to T2 within F: {sent:?}");
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call,
            reason: TerminationReason::ByeTimeout
        }]
    );
}

#[test]
fn bye_before_ack_waits_for_the_ack() {
    let mut h = Harness::new();
    let call = h.call("z9hG4bKinv1", Some(SDP));
    let tag = h.answer(call);
    h.ep.bye(h.now, call).expect("bye");
    assert!(h.out().is_empty());
    h.send(&request("ACK", "z9hG4bKack1", Some(&tag), 1, &[], None));
    assert!(h.out().iter().any(|m| m.starts_with("BYE ")));
}

#[test]
fn retransmitted_invite_gets_the_last_response_and_no_new_event() {
    let mut h = Harness::new();
    let call = h.call("z9hG4bKinv1", Some(SDP));
    let invite = request("INVITE", "z9hG4bKinv1", None, 1, &[], Some(SDP));
    h.send(&invite);
    assert_eq!(
        h.out().iter().map(|m| status_of(m)).collect::<Vec<_>>(),
        ["100"]
    );
    h.ep.respond(h.now, call, 180, "Ringing", None)
        .expect("ringing");
    h.out();
    h.send(&invite);
    assert_eq!(
        h.out().iter().map(|m| status_of(m)).collect::<Vec<_>>(),
        ["180"]
    );
    h.answer(call);
    h.send(&invite);
    assert_eq!(
        h.out().iter().map(|m| status_of(m)).collect::<Vec<_>>(),
        ["200"]
    );
    assert!(h.events().is_empty());
}

#[test]
fn merged_request_gets_482() {
    let mut h = Harness::new();
    h.call("z9hG4bKpath1", Some(SDP));
    h.send(&request("INVITE", "z9hG4bKpath2", None, 1, &[], Some(SDP)));
    let out = h.out();
    assert_eq!(
        out.iter().map(|m| status_of(m)).collect::<Vec<_>>(),
        ["482"]
    );
    assert!(h.events().is_empty());
}

#[test]
fn options_lists_allow_and_accept() {
    let mut h = Harness::new();
    h.send(&request("OPTIONS", "z9hG4bKo1", None, 1, &[], None));
    let out = h.out();
    assert!(out[0].starts_with("SIP/2.0 200 OK\r\n"));
    assert_eq!(
        header(&out[0], "Allow"),
        Some("INVITE, ACK, BYE, CANCEL, OPTIONS, INFO")
    );
    assert_eq!(header(&out[0], "Accept"), Some("application/sdp"));
    assert!(!to_tag(&out[0]).is_empty());
}

#[test]
fn unknown_method_501_and_register_405_with_allow() {
    let mut h = Harness::new();
    h.send(&request("FROBNICATE", "z9hG4bKf1", None, 1, &[], None));
    h.send(&request("REGISTER", "z9hG4bKr1", None, 1, &[], None));
    let out = h.out();
    assert!(out[0].starts_with("SIP/2.0 501 Not Implemented\r\n"));
    assert!(out[1].starts_with("SIP/2.0 405 Method Not Allowed\r\n"));
    assert!(header(&out[1], "Allow").is_some());
}

#[test]
fn in_dialog_request_for_unknown_dialog_gets_481() {
    let mut h = Harness::new();
    h.send(&request("BYE", "z9hG4bKb1", Some("nosuch"), 2, &[], None));
    h.send(&request("BYE", "z9hG4bKb2", None, 2, &[], None));
    let out = h.out();
    assert_eq!(
        out.iter().map(|m| status_of(m)).collect::<Vec<_>>(),
        ["481", "481"]
    );
}

#[test]
fn late_offer_answer_arrives_in_the_ack() {
    let mut h = Harness::new();
    let call = h.call("z9hG4bKinv1", None);
    let tag = h.answer(call);
    h.send(&request(
        "ACK",
        "z9hG4bKack1",
        Some(&tag),
        1,
        &[],
        Some(SDP),
    ));
    assert_eq!(
        h.events(),
        [Event::Ack {
            call,
            body: Some(sdp())
        }]
    );
}

#[test]
fn compact_headers_make_a_whole_call() {
    let mut h = Harness::new();
    let compact = request("INVITE", "z9hG4bKc1", None, 1, &[], Some(SDP))
        .replace("Via:", "v:")
        .replace("From:", "f:")
        .replace("To:", "t:")
        .replace("Call-ID:", "i:")
        .replace("Contact:", "m:")
        .replace("Content-Type:", "c:")
        .replace("Content-Length:", "l:");
    h.send(&compact);
    assert!(h.out()[0].starts_with("SIP/2.0 100 Trying"));
    assert!(matches!(
        h.events().as_slice(),
        [Event::Invite { body: Some(_), .. }]
    ));
}

#[test]
fn reinvite_is_passed_up_and_moves_the_remote_target() {
    let mut h = Harness::new();
    let (call, tag) = h.established();
    let re = request("INVITE", "z9hG4bKre1", Some(&tag), 2, &[], Some(SDP))
        .replace("<sip:alice@127.0.0.1:5070>", "<sip:alice@127.0.0.2:5080>");
    h.send(&re);
    assert_eq!(
        h.out().iter().map(|m| status_of(m)).collect::<Vec<_>>(),
        ["100"]
    );
    assert_eq!(
        h.events(),
        [Event::ReInvite {
            call,
            body: Some(sdp())
        }]
    );
    assert_eq!(
        h.ep.respond(h.now, call, 200, "OK", None),
        Err(SipError::NoPendingInvite)
    );
    h.ep.respond_reinvite(h.now, call, 200, "OK", Some(sdp()))
        .expect("answer");
    assert!(h.out()[0].starts_with("SIP/2.0 200 OK"));
    h.send(&request("ACK", "z9hG4bKack2", Some(&tag), 2, &[], None));
    assert_eq!(h.events(), [Event::Ack { call, body: None }]);
    h.ep.bye(h.now, call).expect("bye");
    assert!(h.out()[0].starts_with("BYE sip:alice@127.0.0.2:5080 SIP/2.0"));
}

#[test]
fn info_body_is_passed_up_and_answered() {
    let mut h = Harness::new();
    let (call, tag) = h.established();
    let info = request(
        "INFO",
        "z9hG4bKi1",
        Some(&tag),
        2,
        &[],
        Some("Signal=5\r\n"),
    )
    .replace("application/sdp", "application/dtmf-relay");
    h.send(&info);
    assert_eq!(
        h.out().iter().map(|m| status_of(m)).collect::<Vec<_>>(),
        ["200"]
    );
    let body = Body {
        content_type: "application/dtmf-relay".into(),
        bytes: b"Signal=5\r\n".to_vec(),
    };
    assert_eq!(
        h.events(),
        [Event::Info {
            call,
            body: Some(body)
        }]
    );
}

#[test]
fn in_dialog_options_is_answered_without_an_event() {
    let mut h = Harness::new();
    let (_, tag) = h.established();
    h.send(&request("OPTIONS", "z9hG4bKo2", Some(&tag), 2, &[], None));
    let out = h.out();
    assert_eq!(
        out.iter().map(|m| status_of(m)).collect::<Vec<_>>(),
        ["200"]
    );
    assert!(header(&out[0], "Allow").is_some());
    assert!(h.events().is_empty());
}

#[test]
fn bye_while_our_2xx_awaits_ack_stops_the_resends() {
    let mut h = Harness::new();
    let call = h.call("z9hG4bKinv1", Some(SDP));
    let tag = h.answer(call);
    h.send(&request("BYE", "z9hG4bKb1", Some(&tag), 2, &[], None));
    assert_eq!(
        h.out().iter().map(|m| status_of(m)).collect::<Vec<_>>(),
        ["200"]
    );
    assert_eq!(h.events(), [Event::Bye { call }]);
    let sent = h.advance(Duration::from_secs(40));
    assert!(sent.is_empty(), "{sent:?}");
}

#[test]
fn our_bye_during_a_pending_reinvite_answers_it_487() {
    let mut h = Harness::new();
    let (call, tag) = h.established();
    h.send(&request(
        "INVITE",
        "z9hG4bKre1",
        Some(&tag),
        2,
        &[],
        Some(SDP),
    ));
    h.out();
    h.ep.bye(h.now, call).expect("bye");
    let out = h.out();
    let firsts: Vec<&str> = out.iter().filter_map(|m| m.lines().next()).collect();
    assert_eq!(firsts.len(), 2, "{firsts:?}");
    assert!(firsts.contains(&"SIP/2.0 487 Request Terminated"));
    assert!(firsts.iter().any(|l| l.starts_with("BYE ")));
}

#[test]
fn old_cseq_in_dialog_gets_500() {
    let mut h = Harness::new();
    let (_, tag) = h.established();
    h.send(&request("INFO", "z9hG4bKi1", Some(&tag), 1, &[], None));
    assert_eq!(
        h.out().iter().map(|m| status_of(m)).collect::<Vec<_>>(),
        ["500"]
    );
}

#[test]
fn screening_max_forwards_require_and_media_type() {
    let mut h = Harness::new();
    let mf0 = request("OPTIONS", "z9hG4bKm1", None, 1, &[], None)
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    h.send(&mf0);
    h.send(&request(
        "INVITE",
        "z9hG4bKr1",
        None,
        1,
        &["Require: 100rel, foo"],
        Some(SDP),
    ));
    let html = request("INVITE", "z9hG4bKh1", None, 2, &[], Some("<p>hi</p>"))
        .replace("application/sdp", "text/html");
    h.send(&html);
    let out = h.out();
    assert_eq!(
        out.iter().map(|m| status_of(m)).collect::<Vec<_>>(),
        ["483", "420", "415"]
    );
    assert_eq!(header(&out[1], "Unsupported"), Some("100rel, foo"));
    assert_eq!(header(&out[2], "Accept"), Some("application/sdp"));
    assert!(h.events().is_empty());
}

#[test]
fn app_can_send_info_and_hears_the_status() {
    let mut h = Harness::new();
    let (call, _) = h.established();
    let body = Body {
        content_type: "application/dtmf-relay".into(),
        bytes: b"Signal=1\r\n".to_vec(),
    };
    let id = h.ep.info(h.now, call, body).expect("info");
    assert!(h.out()[0].starts_with("INFO sip:alice@127.0.0.1:5070 SIP/2.0"));
    h.advance(Duration::from_secs(40));
    assert_eq!(
        h.events(),
        [Event::Response {
            call,
            request: id,
            status: 408
        }]
    );
}

#[test]
fn closed_tcp_connection_terminates_its_calls() {
    let mut h = Harness::new();
    let conn = ConnId(7);
    let invite = request("INVITE", "z9hG4bKt1", None, 1, &[], Some(SDP)).replace("UDP", "TCP");
    h.ep.handle_input(h.now, peer(), Transport::Tcp(conn), invite.as_bytes());
    let t = h.ep.poll_transmit().expect("100 Trying");
    assert_eq!(t.transport, Transport::Tcp(conn));
    let call = match h.events().as_slice() {
        [Event::Invite { call, .. }] => *call,
        other => panic!("{other:?}"),
    };
    h.ep.handle_transport_closed(h.now, conn);
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call,
            reason: TerminationReason::TransportClosed
        }]
    );
}

#[test]
fn responses_follow_via_port_without_rport() {
    let mut h = Harness::new();
    let opts = request("OPTIONS", "z9hG4bKo1", None, 1, &[], None)
        .replace("5070;branch=z9hG4bKo1;rport", "5099;branch=z9hG4bKo1");
    h.send(&opts);
    let t = h.ep.poll_transmit().expect("200");
    assert_eq!(t.to, "127.0.0.1:5099".parse().expect("addr"));
}
