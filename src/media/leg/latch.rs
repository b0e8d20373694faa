//! Strict RTP, sans-IO: which source a leg takes media from, where it sends, and whether it
//! may send yet. The rules, their limits and the tests that show them are in
//! docs/security.md, "Media (RTP)".
//!
//! - Learning. RTP from exactly the address the SDP names latches at once. Any other source
//!   must come from the expected IP and send `probation` consecutive valid packets (one SSRC,
//!   each sequence number one above the last). The expected IP is the SDP's, except when the
//!   SDP names an address nobody on the internet can send from (private, shared, loopback,
//!   link-local, unspecified) and the INVITE came from another IP: then a NAT sits between,
//!   and the phone's RTP leaves it from the same public IP as its SIP.
//! - The SDP's own address outranks a source learned by probation: it takes over the moment
//!   it sends (an attacker who raced a phone's first packet loses the leg to it).
//! - Latched. Another source takes over only once the peer has been silent `relatch_after`,
//!   from the expected IP, with the peer's SSRC and a sequence number that continues the
//!   peer's (within RFC 3550's MAX_DROPOUT), kept up for `probation` packets: what a phone
//!   behind a NAT that rebinds its port sends, and what a blind attacker cannot.
//! - RTCP counts only from the peer's IP, on its RTP port (rtcp-mux), the port above it or
//!   the SDP's RTCP port. Before any RTP, RTCP from the SDP's own addresses latches the SDP's
//!   RTP address (a listen-only phone sends RTCP and no RTP). Nothing else keeps a leg alive.
//! - Sending. Nothing before `confirm` (the ACK: until then the SDP's address is only a
//!   claim). Then at most `send_before_peer` packets while no peer is latched, then freely.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Sources on probation at once: enough that another sender at the phone's public IP
/// (a shared NAT) cannot keep the phone's own run from completing by interleaving.
const CANDIDATES: usize = 4;
/// How far a rebound stream's first sequence number may jump past the peer's last one
/// (RFC 3550 A.1 MAX_DROPOUT).
const MAX_DROPOUT: u16 = 3000;

/// The strict-RTP limits (`[rtp]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatchLimits {
    /// Consecutive valid packets a source other than the SDP's address sends before it is
    /// latched, or before it replaces a silent peer.
    pub probation: u32,
    /// How long the peer must have been silent before another source may replace it.
    pub relatch_after: Duration,
    /// Packets sent after the ACK while no peer is latched.
    pub send_before_peer: u32,
}

impl Default for LatchLimits {
    fn default() -> Self {
        LatchLimits {
            probation: 4,
            relatch_after: Duration::from_secs(5),
            send_before_peer: 10,
        }
    }
}

/// What the signalling says about the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signalled {
    pub rtp: SocketAddr,
    pub rtcp: SocketAddr,
    /// Where the INVITE came from, when known.
    pub sip_source: Option<IpAddr>,
}

impl Signalled {
    /// The IP every source but the SDP's exact address must come from.
    pub fn expected_ip(&self) -> IpAddr {
        let sdp = self.rtp.ip();
        match self.sip_source {
            Some(sip) if sip != sdp && !reachable(sdp) => sip,
            _ => sdp,
        }
    }
}

/// Whether a host on the internet can be at `ip` (a NAT's inside addresses cannot).
fn reachable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let shared = a.octets()[0] == 100 && (a.octets()[1] & 0xC0) == 64; // 100.64/10
            !(a.is_private()
                || shared
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast())
        }
        IpAddr::V6(a) => {
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_unique_local()
                || a.is_unicast_link_local())
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    addr: SocketAddr,
    /// SSRC and latest sequence number of its RTP; `None` while only RTCP came.
    stream: Option<(u32, u16)>,
    last_rx: Instant,
}

/// A source on probation.
#[derive(Debug, Clone, Copy)]
struct Run {
    from: SocketAddr,
    ssrc: u32,
    seq: u16,
    count: u32,
    at: Instant,
}

pub struct Latch {
    sdp: Signalled,
    expected_ip: IpAddr,
    limits: LatchLimits,
    peer: Option<Peer>,
    runs: [Option<Run>; CANDIDATES],
    confirmed: bool,
    /// Packets sent since the ACK while no peer was latched.
    sent_unproven: u32,
}

impl Latch {
    pub fn new(sdp: Signalled, limits: LatchLimits) -> Self {
        Latch {
            expected_ip: sdp.expected_ip(),
            sdp,
            limits,
            peer: None,
            runs: [None; CANDIDATES],
            confirmed: false,
            sent_unproven: 0,
        }
    }

    /// A re-negotiation: new limits apply; a new SDP address (or SIP source) starts learning
    /// again, with a new handful of packets to send before the peer shows up.
    pub fn reconfigure(&mut self, sdp: Signalled, limits: LatchLimits) {
        if sdp.rtp != self.sdp.rtp || sdp.expected_ip() != self.expected_ip {
            *self = Latch {
                confirmed: self.confirmed,
                ..Latch::new(sdp, limits)
            };
        }
        self.sdp = sdp;
        self.limits = limits;
    }

    /// Where RTP goes: the latched peer, else the SDP's address.
    pub fn remote(&self) -> SocketAddr {
        self.peer.map_or(self.sdp.rtp, |p| p.addr)
    }

    /// The latched peer's address, if any.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer.map(|p| p.addr)
    }

    /// The peer's SSRC, once its RTP arrived.
    pub fn peer_ssrc(&self) -> Option<u32> {
        self.peer.and_then(|p| p.stream).map(|(ssrc, _)| ssrc)
    }

    /// When media from the peer last arrived.
    pub fn last_rx(&self) -> Option<Instant> {
        self.peer.map(|p| p.last_rx)
    }

    /// Whether a valid RTP packet (parsed, negotiated payload type) from `from` is the
    /// peer's; it may latch or move the peer.
    pub fn accept_rtp(&mut self, now: Instant, from: SocketAddr, ssrc: u32, seq: u16) -> bool {
        if let Some(p) = self.peer.as_mut().filter(|p| p.addr == from) {
            p.stream = Some((ssrc, seq));
            p.last_rx = now;
            return true;
        }
        let proven = if from == self.sdp.rtp {
            true
        } else if from.ip() != self.expected_ip {
            false
        } else {
            match self.peer {
                None => self.advance(now, from, ssrc, seq, None),
                Some(p) => match p.stream {
                    Some((peer_ssrc, last))
                        if peer_ssrc == ssrc
                            && now.saturating_duration_since(p.last_rx)
                                >= self.limits.relatch_after =>
                    {
                        self.advance(now, from, ssrc, seq, Some(last))
                    }
                    _ => false,
                },
            }
        };
        if proven {
            self.latch(now, from, Some((ssrc, seq)));
        }
        proven
    }

    /// Whether an RTCP packet from `from` is the peer's (then it counts as life).
    pub fn accept_rtcp(&mut self, now: Instant, from: SocketAddr) -> bool {
        let rtcp_port = self.sdp.rtcp.port();
        match self.peer.as_mut() {
            Some(p) => {
                let port = p.addr.port();
                let ports = [port, port.wrapping_add(1), rtcp_port];
                let ok = from.ip() == p.addr.ip() && ports.contains(&from.port());
                if ok {
                    p.last_rx = now;
                }
                ok
            }
            None if from == self.sdp.rtp || from == self.sdp.rtcp => {
                self.latch(now, self.sdp.rtp, None);
                true
            }
            None => false,
        }
    }

    fn latch(&mut self, now: Instant, addr: SocketAddr, stream: Option<(u32, u16)>) {
        self.peer = Some(Peer {
            addr,
            stream,
            last_rx: now,
        });
        self.runs = [None; CANDIDATES];
    }

    /// Counts a packet towards its source's run; true once the run is long enough.
    /// `continues`: the silent peer's last sequence number, which a takeover must follow.
    fn advance(
        &mut self,
        now: Instant,
        from: SocketAddr,
        ssrc: u32,
        seq: u16,
        continues: Option<u16>,
    ) -> bool {
        let i = self
            .runs
            .iter()
            .position(|r| r.is_some_and(|r| r.from == from))
            .or_else(|| self.runs.iter().position(Option::is_none))
            .unwrap_or_else(|| oldest(&self.runs));
        let slot = &mut self.runs[i];
        match slot {
            Some(r) if r.from == from && r.ssrc == ssrc && seq == r.seq.wrapping_add(1) => {
                r.count += 1;
                r.seq = seq;
                r.at = now;
            }
            _ => {
                let follows = continues
                    .is_none_or(|last| (1..=MAX_DROPOUT).contains(&seq.wrapping_sub(last)));
                *slot = follows.then_some(Run {
                    from,
                    ssrc,
                    seq,
                    count: 1,
                    at: now,
                });
            }
        }
        slot.is_some_and(|r| r.count >= self.limits.probation)
    }

    /// The ACK arrived: the peer asked for this media.
    pub fn confirm(&mut self) {
        self.confirmed = true;
    }

    /// Whether the next packet may be sent; counts it against the handful allowed before
    /// the peer is latched.
    pub fn permit_send(&mut self) -> bool {
        if !self.confirmed {
            return false;
        }
        if self.peer.is_some() {
            return true;
        }
        let ok = self.sent_unproven < self.limits.send_before_peer;
        self.sent_unproven += u32::from(ok);
        ok
    }

    /// Whether the peer is confirmed and latched (RTCP reports go out only then).
    pub fn established(&self) -> bool {
        self.confirmed && self.peer.is_some()
    }

    /// Whether a source other than the SDP's own address holds the leg.
    #[cfg(test)]
    fn learned(&self) -> bool {
        self.peer.is_some_and(|p| p.addr != self.sdp.rtp)
    }
}

fn oldest(runs: &[Option<Run>; CANDIDATES]) -> usize {
    (0..CANDIDATES)
        .min_by_key(|&i| runs[i].map(|r| r.at))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTIME: Duration = Duration::from_millis(20);

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn latch(sdp: &str, sip: &str) -> Latch {
        let rtp = addr(sdp);
        let mut rtcp = rtp;
        rtcp.set_port(rtp.port() + 1);
        let sdp = Signalled {
            rtp,
            rtcp,
            sip_source: Some(sip.parse().unwrap()),
        };
        Latch::new(sdp, LatchLimits::default())
    }

    /// Sends `n` consecutive packets from `from` starting at `seq`, 20 ms apart from `t`;
    /// returns how many were accepted.
    fn stream(l: &mut Latch, t: Instant, from: &str, ssrc: u32, seq: u16, n: u16) -> usize {
        (0..n)
            .filter(|&i| l.accept_rtp(t + PTIME * u32::from(i), addr(from), ssrc, seq + i))
            .count()
    }

    #[test]
    fn the_sdp_address_latches_on_its_first_packet() {
        let mut l = latch("198.51.100.7:4000", "198.51.100.7");
        let t = Instant::now();
        assert_eq!(l.remote(), addr("198.51.100.7:4000"));
        assert!(l.peer().is_none() && l.last_rx().is_none());
        assert!(l.accept_rtp(t, addr("198.51.100.7:4000"), 7, 100));
        assert_eq!(
            (l.peer(), l.last_rx()),
            (Some(addr("198.51.100.7:4000")), Some(t))
        );
        assert!(!l.learned());
    }

    #[test]
    fn another_port_of_the_expected_ip_latches_after_probation() {
        let mut l = latch("198.51.100.7:4000", "198.51.100.7");
        let t = Instant::now();
        // Three in a row are not enough; the fourth latches and is accepted.
        assert_eq!(stream(&mut l, t, "198.51.100.7:61000", 9, 10, 3), 0);
        assert!(l.peer().is_none());
        assert!(l.accept_rtp(t + PTIME * 3, addr("198.51.100.7:61000"), 9, 13));
        assert_eq!(l.remote(), addr("198.51.100.7:61000"));
        assert!(l.learned());
    }

    #[test]
    fn a_broken_run_starts_over() {
        let mut l = latch("198.51.100.7:4000", "198.51.100.7");
        let t = Instant::now();
        let from = addr("198.51.100.7:61000");
        // A gap in the sequence, then another SSRC: each restarts the count.
        for (seq, ssrc) in [(1, 9), (2, 9), (4, 9), (5, 9), (6, 8), (7, 8), (8, 8)] {
            assert!(!l.accept_rtp(t, from, ssrc, seq), "{seq}");
        }
        assert!(l.accept_rtp(t, from, 8, 9));
    }

    #[test]
    fn other_ips_never_latch() {
        let mut l = latch("198.51.100.7:4000", "198.51.100.7");
        let t = Instant::now();
        assert_eq!(stream(&mut l, t, "203.0.113.66:4000", 9, 1, 50), 0);
        assert!(l.peer().is_none());
    }

    #[test]
    fn a_private_sdp_address_behind_a_nat_expects_the_sip_source() {
        let t = Instant::now();
        let mut l = latch("192.168.1.20:4000", "203.0.113.5");
        assert_eq!(l.expected_ip, "203.0.113.5".parse::<IpAddr>().unwrap());
        assert_eq!(stream(&mut l, t, "203.0.113.5:31002", 9, 1, 4), 1);
        assert_eq!(l.remote(), addr("203.0.113.5:31002"));
        // Shared (carrier-grade NAT), link-local and unspecified addresses likewise.
        for sdp in [
            "100.64.3.4:4000",
            "169.254.1.1:4000",
            "0.0.0.0:4000",
            "[fd00::5]:4000",
        ] {
            let l = latch(sdp, "203.0.113.5");
            assert_eq!(l.expected_ip.to_string(), "203.0.113.5", "{sdp}");
        }
        // A public SDP address, or a private one the INVITE came from, is believed.
        for (sdp, sip) in [
            ("198.51.100.7:4000", "203.0.113.5"),
            ("10.0.0.8:4000", "10.0.0.8"),
        ] {
            let l = latch(sdp, sip);
            assert_eq!(l.expected_ip, addr(sdp).ip(), "{sdp}");
        }
    }

    #[test]
    fn the_sdp_address_outranks_a_source_that_raced_it() {
        let mut l = latch("198.51.100.7:4000", "198.51.100.7");
        let t = Instant::now();
        assert_eq!(stream(&mut l, t, "198.51.100.7:666", 1, 1, 4), 1);
        assert!(l.learned());
        assert!(l.accept_rtp(t + PTIME * 4, addr("198.51.100.7:4000"), 2, 50));
        assert_eq!(l.remote(), addr("198.51.100.7:4000"));
        // The racer is now foreign and, the phone being alive, stays so.
        assert_eq!(
            stream(&mut l, t + PTIME * 5, "198.51.100.7:666", 1, 5, 20),
            0
        );
    }

    #[test]
    fn a_live_peer_is_never_replaced() {
        let mut l = latch("198.51.100.7:4000", "198.51.100.7");
        let t = Instant::now();
        assert_eq!(stream(&mut l, t, "198.51.100.7:4000", 7, 100, 10), 10);
        // Same SSRC, continuing sequence, same IP: still refused while the peer talks.
        let later = t + PTIME * 10;
        assert_eq!(stream(&mut l, later, "198.51.100.7:5555", 7, 110, 100), 0);
        assert_eq!(l.remote(), addr("198.51.100.7:4000"));
    }

    #[test]
    fn a_silent_peer_is_replaced_only_by_its_own_stream_after_relatch_after() {
        let mut l = latch("198.51.100.7:4000", "198.51.100.7");
        let t = Instant::now();
        assert_eq!(stream(&mut l, t, "198.51.100.7:4000", 7, 100, 10), 10);
        let last = t + PTIME * 9;
        let relatch = LatchLimits::default().relatch_after;
        let nat = "198.51.100.7:5555";
        // One tick short of the silence needed: refused, however good the stream.
        let early = last + relatch - PTIME * 2;
        assert_eq!(stream(&mut l, early, nat, 7, 110, 1), 0);
        let quiet = last + relatch;
        // Another SSRC, or a sequence that does not continue the peer's, never takes over.
        assert_eq!(stream(&mut l, quiet, nat, 8, 110, 20), 0);
        assert_eq!(stream(&mut l, quiet, nat, 7, 109 + MAX_DROPOUT + 1, 20), 0);
        // From another IP: never.
        assert_eq!(stream(&mut l, quiet, "203.0.113.9:4000", 7, 110, 20), 0);
        assert_eq!(l.remote(), addr("198.51.100.7:4000"));
        // The rebound phone: its SSRC, its sequence (a few lost), kept up for probation.
        assert_eq!(stream(&mut l, quiet, nat, 7, 115, 4), 1);
        assert_eq!(l.remote(), addr(nat));
        assert_eq!(l.last_rx(), Some(quiet + PTIME * 3));
    }

    #[test]
    fn rtcp_counts_only_from_the_peer() {
        let mut l = latch("198.51.100.7:4000", "198.51.100.7");
        let t = Instant::now();
        // Before the peer: only the SDP's own RTCP address counts (and latches its RTP one).
        assert!(!l.accept_rtcp(t, addr("203.0.113.9:4001")));
        assert!(!l.accept_rtcp(t, addr("198.51.100.7:9999")));
        assert!(l.peer().is_none());
        assert!(l.accept_rtcp(t, addr("198.51.100.7:4001")));
        assert_eq!(l.peer(), Some(addr("198.51.100.7:4000")));
        // Latched: its RTP port (mux), the port above; no other port, no other IP.
        let later = t + Duration::from_secs(1);
        assert!(l.accept_rtcp(later, addr("198.51.100.7:4000")));
        assert!(!l.accept_rtcp(later + PTIME, addr("198.51.100.7:4002")));
        assert!(!l.accept_rtcp(later + PTIME, addr("203.0.113.9:4001")));
        assert_eq!(l.last_rx(), Some(later));
    }

    #[test]
    fn nothing_is_sent_before_the_ack_and_a_handful_before_the_peer() {
        let mut l = latch("198.51.100.7:4000", "198.51.100.7");
        let t = Instant::now();
        assert!((0..100).all(|_| !l.permit_send()));
        l.confirm();
        let handful = LatchLimits::default().send_before_peer as usize;
        assert_eq!((0..100).filter(|_| l.permit_send()).count(), handful);
        assert!(!l.established());
        assert!(l.accept_rtp(t, addr("198.51.100.7:4000"), 1, 1));
        assert!(l.established());
        assert!((0..100).all(|_| l.permit_send()));
    }

    #[test]
    fn early_rtp_latches_before_the_ack() {
        let mut l = latch("198.51.100.7:4000", "198.51.100.7");
        assert!(l.accept_rtp(Instant::now(), addr("198.51.100.7:4000"), 1, 1));
        assert!(!l.permit_send(), "still nothing before the ACK");
        l.confirm();
        assert!(l.permit_send());
    }

    #[test]
    fn a_new_sdp_address_learns_again_with_a_new_handful() {
        let mut l = latch("198.51.100.7:4000", "198.51.100.7");
        let t = Instant::now();
        l.confirm();
        assert!(l.accept_rtp(t, addr("198.51.100.7:4000"), 1, 1));
        let limits = LatchLimits::default();
        let same = l.sdp;
        l.reconfigure(same, limits);
        assert!(l.peer().is_some(), "an unchanged address keeps the peer");
        let moved = Signalled {
            rtp: addr("198.51.100.8:6000"),
            rtcp: addr("198.51.100.8:6001"),
            ..same
        };
        l.reconfigure(moved, limits);
        assert_eq!((l.peer(), l.remote()), (None, addr("198.51.100.8:6000")));
        let handful = limits.send_before_peer as usize;
        assert_eq!((0..100).filter(|_| l.permit_send()).count(), handful);
        // The old address is now foreign.
        assert_eq!(stream(&mut l, t, "198.51.100.7:4000", 1, 2, 10), 0);
    }

    #[test]
    fn interleaved_sources_at_the_phone_ip_cannot_block_its_run() {
        let mut l = latch("192.168.1.20:4000", "203.0.113.5");
        let t = Instant::now();
        for i in 0..4u16 {
            // Three noisy neighbours behind the same NAT, each on its own port.
            for n in 0..3u16 {
                let from = addr(&format!("203.0.113.5:{}", 40000 + n));
                assert!(!l.accept_rtp(t, from, u32::from(n), i * 7 + n));
            }
            let phone = l.accept_rtp(t, addr("203.0.113.5:31000"), 77, 500 + i);
            assert_eq!(phone, i == 3, "{i}");
        }
        assert_eq!(l.remote(), addr("203.0.113.5:31000"));
    }
}
