//! The registrar's bindings in SQLite: one row per device with its bindings as JSON, written
//! whenever they change, so a restart keeps them until they expire.

use super::StoreError;
use crate::registrar::{Binding, DeviceRef};
use rusqlite::{Connection, params};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS registrations (
    account_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    bindings TEXT NOT NULL CHECK (json_valid(bindings)),
    PRIMARY KEY (account_id, device_id)
);
";

/// Stores the device's bindings; none deletes its row.
pub fn put(conn: &Connection, device: &DeviceRef, bindings: &[Binding]) -> Result<(), StoreError> {
    if bindings.is_empty() {
        conn.execute(
            "DELETE FROM registrations WHERE account_id = ?1 AND device_id = ?2",
            params![device.account, device.id],
        )?;
        return Ok(());
    }
    conn.execute(
        "INSERT INTO registrations (account_id, device_id, bindings) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, device_id) DO UPDATE SET bindings = excluded.bindings",
        params![device.account, device.id, serde_json::to_string(bindings)?],
    )?;
    Ok(())
}

pub fn all(conn: &Connection) -> Result<Vec<(DeviceRef, Vec<Binding>)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT account_id, device_id, bindings FROM registrations ORDER BY account_id, device_id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?)))?;
    rows.map(|row| {
        let (account, id, text) = row?;
        Ok((DeviceRef { account, id }, serde_json::from_str(&text)?))
    })
    .collect()
}

pub fn of(conn: &Connection, device: &DeviceRef) -> Result<Vec<Binding>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT bindings FROM registrations WHERE account_id = ?1 AND device_id = ?2")?;
    let mut rows = stmt.query(params![device.account, device.id])?;
    match rows.next()? {
        Some(row) => Ok(serde_json::from_str(&row.get::<_, String>(0)?)?),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SqliteStore, Store};
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn bindings_survive_a_reopen_and_empty_deletes() {
        let dir = std::env::temp_dir().join(format!("chorus-reg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sqlite3");
        let device = DeviceRef {
            account: "a".into(),
            id: "d".into(),
        };
        let at = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let bindings = vec![Binding::new("sip:a@h", at, "cid".into(), 7)];
        SqliteStore::open(&path)
            .unwrap()
            .put_bindings(&device, &bindings)
            .unwrap();
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(
            s.bindings().unwrap(),
            vec![(device.clone(), bindings.clone())]
        );
        assert_eq!(s.device_bindings(&device).unwrap(), bindings);
        s.put_bindings(&device, &[]).unwrap();
        assert!(s.bindings().unwrap().is_empty());
        assert!(s.device_bindings(&device).unwrap().is_empty());
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
