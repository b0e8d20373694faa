//! The test phone's parsers, checked on their own: SIP responses, SDP, RTP and DTMF events.
//! The modules are included by path so these run without the rest of the phone.

#[allow(dead_code)]
#[path = "support/sip_text.rs"]
mod sip_text;

#[allow(dead_code)]
#[path = "support/sdp_text.rs"]
mod sdp_text;

#[allow(dead_code)]
#[path = "support/rtp.rs"]
mod rtp;

use chorus::media::codec::CodecKind;
use sdp_text::{Direction, Sdp};
use sip_text::{Message, StartLine};

const REJECT: &str = "SIP/2.0 488 Not Acceptable Here\r\n\
    v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport=5070\r\n\
    f: <sip:phone@127.0.0.1:5070>;tag=abc\r\n\
    t: <sip:1000@127.0.0.1:5060>;tag=srv1\r\n\
    i: call-1@test\r\n\
    CSeq: 1 INVITE\r\n\
    Warning: 399 chorus \"no common codec: offered G729\"\r\n\
    l: 0\r\n\r\n";

#[test]
fn reads_a_rejection_with_compact_headers_and_warning() {
    let m = Message::parse(REJECT.as_bytes()).unwrap();
    assert_eq!(m.status(), Some(488));
    assert_eq!(m.cseq(), Some((1, "INVITE")));
    assert_eq!(m.tag("To"), Some("srv1"));
    assert_eq!(m.tag("From"), Some("abc"));
    assert_eq!(m.header("call-id"), Some("call-1@test"));
    assert!(m.header("Warning").unwrap().contains("no common codec"));
}

#[test]
fn reads_a_request_with_folded_header_and_body_cut_to_length() {
    let text = "BYE sip:phone@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\n\
        Subject: one\r\n two\r\nContent-Length: 4\r\n\r\nbodyEXTRA";
    let m = Message::parse(text.as_bytes()).unwrap();
    assert_eq!(
        m.start,
        StartLine::Request {
            method: "BYE".into(),
            uri: "sip:phone@127.0.0.1:5070".into()
        }
    );
    assert_eq!(m.header("Subject"), Some("one two"));
    assert_eq!(m.body, "body");
}

#[test]
fn rejects_garbage_and_short_bodies() {
    assert!(Message::parse(b"hello").is_err());
    assert!(Message::parse(b"NOT A START LINE\r\n\r\n").is_err());
    assert!(Message::parse(b"SIP/2.0 200 OK\r\nContent-Length: 10\r\n\r\nabc").is_err());
}

#[test]
fn splits_record_route_lists_but_not_inside_brackets() {
    let text = "SIP/2.0 200 OK\r\nRecord-Route: <sip:p1;lr>, <sip:p2;lr;x=\"a,b\">\r\n\
        Record-Route: <sip:p3;lr>\r\nContact: \"Chorus, conf\" <sip:conf@127.0.0.1:5060>\r\n\r\n";
    let m = Message::parse(text.as_bytes()).unwrap();
    let routes: Vec<&str> = m.headers_all("Record-Route").collect();
    assert_eq!(
        routes,
        ["<sip:p1;lr>", "<sip:p2;lr;x=\"a,b\">", "<sip:p3;lr>"]
    );
    assert_eq!(
        sip_text::uri_of(m.header("Contact").unwrap()),
        "sip:conf@127.0.0.1:5060"
    );
}

#[test]
fn frames_a_tcp_stream_by_content_length() {
    let one = "SIP/2.0 100 Trying\r\nl: 3\r\n\r\nabc";
    let stream = format!("{one}SIP/2.0 200 OK\r\n");
    assert_eq!(sip_text::frame_len(stream.as_bytes()), Some(one.len()));
    assert_eq!(
        sip_text::frame_len(b"SIP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nab"),
        None
    );
}

const ANSWER: &str = "v=0\r\no=chorus 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n\
    m=audio 30000 RTP/AVP 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n\
    a=recvonly\r\nm=video 30002 RTP/AVP 97\r\na=sendonly\r\n";

#[test]
fn reads_an_answer_with_static_types_and_no_rtpmap() {
    let sdp = Sdp::parse(ANSWER).unwrap();
    assert_eq!(sdp.rtp, "127.0.0.2:30000".parse().unwrap());
    assert_eq!(sdp.direction, Direction::RecvOnly);
    assert_eq!(
        sdp.first_codec(&[CodecKind::Pcmu, CodecKind::Pcma]),
        Some((CodecKind::Pcma, 8))
    );
    assert_eq!(
        sdp.first_codec(&[CodecKind::Pcmu]),
        Some((CodecKind::Pcmu, 0))
    );
    assert_eq!(sdp.first_codec(&[CodecKind::Opus]), None);
    assert_eq!(sdp.telephone_event(8000), Some(96));
    assert_eq!(sdp.telephone_event(48000), None);
}

#[test]
fn the_phone_offer_reads_back() {
    let at = "127.0.0.1:40000".parse().unwrap();
    let text = sdp_text::offer(
        at,
        &[CodecKind::Opus, CodecKind::G722, CodecKind::Pcmu],
        Direction::SendOnly,
        3,
    );
    let sdp = Sdp::parse(&text).unwrap();
    assert_eq!(sdp.rtp, at);
    assert_eq!(sdp.direction, Direction::SendOnly);
    assert_eq!(sdp.formats, [111, 9, 0, 101, 110]);
    assert_eq!(sdp.format(111), Some(("opus".into(), 48000)));
    assert_eq!(
        sdp.first_codec(&[CodecKind::G722]),
        Some((CodecKind::G722, 9))
    );
    assert_eq!(sdp.telephone_event(48000), Some(110));
    assert!(text.contains("o=phone 1 3 IN IP4 127.0.0.1\r\n"));
}

#[test]
fn sdp_without_audio_or_address_is_an_error() {
    assert!(Sdp::parse("v=0\r\nc=IN IP4 127.0.0.1\r\nm=video 1 RTP/AVP 96\r\n").is_err());
    assert!(Sdp::parse("v=0\r\nm=audio 1 RTP/AVP 0\r\n").is_err());
}

#[test]
fn rtp_round_trips_and_skips_csrc_extension_and_padding() {
    let mut out = Vec::new();
    let sent = rtp::Packet {
        marker: true,
        pt: 0,
        seq: 65535,
        ts: 160,
        ssrc: 7,
        payload: &[1, 2, 3],
    };
    sent.write(&mut out);
    assert_eq!(rtp::Packet::parse(&out), Some(sent));

    // One CSRC, a one-word extension, two bytes of padding.
    let mut raw = vec![0x80 | 0x20 | 0x10 | 1, 8, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
    raw.extend_from_slice(&[0, 0, 0, 9]); // CSRC
    raw.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // extension
    raw.extend_from_slice(&[0xAA, 0xBB, 0, 2]); // payload + padding
    let p = rtp::Packet::parse(&raw).unwrap();
    assert_eq!((p.pt, p.seq, p.ts, p.ssrc), (8, 1, 2, 3));
    assert_eq!(p.payload, [0xAA, 0xBB]);

    assert!(rtp::Packet::parse(&[0x80, 200, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_none()); // RTCP SR
    assert!(rtp::Packet::parse(&[0x40; 12]).is_none()); // version 1
}

#[test]
fn dtmf_events_map_both_ways() {
    assert_eq!(rtp::dtmf_event('5'), Some(5));
    assert_eq!(rtp::dtmf_event('#'), Some(11));
    assert_eq!(rtp::dtmf_event('d'), Some(15));
    assert_eq!(rtp::dtmf_event('x'), None);
    assert_eq!(rtp::dtmf_key(10), Some('*'));
    assert_eq!(rtp::dtmf_key(16), None);
    let payload = rtp::event_payload(11, true, 10, 800);
    assert_eq!(payload, [11, 0x80 | 10, 3, 32]);
    assert_eq!(rtp::read_event(&payload), Some((11, true)));
}
