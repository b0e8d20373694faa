//! What the document handlers share: running a store call off the async threads (writes
//! fsync) and rendering a stored document as the API answers it.

use super::ApiState;
use super::reply::ApiError;
use super::service::ServiceError;
use crate::documents::to_api;
use crate::store::{Store, StoredDocument};
use serde_json::Value;
use std::sync::Arc;

pub fn rendered(d: &StoredDocument) -> Value {
    to_api(&d.id, &d.doc)
}

/// Runs `f` on the store off the async threads.
pub async fn with_store<T: Send + 'static>(
    s: &ApiState,
    f: impl FnOnce(&dyn Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store: Arc<dyn Store> = s.store.clone().ok_or(ApiError::Unavailable)?;
    let result = tokio::task::spawn_blocking(move || f(&*store))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(result.map_err(ServiceError::from)?)
}
