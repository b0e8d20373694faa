//! Profile keys (spec §3.2): which the mixer validates and their schema rules,
//! shared by profile resolution and document validation.

use super::validation::{Rule, ValidationErrors};
use serde_json::{Map, Value, json};

/// `conference-flags` the engine applies; any other is refused.
pub(crate) const CONFERENCE_FLAGS: [&str; 1] = ["wait-mod"];
/// `member-flags` the engine applies to every joining member; any other is refused.
pub(crate) const MEMBER_FLAGS: [&str; 5] = ["mute", "deaf", "moderator", "endconf", "dist-dtmf"];
pub(crate) const CONFERENCE_FLAGS_TEXT: &str = "wait-mod";
pub(crate) const MEMBER_FLAGS_TEXT: &str = "mute, deaf, moderator, endconf or dist-dtmf";

/// Profile keys the mixer validates, with their schema rule.
pub(crate) const MIXER_KEYS: [(&str, Rule); 7] = [
    ("rate", Rule::IntIn(&mixer::profile::RATES)),
    (
        "interval",
        Rule::IntIn(&[10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]),
    ),
    (
        "energy-level",
        Rule::Int {
            min: 0,
            max: Some(mixer::profile::MAX_ENERGY_LEVEL as i64),
        },
    ),
    (
        "comfort-noise",
        Rule::Int {
            min: 0,
            max: Some(mixer::profile::MAX_COMFORT_NOISE as i64),
        },
    ),
    ("channels", Rule::IntIn(&[1, 2])),
    ("announce-count", Rule::Int { min: 2, max: None }),
    ("max-members", Rule::Int { min: 2, max: None }),
];

/// Whether `s` can be the display name of our From (`caller-id-name`, the dial action's
/// `caller_id_name`): nothing that could end a header.
pub(crate) fn caller_id_name_ok(s: &str) -> bool {
    (1..=128).contains(&s.chars().count()) && !s.chars().any(char::is_control)
}

/// Whether `s` can be the user part of our From (`caller-id-number`, `caller_id_number`).
pub(crate) fn caller_id_number_ok(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.chars().all(caller_id_number_char)
}

/// Characters a caller id number may use in our From URI's user part.
pub(crate) fn caller_id_number_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+-_.*#".contains(c)
}

/// A profile value as the text the mixer reads; `None` for arrays and objects.
pub(crate) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn flag_list(text: &str) -> impl Iterator<Item = &str> {
    text.split('|').filter(|f| !f.is_empty())
}

/// Schema checks of a doc's inline `profile` (paths `profile.<key>`).
pub(crate) fn validate(profile: &Map<String, Value>, errors: &mut ValidationErrors) {
    for (key, value) in profile {
        let path = ["profile", key.as_str()];
        let flags = match key.as_str() {
            "conference-flags" => Some(&CONFERENCE_FLAGS[..]),
            "member-flags" => Some(&MEMBER_FLAGS[..]),
            _ => None,
        };
        if let (Some(known), Some(text)) = (flags, value.as_str()) {
            for flag in flag_list(text).filter(|f| !known.contains(f)) {
                let msg = "Value not found in enumerated list of values";
                errors.add(&path, "enum", msg, Some(json!(known)), Some(json!(flag)));
            }
            continue;
        }
        let caller_id = match key.as_str() {
            "caller-id-name" => Some(caller_id_name_ok as fn(&str) -> bool),
            "caller-id-number" => Some(caller_id_number_ok as fn(&str) -> bool),
            _ => None,
        };
        if let Some(ok) = caller_id {
            if !value.as_str().is_some_and(ok) {
                let msg = "Not a caller id for a SIP From header";
                errors.add(&path, "pattern", msg, None, Some(value.clone()));
            }
            continue;
        }
        match MIXER_KEYS.iter().find(|(k, _)| k == key) {
            Some((_, rule)) => rule.check(&path, value, errors),
            None if key.ends_with("-sound")
                || key.ends_with("-controls")
                || key.ends_with("-flags") =>
            {
                Rule::Str { min: 0, max: 2048 }.check(&path, value, errors)
            }
            None if scalar(value).is_none() => {
                errors.type_error(&path, "string", value);
            }
            None => {}
        }
    }
}
