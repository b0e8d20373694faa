//! The event bus's thin Redis shell ([`super::bus`] is its logic): one task publishes the
//! events of the rooms this node hosts, another subscribes and hands the other nodes'
//! events to this node's WebSocket clients.
//!
//! Bounded: the publisher reads the control plane's event broadcast like any subscriber
//! (when it falls behind, the oldest are skipped and counted), the received events go into
//! a broadcast each WebSocket reads at its own pace (its skips count with the local ones),
//! and messages over [`super::bus::MAX_MESSAGE`] are dropped and counted.
//!
//! Without Redis, local events keep flowing to the local clients (they never pass through
//! here); publications fail and are counted, and the subscriber retries every second, so
//! the bus comes back by itself. A ping finds a connection that died without closing.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::ClusterConfig;
use super::bus::{Bus, CHANNEL, Received};
use super::registry::IO_TIMEOUT;
use crate::api::events::{ConferenceEvent, RenderedEvent};
use crate::api::metrics::Metrics;

/// A lost subscription is retried this often.
const RETRY: Duration = Duration::from_secs(1);
/// A subscription's connection is pinged this often.
const PING: Duration = Duration::from_secs(5);

/// Starts the publisher (reading `local`, this node's events) and the subscriber (sending
/// into `remote`); both end with the runtime.
pub fn spawn(
    config: &ClusterConfig,
    redis: ConnectionManager,
    local: broadcast::Receiver<ConferenceEvent>,
    remote: broadcast::Sender<RenderedEvent>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<[JoinHandle<()>; 2]> {
    let client = redis::Client::open(config.redis.as_str())?;
    let bus = Bus::new(&config.node);
    Ok([
        tokio::spawn(publish(bus.clone(), redis, local, metrics.clone())),
        tokio::spawn(subscribe(bus, client, remote, metrics)),
    ])
}

async fn publish(
    bus: Bus,
    mut redis: ConnectionManager,
    mut local: broadcast::Receiver<ConferenceEvent>,
    metrics: Arc<Metrics>,
) {
    loop {
        let event = match local.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                metrics.bus_unpublished.fetch_add(missed, Relaxed);
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(message) = bus.publish(&event) else {
            tracing::warn!(conference = %event.conference_id, event = event.name.as_str(), "event bus: event too large to publish");
            metrics.bus_unpublished.fetch_add(1, Relaxed);
            continue;
        };
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(CHANNEL).arg(message);
        let sent = cmd.query_async::<i64>(&mut redis);
        if !matches!(timeout(IO_TIMEOUT, sent).await, Ok(Ok(_))) {
            tracing::debug!("event bus: cannot publish");
            metrics.bus_unpublished.fetch_add(1, Relaxed);
        }
    }
}

async fn subscribe(
    bus: Bus,
    client: redis::Client,
    remote: broadcast::Sender<RenderedEvent>,
    metrics: Arc<Metrics>,
) {
    let mut first = true;
    loop {
        let (subscribed, why) = listen(&bus, &client, &remote, &metrics).await;
        // Said once per outage (and at a start without Redis), not at every retry.
        if subscribed || std::mem::take(&mut first) {
            tracing::warn!(error = %why, "event bus: not subscribed; retrying every second");
        }
        first = false;
        tokio::time::sleep(RETRY).await;
    }
}

/// Subscribes and delivers until the connection fails; whether it had subscribed, and why
/// it ended.
async fn listen(
    bus: &Bus,
    client: &redis::Client,
    remote: &broadcast::Sender<RenderedEvent>,
    metrics: &Metrics,
) -> (bool, String) {
    let connect = async {
        let (mut sink, stream) = client.get_async_pubsub().await?.split();
        sink.subscribe(CHANNEL).await?;
        Ok::<_, redis::RedisError>((sink, stream))
    };
    let (mut sink, mut stream) = match timeout(IO_TIMEOUT, connect).await {
        Ok(Ok(both)) => both,
        Ok(Err(e)) => return (false, e.to_string()),
        Err(_) => return (false, "no answer".into()),
    };
    tracing::info!(channel = CHANNEL, "event bus: subscribed");
    let mut ping = tokio::time::interval(PING);
    loop {
        tokio::select! {
            message = stream.next() => match message.map(|m| bus.receive(m.get_payload_bytes())) {
                None => return (true, "connection closed".into()),
                // No WebSocket client (none subscribed): nothing to deliver.
                Some(Received::Event(event)) => drop(remote.send(event)),
                Some(Received::Own) => {}
                Some(Received::Refused(why)) => {
                    tracing::debug!(%why, "event bus: message refused");
                    metrics.bus_refused.fetch_add(1, Relaxed);
                }
            },
            _ = ping.tick() => {
                if !matches!(timeout(IO_TIMEOUT, sink.ping::<redis::Value>()).await, Ok(Ok(_))) {
                    return (true, "no answer to ping".into());
                }
            }
        }
    }
}
