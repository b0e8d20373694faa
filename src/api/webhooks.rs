//! jambonz-style conference status webhooks (§5.2), fed from the event broadcast.
//!
//! A dispatcher task maps events to status events and queues them per hook URL; one sender
//! task per URL posts them in order with a timeout and bounded retries. A slow or dead hook
//! only ever fills its own bounded queue (overflow is dropped and counted), and there are at
//! most [`MAX_URLS`] queues. Hooks connect only where `[api.webhooks]` allows (the same
//! address policy as media URLs): a tenant cannot make the server post to its neighbours.

use super::config::WebhooksConfig;
use super::events::{ConferenceEvent, EventName};
use super::metrics::Metrics;
use super::render::object;
use super::reply::iso8601;
use crate::sounds::guard::UrlPolicy;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusEvent {
    Start,
    End,
    Join,
    Leave,
    StartTalking,
    /// The seed's name for the end of talking.
    EndTalking,
    /// jambonz's code name for it, kept as an alias: sent under the name subscribed.
    StopTalking,
}

impl StatusEvent {
    /// A `status_events` entry.
    pub fn parse(name: &str) -> Option<StatusEvent> {
        Some(match name {
            "start" => Self::Start,
            "end" => Self::End,
            "join" => Self::Join,
            "leave" => Self::Leave,
            "start-talking" => Self::StartTalking,
            "end-talking" => Self::EndTalking,
            "stop-talking" => Self::StopTalking,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::End => "end",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::StartTalking => "start-talking",
            Self::EndTalking => "end-talking",
            Self::StopTalking => "stop-talking",
        }
    }
}

/// A conference's hook: set from the starter's `statusHook`/`statusEvents` before its
/// `add-member` is published; later joiners share it (jambonz keeps it in the conference's
/// Redis hash). It is cleared by the conference's `conference-destroy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusHook {
    pub url: String,
    pub events: Vec<StatusEvent>,
    /// Talking events are reported for this call only (the hook owner's member), if set.
    pub owner_call_id: Option<String>,
    /// jambonz `actionHook`: each leaving member's call info is posted here.
    pub action_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub timeout: Duration,
    /// Attempts after the first failure; the wait doubles from `backoff` each time.
    pub retries: u32,
    pub backoff: Duration,
    pub queue: usize,
    pub urls: Arc<UrlPolicy>,
}

impl Policy {
    pub fn new(config: &WebhooksConfig) -> Self {
        let urls = UrlPolicy::new(&config.allow, &config.allow_networks, "api.webhooks");
        Self {
            timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_millis(250),
            queue: 256,
            urls: Arc::new(urls),
        }
    }
}

/// Hook URLs with a queue and a sender at once; events for more are dropped (counted).
const MAX_URLS: usize = 256;

type Hooks = Arc<Mutex<HashMap<(String, String), StatusHook>>>;

/// The largest answer read from an enter or wait hook.
const MAX_VERBS_BYTES: usize = 64 * 1024;

/// The control plane's handle: register or clear a conference's hook, fetch an app's verbs.
#[derive(Debug, Clone)]
pub struct Webhooks {
    hooks: Hooks,
    urls: Arc<UrlPolicy>,
    client: reqwest::Client,
}

impl Webhooks {
    /// Starts the dispatcher on `events` (a receiver of the API's event broadcast).
    pub fn spawn(
        events: broadcast::Receiver<ConferenceEvent>,
        metrics: Arc<Metrics>,
        policy: Policy,
    ) -> Self {
        // No redirects: a hook's answer is only its status.
        let client = policy.urls.client(policy.timeout, 0);
        let webhooks = Self {
            hooks: Hooks::default(),
            urls: policy.urls.clone(),
            client: client.clone(),
        };
        let dispatcher = Dispatcher {
            hooks: webhooks.hooks.clone(),
            queues: HashMap::new(),
            sender: Sender {
                client,
                metrics,
                policy,
            },
        };
        tokio::spawn(dispatcher.run(events));
        webhooks
    }

    /// A hook URL the policy refuses is logged and not used (an empty status URL: none).
    pub fn set(&self, account: &str, conference_id: &str, hook: Option<StatusHook>) {
        let allowed = |url: &str| match self.allowed(url) {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(account, conference_id, %url, "hook refused: {why}");
                false
            }
        };
        let hook = hook.and_then(|mut h| {
            h.action_url = h.action_url.filter(|u| allowed(u));
            if !h.url.is_empty() && !allowed(&h.url) {
                h.url.clear();
            }
            (!h.url.is_empty() || h.action_url.is_some()).then_some(h)
        });
        let key = (account.to_owned(), conference_id.to_owned());
        let mut hooks = self.hooks.lock().unwrap_or_else(|e| e.into_inner());
        match hook {
            Some(hook) => hooks.insert(key, hook),
            None => hooks.remove(&key),
        };
    }

    /// Posts `body` to a jambonz app hook (`enterHook`, `waitHook`) and reads the verbs it
    /// answers with. A URL the policy refuses, a failure, a non-2xx status or an answer
    /// over 64 KiB is an error.
    pub async fn fetch(&self, url: &str, body: &Value) -> Result<Value, String> {
        self.allowed(url)?;
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        let mut r = sent.map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("answered {}", r.status()));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
            if bytes.len() + chunk.len() > MAX_VERBS_BYTES {
                return Err(format!("answer over {MAX_VERBS_BYTES} bytes"));
            }
            bytes.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))
    }

    fn allowed(&self, url: &str) -> Result<(), String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        self.urls.check(&url)
    }
}

struct Dispatcher {
    hooks: Hooks,
    queues: HashMap<String, mpsc::Sender<Value>>,
    sender: Sender,
}

impl Dispatcher {
    async fn run(mut self, mut events: broadcast::Receiver<ConferenceEvent>) {
        loop {
            match events.recv().await {
                Ok(event) => self.dispatch(&event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.sender
                        .metrics
                        .webhook_dropped
                        .fetch_add(missed, Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    fn dispatch(&mut self, event: &ConferenceEvent) {
        let key = (event.account_id.clone(), event.conference_id.clone());
        let hook = {
            let mut hooks = self.hooks.lock().unwrap_or_else(|e| e.into_inner());
            if event.name == EventName::ConferenceDestroy {
                hooks.remove(&key)
            } else {
                hooks.get(&key).cloned()
            }
        };
        if let Some(hook) = hook {
            if !hook.url.is_empty() {
                for status in status_events(event, &hook) {
                    self.enqueue(&hook.url, payload(event, status));
                }
            }
            if let (EventName::DelMember, Some(url)) = (event.name, &hook.action_url) {
                self.enqueue(url, action_payload(event));
            }
        }
        if event.name == EventName::ConferenceDestroy {
            // Dropping a URL's sender lets its task drain the queue and exit.
            let hooks = self.hooks.lock().unwrap_or_else(|e| e.into_inner());
            self.queues.retain(|url, _| {
                hooks
                    .values()
                    .any(|h| &h.url == url || h.action_url.as_ref() == Some(url))
            });
        }
    }

    fn enqueue(&mut self, url: &str, body: Value) {
        if !self.queues.contains_key(url) && self.queues.len() >= MAX_URLS {
            self.sender.metrics.webhook_dropped.fetch_add(1, Relaxed);
            return;
        }
        let queue = self.queues.entry(url.to_owned()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(self.sender.policy.queue);
            tokio::spawn(self.sender.clone().run(url.to_owned(), rx));
            tx
        });
        if queue.try_send(body).is_err() {
            self.sender.metrics.webhook_dropped.fetch_add(1, Relaxed);
        }
    }
}

/// The status events an event means for a hook subscribed to `hook.events`.
fn status_events(event: &ConferenceEvent, hook: &StatusHook) -> Vec<StatusEvent> {
    let talking_owner = |e: &ConferenceEvent| {
        hook.owner_call_id
            .as_deref()
            .is_none_or(|owner| owner == e.call_id())
    };
    let all: &[StatusEvent] = match event.name {
        EventName::AddMember if event.members == 1 => &[StatusEvent::Start, StatusEvent::Join],
        EventName::AddMember => &[StatusEvent::Join],
        EventName::DelMember => &[StatusEvent::Leave],
        EventName::ConferenceDestroy => &[StatusEvent::End],
        EventName::StartTalking if talking_owner(event) => &[StatusEvent::StartTalking],
        EventName::StopTalking if talking_owner(event) => {
            &[StatusEvent::EndTalking, StatusEvent::StopTalking]
        }
        _ => &[],
    };
    all.iter()
        .copied()
        .filter(|s| hook.events.contains(s))
        .collect()
}

/// jambonz's payload: the participant's call info plus the conference fields.
fn payload(event: &ConferenceEvent, status: StatusEvent) -> Value {
    let duration = event
        .at
        .duration_since(event.started_at)
        .unwrap_or_default();
    let mut body = json!({
        "conferenceSid": format!("conf:{}:{}", event.account_id, event.conference_name),
        "friendlyName": event.conference_name,
        "event": status.as_str(),
        "time": iso8601(event.at),
        "members": event.members,
        "duration": duration.as_secs_f64(),
        "accountSid": event.account_id,
    });
    if let (Some(p), Value::Object(map)) = (&event.participant, &mut body) {
        map.extend(object(json!({
            "callSid": p.call_id,
            "callId": p.call_id,
            "direction": p.call.direction,
            "from": p.call.from,
            "to": p.call.to,
            "callerId": p.caller_id_name,
            "sipStatus": p.call.sip_status,
            "callStatus": p.call.call_status,
        })));
    }
    body
}

/// jambonz's actionHook body for a member who left: its call info, the conference's name
/// and the time the member spent in it.
fn action_payload(event: &ConferenceEvent) -> Value {
    let mut body = payload(event, StatusEvent::Leave);
    if let Value::Object(map) = &mut body {
        map.remove("event");
        map.insert("callStatus".into(), "completed".into());
        let joined = event.participant.as_ref().map(|p| p.joined_at);
        let in_conference = joined.and_then(|j| event.at.duration_since(j).ok());
        let seconds = in_conference.unwrap_or_default().as_secs_f64();
        map.insert("duration".into(), seconds.into());
    }
    body
}

#[derive(Clone)]
struct Sender {
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    policy: Policy,
}

impl Sender {
    async fn run(self, url: String, mut queue: mpsc::Receiver<Value>) {
        while let Some(body) = queue.recv().await {
            if !self.deliver(&url, body.to_string()).await {
                self.metrics.webhook_failures.fetch_add(1, Relaxed);
                tracing::warn!(%url, "status webhook failed after retries");
            }
        }
    }

    async fn deliver(&self, url: &str, body: String) -> bool {
        let mut wait = self.policy.backoff;
        for attempt in 0..=self.policy.retries {
            if attempt > 0 {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            let sent = self
                .client
                .post(url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            if sent.is_ok_and(|r| r.status().is_success()) {
                return true;
            }
        }
        false
    }
}
