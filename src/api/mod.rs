//! The HTTP/WebSocket control API: Kazoo-compatible conference REST, event subscriptions,
//! status webhooks, Prometheus metrics and the OpenAPI document.
//!
//! Handlers reach the rest of the server only through [`service::Service`] requests, events
//! arrive on a broadcast of [`events::ConferenceEvent`], and media code bumps [`metrics::Metrics`].
//!
//! Wiring, from the server's start-up:
//!
//! ```text
//! let (service, requests) = Service::channel(64);      // control plane serves `requests`
//! let (events, _) = broadcast::channel(1024);          // control plane publishes events here
//! let metrics = Arc::new(Metrics::default());
//! let hooks = Webhooks::spawn(events.subscribe(), metrics.clone(), Policy::new(&api_config.webhooks));
//! let state = ApiState::new(service, api_config, node, events.clone(), metrics.clone());
//! tokio::spawn(api::serve(TcpListener::bind(listen).await?, state));
//! ```

pub mod config;
pub mod events;
pub mod metrics;
pub mod service;
pub mod webhooks;

mod actions;
mod body;
mod conferences;
mod dial;
mod documents;
mod listener;
pub mod media;
mod openapi;
mod paginate;
mod ratelimit;
mod registrations;
mod render;
mod reply;
mod stored;
mod ws;

#[cfg(test)]
mod tests;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use config::ApiConfig;
use events::ConferenceEvent;
use metrics::Metrics;
use reply::ApiError;
use service::Service;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// How this media server describes itself in responses (`node`, `switch_*`).
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub name: String,
    pub switch_url: String,
    pub external_ip: String,
}

#[derive(Clone)]
pub struct ApiState {
    service: Service,
    config: Arc<ApiConfig>,
    node: Arc<Node>,
    events: broadcast::Sender<ConferenceEvent>,
    metrics: Arc<Metrics>,
    buckets: Arc<ratelimit::Buckets>,
    /// One permit per WebSocket client.
    websockets: Arc<tokio::sync::Semaphore>,
    /// Where the generic documents (devices, users, ...) live; without it their routes
    /// answer 503.
    store: Option<Arc<dyn crate::store::Store>>,
    /// Media documents' audio; without it their `/raw` route answers 503.
    media: Option<Arc<media::MediaFiles>>,
    /// In a cluster: conference requests go to the node hosting the conference.
    forwarder: Option<crate::cluster::forward::Forwarder>,
    /// In a cluster: events of rooms other nodes host, from the event bus.
    remote: Option<broadcast::Sender<events::RenderedEvent>>,
}

impl ApiState {
    /// `events` is the channel the control plane publishes into; WebSocket clients and the
    /// webhook dispatcher each subscribe to it.
    pub fn new(
        service: Service,
        config: ApiConfig,
        node: Node,
        events: broadcast::Sender<ConferenceEvent>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let buckets = Arc::new(ratelimit::Buckets::new(
            config.burst,
            config.refill_per_second,
        ));
        let websockets = Arc::new(tokio::sync::Semaphore::new(config.max_websockets));
        let (config, node) = (Arc::new(config), Arc::new(node));
        Self {
            websockets,
            buckets,
            service,
            config,
            node,
            events,
            metrics,
            store: None,
            media: None,
            forwarder: None,
            remote: None,
        }
    }

    /// Serves the generic documents from `store`.
    pub fn with_store(mut self, store: Arc<dyn crate::store::Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Keeps media documents' audio in `files`.
    pub fn with_media(mut self, files: media::MediaFiles) -> Self {
        self.media = Some(Arc::new(files));
        self
    }

    /// Sends conference requests on to the node hosting the conference (a cluster).
    pub fn with_forwarder(mut self, forwarder: Option<crate::cluster::forward::Forwarder>) -> Self {
        self.forwarder = forwarder;
        self
    }

    /// Shows WebSocket clients the events of rooms other nodes host, which the cluster's
    /// event bus sends into `remote` (a cluster).
    pub fn with_remote_events(
        mut self,
        remote: Option<broadcast::Sender<events::RenderedEvent>>,
    ) -> Self {
        self.remote = remote;
        self
    }
}

const CONFERENCES: &str = "/v2/accounts/{account_id}/conferences";
const CONFERENCE: &str = "/v2/accounts/{account_id}/conferences/{conference_id}";
const PARTICIPANTS: &str = "/v2/accounts/{account_id}/conferences/{conference_id}/participants";
const PARTICIPANT: &str =
    "/v2/accounts/{account_id}/conferences/{conference_id}/participants/{participant_id}";
const RECORDINGS: &str = "/v2/accounts/{account_id}/conferences/{conference_id}/recordings";
const RECORDING: &str = "/v2/accounts/{account_id}/conferences/{conference_id}/recordings/{name}";

/// The account-scoped routes, all behind [`authorize`].
pub(crate) fn account_routes() -> Vec<(&'static str, MethodRouter<ApiState>)> {
    use conferences as c;
    vec![
        (CONFERENCES, get(c::list).put(c::create)),
        (
            CONFERENCE,
            get(c::get)
                .post(c::replace)
                .patch(c::patch)
                .delete(c::delete)
                .put(c::conference_action),
        ),
        (PARTICIPANTS, get(c::participants).put(c::bulk_action)),
        (PARTICIPANT, get(c::participant).put(c::participant_action)),
        (RECORDINGS, get(c::recordings)),
        (RECORDING, get(c::recording)),
    ]
    .into_iter()
    .chain(documents::account_routes())
    .chain([
        (registrations::PATH, get(registrations::list)),
        (media::RAW, media::route()),
    ])
    .collect()
}

/// The system's routes, behind [`authorize_system`].
pub(crate) fn system_routes() -> Vec<(&'static str, MethodRouter<ApiState>)> {
    documents::system_routes()
}

/// The open routes: subscriptions authenticate per message, the rest expose no account data.
pub(crate) fn open_routes() -> Vec<(&'static str, MethodRouter<ApiState>)> {
    vec![
        ("/ws", get(ws::upgrade)),
        ("/metrics", get(metrics_text)),
        ("/v2/openapi.json", get(openapi::document)),
    ]
}

pub fn router(state: ApiState) -> Router {
    let request_timeout = Duration::from_secs(state.config.request_timeout_secs);
    let scoped = account_routes()
        .into_iter()
        .fold(Router::new(), |r, (path, route)| r.route(path, route))
        .route_layer(middleware::from_fn_with_state(state.clone(), to_focus))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    let system = system_routes()
        .into_iter()
        .fold(Router::new(), |r, (path, route)| r.route(path, route))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            authorize_system,
        ));
    open_routes()
        .into_iter()
        .fold(scoped, |r, (path, route)| r.route(path, route))
        .merge(system)
        .fallback(|| async { ApiError::UnknownPath })
        .layer(DefaultBodyLimit::max(body::MAX_BODY))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            deadline(request_timeout, request, next)
        }))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            reply::envelope,
        ))
        .with_state(state)
}

/// Serves the API on `listener` until the task is dropped (see [`listener`] for the
/// connection limits).
pub async fn serve(listener: tokio::net::TcpListener, state: ApiState) -> std::io::Result<()> {
    listener::serve(listener, state).await
}

/// A request (its body included) not answered in time gets 408 and is dropped.
async fn deadline(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// `X-Auth-Token` must name a configured token, and the token's account must be the path's:
/// 401 without a valid token, 429 once its bucket is empty, 403 (Kazoo's "no one authz'd the
/// request") for another account.
async fn authorize(
    State(state): State<ApiState>,
    Path(params): Path<Vec<(String, String)>>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok());
    let Some(account) = token.and_then(|t| state.config.account_for(t)) else {
        if token.is_some_and(|t| state.config.is_system(t)) {
            return ApiError::Forbidden.into_response();
        }
        return ApiError::Unauthorized.into_response();
    };
    let asked = params
        .iter()
        .find(|(k, _)| k == "account_id")
        .map(|(_, v)| v.as_str());
    let Some(spent) = token.and_then(|t| state.buckets.take(t, Instant::now())) else {
        return ApiError::TooManyRequests.into_response();
    };
    let mut response = if asked == Some(account) {
        next.run(request).await
    } else {
        ApiError::Forbidden.into_response()
    };
    response.extensions_mut().insert(spent);
    response
}

/// In a cluster, a conference's live state and actions (GET and PUT of the conference and
/// its participants) are served by the node hosting it: an authorized request about a
/// conference another node holds goes there, and its answer comes back as is. Documents
/// and recordings stay with this node.
async fn to_focus(
    State(state): State<ApiState>,
    Path(params): Path<Vec<(String, String)>>,
    request: Request,
    next: Next,
) -> Response {
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let live = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::PUT
    ) && !request.uri().path().contains("/recordings");
    let forwarded = request
        .headers()
        .contains_key(crate::cluster::forward::FORWARDED);
    let (Some(forwarder), Some(account), Some(id), true, false) = (
        &state.forwarder,
        param("account_id"),
        param("conference_id"),
        live,
        forwarded,
    ) else {
        return next.run(request).await;
    };
    let conf = service::ConfRef { account, id };
    let Some(api) = forwarder.focus_api(&conf).await else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, body::MAX_BODY).await else {
        return ApiError::TooLarge(body::MAX_BODY).into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    forwarder
        .forward(&api, parts.method.clone(), path, &parts.headers, body)
        .await
        .unwrap_or_else(|| ApiError::Unavailable.into_response())
}

/// The system's documents need one of `system_tokens` (Kazoo's superduper admin): 401 for an
/// unknown token, 403 for an account's token, 429 once the token's bucket is empty.
async fn authorize_system(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok());
    let Some(token) = token else {
        return ApiError::Unauthorized.into_response();
    };
    let system = state.config.is_system(token);
    if !system && state.config.account_for(token).is_none() {
        return ApiError::Unauthorized.into_response();
    }
    let Some(spent) = state.buckets.take(token, Instant::now()) else {
        return ApiError::TooManyRequests.into_response();
    };
    let mut response = if system {
        next.run(request).await
    } else {
        ApiError::Forbidden.into_response()
    };
    response.extensions_mut().insert(spent);
    response
}

async fn metrics_text(State(state): State<ApiState>) -> impl IntoResponse {
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    (
        [(axum::http::header::CONTENT_TYPE, content_type)],
        state.metrics.render(),
    )
}
