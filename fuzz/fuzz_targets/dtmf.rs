//! RFC 4733 events (`media::dtmf`): any stream of event payloads gives at most one digit per
//! packet and never panics; the packet train for any digit, clock and packet time the SDP
//! negotiation allows is well-formed and read back as exactly that digit.
#![no_main]

use arbitrary::Arbitrary;
use chorus::media::dtmf::{DtmfReceiver, digit_of, digit_packets};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    received: Vec<(u32, Vec<u8>)>,
    digit: char,
    clock: u8,
    ptime_ms: u8,
    duration_ms: u16,
}

fuzz_target!(|input: Input| {
    let mut rx = DtmfReceiver::default();
    for (timestamp, payload) in &input.received {
        if let Some(d) = rx.handle(*timestamp, payload) {
            assert_eq!(Some(d), digit_of(payload[0]));
        }
    }
    let clock = [8000, 16000, 48000][usize::from(input.clock % 3)];
    let ptime = 10 + u32::from(input.ptime_ms % 51);
    let Some(packets) = digit_packets(input.digit, clock, ptime, u32::from(input.duration_ms))
    else {
        return;
    };
    let packets: Vec<_> = packets.collect();
    assert!(packets[0].marker && packets[1..].iter().all(|p| !p.marker));
    assert!(
        packets
            .iter()
            .rev()
            .take(3)
            .all(|p| p.payload[1] & 0x80 != 0)
    );
    let mut fresh = DtmfReceiver::default();
    let got: String = packets
        .iter()
        .filter_map(|p| fresh.handle(1234, &p.payload))
        .collect();
    assert_eq!(got, input.digit.to_ascii_uppercase().to_string());
});
