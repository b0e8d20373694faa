//! The media side of one call, sans-IO: RTP/RTCP datagrams in, PCM frames and DTMF digits
//! out; PCM or shared encoded payloads in, RTP datagrams out. The caller owns sockets and
//! clocks and passes `now` to every call.
//!
//! Hostile peers are bounded here: media counts only from the latched source (`latch`),
//! nothing is sent before the ACK and little before the peer shows up, and DTMF is
//! rate-bounded in and queue-bounded out (`dtmf_limits`).

mod dtmf_limits;
mod latch;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::codec::{CodecError, CodecKind, CodecOptions, Decoder, Encoder};
use super::dtmf::DtmfReceiver;
use super::jitter::{JitterBuffer, JitterConfig, JitterStats, PacketInfo};
use super::rtcp::{self, Reception, SenderInfo};
use super::rtp::{RtpError, RtpHeader, RtpPacket};
use crate::sdp::{Direction, Negotiated};
use dtmf_limits::{DigitRate, DtmfQueue};
pub use latch::LatchLimits;
use latch::{Latch, Signalled};

/// Interval between RTCP reports (RFC 3550's 5 s minimum, no randomisation needed for
/// two-party sessions).
const RTCP_INTERVAL: Duration = Duration::from_secs(5);
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
    /// The SDP's address: where to send until the peer is latched (symmetric RTP).
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    /// Where the INVITE came from: the IP to expect RTP from when the SDP names a NAT's
    /// inside address.
    pub sip_source: Option<IpAddr>,
    pub direction: Direction,
    /// Our SSRC; the initial sequence number and timestamp are derived from it, so pass a
    /// random value.
    pub ssrc: u32,
    pub cname: String,
    pub codec_options: CodecOptions,
    /// Jitter buffer delay bounds (its clock rate and ptime always follow `codec` and
    /// `ptime_ms`).
    pub jitter: JitterConfig,
    pub limits: LegLimits,
}

/// What a leg allows a peer (`[rtp]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegLimits {
    pub latch: LatchLimits,
    /// Digits queued to send (the one playing included); more are dropped.
    pub dtmf_queue: usize,
    /// Received digits reported per second (bursts of a second's worth); more are dropped.
    pub dtmf_per_sec: u32,
}

impl Default for LegLimits {
    fn default() -> Self {
        LegLimits {
            latch: LatchLimits::default(),
            dtmf_queue: 4,
            dtmf_per_sec: 10,
        }
    }
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
            sip_source: None,
            direction: Direction::SendRecv,
            ssrc,
            cname: format!("chorus-{ssrc:08x}"),
            codec_options: CodecOptions::default(),
            jitter: JitterConfig::new(codec.rtp_clock(), ptime_ms),
            limits: LegLimits::default(),
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
        cfg.codec_options.opus_max_playback_rate = neg.opus.and_then(|o| o.maxplaybackrate);
        cfg
    }

    fn signalled(&self) -> Signalled {
        Signalled {
            rtp: self.remote_rtp,
            rtcp: self.remote_rtcp,
            sip_source: self.sip_source,
        }
    }

    /// Rate of the PCM the leg plays and takes.
    pub fn pcm_rate(&self) -> u32 {
        self.codec_options.pcm_rate(self.codec)
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
    #[error("not from the latched source")]
    ForeignSource,
    #[error("not RTCP: {0}")]
    BadRtcp(#[from] rtcp::RtcpError),
}

/// Something the call layer should know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEvent {
    Dtmf(char),
    /// The leg latched to this source, or moved to it (a NAT that rebound).
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
    /// Of `dropped_in`: valid packets from a source other than the latched one.
    pub foreign_in: u64,
    /// Received digits over the rate bound, and digits to send that were refused (the
    /// queue was full).
    pub dtmf_dropped_in: u64,
    pub dtmf_dropped_out: u64,
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
    dtmf: DtmfQueue,
    dtmf_timestamp: u32,
    buf: Vec<u8>,
    encoded: Vec<u8>,
}

/// The media state of one call.
pub struct Leg {
    cfg: LegConfig,
    latch: Latch,
    jitter: JitterBuffer,
    decoder: Box<dyn Decoder>,
    encoder: Box<dyn Encoder>,
    dtmf_rx: DtmfReceiver,
    dtmf_rate: DigitRate,
    events: VecDeque<LegEvent>,
    tx: Sender,
    reception: Reception,
    /// Middle 32 bits of the peer's last SR and when it arrived.
    last_sr: Option<(u32, Instant)>,
    next_rtcp: Option<Instant>,
    rtcp_buf: Vec<u8>,
    stats: LegStats,
}

impl Leg {
    pub fn new(cfg: LegConfig) -> Result<Self, CodecError> {
        let ssrc = cfg.ssrc;
        Ok(Leg {
            latch: Latch::new(cfg.signalled(), cfg.limits.latch),
            jitter: JitterBuffer::new(cfg.jitter_config()),
            decoder: cfg.codec.decoder(cfg.codec_options)?,
            encoder: cfg.codec.encoder(cfg.codec_options)?,
            dtmf_rx: DtmfReceiver::default(),
            dtmf_rate: DigitRate::new(cfg.limits.dtmf_per_sec),
            events: VecDeque::new(),
            tx: Sender {
                seq: (ssrc >> 7) as u16,
                timestamp: ssrc.rotate_left(11),
                last_send: None,
                dtmf: DtmfQueue::new(cfg.limits.dtmf_queue),
                dtmf_timestamp: 0,
                // Grown by the first packet to what the codec needs (G.711: 172 bytes).
                buf: Vec::new(),
                encoded: Vec::new(),
            },
            reception: Reception::default(),
            last_sr: None,
            next_rtcp: None,
            rtcp_buf: Vec::with_capacity(256),
            stats: LegStats::default(),
            cfg,
        })
    }

    /// Applies a re-negotiation (re-INVITE): new codec, payload types, ptime, direction,
    /// address or limits. Our SSRC and RTP numbering carry on, so the peer sees one
    /// continuous stream; a new address is learnt again (see `latch`).
    pub fn reconfigure(&mut self, cfg: LegConfig) -> Result<(), CodecError> {
        if cfg.codec != self.cfg.codec || cfg.codec_options != self.cfg.codec_options {
            self.decoder = cfg.codec.decoder(cfg.codec_options)?;
            self.encoder = cfg.codec.encoder(cfg.codec_options)?;
        }
        if cfg.codec != self.cfg.codec
            || cfg.jitter_config() != self.cfg.jitter_config()
            || cfg.payload_type != self.cfg.payload_type
        {
            self.jitter = JitterBuffer::new(cfg.jitter_config());
        }
        self.latch.reconfigure(cfg.signalled(), cfg.limits.latch);
        if cfg.limits.dtmf_per_sec != self.cfg.limits.dtmf_per_sec {
            self.dtmf_rate = DigitRate::new(cfg.limits.dtmf_per_sec);
        }
        self.tx.dtmf.set_max(cfg.limits.dtmf_queue);
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

    /// Where RTP goes now: the latched peer, else the SDP's address.
    pub fn remote(&self) -> SocketAddr {
        self.latch.remote()
    }

    /// The SSRC of the latched peer's stream, once its RTP has arrived.
    pub fn remote_ssrc(&self) -> Option<u32> {
        self.latch.peer_ssrc()
    }

    /// When valid RTP or RTCP last arrived from the latched peer (for liveness checks).
    pub fn last_rx(&self) -> Option<Instant> {
        self.latch.last_rx()
    }

    /// The peer's ACK arrived: sending may start.
    pub fn confirm(&mut self) {
        self.latch.confirm();
    }

    pub fn direction(&self) -> Direction {
        self.cfg.direction
    }

    /// PCM frame length in samples at the leg's `pcm_rate`.
    pub fn frame_samples(&self) -> usize {
        (self.cfg.pcm_rate() * self.cfg.ptime_ms / 1000) as usize
    }

    /// The jitter buffer's own counters (adaptation and concealment).
    pub fn jitter_stats(&self) -> JitterStats {
        self.jitter.stats()
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
        let before = self.latch.peer();
        if !self.latch.accept_rtp(now, from, p.ssrc, p.seq) {
            self.stats.foreign_in += 1;
            return Err(Dropped::ForeignSource);
        }
        self.note_move(before);
        self.stats.packets_in += 1;
        self.stats.octets_in += p.payload.len() as u64;
        self.reception.record(p.ssrc, p.seq);
        if is_dtmf {
            if let Some(d) = self.dtmf_rx.handle(p.timestamp, p.payload) {
                if self.dtmf_rate.allow(now) {
                    self.push_event(LegEvent::Dtmf(d));
                } else {
                    self.stats.dtmf_dropped_in += 1;
                }
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
    /// everything else is ignored. Only the latched peer's RTCP counts (see `latch`); it
    /// moves the report destination to its source (symmetric RTCP).
    pub fn handle_rtcp(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Dropped> {
        let result = self.check_rtcp(now, from, bytes);
        match result {
            Ok(()) => self.cfg.remote_rtcp = from,
            Err(_) => self.stats.dropped_in += 1,
        }
        result
    }

    fn check_rtcp(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), Dropped> {
        // Parsed first, so garbage from the SDP's address latches nothing.
        if bytes.is_empty() {
            return Err(rtcp::RtcpError::Truncated.into());
        }
        rtcp::parse(bytes).try_for_each(|p| p.map(drop))?;
        let before = self.latch.peer();
        if !self.latch.accept_rtcp(now, from) {
            self.stats.foreign_in += 1;
            return Err(Dropped::ForeignSource);
        }
        self.note_move(before);
        self.accept_rtcp(now, bytes)
    }

    /// Reports a latch or a move of the peer.
    fn note_move(&mut self, before: Option<SocketAddr>) {
        if let Some(now) = self.latch.peer().filter(|&p| Some(p) != before) {
            self.push_event(LegEvent::RemoteMoved(now));
        }
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
                // RFC 3550: the fraction is in 1/256ths.
                let percent = (u32::from(b.fraction_lost) * 100 / 256) as u8;
                self.encoder.expect_loss(percent);
                self.stats.remote_jitter_ms =
                    b.jitter as f64 * 1000.0 / self.cfg.codec.rtp_clock() as f64;
            }
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

    /// One frame of received audio (`frame_samples` at the leg's `pcm_rate`), decoded or
    /// concealed; `None` while nothing is playing (buffering, or the peer is silent).
    /// Call once per ptime.
    pub fn pull_frame(&mut self, now: Instant) -> Option<&[i16]> {
        let (n, rate) = (self.frame_samples(), self.cfg.pcm_rate());
        self.jitter.pull(now, n, rate, self.decoder.as_mut())
    }

    /// Queues a DTMF digit as RFC 4733 events; they replace the audio of the next sends,
    /// with audio between digits. False when telephone-event was not negotiated, `digit` is
    /// not a DTMF digit, or the queue is full (the digit is dropped and counted).
    pub fn send_dtmf(&mut self, digit: char) -> bool {
        if self.cfg.dtmf_payload_type.is_none() {
            return false;
        }
        let queued = self.tx.dtmf.push(digit);
        self.stats.dtmf_dropped_out += u64::from(!queued);
        queued
    }

    /// Encodes one frame of PCM (`frame_samples` at `pcm_rate`) and returns the RTP packet;
    /// `None` while the leg may not send (see `latch`).
    pub fn send_pcm(&mut self, now: Instant, pcm: &[i16]) -> Option<Transmit<'_>> {
        if !self.latch.permit_send() {
            return None;
        }
        let mut encoded = std::mem::take(&mut self.tx.encoded);
        encoded.clear();
        self.encoder.encode(pcm, &mut encoded);
        self.write_packet(now, &encoded);
        self.tx.encoded = encoded;
        Some(self.transmit())
    }

    /// Wraps an already encoded frame (shared by every leg of an encoder group) in this
    /// leg's RTP header. Queued DTMF events go out instead of the audio. `None` while the
    /// leg may not send.
    pub fn send_payload(&mut self, now: Instant, payload: &[u8]) -> Option<Transmit<'_>> {
        if !self.latch.permit_send() {
            return None;
        }
        self.write_packet(now, payload);
        Some(self.transmit())
    }

    fn transmit(&self) -> Transmit<'_> {
        Transmit {
            to: self.latch.remote(),
            bytes: &self.tx.buf,
        }
    }

    fn write_packet(&mut self, now: Instant, payload: &[u8]) {
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
        let clock = self.cfg.codec.rtp_clock();
        match self.tx.dtmf.next(clock, self.cfg.ptime_ms) {
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
    }

    /// The compound RTCP report due at `now` (SR once we have sent, else RR; always SDES),
    /// then every 5 s. `ntp` is the wall clock as an NTP timestamp (`rtcp::ntp_timestamp`).
    /// Reports start once the peer has ACKed and is latched.
    pub fn poll_rtcp(&mut self, now: Instant, ntp: u64) -> Option<Transmit<'_>> {
        if !self.latch.established() {
            return None;
        }
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
    use crate::media::codec::testutil::{fec_rebuilt_snr, tone, voice};
    use mixer::goertzel::level_db;

    const PTIME: Duration = Duration::from_millis(20);

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Two legs wired back to back, as a phone (a, at 127.0.0.1:5000) and the server (b, at
    /// 127.0.0.1:4000), both past the ACK and each latched to the other.
    fn pair(codec: CodecKind, pt: u8) -> (Leg, Leg) {
        pair_of(LegConfig::new(
            codec,
            pt,
            20,
            addr("127.0.0.1:4000"),
            0x1111,
        ))
    }

    /// Two legs of `a`'s codec setup, sending to each other.
    fn pair_of(mut a: LegConfig) -> (Leg, Leg) {
        a.ssrc = 0x1111;
        a.dtmf_payload_type = Some(101);
        let mut b = a.clone();
        b.ssrc = 0x2222;
        b.remote_rtp = addr("127.0.0.1:5000");
        b.remote_rtcp = addr("127.0.0.1:5001");
        let (mut a, mut b) = (Leg::new(a).unwrap(), Leg::new(b).unwrap());
        let now = Instant::now();
        for (leg, peer) in [(&mut a, "127.0.0.1:4000"), (&mut b, "127.0.0.1:5000")] {
            leg.confirm();
            // An empty receiver report from the peer's SDP address latches it, and sends
            // nothing (the tests count packets).
            let mut rr = Vec::new();
            rtcp::write_rr(&mut rr, 0x9999, &[]);
            leg.handle_rtcp(now, addr(peer), &rr).unwrap();
            assert_eq!(leg.remote(), addr(peer));
        }
        while a.poll_event().is_some() || b.poll_event().is_some() {}
        (a, b)
    }

    /// An RTP packet of `ssrc`/`seq` carrying `payload` with payload type `pt`.
    fn rtp(pt: u8, seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        RtpHeader::simple(pt, seq, u32::from(seq) * 160, ssrc, false).write(&mut out);
        out.extend_from_slice(payload);
        out
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
        let rate = tx.config().pcm_rate();
        let n = tx.frame_samples();
        let pcm = tone(1000.0, rate, n * frames as usize, 10000.0);
        let mut out = Vec::new();
        for i in 0..frames {
            let now = t0 + PTIME * i;
            let packet = tx
                .send_pcm(now, &pcm[i as usize * n..][..n])
                .unwrap()
                .bytes
                .to_vec();
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

    /// `[rtp] opus_rate = 16000`: the leg codes and plays 16 kHz PCM on Opus's 48 kHz RTP
    /// clock, and a lost packet is still rebuilt.
    #[test]
    fn an_opus_leg_at_16_khz_plays_frames_of_320_samples() {
        let mut cfg = LegConfig::new(CodecKind::Opus, 111, 20, addr("127.0.0.1:4000"), 1);
        cfg.codec_options.opus_rate = 16000;
        let (mut a, mut b) = pair_of(cfg);
        assert_eq!((a.frame_samples(), a.config().pcm_rate()), (320, 16000));
        let t0 = Instant::now();
        let out = stream(&mut a, &mut b, t0, 50, |i| i == 20);
        let mut stamp = |i: u32| {
            let bytes = a.send_pcm(t0 + PTIME * i, &[0; 320]).unwrap().bytes;
            RtpPacket::parse(bytes).unwrap().timestamp
        };
        let (first, next) = (stamp(50), stamp(51));
        assert_eq!(next.wrapping_sub(first), 960, "a 48 kHz RTP clock");
        assert_eq!(b.stats().lost, 1);
        assert!(out.len() >= 45 * 320, "{}", out.len());
        assert!(level_db(&out[18 * 320..23 * 320], 16000, 1000.0) > -14.0);
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
            let bytes = a.send_payload(now, &[0xFF; 160]).unwrap().bytes.to_vec();
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
    fn media_counts_only_from_the_latched_source() {
        let mut cfg = LegConfig::new(CodecKind::Pcmu, 0, 20, addr("198.51.100.7:4000"), 1);
        cfg.dtmf_payload_type = Some(101);
        let mut leg = Leg::new(cfg).unwrap();
        let t0 = Instant::now();
        let phone = addr("198.51.100.7:4000");
        assert_eq!((leg.remote(), leg.last_rx()), (phone, None));
        leg.handle_rtp(t0, phone, &rtp(0, 1, 0x1111, &[0xFF; 160]))
            .unwrap();
        assert_eq!(leg.poll_event(), Some(LegEvent::RemoteMoved(phone)));
        assert_eq!((leg.last_rx(), leg.remote_ssrc()), (Some(t0), Some(0x1111)));
        // An attacker's audio and keys, from another port and from another IP, at any pace:
        // dropped before the jitter buffer and DTMF, and counted.
        let later = t0 + PTIME;
        for (i, from) in ["198.51.100.7:6666", "203.0.113.9:4000"].iter().enumerate() {
            for seq in 0..20u16 {
                let seq = seq + 100 * i as u16;
                let audio = rtp(0, seq, 0x6666, &[0x00; 160]);
                let key = rtp(101, seq, 0x6666, &[5, 0x8A, 0, 160]);
                for bytes in [audio, key] {
                    let r = leg.handle_rtp(later, addr(from), &bytes);
                    assert_eq!(r, Err(Dropped::ForeignSource));
                }
            }
        }
        let s = leg.stats();
        assert_eq!((s.packets_in, s.foreign_in, s.dropped_in), (1, 80, 80));
        assert_eq!(leg.poll_event(), None);
        assert_eq!((leg.remote(), leg.last_rx()), (phone, Some(t0)));
        // Garbage or a foreign payload type from the phone neither counts nor latches.
        assert!(leg.handle_rtp(later, phone, &[0x80, 0, 1]).is_err());
        assert_eq!(
            leg.handle_rtp(later, phone, &rtp(18, 2, 0x1111, &[0; 20])),
            Err(Dropped::UnknownPayloadType(18))
        );
        assert_eq!(leg.last_rx(), Some(t0));
    }

    #[test]
    fn rtcp_from_elsewhere_keeps_nothing_alive() {
        let (_, mut b) = pair(CodecKind::Pcmu, 0);
        let t0 = Instant::now();
        let mut rr = Vec::new();
        rtcp::write_rr(&mut rr, 0x6666, &[]);
        let later = t0 + Duration::from_secs(20);
        for from in ["127.0.0.1:6667", "192.0.2.1:5001"] {
            assert_eq!(
                b.handle_rtcp(later, addr(from), &rr),
                Err(Dropped::ForeignSource)
            );
        }
        assert!(b.last_rx().is_some_and(|t| t < later));
        b.handle_rtcp(later, addr("127.0.0.1:5001"), &rr).unwrap();
        assert_eq!(b.last_rx(), Some(later));
    }

    #[test]
    fn nothing_before_the_ack_and_a_handful_before_the_peer() {
        let mut leg = Leg::new(LegConfig::new(
            CodecKind::Pcmu,
            0,
            20,
            addr("192.0.2.50:4000"),
            1,
        ))
        .unwrap();
        let t0 = Instant::now();
        let sends = |leg: &mut Leg, from: u32| {
            (from..from + 100)
                .filter(|&i| leg.send_pcm(t0 + PTIME * i, &[0; 160]).is_some())
                .count()
        };
        assert_eq!(sends(&mut leg, 0), 0, "before the ACK");
        assert!(leg.poll_rtcp(t0 + Duration::from_secs(10), 1).is_none());
        leg.confirm();
        let handful = LegLimits::default().latch.send_before_peer as usize;
        assert_eq!(
            sends(&mut leg, 100),
            handful,
            "after the ACK, before the peer"
        );
        assert_eq!(leg.stats().packets_out, handful as u64);
        leg.handle_rtp(t0, addr("192.0.2.50:4000"), &rtp(0, 1, 7, &[0xFF; 160]))
            .unwrap();
        assert_eq!(sends(&mut leg, 200), 100, "once the peer is heard");
    }

    #[test]
    fn a_dtmf_flood_is_bounded_both_ways() {
        let (mut a, mut b) = pair(CodecKind::Pcmu, 0);
        let t0 = Instant::now();
        // 5,000 events in one second from the latched phone: a second's burst and the
        // refill get through, the rest is dropped and counted.
        for i in 0..5000u32 {
            let key = rtp(101, i as u16, 0x1111, &[(i % 10) as u8, 0x8A, 0, 160]);
            let mut key = key;
            key[4..8].copy_from_slice(&(i * 7).to_be_bytes()); // a new event each
            b.handle_rtp(
                t0 + Duration::from_micros(200 * u64::from(i)),
                addr("127.0.0.1:5000"),
                &key,
            )
            .unwrap();
        }
        let digits = std::iter::from_fn(|| b.poll_event()).count();
        assert!((19..=21).contains(&digits), "{digits}");
        assert_eq!(b.stats().dtmf_dropped_in, 5000 - digits as u64);
        // 5,000 digits to send: four queue, the rest drop; the audio is back after them.
        let queued = (0..5000).filter(|_| a.send_dtmf('5')).count();
        assert_eq!(queued, LegLimits::default().dtmf_queue);
        assert_eq!(a.stats().dtmf_dropped_out, 5000 - queued as u64);
        let kinds: String = (0..60u32)
            .map(|i| {
                let bytes = a.send_payload(t0 + PTIME * i, &[0xFF; 160]).unwrap().bytes;
                if RtpPacket::parse(bytes).unwrap().payload_type == 101 {
                    'd'
                } else {
                    'a'
                }
            })
            .collect();
        let digit = "ddddddd";
        let gap = "aaaaa";
        assert_eq!(
            kinds,
            format!("{}{}", [digit, gap].concat().repeat(4), "a".repeat(12))
        );
    }

    #[test]
    fn sender_resumes_with_marker_and_real_time_timestamp() {
        let (mut a, _) = pair(CodecKind::Pcmu, 0);
        let t0 = Instant::now();
        let first = RtpPacket::parse(a.send_payload(t0, &[0; 160]).unwrap().bytes)
            .map(|p| (p.seq, p.timestamp, p.marker))
            .unwrap();
        let second = RtpPacket::parse(a.send_payload(t0 + PTIME, &[0; 160]).unwrap().bytes)
            .map(|p| (p.seq, p.timestamp, p.marker))
            .unwrap();
        assert!(first.2 && !second.2);
        assert_eq!(
            (second.0, second.1),
            (first.0.wrapping_add(1), first.1.wrapping_add(160))
        );
        let after_pause = a.send_payload(t0 + PTIME * 11, &[0; 160]).unwrap().bytes;
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
        assert_eq!(cfg.codec_options.opus_max_playback_rate, Some(16000));
        let leg = Leg::new(cfg).unwrap();
        assert_eq!(leg.frame_samples(), 1920);
    }

    #[test]
    fn reconfigure_keeps_the_stream_continuous() {
        let (mut a, _) = pair(CodecKind::Pcmu, 0);
        let t0 = Instant::now();
        let before = RtpPacket::parse(a.send_pcm(t0, &[0; 160]).unwrap().bytes)
            .map(|p| (p.seq, p.ssrc))
            .unwrap();
        let mut cfg = a.config().clone();
        cfg.codec = CodecKind::Opus;
        cfg.payload_type = 111;
        cfg.ssrc = 0xBAD;
        a.reconfigure(cfg).unwrap();
        assert_eq!(a.frame_samples(), 960);
        let bytes = a.send_pcm(t0 + PTIME, &[0; 960]).unwrap().bytes;
        let p = RtpPacket::parse(bytes).unwrap();
        assert_eq!(p.payload_type, 111);
        assert!(!p.payload.is_empty());
        assert_eq!((p.seq, p.ssrc), (before.0.wrapping_add(1), before.1));
    }

    /// The Opus payloads of a second of voice the leg sends after the phone reported
    /// `fraction_lost` (1/256ths) in an RTCP receiver report.
    fn opus_sent_after_a_report_of(fraction_lost: u8) -> Vec<Vec<u8>> {
        let (mut a, _) = pair(CodecKind::Opus, 111);
        let t0 = Instant::now();
        let block = rtcp::ReportBlock {
            ssrc: 0x1111,
            fraction_lost,
            cumulative_lost: 0,
            highest_seq: 0,
            jitter: 0,
            last_sr: 0,
            delay_since_last_sr: 0,
        };
        let mut rr = Vec::new();
        rtcp::write_rr(&mut rr, 0x2222, &[block]);
        a.handle_rtcp(t0, addr("127.0.0.1:4000"), &rr).unwrap();
        let frames = voice(48000);
        let frames = frames.chunks_exact(960).enumerate();
        frames
            .map(|(i, frame)| {
                let bytes = a.send_pcm(t0 + PTIME * i as u32, frame).unwrap().bytes;
                RtpPacket::parse(bytes).unwrap().payload.to_vec()
            })
            .collect()
    }

    #[test]
    fn the_loss_a_phone_reports_buys_it_better_rebuilt_opus_frames() {
        let none = fec_rebuilt_snr(&opus_sent_after_a_report_of(0));
        let quarter = fec_rebuilt_snr(&opus_sent_after_a_report_of(64));
        eprintln!("rebuilt from FEC: {none:.1} dB after 0 % reported, {quarter:.1} dB after 25 %");
        assert!(quarter > none + 1.0, "{none:.1} vs {quarter:.1} dB");
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
        let mut next = crate::test_rng::seeded(0x2545_F491_4F6C_DD1D);
        let pcm = tone(440.0, 48000, 960, 8000.0);
        for i in 0..2000u32 {
            let now = t0 + PTIME * i;
            let mut bytes = a.send_pcm(now, &pcm).unwrap().bytes.to_vec();
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
