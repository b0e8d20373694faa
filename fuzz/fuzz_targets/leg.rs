//! One call's media (`media::Leg`) fed arbitrary datagrams on its RTP and RTCP ports from
//! four sources on a virtual clock, with the mixer's side pulling a frame and sending one
//! back every packet time, as the media worker does (an already encoded payload, as an
//! encoder group shares it: encoding is not what a peer controls). DTMF digits received
//! are sent back. It never panics and every pulled frame has the frame length.
//!
//! Input: one config byte (codec, ptime, telephone-event), then the record format of
//! `chorus_fuzz::records`. Peer 0 is the address the SDP named. Flag bit 0 delivers to the
//! RTCP port; bit 1 skips the pulls for that record (a burst). Config bit 5: the ACK
//! (`Leg::confirm`, which opens sending) came before the first datagram.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chorus::media::codec::CodecKind;
use chorus::media::leg::{Leg, LegConfig, LegEvent};
use chorus::media::rtcp::ntp_timestamp;
use chorus_fuzz::records;
use libfuzzer_sys::fuzz_target;

const PEERS: [&str; 4] = [
    "127.0.0.1:4000",
    "127.0.0.1:4002",
    "[::1]:4000",
    "203.0.113.9:4000",
];
/// The media worker catches up at most this many frames after a stall.
const MAX_PULLS: u32 = 64;
/// The media worker's receive buffer: longer datagrams arrive cut to this.
const RECV_BUFFER: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let Some((&config, data)) = data.split_first() else {
        return;
    };
    let codec = [
        CodecKind::Pcmu,
        CodecKind::Pcma,
        CodecKind::G722,
        CodecKind::Opus,
    ][usize::from(config & 3)];
    let ptime = [20, 10, 30, 60][usize::from((config >> 2) & 3)];
    let pt = codec.static_pt().unwrap_or(111);
    let remote: SocketAddr = PEERS[0].parse().unwrap();
    let mut cfg = LegConfig::new(codec, pt, ptime, remote, 0x5eed);
    if config & 16 != 0 {
        cfg.dtmf_payload_type = Some(101);
    }
    let mut leg = Leg::new(cfg).expect("valid codec settings");
    if config & 32 != 0 {
        leg.confirm();
    }
    let frame = Duration::from_millis(u64::from(ptime));
    let mut now = Instant::now();
    let mut next_pull = now;
    let frame_samples = leg.frame_samples();
    let encoded = vec![0xFFu8; 160];
    for r in records(data) {
        now += r.after;
        let from: SocketAddr = PEERS[r.peer].parse().unwrap();
        let bytes = &r.bytes[..r.bytes.len().min(RECV_BUFFER)];
        let _ = if r.flags & 1 == 0 {
            leg.handle_rtp(now, from, bytes)
        } else {
            leg.handle_rtcp(now, from, bytes)
        };
        while let Some(event) = leg.poll_event() {
            if let LegEvent::Dtmf(digit) = event {
                leg.send_dtmf(digit);
            }
        }
        if r.flags & 2 != 0 {
            continue;
        }
        let mut pulls = 0;
        while next_pull <= now && pulls < MAX_PULLS {
            if let Some(pcm) = leg.pull_frame(next_pull) {
                assert_eq!(pcm.len(), frame_samples);
            }
            let _ = leg.send_payload(next_pull, &encoded);
            next_pull += frame;
            pulls += 1;
        }
        next_pull = next_pull.max(now);
        let _ = leg.poll_rtcp(now, ntp_timestamp(std::time::SystemTime::UNIX_EPOCH));
        let _ = leg.stats();
    }
});
