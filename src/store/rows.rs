//! What a database backend offers the store: rows read and written inside one transaction
//! ([`Rows`]) and the transaction itself ([`Backend`]). The rules (revisions, validation,
//! unique numbers and keys, seeding) live once in [`super::rules`], so SQLite and PostgreSQL
//! answer every call alike; each backend only speaks its SQL.

use super::StoreError;

/// A stored document row: conference or generic document.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    /// Starts at 1, +1 on every write (deletion included).
    pub revision: u64,
    /// Soft deleted: kept (its revisions continue) but invisible to reads.
    pub deleted: bool,
    /// The document as JSON text.
    pub doc: String,
}

/// A found key's document and its account id (`""` for the system).
pub type FoundRow = (String, Row);

/// One transaction's view of the tables. Account `""` is the system.
pub trait Rows {
    /// Serialises every writer that takes `name` until this transaction ends, across every
    /// process sharing the database (a no-op where write transactions are exclusive anyway).
    fn lock(&mut self, name: &str) -> Result<(), StoreError>;

    /// The conference row, deleted or not.
    fn conference(&mut self, account: &str, id: &str) -> Result<Option<Row>, StoreError>;
    /// The account's live conferences, by id.
    fn conferences(&mut self, account: &str) -> Result<Vec<Row>, StoreError>;
    /// Inserts or overwrites the row.
    fn put_conference(&mut self, account: &str, row: &Row) -> Result<(), StoreError>;

    /// The document row of `kind` (its collection name), deleted or not.
    fn document(&mut self, account: &str, kind: &str, id: &str) -> Result<Option<Row>, StoreError>;
    /// The owner's live documents of `kind`, by id.
    fn documents(&mut self, account: &str, kind: &str) -> Result<Vec<Row>, StoreError>;
    fn put_document(&mut self, account: &str, kind: &str, row: &Row) -> Result<(), StoreError>;

    /// Whether some document holds `value` for the key (`scope` an account or `*`).
    fn key_held(
        &mut self,
        kind: &str,
        field: &str,
        scope: &str,
        value: &str,
    ) -> Result<bool, StoreError>;
    /// Indexes one key value of a document (a repeated value is one row).
    fn add_key(&mut self, key: KeyRow<'_>) -> Result<(), StoreError>;
    /// Removes every key row of the document.
    fn drop_keys(&mut self, account: &str, kind: &str, id: &str) -> Result<(), StoreError>;
    /// Live documents holding `value` for the key, within `account` or across all, ordered
    /// by account and id.
    fn find(
        &mut self,
        kind: &str,
        field: &str,
        value: &str,
        account: Option<&str>,
    ) -> Result<Vec<FoundRow>, StoreError>;

    /// A config category document's JSON text.
    fn config(&mut self, account: &str, category: &str) -> Result<Option<String>, StoreError>;
    fn put_config(&mut self, account: &str, category: &str, doc: &str) -> Result<(), StoreError>;

    /// A store-wide flag (e.g. `seeded`).
    fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError>;
    fn put_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError>;

    /// A device's bindings as JSON text; `None` deletes its row.
    fn put_bindings(
        &mut self,
        account: &str,
        device: &str,
        bindings: Option<&str>,
    ) -> Result<(), StoreError>;
    /// (account, device, bindings JSON), by account and device; one device when given.
    fn bindings(
        &mut self,
        device: Option<(&str, &str)>,
    ) -> Result<Vec<(String, String, String)>, StoreError>;
}

/// One row of the key index.
#[derive(Debug, Clone, Copy)]
pub struct KeyRow<'a> {
    pub kind: &'a str,
    pub field: &'a str,
    pub scope: &'a str,
    pub value: &'a str,
    pub account: &'a str,
    pub id: &'a str,
}

/// Whether a transaction only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// A database the [`super::Store`] runs on.
pub trait Backend: Send + Sync {
    /// Runs `f` in one transaction, committed when it returns `Ok`, rolled back otherwise:
    /// a write is whole or absent. `f` may run twice when the connection turned out to be
    /// lost before anything was committed (the retry is on a fresh connection).
    fn transaction<T: Send>(
        &self,
        access: Access,
        f: &(dyn Fn(&mut dyn Rows) -> Result<T, StoreError> + Sync),
    ) -> Result<T, StoreError>;
}
