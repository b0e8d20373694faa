//! HTTP-level tests against a server on 127.0.0.1:0 backed by an in-memory fake service.

mod fake;
mod hooks;
mod rest;
mod routes;
mod ws;

use super::config::{ApiConfig, TokenEntry};
use super::events::{ConferenceEvent, EventName};
use super::metrics::Metrics;
use super::service::{CallInfo, Live, Participant, Service};
use super::{ApiState, Node};
use fake::Fake;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;

pub const TOKEN_A: &str = "token-a";
pub const TOKEN_B: &str = "token-b";
/// Acts on the system's documents (`/v2/resources`).
pub const TOKEN_SYSTEM: &str = "token-system";
pub const ACCOUNT_A: &str = "acc0000000000000000000000000000a";
pub const ACCOUNT_B: &str = "acc0000000000000000000000000000b";

/// Every wait in these tests is bounded by this.
pub const BOUND: Duration = Duration::from_secs(10);

pub struct Harness {
    pub base: String,
    pub fake: Fake,
    pub events: broadcast::Sender<ConferenceEvent>,
    /// Events of rooms other nodes host, as the cluster's event bus delivers them.
    pub remote: broadcast::Sender<super::events::RenderedEvent>,
    pub metrics: Arc<Metrics>,
    client: reqwest::Client,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(ApiConfig::default().burst).await
    }

    /// A server whose tokens may make `burst` requests at once.
    pub async fn start_with(burst: u32) -> Self {
        let (service, requests) = Service::channel(16);
        let fake = Fake::spawn(requests);
        let (events, _) = broadcast::channel(64);
        let (remote, _) = broadcast::channel(64);
        let metrics = Arc::new(Metrics::default());
        let tokens =
            [(TOKEN_A, ACCOUNT_A), (TOKEN_B, ACCOUNT_B)].map(|(token, account_id)| TokenEntry {
                token: token.into(),
                account_id: account_id.into(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = ApiConfig {
            listen: listener.local_addr().unwrap(),
            tokens: tokens.to_vec(),
            system_tokens: vec![TOKEN_SYSTEM.into()],
            burst,
            ..ApiConfig::default()
        };
        let node = Node {
            name: "chorus@test".into(),
            switch_url: "sip:127.0.0.1:5060".into(),
            external_ip: "127.0.0.1".into(),
        };
        let state = ApiState::new(
            service,
            config.clone(),
            node,
            events.clone(),
            metrics.clone(),
        )
        .with_remote_events(Some(remote.clone()));
        tokio::spawn(super::serve(listener, state));
        let client = reqwest::Client::builder().timeout(BOUND).build().unwrap();
        let base = format!("http://{}", config.listen);
        Self {
            base,
            fake,
            events,
            remote,
            metrics,
            client,
        }
    }

    /// `path` is relative to account A's conferences.
    pub async fn a(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("/v2/accounts/{ACCOUNT_A}/conferences{path}");
        self.send(method, &url, Some(TOKEN_A), body.map(|b| b.to_string()))
            .await
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (u16, Value) {
        let response = self.raw(method, path, token, body).await;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("x-auth-token", token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        request.send().await.unwrap()
    }
}

/// Waits (at most [`BOUND`]) until `counter` reaches `at_least`, then answers its value.
pub async fn counted(counter: &std::sync::atomic::AtomicU64, at_least: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + BOUND;
    let load = || counter.load(std::sync::atomic::Ordering::Relaxed);
    while load() < at_least && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    load()
}

pub fn participant(pid: u32, call_id: &str, moderator: bool, joined_at: SystemTime) -> Participant {
    Participant {
        call_id: call_id.into(),
        participant_id: pid,
        joined_at,
        caller_id_name: format!("Caller {pid}"),
        caller_id_number: format!("100{pid}"),
        custom_channel_vars: json!({"Account-ID": ACCOUNT_A}),
        custom_application_vars: json!({"team": "blue"}),
        is_moderator: moderator,
        floor: pid == 1,
        video: false,
        see: true,
        speak: !moderator,
        hear: true,
        talking: false,
        mute_detect: false,
        energy_level: 20,
        current_energy: 7,
        latency_ms: Some(31),
        member_ghost: false,
        call: CallInfo {
            direction: "inbound".into(),
            from: format!("100{pid}@example.test"),
            to: "5000@example.test".into(),
            sip_status: 200,
            call_status: "in-progress".into(),
        },
    }
}

pub fn live(participants: Vec<Participant>, started_at: SystemTime) -> Live {
    Live {
        uuid: "uuid-1".into(),
        started_at,
        is_locked: true,
        participants,
    }
}

pub fn event(
    name: EventName,
    conference_id: &str,
    members: u32,
    who: Option<Participant>,
) -> ConferenceEvent {
    let now = SystemTime::now();
    ConferenceEvent {
        name,
        account_id: ACCOUNT_A.into(),
        conference_id: conference_id.into(),
        conference_name: "standup".into(),
        instance_id: "uuid-1".into(),
        profile: "default".into(),
        members,
        started_at: now - Duration::from_millis(1500),
        at: now,
        participant: who,
        msg_id: format!("msg-{conference_id}-{members}"),
        failure: None,
    }
}
