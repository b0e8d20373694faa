//! `users`: a person, the caller id they present, and the devices they own (devices whose
//! `owner_id` is the user's id, served at `/users/{id}/devices`).

use super::{Key, Scope, Spec, check_caller_id, require, text_value};
use crate::conference::validation::{Rule, ValidationErrors, check_schema};
use serde_json::{Map, Value, json};

const SCHEMA: &[(&str, Rule)] = &[
    ("first_name", Rule::Str { min: 1, max: 128 }),
    ("last_name", Rule::Str { min: 1, max: 128 }),
    ("username", Rule::Str { min: 1, max: 256 }),
    ("email", Rule::Str { min: 3, max: 254 }),
    ("enabled", Rule::Bool),
    ("priv_level", Rule::Enum(&["admin", "user"])),
    ("timezone", Rule::Str { min: 1, max: 64 }),
    ("presence_id", Rule::Str { min: 1, max: 128 }),
];

pub(super) static SPEC: Spec = Spec {
    collection: "users",
    defaults: || json!({"enabled": true, "priv_level": "user"}),
    validate,
    keys: &[Key {
        field: "username",
        unique: Some(Scope::Owner),
        values: username_values,
    }],
};

fn validate(doc: &Map<String, Value>, errors: &mut ValidationErrors) {
    require(doc, &["first_name", "last_name"], errors);
    check_schema(doc, SCHEMA, &[], errors);
    check_caller_id(doc, &["caller_id"], errors);
}

/// Kazoo keeps login names unique in the account, case-insensitively.
fn username_values(doc: &Map<String, Value>) -> Vec<String> {
    let mut names = text_value(doc, "username");
    names.iter_mut().for_each(|n| *n = n.to_lowercase());
    names
}
