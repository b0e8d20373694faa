//! The `[sounds]` section: where sounds may come from and how much memory they may take.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SoundsConfig {
    /// Folders whose WAV files may be played by absolute path, besides the prompts folder
    /// (always one). Relative entries are from the directory the server starts in.
    pub folders: Vec<PathBuf>,
    /// Largest WAV file or downloaded media body, in bytes.
    pub max_file_bytes: u64,
    /// Decoded audio held in memory at once, cached or playing, in bytes.
    pub pcm_cache_bytes: usize,
    pub urls: UrlConfig,
}

/// Media fetched over http(s).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UrlConfig {
    /// Hosts (`media.example.com`, `*.example.com`) or URL prefixes
    /// (`https://cdn.example.com/prompts/`) that may be fetched; empty: any host.
    pub allow: Vec<UrlPattern>,
    /// Loopback, private, link-local, CGNAT, multicast and unspecified addresses are refused
    /// unless inside one of these networks (`10.1.2.0/24`, `127.0.0.1`).
    pub allow_networks: Vec<Network>,
    pub timeout_secs: u64,
    pub max_redirects: usize,
    /// Downloaded bodies kept for reuse (least recently used go first), in bytes.
    pub cache_bytes: usize,
}

impl Default for SoundsConfig {
    fn default() -> Self {
        SoundsConfig {
            folders: Vec::new(),
            max_file_bytes: 16 << 20,
            pcm_cache_bytes: 64 << 20,
            urls: UrlConfig::default(),
        }
    }
}

impl Default for UrlConfig {
    fn default() -> Self {
        UrlConfig {
            allow: Vec::new(),
            allow_networks: Vec::new(),
            timeout_secs: 5,
            max_redirects: 3,
            cache_bytes: 64 << 20,
        }
    }
}

/// An allowlist entry: a host name (`*.` matches any subdomain) or a URL prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlPattern {
    Host(String),
    Prefix(String),
}

impl UrlPattern {
    pub fn matches(&self, url: &reqwest::Url) -> bool {
        match self {
            UrlPattern::Prefix(p) => url.as_str().starts_with(p.as_str()),
            UrlPattern::Host(h) => {
                let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
                match h.strip_prefix("*.") {
                    Some(domain) => host.strip_suffix(domain).is_some_and(|s| s.ends_with('.')),
                    None => host == *h,
                }
            }
        }
    }
}

impl std::str::FromStr for UrlPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("http://") || s.starts_with("https://") {
            // Parsed and printed back, so it compares with URLs in their normal form.
            let url = reqwest::Url::parse(s).map_err(|e| format!("{s:?}: {e}"))?;
            return Ok(UrlPattern::Prefix(url.to_string()));
        }
        let host = s.to_ascii_lowercase();
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let plausible = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
        match plausible {
            true => Ok(UrlPattern::Host(host)),
            false => Err(format!(
                "{s:?}: expected a host (media.example.com, *.example.com) or an http(s) URL prefix"
            )),
        }
    }
}

/// A network in CIDR form; a bare address is that address alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network(pub ipnet::IpNet);

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl std::str::FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map(Network)
            .map_err(|_| format!("{s:?}: expected an address or a network like 10.0.0.0/8"))
    }
}

/// Both list entry types are written as strings.
macro_rules! from_string {
    ($t:ty) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}
from_string!(UrlPattern);
from_string!(Network);

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn patterns_match_hosts_subdomains_and_prefixes() {
        let c: UrlConfig = toml::from_str(
            "allow = [\"media.example.com\", \"*.cdn.net\", \"https://x.org/prompts/\"]\n\
             allow_networks = [\"10.1.0.0/16\", \"127.0.0.1\"]",
        )
        .unwrap();
        let allowed = |u: &str| c.allow.iter().any(|p| p.matches(&url(u)));
        assert!(allowed("http://media.example.com/a.wav"));
        assert!(allowed("https://eu.cdn.net/a.wav"));
        assert!(!allowed("https://cdn.net/a.wav"), "*. needs a subdomain");
        assert!(!allowed("https://evilcdn.net/a.wav"));
        assert!(allowed("https://x.org/prompts/a.wav"));
        assert!(!allowed("https://x.org/private/a.wav"));
        assert!(!allowed("https://x.org.evil.com/prompts/a.wav"));
        assert!(c.allow_networks[0].contains("10.1.200.3".parse().unwrap()));
        assert!(c.allow_networks[1].contains("127.0.0.1".parse().unwrap()));
        assert!(!c.allow_networks[1].contains("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn bad_entries_name_the_key() {
        let e = toml::from_str::<UrlConfig>("allow_networks = [\"10.0.0.0/33\"]").unwrap_err();
        assert!(e.to_string().contains("allow_networks"), "{e}");
        let e = toml::from_str::<UrlConfig>("allow = [\"a b\"]").unwrap_err();
        assert!(e.to_string().contains("allow"), "{e}");
    }
}
