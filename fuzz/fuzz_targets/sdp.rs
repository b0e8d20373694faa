//! SDP read and offer/answer (`sdp`): any text parses or fails with an error; an offer we
//! accept gets an answer that our own reader parses with the port we gave; an answer to our
//! offer is accepted or refused, never a panic.
#![no_main]

use chorus::sdp::{Direction, MediaPolicy, SdpSession, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(sd) = parse(&text) {
        for m in &sd.media {
            let _ = sd.connection_of(m);
            for pt in m.payload_types() {
                let _ = (m.rtpmap(pt), m.fmtp(pt));
            }
        }
    }
    let local = "192.0.2.10:20000".parse().unwrap();
    let mut session = SdpSession::new(MediaPolicy::default(), local, 7);
    if let Ok((neg, answer)) = session.answer(&text) {
        assert!((10..=60).contains(&neg.ptime_ms), "ptime {}", neg.ptime_ms);
        let ours =
            parse(&answer).unwrap_or_else(|e| panic!("our answer does not parse: {e}\n{answer}"));
        let offered = parse(&text).expect("an offer we answered parses");
        assert_eq!(ours.media.len(), offered.media.len(), "{answer}");
        let port = ours.media.get(neg.media_index).map(|m| m.port);
        assert_eq!(port, Some(20000), "{answer}");
    }
    let _ = session.offer(Direction::SendRecv);
    if let Ok(neg) = session.accept_answer(&text) {
        assert!((10..=60).contains(&neg.ptime_ms), "ptime {}", neg.ptime_ms);
    }
});
