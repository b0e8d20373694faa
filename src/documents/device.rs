//! `devices`: a phone or softphone, its SIP credentials (what REGISTER authenticates against),
//! its owner (a user) and its call forwarding.

use super::{Key, Scope, Spec, check_caller_id, require, text_value};
use crate::conference::validation::{Rule, ValidationErrors, check_schema, lookup};
use serde_json::{Map, Value, json};

/// The realm of a device whose `sip.realm` is absent: the server's configured realm
/// (`sip.auth_realm`), keyed as the empty string.
pub const DEFAULT_REALM: &str = "";

const SCHEMA: &[(&str, Rule)] = &[
    ("name", Rule::Str { min: 1, max: 128 }),
    ("enabled", Rule::Bool),
    ("owner_id", Rule::Str { min: 32, max: 32 }),
    ("device_type", Rule::Str { min: 1, max: 64 }),
    ("sip", Rule::Object),
    ("sip.username", Rule::Str { min: 2, max: 32 }),
    ("sip.password", Rule::Str { min: 5, max: 32 }),
    ("sip.realm", Rule::Str { min: 1, max: 253 }),
    ("sip.method", Rule::Enum(&["password", "ip"])),
    ("sip.invite_format", Rule::Str { min: 1, max: 32 }),
    ("sip.expire_seconds", Rule::Int { min: 1, max: None }),
    ("call_forward", Rule::Object),
    ("call_forward.enabled", Rule::Bool),
    ("call_forward.number", Rule::Str { min: 0, max: 35 }),
    ("call_forward.require_keypress", Rule::Bool),
    ("call_forward.keep_caller_id", Rule::Bool),
    ("call_forward.substitute", Rule::Bool),
    ("call_forward.direct_calls_only", Rule::Bool),
    ("call_forward.failover", Rule::Bool),
    ("media", Rule::Object),
];

pub(super) static SPEC: Spec = Spec {
    collection: "devices",
    defaults: || json!({"enabled": true, "sip": {"method": "password", "invite_format": "username"}}),
    validate,
    keys: &[
        Key {
            field: "sip.username",
            unique: Some(Scope::Everywhere),
            values: sip_values,
        },
        Key {
            field: "owner_id",
            unique: None,
            values: owner_values,
        },
    ],
};

fn validate(doc: &Map<String, Value>, errors: &mut ValidationErrors) {
    require(doc, &["name"], errors);
    check_schema(doc, SCHEMA, &[], errors);
    check_caller_id(doc, &["caller_id"], errors);
    // A password without a username could never authenticate, and the reverse could be
    // taken over by anyone: both or neither.
    let has = |f: &str| lookup(doc, &["sip", f]).is_some();
    for (present, missing) in [("password", "username"), ("username", "password")] {
        if has(present) && !has(missing) {
            errors.required(&["sip", missing]);
        }
    }
}

/// The store key of SIP credentials: `username@realm` (realm [`DEFAULT_REALM`] when absent,
/// lower-cased as hosts compare). Realms are host names, so the last `@` separates them.
pub fn sip_key(username: &str, realm: &str) -> String {
    format!("{username}@{}", realm.to_ascii_lowercase())
}

fn sip_values(doc: &Map<String, Value>) -> Vec<String> {
    let text = |f: &str| lookup(doc, &["sip", f]).and_then(Value::as_str);
    text("username")
        .map(|u| sip_key(u, text("realm").unwrap_or(DEFAULT_REALM)))
        .into_iter()
        .collect()
}

fn owner_values(doc: &Map<String, Value>) -> Vec<String> {
    text_value(doc, "owner_id")
}
