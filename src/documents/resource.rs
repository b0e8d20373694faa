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

/// A gateway of a resource, as dialing uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub server: String,
    /// None: located by SRV when `server` is a name (RFC 3263), else 5060.
    pub port: Option<u16>,
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
    /// Credentials for the trunk's digest challenge (empty: none).
    pub username: String,
    pub password: String,
    pub prefix: String,
    pub suffix: String,
}

/// How an enabled resource takes `number`: its `weight_cost`, the number to send (the
/// first capture group of the first rule that matches, else the whole number, as
/// stepswitch does) and its enabled gateways in order. `None` when no rule matches (a
/// resource without rules takes nothing).
pub fn route(doc: &Map<String, Value>, number: &str) -> Option<(i64, String, Vec<Gateway>)> {
    if doc.get("enabled") == Some(&Value::Bool(false)) {
        return None;
    }
    let rules = doc.get("rules").and_then(Value::as_array)?;
    let captured = rules.iter().filter_map(Value::as_str).find_map(|rule| {
        let captures = regex_list::compiled(rule)?.captures(number)?;
        let m = captures.get(1).or_else(|| captures.get(0))?;
        Some(m.as_str().to_string())
    })?;
    let weight = doc.get("weight_cost").and_then(Value::as_i64).unwrap_or(50);
    let text = |g: &Map<String, Value>, f: &str| {
        g.get(f)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let gateways = doc
        .get("gateways")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter(|g| g.get("enabled") != Some(&Value::Bool(false)))
        .map(|g| Gateway {
            server: text(g, "server"),
            port: g
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok()),
            transport: g
                .get("transport")
                .and_then(Value::as_str)
                .unwrap_or("udp")
                .to_string(),
            username: text(g, "username"),
            password: text(g, "password"),
            prefix: text(g, "prefix"),
            suffix: text(g, "suffix"),
        })
        .collect();
    Some((weight, captured, gateways))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_choose_and_capture_the_number_and_disabled_gateways_are_skipped() {
        let doc = json!({
            "name": "trunk",
            "weight_cost": 10,
            "rules": ["^\\+1(\\d{10})$", "^(\\d{4})$"],
            "gateways": [
                {"server": "10.0.0.1", "prefix": "9", "username": "u", "password": "p"},
                {"server": "10.0.0.2", "enabled": false},
                {"server": "10.0.0.3", "port": 5080},
            ],
        });
        let doc = doc.as_object().unwrap();
        let (weight, number, gateways) = route(doc, "+14155550000").unwrap();
        assert_eq!((weight, number.as_str()), (10, "4155550000"));
        let servers: Vec<_> = gateways
            .iter()
            .map(|g| (g.server.as_str(), g.port))
            .collect();
        assert_eq!(servers, [("10.0.0.1", None), ("10.0.0.3", Some(5080))]);
        assert_eq!(gateways[0].prefix, "9");
        assert_eq!(route(doc, "1234").unwrap().1, "1234");
        assert_eq!(route(doc, "555"), None);
        let no_rules = json!({"name": "x", "gateways": [{"server": "10.0.0.1"}]});
        assert_eq!(route(no_rules.as_object().unwrap(), "1234"), None);
    }
}
