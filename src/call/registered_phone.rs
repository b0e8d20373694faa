//! A device registered at a loopback port, in a test store: what the tests of the dial and
//! callflow resolvers ring.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::documents::{Kind, Owner};
use crate::registrar::{Binding, DeviceRef};
use crate::store::{DocumentWrite, SqliteStore, Store};

/// Device `id` of `account` (owned by user `owner`), registered at 127.0.0.1:`port` until
/// an hour after 1970 (the tests' wall clock).
pub fn registered_phone(s: &SqliteStore, account: &str, id: &str, port: u16, owner: Option<&str>) {
    let mut doc = json!({"name": id});
    if let Some(owner) = owner {
        doc["owner_id"] = Value::from(owner);
    }
    let write = DocumentWrite::Create(doc);
    s.write_document(Owner::Account(account), Kind::Device, Some(id), write, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let binding = Binding {
        contact: format!("sip:{id}@127.0.0.1:{port}"),
        expires_at: UNIX_EPOCH + Duration::from_secs(3600),
        call_id: "r".into(),
        cseq: 1,
    };
    let key = DeviceRef {
        account: account.into(),
        id: id.into(),
    };
    s.put_bindings(&key, &[binding], &[]).expect("bindings");
}
