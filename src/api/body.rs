//! The request body: size limit, JSON decoding and the Kazoo request envelope.

use super::reply::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::{Map, Value};

/// Bodies above this are refused before they are decoded (the documents are a few KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// A decoded `{"data":{...}, ...}` envelope; an empty body is an empty envelope, as in Kazoo.
#[derive(Debug, Default)]
pub struct Envelope(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Envelope {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(MAX_BODY)
            } else {
                ApiError::Malformed(e.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::Malformed("Invalid JSON request envelope".into())),
            Err(e) => Err(ApiError::Malformed(e.to_string())),
        }
    }
}

impl Envelope {
    /// The `data` object, required for document writes.
    pub fn document(mut self) -> Result<Value, ApiError> {
        match self.0.remove("data") {
            Some(data @ Value::Object(_)) => Ok(data),
            Some(_) => Err(type_error("data", "object")),
            None => Err(ApiError::required("data", "data object is required")),
        }
    }

    /// `action` at the top level, else inside `data`.
    pub fn action(&self) -> Option<&str> {
        self.0
            .get("action")
            .or_else(|| self.0.get("data")?.get("action"))
            .and_then(Value::as_str)
    }

    /// An action's argument: `data.data`, else the top-level `data`.
    pub fn argument(&self) -> Option<&Value> {
        let data = self.0.get("data")?;
        data.get("data").or(Some(data))
    }

    /// The argument as an object, or Kazoo's `action '<a>' requires a data object`.
    pub fn argument_object(&self, action: &str) -> Result<&Map<String, Value>, ApiError> {
        self.argument().and_then(Value::as_object).ok_or_else(|| {
            ApiError::required("data", &format!("action '{action}' requires a data object"))
        })
    }
}

/// Kazoo's draft-04 `type` rule failure.
pub fn type_error(field: &str, expected: &str) -> ApiError {
    ApiError::invalid(
        field,
        "type",
        serde_json::json!({
            "message": format!("Value did not match type(s): {expected}"),
            "target": expected,
        }),
    )
}
