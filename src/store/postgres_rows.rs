//! [`Rows`] in PostgreSQL's SQL (the schema is in [`super::postgres`]).

use super::StoreError;
use super::rows::{FoundRow, KeyRow, Row, Rows};
use postgres::Client;
use postgres::types::ToSql;

/// The connection, inside the write's transaction (BEGIN sent) when it writes.
pub struct PgRows<'a>(pub &'a mut Client);

/// The advisory lock class of Chorus ("CHOR"), so its locks meet no other application's.
const LOCK_CLASS: i32 = 0x4348_4f52;

/// Takes the transaction-scoped advisory lock named `name`: another transaction taking it
/// waits until this one commits or rolls back.
pub fn lock(tx: &mut Client, name: &str) -> Result<(), StoreError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&LOCK_CLASS, &name],
    )?;
    Ok(())
}

/// Revisions are BIGINT; they never come near the limit.
fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn row(r: &postgres::Row, from: usize) -> Row {
    Row {
        id: r.get(from),
        revision: u64::try_from(r.get::<_, i64>(from + 1)).unwrap_or_default(),
        deleted: r.get(from + 2),
        doc: r.get(from + 3),
    }
}

impl PgRows<'_> {
    fn rows(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        Ok(self.0.query(sql, args)?.iter().map(|r| row(r, 0)).collect())
    }

    fn text(
        &mut self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<String>, StoreError> {
        Ok(self.0.query_opt(sql, args)?.map(|r| r.get(0)))
    }
}

impl Rows for PgRows<'_> {
    fn lock(&mut self, name: &str) -> Result<(), StoreError> {
        lock(self.0, name)
    }

    fn conference(&mut self, account: &str, id: &str) -> Result<Option<Row>, StoreError> {
        let found = self.rows(
            "SELECT id, revision, deleted, doc FROM conferences WHERE account_id = $1 AND id = $2",
            &[&account, &id],
        )?;
        Ok(found.into_iter().next())
    }

    fn conferences(&mut self, account: &str) -> Result<Vec<Row>, StoreError> {
        self.rows(
            "SELECT id, revision, deleted, doc FROM conferences
             WHERE account_id = $1 AND NOT deleted ORDER BY id COLLATE \"C\"",
            &[&account],
        )
    }

    fn put_conference(&mut self, account: &str, row: &Row) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO conferences (account_id, id, revision, deleted, doc)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (account_id, id) DO UPDATE
             SET revision = excluded.revision, deleted = excluded.deleted, doc = excluded.doc",
            &[
                &account,
                &row.id,
                &sql_int(row.revision),
                &row.deleted,
                &row.doc,
            ],
        )?;
        Ok(())
    }

    fn document(&mut self, account: &str, kind: &str, id: &str) -> Result<Option<Row>, StoreError> {
        let found = self.rows(
            "SELECT id, revision, deleted, doc FROM documents
             WHERE account_id = $1 AND kind = $2 AND id = $3",
            &[&account, &kind, &id],
        )?;
        Ok(found.into_iter().next())
    }

    fn documents(&mut self, account: &str, kind: &str) -> Result<Vec<Row>, StoreError> {
        self.rows(
            "SELECT id, revision, deleted, doc FROM documents
             WHERE account_id = $1 AND kind = $2 AND NOT deleted ORDER BY id COLLATE \"C\"",
            &[&account, &kind],
        )
    }

    fn put_document(&mut self, account: &str, kind: &str, row: &Row) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO documents (account_id, kind, id, revision, deleted, doc)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (account_id, kind, id) DO UPDATE
             SET revision = excluded.revision, deleted = excluded.deleted, doc = excluded.doc",
            &[
                &account,
                &kind,
                &row.id,
                &sql_int(row.revision),
                &row.deleted,
                &row.doc,
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
        let found = self.0.query_opt(
            "SELECT 1 FROM document_keys
             WHERE kind = $1 AND field = $2 AND scope = $3 AND value = $4 LIMIT 1",
            &[&kind, &field, &scope, &value],
        )?;
        Ok(found.is_some())
    }

    fn add_key(&mut self, k: KeyRow<'_>) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO document_keys (kind, field, scope, value, account_id, id)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[&k.kind, &k.field, &k.scope, &k.value, &k.account, &k.id],
        )?;
        Ok(())
    }

    fn drop_keys(&mut self, account: &str, kind: &str, id: &str) -> Result<(), StoreError> {
        self.0.execute(
            "DELETE FROM document_keys WHERE account_id = $1 AND kind = $2 AND id = $3",
            &[&account, &kind, &id],
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
        let found = self.0.query(
            "SELECT d.account_id, d.id, d.revision, d.deleted, d.doc FROM document_keys k
             JOIN documents d ON d.account_id = k.account_id AND d.kind = k.kind AND d.id = k.id
             WHERE k.kind = $1 AND k.field = $2 AND k.value = $3 AND NOT d.deleted
               AND ($4::text IS NULL OR k.account_id = $4)
             ORDER BY d.account_id COLLATE \"C\", d.id COLLATE \"C\"",
            &[&kind, &field, &value, &account],
        )?;
        Ok(found.iter().map(|r| (r.get(0), row(r, 1))).collect())
    }

    fn config(&mut self, account: &str, category: &str) -> Result<Option<String>, StoreError> {
        self.text(
            "SELECT doc FROM config WHERE account_id = $1 AND category = $2",
            &[&account, &category],
        )
    }

    fn put_config(&mut self, account: &str, category: &str, doc: &str) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO config (account_id, category, doc) VALUES ($1, $2, $3)
             ON CONFLICT (account_id, category) DO UPDATE SET doc = excluded.doc",
            &[&account, &category, &doc],
        )?;
        Ok(())
    }

    fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        self.text("SELECT value FROM meta WHERE key = $1", &[&key])
    }

    fn put_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
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
                "DELETE FROM registrations WHERE account_id = $1 AND device_id = $2",
                &[&account, &device],
            )?,
            Some(text) => self.0.execute(
                "INSERT INTO registrations (account_id, device_id, bindings) VALUES ($1, $2, $3)
                 ON CONFLICT (account_id, device_id) DO UPDATE SET bindings = excluded.bindings",
                &[&account, &device, &text],
            )?,
        };
        Ok(())
    }

    fn bindings(
        &mut self,
        device: Option<(&str, &str)>,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let (account, id) = device.unzip();
        let found = self.0.query(
            "SELECT account_id, device_id, bindings FROM registrations
             WHERE $1::text IS NULL OR (account_id = $1 AND device_id = $2)
             ORDER BY account_id COLLATE \"C\", device_id COLLATE \"C\"",
            &[&account, &id],
        )?;
        Ok(found
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }
}
