//! [`Store`](super::Store) on PostgreSQL, shared by every node of a cluster: the same
//! tables as SQLite (JSON text columns), created by versioned migrations at start, and one
//! connection that is reopened when it breaks.
//!
//! The `postgres` client is synchronous but runs its own small tokio runtime inside, which
//! must not be started on a thread that already runs async tasks: off such a thread (the
//! call plane calls the store from its task) each call runs on a scoped thread of its own.
//! Cross-node races are closed with advisory transaction locks (see [`super::rules`]),
//! which hold until COMMIT or ROLLBACK.

use super::postgres_rows::{PgRows, lock};
use super::rows::{Access, Backend, Rows};
use super::{Seed, StoreError, rules};
use postgres::{Client, Config, NoTls};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a connection attempt may take before the store answers "unreachable".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Unacknowledged data (or an idle connection's unanswered probes) this long: the
/// connection is lost.
const LOST_AFTER: Duration = Duration::from_secs(5);
/// After a failed connection attempt, calls answer "unreachable" at once for this long
/// instead of each waiting for a new attempt (the call plane asks on every new call).
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// The schema, one step per version; a started node applies the steps its database lacks.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "
CREATE TABLE conferences (
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT false,
    doc TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE TABLE config (
    account_id TEXT NOT NULL,
    category TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (account_id, category)
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT false,
    doc TEXT NOT NULL,
    PRIMARY KEY (account_id, kind, id)
);
CREATE TABLE document_keys (
    kind TEXT NOT NULL,
    field TEXT NOT NULL,
    scope TEXT NOT NULL,
    value TEXT NOT NULL,
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (kind, field, scope, value, account_id, id)
);
CREATE INDEX document_keys_of ON document_keys (account_id, kind, id);
CREATE TABLE registrations (
    account_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    bindings TEXT NOT NULL,
    PRIMARY KEY (account_id, device_id)
);
",
)];

/// The PostgreSQL store.
pub struct PostgresStore {
    config: Config,
    conn: Mutex<Connection>,
}

#[derive(Default)]
struct Connection {
    client: Option<Client>,
    failed_at: Option<Instant>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password.
        f.debug_struct("PostgresStore")
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/dbname`) and brings the schema
    /// up to date; fails when the database cannot be reached.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let mut config: Config = url
            .parse()
            .map_err(|e: postgres::Error| StoreError::Postgres(format!("store url: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A database host that vanished without closing the connection (power, network)
        // is noticed in seconds, not after the kernel's 15 minutes of retransmissions.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(LOST_AFTER);
        }
        config
            .keepalives_idle(LOST_AFTER)
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3);
        config.application_name("chorus");
        let store = PostgresStore {
            config,
            conn: Mutex::default(),
        };
        store.run(Access::Write, &migrate)?;
        Ok(store)
    }

    /// [`open`](Self::open) and, on the database's first start only, loads `seed`
    /// (conferences into `account`).
    pub fn open_seeded(url: &str, seed: &Seed, account: &str) -> Result<Self, StoreError> {
        let store = Self::open(url)?;
        rules::seed(&store, seed, account)?;
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-transaction dropped the transaction (rolled back): the client is sound.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `f` (in one transaction when it writes), retried once on a fresh connection when
    /// the connection was found lost before COMMIT.
    fn run<T: Send>(&self, access: Access, f: &Work<'_, T>) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let conn = &mut *conn;
        off_async_threads(|| {
            let retry = match conn.attempt(&self.config, access, f) {
                Ok(done) => return Ok(done),
                Err(Ok(lost)) => lost,
                Err(Err(e)) => return Err(drop_if_lost(conn, e)),
            };
            tracing::warn!(error = %retry, "PostgreSQL connection lost: reconnecting");
            conn.client = None;
            conn.attempt(&self.config, access, f)
                .map_err(|e| drop_if_lost(conn, e.unwrap_or_else(|e| e)))
        })
    }
}

/// What runs on the connection, inside one transaction when it writes.
type Work<'a, T> = dyn Fn(&mut Client) -> Result<T, StoreError> + Sync + 'a;

/// An open write transaction, rolled back unless committed (also when `f` panics).
struct Open<'a> {
    client: &'a mut Client,
    committed: bool,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if !self.committed {
            // On a lost connection there is nothing to roll back: the server did.
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

impl Connection {
    /// The open client, connecting first when there is none or it broke.
    fn client(&mut self, config: &Config) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            if let Some(at) = self.failed_at
                && at.elapsed() < RECONNECT_PAUSE
            {
                return Err(StoreError::Unreachable("connection failed just now".into()));
            }
            match config.connect(NoTls) {
                Ok(c) => {
                    self.failed_at = None;
                    self.client = Some(c);
                }
                Err(e) => {
                    self.failed_at = Some(Instant::now());
                    return Err(StoreError::Unreachable(e.to_string()));
                }
            }
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// One attempt: `Err(Ok(e))` when the connection was lost before COMMIT (nothing
    /// written: worth one retry), `Err(Err(e))` otherwise.
    fn attempt<T>(
        &mut self,
        config: &Config,
        access: Access,
        f: &Work<'_, T>,
    ) -> Result<T, Result<StoreError, StoreError>> {
        let client = self.client(config).map_err(Err)?;
        let lost = |e: StoreError| match e {
            e @ StoreError::Unreachable(_) => Ok(e),
            e => Err(e),
        };
        if access == Access::Read {
            // Every read of the rules is one statement, its own snapshot: no BEGIN and
            // COMMIT round trips around it.
            return f(client).map_err(lost);
        }
        client.batch_execute("BEGIN").map_err(|e| lost(e.into()))?;
        let mut open = Open {
            client,
            committed: false,
        };
        let done = f(open.client).map_err(lost)?;
        // A connection lost during COMMIT may or may not have committed: not retried.
        open.committed = true;
        open.client
            .batch_execute("COMMIT")
            .map_err(|e| Err(e.into()))?;
        Ok(done)
    }
}

impl Backend for PostgresStore {
    fn transaction<T: Send>(
        &self,
        access: Access,
        f: &(dyn Fn(&mut dyn Rows) -> Result<T, StoreError> + Sync),
    ) -> Result<T, StoreError> {
        // Every transaction is READ COMMITTED; writers serialise on advisory locks.
        self.run(access, &|client| f(&mut PgRows(client)))
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Closing the client runs its runtime too: not on an async thread either.
        let client = self.lock().client.take();
        off_async_threads(|| drop(client));
    }
}

/// A lost connection is not reused.
fn drop_if_lost(conn: &mut Connection, e: StoreError) -> StoreError {
    if matches!(e, StoreError::Unreachable(_)) {
        conn.client = None;
    }
    e
}

/// Runs `f` here, or on a scoped thread when this thread is inside a tokio runtime (whose
/// worker threads the `postgres` client's own runtime must not block on).
fn off_async_threads<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Applies the migrations this database lacks, one node at a time.
fn migrate(tx: &mut Client) -> Result<(), StoreError> {
    lock(tx, "schema_migrations")?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )?;
        tracing::info!(version, "PostgreSQL schema migrated");
    }
    Ok(())
}
