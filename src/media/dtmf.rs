//! RFC 4733 telephone-events for DTMF: digits out of received event packets (one digit per
//! event, whatever the redundancy) and the packet train that sends one digit.

/// Events 0-15 in RFC 4733 order.
const DIGITS: &[u8; 16] = b"0123456789*#ABCD";
/// Event timestamps remembered to recognise retransmitted end packets of earlier events.
const HISTORY: usize = 8;
/// Volume field of sent events: -10 dBm0, a typical keypad level.
const VOLUME: u8 = 10;
/// End packets sent per event (RFC 4733 2.5.1.4 recommends three).
const END_REPEATS: usize = 3;

/// The DTMF digit of an event code, if it is one.
pub fn digit_of(event: u8) -> Option<char> {
    DIGITS.get(event as usize).map(|&d| d as char)
}

/// The event code of a DTMF digit (case-insensitive for A-D).
pub fn event_of(digit: char) -> Option<u8> {
    let d = digit.to_ascii_uppercase() as u32;
    DIGITS.iter().position(|&c| c as u32 == d).map(|i| i as u8)
}

/// Turns telephone-event packets into digits.
#[derive(Default)]
pub struct DtmfReceiver {
    /// Timestamps of recently reported events (an event is identified by its start timestamp).
    seen: [Option<u32>; HISTORY],
    next_slot: usize,
}

impl DtmfReceiver {
    /// Handles the payload of one telephone-event packet with its RTP timestamp; returns the
    /// digit the first time its event is seen. Short or non-DTMF payloads are ignored.
    pub fn handle(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let digit = digit_of(*payload.first()?)?;
        if payload.len() < 4 || self.seen.contains(&Some(timestamp)) {
            return None;
        }
        self.seen[self.next_slot] = Some(timestamp);
        self.next_slot = (self.next_slot + 1) % HISTORY;
        Some(digit)
    }
}

/// One telephone-event packet to send: all packets of an event share its start timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    pub payload: [u8; 4],
    /// Set on the first packet of the event.
    pub marker: bool,
}

/// The packets for one digit: one per packet time until `duration_ms`, the last three
/// carrying the end bit. Durations count in ticks of the event clock (`clock_rate`, which
/// matches the audio codec's RTP clock). `None` for a character that is not a DTMF digit.
pub fn digit_packets(
    digit: char,
    clock_rate: u32,
    ptime_ms: u32,
    duration_ms: u32,
) -> Option<impl Iterator<Item = DtmfPacket>> {
    let event = event_of(digit)?;
    let step = clock_rate * ptime_ms.max(1) / 1000;
    let updates = duration_ms.div_ceil(ptime_ms.max(1)).max(1);
    let total = (step * updates).min(u16::MAX as u32) as u16;
    let packet = move |k: u32, end: bool| {
        let duration = (step * k).min(total as u32) as u16;
        let flags = if end { 0x80 | VOLUME } else { VOLUME };
        let d = duration.to_be_bytes();
        [event, flags, d[0], d[1]]
    };
    let body = (1..updates).map(move |k| packet(k, false));
    let ends = (0..END_REPEATS).map(move |_| packet(updates, true));
    // Only the event's first packet is marked, even when it is already an end packet.
    let packets = body.chain(ends).enumerate();
    Some(packets.map(|(i, payload)| DtmfPacket {
        payload,
        marker: i == 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_digit_per_event_despite_redundancy() {
        let mut rx = DtmfReceiver::default();
        let mut got = String::new();
        let mut feed = |ts: u32, digit: char| {
            for p in digit_packets(digit, 8000, 20, 100).unwrap() {
                // Every packet twice, as a lossy-network sender might.
                got.extend(rx.handle(ts, &p.payload));
                got.extend(rx.handle(ts, &p.payload));
            }
        };
        feed(1000, '1');
        feed(3000, '#');
        feed(5000, '1');
        feed(7000, 'd');
        assert_eq!(got, "1#1D");
        // A late retransmitted end packet of the first event does not repeat the digit.
        let end = digit_packets('1', 8000, 20, 100).unwrap().last().unwrap();
        assert_eq!(rx.handle(1000, &end.payload), None);
    }

    #[test]
    fn packet_train_shape() {
        let packets: Vec<_> = digit_packets('5', 48000, 20, 100).unwrap().collect();
        assert_eq!(packets.len(), 4 + 3);
        assert!(packets[0].marker && packets[1..].iter().all(|p| !p.marker));
        let durations: Vec<u16> = packets
            .iter()
            .map(|p| u16::from_be_bytes([p.payload[2], p.payload[3]]))
            .collect();
        assert_eq!(durations, vec![960, 1920, 2880, 3840, 4800, 4800, 4800]);
        let ends = packets.iter().filter(|p| p.payload[1] & 0x80 != 0).count();
        assert_eq!(ends, 3);
        assert!(packets.iter().all(|p| p.payload[0] == 5));
        assert!(digit_packets('x', 8000, 20, 100).is_none());
    }

    #[test]
    fn a_digit_shorter_than_a_packet_marks_only_its_first_packet() {
        // Found by fuzzing (fuzz/fuzz_targets/dtmf.rs): all three end packets were marked.
        let packets: Vec<_> = digit_packets('7', 8000, 20, 15).unwrap().collect();
        assert_eq!(packets.len(), 3);
        assert_eq!(
            packets.iter().map(|p| p.marker).collect::<Vec<_>>(),
            [true, false, false]
        );
        assert!(
            packets
                .iter()
                .all(|p| p.payload == [7, 0x80 | VOLUME, 0, 160])
        );
    }

    #[test]
    fn ignores_non_dtmf_and_short_payloads() {
        let mut rx = DtmfReceiver::default();
        assert_eq!(rx.handle(1, &[]), None);
        assert_eq!(rx.handle(2, &[3, 0]), None);
        assert_eq!(rx.handle(3, &[16, 0x80, 0, 160]), None);
        assert_eq!(rx.handle(4, &[11, 0x0A, 0, 160]), Some('#'));
    }
}
