//! Handlers for the generic documents of [`crate::documents`]: an account's
//! `/v2/accounts/{account_id}/{devices,users,groups,resources,callflows,media}[/{document_id}]`,
//! a user's devices at `.../users/{document_id}/devices`, and the system's resources at
//! `/v2/resources[/{document_id}]` (system tokens only, see [`super::authorize_system`]).
//!
//! The handlers use the store directly (in `spawn_blocking`: writes fsync): these documents
//! have no live state in the control plane.

use super::ApiState;
use super::body::Envelope;
use super::reply::{Answer, ApiError};
use super::stored::{rendered, with_store};
use crate::documents::{Kind, Owner};
use crate::store::{DocumentWrite, StoredDocument};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get};
use serde_json::Value;

type Answered = Result<Answer, ApiError>;

/// Each kind's collection and document paths.
const PATHS: [(Kind, &str, &str); 6] = [
    (
        Kind::Device,
        "/v2/accounts/{account_id}/devices",
        "/v2/accounts/{account_id}/devices/{document_id}",
    ),
    (
        Kind::User,
        "/v2/accounts/{account_id}/users",
        "/v2/accounts/{account_id}/users/{document_id}",
    ),
    (
        Kind::Group,
        "/v2/accounts/{account_id}/groups",
        "/v2/accounts/{account_id}/groups/{document_id}",
    ),
    (
        Kind::Resource,
        "/v2/accounts/{account_id}/resources",
        "/v2/accounts/{account_id}/resources/{document_id}",
    ),
    (
        Kind::Callflow,
        "/v2/accounts/{account_id}/callflows",
        "/v2/accounts/{account_id}/callflows/{document_id}",
    ),
    (
        Kind::Media,
        "/v2/accounts/{account_id}/media",
        "/v2/accounts/{account_id}/media/{document_id}",
    ),
];
const USER_DEVICES: &str = "/v2/accounts/{account_id}/users/{document_id}/devices";
const SYSTEM_RESOURCES: &str = "/v2/resources";
const SYSTEM_RESOURCE: &str = "/v2/resources/{document_id}";

/// The account-scoped document routes (behind [`super::authorize`]).
pub fn account_routes() -> Vec<(&'static str, MethodRouter<ApiState>)> {
    let mut routes = Vec::new();
    for (kind, collection, document) in PATHS {
        let account = |Path(account): Path<String>| (account, None);
        routes.push((collection, collection_route(kind, account)));
        let one = |Path((account, id)): Path<(String, String)>| (account, Some(id));
        routes.push((document, document_route(kind, one)));
    }
    routes.push((USER_DEVICES, get(user_devices)));
    routes
}

/// The system's resources (behind [`super::authorize_system`]).
pub fn system_routes() -> Vec<(&'static str, MethodRouter<ApiState>)> {
    let system = |()| (String::new(), None);
    let one = |Path(id): Path<String>| (String::new(), Some(id));
    vec![
        (SYSTEM_RESOURCES, collection_route(Kind::Resource, system)),
        (SYSTEM_RESOURCE, document_route(Kind::Resource, one)),
    ]
}

/// Who and which document a request names: an account id (empty for the system) and the
/// document id of a document path.
type Target = (String, Option<String>);

fn owner(account: &str) -> Owner<'_> {
    if account.is_empty() {
        Owner::System
    } else {
        Owner::Account(account)
    }
}

/// GET (list) and PUT (create) on a collection.
fn collection_route<P>(kind: Kind, target: fn(P) -> Target) -> MethodRouter<ApiState>
where
    P: axum::extract::FromRequestParts<ApiState> + Send + 'static,
{
    let list = move |State(s): State<ApiState>, p: P| async move {
        let (account, _) = target(p);
        let docs = with_store(&s, move |st| st.list_documents(owner(&account), kind)).await?;
        let page_size = docs.len();
        let entries = docs.iter().map(rendered).collect();
        Ok::<_, ApiError>(Answer::ok(Value::Array(entries)).extra("page_size", page_size.into()))
    };
    let create = move |State(s): State<ApiState>, p: P, env: Envelope| async move {
        let (account, _) = target(p);
        let account2 = account.clone();
        let write = DocumentWrite::Create(env.document()?);
        let saved = with_store(&s, move |st| {
            st.write_document(owner(&account), kind, None, write, None)
        })
        .await?;
        let answer = after_write(&s, &account2, kind, saved).await?;
        Ok::<_, ApiError>(Answer::with_status(StatusCode::CREATED, answer))
    };
    get(list).put(create)
}

/// GET, POST (replace), PATCH and DELETE on one document.
fn document_route<P>(kind: Kind, target: fn(P) -> Target) -> MethodRouter<ApiState>
where
    P: axum::extract::FromRequestParts<ApiState> + Send + 'static,
{
    let read = move |State(s): State<ApiState>, p: P| async move {
        let (account, id) = target(p);
        let id = id.unwrap_or_default();
        let found = with_store(&s, move |st| st.get_document(owner(&account), kind, &id)).await?;
        Ok::<_, ApiError>(Answer::ok(rendered(&found)))
    };
    let replace = move |s: State<ApiState>, p: P, env: Envelope| async move {
        let write = DocumentWrite::Replace(env.document()?);
        update(s, target(p), kind, write).await
    };
    let patch = move |s: State<ApiState>, p: P, env: Envelope| async move {
        let write = DocumentWrite::Patch(env.document()?);
        update(s, target(p), kind, write).await
    };
    let delete = move |State(s): State<ApiState>, p: P| async move {
        let (account, id) = target(p);
        let id = id.unwrap_or_default();
        let (acc, doc_id) = (account.clone(), id.clone());
        let gone = with_store(&s, move |st| {
            st.delete_document(owner(&acc), kind, &doc_id, None)
        })
        .await?;
        if kind == Kind::Media {
            super::media::deleted(&s, &account, &id);
        }
        Ok::<_, ApiError>(Answer::ok(rendered(&gone)))
    };
    get(read).post(replace).patch(patch).delete(delete)
}

async fn update(
    State(s): State<ApiState>,
    target: Target,
    kind: Kind,
    write: DocumentWrite,
) -> Answered {
    let (account, id) = target;
    let acc = account.clone();
    let saved = with_store(&s, move |st| {
        st.write_document(owner(&acc), kind, id.as_deref(), write, None)
    })
    .await?;
    Ok(Answer::ok(after_write(&s, &account, kind, saved).await?))
}

/// A written document as answered, after what its kind needs done (a `tts` media
/// document is spoken).
async fn after_write(
    s: &ApiState,
    account: &str,
    kind: Kind,
    saved: StoredDocument,
) -> Result<Value, ApiError> {
    match kind {
        Kind::Media => super::media::written(s, account, saved).await,
        _ => Ok(rendered(&saved)),
    }
}

/// The devices a user owns (`owner_id`); 404 for an unknown user.
async fn user_devices(
    State(s): State<ApiState>,
    Path((account, user)): Path<(String, String)>,
) -> Answered {
    let devices = with_store(&s, move |st| {
        let owner = Owner::Account(&account);
        st.get_document(owner, Kind::User, &user)?;
        st.find_documents(Kind::Device, "owner_id", &user, Some(owner))
    })
    .await?;
    let entries: Vec<Value> = devices.iter().map(|(_, d)| rendered(d)).collect();
    let page_size = entries.len();
    Ok(Answer::ok(Value::Array(entries)).extra("page_size", page_size.into()))
}
