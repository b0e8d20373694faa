//! The `dial` conference action (spec §4 "dial arguments", §7): its arguments checked
//! against schema `conferences.dial`, and its `endpoint_responses`.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::body::{Envelope, type_error};
use super::reply::ApiError;
use super::service::{DialArgs, DialFlags, EndpointResponse, EndpointSpec};
use crate::conference::profile_keys::caller_id_number_char;

/// Endpoints one request may name (each may ring several contacts).
pub const MAX_ENDPOINTS: usize = 16;
/// Kazoo's default ring time, and the longest accepted (the request waits for the outcome).
const DEFAULT_TIMEOUT_S: u64 = 20;
pub const MAX_TIMEOUT_S: u64 = 120;

const FLAGS: [&str; 8] = [
    "mute",
    "deaf",
    "is_moderator",
    "distribute_dtmf",
    "disable_moh",
    "ghost",
    "join_existing",
    "video_mute",
];

pub fn args(env: &Envelope) -> Result<DialArgs, ApiError> {
    let arg = env.argument_object("dial")?;
    let endpoints = match arg.get("endpoints") {
        None => {
            return Err(ApiError::required(
                "data.endpoints",
                "Field is required but missing",
            ));
        }
        Some(Value::Array(list)) => list,
        Some(_) => return Err(type_error("data.endpoints", "array")),
    };
    if endpoints.is_empty() {
        return Err(items("minItems", 1, "The minimum number of items is 1"));
    }
    if endpoints.len() > MAX_ENDPOINTS {
        let message = format!("The maximum number of items is {MAX_ENDPOINTS}");
        return Err(items("maxItems", MAX_ENDPOINTS, &message));
    }
    let endpoints = endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| endpoint(i, e))
        .collect::<Result<_, _>>()?;
    let timeout = match arg.get("timeout") {
        None => DEFAULT_TIMEOUT_S,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=MAX_TIMEOUT_S) => n,
            Some(0) => return Err(bound("minimum", 1, v)),
            Some(_) => return Err(bound("maximum", MAX_TIMEOUT_S, v)),
            None => return Err(type_error("data.timeout", "integer")),
        },
    };
    Ok(DialArgs {
        endpoints,
        caller_id_name: text(arg, "caller_id_name", 128, |c| !c.is_control())?,
        caller_id_number: text(arg, "caller_id_number", 32, caller_id_number_char)?,
        timeout: Duration::from_secs(timeout),
        flags: flags(arg.get("participant_flags"))?,
        outbound_call_id: text(arg, "outbound_call_id", 128, call_id_char)?,
    })
}

/// Kazoo's `endpoint_responses`.
pub fn render(responses: &[EndpointResponse]) -> Value {
    let list: Vec<Value> = responses
        .iter()
        .map(|r| match &r.outcome {
            Ok(call_id) => json!({
                "status": "success",
                "message": "dialing endpoints",
                "endpoint_id": r.endpoint_id,
                "call_id": call_id,
            }),
            Err(cause) => json!({
                "status": "error",
                "message": cause,
                "endpoint_id": r.endpoint_id,
            }),
        })
        .collect();
    json!({ "endpoint_responses": list })
}

/// A string endpoint is a 32-hex id, a `sip:` URI or a number; an object is an inline
/// device. (Kazoo runs a number through the account's callflows; with no callflows here, it
/// takes Kazoo's `no_match` route: the carriers.)
fn endpoint(i: usize, e: &Value) -> Result<EndpointSpec, ApiError> {
    let field = format!("data.endpoints.{i}");
    match e {
        Value::String(id) if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(EndpointSpec::Id(id.clone()))
        }
        Value::String(uri) if is_sip_uri(uri) => Ok(EndpointSpec::Uri(uri.clone())),
        Value::String(n) if is_number(n) => Ok(EndpointSpec::Number(n.clone())),
        Value::Object(_) => Ok(EndpointSpec::Device(e.clone())),
        other => Err(ApiError::invalid(
            &field,
            "enum",
            json!({
                "message": "Value not a number, device or user ID, or SIP endpoint",
                "value": other,
            }),
        )),
    }
}

/// `sip:user@host[:port][;params]` with printable characters only (it becomes our
/// Request-URI).
pub fn is_sip_uri(uri: &str) -> bool {
    uri.len() <= 256
        && uri
            .strip_prefix("sip:")
            .is_some_and(|rest| rest.contains('@') && rest.bytes().all(|b| b.is_ascii_graphic()))
}

/// Digits with an optional leading `+`, as dialed.
fn is_number(n: &str) -> bool {
    let digits = n.strip_prefix('+').unwrap_or(n);
    (1..=32).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fn flags(v: Option<&Value>) -> Result<DialFlags, ApiError> {
    let mut flags = DialFlags::default();
    let Some(v) = v else {
        return Ok(flags);
    };
    let list = v
        .as_array()
        .ok_or_else(|| type_error("data.participant_flags", "array"))?;
    for (i, flag) in list.iter().enumerate() {
        match flag.as_str() {
            Some("mute") => flags.mute = true,
            Some("deaf") => flags.deaf = true,
            Some("is_moderator") => flags.moderator = true,
            Some("distribute_dtmf") => flags.distribute_dtmf = true,
            Some("disable_moh") => flags.disable_moh = true,
            Some("join_existing") => flags.join_existing = true,
            Some("ghost" | "video_mute") => {}
            _ => {
                return Err(ApiError::invalid(
                    &format!("data.participant_flags.{i}"),
                    "enum",
                    json!({
                        "message": "Value not found in enumerated list of values",
                        "target": FLAGS,
                        "value": flag,
                    }),
                ));
            }
        }
    }
    Ok(flags)
}

/// An optional string field of at most `max` characters, each passing `ok` (they end up
/// in SIP headers).
fn text(
    arg: &Map<String, Value>,
    field: &str,
    max: usize,
    ok: fn(char) -> bool,
) -> Result<Option<String>, ApiError> {
    let path = format!("data.{field}");
    let Some(v) = arg.get(field) else {
        return Ok(None);
    };
    let s = v.as_str().ok_or_else(|| type_error(&path, "string"))?;
    if s.is_empty() || s.chars().count() > max {
        return Err(ApiError::invalid(
            &path,
            "maxLength",
            json!({"message": format!("String must be 1 to {max} characters"), "target": max, "value": s}),
        ));
    }
    if !s.chars().all(ok) {
        return Err(ApiError::invalid(
            &path,
            "pattern",
            json!({"message": "Value contains characters not allowed here", "value": s}),
        ));
    }
    Ok(Some(s.to_string()))
}

/// RFC 3261 `word` characters (a Call-ID).
fn call_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~()<>:\\\"/[]?{}@".contains(c)
}

fn items(rule: &str, target: usize, message: &str) -> ApiError {
    ApiError::invalid(
        "data.endpoints",
        rule,
        json!({"message": message, "target": target}),
    )
}

fn bound(rule: &str, target: u64, value: &Value) -> ApiError {
    ApiError::invalid(
        "data.timeout",
        rule,
        json!({"message": format!("Value must be {} {target}", if rule == "minimum" { "at least" } else { "at most" }), "target": target, "value": value}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: Value) -> Envelope {
        Envelope(v.as_object().unwrap().clone())
    }

    fn field_and_rule(e: ApiError) -> (String, String) {
        let ApiError::Validation(Value::Object(map)) = e else {
            panic!("validation error: {e:?}");
        };
        let (field, rules) = map.into_iter().next().unwrap();
        let rule = rules.as_object().unwrap().keys().next().unwrap().clone();
        (field, rule)
    }

    #[test]
    fn endpoints_flags_and_defaults() {
        let id = "0123456789abcdef0123456789abcdef";
        let a = args(&env(json!({"action": "dial", "data": {
            "endpoints": [id, "sip:bob@127.0.0.1:5070", {"sip": {"username": "x"}}, "+14155550000"],
            "participant_flags": ["mute", "is_moderator", "ghost"],
        }})))
        .unwrap();
        assert_eq!(a.endpoints.len(), 4);
        assert_eq!(a.endpoints[0], EndpointSpec::Id(id.into()));
        assert_eq!(a.endpoints[3], EndpointSpec::Number("+14155550000".into()));
        assert_eq!(a.timeout, Duration::from_secs(20));
        assert!(a.flags.mute && a.flags.moderator && !a.flags.deaf);
    }

    #[test]
    fn bad_arguments_name_their_field() {
        let cases = [
            (json!({}), ("data.endpoints", "required")),
            (json!({"endpoints": []}), ("data.endpoints", "minItems")),
            (
                json!({"endpoints": vec!["sip:a@1.2.3.4"; MAX_ENDPOINTS + 1]}),
                ("data.endpoints", "maxItems"),
            ),
            (json!({"endpoints": ["bob"]}), ("data.endpoints.0", "enum")),
            (
                json!({"endpoints": ["+1 555"]}),
                ("data.endpoints.0", "enum"),
            ),
            (
                json!({"endpoints": ["sip:a@h"], "timeout": 0}),
                ("data.timeout", "minimum"),
            ),
            (
                json!({"endpoints": ["sip:a@h"], "timeout": 121}),
                ("data.timeout", "maximum"),
            ),
            (
                json!({"endpoints": ["sip:a@h"], "participant_flags": ["loud"]}),
                ("data.participant_flags.0", "enum"),
            ),
            (
                json!({"endpoints": ["sip:a@h"], "caller_id_number": "1 2>"}),
                ("data.caller_id_number", "pattern"),
            ),
        ];
        for (data, (field, rule)) in cases {
            let e = args(&env(json!({"action": "dial", "data": data}))).unwrap_err();
            assert_eq!(field_and_rule(e), (field.to_string(), rule.to_string()));
        }
    }

    #[test]
    fn responses_in_kazoo_shape() {
        let v = render(&[
            EndpointResponse {
                endpoint_id: "d1".into(),
                outcome: Ok("c1".into()),
            },
            EndpointResponse {
                endpoint_id: "d2".into(),
                outcome: Err("USER_BUSY".into()),
            },
        ]);
        assert_eq!(v["endpoint_responses"][0]["call_id"], "c1");
        assert_eq!(v["endpoint_responses"][0]["message"], "dialing endpoints");
        assert_eq!(v["endpoint_responses"][1]["status"], "error");
        assert_eq!(v["endpoint_responses"][1]["message"], "USER_BUSY");
    }
}
