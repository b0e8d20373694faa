//! Offer/answer against SDP shaped like what real phones and trunks send.

use super::*;

const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

const BARESIP: &str = "v=0\r\no=- 2890844526 2890844527 IN IP4 192.168.1.10\r\ns=-\r\n\
c=IN IP4 192.168.1.10\r\nt=0 0\r\nm=audio 10000 RTP/AVP 96 9 0 8 101\r\nb=AS:64\r\n\
a=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=1;sprop-stereo=1\r\na=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\na=sendrecv\r\na=label:1\r\na=ssrc:3345677 cname:abc@host\r\n\
a=rtcp-mux\r\na=ptime:20\r\n";

const PJSUA: &str = "v=0\r\no=- 3815148893 3815148893 IN IP4 192.168.0.5\r\ns=pjmedia\r\n\
b=AS:117\r\nt=0 0\r\na=X-nat:0\r\nm=audio 4000 RTP/AVP 96 9 8 0 101 102\r\n\
c=IN IP4 192.168.0.5\r\nb=TIAS:96000\r\na=rtcp:4005 IN IP4 192.168.0.6\r\na=sendrecv\r\n\
a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=rtpmap:9 G722/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/48000\r\n\
a=fmtp:101 0-16\r\na=rtpmap:102 telephone-event/8000\r\na=fmtp:102 0-16\r\n\
a=ssrc:1186423574 cname:6ba2b3d25b3e0cd0\r\n";

const LINPHONE_VIDEO: &str = "v=0\r\no=alice 2436 1049 IN IP4 192.168.1.20\r\ns=Talk\r\n\
c=IN IP4 192.168.1.20\r\nt=0 0\r\na=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL\r\n\
m=video 9078 RTP/AVP 96 97\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 H264/90000\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100\r\na=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\na=rtpmap:97 speex/16000\r\na=fmtp:97 vbr=on\r\n\
a=rtpmap:98 speex/8000\r\na=fmtp:18 annexb=yes\r\na=rtpmap:101 telephone-event/48000\r\n\
a=rtpmap:99 telephone-event/16000\r\na=rtpmap:100 telephone-event/8000\r\n\
a=rtcp-fb:* trr-int 1000\r\n";

const POLYCOM: &str = "v=0\r\no=- 1605550735 1605550735 IN IP4 10.0.0.50\r\n\
s=Polycom IP Phone\r\nc=IN IP4 10.0.0.50\r\nt=0 0\r\na=sendrecv\r\n\
m=audio 2222 RTP/AVP 9 102 0 8 18 127\r\na=rtpmap:9 G722/8000\r\na=rtpmap:102 G7221/16000\r\n\
a=fmtp:102 bitrate=32000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=rtpmap:127 telephone-event/8000\r\n";

const YEALINK_IPV6: &str = "v=0\r\no=- 20021 20021 IN IP6 2001:db8::100\r\ns=SDP data\r\n\
c=IN IP6 2001:db8::100\r\nt=0 0\r\nm=audio 11800 RTP/AVP 9 0 8 18 101\r\n\
a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=fmtp:101 0-15\r\n\
a=rtpmap:101 telephone-event/8000\r\na=ptime:30\r\na=sendrecv\r\n";

const TWILIO: &str = "v=0\r\no=root 1753441 1753441 IN IP4 54.172.60.1\r\n\
s=Twilio Media Gateway\r\nc=IN IP4 54.172.60.1\r\nt=0 0\r\nm=audio 12345 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:20\r\na=maxptime:150\r\na=sendrecv\r\n";

/// An old gateway: static payload types only, LF line ends, no rtpmap at all.
const STATIC_ONLY: &str = "v=0\no=gw 1 1 IN IP4 10.1.1.1\ns=-\nc=IN IP4 10.1.1.1\nt=0 0\n\
m=audio 5004 RTP/AVP 18 8 0\na=ptime:40\n";

/// FreeSWITCH/Grandstream-style Opus fmtp with spaces after ';'.
const OPUS_SPACES: &str = "v=0\r\no=FreeSWITCH 1 2 IN IP4 203.0.113.7\r\ns=FreeSWITCH\r\n\
c=IN IP4 203.0.113.7\r\nt=0 0\r\nm=audio 30000 RTP/AVP 102 0 110\r\na=rtpmap:102 opus/48000/2\r\n\
a=fmtp:102 maxplaybackrate=16000; stereo=0; useinbandfec=1\r\n\
a=rtpmap:110 telephone-event/48000\r\na=fmtp:110 0-15\r\na=ptime:60\r\na=maxptime:40\r\n";

fn session(codecs: &[CodecKind]) -> SdpSession {
    let policy = MediaPolicy {
        codecs: codecs.to_vec(),
        ..MediaPolicy::default()
    };
    SdpSession::new(policy, "198.51.100.1:20000".parse().unwrap(), 1000)
}

fn answer(offer: &str) -> (Negotiated, SessionDescription) {
    let (neg, text) = SdpSession::new(
        MediaPolicy::default(),
        "198.51.100.1:20000".parse().unwrap(),
        1000,
    )
    .answer(offer)
    .unwrap();
    (neg, parse(&text).unwrap())
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn sipp_pcmu_only() {
    let (neg, ans) = answer(SIPP);
    assert_eq!(
        (neg.codec, neg.payload_type, neg.ptime_ms),
        (CodecKind::Pcmu, 0, 20)
    );
    assert_eq!(
        (neg.remote_rtp, neg.remote_rtcp),
        (addr("127.0.0.1:6000"), addr("127.0.0.1:6001"))
    );
    assert_eq!(neg.dtmf_payload_type, None);
    let m = &ans.media[0];
    assert_eq!((m.port, m.formats.clone()), (20000, vec!["0".to_string()]));
    assert_eq!(ans.connection, Some("198.51.100.1".parse().unwrap()));
}

#[test]
fn baresip_opus_with_8k_dtmf_only_gets_no_dtmf_and_mux_echoed() {
    let (neg, ans) = answer(BARESIP);
    assert_eq!((neg.codec, neg.payload_type), (CodecKind::Opus, 96));
    // telephone-event/8000 does not match Opus' 48 kHz clock.
    assert_eq!(neg.dtmf_payload_type, None);
    assert!(neg.rtcp_mux && neg.remote_rtcp == neg.remote_rtp);
    assert_eq!(
        neg.opus,
        Some(OpusParams {
            useinbandfec: false,
            maxplaybackrate: None,
            stereo: true
        })
    );
    let m = &ans.media[0];
    assert!(m.rtcp_mux);
    assert_eq!(m.rtpmap(96).unwrap().name, "opus");
    assert_eq!(m.direction, Some(Direction::SendRecv));
}

#[test]
fn pjsua_opus_with_matching_dtmf_clock_and_rtcp_attribute() {
    let (neg, ans) = answer(PJSUA);
    assert_eq!(
        (neg.codec, neg.payload_type, neg.dtmf_payload_type),
        (CodecKind::Opus, 96, Some(101))
    );
    assert_eq!(neg.remote_rtp, addr("192.168.0.5:4000"));
    assert_eq!(neg.remote_rtcp, addr("192.168.0.6:4005"));
    let m = &ans.media[0];
    assert_eq!(m.formats, vec!["96", "101"]);
    assert_eq!(m.rtpmap(101).unwrap().clock_rate, 48000);
    assert!(!m.rtcp_mux);
}

#[test]
fn server_preference_order_wins_over_offer_order() {
    let mut s = session(&[CodecKind::Pcma, CodecKind::Pcmu]);
    let (neg, _) = s.answer(PJSUA).unwrap();
    assert_eq!(
        (neg.codec, neg.payload_type, neg.dtmf_payload_type),
        (CodecKind::Pcma, 8, Some(102))
    );
}

#[test]
fn linphone_video_call_rejects_video_and_answers_audio() {
    let (neg, ans) = answer(LINPHONE_VIDEO);
    assert_eq!(
        (neg.media_index, neg.codec, neg.dtmf_payload_type),
        (1, CodecKind::Opus, Some(101))
    );
    assert_eq!(ans.media.len(), 2);
    assert_eq!(
        (ans.media[0].kind.as_str(), ans.media[0].port),
        ("video", 0)
    );
    assert_eq!(ans.media[1].port, 20000);
}

#[test]
fn polycom_g722_with_session_level_direction() {
    let mut s = session(&[CodecKind::G722, CodecKind::Pcmu]);
    let (neg, text) = s.answer(POLYCOM).unwrap();
    assert_eq!(
        (neg.codec, neg.payload_type, neg.dtmf_payload_type),
        (CodecKind::G722, 9, Some(127))
    );
    assert_eq!(neg.direction, Direction::SendRecv);
    assert!(text.contains("a=rtpmap:9 G722/8000\r\n"));
    assert!(text.contains("a=rtpmap:127 telephone-event/8000\r\n"));
}

#[test]
fn yealink_ipv6_and_30ms() {
    let (neg, ans) = answer(YEALINK_IPV6);
    assert_eq!((neg.codec, neg.ptime_ms), (CodecKind::G722, 30));
    assert_eq!(neg.remote_rtp, addr("[2001:db8::100]:11800"));
    assert_eq!(ans.media[0].ptime, Some(30));
    // We write our own address family, whatever the peer uses.
    assert!(
        SdpSession::new(MediaPolicy::default(), addr("[::1]:7000"), 1)
            .offer(Direction::SendRecv)
            .contains("c=IN IP6 ::1\r\n")
    );
}

#[test]
fn twilio_trunk_maxptime_above_range_clamps() {
    let (neg, _) = answer(TWILIO);
    assert_eq!(
        (neg.codec, neg.ptime_ms, neg.dtmf_payload_type),
        (CodecKind::Pcmu, 20, Some(101))
    );
}

#[test]
fn static_payload_types_without_rtpmap() {
    let (neg, ans) = answer(STATIC_ONLY);
    assert_eq!(
        (neg.codec, neg.payload_type, neg.ptime_ms),
        (CodecKind::Pcmu, 0, 40)
    );
    assert_eq!(ans.media[0].rtpmap(0).unwrap().name, "PCMU");
    let mut alaw_first = session(&[CodecKind::Pcma]);
    assert_eq!(alaw_first.answer(STATIC_ONLY).unwrap().0.payload_type, 8);
}

#[test]
fn opus_fmtp_with_spaces_and_ptime_snapped_to_opus_frames() {
    let (neg, _) = answer(OPUS_SPACES);
    assert_eq!(
        (neg.codec, neg.payload_type, neg.dtmf_payload_type),
        (CodecKind::Opus, 102, Some(110))
    );
    assert_eq!(
        neg.opus,
        Some(OpusParams {
            useinbandfec: true,
            maxplaybackrate: Some(16000),
            stereo: false
        })
    );
    // ptime 60 capped by maxptime 40.
    assert_eq!(neg.ptime_ms, 40);
    let odd = OPUS_SPACES.replace("a=ptime:60\r\na=maxptime:40", "a=ptime:30");
    assert_eq!(answer(&odd).0.ptime_ms, 20);
    let tiny = OPUS_SPACES.replace("a=ptime:60\r\na=maxptime:40", "a=ptime:5");
    assert_eq!(answer(&tiny).0.ptime_ms, 10);
}

#[test]
fn hold_offers_get_rfc3264_directions() {
    for (attr, remote, ours) in [
        ("a=sendonly", Direction::SendOnly, Direction::RecvOnly),
        ("a=recvonly", Direction::RecvOnly, Direction::SendOnly),
        ("a=inactive", Direction::Inactive, Direction::Inactive),
        ("a=sendrecv", Direction::SendRecv, Direction::SendRecv),
    ] {
        let (neg, ans) = answer(&format!("{SIPP}{attr}\r\n"));
        assert_eq!(
            (neg.remote_direction, neg.direction),
            (remote, ours),
            "{attr}"
        );
        assert_eq!(ans.media[0].direction, Some(ours));
        assert_eq!(neg.on_hold(), !remote.receives());
    }
    let old_hold = SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    let (neg, _) = answer(&old_hold);
    assert!(neg.on_hold());
    assert_eq!(neg.direction, Direction::RecvOnly);
}

#[test]
fn unusable_offers_give_488_warnings() {
    let g729 = POLYCOM.replace("9 102 0 8 18 127", "18 127");
    let err = session(&[CodecKind::Pcmu]).answer(&g729).unwrap_err();
    assert_eq!(err, SdpError::NoCommonCodec);
    assert_eq!(
        err.warning("chorus.example"),
        "305 chorus.example \"Incompatible media format\""
    );
    let webrtc = SIPP.replace("RTP/AVP", "UDP/TLS/RTP/SAVPF");
    assert!(matches!(
        session(&[CodecKind::Pcmu]).answer(&webrtc),
        Err(SdpError::UnsupportedTransport(_))
    ));
    let video_only = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5000 RTP/AVP 96\r\n";
    let err = session(&[CodecKind::Pcmu]).answer(video_only).unwrap_err();
    assert_eq!(err.warning("h"), "304 h \"Media type not available\"");
    let rejected_audio = SIPP.replace("m=audio 6000", "m=audio 0");
    assert_eq!(
        session(&[CodecKind::Pcmu])
            .answer(&rejected_audio)
            .unwrap_err(),
        SdpError::NoAudio
    );
}

#[test]
fn version_increments_on_every_answer_and_offer() {
    let mut s = session(&[CodecKind::Pcmu]);
    let v1 = parse(&s.answer(SIPP).unwrap().1).unwrap();
    let v2 = parse(&s.answer(SIPP).unwrap().1).unwrap();
    let v3 = parse(&s.offer(Direction::SendOnly)).unwrap();
    assert_eq!(v1.origin_id, v2.origin_id);
    assert_eq!(
        (v1.origin_version + 1, v2.origin_version + 1),
        (v2.origin_version, v3.origin_version)
    );
}

/// `[rtp] opus_rate = 16000`: offer and answer tell the peer not to code above 8 kHz.
#[test]
fn opus_legs_at_16_khz_ask_the_peer_for_wideband() {
    let policy = MediaPolicy {
        opus_rate: 16000,
        ..MediaPolicy::default()
    };
    let mut s = SdpSession::new(policy, "198.51.100.1:20000".parse().unwrap(), 1000);
    let fmtp = "maxplaybackrate=16000;sprop-maxcapturerate=16000;useinbandfec=1";
    let offer = parse(&s.offer(Direction::SendRecv)).unwrap();
    assert_eq!(offer.media[0].fmtp(111), Some(fmtp));
    let (_, text) = s.answer(OPUS_SPACES).unwrap();
    assert_eq!(parse(&text).unwrap().media[0].fmtp(102), Some(fmtp));
}

#[test]
fn offer_lists_all_codecs_and_reads_the_answer() {
    let mut s = session(&[
        CodecKind::Opus,
        CodecKind::G722,
        CodecKind::Pcmu,
        CodecKind::Pcma,
    ]);
    let offer = parse(&s.offer(Direction::SendRecv)).unwrap();
    let m = &offer.media[0];
    assert_eq!(m.formats, vec!["111", "9", "0", "8", "101", "110"]);
    assert_eq!(m.rtpmap(110).unwrap().clock_rate, 48000);
    assert!(m.rtcp_mux && m.fmtp(111) == Some("useinbandfec=1"));
    // A phone answering with G.722 and its 8 kHz telephone-event, without rtcp-mux.
    let answer = "v=0\r\no=- 5 5 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
                  m=audio 3000 RTP/AVP 9 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
    let neg = s.accept_answer(answer).unwrap();
    assert_eq!(
        (neg.codec, neg.payload_type, neg.dtmf_payload_type),
        (CodecKind::G722, 9, Some(101))
    );
    assert_eq!(neg.remote_rtcp, addr("10.0.0.9:3001"));
    assert!(
        s.accept_answer(answer).is_err(),
        "a second answer to one offer"
    );
}

/// Bounded mutation test: byte flips, truncations and splices of real offers never panic.
#[test]
fn mutated_offers_never_panic() {
    let mut next = crate::test_rng::seeded(0x9E37_79B9_7F4A_7C15);
    let seeds = [
        SIPP,
        BARESIP,
        PJSUA,
        LINPHONE_VIDEO,
        POLYCOM,
        YEALINK_IPV6,
        TWILIO,
        STATIC_ONLY,
        OPUS_SPACES,
    ];
    let mut s = session(&[
        CodecKind::Opus,
        CodecKind::G722,
        CodecKind::Pcmu,
        CodecKind::Pcma,
    ]);
    for i in 0..3000 {
        let mut bytes = seeds[i % seeds.len()].as_bytes().to_vec();
        for _ in 0..(next() % 8 + 1) {
            let at = (next() as usize) % bytes.len().max(1);
            match next() % 4 {
                0 => bytes.truncate(at),
                1 if !bytes.is_empty() => {
                    let last = bytes.len() - 1;
                    bytes[at.min(last)] = next() as u8;
                }
                2 => {
                    let at = at.min(bytes.len());
                    bytes.insert(at, b"=:/ 0\n;9"[(next() % 8) as usize]);
                }
                _ => {
                    let at = at.min(bytes.len());
                    let other = seeds[(next() as usize) % seeds.len()].as_bytes();
                    let from = (next() as usize) % other.len();
                    bytes.splice(at..at, other[from..].iter().copied());
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok((neg, answer)) = s.answer(&text) {
            assert!(parse(&answer).is_ok(), "our answer must parse: {answer}");
            assert!((10..=60).contains(&neg.ptime_ms));
        }
    }
}
