//! Several Chorus nodes behind one SIP entry point (Kamailio): a conference lives on one
//! node, its focus, which claims it in a shared Redis registry while the room lives.
//! [`focus`] is the claim logic (sans-IO), [`registry`] its Redis shell; [`bus`] and
//! [`relay`] carry conference events between the nodes the same way.

pub mod bus;
pub mod focus;
pub mod forward;
pub mod registry;
pub mod relay;

use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// `[cluster]`: absent for a single node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster (the registry and `_read_only.focus` show it).
    pub node: String,
    /// The focus registry, e.g. `redis://127.0.0.1:6379/`.
    pub redis: String,
    /// Where the SIP proxy reaches this node; `sip.listen` when absent.
    #[serde(default)]
    pub advertise: Option<SocketAddr>,
    /// A claim lapses this long after its node stopped refreshing it (died, lost Redis).
    #[serde(default = "default_ttl")]
    pub claim_ttl_secs: u64,
    /// Conferences this node hosts at once; callers of more get 503.
    #[serde(default = "default_max_rooms")]
    pub max_rooms: usize,
}

fn default_ttl() -> u64 {
    10
}

fn default_max_rooms() -> usize {
    10_000
}

impl ClusterConfig {
    pub fn claim_ttl(&self) -> Duration {
        Duration::from_secs(self.claim_ttl_secs)
    }

    /// Where Kamailio relays this node's callers: `advertise`, else the SIP listen address.
    pub fn advertise_sip(&self, listen: SocketAddr) -> SocketAddr {
        self.advertise.unwrap_or(listen)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        let n = &self.node;
        if n.is_empty()
            || n.len() > 64
            || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            anyhow::bail!("cluster.node = {n:?}: 1 to 64 letters, digits and '-'");
        }
        if self.claim_ttl_secs < 3 {
            anyhow::bail!(
                "cluster.claim_ttl_secs = {}: at least 3",
                self.claim_ttl_secs
            );
        }
        if self.max_rooms == 0 {
            anyhow::bail!("cluster.max_rooms = 0: at least 1 is required");
        }
        redis::Client::open(self.redis.as_str())
            .map_err(|e| anyhow::anyhow!("cluster.redis = {:?}: {e}", self.redis))?;
        Ok(())
    }
}
