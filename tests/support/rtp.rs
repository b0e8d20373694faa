//! RTP packets (RFC 3550) and telephone-events (RFC 4733) as the test phone sends and reads them.

/// The fields of an RTP packet the phone cares about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub marker: bool,
    pub pt: u8,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Reads an RTP packet, skipping CSRCs, a header extension and padding.
    /// Returns None for anything that is not RTP version 2 (or is RTCP).
    pub fn parse(buf: &'a [u8]) -> Option<Packet<'a>> {
        if buf.len() < 12 || buf[0] >> 6 != 2 || (200..=204).contains(&buf[1]) {
            return None;
        }
        let mut start = 12 + 4 * usize::from(buf[0] & 0x0F);
        if buf[0] & 0x10 != 0 {
            let ext = buf.get(start..start + 4)?;
            start += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        }
        let mut end = buf.len();
        if buf[0] & 0x20 != 0 {
            end = end.checked_sub(usize::from(*buf.last()?))?;
        }
        Some(Packet {
            marker: buf[1] & 0x80 != 0,
            pt: buf[1] & 0x7F,
            seq: u16::from_be_bytes([buf[2], buf[3]]),
            ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            payload: buf.get(start..end)?,
        })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(0x80);
        out.push(self.pt | if self.marker { 0x80 } else { 0 });
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.ts.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

/// RFC 4733 event code of a DTMF key.
pub fn dtmf_event(key: char) -> Option<u8> {
    match key.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        l @ 'A'..='D' => Some(l as u8 - b'A' + 12),
        _ => None,
    }
}

/// DTMF key of an RFC 4733 event code.
pub fn dtmf_key(event: u8) -> Option<char> {
    "0123456789*#ABCD".chars().nth(usize::from(event))
}

/// Payload of one telephone-event packet: event, end bit, volume (-dBm0), duration (clock ticks).
pub fn event_payload(event: u8, end: bool, volume: u8, duration: u16) -> [u8; 4] {
    let d = duration.to_be_bytes();
    [
        event,
        (volume & 0x3F) | if end { 0x80 } else { 0 },
        d[0],
        d[1],
    ]
}

/// Reads a telephone-event payload: (event, end).
pub fn read_event(payload: &[u8]) -> Option<(u8, bool)> {
    (payload.len() >= 4).then(|| (payload[0], payload[1] & 0x80 != 0))
}
