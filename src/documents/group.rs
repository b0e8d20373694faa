//! `groups`: named sets of endpoints (`{"endpoints": {"<id>": {"type": "device"}}}`), which a
//! `ring_group` expands to their members.

use super::{Spec, require};
use crate::conference::validation::{Rule, ValidationErrors, check_schema};
use serde_json::{Map, Value, json};

const SCHEMA: &[(&str, Rule)] = &[
    ("name", Rule::Str { min: 1, max: 128 }),
    ("endpoints", Rule::Object),
    ("music_on_hold", Rule::Object),
];

const ENDPOINT: &[(&str, Rule)] = &[
    ("type", Rule::Enum(&["device", "user", "group"])),
    (
        "weight",
        Rule::Int {
            min: 1,
            max: Some(100),
        },
    ),
];

/// Endpoints in one group (a ring group rings them all at once).
pub const MAX_ENDPOINTS: usize = 256;

pub(super) static SPEC: Spec = Spec {
    collection: "groups",
    defaults: || json!({"endpoints": {}}),
    validate,
    keys: &[],
};

fn validate(doc: &Map<String, Value>, errors: &mut ValidationErrors) {
    require(doc, &["name"], errors);
    check_schema(doc, SCHEMA, &[], errors);
    let Some(endpoints) = doc.get("endpoints").and_then(Value::as_object) else {
        return;
    };
    if endpoints.len() > MAX_ENDPOINTS {
        let msg = format!("The object must not have more than {MAX_ENDPOINTS} properties");
        let target = Some(json!(MAX_ENDPOINTS));
        errors.add(&["endpoints"], "maxProperties", &msg, target, None);
    }
    for (id, endpoint) in endpoints {
        let at = ["endpoints", id.as_str()];
        let Some(endpoint) = endpoint.as_object() else {
            errors.type_error(&at, "object", endpoint);
            continue;
        };
        if !endpoint.contains_key("type") {
            errors.required(&["endpoints", id, "type"]);
        }
        check_schema(endpoint, ENDPOINT, &at, errors);
    }
}
