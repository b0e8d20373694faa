//! Shared input format of the targets that replay a sequence of datagrams on a virtual clock
//! (`sip_endpoint`, `leg`): records separated by "📞" (F0 9F 93 9E), each one control byte
//! then the datagram. Readable in seed files, and libFuzzer's byte mutations keep most of the
//! structure. `fuzz/make-seeds` writes seeds in this format.

use std::time::Duration;

pub const SEPARATOR: &[u8] = "📞".as_bytes();

/// One datagram and how it arrives.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Which of the four peers sent it (bits 0-1 of the control byte).
    pub peer: usize,
    /// Bits 2-3, target-specific (SIP: over TCP, then close the connection; RTP: to the
    /// RTCP port, no frame pulled).
    pub flags: u8,
    /// Virtual time that passes before it arrives (bits 4-7).
    pub after: Duration,
    pub bytes: &'a [u8],
}

/// Time steps selectable by the control byte's high nibble: from nothing to beyond every
/// SIP timer (64*T1 = 32 s).
const STEPS_MS: [u64; 16] = [
    0, 1, 5, 10, 20, 20, 20, 40, 100, 500, 1_000, 2_000, 4_000, 10_000, 32_000, 64_000,
];

pub fn records(data: &[u8]) -> impl Iterator<Item = Record<'_>> {
    split(data, SEPARATOR).filter_map(|r| {
        let (&control, bytes) = r.split_first()?;
        Some(Record {
            peer: usize::from(control & 3),
            flags: (control >> 2) & 3,
            after: Duration::from_millis(STEPS_MS[usize::from(control >> 4)]),
            bytes,
        })
    })
}

fn split<'a>(mut data: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let at = data.windows(sep.len()).position(|w| w == sep);
        let (head, rest) = match at {
            Some(i) => (&data[..i], &data[i + sep.len()..]),
            None => (data, &data[data.len()..]),
        };
        data = rest;
        Some(head)
    })
}
