//! One call's media inside a worker: its leg, sockets and mixer seat, and the per-tick
//! steps that move audio between the leg and the conference. A session moves between
//! workers whole (jitter buffer included), so only the socket buffers see a migration.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mixer::{ConferenceId, MemberFlags, MemberId, MemberInput};

use super::call_recording::CallRecording;
use super::leg::Leg;
use super::packet_io::PacketIo;
use super::ports::PortLease;
use crate::api::metrics::Metrics;

/// Datagrams read from one socket per wake-up: a flooded port cannot keep its worker from
/// mixing; the rest is read on the next pass.
const READ_BUDGET: usize = 64;

/// RTP and RTCP share the first byte's version bits; RTCP packet types 192..=223 land in
/// the RTP payload-type field as 64..=95 (RFC 5761 §4), which is how rtcp-mux tells them apart.
pub fn is_rtcp(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && (64..=95).contains(&(bytes[1] & 0x7f))
}

/// Where a call sits in its worker's mixer.
pub struct Seat {
    pub conference: ConferenceId,
    pub member: MemberId,
    pub input: MemberInput,
}

pub struct Session {
    pub leg: Leg,
    pub rtp: UdpSocket,
    /// `None` with rtcp-mux: RTCP shares the RTP socket.
    pub rtcp: Option<UdpSocket>,
    /// Returns the port pair to the pool once the sockets above are closed (fields drop
    /// in order).
    _lease: PortLease,
    /// Stale while the session travels between workers; the adopting worker reseats it.
    pub seat: Seat,
    /// Held calls neither send nor are expected to send.
    pub held: bool,
    /// The member flags asked for; [`Session::mixer_flags`] applies hold on top.
    pub flags: MemberFlags,
    pub energy_level: Option<u32>,
    pub talk_volume: i8,
    pub listen_volume: i8,
    pub recording: Option<CallRecording>,
    /// Since when the leg has waited for its peer (new media, or a re-INVITE's new address):
    /// the RTP timeout counts from here until the peer is latched.
    pub waiting_since: Instant,
    /// Leg counters already added to the server's metrics.
    counted: [u64; 5],
    /// Decoded PCM not yet handed to the mixer (when ptime and interval differ).
    inbound: Vec<i16>,
    /// Mixed PCM not yet sent (when ptime and interval differ).
    outbound: Vec<i16>,
    /// The mixer's interval in samples at the codec rate (0 before the first tick).
    interval: usize,
    /// The latency last reported to the call plane.
    reported_latency: Option<Duration>,
}

impl Session {
    pub fn new(
        leg: Leg,
        (rtp, rtcp, lease): (UdpSocket, Option<UdpSocket>, PortLease),
        seat: Seat,
        flags: MemberFlags,
        now: Instant,
    ) -> Self {
        Session {
            leg,
            rtp,
            rtcp,
            _lease: lease,
            seat,
            held: false,
            flags,
            energy_level: None,
            talk_volume: 0,
            listen_volume: 0,
            recording: None,
            waiting_since: now,
            counted: [0; 5],
            inbound: Vec::new(),
            outbound: Vec::new(),
            interval: 0,
            reported_latency: None,
        }
    }

    /// Reads one socket into the leg, up to a budget; false when datagrams may be left
    /// (call again: the socket will not be reported readable again until drained).
    /// Malformed or foreign datagrams are counted by the leg and dropped.
    pub fn receive(&mut self, now: Instant, rtcp_socket: bool, buf: &mut [u8]) -> bool {
        for _ in 0..READ_BUDGET {
            let sock = match (rtcp_socket, &self.rtcp) {
                (true, Some(s)) => s,
                _ => &self.rtp,
            };
            let (n, from) = match sock.recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) => {
                    // ICMP port unreachable surfaces here on Linux; the peer may come back.
                    tracing::debug!(error = %e, "rtp receive");
                    return true;
                }
            };
            self.deliver(now, rtcp_socket, from, &buf[..n]);
        }
        false
    }

    /// Hands one datagram that arrived on the RTP (or RTCP) socket to the leg.
    pub fn deliver(&mut self, now: Instant, rtcp_socket: bool, from: SocketAddr, bytes: &[u8]) {
        let _ = if rtcp_socket || is_rtcp(bytes) {
            self.leg.handle_rtcp(now, from, bytes)
        } else {
            self.leg.handle_rtp(now, from, bytes)
        };
    }

    /// The flags the mixer applies: the ones asked for, with hold on top.
    pub fn mixer_flags(&self) -> MemberFlags {
        with_hold(self.flags, self.held)
    }

    /// Hands the mixer one interval of received audio (`samples` at the codec rate).
    /// A jitter buffer with nothing to play gives nothing: the mixer hears silence.
    pub fn feed(&mut self, now: Instant, samples: usize) {
        self.interval = samples;
        while self.inbound.len() < samples {
            match self.leg.pull_frame(now) {
                Some(pcm) => self.inbound.extend_from_slice(pcm),
                None => break,
            }
        }
        let n = self.inbound.len().min(samples);
        if let Some(r) = &mut self.recording {
            r.push(&self.inbound[..n], samples - n);
        }
        if n > 0 {
            self.seat.input.push(&self.inbound[..n]);
            self.inbound.drain(..n);
        }
    }

    /// Whether this call can take a payload encoded once for a group: its packets
    /// carry exactly one mixer interval.
    pub fn shares_payload(&self, interval_samples: usize) -> bool {
        self.outbound.is_empty() && self.leg.frame_samples() == interval_samples
    }

    /// Sends a payload encoded for a group of calls hearing the same mix.
    pub fn send_payload(&mut self, now: Instant, payload: &[u8], io: &mut PacketIo) {
        if self.held {
            return;
        }
        if let Some(t) = self.leg.send_payload(now, payload) {
            io.send(&self.rtp, t.to, t.bytes);
        }
    }

    /// Encodes and sends this call's own mix, in packets of its ptime.
    pub fn send_pcm(&mut self, now: Instant, pcm: &[i16], io: &mut PacketIo) {
        if self.held {
            return;
        }
        let frame = self.leg.frame_samples();
        if self.outbound.is_empty() && pcm.len() == frame {
            if let Some(t) = self.leg.send_pcm(now, pcm) {
                io.send(&self.rtp, t.to, t.bytes);
            }
            return;
        }
        self.outbound.extend_from_slice(pcm);
        while self.outbound.len() >= frame {
            if let Some(t) = self.leg.send_pcm(now, &self.outbound[..frame]) {
                io.send(&self.rtp, t.to, t.bytes);
            }
            self.outbound.drain(..frame);
        }
    }

    /// Sends an RTCP report when one is due.
    pub fn report(&mut self, now: Instant, ntp: u64, io: &mut PacketIo) {
        if let Some(t) = self.leg.poll_rtcp(now, ntp) {
            io.send(self.rtcp.as_ref().unwrap_or(&self.rtp), t.to, t.bytes);
        }
    }

    /// Adds what the leg counted since the last call (packets in, out, lost, from foreign
    /// sources; DTMF dropped at its bounds) to `metrics`.
    pub fn count_into(&mut self, metrics: &Metrics) {
        let st = self.leg.stats();
        let now = [
            st.packets_in,
            st.packets_out,
            st.lost,
            st.foreign_in,
            st.dtmf_dropped_in + st.dtmf_dropped_out,
        ];
        let gauges = [
            &metrics.packets_in,
            &metrics.packets_out,
            &metrics.packets_lost,
            &metrics.packets_foreign,
            &metrics.dtmf_dropped,
        ];
        for ((total, before), counter) in now.iter().zip(&mut self.counted).zip(gauges) {
            counter.fetch_add(total.saturating_sub(*before), Ordering::Relaxed);
            *before = *total;
        }
    }

    /// The latency the server adds to this caller's audio on the way in and to what it
    /// hears on the way out: the jitter buffer (with the concealment look-back), decoded
    /// audio waiting for the next tick (ptime longer than the mixer's interval), the
    /// mixer's pre-roll, and the pacing of its packets (mixes gathered into a longer
    /// ptime). Between two members alike, it is what a word takes from one to the other.
    pub fn latency(&self) -> Duration {
        let ptime = Duration::from_millis(self.leg.config().ptime_ms as u64);
        let preroll = Duration::from_millis(mixer::input::PREROLL_MS as u64).min(ptime);
        let rate = self.leg.config().pcm_rate() as f64;
        let secs = |samples: usize| Duration::from_secs_f64(samples as f64 / rate);
        let pacing = match self.interval {
            0 => Duration::ZERO,
            n => secs(self.leg.frame_samples().saturating_sub(n)),
        };
        self.leg.stats().delay + secs(self.inbound.len()) + preroll + pacing
    }

    /// The latency when it moved by a millisecond or more since it was last taken here
    /// (the call plane is told only of changes).
    pub fn latency_change(&mut self) -> Option<Duration> {
        let now = self.latency();
        let moved = self
            .reported_latency
            .is_none_or(|last| now.abs_diff(last) >= Duration::from_millis(1));
        if moved {
            self.reported_latency = Some(now);
        }
        moved.then_some(now)
    }

    /// Whether media from the peer has been missing for longer than `timeout` (held calls
    /// are exempt).
    pub fn timed_out(&self, now: Instant, timeout: Duration) -> bool {
        let last = self.leg.last_rx().unwrap_or(self.waiting_since);
        !self.held && now.saturating_duration_since(last) > timeout
    }
}

/// A held call is neither heard nor hears, whatever it was asked to do.
pub fn with_hold(flags: MemberFlags, held: bool) -> MemberFlags {
    MemberFlags {
        speak: flags.speak && !held,
        hear: flags.hear && !held,
        moderator: flags.moderator,
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("remote", &self.leg.remote())
            .field("conference", &self.seat.conference)
            .field("member", &self.seat.member)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtcp_is_told_from_rtp_by_packet_type() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(is_rtcp(&[0x81, 201, 0, 7]));
        assert!(!is_rtcp(&[0x80, 0, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0x80 | 8, 0, 1]));
        assert!(!is_rtcp(&[0x80]));
    }
}
