//! RTCP (`media::rtcp`): any compound datagram yields packets until the first malformed one;
//! SR and RR written back from what was read parse to the same reports.
#![no_main]

use chorus::media::rtcp::{self, ReportBlock, RtcpPacket, looks_like_rtcp, write_rr, write_sr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_rtcp(data);
    for packet in rtcp::parse(data) {
        let Ok(packet) = packet else {
            break;
        };
        let mut out = Vec::new();
        match packet {
            RtcpPacket::SenderReport { ssrc, info, blocks } => {
                let blocks: Vec<ReportBlock> = blocks.collect();
                write_sr(&mut out, ssrc, &info, &blocks);
            }
            RtcpPacket::ReceiverReport { ssrc, blocks } => {
                let blocks: Vec<ReportBlock> = blocks.collect();
                write_rr(&mut out, ssrc, &blocks);
            }
            RtcpPacket::Other { .. } => continue,
        }
        let again: Vec<_> = rtcp::parse(&out).collect();
        assert_eq!(again.len(), 1);
        let again = again[0].expect("what we write parses");
        assert_eq!(reports(again), reports(packet));
    }
});

/// A packet's fields with its blocks decoded, to compare two packets.
fn reports(p: RtcpPacket<'_>) -> (u8, u32, Option<rtcp::SenderInfo>, Vec<ReportBlock>) {
    match p {
        RtcpPacket::SenderReport { ssrc, info, blocks } => {
            (200, ssrc, Some(info), blocks.collect())
        }
        RtcpPacket::ReceiverReport { ssrc, blocks } => (201, ssrc, None, blocks.collect()),
        RtcpPacket::Other { packet_type } => (packet_type, 0, None, Vec::new()),
    }
}
