//! The store's rules over any [`Backend`]: revisions, soft deletes, validation, the
//! account-wide conference number uniqueness and the generic documents' unique keys, all
//! checked inside the write's transaction (holding a lock named for what must stay unique,
//! so two nodes on one PostgreSQL cannot race a number into two documents), and seeding.

use super::rows::{Access, Backend, KeyRow, Row, Rows};
use super::{
    DocumentWrite, Owned, Seed, Store, StoreError, StoredConference, StoredDocument, check_revision,
};
use crate::conference::document::{ConferenceDoc, numbers_in_use, numbers_in_use_error};
use crate::conference::validation::ValidationErrors;
use crate::documents::{Key, Kind, Owner, Scope, in_use_error};
use crate::registrar::{Binding, DeviceRef, merge_bindings};
use serde_json::{Map, Value};

/// The system's rows use this account id.
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

/// A Kazoo-style id: 32 lowercase hex digits.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn conference(row: Row) -> Result<StoredConference, StoreError> {
    Ok(StoredConference {
        id: row.id,
        revision: row.revision,
        doc: ConferenceDoc::from_map(serde_json::from_str(&row.doc)?),
    })
}

fn document(row: Row) -> Result<StoredDocument, StoreError> {
    Ok(StoredDocument {
        id: row.id,
        revision: row.revision,
        doc: serde_json::from_str(&row.doc)?,
    })
}

fn live_conferences(
    rows: &mut dyn Rows,
    account: &str,
) -> Result<Vec<StoredConference>, StoreError> {
    rows.conferences(account)?
        .into_iter()
        .map(conference)
        .collect()
}

/// Loads the row (deleted or not), checks the revision, builds the new doc with `make`
/// (given the live doc, if any), enforces number uniqueness in the account and writes
/// revision + 1.
fn save(
    rows: &mut dyn Rows,
    account: &str,
    id: Option<&str>,
    revision: Option<u64>,
    make: &dyn Fn(Option<&StoredConference>) -> Result<ConferenceDoc, StoreError>,
) -> Result<StoredConference, StoreError> {
    rows.lock(&format!("conferences/{account}"))?;
    let id = id.map_or_else(new_id, str::to_owned);
    let row = rows.conference(account, &id)?;
    let stored_revision = row.as_ref().map_or(0, |r| r.revision);
    let current = match row {
        Some(r) if !r.deleted => Some(conference(r)?),
        _ => None,
    };
    if let Some(c) = &current {
        check_revision(c.revision, revision)?;
    }
    let doc = make(current.as_ref())?;
    let others = live_conferences(rows, account)?;
    let taken = numbers_in_use(
        &doc,
        Some(&id),
        others.iter().map(|c| (c.id.as_str(), &c.doc)),
    );
    if !taken.is_empty() {
        return Err(numbers_in_use_error(&taken).into());
    }
    let revision = stored_revision + 1;
    let doc_text = serde_json::to_string(doc.json())?;
    rows.put_conference(
        account,
        &Row {
            id: id.clone(),
            revision,
            deleted: false,
            doc: doc_text,
        },
    )?;
    Ok(StoredConference { id, revision, doc })
}

fn update(
    rows: &mut dyn Rows,
    account: &str,
    id: &str,
    revision: Option<u64>,
    make: &dyn Fn(&ConferenceDoc) -> Result<ConferenceDoc, StoreError>,
) -> Result<StoredConference, StoreError> {
    save(
        rows,
        account,
        Some(id),
        revision,
        &|current| match current {
            Some(c) => make(&c.doc),
            None => Err(StoreError::NotFound(id.to_owned())),
        },
    )
}

/// Refuses a document naming media its account does not have, naming each field.
fn check_media(
    rows: &mut dyn Rows,
    kind: Kind,
    account_id: &str,
    doc: &Map<String, Value>,
) -> Result<(), StoreError> {
    let mut errors = ValidationErrors::default();
    for (field, media_id) in kind.media_references(doc) {
        let media = rows.document(account_id, Kind::Media.collection(), &media_id)?;
        if media.is_none_or(|m| m.deleted) {
            let field: Vec<&str> = field.iter().map(String::as_str).collect();
            let value = Some(Value::String(media_id));
            errors.add(&field, "not_found", "Media not found", None, value);
        }
    }
    Ok(errors.into_result()?)
}

/// Replaces the document's key rows, refusing unique values another document holds.
fn index(
    rows: &mut dyn Rows,
    kind: Kind,
    account_id: &str,
    id: &str,
    doc: &Map<String, Value>,
) -> Result<(), StoreError> {
    rows.drop_keys(account_id, kind.collection(), id)?;
    for key in kind.keys() {
        let values = (key.values)(doc);
        let scope = scope(key, account_id);
        if key.unique.is_some() {
            let mut taken = Vec::new();
            for v in &values {
                if rows.key_held(kind.collection(), key.field, scope, v)? && !taken.contains(v) {
                    taken.push(v.clone());
                }
            }
            if !taken.is_empty() {
                return Err(in_use_error(key.field, &taken).into());
            }
        }
        for value in &values {
            rows.add_key(KeyRow {
                kind: kind.collection(),
                field: key.field,
                scope,
                value,
                account: account_id,
                id,
            })?;
        }
    }
    Ok(())
}

fn get_document(
    rows: &mut dyn Rows,
    owner: Owner,
    kind: Kind,
    id: &str,
) -> Result<StoredDocument, StoreError> {
    match rows.document(account(owner), kind.collection(), id)? {
        Some(r) if !r.deleted => document(r),
        _ => Err(StoreError::NotFound(id.to_owned())),
    }
}

fn write_document(
    rows: &mut dyn Rows,
    owner: Owner,
    kind: Kind,
    id: Option<&str>,
    write: &DocumentWrite,
    revision: Option<u64>,
) -> Result<StoredDocument, StoreError> {
    // Unique keys may span accounts (SIP credentials): one lock per kind.
    rows.lock(&format!("documents/{}", kind.collection()))?;
    let account_id = account(owner);
    let id = id.map_or_else(new_id, str::to_owned);
    let row = rows.document(account_id, kind.collection(), &id)?;
    let stored_revision = row.as_ref().map_or(0, |r| r.revision);
    let current = match row {
        Some(r) if !r.deleted => Some(document(r)?),
        _ => None,
    };
    if let Some(c) = &current {
        check_revision(c.revision, revision)?;
    }
    let doc = match (write, &current) {
        (DocumentWrite::Create(_), Some(c)) => return Err(StoreError::Exists(c.id.clone())),
        (DocumentWrite::Create(body), None) => kind.from_request(body.clone())?,
        (_, None) => return Err(StoreError::NotFound(id)),
        (DocumentWrite::Replace(body), Some(_)) => kind.from_request(body.clone())?,
        (DocumentWrite::Patch(patch), Some(c)) => kind.patched(&c.doc, patch)?,
    };
    check_media(rows, kind, account_id, &doc)?;
    index(rows, kind, account_id, &id, &doc)?;
    let revision = stored_revision + 1;
    let text = serde_json::to_string(&doc)?;
    rows.put_document(
        account_id,
        kind.collection(),
        &Row {
            id: id.clone(),
            revision,
            deleted: false,
            doc: text,
        },
    )?;
    Ok(StoredDocument { id, revision, doc })
}

/// Loads `seed` on the store's first start only (conferences into `account`). A bad seed
/// fails the start and writes nothing, so the next start tries again.
pub fn seed<B: Backend>(store: &B, seed: &Seed, account: &str) -> Result<(), StoreError> {
    store.transaction(Access::Write, &|rows| {
        rows.lock("seed")?;
        if rows.meta("seeded")?.is_some() {
            return Ok(());
        }
        for (category, doc) in &seed.system_config {
            rows.put_config(SYSTEM, category, &serde_json::to_string(doc)?)?;
        }
        for (path, id, body) in &seed.conferences {
            save(rows, account, Some(id), None, &|_| {
                ConferenceDoc::from_request(body.clone()).map_err(StoreError::from)
            })
            .map_err(|e| StoreError::File {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        rows.put_meta("seeded", "1")
    })
}

impl<B: Backend> Store for B {
    fn list_conferences(&self, account: &str) -> Result<Vec<StoredConference>, StoreError> {
        self.transaction(Access::Read, &|rows| live_conferences(rows, account))
    }

    fn get_conference(&self, account: &str, id: &str) -> Result<StoredConference, StoreError> {
        self.transaction(Access::Read, &|rows| match rows.conference(account, id)? {
            Some(r) if !r.deleted => conference(r),
            _ => Err(StoreError::NotFound(id.to_owned())),
        })
    }

    fn create_conference(
        &self,
        account: &str,
        id: Option<&str>,
        body: Value,
    ) -> Result<StoredConference, StoreError> {
        self.transaction(Access::Write, &|rows| {
            save(rows, account, id, None, &|current| match current {
                Some(c) => Err(StoreError::Exists(c.id.clone())),
                None => Ok(ConferenceDoc::from_request(body.clone())?),
            })
        })
    }

    fn replace_conference(
        &self,
        account: &str,
        id: &str,
        body: Value,
        revision: Option<u64>,
    ) -> Result<StoredConference, StoreError> {
        self.transaction(Access::Write, &|rows| {
            update(rows, account, id, revision, &|_| {
                Ok(ConferenceDoc::from_request(body.clone())?)
            })
        })
    }

    fn patch_conference(
        &self,
        account: &str,
        id: &str,
        patch: &Value,
        revision: Option<u64>,
    ) -> Result<StoredConference, StoreError> {
        self.transaction(Access::Write, &|rows| {
            update(rows, account, id, revision, &|doc| Ok(doc.patched(patch)?))
        })
    }

    fn delete_conference(
        &self,
        account: &str,
        id: &str,
        revision: Option<u64>,
    ) -> Result<StoredConference, StoreError> {
        self.transaction(Access::Write, &|rows| {
            rows.lock(&format!("conferences/{account}"))?;
            let row = match rows.conference(account, id)? {
                Some(r) if !r.deleted => r,
                _ => return Err(StoreError::NotFound(id.to_owned())),
            };
            check_revision(row.revision, revision)?;
            let gone = Row {
                revision: row.revision + 1,
                deleted: true,
                ..row.clone()
            };
            rows.put_conference(account, &gone)?;
            conference(row)
        })
    }

    fn find_by_number(
        &self,
        account: &str,
        number: &str,
    ) -> Result<Vec<StoredConference>, StoreError> {
        let mut all = self.list_conferences(account)?;
        all.retain(|c| c.doc.all_numbers().contains(&number));
        Ok(all)
    }

    fn config(
        &self,
        account: Option<&str>,
        category: &str,
    ) -> Result<Map<String, Value>, StoreError> {
        let text = self.transaction(Access::Read, &|rows| {
            rows.config(account.unwrap_or(SYSTEM), category)
        })?;
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
        let text = serde_json::to_string(&doc)?;
        self.transaction(Access::Write, &|rows| {
            rows.put_config(account.unwrap_or(SYSTEM), category, &text)
        })
    }

    fn list_documents(&self, owner: Owner, kind: Kind) -> Result<Vec<StoredDocument>, StoreError> {
        self.transaction(Access::Read, &|rows| {
            let found = rows.documents(account(owner), kind.collection())?;
            found.into_iter().map(document).collect()
        })
    }

    fn get_document(
        &self,
        owner: Owner,
        kind: Kind,
        id: &str,
    ) -> Result<StoredDocument, StoreError> {
        self.transaction(Access::Read, &|rows| get_document(rows, owner, kind, id))
    }

    fn write_document(
        &self,
        owner: Owner,
        kind: Kind,
        id: Option<&str>,
        write: DocumentWrite,
        revision: Option<u64>,
    ) -> Result<StoredDocument, StoreError> {
        self.transaction(Access::Write, &|rows| {
            write_document(rows, owner, kind, id, &write, revision)
        })
    }

    fn delete_document(
        &self,
        owner: Owner,
        kind: Kind,
        id: &str,
        revision: Option<u64>,
    ) -> Result<StoredDocument, StoreError> {
        self.transaction(Access::Write, &|rows| {
            rows.lock(&format!("documents/{}", kind.collection()))?;
            let current = get_document(rows, owner, kind, id)?;
            check_revision(current.revision, revision)?;
            let account_id = account(owner);
            rows.drop_keys(account_id, kind.collection(), id)?;
            let gone = Row {
                id: id.to_owned(),
                revision: current.revision + 1,
                deleted: true,
                doc: serde_json::to_string(&current.doc)?,
            };
            rows.put_document(account_id, kind.collection(), &gone)?;
            Ok(current)
        })
    }

    fn find_documents(
        &self,
        kind: Kind,
        field: &str,
        value: &str,
        owner: Option<Owner>,
    ) -> Result<Vec<(Owned, StoredDocument)>, StoreError> {
        self.transaction(Access::Read, &|rows| {
            let found = rows.find(kind.collection(), field, value, owner.map(account))?;
            found
                .into_iter()
                .map(|(account_id, row)| Ok((owned(account_id), document(row)?)))
                .collect()
        })
    }

    fn put_bindings(
        &self,
        device: &DeviceRef,
        bindings: &[Binding],
        dropped: &[Binding],
    ) -> Result<(), StoreError> {
        let (account, id) = (device.account.as_str(), device.id.as_str());
        self.transaction(Access::Write, &|rows| {
            rows.lock(&format!("registrations/{account}/{id}"))?;
            let stored = match rows.bindings(Some((account, id)))?.into_iter().next() {
                Some((_, _, text)) => serde_json::from_str(&text)?,
                None => Vec::new(),
            };
            let merged = merge_bindings(stored, bindings, dropped);
            let text = match merged.as_slice() {
                [] => None,
                some => Some(serde_json::to_string(some)?),
            };
            rows.put_bindings(account, id, text.as_deref())
        })
    }

    fn bindings(&self) -> Result<Vec<(DeviceRef, Vec<Binding>)>, StoreError> {
        let all = self.transaction(Access::Read, &|rows| rows.bindings(None))?;
        all.into_iter()
            .map(|(account, id, text)| {
                Ok((DeviceRef { account, id }, serde_json::from_str(&text)?))
            })
            .collect()
    }

    fn device_bindings(&self, device: &DeviceRef) -> Result<Vec<Binding>, StoreError> {
        let found = self.transaction(Access::Read, &|rows| {
            rows.bindings(Some((&device.account, &device.id)))
        })?;
        match found.into_iter().next() {
            Some((_, _, text)) => Ok(serde_json::from_str(&text)?),
            None => Ok(Vec::new()),
        }
    }
}
