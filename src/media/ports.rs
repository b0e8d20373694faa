//! RTP port allocation: an even port for RTP and the odd one above it for RTCP,
//! taken round-robin from the configured range so a just-freed port is not reused at once.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;

/// A bound RTP/RTCP socket pair.
pub struct RtpSockets {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
}

impl RtpSockets {
    /// The RTP address (RTCP is on the next port).
    pub fn local_addr(&self) -> SocketAddr {
        self.rtp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }
}

pub struct PortPool {
    ip: IpAddr,
    range: RangeInclusive<u16>,
    next: u16,
}

impl PortPool {
    pub fn new(ip: IpAddr, range: RangeInclusive<u16>) -> Self {
        let next = first_even(*range.start());
        PortPool { ip, range, next }
    }

    /// Binds the next free pair, trying each pair of the range at most once.
    pub fn allocate(&mut self) -> io::Result<RtpSockets> {
        let pairs = (*self.range.end() - *self.range.start()).div_ceil(2).max(1);
        for _ in 0..pairs {
            let port = self.next;
            self.advance();
            if port.checked_add(1).is_none_or(|p| p > *self.range.end()) {
                continue;
            }
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(self.ip, port)) else {
                continue;
            };
            let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(self.ip, port + 1)) else {
                continue;
            };
            return Ok(RtpSockets { rtp, rtcp });
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("no free RTP port pair in {:?}", self.range),
        ))
    }

    fn advance(&mut self) {
        self.next = match self.next.checked_add(2) {
            Some(p) if p < *self.range.end() => p,
            _ => first_even(*self.range.start()),
        };
    }
}

fn first_even(p: u16) -> u16 {
    p + (p & 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_odd_and_skip_busy_ports() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let mut pool = PortPool::new(ip, 41001..=41010);
        let a = pool.allocate().unwrap();
        assert_eq!(a.port() % 2, 0);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), a.port() + 1);
        let b = pool.allocate().unwrap();
        assert_ne!(a.port(), b.port());
        let held: Vec<_> = (0..2).map(|_| pool.allocate().unwrap()).collect();
        assert_eq!(held.len(), 2);
        // Four pairs fit in 41002..=41009; while all are held the pool says so.
        assert!(pool.allocate().is_err());
        drop(b);
        assert!(pool.allocate().is_ok());
    }
}
