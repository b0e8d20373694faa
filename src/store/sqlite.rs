//! [`Store`] on one SQLite file: JSON text columns, WAL, schema created in
//! place, `synchronous=FULL` so a committed write survives a crash.

use super::sqlite_documents::{self as documents, sql_int};
use super::sqlite_registrations as registrations;
use super::{
    DocumentWrite, Owned, Seed, Store, StoreError, StoredConference, StoredDocument, check_revision,
};
use crate::conference::document::{ConferenceDoc, numbers_in_use, numbers_in_use_error};
use crate::documents::{Kind, Owner};
use crate::registrar::{Binding, DeviceRef};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The database file inside the data directory.
pub const FILE_NAME: &str = "chorus.sqlite3";

/// The system's config rows use this account id.
const SYSTEM: &str = "";

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
        conn.execute_batch(documents::SCHEMA)?;
        conn.execute_batch(registrations::SCHEMA)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    /// Opens `{data_dir}/chorus.sqlite3` and, on its first start only, loads
    /// `seed` (conferences into `account`). A bad seed fails the start and
    /// writes nothing, so the next start tries again.
    pub fn open_seeded(data_dir: &Path, seed: &Seed, account: &str) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::File {
            path: data_dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let store = Self::open(&data_dir.join(FILE_NAME))?;
        store.seed(seed, account)?;
        Ok(store)
    }

    fn seed(&self, seed: &Seed, account: &str) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seeded: Option<String> = tx
            .query_row("SELECT value FROM meta WHERE key = 'seeded'", [], |r| {
                r.get(0)
            })
            .optional()?;
        if seeded.is_some() {
            return Ok(());
        }
        for (category, doc) in &seed.system_config {
            put_config(&tx, SYSTEM, category, doc)?;
        }
        for (path, id, body) in &seed.conferences {
            save(&tx, account, Some(id), None, |_| {
                ConferenceDoc::from_request(body.clone()).map_err(StoreError::from)
            })
            .map_err(|e| StoreError::File {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        tx.execute("INSERT INTO meta (key, value) VALUES ('seeded', '1')", [])?;
        tx.commit()?;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-transaction rolled it back on unwind: the connection is sound.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One write in an immediate transaction (see [`save`]).
    fn write(
        &self,
        account: &str,
        id: Option<&str>,
        revision: Option<u64>,
        make: impl FnOnce(Option<&StoredConference>) -> Result<ConferenceDoc, StoreError>,
    ) -> Result<StoredConference, StoreError> {
        self.immediate(|tx| save(tx, account, id, revision, make))
    }

    /// `f` in an immediate (write-locking) transaction, committed when it succeeds.
    fn immediate<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done = f(&tx)?;
        tx.commit()?;
        Ok(done)
    }

    fn update(
        &self,
        account: &str,
        id: &str,
        revision: Option<u64>,
        make: impl FnOnce(&ConferenceDoc) -> Result<ConferenceDoc, StoreError>,
    ) -> Result<StoredConference, StoreError> {
        self.write(account, Some(id), revision, |current| match current {
            Some(c) => make(&c.doc),
            None => Err(StoreError::NotFound(id.to_string())),
        })
    }
}

impl Store for SqliteStore {
    fn list_conferences(&self, account: &str) -> Result<Vec<StoredConference>, StoreError> {
        live(&self.lock(), account)
    }

    fn get_conference(&self, account: &str, id: &str) -> Result<StoredConference, StoreError> {
        load(&self.lock(), account, id)?
            .filter(|(_, deleted)| !deleted)
            .map(|(c, _)| c)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    fn create_conference(
        &self,
        account: &str,
        id: Option<&str>,
        body: Value,
    ) -> Result<StoredConference, StoreError> {
        self.write(account, id, None, |current| match current {
            Some(c) => Err(StoreError::Exists(c.id.clone())),
            None => Ok(ConferenceDoc::from_request(body)?),
        })
    }

    fn replace_conference(
        &self,
        account: &str,
        id: &str,
        body: Value,
        revision: Option<u64>,
    ) -> Result<StoredConference, StoreError> {
        self.update(account, id, revision, |_| {
            Ok(ConferenceDoc::from_request(body)?)
        })
    }

    fn patch_conference(
        &self,
        account: &str,
        id: &str,
        patch: &Value,
        revision: Option<u64>,
    ) -> Result<StoredConference, StoreError> {
        self.update(account, id, revision, |doc| Ok(doc.patched(patch)?))
    }

    fn delete_conference(
        &self,
        account: &str,
        id: &str,
        revision: Option<u64>,
    ) -> Result<StoredConference, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = match load(&tx, account, id)? {
            Some((c, false)) => c,
            _ => return Err(StoreError::NotFound(id.to_string())),
        };
        check_revision(current.revision, revision)?;
        tx.execute(
            "UPDATE conferences SET deleted = 1, revision = revision + 1
             WHERE account_id = ?1 AND id = ?2",
            params![account, id],
        )?;
        tx.commit()?;
        Ok(current)
    }

    fn find_by_number(
        &self,
        account: &str,
        number: &str,
    ) -> Result<Vec<StoredConference>, StoreError> {
        let mut all = live(&self.lock(), account)?;
        all.retain(|c| c.doc.all_numbers().contains(&number));
        Ok(all)
    }

    fn config(
        &self,
        account: Option<&str>,
        category: &str,
    ) -> Result<Map<String, Value>, StoreError> {
        let text: Option<String> = self
            .lock()
            .query_row(
                "SELECT doc FROM config WHERE account_id = ?1 AND category = ?2",
                params![account.unwrap_or(SYSTEM), category],
                |r| r.get(0),
            )
            .optional()?;
        match text {
            Some(t) => Ok(serde_json::from_str(&t)?),
            None => Ok(Map::new()),
        }
    }

    fn put_config(
        &self,
        account: Option<&str>,
        category: &str,
        doc: Map<String, Value>,
    ) -> Result<(), StoreError> {
        put_config(&self.lock(), account.unwrap_or(SYSTEM), category, &doc)
    }

    fn list_documents(&self, owner: Owner, kind: Kind) -> Result<Vec<StoredDocument>, StoreError> {
        documents::list(&self.lock(), owner, kind)
    }

    fn get_document(
        &self,
        owner: Owner,
        kind: Kind,
        id: &str,
    ) -> Result<StoredDocument, StoreError> {
        documents::get(&self.lock(), owner, kind, id)
    }

    fn write_document(
        &self,
        owner: Owner,
        kind: Kind,
        id: Option<&str>,
        write: DocumentWrite,
        revision: Option<u64>,
    ) -> Result<StoredDocument, StoreError> {
        self.immediate(|tx| documents::write(tx, owner, kind, id, write, revision))
    }

    fn delete_document(
        &self,
        owner: Owner,
        kind: Kind,
        id: &str,
        revision: Option<u64>,
    ) -> Result<StoredDocument, StoreError> {
        self.immediate(|tx| documents::delete(tx, owner, kind, id, revision))
    }

    fn find_documents(
        &self,
        kind: Kind,
        field: &str,
        value: &str,
        owner: Option<Owner>,
    ) -> Result<Vec<(Owned, StoredDocument)>, StoreError> {
        documents::find(&self.lock(), kind, field, value, owner)
    }

    fn put_bindings(&self, device: &DeviceRef, bindings: &[Binding]) -> Result<(), StoreError> {
        registrations::put(&self.lock(), device, bindings)
    }

    fn bindings(&self) -> Result<Vec<(DeviceRef, Vec<Binding>)>, StoreError> {
        registrations::all(&self.lock())
    }

    fn device_bindings(&self, device: &DeviceRef) -> Result<Vec<Binding>, StoreError> {
        registrations::of(&self.lock(), device)
    }
}

fn put_config(
    conn: &Connection,
    account: &str,
    category: &str,
    doc: &Map<String, Value>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO config (account_id, category, doc) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, category) DO UPDATE SET doc = excluded.doc",
        params![account, category, serde_json::to_string(doc)?],
    )?;
    Ok(())
}

/// Loads the row (deleted or not), checks the revision, builds the new doc
/// with `make` (given the live doc, if any), enforces number uniqueness in the
/// account and writes revision + 1. The caller owns the transaction.
fn save(
    conn: &Connection,
    account: &str,
    id: Option<&str>,
    revision: Option<u64>,
    make: impl FnOnce(Option<&StoredConference>) -> Result<ConferenceDoc, StoreError>,
) -> Result<StoredConference, StoreError> {
    let id = match id {
        Some(id) => id.to_string(),
        None => conn.query_row("SELECT lower(hex(randomblob(16)))", [], |r| r.get(0))?,
    };
    let row = load(conn, account, &id)?;
    let live_row = row.as_ref().filter(|(_, deleted)| !deleted).map(|(c, _)| c);
    if let Some(c) = live_row {
        check_revision(c.revision, revision)?;
    }
    let doc = make(live_row)?;
    let others = live(conn, account)?;
    let taken = numbers_in_use(
        &doc,
        Some(&id),
        others.iter().map(|c| (c.id.as_str(), &c.doc)),
    );
    if !taken.is_empty() {
        return Err(numbers_in_use_error(&taken).into());
    }
    let revision = row.map_or(1, |(c, _)| c.revision + 1);
    conn.execute(
        "INSERT INTO conferences (account_id, id, revision, deleted, doc) VALUES (?1, ?2, ?3, 0, ?4)
         ON CONFLICT (account_id, id) DO UPDATE
         SET revision = excluded.revision, deleted = 0, doc = excluded.doc",
        params![account, id, sql_int(revision), serde_json::to_string(doc.json())?],
    )?;
    Ok(StoredConference { id, revision, doc })
}

/// The row and whether it is deleted.
fn load(
    conn: &Connection,
    account: &str,
    id: &str,
) -> Result<Option<(StoredConference, bool)>, StoreError> {
    let row: Option<(i64, bool, String)> = conn
        .query_row(
            "SELECT revision, deleted, doc FROM conferences WHERE account_id = ?1 AND id = ?2",
            params![account, id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    row.map(|(revision, deleted, text)| Ok((stored(id.to_string(), revision, &text)?, deleted)))
        .transpose()
}

fn live(conn: &Connection, account: &str) -> Result<Vec<StoredConference>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, revision, doc FROM conferences
         WHERE account_id = ?1 AND deleted = 0 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![account], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    rows.map(|row| {
        let (id, revision, text) = row?;
        stored(id, revision, &text)
    })
    .collect()
}

fn stored(id: String, revision: i64, text: &str) -> Result<StoredConference, StoreError> {
    let obj: Map<String, Value> = serde_json::from_str(text)?;
    Ok(StoredConference {
        id,
        revision: u64::try_from(revision).unwrap_or_default(),
        doc: ConferenceDoc::from_map(obj),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::controls;
    use crate::conference::flow::{
        CallflowOptions, ConferenceState, Flow, FlowAction, FlowSetup, Target,
    };
    use crate::conference::profile;
    use crate::conference::vocabulary::Role;
    use serde_json::json;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("chorus-store-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const ACCT: &str = "acct";

    fn open(dir: &TempDir) -> SqliteStore {
        SqliteStore::open(&dir.0.join(FILE_NAME)).expect("open")
    }

    fn repo_seed() -> Seed {
        Seed::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/seed")).expect("seed")
    }

    #[test]
    fn a_restart_loses_nothing() {
        let dir = TempDir::new();
        let created = {
            let s = open(&dir);
            let c = s
                .create_conference(ACCT, None, json!({"name": "a", "x": [1]}))
                .unwrap();
            s.patch_conference(ACCT, &c.id, &json!({"play_name": true}), Some(1))
                .unwrap();
            s.put_config(
                None,
                "conferences",
                json!({"pin_timeout": 7000})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )
            .unwrap();
            c
        };
        assert_eq!(created.id.len(), 32);
        assert!(created.id.bytes().all(|b| b.is_ascii_hexdigit()));
        let s: std::sync::Arc<dyn Store> = std::sync::Arc::new(open(&dir));
        let got = s.get_conference(ACCT, &created.id).unwrap();
        assert_eq!(got.revision, 2);
        assert_eq!(got.doc.json()["x"], json!([1]));
        assert!(got.doc.play_name() && got.doc.join_muted(Role::Member));
        assert_eq!(s.conferences_config(ACCT).unwrap().pin_timeout_ms(), 7000);
    }

    #[test]
    fn crud_with_revisions_and_soft_delete() {
        let dir = TempDir::new();
        let s = open(&dir);
        let c = s
            .create_conference(ACCT, Some("c1"), json!({"name": "a"}))
            .unwrap();
        assert_eq!(c.revision, 1);
        assert!(matches!(
            s.create_conference(ACCT, Some("c1"), json!({})),
            Err(StoreError::Exists(_))
        ));
        let r = s
            .replace_conference(ACCT, "c1", json!({"name": "b"}), Some(1))
            .unwrap();
        assert_eq!((r.revision, r.doc.name()), (2, Some("b")));
        assert!(matches!(
            s.replace_conference(ACCT, "c1", json!({"name": "c"}), Some(1)),
            Err(StoreError::Conflict {
                expected: 1,
                stored: 2
            })
        ));
        assert!(matches!(
            s.patch_conference(ACCT, "c1", &json!({"name": 5}), None),
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(
            s.delete_conference(ACCT, "c1", None).unwrap().doc.name(),
            Some("b")
        );
        assert!(matches!(
            s.get_conference(ACCT, "c1"),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.delete_conference(ACCT, "c1", None),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.patch_conference(ACCT, "c1", &json!({}), None),
            Err(StoreError::NotFound(_))
        ));
        assert!(s.list_conferences(ACCT).unwrap().is_empty());
        // Re-creating a deleted id continues its revisions.
        assert_eq!(
            s.create_conference(ACCT, Some("c1"), json!({}))
                .unwrap()
                .revision,
            4
        );
        assert!(s.list_conferences("other").unwrap().is_empty());
    }

    #[test]
    fn numbers_are_unique_per_account_and_found() {
        let dir = TempDir::new();
        let s = open(&dir);
        s.create_conference(ACCT, Some("a"), json!({"conference_numbers": ["1000"]}))
            .unwrap();
        let e = s
            .create_conference(ACCT, Some("b"), json!({"member": {"numbers": ["1000"]}}))
            .unwrap_err();
        let StoreError::Invalid(v) = e else {
            panic!("{e}")
        };
        assert_eq!(v.to_json()["numbers"]["unique"]["cause"], json!(["1000"]));
        // Updating a doc with its own numbers is fine; another account is separate.
        s.patch_conference(ACCT, "a", &json!({"name": "x"}), None)
            .unwrap();
        s.create_conference("other", Some("b"), json!({"conference_numbers": ["1000"]}))
            .unwrap();
        // A deleted conference frees its numbers.
        s.delete_conference(ACCT, "a", None).unwrap();
        s.create_conference(ACCT, Some("b"), json!({"moderator": {"numbers": ["1000"]}}))
            .unwrap();
        let found = s.find_by_number(ACCT, "1000").unwrap();
        assert_eq!(
            found.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert!(s.find_by_number(ACCT, "1001").unwrap().is_empty());
    }

    #[test]
    fn seeds_load_once_from_the_repo_config() {
        let dir = TempDir::new();
        let seed = repo_seed();
        let s = SqliteStore::open_seeded(&dir.0, &seed, ACCT).unwrap();
        let demo = s.get_conference(ACCT, "demo").unwrap();
        assert_eq!(demo.doc.conference_numbers(), ["1000"]);
        assert_eq!(demo.doc.numbers(Role::Member), ["1001"]);
        assert_eq!(demo.doc.pins(Role::Member), ["1234"]);
        assert_eq!(demo.doc.numbers(Role::Moderator), ["1002"]);
        assert_eq!(demo.doc.pins(Role::Moderator), ["4321"]);
        for n in ["1000", "1001", "1002"] {
            assert_eq!(s.find_by_number(ACCT, n).unwrap().len(), 1, "{n}");
        }
        let cfg = s.conferences_config(ACCT).unwrap();
        assert_eq!(cfg.pin_timeout_ms(), 5000);
        assert_eq!(controls::group("default", &demo.doc, &cfg).len(), 7);
        let profile = profile::resolve(&demo.doc, &cfg, None).unwrap();
        assert_eq!(profile.mixer.rate(), 48000);
        assert_eq!(profile.sounds["locked-sound"], "conf-locked");
        // A second start does not re-seed: a deleted seed stays deleted.
        s.delete_conference(ACCT, "demo", None).unwrap();
        drop(s);
        let s = SqliteStore::open_seeded(&dir.0, &seed, ACCT).unwrap();
        assert!(s.get_conference(ACCT, "demo").is_err());
    }

    /// The seeded demo as a caller meets it: dial 1001, PIN 1234, join.
    #[test]
    fn seeded_demo_member_joins_by_number_and_pin() {
        let dir = TempDir::new();
        let s = SqliteStore::open_seeded(&dir.0, &repo_seed(), ACCT).unwrap();
        let [found] = s
            .find_by_number(ACCT, "1001")
            .unwrap()
            .try_into()
            .unwrap_or_else(|v: Vec<_>| panic!("one conference expected, got {}", v.len()));
        let mut flow = Flow::new(FlowSetup {
            callflow: CallflowOptions::for_doc(&found.doc),
            target: Target::Conference {
                id: found.id,
                doc: found.doc,
            },
            dialed: Some("1001".into()),
            config: s.conferences_config(ACCT).unwrap(),
            name_media: None,
        });
        let now = Instant::now();
        flow.on_answered(now);
        flow.on_prompt_finished(now);
        for d in "1234#".chars() {
            flow.on_digit(now, d);
        }
        flow.on_conference_state(now, ConferenceState::default());
        let actions: Vec<_> = std::iter::from_fn(|| flow.poll()).collect();
        let Some(FlowAction::Join(join)) = actions.last() else {
            panic!("{actions:?}")
        };
        assert_eq!(
            (join.conference_id.as_str(), join.role),
            ("demo", Role::Member)
        );
        assert!(!join.flags.mute, "the demo seed lets members talk");
    }

    #[test]
    fn a_bad_seed_names_its_file_and_writes_nothing() {
        let dir = TempDir::new();
        let seed_dir = dir.0.join("seed");
        std::fs::create_dir_all(seed_dir.join("conferences")).unwrap();
        std::fs::write(
            seed_dir.join("conferences/a.json"),
            r#"{"conference_numbers":["1"]}"#,
        )
        .unwrap();
        std::fs::write(
            seed_dir.join("conferences/b.json"),
            r#"{"conference_numbers":["1"]}"#,
        )
        .unwrap();
        let seed = Seed::read(&seed_dir).unwrap();
        let data = dir.0.join("data");
        let e = SqliteStore::open_seeded(&data, &seed, ACCT).unwrap_err();
        assert!(e.to_string().contains("b.json"), "{e}");
        let s = SqliteStore::open(&data.join(FILE_NAME)).unwrap();
        assert!(s.list_conferences(ACCT).unwrap().is_empty());

        std::fs::write(seed_dir.join("conferences/c.json"), "[1]").unwrap();
        let e = Seed::read(&seed_dir).unwrap_err();
        assert!(e.to_string().contains("c.json"), "{e}");
        assert_eq!(Seed::read(&dir.0.join("missing")).unwrap(), Seed::default());
    }
}
