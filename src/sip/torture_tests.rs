//! Malformed and torture messages (RFC 4475 in spirit) from fixtures/sip/torture, plus a
//! bounded byte-mutation run: every input gets its expected answer or silence, never a panic,
//! and the endpoint keeps answering OPTIONS afterwards.

use std::path::PathBuf;

use super::endpoint_tests::{Harness, request};
use super::parse::{Framing, StartLine, parse};
use crate::test_rng::Rng;

fn torture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sip/torture")
}

/// (file name, expected first response status or "drop").
fn manifest() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(torture_dir().join("expected.txt")).expect("manifest");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next().expect("name").to_string();
            (name, it.next().expect("expectation").to_string())
        })
        .collect()
}

fn status(bytes: &[u8]) -> String {
    match parse(bytes, Framing::Datagram).map(|m| m.start) {
        Some(StartLine::Response { code, .. }) => code.to_string(),
        other => panic!("we sent something that is not a response: {other:?}"),
    }
}

/// Proves the endpoint is still alive and answering.
fn assert_options_ok(h: &mut Harness, n: usize) {
    // A fresh CSeq each time, as a real UA would: same CSeq and new branch is a merged request.
    let cseq = (n % 1_000_000) as u32 + 1;
    h.send(&request(
        "OPTIONS",
        &format!("z9hG4bKalive{n}"),
        None,
        cseq,
        &[],
        None,
    ));
    let out = h.out();
    assert_eq!(out.len(), 1, "OPTIONS after input {n}");
    assert!(out[0].starts_with("SIP/2.0 200 OK\r\n"), "{}", out[0]);
}

#[test]
fn every_torture_message_gets_its_answer_and_the_server_stays_up() {
    let cases = manifest();
    assert!(cases.len() >= 50, "only {} torture fixtures", cases.len());
    let mut h = Harness::new();
    let mut failures = Vec::new();
    for (i, (name, expected)) in cases.iter().enumerate() {
        let bytes = std::fs::read(torture_dir().join(name)).expect("fixture");
        h.send_bytes(&bytes);
        let sent: Vec<Vec<u8>> = std::iter::from_fn(|| h.ep.poll_transmit())
            .map(|t| t.bytes)
            .collect();
        let got = sent
            .first()
            .map_or_else(|| "drop".to_string(), |b| status(b));
        if got != *expected {
            let line = sent.first().map(|b| {
                String::from_utf8_lossy(b)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            });
            failures.push(format!("{name}: expected {expected}, got {line:?}"));
        }
        h.events();
        assert_options_ok(&mut h, i);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rejections_name_the_problem_in_the_reason_phrase() {
    let mut h = Harness::new();
    let bytes = std::fs::read(torture_dir().join("missing-call-id.sip")).expect("fixture");
    h.send_bytes(&bytes);
    let out = h.out();
    assert!(
        out[0].starts_with("SIP/2.0 400 Missing Call-ID\r\n"),
        "{}",
        out[0]
    );
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..1 + rng.index(8) {
        let at = rng.index(m.len());
        match rng.index(4) {
            0 => m[at] = rng.next() as u8,
            1 => {
                m.remove(at);
            }
            2 => m.insert(at, b"\r\n:;,<>\"\\ \0"[rng.index(11)]),
            _ => {
                let end = (at + rng.index(40)).min(m.len());
                let chunk = m[at..end].to_vec();
                m.splice(at..at, chunk);
            }
        }
    }
    m
}

#[test]
fn byte_mutations_of_valid_messages_never_panic() {
    let seeds = [
        request("INVITE", "z9hG4bKseed1", None, 1, &["X-A: 1"], Some(super::endpoint_tests::SDP)),
        request("OPTIONS", "z9hG4bKseed2", None, 1, &[], None),
        request("BYE", "z9hG4bKseed3", Some("tag"), 2, &[], None),
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nCSeq: 1 BYE\r\nl: 0\r\n\r\n".into(),
    ];
    let mut rng = Rng(0x5151_4475);
    let mut h = Harness::new();
    for i in 0..3000 {
        let seed = seeds[i % seeds.len()].as_bytes();
        let input = mutate(&mut rng, seed);
        h.send_bytes(&input);
        for t in std::iter::from_fn(|| h.ep.poll_transmit()) {
            status(&t.bytes);
        }
        h.events();
        let mut framer = super::Framer::new();
        framer.push(&input);
        while let Ok(Some(msg)) = framer.next_message() {
            assert!(msg.len() <= input.len());
        }
    }
    h.advance(std::time::Duration::from_secs(40));
    assert_options_ok(&mut h, usize::MAX);
}
