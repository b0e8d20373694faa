//! The generic documents of [`crate::documents`] in SQLite: one `documents` table for every
//! kind and owner, and `document_keys` indexing each live document's key values, through
//! which unique keys are checked and documents are found by number or credentials.

use super::{DocumentWrite, Owned, StoreError, StoredDocument, check_revision};
use crate::documents::{Key, Kind, Owner, Scope, in_use_error};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

pub const SCHEMA: &str = "
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
";

/// The system's rows use this account id (as its config rows do).
const SYSTEM: &str = "";
/// The scope of keys unique across owners.
const EVERYWHERE: &str = "*";

fn account(owner: Owner<'_>) -> &str {
    match owner {
        Owner::Account(a) => a,
        Owner::System => SYSTEM,
    }
}

fn owned(account_id: String) -> Owned {
    (account_id != SYSTEM).then_some(account_id)
}

/// The scope column of a key's rows: the owner, or everywhere for keys unique across owners.
fn scope<'a>(key: &Key, account_id: &'a str) -> &'a str {
    match key.unique {
        Some(Scope::Everywhere) => EVERYWHERE,
        _ => account_id,
    }
}

/// The row (deleted or not) and whether it is deleted.
fn load(
    conn: &Connection,
    owner: Owner,
    kind: Kind,
    id: &str,
) -> Result<Option<(StoredDocument, bool)>, StoreError> {
    let row: Option<(i64, bool, String)> = conn
        .query_row(
            "SELECT revision, deleted, doc FROM documents
             WHERE account_id = ?1 AND kind = ?2 AND id = ?3",
            params![account(owner), kind.collection(), id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    row.map(|(revision, deleted, text)| Ok((stored(id.to_owned(), revision, &text)?, deleted)))
        .transpose()
}

pub fn get(
    conn: &Connection,
    owner: Owner,
    kind: Kind,
    id: &str,
) -> Result<StoredDocument, StoreError> {
    match load(conn, owner, kind, id)? {
        Some((d, false)) => Ok(d),
        _ => Err(StoreError::NotFound(id.to_owned())),
    }
}

pub fn list(
    conn: &Connection,
    owner: Owner,
    kind: Kind,
) -> Result<Vec<StoredDocument>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, revision, doc FROM documents
         WHERE account_id = ?1 AND kind = ?2 AND deleted = 0 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![account(owner), kind.collection()], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?))
    })?;
    rows.map(|row| {
        let (id, revision, text) = row?;
        stored(id, revision, &text)
    })
    .collect()
}

/// One write; the caller owns the (immediate) transaction.
pub fn write(
    conn: &Connection,
    owner: Owner,
    kind: Kind,
    id: Option<&str>,
    write: DocumentWrite,
    revision: Option<u64>,
) -> Result<StoredDocument, StoreError> {
    let id = match id {
        Some(id) => id.to_owned(),
        None => conn.query_row("SELECT lower(hex(randomblob(16)))", [], |r| r.get(0))?,
    };
    let row = load(conn, owner, kind, &id)?;
    let current = row.as_ref().filter(|(_, deleted)| !deleted).map(|(d, _)| d);
    if let Some(c) = current {
        check_revision(c.revision, revision)?;
    }
    let doc = match (write, current) {
        (DocumentWrite::Create(_), Some(c)) => return Err(StoreError::Exists(c.id.clone())),
        (DocumentWrite::Create(body), None) => kind.from_request(body)?,
        (_, None) => return Err(StoreError::NotFound(id)),
        (DocumentWrite::Replace(body), Some(_)) => kind.from_request(body)?,
        (DocumentWrite::Patch(patch), Some(c)) => kind.patched(&c.doc, &patch)?,
    };
    let account_id = account(owner);
    index(conn, kind, account_id, &id, &doc)?;
    let revision = row.map_or(1, |(d, _)| d.revision + 1);
    conn.execute(
        "INSERT INTO documents (account_id, kind, id, revision, deleted, doc)
         VALUES (?1, ?2, ?3, ?4, 0, ?5)
         ON CONFLICT (account_id, kind, id) DO UPDATE
         SET revision = excluded.revision, deleted = 0, doc = excluded.doc",
        params![
            account_id,
            kind.collection(),
            id,
            sql_int(revision),
            serde_json::to_string(&doc)?
        ],
    )?;
    Ok(StoredDocument { id, revision, doc })
}

/// Replaces the document's key rows, refusing unique values another document holds.
fn index(
    conn: &Connection,
    kind: Kind,
    account_id: &str,
    id: &str,
    doc: &Map<String, Value>,
) -> Result<(), StoreError> {
    unindex(conn, kind, account_id, id)?;
    for key in kind.keys() {
        let values = (key.values)(doc);
        let scope = scope(key, account_id);
        if key.unique.is_some() {
            let taken = held(conn, kind, key.field, scope, &values)?;
            if !taken.is_empty() {
                return Err(in_use_error(key.field, &taken).into());
            }
        }
        for value in values {
            conn.execute(
                "INSERT OR IGNORE INTO document_keys (kind, field, scope, value, account_id, id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![kind.collection(), key.field, scope, value, account_id, id],
            )?;
        }
    }
    Ok(())
}

/// Which of `values` some document already holds (this document's rows were removed first).
fn held(
    conn: &Connection,
    kind: Kind,
    field: &str,
    scope: &str,
    values: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM document_keys WHERE kind = ?1 AND field = ?2 AND scope = ?3 AND value = ?4",
    )?;
    let mut taken = Vec::new();
    for v in values {
        if stmt.exists(params![kind.collection(), field, scope, v])? && !taken.contains(v) {
            taken.push(v.clone());
        }
    }
    Ok(taken)
}

fn unindex(conn: &Connection, kind: Kind, account_id: &str, id: &str) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM document_keys WHERE account_id = ?1 AND kind = ?2 AND id = ?3",
        params![account_id, kind.collection(), id],
    )?;
    Ok(())
}

pub fn delete(
    conn: &Connection,
    owner: Owner,
    kind: Kind,
    id: &str,
    revision: Option<u64>,
) -> Result<StoredDocument, StoreError> {
    let current = get(conn, owner, kind, id)?;
    check_revision(current.revision, revision)?;
    let account_id = account(owner);
    unindex(conn, kind, account_id, id)?;
    conn.execute(
        "UPDATE documents SET deleted = 1, revision = revision + 1
         WHERE account_id = ?1 AND kind = ?2 AND id = ?3",
        params![account_id, kind.collection(), id],
    )?;
    Ok(current)
}

pub fn find(
    conn: &Connection,
    kind: Kind,
    field: &str,
    value: &str,
    owner: Option<Owner>,
) -> Result<Vec<(Owned, StoredDocument)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.account_id, d.id, d.revision, d.doc FROM document_keys k
         JOIN documents d ON d.account_id = k.account_id AND d.kind = k.kind AND d.id = k.id
         WHERE k.kind = ?1 AND k.field = ?2 AND k.value = ?3 AND d.deleted = 0
           AND (?4 IS NULL OR k.account_id = ?4)
         ORDER BY d.account_id, d.id",
    )?;
    let rows = stmt.query_map(
        params![kind.collection(), field, value, owner.map(account)],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?)),
    )?;
    rows.map(|row| {
        let (account_id, id, revision, text) = row?;
        Ok((owned(account_id), stored(id, revision, &text)?))
    })
    .collect()
}

fn stored(id: String, revision: i64, text: &str) -> Result<StoredDocument, StoreError> {
    Ok(StoredDocument {
        id,
        revision: u64::try_from(revision).unwrap_or_default(),
        doc: serde_json::from_str(text)?,
    })
}

/// SQLite integers are signed; revisions never come near the limit.
pub(super) fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::{SqliteStore, Store};
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn store() -> SqliteStore {
        SqliteStore::open(Path::new(":memory:")).expect("open")
    }

    fn create(s: &SqliteStore, owner: Owner, kind: Kind, id: &str, body: Value) -> StoredDocument {
        let write = DocumentWrite::Create(body);
        s.write_document(owner, kind, Some(id), write, None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn unique_error(e: StoreError) -> (String, Value) {
        let StoreError::Invalid(v) = e else {
            panic!("{e}")
        };
        let v = v.to_json();
        let (field, rules) = v.as_object().and_then(|m| m.iter().next()).unwrap();
        (field.clone(), rules["unique"]["cause"].clone())
    }

    const A: Owner = Owner::Account("a");
    const B: Owner = Owner::Account("b");

    #[test]
    fn callflow_numbers_are_unique_in_their_account_until_deleted() {
        let s = store();
        let flow = |n: &str| json!({"numbers": [n, "2000"], "flow": {"module": "device"}});
        create(&s, A, Kind::Callflow, "f1", flow("1000"));
        let write = DocumentWrite::Create(flow("3000"));
        let e = s.write_document(A, Kind::Callflow, Some("f2"), write, None);
        assert_eq!(
            unique_error(e.unwrap_err()),
            ("numbers".into(), json!(["2000"]))
        );
        // Another account, and a rewrite of the holder itself, are fine.
        create(&s, B, Kind::Callflow, "f2", flow("3000"));
        let patch = DocumentWrite::Patch(json!({"name": "main"}));
        let patched = s.write_document(A, Kind::Callflow, Some("f1"), patch, Some(1));
        assert_eq!(patched.unwrap().revision, 2);
        let found = s
            .find_documents(Kind::Callflow, "numbers", "2000", Some(A))
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].0.as_deref(), found[0].1.id.as_str()),
            (Some("a"), "f1")
        );
        s.delete_document(A, Kind::Callflow, "f1", None).unwrap();
        assert!(
            s.find_documents(Kind::Callflow, "numbers", "2000", Some(A))
                .unwrap()
                .is_empty()
        );
        create(&s, A, Kind::Callflow, "f3", flow("1000"));
    }

    #[test]
    fn sip_credentials_are_unique_in_their_realm_across_accounts() {
        let s = store();
        let device = |realm: Option<&str>| {
            let mut sip = json!({"username": "alice", "password": "secret1"});
            if let Some(r) = realm {
                sip["realm"] = json!(r);
            }
            json!({"name": "phone", "sip": sip})
        };
        create(&s, A, Kind::Device, "d1", device(None));
        create(&s, A, Kind::Device, "d2", device(Some("B.example")));
        let write = DocumentWrite::Create(device(None));
        let e = s.write_document(B, Kind::Device, Some("d3"), write, None);
        assert_eq!(
            unique_error(e.unwrap_err()),
            ("sip.username".into(), json!(["alice@"]))
        );
        let key = crate::documents::sip_key("alice", "b.example");
        let found = s
            .find_documents(Kind::Device, "sip.username", &key, None)
            .unwrap();
        assert_eq!(found[0].1.id, "d2");
    }

    #[test]
    fn system_resources_are_apart_from_accounts() {
        let s = store();
        let carrier = json!({"name": "c", "gateways": [{"server": "127.0.0.1"}]});
        create(&s, Owner::System, Kind::Resource, "r1", carrier.clone());
        assert_eq!(
            s.list_documents(Owner::System, Kind::Resource)
                .unwrap()
                .len(),
            1
        );
        assert!(s.list_documents(A, Kind::Resource).unwrap().is_empty());
        assert!(matches!(
            s.get_document(A, Kind::Resource, "r1"),
            Err(StoreError::NotFound(_))
        ));
        let got = s.get_document(Owner::System, Kind::Resource, "r1").unwrap();
        assert_eq!(got.doc["weight_cost"], 50, "defaults are filled");
        let write = DocumentWrite::Replace(carrier);
        assert!(matches!(
            s.write_document(A, Kind::Resource, Some("r1"), write, None),
            Err(StoreError::NotFound(_))
        ));
    }
}
