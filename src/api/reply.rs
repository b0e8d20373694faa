//! Kazoo's response envelope and error shapes.
//!
//! Handlers answer an [`Answer`] that rides in the response extensions; the [`envelope`]
//! middleware wraps it with the per-request fields (request id, token, node, timestamp), so no
//! handler has to thread those through.

use super::ApiState;
use super::ratelimit::Spent;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::time::SystemTime;

#[derive(Debug, Clone)]
pub struct Answer {
    status: StatusCode,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    Data {
        data: Value,
        extra: Map<String, Value>,
    },
    Error {
        code: &'static str,
        data: Value,
    },
}

impl Answer {
    pub fn ok(data: Value) -> Self {
        Self::with_status(StatusCode::OK, data)
    }

    /// Kazoo's `response_202`: the action was handed to the media server.
    pub fn accepted(message: &str) -> Self {
        Self::with_status(StatusCode::ACCEPTED, Value::from(message))
    }

    pub fn with_status(status: StatusCode, data: Value) -> Self {
        let body = Body::Data {
            data,
            extra: Map::new(),
        };
        Self { status, body }
    }

    /// Adds an envelope key next to `data` (a list's `page_size`).
    pub fn extra(mut self, key: &str, value: Value) -> Self {
        if let Body::Data { extra, .. } = &mut self.body {
            extra.insert(key.to_owned(), value);
        }
        self
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Every error the API answers, each rendered in Kazoo's shape.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    Unauthorized,
    Forbidden,
    NotFound(String),
    /// A Kazoo validation map `{"field":{"rule":{"message",...}}}`.
    Validation(Value),
    FaultyRequest,
    TooLarge(usize),
    Malformed(String),
    Unavailable,
    Internal(String),
    TooManyRequests,
    UnknownPath,
    Timeout,
    Busy,
}

impl ApiError {
    /// One validation failure on one field path (`data.media_id`).
    pub fn invalid(field: &str, rule: &str, detail: Value) -> Self {
        let mut map = Map::new();
        map.insert(field.to_owned(), json!({ rule: detail }));
        Self::Validation(Value::Object(map))
    }

    pub fn required(field: &str, message: &str) -> Self {
        Self::invalid(field, "required", json!({ "message": message }))
    }
}

impl From<super::service::ServiceError> for ApiError {
    fn from(e: super::service::ServiceError) -> Self {
        use super::service::ServiceError as S;
        match e {
            S::NotFound(cause) => Self::NotFound(cause),
            S::Validation(map) => Self::Validation(map),
            S::Unavailable => Self::Unavailable,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, data) = match self {
            Self::Unauthorized => (
                401,
                "invalid_credentials",
                json!({"message": "invalid credentials"}),
            ),
            Self::Forbidden => (403, "forbidden", json!({"message": "forbidden"})),
            Self::NotFound(cause) => (
                404,
                "bad_identifier",
                json!({"cause": cause, "message": "bad identifier"}),
            ),
            Self::Validation(map) => (400, "validation error", map),
            Self::FaultyRequest => (404, "faulty_request", json!({"message": "faulty request"})),
            Self::TooLarge(limit) => (
                413,
                "validation error",
                json!({"file": {"maxSize": {
                    "message": format!("Payload or Files must not be more than {limit} bytes"),
                    "target": limit,
                }}}),
            ),
            Self::Malformed(cause) => (
                400,
                "invalid request body",
                json!({"message": "invalid request body", "cause": cause}),
            ),
            Self::TooManyRequests => (
                429,
                "too_many_requests",
                json!({"message": "too many requests"}),
            ),
            Self::UnknownPath => (404, "not_found", json!({"message": "not found"})),
            Self::Timeout => (
                408,
                "request_timeout",
                json!({"message": "the request took too long"}),
            ),
            Self::Busy => (
                503,
                "too_many_clients",
                json!({"message": "too many clients: try again later"}),
            ),
            Self::Unavailable => (
                503,
                "datastore_fault",
                json!({"message": "datastore fault"}),
            ),
            Self::Internal(cause) => (
                500,
                "internal_error",
                json!({"message": "internal error", "cause": cause}),
            ),
        };
        let status = StatusCode::from_u16(status).expect("static status codes are valid");
        Answer {
            status,
            body: Body::Error { code, data },
        }
        .into_response()
    }
}

/// Renders the [`Answer`] a handler left in the response extensions.
pub async fn envelope(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let request_id = request_id(request.headers());
    let auth_token = request
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut response = next.run(request).await;
    let Some(answer) = response.extensions_mut().remove::<Answer>() else {
        return response;
    };
    let mut body = Map::new();
    if let Some(spent) = response.extensions().get::<Spent>() {
        let tokens = json!({"consumed": 1, "remaining": spent.remaining});
        body.insert("tokens".into(), tokens);
    }
    body.insert("auth_token".into(), auth_token.into());
    body.insert("node".into(), state.node.name.clone().into());
    body.insert("request_id".into(), request_id.into());
    body.insert("timestamp".into(), iso8601(SystemTime::now()).into());
    body.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    match answer.body {
        Body::Data { data, extra } => {
            body.insert("status".into(), "success".into());
            body.insert("revision".into(), "undefined".into());
            body.extend(extra);
            body.insert("data".into(), data);
        }
        Body::Error { code, data } => {
            body.insert("status".into(), "error".into());
            body.insert("error".into(), answer.status.as_u16().to_string().into());
            body.insert("message".into(), code.into());
            body.insert("data".into(), data);
        }
    }
    let mut response = (answer.status, axum::Json(Value::Object(body))).into_response();
    if answer.status == StatusCode::SERVICE_UNAVAILABLE {
        // The datastore or the control plane is back within seconds, or the client is told
        // again: a retry loop needs no guess.
        let retry = axum::http::HeaderValue::from_static(RETRY_AFTER_SECS);
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, retry);
    }
    response
}

/// The Retry-After of every 503 (`datastore_fault`, `too_many_clients`).
pub const RETRY_AFTER_SECS: &str = "2";

/// The client's `X-Request-ID` if it sent one (Kazoo echoes it), else a fresh one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

pub fn iso8601(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
