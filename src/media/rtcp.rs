//! RTCP (RFC 3550 section 6): sender and receiver reports with SDES CNAME to send, and a
//! parser that reads SR/RR from compound packets and skips everything else.

use std::time::{SystemTime, UNIX_EPOCH};

const PT_SR: u8 = 200;
const PT_RR: u8 = 201;
const PT_SDES: u8 = 202;
const BLOCK_LEN: usize = 24;
/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Why a datagram is not RTCP we can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    #[error("RTCP packet shorter than its header or declared length")]
    Truncated,
    #[error("RTCP version is not 2")]
    BadVersion,
}

/// Whether a datagram on a muxed RTP/RTCP port is RTCP (RFC 5761 section 4: RTCP packet
/// types 192-223 fall where RTP would have marker + payload types 64-95, which are unused).
pub fn looks_like_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 4 && (192..=223).contains(&buf[1])
}

/// Sender information of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp (32.32 fixed point seconds since 1900).
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packets: u32,
    pub octets: u32,
}

/// One reception report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction of packets lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed on the wire).
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP timestamp from this source.
    pub last_sr: u32,
    /// Delay since that SR in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        blocks: ReportBlocks<'a>,
    },
    ReceiverReport {
        ssrc: u32,
        blocks: ReportBlocks<'a>,
    },
    /// SDES, BYE, APP, feedback...: read past, not interpreted.
    Other {
        packet_type: u8,
    },
}

/// The report blocks of an SR or RR, decoded lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlocks<'a>(&'a [u8]);

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        let (b, rest) = self.0.split_at_checked(BLOCK_LEN)?;
        self.0 = rest;
        let lost = u32::from_be_bytes([0, b[5], b[6], b[7]]);
        Some(ReportBlock {
            ssrc: be32(b, 0),
            fraction_lost: b[4],
            cumulative_lost: ((lost << 8) as i32) >> 8,
            highest_seq: be32(b, 8),
            jitter: be32(b, 12),
            last_sr: be32(b, 16),
            delay_since_last_sr: be32(b, 20),
        })
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Iterates the packets of a compound RTCP datagram; stops at the first malformed one.
pub fn parse(buf: &[u8]) -> impl Iterator<Item = Result<RtcpPacket<'_>, RtcpError>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let item = parse_one(rest);
        rest = match item {
            Ok((_, len)) => &rest[len..],
            Err(_) => &[],
        };
        Some(item.map(|(p, _)| p))
    })
}

fn parse_one(buf: &[u8]) -> Result<(RtcpPacket<'_>, usize), RtcpError> {
    if buf.len() < 4 {
        return Err(RtcpError::Truncated);
    }
    if buf[0] >> 6 != 2 {
        return Err(RtcpError::BadVersion);
    }
    let count = (buf[0] & 0x1F) as usize;
    let len = 4 * (u16::from_be_bytes([buf[2], buf[3]]) as usize + 1);
    let body = buf.get(..len).ok_or(RtcpError::Truncated)?;
    let blocks = |from: usize| {
        body.get(from..from + count * BLOCK_LEN)
            .map(ReportBlocks)
            .ok_or(RtcpError::Truncated)
    };
    let packet = match buf[1] {
        PT_SR if len >= 28 => RtcpPacket::SenderReport {
            ssrc: be32(body, 4),
            info: SenderInfo {
                ntp: ((be32(body, 8) as u64) << 32) | be32(body, 12) as u64,
                rtp_timestamp: be32(body, 16),
                packets: be32(body, 20),
                octets: be32(body, 24),
            },
            blocks: blocks(28)?,
        },
        PT_RR if len >= 8 => RtcpPacket::ReceiverReport {
            ssrc: be32(body, 4),
            blocks: blocks(8)?,
        },
        PT_SR | PT_RR => return Err(RtcpError::Truncated),
        packet_type => RtcpPacket::Other { packet_type },
    };
    Ok((packet, len))
}

fn write_header(out: &mut Vec<u8>, count: usize, packet_type: u8, body_len: usize) {
    out.push(0x80 | count as u8);
    out.push(packet_type);
    out.extend_from_slice(&((body_len / 4) as u16).to_be_bytes());
}

fn write_blocks(out: &mut Vec<u8>, blocks: &[ReportBlock]) {
    for b in blocks {
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0xFF_FFFF;
        out.extend_from_slice(&(((b.fraction_lost as u32) << 24) | lost).to_be_bytes());
        for v in [b.highest_seq, b.jitter, b.last_sr, b.delay_since_last_sr] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// Appends a sender report (at most 31 blocks are written).
pub fn write_sr(out: &mut Vec<u8>, ssrc: u32, info: &SenderInfo, blocks: &[ReportBlock]) {
    let blocks = &blocks[..blocks.len().min(31)];
    write_header(out, blocks.len(), PT_SR, 24 + BLOCK_LEN * blocks.len());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&info.ntp.to_be_bytes());
    for v in [info.rtp_timestamp, info.packets, info.octets] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    write_blocks(out, blocks);
}

/// Appends a receiver report (at most 31 blocks are written).
pub fn write_rr(out: &mut Vec<u8>, ssrc: u32, blocks: &[ReportBlock]) {
    let blocks = &blocks[..blocks.len().min(31)];
    write_header(out, blocks.len(), PT_RR, 4 + BLOCK_LEN * blocks.len());
    out.extend_from_slice(&ssrc.to_be_bytes());
    write_blocks(out, blocks);
}

/// Appends an SDES packet with one CNAME chunk (RFC 3550 requires one in every compound packet).
pub fn write_sdes_cname(out: &mut Vec<u8>, ssrc: u32, cname: &str) {
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    // ssrc + type + len + text + at least one terminating zero, padded to 32 bits.
    let chunk = (4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    write_header(out, 1, PT_SDES, chunk);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(1);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    out.resize(out.len() + chunk - 6 - cname.len(), 0);
}

/// The 64-bit NTP timestamp of a wall-clock time (for `SenderInfo::ntp`).
pub fn ntp_timestamp(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
    ((d.as_secs() + NTP_UNIX_OFFSET) << 32) | frac
}

/// Reception statistics of one remote source (RFC 3550 A.3), for report blocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reception {
    ssrc: u32,
    /// First and highest extended sequence numbers.
    seqs: Option<(u64, u64)>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
}

impl Reception {
    /// Counts one received packet; a new SSRC starts over.
    pub fn record(&mut self, ssrc: u32, seq: u16) {
        if self.ssrc != ssrc || self.seqs.is_none() {
            *self = Reception {
                ssrc,
                seqs: Some((seq as u64, seq as u64)),
                ..Default::default()
            };
        }
        if let Some((base, max)) = &mut self.seqs {
            let delta = seq.wrapping_sub(*max as u16) as i16 as i64;
            if delta > 0 {
                *max += delta as u64;
            } else if (*max as i64 + delta) < *base as i64 {
                // Reordered before the first packet: cannot move base below zero extension.
                *base = (*max as i64 + delta).max(0) as u64;
            }
        }
        self.received += 1;
    }

    /// Packets lost so far (expected minus received; negative with duplicates).
    pub fn cumulative_lost(&self) -> i64 {
        self.seqs
            .map_or(0, |(b, m)| (m - b + 1) as i64 - self.received as i64)
    }

    /// The report block for this source, closing a reporting interval.
    pub fn report(
        &mut self,
        jitter: u32,
        last_sr: u32,
        delay_since_last_sr: u32,
    ) -> Option<ReportBlock> {
        let (base, max) = self.seqs?;
        let expected = max - base + 1;
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        Some(ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_seq: max as u32,
            jitter,
            last_sr,
            delay_since_last_sr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ssrc: u32) -> ReportBlock {
        ReportBlock {
            ssrc,
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_seq: 0x1_0005,
            jitter: 80,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        }
    }

    #[test]
    fn compound_sr_sdes_rr_round_trip() {
        let info = SenderInfo {
            ntp: 0xAABB_CCDD_1122_3344,
            rtp_timestamp: 160,
            packets: 50,
            octets: 8000,
        };
        let mut buf = Vec::new();
        write_sr(&mut buf, 7, &info, &[block(9)]);
        write_sdes_cname(&mut buf, 7, "chorus@example");
        write_rr(&mut buf, 7, &[block(10), block(11)]);
        assert_eq!(buf.len() % 4, 0);
        let packets: Vec<_> = parse(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(packets.len(), 3);
        match packets[0] {
            RtcpPacket::SenderReport {
                ssrc,
                info: got,
                blocks,
            } => {
                assert_eq!((ssrc, got), (7, info));
                assert_eq!(blocks.collect::<Vec<_>>(), vec![block(9)]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            packets[1],
            RtcpPacket::Other {
                packet_type: PT_SDES
            }
        );
        match packets[2] {
            RtcpPacket::ReceiverReport { ssrc, blocks } => {
                assert_eq!(ssrc, 7);
                assert_eq!(blocks.map(|b| b.ssrc).collect::<Vec<_>>(), vec![10, 11]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        write_rr(&mut buf, 1, &[block(2)]);
        for cut in 0..buf.len() {
            let _ = parse(&buf[..cut]).count();
        }
        assert_eq!(parse(&buf[..20]).next(), Some(Err(RtcpError::Truncated)));
        buf[0] = 0x41;
        assert_eq!(parse(&buf).next(), Some(Err(RtcpError::BadVersion)));
        // An RR claiming 31 blocks in a short body.
        let lie = [0x9F, 201, 0, 1, 0, 0, 0, 1];
        assert_eq!(parse(&lie).next(), Some(Err(RtcpError::Truncated)));
    }

    #[test]
    fn reception_reports_loss_across_wrap() {
        let mut r = Reception::default();
        for seq in [65530u16, 65531, 65533, 65535, 0, 1] {
            r.record(5, seq);
        }
        let b = r.report(12, 0, 0).unwrap();
        assert_eq!((b.ssrc, b.cumulative_lost, b.highest_seq), (5, 2, 0x1_0001));
        assert_eq!(b.fraction_lost, (2 * 256 / 8) as u8);
        r.record(5, 2);
        let b = r.report(12, 0, 0).unwrap();
        assert_eq!((b.fraction_lost, b.cumulative_lost), (0, 2));
    }

    #[test]
    fn ntp_timestamp_of_unix_epoch() {
        assert_eq!(ntp_timestamp(UNIX_EPOCH), NTP_UNIX_OFFSET << 32);
        let half = UNIX_EPOCH + std::time::Duration::from_millis(1500);
        assert_eq!(
            ntp_timestamp(half),
            ((NTP_UNIX_OFFSET + 1) << 32) | 0x8000_0000
        );
    }
}
