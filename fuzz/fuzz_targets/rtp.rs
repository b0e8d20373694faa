//! RTP packets (`media::rtp`): any datagram parses or fails cleanly; a parsed packet's parts
//! lie inside it, and writing its header back out and parsing again gives the same packet.
#![no_main]

use chorus::media::rtp::{HEADER_LEN, RtpHeader, RtpPacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = RtpPacket::parse(data) else {
        return;
    };
    let ext = p.extension.map_or(0, |(_, body)| 4 + body.len());
    assert!(HEADER_LEN + p.csrc.len() + ext + p.payload.len() <= data.len());
    assert_eq!(p.csrc.len() % 4, 0);
    let csrcs: Vec<u32> = p.csrcs().collect();
    let header = RtpHeader {
        marker: p.marker,
        payload_type: p.payload_type,
        seq: p.seq,
        timestamp: p.timestamp,
        ssrc: p.ssrc,
        csrc: &csrcs,
        extension: p.extension,
    };
    let mut out = Vec::new();
    header.write(&mut out);
    out.extend_from_slice(p.payload);
    assert_eq!(RtpPacket::parse(&out), Ok(p));
});
