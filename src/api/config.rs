//! The `[api]` section of the server config file.

use serde::Deserialize;
use std::net::SocketAddr;

use crate::sounds::config::{Network, UrlPattern};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub tokens: Vec<TokenEntry>,
    /// Requests a token may make at once, and how many it regains per second.
    pub burst: u32,
    pub refill_per_second: u32,
    /// Open HTTP connections at once, from everyone and from one address; more are closed
    /// as they are accepted.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// A connection must send a complete request head within this time of opening or of
    /// its previous response: slow headers and idle keep-alive connections are closed.
    pub header_timeout_secs: u64,
    /// A request (body included) must be answered within this time (408 after).
    pub request_timeout_secs: u64,
    /// WebSocket clients at once; more are refused with 503.
    pub max_websockets: usize,
    /// A WebSocket closed unless it makes an authenticated subscription within this time.
    pub ws_auth_secs: u64,
    /// Bindings one WebSocket may subscribe to.
    pub max_ws_bindings: usize,
    pub webhooks: WebhooksConfig,
}

/// `[api.webhooks]`: where status webhooks may be delivered and how hard to try.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Hosts or URL prefixes a hook may name; empty: any host.
    pub allow: Vec<UrlPattern>,
    /// Internal networks (loopback, private, link-local...) a hook may reach; none by default,
    /// so a tenant cannot make the server post to the services beside it.
    pub allow_networks: Vec<Network>,
}

/// An `X-Auth-Token` value and the one account it may act on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub token: String,
    pub account_id: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            tokens: Vec::new(),
            burst: 100,
            refill_per_second: 10,
            max_connections: 256,
            max_connections_per_ip: 32,
            header_timeout_secs: 10,
            request_timeout_secs: 30,
            max_websockets: 128,
            ws_auth_secs: 5,
            max_ws_bindings: 32,
            webhooks: WebhooksConfig::default(),
        }
    }
}

impl ApiConfig {
    /// The account a token is bound to, if the token is known.
    pub fn account_for(&self, token: &str) -> Option<&str> {
        self.tokens
            .iter()
            .find(|t| same(t.token.as_bytes(), token.as_bytes()))
            .map(|t| t.account_id.as_str())
    }
}

/// Compares without stopping at the first differing byte, so response timing does not reveal
/// how much of a guessed token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens_from_toml() {
        let c: ApiConfig = toml::from_str(
            "listen = \"0.0.0.0:8080\"\n[[tokens]]\ntoken = \"t1\"\naccount_id = \"acc1\"\n",
        )
        .unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.account_for("t1"), Some("acc1"));
        assert_eq!(c.account_for("t2"), None);
    }
}
