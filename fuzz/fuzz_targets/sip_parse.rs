//! The SIP normalising front (`sip::parse`) and the typed views on top of it (`sip::message`):
//! any bytes either parse or carry a defect with a 4xx/5xx status; a request that validates
//! gets a response that our own parser reads back as that response.
#![no_main]

use std::net::SocketAddr;

use chorus::sip::message::{
    NameAddr, Request, Response, ResponseParts, Via, build_response, percent_decode,
    response_destination, uri_user,
};
use chorus::sip::parse::{Framing, MAX_BODY_BYTES, StartLine, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for framing in [Framing::Datagram, Framing::Stream] {
        if let Some(msg) = parse(data, framing) {
            check(msg);
        }
    }
});

fn check(msg: chorus::sip::parse::Message) {
    if let Some(d) = &msg.defect {
        assert!((400..600).contains(&d.status), "defect status {}", d.status);
    }
    assert!(msg.body.len() <= MAX_BODY_BYTES);
    for (_, value) in &msg.headers {
        if let Some(n) = NameAddr::parse(value) {
            let _ = uri_user(&n.uri);
        }
        let _ = Via::parse(value);
        let _ = percent_decode(value);
    }
    if let Some(r) = Response::from_message(&msg) {
        assert!(matches!(msg.start, StartLine::Response { code, .. } if code == r.code));
    }
    let Ok(req) = Request::from_message(msg) else {
        return;
    };
    let _ = req.body();
    let source: SocketAddr = "192.0.2.1:5099".parse().unwrap();
    let _ = response_destination(Some(&req.via), source);
    let parts = ResponseParts {
        status: 200,
        reason: "OK",
        to_tag: Some("fuzz1"),
        headers: &[],
        body: None,
    };
    let bytes = build_response(&req.msg, source, &parts);
    let resp = parse(&bytes, Framing::Datagram).expect("a response is not empty");
    assert!(
        matches!(resp.start, StartLine::Response { code: 200, .. }),
        "{:?}",
        resp.start
    );
    assert_eq!(resp.defect, None, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(resp.header("Call-ID"), Some(req.call_id.as_str()));
    let to = NameAddr::parse(resp.header("To").expect("To copied")).expect("To reparses");
    assert!(to.tag.is_some());
}
