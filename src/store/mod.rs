//! Persistent documents: accounts' conference docs and the system/account
//! config categories (e.g. `conferences`, which holds `profiles` and
//! `controls`).
//!
//! [`Store`] is synchronous, `Send + Sync`, and shared as `Arc<dyn Store>`.
//! From the tokio control plane call it inside `spawn_blocking`: reads take
//! microseconds, but every write commits with an fsync (lose nothing), which
//! can take milliseconds, and the control plane is one task that must not
//! stall SIP. Writes validate the document and the account-wide number
//! uniqueness inside one transaction, so two API calls (or two nodes sharing
//! PostgreSQL) cannot race a number into two conferences.
//!
//! Two backends answer alike ([`rules`] holds what they share): [`SqliteStore`],
//! one file in the data directory (a single node), and [`PostgresStore`], shared
//! by the nodes of a cluster (`[store] url`).

mod postgres;
mod postgres_rows;
mod rows;
mod rules;
mod seed;
mod sqlite;
mod sqlite_rows;

pub use postgres::PostgresStore;
pub use seed::Seed;
pub use sqlite::SqliteStore;

use crate::conference::document::ConferenceDoc;
use crate::conference::settings::ConferencesConfig;
use crate::conference::validation::ValidationErrors;
use crate::documents::{Kind, Owner};
use crate::registrar::{Binding, DeviceRef};
use serde_json::{Map, Value};

/// The config category of [`ConferencesConfig`].
pub const CONFERENCES: &str = "conferences";

/// A conference doc as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConference {
    pub id: String,
    /// Starts at 1, +1 on every write (deletion included).
    pub revision: u64,
    pub doc: ConferenceDoc,
}

/// A document of one of the generic [`Kind`]s as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDocument {
    pub id: String,
    /// Starts at 1, +1 on every write (deletion included).
    pub revision: u64,
    pub doc: Map<String, Value>,
}

/// A write to a generic document (see [`Store::write_document`]).
#[derive(Debug, Clone, PartialEq)]
pub enum DocumentWrite {
    /// PUT: a new document; an id if given must be free.
    Create(Value),
    /// POST: the whole document replaced.
    Replace(Value),
    /// PATCH: merged into the stored document (RFC 7396).
    Patch(Value),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("revision conflict: expected {expected}, stored {stored}")]
    Conflict { expected: u64, stored: u64 },
    /// A 400 for the API, in Kazoo's shape.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// A seed file or the data directory.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("stored document is not valid JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// PostgreSQL refused a statement (a fault of ours, not of the connection).
    #[error("database: {0}")]
    Postgres(String),
    /// The shared database cannot be reached (down, or the connection broke): the API
    /// answers 503 with Retry-After, and the write did not happen.
    #[error("database unreachable: {0}")]
    Unreachable(String),
}

impl From<::postgres::Error> for StoreError {
    /// Errors the server reports about the statement are ours; anything else (no
    /// connection, connection lost, the server shutting down or out of connections) is
    /// the database being unreachable.
    fn from(e: ::postgres::Error) -> Self {
        let connection_class = |code: &str| ["08", "53", "57"].iter().any(|c| code.starts_with(c));
        match e.code() {
            Some(code) if !connection_class(code.code()) => StoreError::Postgres(e.to_string()),
            _ => StoreError::Unreachable(e.to_string()),
        }
    }
}

/// Who owns a found document: an account id, or `None` for the system.
pub type Owned = Option<String>;

/// Documents by account. Conference ids are unique per account; deleted
/// conferences are kept (soft delete) but invisible to every read.
pub trait Store: Send + Sync {
    /// The account's conferences, by id.
    fn list_conferences(&self, account: &str) -> Result<Vec<StoredConference>, StoreError>;

    fn get_conference(&self, account: &str, id: &str) -> Result<StoredConference, StoreError>;

    /// Creates from an API body (defaults filled, validated, numbers unique).
    /// `id` `None` generates a Kazoo-style 32-hex id.
    fn create_conference(
        &self,
        account: &str,
        id: Option<&str>,
        body: Value,
    ) -> Result<StoredConference, StoreError>;

    /// POST: replaces the doc; `revision` if given must match.
    fn replace_conference(
        &self,
        account: &str,
        id: &str,
        body: Value,
        revision: Option<u64>,
    ) -> Result<StoredConference, StoreError>;

    /// PATCH: merges `patch` into the doc (see [`ConferenceDoc::patched`]).
    fn patch_conference(
        &self,
        account: &str,
        id: &str,
        patch: &Value,
        revision: Option<u64>,
    ) -> Result<StoredConference, StoreError>;

    /// Soft delete; returns the doc as it was.
    fn delete_conference(
        &self,
        account: &str,
        id: &str,
        revision: Option<u64>,
    ) -> Result<StoredConference, StoreError>;

    /// Conferences with `number` in any of their number lists (§1 step 3:
    /// the caller wants exactly one).
    fn find_by_number(
        &self,
        account: &str,
        number: &str,
    ) -> Result<Vec<StoredConference>, StoreError>;

    /// A config category document; `account` `None` is the system's. Empty
    /// when absent.
    fn config(
        &self,
        account: Option<&str>,
        category: &str,
    ) -> Result<Map<String, Value>, StoreError>;

    fn put_config(
        &self,
        account: Option<&str>,
        category: &str,
        doc: Map<String, Value>,
    ) -> Result<(), StoreError>;

    /// The owner's documents of `kind`, by id.
    fn list_documents(&self, owner: Owner, kind: Kind) -> Result<Vec<StoredDocument>, StoreError>;

    fn get_document(
        &self,
        owner: Owner,
        kind: Kind,
        id: &str,
    ) -> Result<StoredDocument, StoreError>;

    /// Creates, replaces or patches (defaults filled, validated by the kind, its unique keys
    /// checked and indexed in the same transaction). `id` `None` (create only) generates a
    /// Kazoo-style 32-hex id; `revision` if given must match.
    fn write_document(
        &self,
        owner: Owner,
        kind: Kind,
        id: Option<&str>,
        write: DocumentWrite,
        revision: Option<u64>,
    ) -> Result<StoredDocument, StoreError>;

    /// Soft delete (its keys are freed); returns the doc as it was.
    fn delete_document(
        &self,
        owner: Owner,
        kind: Kind,
        id: &str,
        revision: Option<u64>,
    ) -> Result<StoredDocument, StoreError>;

    /// Live documents whose key `field` (one of [`Kind::keys`]) has `value`, with their
    /// owners: within `owner`, or across every owner when `None` (a REGISTER's credentials).
    fn find_documents(
        &self,
        kind: Kind,
        field: &str,
        value: &str,
        owner: Option<Owner>,
    ) -> Result<Vec<(Owned, StoredDocument)>, StoreError>;

    /// Stores what one registrar knows of a device's bindings: `bindings` it holds now and
    /// `dropped` it removed, merged into the stored ones by contact
    /// ([`crate::registrar::merge_bindings`]: another node's contacts of the device stay).
    /// No binding left forgets the device.
    fn put_bindings(
        &self,
        device: &DeviceRef,
        bindings: &[Binding],
        dropped: &[Binding],
    ) -> Result<(), StoreError>;

    /// Every device's stored bindings, expired ones included (the registrar drops them).
    fn bindings(&self) -> Result<Vec<(DeviceRef, Vec<Binding>)>, StoreError>;

    /// One device's stored bindings, expired ones included (what dialing it rings: the
    /// registrar stores a binding before the phone hears its 200).
    fn device_bindings(&self, device: &DeviceRef) -> Result<Vec<Binding>, StoreError>;

    /// The account's `conferences` config over the system's.
    fn conferences_config(&self, account: &str) -> Result<ConferencesConfig, StoreError> {
        Ok(ConferencesConfig::new(
            self.config(None, CONFERENCES)?,
            self.config(Some(account), CONFERENCES)?,
        ))
    }
}

/// A write that names a revision must name the stored one.
fn check_revision(stored: u64, expected: Option<u64>) -> Result<(), StoreError> {
    match expected {
        Some(e) if e != stored => Err(StoreError::Conflict {
            expected: e,
            stored,
        }),
        _ => Ok(()),
    }
}
