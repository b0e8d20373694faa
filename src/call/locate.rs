//! Where a SIP request to a host name goes (RFC 3263 §4.2), as a state machine fed with DNS
//! answers: the shell (`super::dns`) asks what [`Locate::query`] says and hands the answers
//! back; nothing here waits or touches a socket.
//!
//! A name with an explicit port is looked up as A/AAAA at that port. Without one, SRV
//! `_sip._udp.<name>` (or `_sip._tcp`, by the leg's transport) is asked first: its targets in
//! priority order, weighted at random within a priority (RFC 2782), each looked up as A/AAAA
//! at its record's port. No SRV record: A/AAAA at 5060, as before SRV existed. The addresses
//! come out in the order they are to be tried; the plane tries the next on a timeout or 503
//! before the next gateway.
//!
//! Bounds: a remote answer can list any number of records and addresses, so at most
//! [`MAX_TARGETS`] SRV targets are looked up and [`MAX_ADDRESSES`] addresses kept.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use crate::sip::Protocol;

/// SRV targets looked up for one host (each costs a query, and each failing one a timeout).
pub const MAX_TARGETS: usize = 8;
/// Addresses kept for one host: the servers one leg may try in turn.
pub const MAX_ADDRESSES: usize = 16;
/// SIP's port when neither the URI nor SRV gives one.
pub const SIP_PORT: u16 = 5060;

/// A SIP server named by DNS, as a URI or a gateway names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerName {
    pub name: String,
    /// Given explicitly: no SRV lookup then.
    pub port: Option<u16>,
}

/// One SRV record of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// `.` (empty here): the service is decidedly not available there (RFC 2782).
    pub target: String,
}

/// What the shell asks DNS next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// SRV records of this name.
    Srv(String),
    /// A and AAAA records of this name.
    Addresses(String),
}

/// The answer to [`Query::Srv`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrvAnswer {
    Records(Vec<Srv>),
    /// NXDOMAIN, or the name without SRV records: A/AAAA at 5060 instead.
    NoRecords,
    /// The lookup failed (timeout, SERVFAIL): the host is not reached.
    Failed(String),
}

/// One host being located.
#[derive(Debug)]
pub struct Locate {
    host: String,
    srv_name: Option<String>,
    /// Names still to look up as A/AAAA, with the port their addresses take.
    pending: VecDeque<(String, u16)>,
    found: Vec<SocketAddr>,
    /// Why lookups failed, for the log when nothing was found.
    errors: Vec<String>,
}

impl Locate {
    pub fn new(server: &ServerName, protocol: Protocol) -> Self {
        let name = server.name.trim_end_matches('.').to_string();
        let (srv_name, pending) = match server.port {
            Some(port) => (None, VecDeque::from([(name.clone(), port)])),
            None => {
                let proto = match protocol {
                    Protocol::Udp => "udp",
                    Protocol::Tcp => "tcp",
                };
                (Some(format!("_sip._{proto}.{name}")), VecDeque::new())
            }
        };
        Locate {
            host: name,
            srv_name,
            pending,
            found: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// The next lookup to make, `None` once done (then [`Locate::finish`]).
    pub fn query(&self) -> Option<Query> {
        if self.found.len() >= MAX_ADDRESSES {
            return None;
        }
        match (&self.srv_name, self.pending.front()) {
            (Some(name), _) => Some(Query::Srv(name.clone())),
            (None, Some((name, _))) => Some(Query::Addresses(name.clone())),
            (None, None) => None,
        }
    }

    /// The answer to [`Query::Srv`]; `random` orders targets of equal priority.
    pub fn on_srv(&mut self, answer: SrvAnswer, random: impl FnMut() -> u64) {
        if self.srv_name.take().is_none() {
            return;
        }
        match answer {
            SrvAnswer::Records(records) => {
                let targets = srv_order(records, random).into_iter();
                // A trailing `.` names the same host as none.
                let targets = targets.map(|s| (s.target.trim_end_matches('.').to_string(), s.port));
                self.pending.extend(targets.take(MAX_TARGETS));
                if self.pending.is_empty() {
                    self.errors
                        .push(format!("{}: SRV says no SIP service", self.host));
                }
            }
            SrvAnswer::NoRecords => self.pending.push_back((self.host.clone(), SIP_PORT)),
            SrvAnswer::Failed(why) => self.errors.push(why),
        }
    }

    /// The answer to [`Query::Addresses`]: its addresses, or why there are none. A target
    /// that does not resolve is skipped; the next may.
    pub fn on_addresses(&mut self, answer: Result<Vec<IpAddr>, String>) {
        let Some((_, port)) = self.pending.pop_front() else {
            return;
        };
        match answer {
            Ok(ips) => {
                let room = MAX_ADDRESSES - self.found.len();
                let new = ips.into_iter().map(|ip| SocketAddr::new(ip, port));
                let new = new.filter(|a| !self.found.contains(a)).collect::<Vec<_>>();
                self.found.extend(new.into_iter().take(room));
            }
            Err(why) => self.errors.push(why),
        }
    }

    /// The addresses in the order they are tried, or why there is none.
    pub fn finish(self) -> Result<Vec<SocketAddr>, String> {
        if self.found.is_empty() {
            let why = match self.errors.is_empty() {
                true => format!("{}: no address", self.host),
                false => self.errors.join("; "),
            };
            return Err(why);
        }
        Ok(self.found)
    }
}

/// RFC 2782's order: lowest priority first; within a priority, repeatedly pick a record
/// with probability proportional to its weight (weight 0 records have a small chance, by
/// coming first in the running sum). Records with target `.` are dropped.
fn srv_order(mut records: Vec<Srv>, mut random: impl FnMut() -> u64) -> Vec<Srv> {
    records.retain(|r| !r.target.is_empty() && r.target != ".");
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut ordered = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let priority = records[0].priority;
        let same = records
            .iter()
            .take_while(|r| r.priority == priority)
            .count();
        let total: u64 = records[..same].iter().map(|r| u64::from(r.weight)).sum();
        let draw = random() % (total + 1);
        let mut sum = 0;
        let pick = records[..same]
            .iter()
            .position(|r| {
                sum += u64::from(r.weight);
                sum >= draw
            })
            .unwrap_or(0);
        ordered.push(records.remove(pick));
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    fn named(name: &str, port: Option<u16>) -> ServerName {
        ServerName {
            name: name.into(),
            port,
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    /// Runs `locate` to its end with `dns` answering, and the queries it made.
    fn run(
        mut locate: Locate,
        mut dns: impl FnMut(&Query) -> Result<Vec<IpAddr>, SrvAnswer>,
    ) -> (Vec<Query>, Result<Vec<SocketAddr>, String>) {
        let mut asked = Vec::new();
        while let Some(q) = locate.query() {
            assert!(asked.len() < 20, "bounded: {asked:?}");
            match (&q, dns(&q)) {
                (Query::Srv(_), Err(answer)) => locate.on_srv(answer, || 0),
                (Query::Addresses(_), Ok(ips)) => locate.on_addresses(Ok(ips)),
                (Query::Addresses(name), Err(_)) => {
                    locate.on_addresses(Err(format!("{name}: NXDOMAIN")))
                }
                (Query::Srv(_), Ok(_)) => unreachable!("SRV is answered with SrvAnswer"),
            }
            asked.push(q);
        }
        (asked, locate.finish())
    }

    #[test]
    fn srv_targets_are_tried_by_priority_each_at_its_records_port() {
        let locate = Locate::new(&named("trunk.test", None), Protocol::Udp);
        let (asked, found) = run(locate, |q| match q {
            Query::Srv(_) => Err(SrvAnswer::Records(vec![
                srv(20, 0, 5082, "b.trunk.test."),
                srv(10, 0, 5081, "a.trunk.test."),
            ])),
            Query::Addresses(name) if name == "a.trunk.test" => Ok(vec![ip(1)]),
            Query::Addresses(_) => Ok(vec![ip(2)]),
        });
        assert_eq!(
            asked,
            [
                Query::Srv("_sip._udp.trunk.test".into()),
                Query::Addresses("a.trunk.test".into()),
                Query::Addresses("b.trunk.test".into()),
            ]
        );
        let a = SocketAddr::new(ip(1), 5081);
        let b = SocketAddr::new(ip(2), 5082);
        assert_eq!(found, Ok(vec![a, b]));
    }

    #[test]
    fn a_tcp_leg_asks_for_sip_over_tcp() {
        let locate = Locate::new(&named("trunk.test", None), Protocol::Tcp);
        assert_eq!(
            locate.query(),
            Some(Query::Srv("_sip._tcp.trunk.test".into()))
        );
    }

    #[test]
    fn no_srv_record_falls_back_to_the_hosts_address_at_5060() {
        let locate = Locate::new(&named("pbx.test", None), Protocol::Udp);
        let (asked, found) = run(locate, |q| match q {
            Query::Srv(_) => Err(SrvAnswer::NoRecords),
            Query::Addresses(_) => Ok(vec![ip(7)]),
        });
        assert_eq!(asked[1], Query::Addresses("pbx.test".into()));
        assert_eq!(found, Ok(vec![SocketAddr::new(ip(7), 5060)]));
    }

    #[test]
    fn an_explicit_port_skips_srv() {
        let locate = Locate::new(&named("pbx.test", Some(5080)), Protocol::Udp);
        let (asked, found) = run(locate, |_| Ok(vec![ip(7)]));
        assert_eq!(asked, [Query::Addresses("pbx.test".into())]);
        assert_eq!(found, Ok(vec![SocketAddr::new(ip(7), 5080)]));
    }

    #[test]
    fn a_failed_srv_lookup_or_no_service_reaches_nothing_and_says_why() {
        let locate = Locate::new(&named("pbx.test", None), Protocol::Udp);
        let failed = SrvAnswer::Failed("pbx.test: no answer in 3s".into());
        let (asked, found) = run(locate, |_| Err(failed.clone()));
        assert_eq!(asked.len(), 1, "no A lookup after a failed SRV one");
        assert_eq!(found, Err("pbx.test: no answer in 3s".into()));

        let locate = Locate::new(&named("pbx.test", None), Protocol::Udp);
        let none = SrvAnswer::Records(vec![srv(0, 0, 0, ".")]);
        let (_, found) = run(locate, |_| Err(none.clone()));
        assert_eq!(found, Err("pbx.test: SRV says no SIP service".into()));
    }

    #[test]
    fn a_target_that_does_not_resolve_is_skipped() {
        let locate = Locate::new(&named("trunk.test", None), Protocol::Udp);
        let (_, found) = run(locate, |q| match q {
            Query::Srv(_) => Err(SrvAnswer::Records(vec![
                srv(10, 0, 5081, "gone.test"),
                srv(20, 0, 5082, "b.test"),
            ])),
            Query::Addresses(name) if name == "gone.test" => Err(SrvAnswer::NoRecords),
            Query::Addresses(_) => Ok(vec![ip(2)]),
        });
        assert_eq!(found, Ok(vec![SocketAddr::new(ip(2), 5082)]));
    }

    #[test]
    fn a_huge_answer_costs_at_most_max_targets_lookups_and_max_addresses() {
        let locate = Locate::new(&named("big.test", None), Protocol::Udp);
        let records = (0..1000).map(|i| srv(i, 0, 5060, &format!("t{i}.test")));
        let records = SrvAnswer::Records(records.collect());
        let (asked, found) = run(locate, |q| match q {
            Query::Srv(_) => Err(records.clone()),
            Query::Addresses(_) => Ok((0..=255).map(ip).collect()),
        });
        assert!(asked.len() <= 1 + MAX_TARGETS, "{} queries", asked.len());
        assert_eq!(found.map(|a| a.len()), Ok(MAX_ADDRESSES));
    }

    #[test]
    fn weights_share_the_first_place_in_proportion_within_a_priority() {
        let records = || {
            vec![
                srv(10, 1, 5060, "light"),
                srv(10, 3, 5060, "heavy"),
                srv(20, 100, 5060, "backup"),
            ]
        };
        let mut random = crate::test_rng::seeded(0x9e37_79b9_7f4a_7c15);
        let mut heavy_first = 0;
        for _ in 0..4000 {
            let order = srv_order(records(), &mut random);
            assert_eq!(
                order[2].target, "backup",
                "a lower priority never comes first"
            );
            heavy_first += usize::from(order[0].target == "heavy");
        }
        // RFC 2782 draws from 0 to the sum of weights inclusive: light takes draws 0 and 1,
        // heavy 2 to 4, so heavy leads 3 times in 5.
        assert!((2200..=2600).contains(&heavy_first), "{heavy_first}");
    }

    #[test]
    fn weight_zero_records_are_rarely_first_beside_weighted_ones() {
        let records = || vec![srv(10, 0, 5060, "zero"), srv(10, 10, 5060, "ten")];
        let mut n = 0u64;
        let mut zero_first = 0;
        for _ in 0..1100 {
            let order = srv_order(records(), || {
                n += 1;
                n
            });
            zero_first += usize::from(order[0].target == "zero");
        }
        // Only a draw of 0 (1 in 11) picks the zero-weight record.
        assert_eq!(zero_first, 100);
    }
}
