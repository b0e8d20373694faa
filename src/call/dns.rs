//! The shell's DNS: asks what [`Locate`] wants to know (SRV, A/AAAA) and feeds the answers
//! back. The system's resolver configuration by default; `[sip] dns_servers` names others
//! (a test's own server on loopback).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use super::locate::{Locate, Query, ServerName, Srv, SrvAnswer};
use crate::sip::Protocol;

/// How long one lookup may take before it counts as failed.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Dns {
    /// Or why there is none (no system configuration): then names do not resolve, and
    /// legs to IP addresses still ring.
    resolver: Result<TokioResolver, String>,
}

impl Dns {
    /// A resolver asking `servers` (UDP, then TCP for truncated answers), or the system's
    /// configured ones when empty, for a SIP endpoint listening on `local`.
    pub fn new(servers: &[SocketAddr], local: IpAddr) -> Self {
        let resolver = resolver(servers, local);
        if let Err(e) = &resolver {
            tracing::error!("{e}: host names of dial targets will not resolve");
        }
        Dns { resolver }
    }

    /// The addresses `server` is tried at, in order (RFC 3263, see [`Locate`]).
    pub async fn locate(
        &self,
        server: &ServerName,
        protocol: Protocol,
    ) -> Result<Vec<SocketAddr>, String> {
        let resolver = self.resolver.as_ref().map_err(Clone::clone)?;
        let mut locate = Locate::new(server, protocol);
        while let Some(query) = locate.query() {
            match query {
                Query::Srv(name) => {
                    let answer = srv(resolver, &name).await;
                    locate.on_srv(answer, super::random::random);
                }
                Query::Addresses(name) => locate.on_addresses(addresses(resolver, &name).await),
            }
        }
        locate.finish()
    }
}

fn resolver(servers: &[SocketAddr], local: IpAddr) -> Result<TokioResolver, String> {
    let mut builder = match servers {
        [] => TokioResolver::builder_tokio().map_err(|e| format!("DNS configuration: {e}"))?,
        servers => {
            let servers = servers.iter().map(|s| name_server(*s)).collect();
            let config = ResolverConfig::from_name_servers(servers);
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        }
    };
    let options = builder.options_mut();
    options.timeout = LOOKUP_TIMEOUT;
    // One name server's silence costs the leg seconds already; no second round.
    options.attempts = 1;
    // Our SIP socket reaches only its own family (an IPv6 one perhaps both): an address of
    // the other would cost the leg a timeout.
    options.ip_strategy = match local {
        IpAddr::V4(_) => LookupIpStrategy::Ipv4Only,
        IpAddr::V6(_) => LookupIpStrategy::Ipv6AndIpv4,
    };
    builder.build().map_err(|e| format!("DNS resolver: {e}"))
}

async fn srv(resolver: &TokioResolver, name: &str) -> SrvAnswer {
    // Fully qualified: the search domains do not apply to a carrier's SRV name.
    let lookup = resolver.srv_lookup(format!("{name}."));
    match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(lookup)) => SrvAnswer::Records(
            lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::SRV(srv) => Some(Srv {
                        priority: srv.priority,
                        weight: srv.weight,
                        port: srv.port,
                        target: srv.target.to_ascii(),
                    }),
                    _ => None,
                })
                .collect(),
        ),
        Ok(Err(e)) if e.is_no_records_found() => SrvAnswer::NoRecords,
        Ok(Err(e)) => SrvAnswer::Failed(format!("{name}: {e}")),
        Err(_) => SrvAnswer::Failed(format!("{name}: no answer in {LOOKUP_TIMEOUT:?}")),
    }
}

async fn addresses(resolver: &TokioResolver, name: &str) -> Result<Vec<IpAddr>, String> {
    match tokio::time::timeout(LOOKUP_TIMEOUT, resolver.lookup_ip(name)).await {
        Ok(Ok(ips)) => Ok(ips.iter().collect()),
        Ok(Err(e)) => Err(format!("{name}: {e}")),
        Err(_) => Err(format!("{name}: no answer in {LOOKUP_TIMEOUT:?}")),
    }
}

fn name_server(addr: SocketAddr) -> NameServerConfig {
    let mut config = NameServerConfig::udp_and_tcp(addr.ip());
    for connection in &mut config.connections {
        connection.port = addr.port();
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_resolve_and_a_name_that_does_not_fails_with_its_cause() {
        let dns = Dns::new(&[], IpAddr::from([127, 0, 0, 1]));
        let localhost = ServerName {
            name: "localhost".into(),
            port: Some(5090),
        };
        let addrs = dns.locate(&localhost, Protocol::Udp).await;
        let addrs = addrs.expect("localhost resolves");
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 5090)
        );

        let invalid = ServerName {
            name: "gateway.invalid".into(),
            port: None,
        };
        let why = dns.locate(&invalid, Protocol::Udp).await;
        let why = why.expect_err("RFC 6761: .invalid never resolves");
        assert!(why.contains("gateway.invalid"), "{why}");
    }
}
