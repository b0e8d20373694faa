//! Kazoo's account documents besides conferences: `devices`, `users`, `groups`, `resources`
//! (carriers, also system-wide), `callflows` and `media`.
//!
//! One generic path serves them all: a [`Kind`] names its collection, its schema check, its
//! defaults and the keys the store indexes. A unique key (a device's SIP username in its
//! realm, a callflow's numbers in its account) is refused on write when another document
//! holds it, naming the field; the other keys only index (a user's devices by `owner_id`).
//!
//! Documents are kept as raw JSON objects, like conferences, so fields Chorus does not read
//! survive round trips; the readers of part 4 (callflows, dial) read them tolerantly.

mod callflow;
mod device;
mod group;
pub mod media;
mod regex_list;
mod resource;
mod user;

use crate::conference::document::{merge_patch, request_object};
use crate::conference::validation::{Rule, ValidationErrors, check_schema, lookup};
use serde_json::{Map, Value, json};

pub use callflow::{MODULES, select as select_callflow};
pub use device::{DEFAULT_REALM, sip_key};
pub use resource::{Gateway, route as resource_route};

/// A document kind and its collection under `/v2/accounts/{id}/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Device,
    User,
    Group,
    Resource,
    Callflow,
    Media,
}

/// Every kind, in the order the API lists them.
pub const KINDS: [Kind; 6] = [
    Kind::Device,
    Kind::User,
    Kind::Group,
    Kind::Resource,
    Kind::Callflow,
    Kind::Media,
];

/// Whose document: an account's, or the system's (global resources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    Account(&'a str),
    System,
}

/// Where a unique key may be held only once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Within the document's owner (a callflow number in its account).
    Owner,
    /// Across every owner (SIP credentials: a REGISTER names no account).
    Everywhere,
}

/// A value of a document the store indexes.
#[derive(Debug)]
pub struct Key {
    /// The field a conflict is reported on, and the index's name.
    pub field: &'static str,
    /// `None`: indexed only, any number of documents may share a value.
    pub unique: Option<Scope>,
    /// The document's values of this key (none when the field is absent).
    pub values: fn(&Map<String, Value>) -> Vec<String>,
}

/// How one kind is checked and indexed.
struct Spec {
    collection: &'static str,
    /// Kazoo fills schema defaults on create, so readers can rely on them.
    defaults: fn() -> Value,
    validate: fn(&Map<String, Value>, &mut ValidationErrors),
    keys: &'static [Key],
}

/// Keys the server owns; a client's copy is dropped on write.
const READ_ONLY: [&str; 1] = ["id"];

impl Kind {
    fn spec(self) -> &'static Spec {
        match self {
            Kind::Device => &device::SPEC,
            Kind::User => &user::SPEC,
            Kind::Group => &group::SPEC,
            Kind::Resource => &resource::SPEC,
            Kind::Callflow => &callflow::SPEC,
            Kind::Media => &media::SPEC,
        }
    }

    /// The collection name (`devices`), also the kind's name in the store.
    pub fn collection(self) -> &'static str {
        self.spec().collection
    }

    pub fn from_collection(name: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.collection() == name)
    }

    pub fn keys(self) -> &'static [Key] {
        self.spec().keys
    }

    /// The media ids `doc` names, each with its field's path (a callflow's ring group
    /// ringbacks): the store refuses a write naming media its account does not have.
    pub fn media_references(self, doc: &Map<String, Value>) -> Vec<(Vec<String>, String)> {
        match self {
            Kind::Callflow => callflow::media_references(doc),
            _ => Vec::new(),
        }
    }

    /// Whether the system may own documents of this kind (only resources: global carriers).
    pub fn system_wide(self) -> bool {
        self == Kind::Resource
    }

    /// An API body for create (PUT) or replace (POST): read-only keys dropped, defaults
    /// filled, validated.
    pub fn from_request(self, body: Value) -> Result<Map<String, Value>, ValidationErrors> {
        let spec = self.spec();
        let doc = request_object(body, &READ_ONLY, (spec.defaults)())?;
        let mut errors = ValidationErrors::default();
        (spec.validate)(&doc, &mut errors);
        errors.into_result().map(|()| doc)
    }

    /// PATCH: `patch` merged into `current` (RFC 7396), then checked as a replace.
    pub fn patched(
        self,
        current: &Map<String, Value>,
        patch: &Value,
    ) -> Result<Map<String, Value>, ValidationErrors> {
        let mut merged = Value::Object(current.clone());
        merge_patch(&mut merged, patch);
        self.from_request(merged)
    }
}

/// The document as the API answers it: the stored object plus its `id`.
pub fn to_api(id: &str, doc: &Map<String, Value>) -> Value {
    let mut obj = doc.clone();
    obj.insert("id".into(), json!(id));
    Value::Object(obj)
}

/// The 400 for unique values another document holds: `{field: {unique: {cause: [...]}}}`.
pub fn in_use_error(field: &str, values: &[String]) -> ValidationErrors {
    ValidationErrors::single(
        field,
        "unique",
        "Value already in use",
        None,
        Some(json!(values)),
    )
}

/// `required` for each listed top-level field the document lacks.
fn require(doc: &Map<String, Value>, fields: &[&str], errors: &mut ValidationErrors) {
    for field in fields {
        if !doc.contains_key(*field) {
            errors.required(&[field]);
        }
    }
}

/// Kazoo's `maxItems` on `field` when `items` has more than `max`.
fn check_max_items(items: &[Value], field: &str, max: usize, errors: &mut ValidationErrors) {
    if items.len() > max {
        let msg = format!("The list must not have more than {max} items");
        errors.add(&[field], "maxItems", &msg, Some(json!(max)), None);
    }
}

/// A string field as a key's values (none when absent or not a string).
fn text_value(doc: &Map<String, Value>, field: &str) -> Vec<String> {
    doc.get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .into_iter()
        .collect()
}

/// The strings of an array field (other items and types read as none).
fn strings(doc: &Map<String, Value>, field: &str) -> Vec<String> {
    doc.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Kazoo's `caller_id` object: `{internal|external|emergency: {name, number}}`.
fn check_caller_id(doc: &Map<String, Value>, at: &[&str], errors: &mut ValidationErrors) {
    const ONE: &[(&str, Rule)] = &[
        ("name", Rule::Str { min: 0, max: 35 }),
        ("number", Rule::Str { min: 0, max: 35 }),
    ];
    let Some(caller_id) = lookup(doc, at) else {
        return;
    };
    let Some(caller_id) = caller_id.as_object() else {
        return errors.type_error(at, "object", caller_id);
    };
    for (which, one) in caller_id {
        let path: Vec<&str> = at.iter().copied().chain([which.as_str()]).collect();
        match one.as_object() {
            Some(one) => check_schema(one, ONE, &path, errors),
            None => errors.type_error(&path, "object", one),
        }
    }
}

#[cfg(test)]
mod tests;
