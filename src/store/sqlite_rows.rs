//! [`Rows`] in SQLite's SQL (the schema is in [`super::sqlite`]).

use super::StoreError;
use super::rows::{FoundRow, KeyRow, Row, Rows};
use rusqlite::{Connection, OptionalExtension, params};

pub struct SqliteRows<'a>(pub &'a Connection);

/// SQLite integers are signed; revisions never come near the limit.
fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        revision: u64::try_from(r.get::<_, i64>(1)?).unwrap_or_default(),
        deleted: r.get(2)?,
        doc: r.get(3)?,
    })
}

impl SqliteRows<'_> {
    fn rows(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let found = stmt.query_map(args, row)?;
        Ok(found.collect::<Result<_, _>>()?)
    }
}

impl Rows for SqliteRows<'_> {
    fn lock(&mut self, _name: &str) -> Result<(), StoreError> {
        // Write transactions are IMMEDIATE: one writer at a time already.
        Ok(())
    }

    fn conference(&mut self, account: &str, id: &str) -> Result<Option<Row>, StoreError> {
        let found = self.rows(
            "SELECT id, revision, deleted, doc FROM conferences WHERE account_id = ?1 AND id = ?2",
            params![account, id],
        )?;
        Ok(found.into_iter().next())
    }

    fn conferences(&mut self, account: &str) -> Result<Vec<Row>, StoreError> {
        self.rows(
            "SELECT id, revision, deleted, doc FROM conferences
             WHERE account_id = ?1 AND deleted = 0 ORDER BY id",
            params![account],
        )
    }

    fn put_conference(&mut self, account: &str, row: &Row) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO conferences (account_id, id, revision, deleted, doc)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (account_id, id) DO UPDATE
             SET revision = excluded.revision, deleted = excluded.deleted, doc = excluded.doc",
            params![account, row.id, sql_int(row.revision), row.deleted, row.doc],
        )?;
        Ok(())
    }

    fn document(&mut self, account: &str, kind: &str, id: &str) -> Result<Option<Row>, StoreError> {
        let found = self.rows(
            "SELECT id, revision, deleted, doc FROM documents
             WHERE account_id = ?1 AND kind = ?2 AND id = ?3",
            params![account, kind, id],
        )?;
        Ok(found.into_iter().next())
    }

    fn documents(&mut self, account: &str, kind: &str) -> Result<Vec<Row>, StoreError> {
        self.rows(
            "SELECT id, revision, deleted, doc FROM documents
             WHERE account_id = ?1 AND kind = ?2 AND deleted = 0 ORDER BY id",
            params![account, kind],
        )
    }

    fn put_document(&mut self, account: &str, kind: &str, row: &Row) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO documents (account_id, kind, id, revision, deleted, doc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (account_id, kind, id) DO UPDATE
             SET revision = excluded.revision, deleted = excluded.deleted, doc = excluded.doc",
            params![
                account,
                kind,
                row.id,
                sql_int(row.revision),
                row.deleted,
                row.doc
            ],
        )?;
        Ok(())
    }

    fn key_held(
        &mut self,
        kind: &str,
        field: &str,
        scope: &str,
        value: &str,
    ) -> Result<bool, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT 1 FROM document_keys
             WHERE kind = ?1 AND field = ?2 AND scope = ?3 AND value = ?4",
        )?;
        Ok(stmt.exists(params![kind, field, scope, value])?)
    }

    fn add_key(&mut self, k: KeyRow<'_>) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT OR IGNORE INTO document_keys (kind, field, scope, value, account_id, id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![k.kind, k.field, k.scope, k.value, k.account, k.id],
        )?;
        Ok(())
    }

    fn drop_keys(&mut self, account: &str, kind: &str, id: &str) -> Result<(), StoreError> {
        self.0.execute(
            "DELETE FROM document_keys WHERE account_id = ?1 AND kind = ?2 AND id = ?3",
            params![account, kind, id],
        )?;
        Ok(())
    }

    fn find(
        &mut self,
        kind: &str,
        field: &str,
        value: &str,
        account: Option<&str>,
    ) -> Result<Vec<FoundRow>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT d.account_id, d.id, d.revision, d.deleted, d.doc FROM document_keys k
             JOIN documents d ON d.account_id = k.account_id AND d.kind = k.kind AND d.id = k.id
             WHERE k.kind = ?1 AND k.field = ?2 AND k.value = ?3 AND d.deleted = 0
               AND (?4 IS NULL OR k.account_id = ?4)
             ORDER BY d.account_id, d.id",
        )?;
        let found = stmt.query_map(params![kind, field, value, account], |r| {
            Ok((
                r.get(0)?,
                Row {
                    id: r.get(1)?,
                    revision: u64::try_from(r.get::<_, i64>(2)?).unwrap_or_default(),
                    deleted: r.get(3)?,
                    doc: r.get(4)?,
                },
            ))
        })?;
        Ok(found.collect::<Result<_, _>>()?)
    }

    fn config(&mut self, account: &str, category: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .query_row(
                "SELECT doc FROM config WHERE account_id = ?1 AND category = ?2",
                params![account, category],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn put_config(&mut self, account: &str, category: &str, doc: &str) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO config (account_id, category, doc) VALUES (?1, ?2, ?3)
             ON CONFLICT (account_id, category) DO UPDATE SET doc = excluded.doc",
            params![account, category, doc],
        )?;
        Ok(())
    }

    fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn put_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    fn put_bindings(
        &mut self,
        account: &str,
        device: &str,
        bindings: Option<&str>,
    ) -> Result<(), StoreError> {
        match bindings {
            None => self.0.execute(
                "DELETE FROM registrations WHERE account_id = ?1 AND device_id = ?2",
                params![account, device],
            )?,
            Some(text) => self.0.execute(
                "INSERT INTO registrations (account_id, device_id, bindings) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account_id, device_id) DO UPDATE SET bindings = excluded.bindings",
                params![account, device, text],
            )?,
        };
        Ok(())
    }

    fn bindings(
        &mut self,
        device: Option<(&str, &str)>,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let (account, id) = device.unzip();
        let mut stmt = self.0.prepare_cached(
            "SELECT account_id, device_id, bindings FROM registrations
             WHERE ?1 IS NULL OR (account_id = ?1 AND device_id = ?2)
             ORDER BY account_id, device_id",
        )?;
        let found = stmt.query_map(params![account, id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(found.collect::<Result<_, _>>()?)
    }
}
