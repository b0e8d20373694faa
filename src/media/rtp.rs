//! RTP packets (RFC 3550 section 5.1): a borrowed, zero-allocation view for parsing and a
//! header writer for sending.
//!
//! Why not the `rtp` crate (0.17): its `Packet::unmarshal` copies the payload into a fresh
//! `Bytes` and builds `Vec`s for CSRCs and extensions on every packet. A conference receives
//! 50-100 packets per second per member, so that is tens of thousands of allocations per
//! second for nothing; this view borrows the datagram instead.

/// Why a datagram is not an RTP packet we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("shorter than the RTP header")]
    TooShort,
    #[error("RTP version is not 2")]
    BadVersion,
    #[error("CSRC list or header extension runs past the end")]
    Truncated,
    #[error("padding length is zero or longer than the payload")]
    BadPadding,
}

/// Fixed header length without CSRCs.
pub const HEADER_LEN: usize = 12;

/// A parsed RTP packet borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Raw CSRC list (4 bytes each).
    pub csrc: &'a [u8],
    /// Header extension: profile-defined id and body.
    pub extension: Option<(u16, &'a [u8])>,
    /// Payload with padding removed.
    pub payload: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> RtpPacket<'a> {
    /// Parses and validates one datagram.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        if buf.len() < HEADER_LEN {
            return Err(RtpError::TooShort);
        }
        if buf[0] >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        let has_padding = buf[0] & 0x20 != 0;
        let has_extension = buf[0] & 0x10 != 0;
        let csrc_end = HEADER_LEN + 4 * (buf[0] & 0x0F) as usize;
        let csrc = buf.get(HEADER_LEN..csrc_end).ok_or(RtpError::Truncated)?;
        let mut at = csrc_end;
        let extension = if has_extension {
            let head = buf.get(at..at + 4).ok_or(RtpError::Truncated)?;
            let len = 4 * be16(head, 2) as usize;
            let body = buf.get(at + 4..at + 4 + len).ok_or(RtpError::Truncated)?;
            at += 4 + len;
            Some((be16(head, 0), body))
        } else {
            None
        };
        let mut end = buf.len();
        if has_padding {
            let pad = buf[end - 1] as usize;
            if pad == 0 || pad > end - at {
                return Err(RtpError::BadPadding);
            }
            end -= pad;
        }
        Ok(RtpPacket {
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7F,
            seq: be16(buf, 2),
            timestamp: be32(buf, 4),
            ssrc: be32(buf, 8),
            csrc,
            extension,
            payload: &buf[at..end],
        })
    }

    /// The CSRC identifiers.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.csrc.chunks_exact(4).map(|c| be32(c, 0))
    }
}

/// The header fields Chorus sets on packets it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// CSRC identifiers (at most 15 are written).
    pub csrc: &'a [u32],
    /// Header extension id and body (body padded with zeros to 32-bit words).
    pub extension: Option<(u16, &'a [u8])>,
}

impl RtpHeader<'_> {
    /// A plain header: no CSRCs, no extension.
    pub fn simple(payload_type: u8, seq: u16, timestamp: u32, ssrc: u32, marker: bool) -> Self {
        RtpHeader {
            marker,
            payload_type,
            seq,
            timestamp,
            ssrc,
            csrc: &[],
            extension: None,
        }
    }

    /// Appends the header to `out`; the payload goes right after it.
    pub fn write(&self, out: &mut Vec<u8>) {
        let csrc = &self.csrc[..self.csrc.len().min(15)];
        let x = if self.extension.is_some() { 0x10 } else { 0 };
        out.push(0x80 | x | csrc.len() as u8);
        out.push(((self.marker as u8) << 7) | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for c in csrc {
            out.extend_from_slice(&c.to_be_bytes());
        }
        if let Some((id, body)) = self.extension {
            let words = body.len().div_ceil(4).min(u16::MAX as usize);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&(words as u16).to_be_bytes());
            out.extend_from_slice(&body[..body.len().min(words * 4)]);
            out.resize(out.len() + words * 4 - body.len().min(words * 4), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_a_plain_packet() {
        let mut buf = Vec::new();
        RtpHeader::simple(0, 65535, 0xDEADBEEF, 0x1234_5678, true).write(&mut buf);
        buf.extend_from_slice(&[1, 2, 3]);
        assert_eq!(&buf[..2], &[0x80, 0x80]);
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!((p.marker, p.payload_type, p.seq), (true, 0, 65535));
        assert_eq!((p.timestamp, p.ssrc), (0xDEADBEEF, 0x1234_5678));
        assert_eq!(p.payload, &[1, 2, 3]);
        assert!(p.extension.is_none() && p.csrc.is_empty());
    }

    #[test]
    fn csrc_extension_and_padding_round_trip() {
        let mut buf = Vec::new();
        let h = RtpHeader {
            marker: false,
            payload_type: 111,
            seq: 7,
            timestamp: 960,
            ssrc: 9,
            csrc: &[0xAAAA_AAAA, 0xBBBB_BBBB],
            extension: Some((0xBEDE, &[0x10, 0x7F, 0, 0])),
        };
        h.write(&mut buf);
        buf.extend_from_slice(&[5, 6, 7, 0, 0, 3]);
        buf[0] |= 0x20;
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(
            p.csrcs().collect::<Vec<_>>(),
            vec![0xAAAA_AAAA, 0xBBBB_BBBB]
        );
        assert_eq!(p.extension, Some((0xBEDE, &[0x10, 0x7F, 0, 0][..])));
        assert_eq!(p.payload, &[5, 6, 7]);
    }

    #[test]
    fn any_bytes_parse_or_fail_cleanly() {
        let mut buf = [0u8; 40];
        let mut next = crate::test_rng::seeded(0x1234_5678);
        for len in 0..=buf.len() {
            for _ in 0..2000 {
                for b in buf.iter_mut() {
                    *b = next() as u8;
                }
                buf[0] = (buf[0] & 0x3F) | 0x80;
                if let Ok(p) = RtpPacket::parse(&buf[..len]) {
                    assert!(p.payload.len() + HEADER_LEN + p.csrc.len() <= len);
                }
            }
        }
    }

    #[test]
    fn rejects_malformed_packets() {
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::TooShort));
        let mut v1 = vec![0x40; 12];
        assert_eq!(RtpPacket::parse(&v1), Err(RtpError::BadVersion));
        v1[0] = 0x82;
        assert_eq!(RtpPacket::parse(&v1), Err(RtpError::Truncated));
        let mut ext = vec![
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 2, 0, 0,
        ];
        assert_eq!(RtpPacket::parse(&ext), Err(RtpError::Truncated));
        ext[15] = 0;
        assert_eq!(RtpPacket::parse(&ext).unwrap().payload, &[0, 0]);
        let mut pad = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 9];
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::BadPadding));
        pad[14] = 0;
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::BadPadding));
    }
}
