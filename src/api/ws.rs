//! `/ws`: Kazoo blackhole-style event subscriptions.
//!
//! Each connection reads the shared broadcast channel at its own pace: publishers never wait
//! for a client, a client that falls behind loses the oldest events (counted), and one whose
//! socket stays blocked past [`SEND_TIMEOUT`] is closed. Clients are capped
//! (`api.max_websockets`), and one that has not authenticated a subscription within
//! `api.ws_auth_secs` is closed.
//!
//! In a cluster, events of rooms other nodes host arrive on a second broadcast (from the
//! event bus, `crate::cluster::bus`), read the same way, under the same rules.

use super::events::{ConferenceEvent, RenderedEvent};
use super::reply::ApiError;
use super::{ApiState, body};
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

const SEND_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn upgrade(State(state): State<ApiState>, ws: WebSocketUpgrade) -> Response {
    let Ok(permit) = state.websockets.clone().try_acquire_owned() else {
        state.metrics.ws_refused.fetch_add(1, Relaxed);
        return ApiError::Busy.into_response();
    };
    // Requests are a few hundred bytes; refuse anything that could be used to exhaust memory.
    ws.max_message_size(body::MAX_BODY)
        .on_upgrade(move |socket| async move {
            count_clients(&state);
            session(&state, socket).await;
            drop(permit);
            count_clients(&state);
        })
}

/// Keeps the client gauge: one taken permit per client.
fn count_clients(state: &ApiState) {
    let taken = state.config.max_websockets - state.websockets.available_permits();
    state.metrics.ws_clients.store(taken as u64, Relaxed);
}

async fn session(state: &ApiState, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let mut events = state.events.subscribe();
    let mut remote = state.remote.as_ref().map(broadcast::Sender::subscribe);
    let mut subs = Subscriptions::default();
    let auth = tokio::time::sleep(Duration::from_secs(state.config.ws_auth_secs));
    tokio::pin!(auth);
    loop {
        let out = tokio::select! {
            () = &mut auth, if subs.account.is_none() => {
                state.metrics.ws_unauthenticated.fetch_add(1, Relaxed);
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => Some(subs.request(state, &text)),
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => None,
            },
            event = events.recv() => match event {
                Ok(event) => subs.push_local(&event, &state.node.name),
                Err(RecvError::Lagged(missed)) => {
                    state.metrics.ws_dropped.fetch_add(missed, Relaxed);
                    None
                }
                Err(RecvError::Closed) => break,
            },
            event = recv_remote(&mut remote) => match event {
                Ok(event) => subs.push(&event),
                Err(RecvError::Lagged(missed)) => {
                    state.metrics.ws_dropped.fetch_add(missed, Relaxed);
                    None
                }
                // The bus is gone: local events still flow.
                Err(RecvError::Closed) => {
                    remote = None;
                    None
                }
            },
        };
        if let Some(out) = out {
            let send = sink.send(Message::Text(out.to_string().into()));
            if !matches!(tokio::time::timeout(SEND_TIMEOUT, send).await, Ok(Ok(()))) {
                // Hopeless or gone: what it had not read yet is lost.
                let backlog = events.len() + remote.as_ref().map_or(0, broadcast::Receiver::len);
                let backlog = u64::try_from(backlog).unwrap_or(u64::MAX);
                state.metrics.ws_dropped.fetch_add(backlog, Relaxed);
                break;
            }
        }
    }
}

/// The next event from the cluster bus; never, outside a cluster.
async fn recv_remote(
    remote: &mut Option<broadcast::Receiver<RenderedEvent>>,
) -> Result<RenderedEvent, RecvError> {
    match remote {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// One connection's account (fixed by its first subscribe) and bindings.
#[derive(Debug, Default)]
struct Subscriptions {
    account: Option<String>,
    bindings: Vec<String>,
}

impl Subscriptions {
    fn request(&mut self, state: &ApiState, text: &str) -> Value {
        let request: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let request_id = request.get("request_id").cloned().unwrap_or(Value::Null);
        let result = match request.is_object() {
            true => self.apply(state, &request),
            false => Err("expected a JSON object".into()),
        };
        let (status, data) = match result {
            Ok(data) => ("success", data),
            Err(message) => ("error", json!({ "message": message })),
        };
        json!({"action": "reply", "request_id": request_id, "status": status, "data": data})
    }

    fn apply(&mut self, state: &ApiState, request: &Value) -> Result<Value, String> {
        let token = request
            .get("auth_token")
            .and_then(Value::as_str)
            .unwrap_or("");
        let account = state
            .config
            .account_for(token)
            .ok_or("invalid credentials")?;
        let data = &request["data"];
        let asked = data
            .get("account_id")
            .and_then(Value::as_str)
            .unwrap_or(account);
        if asked != account || self.account.as_deref().is_some_and(|a| a != account) {
            return Err("forbidden".into());
        }
        let bindings = requested_bindings(data)?;
        self.account = Some(account.to_owned());
        match request.get("action").and_then(Value::as_str) {
            Some("subscribe") => {
                let mut all = self.bindings.clone();
                for b in bindings {
                    if !all.contains(&b) {
                        all.push(b);
                    }
                }
                let max = state.config.max_ws_bindings;
                if all.len() > max {
                    return Err(format!("too many bindings: at most {max} per connection"));
                }
                self.bindings = all;
                Ok(json!({ "subscribed": self.bindings }))
            }
            Some("unsubscribe") => {
                self.bindings.retain(|b| !bindings.contains(b));
                Ok(json!({ "unsubscribed": bindings, "subscribed": self.bindings }))
            }
            _ => Err("unknown action: expected subscribe or unsubscribe".into()),
        }
    }

    /// The binding an event of this account, conference and call matches, if any.
    fn binding_for(&self, account: &str, conference: &str, call: &str) -> Option<&String> {
        if self.account.as_deref() != Some(account) {
            return None;
        }
        self.bindings.iter().find(|b| matches(b, conference, call))
    }

    /// [`Self::push`] for an event of a room this node hosts, rendered only when wanted.
    fn push_local(&self, event: &ConferenceEvent, node: &str) -> Option<Value> {
        self.binding_for(&event.account_id, &event.conference_id, event.call_id())?;
        self.push(&event.rendered(node))
    }

    /// The event message for `event`, if one of the bindings matches it.
    fn push(&self, event: &RenderedEvent) -> Option<Value> {
        let binding = self.binding_for(&event.account_id, &event.conference_id, &event.call_id)?;
        Some(json!({
            "action": "event",
            "subscribed_key": binding,
            "subscription_key": format!("conference.event.{}.{}", event.conference_id, event.call_id),
            "name": event.name,
            "routing_key": event.routing_key(),
            "data": event.snake_json(),
        }))
    }
}

/// `data.binding` or `data.bindings`, each `conference.event.{CONF|*}.{CALL|*}`.
fn requested_bindings(data: &Value) -> Result<Vec<String>, String> {
    let list = match (data.get("binding"), data.get("bindings")) {
        (Some(Value::String(b)), _) => vec![b.clone()],
        (_, Some(Value::Array(all))) => all
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => return Err("data.binding is required".into()),
    };
    match list.iter().find(|b| parts(b).is_none()) {
        Some(bad) => Err(format!(
            "unsupported binding '{bad}': expected conference.event.{{CONFERENCE_ID}}.{{CALL_ID|*}}"
        )),
        None if list.is_empty() => Err("data.binding is required".into()),
        None => Ok(list),
    }
}

fn parts(binding: &str) -> Option<(&str, &str)> {
    let rest = binding.strip_prefix("conference.event.")?;
    let (conf, call) = rest.split_once('.')?;
    (!conf.is_empty() && !call.is_empty()).then_some((conf, call))
}

fn matches(binding: &str, conference: &str, call: &str) -> bool {
    parts(binding).is_some_and(|(c, m)| (c == "*" || c == conference) && (m == "*" || m == call))
}
