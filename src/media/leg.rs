//! The media side of one call, sans-IO: RTP/RTCP datagrams in, PCM frames and DTMF digits
//! out; PCM or shared encoded payloads in, RTP datagrams out. The caller owns sockets and
//! clocks and passes `now` to every call.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::codec::{CodecError, CodecKind, Decoder, Encoder, EncoderOptions};
use super::dtmf::{self, DtmfPacket, DtmfReceiver};
use super::jitter::{JitterBuffer, JitterConfig, PacketInfo};
use super::rtcp::{self, Reception, SenderInfo};
use super::rtp::{RtpError, RtpHeader, RtpPacket};
use crate::sdp::{Direction, Negotiated};

/// Interval between RTCP reports (RFC 3550's 5 s minimum, no randomisation needed for
/// two-party sessions).
const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// Length of a sent DTMF digit.
const DTMF_DURATION_MS: u32 = 100;
/// A new source address with an unknown SSRC may take over the stream only after the
/// current one has been silent this long (stops a stray or spoofed stream hijacking it).
const RELATCH_AFTER: Duration = Duration::from_secs(1);
/// Undrained events beyond this are dropped, so a flood cannot grow memory.
const MAX_EVENTS: usize = 64;

/// What the leg needs from the negotiated session.
#[derive(Debug, Clone)]
pub struct LegConfig {
    pub codec: CodecKind,
    pub payload_type: u8,
    pub ptime_ms: u32,
    /// Negotiated telephone-event payload type, at the codec's RTP clock.
    pub dtmf_payload_type: Option<u8>,
    /// Where to send until a valid packet arrives from elsewhere (symmetric RTP).
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    pub direction: Direction,
    /// Our SSRC; the initial sequence number and timestamp are derived from it, so pass a
    /// random value.
    pub ssrc: u32,
    pub cname: String,
    pub encoder: EncoderOptions,
    /// Jitter buffer delay bounds (its clock rate and ptime always follow `codec` and
    /// `ptime_ms`).
    pub jitter: JitterConfig,
}

impl LegConfig {
    /// A config with default jitter bounds and encoder options.
    pub fn new(
        codec: CodecKind,
        payload_type: u8,
        ptime_ms: u32,
        remote_rtp: SocketAddr,
        ssrc: u32,
    ) -> Self {
        let mut remote_rtcp = remote_rtp;
        remote_rtcp.set_port(remote_rtp.port().wrapping_add(1));
        LegConfig {
            codec,
            payload_type,
            ptime_ms,
            dtmf_payload_type: None,
            remote_rtp,
            remote_rtcp,
            direction: Direction::SendRecv,
            ssrc,
            cname: format!("chorus-{ssrc:08x}"),
            encoder: EncoderOptions::default(),
            jitter: JitterConfig::new(codec.rtp_clock(), ptime_ms),
        }
    }

    /// The leg for a negotiated stream; the peer's Opus `maxplaybackrate` caps our encoder.
    pub fn from_negotiated(neg: &Negotiated, ssrc: u32) -> Self {
        let mut cfg = LegConfig::new(
            neg.codec,
            neg.payload_type,
            neg.ptime_ms,
            neg.remote_rtp,
            ssrc,
        );
        cfg.remote_rtcp = neg.remote_rtcp;
        cfg.dtmf_payload_type = neg.dtmf_payload_type;
        cfg.direction = neg.direction;
        cfg.encoder.opus_max_playback_rate = neg.opus.and_then(|o| o.maxplaybackrate);
        cfg
    }

    fn jitter_config(&self) -> JitterConfig {
        let fresh = JitterConfig::new(self.codec.rtp_clock(), self.ptime_ms);
        JitterConfig {
            min_delay: self.jitter.min_delay,
            max_delay: self.jitter.max_delay,
            ..fresh
        }
    }
}

/// Why an incoming datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    #[error("not RTP: {0}")]
    Malformed(#[from] RtpError),
    #[error("payload type {0} was not negotiated")]
    UnknownPayloadType(u8),
    #[error("a second source while the latched one is alive")]
    ForeignSource,
    #[error("not RTCP: {0}")]
    BadRtcp(#[from] rtcp::RtcpError),
}

/// Something the call layer should know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEvent {
    Dtmf(char),
    /// Symmetric RTP moved the destination (NAT, or the peer changed its address).
    RemoteMoved(SocketAddr),
}

/// One datagram to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    pub to: SocketAddr,
    pub bytes: &'a [u8],
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LegStats {
    pub packets_in: u64,
    pub octets_in: u64,
    pub packets_out: u64,
    pub octets_out: u64,
    pub dropped_in: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicates: u64,
    pub jitter_ms: f64,
    pub delay: Duration,
    /// The peer's view of our stream, from its last report block about us.
    pub remote_fraction_lost: u8,
    pub remote_jitter_ms: f64,
}

/// Sending state: our RTP numbering and the DTMF in flight.
struct Sender {
    seq: u16,
    timestamp: u32,
    last_send: Option<Instant>,
    dtmf: VecDeque<DtmfPacket>,
    dtmf_timestamp: u32,
    buf: Vec<u8>,
    encoded: Vec<u8>,
}

/// The media state of one call.
pub struct Leg {
    cfg: LegConfig,
    remote: SocketAddr,
    remote_ssrc: Option<u32>,
    jitter: JitterBuffer,
    decoder: Box<dyn Decoder>,
    encoder: Box<dyn Encoder>,
    dtmf_rx: DtmfReceiver,
    events: VecDeque<LegEvent>,
    tx: Sender,
    reception: Reception,
    /// Middle 32 bits of the peer's last SR and when it arrived.
    last_sr: Option<(u32, Instant)>,
    next_rtcp: Option<Instant>,
    rtcp_buf: Vec<u8>,
    stats: LegStats,
    /// When the last valid RTP or RTCP packet arrived (for liveness checks).
    pub last_rx: Option<Instant>,
}

impl Leg {
    pub fn new(cfg: LegConfig) -> Result<Self, CodecError> {
        let ssrc = cfg.ssrc;
        Ok(Leg {
            remote: cfg.remote_rtp,
            remote_ssrc: None,
            jitter: JitterBuffer::new(cfg.jitter_config()),
            decoder: cfg.codec.decoder()?,
            encoder: cfg.codec.encoder(cfg.encoder)?,
            dtmf_rx: DtmfReceiver::default(),
            events: VecDeque::new(),
            tx: Sender {
                seq: (ssrc >> 7) as u16,
                timestamp: ssrc.rotate_left(11),
                last_send: None,
                dtmf: VecDeque::new(),
                dtmf_timestamp: 0,
                buf: Vec::with_capacity(1500),
                encoded: Vec::with_capacity(1500),
            },
            reception: Reception::default(),
            last_sr: None,
            next_rtcp: None,
            rtcp_buf: Vec::with_capacity(256),
            stats: LegStats::default(),
            last_rx: None,
            cfg,
        })
    }

    /// Applies a re-negotiation (re-INVITE): new codec, payload types, ptime or address.
    /// Our SSRC and RTP numbering carry on, so the peer sees one continuous stream.
    pub fn reconfigure(&mut self, cfg: LegConfig) -> Result<(), CodecError> {
        if cfg.codec != self.cfg.codec || cfg.encoder != self.cfg.encoder {
            self.decoder = cfg.codec.decoder()?;
            self.encoder = cfg.codec.encoder(cfg.encoder)?;
        }
        if cfg.codec != self.cfg.codec
            || cfg.jitter_config() != self.cfg.jitter_config()
            || cfg.payload_type != self.cfg.payload_type
        {
            self.jitter = JitterBuffer::new(cfg.jitter_config());
        }
        if cfg.remote_rtp != self.cfg.remote_rtp {
            self.remote = cfg.remote_rtp;
        }
        self.cfg = LegConfig {
            ssrc: self.cfg.ssrc,
            cname: std::mem::take(&mut self.cfg.cname),
            ..cfg
        };
        Ok(())
    }

    pub fn config(&self) -> &LegConfig {
        &self.cfg
    }

    /// Where RTP goes now (latched to the peer's source address).
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The SSRC of the peer's stream, once a packet has arrived.
    pub fn remote_ssrc(&self) -> Option<u32> {
        self.remote_ssrc
    }

    pub fn direction(&self) -> Direction {
        self.cfg.direction
    }

    /// After a re-INVITE changed the stream's direction (hold/resume).
    pub fn set_direction(&mut self, direction: Direction) {
        self.cfg.direction = direction;
    }

    /// PCM frame length in samples at the codec's `pcm_rate`.
    pub fn frame_samples(&self) -> usize {
        self.cfg.codec.pcm_samples(self.cfg.ptime_ms)
    }

    pub fn stats(&self) -> LegStats {
        let j = self.jitter.stats();
        LegStats {
            lost: j.lost,
            late: j.late,
            duplicates: j.duplicates,
            jitter_ms: j.jitter as f64 * 1000.0 / self.cfg.codec.rtp_clock() as f64,
            delay: j.delay,
            ..self.stats
        }
    }

    /// Takes one incoming RTP datagram. Invalid ones are dropped (and counted) with the reason.
    /// RTCP arriving on the RTP port (rtcp-mux, RFC 5761) is handed to `handle_rtcp`.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Dropped> {
        if rtcp::looks_like_rtcp(bytes) {
            return self.handle_rtcp(now, from, bytes);
        }
        let result = self.accept_rtp(now, from, bytes);
        if result.is_err() {
            self.stats.dropped_in += 1;
        }
        result
    }

    fn accept_rtp(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Dropped> {
        let p = RtpPacket::parse(bytes)?;
        let is_dtmf = Some(p.payload_type) == self.cfg.dtmf_payload_type;
        if p.payload_type != self.cfg.payload_type && !is_dtmf {
            return Err(Dropped::UnknownPayloadType(p.payload_type));
        }
        if from != self.remote {
            let silent = self
                .last_rx
                .is_none_or(|t| now.saturating_duration_since(t) > RELATCH_AFTER);
            // Same SSRC from a new address is the same phone behind a rebinding NAT.
            if !silent && self.remote_ssrc != Some(p.ssrc) {
                return Err(Dropped::ForeignSource);
            }
            self.remote = from;
            self.push_event(LegEvent::RemoteMoved(from));
        }
        self.last_rx = Some(now);
        self.stats.packets_in += 1;
        self.stats.octets_in += p.payload.len() as u64;
        self.remote_ssrc = Some(p.ssrc);
        self.reception.record(p.ssrc, p.seq);
        if is_dtmf {
            if let Some(d) = self.dtmf_rx.handle(p.timestamp, p.payload) {
                self.push_event(LegEvent::Dtmf(d));
            }
            // The event took an audio packet's place in the sequence: not a loss.
            self.jitter.push_filler(now, p.seq, p.ssrc);
            return Ok(());
        }
        let info = PacketInfo {
            seq: p.seq,
            timestamp: p.timestamp,
            ssrc: p.ssrc,
            marker: p.marker,
            payload: p.payload,
        };
        self.jitter.push(now, info);
        Ok(())
    }

    /// Takes one incoming RTCP datagram: SR timing and the peer's report about us are kept,
    /// everything else is ignored.
    /// Valid RTCP latches the report destination to its source (symmetric RTCP).
    pub fn handle_rtcp(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Dropped> {
        let result = self.accept_rtcp(now, bytes);
        match result {
            Ok(()) => self.cfg.remote_rtcp = from,
            Err(_) => self.stats.dropped_in += 1,
        }
        result
    }

    fn accept_rtcp(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Dropped> {
        for packet in rtcp::parse(bytes) {
            let blocks = match packet? {
                rtcp::RtcpPacket::SenderReport { info, blocks, .. } => {
                    self.last_sr = Some(((info.ntp >> 16) as u32, now));
                    blocks
                }
                rtcp::RtcpPacket::ReceiverReport { blocks, .. } => blocks,
                rtcp::RtcpPacket::Other { .. } => continue,
            };
            for b in blocks.filter(|b| b.ssrc == self.cfg.ssrc) {
                self.stats.remote_fraction_lost = b.fraction_lost;
                self.stats.remote_jitter_ms =
                    b.jitter as f64 * 1000.0 / self.cfg.codec.rtp_clock() as f64;
            }
            self.last_rx = Some(now);
        }
        Ok(())
    }

    fn push_event(&mut self, event: LegEvent) {
        if self.events.len() < MAX_EVENTS {
            self.events.push_back(event);
        }
    }

    /// Next queued event (DTMF digits, address changes).
    pub fn poll_event(&mut self) -> Option<LegEvent> {
        self.events.pop_front()
    }

    /// One frame of received audio (`frame_samples` at the codec's `pcm_rate`), decoded or
    /// concealed; `None` while nothing is playing (buffering, or the peer is silent).
    /// Call once per ptime.
    pub fn pull_frame(&mut self, now: Instant) -> Option<&[i16]> {
        let (n, rate) = (self.frame_samples(), self.cfg.codec.pcm_rate());
        self.jitter.pull(now, n, rate, self.decoder.as_mut())
    }

    /// Queues a DTMF digit as RFC 4733 events; they replace the audio of the next sends.
    /// False when telephone-event was not negotiated or `digit` is not a DTMF digit.
    pub fn send_dtmf(&mut self, digit: char) -> bool {
        if self.cfg.dtmf_payload_type.is_none() {
            return false;
        }
        let clock = self.cfg.codec.rtp_clock();
        match dtmf::digit_packets(digit, clock, self.cfg.ptime_ms, DTMF_DURATION_MS) {
            Some(packets) => {
                self.tx.dtmf.extend(packets);
                true
            }
            None => false,
        }
    }

    /// Encodes one frame of PCM (`frame_samples` at `pcm_rate`) and returns the RTP packet.
    pub fn send_pcm(&mut self, now: Instant, pcm: &[i16]) -> Transmit<'_> {
        let mut encoded = std::mem::take(&mut self.tx.encoded);
        encoded.clear();
        self.encoder.encode(pcm, &mut encoded);
        self.send_payload(now, &encoded);
        self.tx.encoded = encoded;
        Transmit {
            to: self.remote,
            bytes: &self.tx.buf,
        }
    }

    /// Wraps an already encoded frame (shared by every leg of an encoder group) in this
    /// leg's RTP header. Queued DTMF events go out instead of the audio.
    pub fn send_payload(&mut self, now: Instant, payload: &[u8]) -> Transmit<'_> {
        let ticks = self.cfg.codec.rtp_ticks(self.cfg.ptime_ms);
        let ptime = Duration::from_millis(self.cfg.ptime_ms as u64);
        // After a pause in sending, the timestamp follows real time and the marker flags
        // the new talkspurt, so the peer's jitter buffer resynchronises.
        let mut marker = self.tx.last_send.is_none();
        if let Some(last) = self.tx.last_send
            && now.saturating_duration_since(last) > ptime * 2
        {
            let frames = (now - last).as_micros() / ptime.as_micros().max(1);
            self.tx.timestamp = self
                .tx
                .timestamp
                .wrapping_add(ticks.wrapping_mul(frames as u32 - 1));
            marker = true;
        }
        self.tx.last_send = Some(now);
        self.tx.buf.clear();
        match self.tx.dtmf.pop_front() {
            Some(event) => {
                if event.marker {
                    self.tx.dtmf_timestamp = self.tx.timestamp;
                }
                let pt = self.cfg.dtmf_payload_type.unwrap_or(self.cfg.payload_type);
                let h = RtpHeader::simple(
                    pt,
                    self.tx.seq,
                    self.tx.dtmf_timestamp,
                    self.cfg.ssrc,
                    event.marker,
                );
                h.write(&mut self.tx.buf);
                self.tx.buf.extend_from_slice(&event.payload);
            }
            None => {
                let h = RtpHeader::simple(
                    self.cfg.payload_type,
                    self.tx.seq,
                    self.tx.timestamp,
                    self.cfg.ssrc,
                    marker,
                );
                h.write(&mut self.tx.buf);
                self.tx.buf.extend_from_slice(payload);
            }
        }
        self.tx.seq = self.tx.seq.wrapping_add(1);
        self.tx.timestamp = self.tx.timestamp.wrapping_add(ticks);
        self.stats.packets_out += 1;
        self.stats.octets_out += (self.tx.buf.len() - super::rtp::HEADER_LEN) as u64;
        Transmit {
            to: self.remote,
            bytes: &self.tx.buf,
        }
    }

    /// The compound RTCP report due at `now` (SR once we have sent, else RR; always SDES),
    /// then every 5 s. `ntp` is the wall clock as an NTP timestamp (`rtcp::ntp_timestamp`).
    pub fn poll_rtcp(&mut self, now: Instant, ntp: u64) -> Option<Transmit<'_>> {
        let due = *self.next_rtcp.get_or_insert(now + RTCP_INTERVAL);
        if now < due {
            return None;
        }
        self.next_rtcp = Some(now + RTCP_INTERVAL);
        let (lsr, dlsr) = match self.last_sr {
            Some((mid, at)) => (mid, (now.duration_since(at).as_secs_f64() * 65536.0) as u32),
            None => (0, 0),
        };
        let jitter = self.jitter.stats().jitter;
        let block = self.reception.report(jitter, lsr, dlsr);
        let blocks = block.as_slice();
        self.rtcp_buf.clear();
        if self.stats.packets_out > 0 {
            let info = SenderInfo {
                ntp,
                rtp_timestamp: self.tx.timestamp,
                packets: self.stats.packets_out as u32,
                octets: self.stats.octets_out as u32,
            };
            rtcp::write_sr(&mut self.rtcp_buf, self.cfg.ssrc, &info, blocks);
        } else {
            rtcp::write_rr(&mut self.rtcp_buf, self.cfg.ssrc, blocks);
        }
        rtcp::write_sdes_cname(&mut self.rtcp_buf, self.cfg.ssrc, &self.cfg.cname);
        Some(Transmit {
            to: self.cfg.remote_rtcp,
            bytes: &self.rtcp_buf,
        })
    }

    /// When `poll_rtcp` next has something (for the driver's timer).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_rtcp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::testutil::tone;
    use mixer::goertzel::level_db;

    const PTIME: Duration = Duration::from_millis(20);

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Two legs wired back to back, as a phone and the server.
    fn pair(codec: CodecKind, pt: u8) -> (Leg, Leg) {
        let mut a = LegConfig::new(codec, pt, 20, addr("127.0.0.1:4000"), 0x1111);
        a.dtmf_payload_type = Some(101);
        let mut b = a.clone();
        b.ssrc = 0x2222;
        b.remote_rtp = addr("127.0.0.1:5000");
        (Leg::new(a).unwrap(), Leg::new(b).unwrap())
    }

    /// Sends `frames` of a tone from `tx` to `rx`, dropping packets where `drop(i)`, and
    /// returns what `rx` plays.
    fn stream(
        tx: &mut Leg,
        rx: &mut Leg,
        t0: Instant,
        frames: u32,
        drop: impl Fn(u32) -> bool,
    ) -> Vec<i16> {
        let rate = tx.config().codec.pcm_rate();
        let n = tx.frame_samples();
        let pcm = tone(1000.0, rate, n * frames as usize, 10000.0);
        let mut out = Vec::new();
        for i in 0..frames {
            let now = t0 + PTIME * i;
            let packet = tx.send_pcm(now, &pcm[i as usize * n..][..n]).bytes.to_vec();
            if !drop(i) {
                rx.handle_rtp(
                    now + Duration::from_millis(3),
                    addr("127.0.0.1:5000"),
                    &packet,
                )
                .unwrap();
            }
            if let Some(f) = rx.pull_frame(now + Duration::from_millis(10)) {
                assert_eq!(f.len(), n);
                out.extend_from_slice(f);
            }
        }
        out
    }

    #[test]
    fn tone_crosses_every_codec() {
        for (codec, pt) in [
            (CodecKind::Pcmu, 0),
            (CodecKind::Pcma, 8),
            (CodecKind::G722, 9),
            (CodecKind::Opus, 111),
        ] {
            let (mut a, mut b) = pair(codec, pt);
            let out = stream(&mut a, &mut b, Instant::now(), 50, |_| false);
            let rate = codec.pcm_rate();
            assert!(out.len() >= 45 * a.frame_samples(), "{codec:?}");
            let tail = &out[out.len() / 2..];
            assert!(level_db(tail, rate, 1000.0) > -14.0, "{codec:?}");
            assert!(level_db(tail, rate, 2200.0) < -35.0, "{codec:?}");
            let s = b.stats();
            assert_eq!(
                (s.packets_in, s.lost, s.dropped_in),
                (50, 0, 0),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn lost_packets_are_concealed_without_gaps() {
        for (codec, pt) in [(CodecKind::Pcmu, 0), (CodecKind::Opus, 111)] {
            let (mut a, mut b) = pair(codec, pt);
            let out = stream(&mut a, &mut b, Instant::now(), 50, |i| i == 20 || i == 33);
            assert_eq!(b.stats().lost, 2, "{codec:?}");
            let n = a.frame_samples();
            // Every frame after playout started was delivered, the lost ones concealed.
            assert!(out.len() >= 48 * n, "{codec:?} {}", out.len());
            let around = &out[19 * n..23 * n];
            assert!(
                level_db(around, codec.pcm_rate(), 1000.0) > -20.0,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn dtmf_replaces_audio_and_arrives_once() {
        let (mut a, mut b) = pair(CodecKind::Pcmu, 0);
        assert!(!a.send_dtmf('x'));
        let t0 = Instant::now();
        let mut dtmf_packets = 0;
        let mut frames = 0;
        for i in 0..30u32 {
            if i == 3 {
                assert!(a.send_dtmf('7') && a.send_dtmf('#'));
            }
            let now = t0 + PTIME * i;
            let bytes = a.send_payload(now, &[0xFF; 160]).bytes.to_vec();
            let p = RtpPacket::parse(&bytes).unwrap();
            if p.payload_type == 101 {
                dtmf_packets += 1;
                assert_eq!(p.payload.len(), 4);
            }
            b.handle_rtp(now, addr("127.0.0.1:5000"), &bytes).unwrap();
            frames += b.pull_frame(now + Duration::from_millis(10)).is_some() as u32;
        }
        assert_eq!(dtmf_packets, 14);
        let events: Vec<_> = std::iter::from_fn(|| b.poll_event()).collect();
        assert_eq!(events, vec![LegEvent::Dtmf('7'), LegEvent::Dtmf('#')]);
        // The events took the audio's sequence numbers: no loss, no gap in playout.
        assert_eq!(b.stats().lost, 0);
        assert!(frames >= 28, "{frames}");
    }

    #[test]
    fn symmetric_rtp_latches_and_liveness_updates() {
        let (mut a, mut b) = pair(CodecKind::Pcmu, 0);
        let t0 = Instant::now();
        assert_eq!(b.remote(), addr("127.0.0.1:5000"));
        let pkt = a.send_payload(t0, &[0xFF; 160]).bytes.to_vec();
        assert!(b.last_rx.is_none());
        b.handle_rtp(t0, addr("203.0.113.5:40000"), &pkt).unwrap();
        assert_eq!(b.remote(), addr("203.0.113.5:40000"));
        assert_eq!((b.last_rx, b.remote_ssrc()), (Some(t0), Some(0x1111)));
        assert_eq!(b.send_payload(t0, &[0; 160]).to, addr("203.0.113.5:40000"));
        // Another source with another SSRC cannot take over a live stream...
        let mut intruder = a.send_payload(t0 + PTIME, &[0xFF; 160]).bytes.to_vec();
        intruder[8..12].copy_from_slice(&0x9999u32.to_be_bytes());
        let at = t0 + PTIME;
        let err = b.handle_rtp(at, addr("192.0.2.66:4000"), &intruder);
        assert_eq!(err, Err(Dropped::ForeignSource));
        // ...but the same SSRC from a new port (NAT rebinding) moves it at once,
        let pkt2 = a.send_payload(t0 + PTIME * 2, &[0xFF; 160]).bytes.to_vec();
        b.handle_rtp(t0 + PTIME * 2, addr("203.0.113.5:40002"), &pkt2)
            .unwrap();
        assert_eq!(b.remote(), addr("203.0.113.5:40002"));
        // and any source may take over once the old one has been silent for a while.
        let quiet = t0 + Duration::from_secs(3);
        b.handle_rtp(quiet, addr("192.0.2.66:4000"), &intruder)
            .unwrap();
        assert_eq!(b.remote(), addr("192.0.2.66:4000"));
        let t0 = quiet;
        // Garbage or a foreign payload type neither latches nor counts as life.
        let later = t0 + PTIME;
        assert!(
            b.handle_rtp(later, addr("198.51.100.1:1"), &[0x80, 0, 1])
                .is_err()
        );
        let mut wrong_pt = pkt.clone();
        wrong_pt[1] = 18;
        assert_eq!(
            b.handle_rtp(later, addr("198.51.100.1:1"), &wrong_pt),
            Err(Dropped::UnknownPayloadType(18))
        );
        assert_eq!(
            (b.remote(), b.last_rx, b.stats().dropped_in),
            (addr("192.0.2.66:4000"), Some(t0), 3)
        );
    }

    #[test]
    fn sender_resumes_with_marker_and_real_time_timestamp() {
        let (mut a, _) = pair(CodecKind::Pcmu, 0);
        let t0 = Instant::now();
        let first = RtpPacket::parse(a.send_payload(t0, &[0; 160]).bytes)
            .map(|p| (p.seq, p.timestamp, p.marker))
            .unwrap();
        let second = RtpPacket::parse(a.send_payload(t0 + PTIME, &[0; 160]).bytes)
            .map(|p| (p.seq, p.timestamp, p.marker))
            .unwrap();
        assert!(first.2 && !second.2);
        assert_eq!(
            (second.0, second.1),
            (first.0.wrapping_add(1), first.1.wrapping_add(160))
        );
        let after_pause = a.send_payload(t0 + PTIME * 11, &[0; 160]).bytes;
        let p = RtpPacket::parse(after_pause).unwrap();
        assert!(p.marker);
        assert_eq!(
            (p.seq, p.timestamp),
            (first.0.wrapping_add(2), first.1.wrapping_add(1760))
        );
    }

    #[test]
    fn config_from_an_sdp_answer() {
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
                     m=audio 4000 RTP/AVP 96 101\r\na=rtpmap:96 opus/48000/2\r\n\
                     a=fmtp:96 maxplaybackrate=16000; useinbandfec=1\r\n\
                     a=rtpmap:101 telephone-event/48000\r\na=ptime:40\r\na=rtcp-mux\r\na=sendonly\r\n";
        let mut session =
            crate::sdp::SdpSession::new(Default::default(), addr("10.0.0.1:20000"), 7);
        let (neg, _) = session.answer(offer).unwrap();
        let cfg = LegConfig::from_negotiated(&neg, 42);
        assert_eq!(
            (cfg.codec, cfg.payload_type, cfg.ptime_ms),
            (CodecKind::Opus, 96, 40)
        );
        assert_eq!(
            (cfg.dtmf_payload_type, cfg.direction),
            (Some(101), Direction::RecvOnly)
        );
        assert_eq!(
            (cfg.remote_rtp, cfg.remote_rtcp),
            (addr("10.0.0.5:4000"), addr("10.0.0.5:4000"))
        );
        assert_eq!(cfg.encoder.opus_max_playback_rate, Some(16000));
        let leg = Leg::new(cfg).unwrap();
        assert_eq!(leg.frame_samples(), 1920);
    }

    #[test]
    fn reconfigure_keeps_the_stream_continuous() {
        let (mut a, _) = pair(CodecKind::Pcmu, 0);
        let t0 = Instant::now();
        let before = RtpPacket::parse(a.send_pcm(t0, &[0; 160]).bytes)
            .map(|p| (p.seq, p.ssrc))
            .unwrap();
        let mut cfg = a.config().clone();
        cfg.codec = CodecKind::Opus;
        cfg.payload_type = 111;
        cfg.ssrc = 0xBAD;
        a.reconfigure(cfg).unwrap();
        assert_eq!(a.frame_samples(), 960);
        let bytes = a.send_pcm(t0 + PTIME, &[0; 960]).bytes;
        let p = RtpPacket::parse(bytes).unwrap();
        assert_eq!(p.payload_type, 111);
        assert!(!p.payload.is_empty());
        assert_eq!((p.seq, p.ssrc), (before.0.wrapping_add(1), before.1));
    }

    #[test]
    fn rtcp_reports_flow_both_ways() {
        let (mut a, mut b) = pair(CodecKind::Pcmu, 0);
        let t0 = Instant::now();
        stream(&mut a, &mut b, t0, 50, |i| i % 10 == 5);
        assert!(a.poll_rtcp(t0, 1 << 32).is_none());
        let later = t0 + Duration::from_secs(5);
        let sr = a.poll_rtcp(later, 5 << 32).unwrap().bytes.to_vec();
        assert!(crate::media::rtcp::looks_like_rtcp(&sr));
        b.handle_rtcp(later, addr("127.0.0.1:5001"), &sr).unwrap();
        let rr = b.poll_rtcp(later + Duration::from_secs(1), 6 << 32);
        assert!(
            rr.is_none(),
            "b's first report is due 5 s after its first poll"
        );
        let rr = b
            .poll_rtcp(later + Duration::from_secs(6), 6 << 32)
            .unwrap()
            .bytes
            .to_vec();
        // Muxed: the report arrives on the RTP port.
        a.handle_rtp(later, addr("127.0.0.1:4000"), &rr).unwrap();
        // b lost 5 of 50 packets from a: a learns 10% loss (25/256).
        assert_eq!(a.stats().remote_fraction_lost, 25);
        let packets: Vec<_> = crate::media::rtcp::parse(&rr)
            .collect::<Result<_, _>>()
            .unwrap();
        // b has sent nothing: a receiver report, plus the SDES every compound packet needs.
        assert!(matches!(
            packets[0],
            crate::media::rtcp::RtcpPacket::ReceiverReport { .. }
        ));
        assert_eq!(packets.len(), 2);
    }

    /// Bounded mutation test: corrupted packets never panic and never stop the stream.
    #[test]
    fn mutated_packets_never_panic() {
        let (mut a, mut b) = pair(CodecKind::Opus, 111);
        let t0 = Instant::now();
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let pcm = tone(440.0, 48000, 960, 8000.0);
        for i in 0..2000u32 {
            let now = t0 + PTIME * i;
            let mut bytes = a.send_pcm(now, &pcm).bytes.to_vec();
            for _ in 0..(next() % 4) {
                let at = next() as usize % bytes.len();
                bytes[at] = next() as u8;
            }
            bytes.truncate(next() as usize % (bytes.len() + 8));
            let _ = b.handle_rtp(now, addr("127.0.0.1:5000"), &bytes);
            let _ = b.handle_rtcp(now, addr("127.0.0.1:5001"), &bytes);
            let _ = b.pull_frame(now);
            while b.poll_event().is_some() {}
        }
        assert!(b.stats().packets_in > 0 && b.stats().dropped_in > 0);
    }
}
