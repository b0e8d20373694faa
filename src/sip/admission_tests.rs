//! Admission and dial-in authentication at the endpoint, on a virtual clock: what a flood, a
//! denied source and a caller without credentials see.

use std::net::SocketAddr;
use std::time::Duration;

use super::admission::{Acl, Limits, Rate};
use super::digest::{Algorithm, Proof};
use super::endpoint_tests::{Harness, SDP, header, request, status_of, to_tag};
use super::*;

/// A new INVITE with a Call-ID of its own.
fn invite(n: usize, extra: &[&str]) -> String {
    request("INVITE", &format!("z9hG4bKf{n}"), None, 1, extra, Some(SDP))
        .replace("call-1@", &format!("call-n{n}@"))
}

fn statuses(h: &mut Harness) -> Vec<String> {
    h.out().iter().map(|m| status_of(m).to_string()).collect()
}

fn count(statuses: &[String], status: &str) -> usize {
    statuses.iter().filter(|s| *s == status).count()
}

/// Sends INVITE `n` and returns its call, checking it was admitted.
fn admitted_call(h: &mut Harness, n: usize) -> CallId {
    h.send(&invite(n, &[]));
    assert_eq!(statuses(h), ["100"], "INVITE {n} admitted");
    match h.events().as_slice() {
        [Event::Invite { call, .. }] => *call,
        other => panic!("expected one Invite, got {other:?}"),
    }
}

/// Answers `call` (INVITE `n`) 200 and returns the ACK that would confirm it.
fn answer(h: &mut Harness, call: CallId, n: usize) -> String {
    h.ep.respond(h.now, call, 200, "OK", Some(endpoint_tests::sdp()))
        .unwrap();
    let tag = to_tag(&h.out()[0]);
    request("ACK", &format!("z9hG4bKack{n}"), Some(&tag), 1, &[], None)
        .replace("call-1@", &format!("call-n{n}@"))
}

#[test]
fn an_invite_flood_gets_503_then_silence_while_a_call_in_progress_goes_on() {
    let mut h = Harness::with(|c| {
        c.limits = Limits {
            invite_per_source: Rate {
                rate: 1.0,
                burst: 5.0,
            },
            refusals_per_source: Rate {
                rate: 1.0,
                burst: 10.0,
            },
            ..Limits::default()
        }
    });
    let (_, tag) = h.established();
    let mut out = Vec::new();
    for n in 0..100 {
        h.send(&invite(n, &[]));
        out.extend(h.out());
    }
    let codes: Vec<String> = out.iter().map(|m| status_of(m).to_string()).collect();
    assert_eq!(count(&codes, "100"), 4, "the rest of the burst");
    assert_eq!(count(&codes, "503"), 10, "the refusal budget");
    assert_eq!(codes.len(), 14, "then silence: {codes:?}");
    let busy = out.iter().find(|m| status_of(m) == "503").unwrap();
    assert_eq!(header(busy, "Retry-After"), Some("5"));
    assert_eq!(h.events().len(), 4);
    h.send(&request("BYE", "z9hG4bKbye", Some(&tag), 2, &[], None));
    assert_eq!(
        statuses(&mut h),
        ["200"],
        "the call in progress still hangs up"
    );
    assert!(matches!(h.events().as_slice(), [Event::Bye { .. }]));
}

#[test]
fn a_refused_invite_holds_no_transaction_and_is_weighed_again_when_resent() {
    let mut h = Harness::with(|c| {
        c.limits.invite_per_source = Rate {
            rate: 1.0,
            burst: 1.0,
        }
    });
    admitted_call(&mut h, 0);
    h.send(&invite(1, &[]));
    assert_eq!(statuses(&mut h), ["503"]);
    assert!(
        h.run_until(h.now + Duration::from_secs(1)).is_empty(),
        "never resent"
    );
    h.send(&invite(1, &[]));
    assert_eq!(
        statuses(&mut h),
        ["100"],
        "admitted once the bucket refilled"
    );
}

#[test]
fn unacknowledged_calls_are_capped_until_an_ack_confirms_one() {
    let mut h = Harness::with(|c| c.limits.unacked_per_source = 2);
    let first = admitted_call(&mut h, 0);
    let second = admitted_call(&mut h, 1);
    let ack = answer(&mut h, first, 0);
    answer(&mut h, second, 1);
    h.send(&invite(2, &[]));
    assert_eq!(
        statuses(&mut h),
        ["503"],
        "two answered calls await their ACK"
    );
    let other: SocketAddr = "192.0.2.9:5060".parse().unwrap();
    h.send_from(other, &invite(3, &[]));
    assert_eq!(statuses(&mut h), ["100"], "another source is not held up");
    h.events();
    h.send(&ack);
    assert!(matches!(h.events().as_slice(), [Event::Ack { .. }]));
    admitted_call(&mut h, 4);
}

#[test]
fn server_transactions_per_source_are_capped_until_they_end() {
    let mut h = Harness::with(|c| c.limits.transactions_per_source = 3);
    let options = |n: usize| {
        request("OPTIONS", &format!("z9hG4bKo{n}"), None, 1, &[], None)
            .replace("call-1@", &format!("opt-{n}@"))
    };
    for n in 0..3 {
        h.send(&options(n));
        assert_eq!(statuses(&mut h), ["200"]);
    }
    h.send(&options(3));
    assert_eq!(statuses(&mut h), ["503"]);
    h.advance(Duration::from_secs(33));
    h.send(&options(4));
    assert_eq!(statuses(&mut h), ["200"], "timer J freed the slots");
}

#[test]
fn a_denied_source_gets_403_and_its_responses_are_ignored() {
    let mut h = Harness::with(|c| {
        c.acl = Acl {
            allow: vec![],
            deny: vec!["192.0.2.0/24".parse().unwrap()],
        }
    });
    let denied: SocketAddr = "192.0.2.7:5060".parse().unwrap();
    h.send_from(denied, &invite(0, &[]));
    assert_eq!(statuses(&mut h), ["403"]);
    assert!(h.events().is_empty());
    h.send_from(
        denied,
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKx\r\n\r\n",
    );
    assert!(h.out().is_empty());
    admitted_call(&mut h, 1);
}

fn with_auth() -> Harness {
    Harness::with(|c| {
        c.auth = Some(DialInAuth {
            realm: "chorus".into(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            users: vec![("alice".into(), "s3cret".into())],
        })
    })
}

/// The nonce of a 401's first challenge.
fn nonce(challenge: &str) -> String {
    let start = challenge.find("nonce=\"").expect("a nonce") + 7;
    let len = challenge[start..].find('"').expect("closing quote");
    challenge[start..start + len].to_string()
}

fn authorization(algorithm: Algorithm, nonce: &str, password: &str) -> String {
    let proof = Proof {
        algorithm,
        username: "alice",
        realm: "chorus",
        method: "INVITE",
        uri: "sip:conf@127.0.0.1",
        nonce,
        qop_auth: Some(("00000001", "0a4f113b")),
    };
    format!("Authorization: {}", proof.credentials(password))
}

/// Sends INVITE `n` without credentials and returns the 401's nonce.
fn challenged(h: &mut Harness, n: usize) -> String {
    h.send(&invite(n, &[]));
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert!(
        out[0].starts_with("SIP/2.0 401 Unauthorized\r\n"),
        "{}",
        out[0]
    );
    let challenges: Vec<&str> = out[0]
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .collect();
    assert_eq!(challenges.len(), 2, "{}", out[0]);
    assert!(challenges[0].contains("algorithm=SHA-256") && challenges[1].contains("algorithm=MD5"));
    assert!(h.events().is_empty(), "no call without credentials");
    nonce(challenges[0])
}

#[test]
fn with_dial_in_auth_a_call_is_challenged_then_admitted_with_the_right_password() {
    let mut h = with_auth();
    let nonce = challenged(&mut h, 0);
    for (n, algorithm) in [(1, Algorithm::Md5), (2, Algorithm::Sha256)] {
        let auth = authorization(algorithm, &nonce, "s3cret");
        h.send(&invite(n, &[&auth]));
        assert_eq!(statuses(&mut h), ["100"], "{algorithm:?}");
        assert!(matches!(h.events().as_slice(), [Event::Invite { .. }]));
    }
}

#[test]
fn with_dial_in_auth_a_wrong_password_gets_403_and_an_old_nonce_a_stale_challenge() {
    let mut h = with_auth();
    let nonce = challenged(&mut h, 0);
    h.send(&invite(
        1,
        &[&authorization(Algorithm::Md5, &nonce, "guess")],
    ));
    assert_eq!(statuses(&mut h), ["403"]);
    assert!(h.events().is_empty());
    h.now += digest::NONCE_LIFETIME + Duration::from_secs(1);
    h.send(&invite(
        2,
        &[&authorization(Algorithm::Md5, &nonce, "s3cret")],
    ));
    let out = h.out();
    assert!(out[0].starts_with("SIP/2.0 401 "), "{}", out[0]);
    assert!(out[0].contains(", stale=true\r\n"), "{}", out[0]);
}
