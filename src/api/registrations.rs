//! `GET /v2/accounts/{account_id}/registrations`: the account's devices' live registrar
//! bindings, as stored (Kazoo's `authorizing_id` is the device id).

use super::ApiState;
use super::reply::{Answer, ApiError};
use super::service::ServiceError;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use std::time::SystemTime;

pub const PATH: &str = "/v2/accounts/{account_id}/registrations";

pub async fn list(
    State(s): State<ApiState>,
    Path(account): Path<String>,
) -> Result<Answer, ApiError> {
    let store = s.store.clone().ok_or(ApiError::Unavailable)?;
    let all = tokio::task::spawn_blocking(move || store.bindings())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ServiceError::from)?;
    let now = SystemTime::now();
    let entries: Vec<Value> = all
        .iter()
        .filter(|(device, _)| device.account == account)
        .flat_map(|(device, bindings)| bindings.iter().map(move |b| (device, b)))
        .filter_map(|(device, b)| {
            let left = b.expires_at.duration_since(now).ok()?.as_secs();
            Some(json!({"authorizing_id": device.id, "contact": b.contact, "expires": left}))
        })
        .collect();
    let page_size = entries.len();
    Ok(Answer::ok(Value::Array(entries)).extra("page_size", page_size.into()))
}
