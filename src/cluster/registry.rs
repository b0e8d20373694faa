//! The focus registry's thin Redis shell: it runs [`Focus`] on the clock, carries out its
//! operations against Redis one at a time (in order, so a release never overtakes the
//! refresh before it), and passes its events to the call plane.
//!
//! Keys (the README's Cluster section shows them): `chorus:focus:{account}:{id}` holds the
//! node name of a conference's host; `chorus:route:{number}` holds `sip:{host}:{port}` of
//! that node for each number that reaches the conference, which Kamailio reads to relay a
//! new INVITE to the focus. Both carry the claim's TTL.

use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;

use super::ClusterConfig;
use super::focus::{Answer, Event, Focus, Holder, Op};
use crate::api::service::ConfRef;

/// Set the claim if it is free or already ours (then route the numbers here), all with
/// the TTL; answer "" when ours, else the holder and its route (that of the first number),
/// space-separated. One script: atomic, like `SET NX`, but a refresh by the holder (or a
/// re-claim after the key lapsed) is the same step.
const CLAIM: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  local route = KEYS[2] and redis.call('GET', KEYS[2])
  return holder .. ' ' .. (route or '')
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[3], 'PX', ARGV[2]) end
return ''
";

/// Drop the claim and the numbers' routes, only those that are still ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[2] then redis.call('DEL', KEYS[i]) end
end
return 1
";

/// A Redis round trip (or a connection attempt) that takes longer fails.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(1);

/// What the call plane asks of the registry.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Claim { conf: ConfRef, numbers: Vec<String> },
    Release(ConfRef),
}

pub fn claim_key(conf: &ConfRef) -> String {
    format!("chorus:focus:{}:{}", conf.account, conf.id)
}

pub fn route_key(number: &str) -> String {
    format!("chorus:route:{number}")
}

/// Where a node's API listens (`crate::cluster::forward`).
pub fn node_key(node: &str) -> String {
    format!("chorus:node:{node}")
}

/// A connection to the registry that is made on first use and remade after a failure, so
/// a node starts (and keeps its rooms) while Redis is down.
pub fn connect(config: &ClusterConfig) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(config.redis.as_str())
        .map_err(|e| anyhow::anyhow!("cluster.redis = {:?}: {e}", config.redis))?;
    let manager = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(IO_TIMEOUT))
        .set_response_timeout(Some(IO_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(IO_TIMEOUT);
    Ok(ConnectionManager::new_lazy_with_config(client, manager)?)
}

/// The claim script's "NODE ROUTE" answer (node names have no spaces; ROUTE may be empty).
fn holder(answer: &str) -> Holder {
    let (node, route) = answer.split_once(' ').unwrap_or((answer, ""));
    Holder {
        node: node.to_owned(),
        route: (!route.is_empty()).then(|| route.to_owned()),
    }
}

/// Where this node listens: SIP for Kamailio, the API for the other nodes' forwards.
pub struct Addresses {
    pub sip: std::net::SocketAddr,
    pub api: std::net::SocketAddr,
}

/// Starts the registry task; it ends when `requests` closes.
pub fn spawn(
    config: &ClusterConfig,
    redis: ConnectionManager,
    at: Addresses,
    requests: mpsc::Receiver<Request>,
    events: mpsc::Sender<Event>,
) -> tokio::task::JoinHandle<()> {
    let shell = Shell {
        focus: Focus::new(config.claim_ttl(), config.max_rooms),
        redis,
        node: config.node.clone(),
        route: format!("sip:{}", config.advertise_sip(at.sip)),
        api: at.api.to_string(),
        ttl: config.claim_ttl(),
        claim: redis::Script::new(CLAIM),
        release: redis::Script::new(RELEASE),
    };
    tokio::spawn(shell.run(requests, events))
}

struct Shell {
    focus: Focus,
    redis: ConnectionManager,
    node: String,
    /// What the numbers' route keys hold: this node's SIP URI.
    route: String,
    /// What this node's `chorus:node` key holds, for a TTL, renewed every third of it.
    api: String,
    ttl: Duration,
    claim: redis::Script,
    release: redis::Script,
}

impl Shell {
    async fn run(mut self, mut requests: mpsc::Receiver<Request>, events: mpsc::Sender<Event>) {
        let mut heartbeat = tokio::time::interval(self.ttl / 3);
        loop {
            let timer = self.focus.poll_timeout();
            let far = Instant::now() + Duration::from_secs(86_400);
            let sleep = tokio::time::sleep_until(timer.unwrap_or(far).into());
            tokio::select! {
                r = requests.recv() => match r {
                    Some(Request::Claim { conf, numbers }) => self.focus.claim(conf, numbers),
                    Some(Request::Release(conf)) => self.focus.release(&conf),
                    None => break,
                },
                () = sleep, if timer.is_some() => self.focus.handle_timeout(Instant::now()),
                _ = heartbeat.tick() => self.publish_api().await,
            }
            while let Some(op) = self.focus.poll_op() {
                self.carry_out(op).await;
            }
            while let Some(event) = self.focus.poll_event() {
                if events.send(event).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Tells the other nodes where this node's API is (a lapse only stops forwards to it).
    async fn publish_api(&mut self) {
        let ttl = self.ttl.as_millis() as u64;
        let mut cmd = redis::cmd("SET");
        cmd.arg(node_key(&self.node))
            .arg(&self.api)
            .arg("PX")
            .arg(ttl);
        let set = cmd.exec_async(&mut self.redis);
        if !matches!(tokio::time::timeout(IO_TIMEOUT, set).await, Ok(Ok(()))) {
            tracing::debug!("focus registry: cannot publish the API address");
        }
    }

    async fn carry_out(&mut self, op: Op) {
        match op {
            Op::Claim { conf, numbers, ttl } => {
                let mut call = self.claim.prepare_invoke();
                call.key(claim_key(&conf));
                for n in &numbers {
                    call.key(route_key(n));
                }
                call.arg(&self.node)
                    .arg(ttl.as_millis() as u64)
                    .arg(&self.route);
                let answer = call.invoke_async::<String>(&mut self.redis);
                let answer = match tokio::time::timeout(IO_TIMEOUT, answer).await {
                    Ok(Ok(holder)) if holder.is_empty() => Answer::Ours,
                    Ok(Ok(held)) => Answer::Held(holder(&held)),
                    Ok(Err(e)) => {
                        tracing::warn!(conference = %conf, error = %e, "focus registry");
                        Answer::Unreachable
                    }
                    Err(_) => {
                        tracing::warn!(conference = %conf, "focus registry: no answer");
                        Answer::Unreachable
                    }
                };
                self.focus.on_answer(&conf, answer, Instant::now());
            }
            Op::Release { conf, numbers } => {
                let mut call = self.release.prepare_invoke();
                call.key(claim_key(&conf));
                for n in &numbers {
                    call.key(route_key(n));
                }
                call.arg(&self.node).arg(&self.route);
                let done = call.invoke_async::<i64>(&mut self.redis);
                // A release that fails leaves keys that lapse with their TTL.
                if !matches!(tokio::time::timeout(IO_TIMEOUT, done).await, Ok(Ok(_))) {
                    tracing::warn!(conference = %conf, "focus registry: release failed; the claim lapses with its TTL");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_scripts_refusal_names_the_holder_and_its_route() {
        let held = holder("node2 sip:127.0.0.1:5082");
        assert_eq!(
            (held.node.as_str(), held.route.as_deref()),
            ("node2", Some("sip:127.0.0.1:5082"))
        );
        assert_eq!(holder("node2 "), Holder::from("node2"));
        assert_eq!(holder("node2"), Holder::from("node2"));
    }
}
