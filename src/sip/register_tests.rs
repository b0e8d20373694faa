//! REGISTER through the sans-IO endpoint when a registrar serves it: parsed for the
//! registrar, answered with its reply, retransmissions absorbed, malformed contact lists
//! refused, and the number awaiting an answer bounded.

use super::admission::Rate;
use super::endpoint::register::MAX_AWAITING_REGISTERS;
use super::endpoint_tests::{Harness, header, request};

fn served() -> Harness {
    Harness::with(|c| {
        c.registrar = true;
        let many = Rate {
            rate: 1e6,
            burst: 1e6,
        };
        c.limits.register_per_source = many;
        c.limits.register_global = many;
    })
}

#[test]
fn a_register_reaches_the_registrar_and_its_answer_the_phone() {
    let mut h = served();
    let auth = "Authorization: Digest username=\"alice\", realm=\"chorus\"";
    h.send(&request(
        "REGISTER",
        "z9hG4bKr1",
        None,
        7,
        &["Expires: 120", auth],
        None,
    ));
    let r = h.ep.poll_register().expect("handed to the registrar");
    assert_eq!(
        (r.user.as_str(), r.host.as_str(), r.cseq),
        ("conf", "127.0.0.1", 7)
    );
    assert_eq!(r.contacts, [("sip:alice@127.0.0.1:5070".to_string(), None)]);
    assert_eq!(
        (r.expires, r.star, r.authorizations.len()),
        (Some(120), false, 1)
    );
    assert!(
        h.out().is_empty(),
        "nothing is sent before the registrar answers"
    );
    let contact = (
        "Contact",
        "<sip:alice@127.0.0.1:5070>;expires=120".to_string(),
    );
    h.ep.respond_register(h.now, r.id, 200, "OK", vec![contact]);
    let out = h.out();
    assert!(out[0].starts_with("SIP/2.0 200 OK\r\n"), "{}", out[0]);
    assert_eq!(
        header(&out[0], "Contact"),
        Some("<sip:alice@127.0.0.1:5070>;expires=120")
    );
    // The retransmission gets the same answer from the transaction.
    h.send(&request(
        "REGISTER",
        "z9hG4bKr1",
        None,
        7,
        &["Expires: 120", auth],
        None,
    ));
    assert!(h.ep.poll_register().is_none());
    assert!(h.out()[0].starts_with("SIP/2.0 200 OK\r\n"));
}

#[test]
fn a_star_must_stand_alone_and_contacts_must_parse() {
    let mut h = served();
    h.send(&request(
        "REGISTER",
        "z9hG4bKr2",
        None,
        1,
        &["Contact: *", "Expires: 0"],
        None,
    ));
    h.send(&request(
        "REGISTER",
        "z9hG4bKr3",
        None,
        2,
        &["Contact: <>"],
        None,
    ));
    let out = h.out();
    assert_eq!(out.len(), 2);
    assert!(
        out.iter()
            .all(|o| o.starts_with("SIP/2.0 400 Bad Contact\r\n")),
        "{out:?}"
    );
    assert!(h.ep.poll_register().is_none());
}

#[test]
fn registers_awaiting_an_answer_are_bounded() {
    let mut h = served();
    for i in 0..=MAX_AWAITING_REGISTERS {
        h.send(&request(
            "REGISTER",
            &format!("z9hG4bKb{i}"),
            None,
            i as u32 + 1,
            &[],
            None,
        ));
    }
    let out = h.out();
    assert_eq!(out.len(), 1, "only the one past the bound is answered");
    assert!(
        out[0].starts_with("SIP/2.0 503 Service Unavailable\r\n"),
        "{}",
        out[0]
    );
    assert!(header(&out[0], "Retry-After").is_some());
    assert_eq!(
        std::iter::from_fn(|| h.ep.poll_register()).count(),
        MAX_AWAITING_REGISTERS
    );
}
