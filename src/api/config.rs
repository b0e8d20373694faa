//! The `[api]` section of the server config file.

use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub tokens: Vec<TokenEntry>,
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
        }
    }
}

impl ApiConfig {
    /// The account a token is bound to, if the token is known.
    pub fn account_for(&self, token: &str) -> Option<&str> {
        self.tokens
            .iter()
            .find(|t| t.token == token)
            .map(|t| t.account_id.as_str())
    }
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
