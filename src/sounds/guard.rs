//! Which URLs the server may connect to (media fetches, status webhooks): http(s) only, the
//! allowlist when one is configured, and never a loopback, private, link-local, CGNAT,
//! multicast or unspecified address unless the policy's `allow_networks` names it. Addresses are checked where the connection is
//! made: literal hosts before the request, names by the client's own resolver (so a name
//! cannot resolve to a checked address and then to another), and every redirect again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::config::{Network, UrlPattern};

#[derive(Debug, Clone)]
pub struct UrlPolicy {
    allow: Vec<UrlPattern>,
    networks: Vec<Network>,
    /// The config section the lists come from, named in refusals.
    section: &'static str,
}

impl UrlPolicy {
    pub fn new(allow: &[UrlPattern], networks: &[Network], section: &'static str) -> Self {
        UrlPolicy {
            allow: allow.to_vec(),
            networks: networks.to_vec(),
            section,
        }
    }

    /// What can be told before connecting: the scheme, the allowlist, a literal address.
    pub fn check(&self, url: &Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err("only http and https URLs are fetched".into());
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(url)) {
            return Err(format!("the URL is not in {}.allow", self.section));
        }
        let host = url.host_str().ok_or("the URL has no host")?;
        match host.trim_start_matches('[').trim_end_matches(']').parse() {
            Ok(ip) => self.address(ip),
            // A name: its addresses are checked when it is resolved.
            Err(_) => Ok(()),
        }
    }

    /// Public addresses, and others only inside an allowed network.
    pub fn address(&self, ip: IpAddr) -> Result<(), String> {
        if is_public(ip) || self.networks.iter().any(|n| n.contains(ip)) {
            return Ok(());
        }
        Err(format!(
            "{ip} is not a public address (allow it in {}.allow_networks)",
            self.section
        ))
    }

    /// A client that only ever connects where this policy allows.
    pub fn client(self: &Arc<Self>, timeout: Duration, max_redirects: usize) -> reqwest::Client {
        let policy = self.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                return attempt.error("too many redirects");
            }
            match policy.check(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(e),
            }
        });
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A proxy would resolve names itself, out of reach of the check.
            .no_proxy()
            .redirect(redirects)
            .dns_resolver(Arc::new(Checked(self.clone())))
            .build()
            .unwrap_or_default()
    }
}

/// Resolves names and keeps only the addresses the policy allows.
struct Checked(Arc<UrlPolicy>);

impl Resolve for Checked {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| policy.address(a.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                let e = format!("{}: no address that may be fetched", name.as_str());
                return Err(e.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || (a == 192 && b == 0 && c == 0); // IETF 192.0.0/24
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // IPv4-mapped and -compatible addresses, NAT64 and 6to4 reach an IPv4 address.
    if let Some(v4) = ip.to_ipv4() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return is_public_v4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
    }
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::from(((s[1] as u32) << 16) | s[2] as u32));
    }
    let special = ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8); // documentation
    !special
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &str) -> UrlPolicy {
        let c: crate::sounds::config::UrlConfig = toml::from_str(allow).unwrap();
        UrlPolicy::new(&c.allow, &c.allow_networks, "sounds.urls")
    }

    fn checked(p: &UrlPolicy, url: &str) -> Result<(), String> {
        p.check(&Url::parse(url).unwrap())
    }

    #[test]
    fn internal_addresses_are_refused_public_ones_pass() {
        let p = policy("");
        for bad in [
            "http://127.0.0.1:8000/metrics",
            "http://10.1.2.3/a.wav",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://224.0.0.1/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a00:1::]/",
            "file:///etc/passwd",
            "ftp://example.com/a.wav",
        ] {
            assert!(checked(&p, bad).is_err(), "{bad}");
        }
        for good in [
            "http://93.184.216.34/a.wav",
            "https://[2606:4700::1111]/a.wav",
            "https://media.example.com/a.wav",
        ] {
            assert_eq!(checked(&p, good), Ok(()), "{good}");
        }
    }

    #[test]
    fn allowed_networks_and_the_allowlist_apply() {
        let p = policy("allow_networks = [\"127.0.0.1\"]");
        assert_eq!(checked(&p, "http://127.0.0.1:9/a.wav"), Ok(()));
        assert!(checked(&p, "http://127.0.0.2:9/a.wav").is_err());
        let p = policy("allow = [\"media.example.com\"]");
        assert_eq!(checked(&p, "https://media.example.com/a.wav"), Ok(()));
        let e = checked(&p, "https://other.example.com/a.wav").unwrap_err();
        assert!(e.contains("sounds.urls.allow"), "{e}");
    }

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_are_not_connected() {
        let resolver = Checked(Arc::new(policy("")));
        let name: Name = "localhost".parse().unwrap();
        let e = resolver.resolve(name).await.err().expect("refused");
        assert!(e.to_string().contains("no address"), "{e}");
    }
}
