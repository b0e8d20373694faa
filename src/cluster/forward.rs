//! Any node's API serves any conference: a request about a conference another node hosts
//! (its focus in the registry) is sent on to that node's API, and its answer returned as
//! is. Nodes publish their API address in the registry (`chorus:node:{name}`, refreshed
//! by the registry task); the forwarded request carries `X-Chorus-Forwarded`, so it is
//! served where it lands and never forwarded twice.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Method, header};
use axum::response::{IntoResponse, Response};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::registry::{claim_key, node_key};
use crate::api::service::ConfRef;

/// Marks a request another node forwarded.
pub const FORWARDED: &str = "x-chorus-forwarded";
/// A forwarded request (Redis lookups included) answers within this, or 503.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Headers passed on, both ways.
const PASSED: [HeaderName; 2] = [
    header::CONTENT_TYPE,
    HeaderName::from_static("x-request-id"),
];

#[derive(Clone)]
pub struct Forwarder {
    redis: ConnectionManager,
    node: String,
    http: reqwest::Client,
}

impl Forwarder {
    pub fn new(redis: ConnectionManager, node: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        Ok(Forwarder { redis, node, http })
    }

    /// The API address of the node hosting `conf`, when that is another node; `None` when
    /// it is this one, none, or the registry cannot say (then this node answers).
    pub async fn focus_api(&self, conf: &ConfRef) -> Option<String> {
        let mut redis = self.redis.clone();
        let lookup = async {
            let holder: Option<String> = redis.get(claim_key(conf)).await.ok()?;
            let holder = holder.filter(|h| *h != self.node)?;
            redis
                .get::<_, Option<String>>(node_key(&holder))
                .await
                .ok()?
        };
        tokio::time::timeout(TIMEOUT, lookup).await.ok()?
    }

    /// Sends the request to the API at `api` and returns its answer; `None` when it fails.
    pub async fn forward(
        &self,
        api: &str,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        body: axum::body::Bytes,
    ) -> Option<Response> {
        let url = format!("http://{api}{path}");
        let mut request = self
            .http
            .request(method, url)
            .header(FORWARDED, &self.node)
            .body(body);
        for name in PASSED
            .iter()
            .chain([&HeaderName::from_static("x-auth-token")])
        {
            if let Some(v) = headers.get(name) {
                request = request.header(name, v);
            }
        }
        let answer = async {
            let reply = request.send().await?;
            let (status, headers) = (reply.status(), reply.headers().clone());
            Ok::<_, reqwest::Error>((status, headers, reply.bytes().await?))
        };
        match answer.await {
            Ok((status, from, bytes)) => {
                let mut response = (status, Body::from(bytes)).into_response();
                for name in &PASSED {
                    if let Some(v) = from.get(name) {
                        response.headers_mut().insert(name, v.clone());
                    }
                }
                Some(response)
            }
            Err(e) => {
                tracing::warn!(%api, error = %e, "API forward to the focus node failed");
                None
            }
        }
    }
}
