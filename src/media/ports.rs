//! RTP port allocation: an even port for RTP and the odd one above it for RTCP, drawn at
//! random from a free list of the configured range's pairs, so the next call's port cannot
//! be guessed from this one's. Taking a pair is O(1); an empty list fails at once (the
//! INVITE gets 503) instead of trying every port. A pair some other program holds is set
//! aside for a while rather than tried on every call. A pair returns to the list when its
//! [`PortLease`] drops, after its sockets closed (the media worker that owns them drops both).

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Pairs tried per call before giving up (each failed one is set aside).
const BIND_ATTEMPTS: usize = 4;
/// How long a pair whose port another program held stays out of the list.
const SET_ASIDE: Duration = Duration::from_secs(60);

/// A bound RTP/RTCP socket pair and its lease on the pool.
pub struct RtpSockets {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub lease: PortLease,
}

impl RtpSockets {
    /// A pair from outside any pool (tests bind their own ports).
    pub fn unpooled(rtp: UdpSocket, rtcp: UdpSocket) -> Self {
        RtpSockets {
            rtp,
            rtcp,
            lease: PortLease {
                port: 0,
                pairs: Weak::new(),
            },
        }
    }

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

/// A pair taken from the pool; dropping it gives the pair back.
pub struct PortLease {
    port: u16,
    pairs: Weak<Mutex<Pairs>>,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Some(pairs) = self.pairs.upgrade() {
            lock(&pairs).free.push(self.port);
        }
    }
}

/// Why no pair could be had.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("every RTP port pair of {0:?} is in use")]
    Exhausted(RangeInclusive<u16>),
    /// Not the ports' fault (out of file descriptors, ...).
    #[error("binding an RTP port: {0}")]
    Bind(io::Error),
}

/// The free list, shared with the leases.
struct Pairs {
    /// Even ports whose pair is free.
    free: Vec<u16>,
    /// Pairs another program held, and when to try them again.
    aside: VecDeque<(u16, Instant)>,
    /// Keyed from the OS's randomness: draws an attacker cannot predict.
    keys: RandomState,
    draws: u64,
}

impl Pairs {
    fn new(range: &RangeInclusive<u16>) -> Self {
        let first = range.start().saturating_add(range.start() & 1);
        let free = (first..*range.end())
            .step_by(2)
            .filter(|p| p.checked_add(1).is_some_and(|odd| odd <= *range.end()))
            .collect();
        Pairs {
            free,
            aside: VecDeque::new(),
            keys: RandomState::new(),
            draws: 0,
        }
    }

    /// A random free pair, O(1); pairs set aside long enough are back first.
    fn take(&mut self, now: Instant) -> Option<u16> {
        while let Some(&(port, until)) = self.aside.front()
            && until <= now
        {
            self.aside.pop_front();
            self.free.push(port);
        }
        if self.free.is_empty() {
            return None;
        }
        self.draws += 1;
        let i = (self.keys.hash_one(self.draws) % self.free.len() as u64) as usize;
        Some(self.free.swap_remove(i))
    }

    fn set_aside(&mut self, port: u16, now: Instant) {
        self.aside.push_back((port, now + SET_ASIDE));
    }
}

#[derive(Clone)]
pub struct PortPool {
    ip: IpAddr,
    range: RangeInclusive<u16>,
    pairs: Arc<Mutex<Pairs>>,
}

impl PortPool {
    pub fn new(ip: IpAddr, range: RangeInclusive<u16>) -> Self {
        let pairs = Arc::new(Mutex::new(Pairs::new(&range)));
        PortPool { ip, range, pairs }
    }

    /// Binds a random free pair.
    pub fn allocate(&self, now: Instant) -> Result<RtpSockets, PortError> {
        let mut pairs = lock(&self.pairs);
        for _ in 0..BIND_ATTEMPTS {
            let Some(port) = pairs.take(now) else {
                break;
            };
            match bind_pair(self.ip, port) {
                Ok((rtp, rtcp)) => {
                    let lease = PortLease {
                        port,
                        pairs: Arc::downgrade(&self.pairs),
                    };
                    return Ok(RtpSockets { rtp, rtcp, lease });
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    tracing::debug!(port, "RTP port pair held elsewhere: set aside");
                    pairs.set_aside(port, now);
                }
                Err(e) => {
                    pairs.free.push(port);
                    return Err(PortError::Bind(e));
                }
            }
        }
        Err(PortError::Exhausted(self.range.clone()))
    }

    /// Pairs free now (not counting those set aside).
    pub fn free(&self) -> usize {
        lock(&self.pairs).free.len()
    }
}

fn bind_pair(ip: IpAddr, port: u16) -> io::Result<(UdpSocket, UdpSocket)> {
    let rtp = UdpSocket::bind(SocketAddr::new(ip, port))?;
    let rtcp = UdpSocket::bind(SocketAddr::new(ip, port + 1))?;
    Ok((rtp, rtcp))
}

/// The list stays consistent whatever panicked while holding it (every update is one push
/// or one swap_remove), so a poisoned lock is used as is.
fn lock(pairs: &Mutex<Pairs>) -> std::sync::MutexGuard<'_, Pairs> {
    pairs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_the_even_ports_with_their_odd_neighbour_in_range() {
        let mut all: Vec<u16> = Pairs::new(&(41001..=41010)).free;
        all.sort();
        assert_eq!(all, vec![41002, 41004, 41006, 41008]);
        let mut all: Vec<u16> = Pairs::new(&(41000..=41003)).free;
        all.sort();
        assert_eq!(all, vec![41000, 41002]);
        assert_eq!(Pairs::new(&(65530..=65535)).free.len(), 3);
    }

    #[test]
    fn pairs_are_drawn_at_random_until_none_is_left() {
        let t = Instant::now();
        let mut pairs = Pairs::new(&(20000..=20199));
        let drawn: Vec<u16> = std::iter::from_fn(|| pairs.take(t)).collect();
        assert_eq!(drawn.len(), 100);
        let mut sorted = drawn.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 100, "each pair once");
        // Not handed out in order: a port does not tell the next one.
        let steps_of_two = drawn.windows(2).filter(|w| w[1] == w[0] + 2).count();
        assert!(steps_of_two < 20, "{steps_of_two} sequential steps");
        // Empty: no pair, at once.
        assert_eq!(pairs.take(t), None);
    }

    #[test]
    fn a_pair_set_aside_returns_after_a_while() {
        let t = Instant::now();
        let mut pairs = Pairs::new(&(20000..=20001));
        let port = pairs.take(t).unwrap();
        pairs.set_aside(port, t);
        assert_eq!(pairs.take(t + SET_ASIDE - Duration::from_secs(1)), None);
        assert_eq!(pairs.take(t + SET_ASIDE), Some(port));
    }

    /// A range of `pairs` free pairs on 127.0.0.1 below the ephemeral ports, so neither
    /// the kernel nor other tests hand them out meanwhile.
    fn free_range(pairs: u16) -> RangeInclusive<u16> {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let seed = RandomState::new().hash_one(std::process::id());
        for attempt in 0..50u64 {
            let base = 30000 + 2 * ((seed + attempt * 97) % 400) as u16;
            let range = base..=base + 2 * pairs - 1;
            let held: Result<Vec<_>, _> = range
                .clone()
                .map(|p| UdpSocket::bind(SocketAddr::new(ip, p)))
                .collect();
            if held.is_ok() {
                return range;
            }
        }
        panic!("no free port range");
    }

    #[test]
    fn leases_return_pairs_and_busy_ports_are_set_aside() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let range = free_range(3);
        let pool = PortPool::new(ip, range.clone());
        // Another program holds the odd port of one pair.
        let squatter = UdpSocket::bind(SocketAddr::new(ip, range.start() + 3)).unwrap();
        let t = Instant::now();
        let a = pool.allocate(t).unwrap();
        let b = pool.allocate(t).unwrap();
        assert_eq!(a.port() % 2, 0);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), a.port() + 1);
        assert_ne!(a.port(), b.port());
        let held = [a.port(), b.port()];
        assert!(!held.contains(&(range.start() + 2)), "the busy pair");
        assert!(matches!(pool.allocate(t), Err(PortError::Exhausted(_))));
        assert_eq!(pool.free(), 0, "the busy pair is set aside, not free");
        // A lease dropped (its sockets closed first) gives its pair back.
        drop(b);
        assert_eq!(pool.free(), 1);
        let c = pool.allocate(t).unwrap();
        assert_eq!(c.port(), held[1]);
        // Once the other program is gone, the pair set aside comes back in time.
        drop(squatter);
        assert!(pool.allocate(t).is_err());
        let d = pool.allocate(t + SET_ASIDE).unwrap();
        assert_eq!(d.port(), range.start() + 2);
        drop((a, c, d));
        assert_eq!(pool.free(), 3);
    }
}
