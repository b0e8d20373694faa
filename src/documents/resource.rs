//! `resources`: carriers to reach numbers outside Chorus. An account's own (`use_local_resources`)
//! or the system's (`/v2/resources`): `rules` (regexes on the number) choose the resource,
//! `weight_cost` orders them (lower first), `gateways` are tried in order with their
//! credentials, prefix and suffix.

use super::{Spec, check_max_items, regex_list, require};
use crate::conference::validation::{Rule, ValidationErrors, check_schema};
use serde_json::{Map, Value, json};

const SCHEMA: &[(&str, Rule)] = &[
    ("name", Rule::Str { min: 1, max: 128 }),
    ("enabled", Rule::Bool),
    ("emergency", Rule::Bool),
    (
        "weight_cost",
        Rule::Int {
            min: 1,
            max: Some(100),
        },
    ),
    ("flags", Rule::Strings),
    ("caller_id_options", Rule::Object),
    (
        "caller_id_options.type",
        Rule::Enum(&["internal", "external", "emergency"]),
    ),
    ("format_from_uri", Rule::Bool),
    ("gateways", Rule::Array),
];

const GATEWAY: &[(&str, Rule)] = &[
    ("server", Rule::Str { min: 1, max: 253 }),
    (
        "port",
        Rule::Int {
            min: 1,
            max: Some(65535),
        },
    ),
    ("transport", Rule::Enum(&["udp", "tcp", "tls"])),
    ("realm", Rule::Str { min: 1, max: 253 }),
    ("username", Rule::Str { min: 0, max: 255 }),
    ("password", Rule::Str { min: 0, max: 255 }),
    ("prefix", Rule::Str { min: 0, max: 64 }),
    ("suffix", Rule::Str { min: 0, max: 64 }),
    ("enabled", Rule::Bool),
    (
        "invite_format",
        Rule::Enum(&["route", "e164", "npan", "1npan", "username"]),
    ),
    (
        "caller_id_type",
        Rule::Enum(&["internal", "external", "emergency"]),
    ),
];

/// Gateways one resource may list (each failed one costs a timeout).
pub const MAX_GATEWAYS: usize = 16;

pub(super) static SPEC: Spec = Spec {
    collection: "resources",
    defaults: || json!({"enabled": true, "weight_cost": 50, "rules": [], "gateways": []}),
    validate,
    keys: &[],
};

fn validate(doc: &Map<String, Value>, errors: &mut ValidationErrors) {
    require(doc, &["name"], errors);
    check_schema(doc, SCHEMA, &[], errors);
    regex_list::check(doc.get("rules"), "rules", errors);
    regex_list::check(doc.get("cid_rules"), "cid_rules", errors);
    let Some(gateways) = doc.get("gateways").and_then(Value::as_array) else {
        return;
    };
    check_max_items(gateways, "gateways", MAX_GATEWAYS, errors);
    for (i, gateway) in gateways.iter().enumerate() {
        let i = i.to_string();
        let at = ["gateways", i.as_str()];
        let Some(gateway) = gateway.as_object() else {
            errors.type_error(&at, "object", gateway);
            continue;
        };
        if !gateway.contains_key("server") {
            errors.required(&["gateways", &i, "server"]);
        }
        check_schema(gateway, GATEWAY, &at, errors);
    }
}
