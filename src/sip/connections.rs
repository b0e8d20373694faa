//! SIP over TCP, sans-IO: which connections are accepted (caps per source address and in
//! all) and when one has been silent or slow too long.
//!
//! A connection must complete its first message within the header timeout, and any message
//! it begins must be complete within the header timeout of its first byte (slowloris). Once
//! it has spoken, it may stay idle (CRLF keep-alives count as activity) for the idle timeout,
//! after which it is closed unless calls or transactions still use it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// `[sip.tcp]`: see docs/security.md.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpLimits {
    /// Connections open at once; lowered at start to what the file-descriptor limit allows
    /// beside the RTP ports.
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    pub idle_timeout_secs: u64,
    pub header_timeout_secs: u64,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_connections: 8192,
            max_connections_per_source: 1000,
            idle_timeout_secs: 120,
            header_timeout_secs: 10,
        }
    }
}

impl TcpLimits {
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            header: Duration::from_secs(self.header_timeout_secs),
            idle: Duration::from_secs(self.idle_timeout_secs),
        }
    }
}

/// Why a connection was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections` are open.
    Full,
    /// `max_connections_per_source` are open from this address.
    SourceFull,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::Full => "connection limit reached",
            Refused::SourceFull => "per-source connection limit reached",
        })
    }
}

/// Open connections, counted per source address (entries go when their count reaches zero).
#[derive(Debug)]
pub struct Connections {
    max: usize,
    per_source: usize,
    open: HashMap<IpAddr, usize>,
    total: usize,
}

impl Connections {
    pub fn new(limits: &TcpLimits) -> Self {
        Connections {
            max: limits.max_connections,
            per_source: limits.max_connections_per_source,
            open: HashMap::new(),
            total: 0,
        }
    }

    /// Counts a new connection from `ip`, if the caps allow it.
    pub fn open(&mut self, ip: IpAddr) -> Result<(), Refused> {
        if self.total >= self.max {
            return Err(Refused::Full);
        }
        let n = self.open.entry(ip).or_default();
        if *n >= self.per_source {
            return Err(Refused::SourceFull);
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    pub fn close(&mut self, ip: IpAddr) {
        if let Some(n) = self.open.get_mut(&ip) {
            *n -= 1;
            self.total -= 1;
            if *n == 0 {
                self.open.remove(&ip);
            }
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
}

/// Which timeout a deadline stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A message (or the first one) was not completed in time: close.
    Header,
    /// Nothing arrived for the idle timeout: close unless the connection is in use.
    Idle,
}

/// The deadlines of one connection.
#[derive(Debug, Clone)]
pub struct ConnClock {
    timeouts: Timeouts,
    opened: Instant,
    /// The first byte of the message still incomplete.
    partial_since: Option<Instant>,
    /// The last activity, once a whole message has arrived.
    active: Option<Instant>,
}

impl ConnClock {
    pub fn new(now: Instant, timeouts: Timeouts) -> Self {
        ConnClock {
            timeouts,
            opened: now,
            partial_since: None,
            active: None,
        }
    }

    /// Bytes arrived: `messages` were completed, and `partial` says a next one has begun.
    pub fn on_read(&mut self, now: Instant, messages: usize, partial: bool) {
        if messages > 0 || self.active.is_some() {
            self.active = Some(now);
        }
        self.partial_since = match (partial, messages) {
            (false, _) => None,
            (true, 0) => self.partial_since.or(Some(now)),
            (true, _) => Some(now),
        };
    }

    /// The idle timeout passed but the connection is still in use: start it again.
    pub fn touch(&mut self, now: Instant) {
        self.active = Some(now);
    }

    pub fn deadline(&self) -> (Instant, Expiry) {
        match (self.partial_since, self.active) {
            (Some(first_byte), _) => (first_byte + self.timeouts.header, Expiry::Header),
            (None, None) => (self.opened + self.timeouts.header, Expiry::Header),
            (None, Some(at)) => (at + self.timeouts.idle, Expiry::Idle),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(120),
    };
    const S: Duration = Duration::from_secs(1);

    #[test]
    fn caps_per_source_and_in_all_and_closing_frees_a_slot() {
        let mut c = Connections::new(&TcpLimits {
            max_connections: 3,
            max_connections_per_source: 2,
            ..TcpLimits::default()
        });
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert_eq!(c.open(a), Ok(()));
        assert_eq!(c.open(a), Ok(()));
        assert_eq!(c.open(a), Err(Refused::SourceFull));
        assert_eq!(c.open(b), Ok(()));
        assert_eq!(c.open(b), Err(Refused::Full));
        c.close(a);
        assert_eq!(c.open(b), Ok(()));
        assert_eq!(c.total(), 3);
        for ip in [a, b, b] {
            c.close(ip);
        }
        assert_eq!(c.total(), 0);
        assert!(
            c.open.is_empty(),
            "no entry is kept for a source with nothing open"
        );
    }

    #[test]
    fn a_silent_new_connection_must_speak_within_the_header_timeout() {
        let t0 = Instant::now();
        let mut clock = ConnClock::new(t0, TIMEOUTS);
        assert_eq!(clock.deadline(), (t0 + 10 * S, Expiry::Header));
        clock.on_read(t0 + S, 0, false);
        assert_eq!(
            clock.deadline(),
            (t0 + 10 * S, Expiry::Header),
            "keep-alives before any message do not buy time"
        );
    }

    #[test]
    fn a_trickled_message_must_complete_within_the_header_timeout_of_its_first_byte() {
        let t0 = Instant::now();
        let mut clock = ConnClock::new(t0, TIMEOUTS);
        clock.on_read(t0, 1, false);
        clock.on_read(t0 + 50 * S, 0, true);
        for s in 51..59 {
            clock.on_read(t0 + s * S, 0, true);
        }
        assert_eq!(clock.deadline(), (t0 + 60 * S, Expiry::Header));
        clock.on_read(t0 + 59 * S, 1, true);
        assert_eq!(
            clock.deadline(),
            (t0 + 69 * S, Expiry::Header),
            "the next message's clock starts when it begins"
        );
    }

    #[test]
    fn after_a_message_the_idle_timeout_runs_from_the_last_activity() {
        let t0 = Instant::now();
        let mut clock = ConnClock::new(t0, TIMEOUTS);
        clock.on_read(t0 + S, 1, false);
        assert_eq!(clock.deadline(), (t0 + 121 * S, Expiry::Idle));
        clock.on_read(t0 + 100 * S, 0, false);
        assert_eq!(
            clock.deadline(),
            (t0 + 220 * S, Expiry::Idle),
            "a keep-alive"
        );
        clock.touch(t0 + 220 * S);
        assert_eq!(clock.deadline(), (t0 + 340 * S, Expiry::Idle));
    }
}
