//! [`Store`](super::Store) on one SQLite file: JSON text columns, WAL, schema created in
//! place, `synchronous=FULL` so a committed write survives a crash.

use super::rows::{Access, Backend, Rows};
use super::sqlite_rows::SqliteRows;
use super::{Seed, StoreError, rules};
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The database file inside the data directory.
pub const FILE_NAME: &str = "chorus.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conferences (
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL CHECK (json_valid(doc)),
    PRIMARY KEY (account_id, id)
);
CREATE TABLE IF NOT EXISTS config (
    account_id TEXT NOT NULL,
    category TEXT NOT NULL,
    doc TEXT NOT NULL CHECK (json_valid(doc)),
    PRIMARY KEY (account_id, category)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL CHECK (json_valid(doc)),
    PRIMARY KEY (account_id, kind, id)
);
CREATE TABLE IF NOT EXISTS document_keys (
    kind TEXT NOT NULL,
    field TEXT NOT NULL,
    scope TEXT NOT NULL,
    value TEXT NOT NULL,
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (kind, field, scope, value, account_id, id)
);
CREATE INDEX IF NOT EXISTS document_keys_of ON document_keys (account_id, kind, id);
CREATE TABLE IF NOT EXISTS registrations (
    account_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    bindings TEXT NOT NULL CHECK (json_valid(bindings)),
    PRIMARY KEY (account_id, device_id)
);
";

/// The SQLite store. One connection behind a mutex: SQLite serialises writers
/// anyway, and the control plane's load is a few queries per call setup.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))?;
        conn.execute_batch("PRAGMA synchronous=FULL;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    /// Opens `{data_dir}/chorus.sqlite3` and, on its first start only, loads
    /// `seed` (conferences into `account`).
    pub fn open_seeded(data_dir: &Path, seed: &Seed, account: &str) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::File {
            path: data_dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let store = Self::open(&data_dir.join(FILE_NAME))?;
        rules::seed(&store, seed, account)?;
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-transaction rolled it back on unwind: the connection is sound.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Backend for SqliteStore {
    fn transaction<T: Send>(
        &self,
        access: Access,
        f: &(dyn Fn(&mut dyn Rows) -> Result<T, StoreError> + Sync),
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        // Writers take the write lock at BEGIN: the checks they make hold until COMMIT.
        let behavior = match access {
            Access::Read => TransactionBehavior::Deferred,
            Access::Write => TransactionBehavior::Immediate,
        };
        let tx = conn.transaction_with_behavior(behavior)?;
        let done = f(&mut SqliteRows(&tx))?;
        tx.commit()?;
        Ok(done)
    }
}
