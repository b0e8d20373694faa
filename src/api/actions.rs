//! Turns a PUT body into a typed action, or the Kazoo error naming the bad field.
//! Nothing reaches the service until this succeeds.

use super::body::{Envelope, type_error};
use super::reply::ApiError;
use super::service::{ConferenceAction, ParticipantAction, RecordAction, Relate, Relationship};
use serde_json::{Map, Value, json};

/// What a bulk `PUT .../participants` asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Bulk {
    Each(ParticipantAction),
    /// Kazoo runs bulk `play` as the conference action.
    Conference(ConferenceAction),
    Relate(Relate),
}

pub fn conference(env: &Envelope) -> Result<ConferenceAction, ApiError> {
    match env.action() {
        Some("lock") => Ok(ConferenceAction::Lock),
        Some("unlock") => Ok(ConferenceAction::Unlock),
        Some("play") => Ok(ConferenceAction::Play {
            media_id: media_id(env)?,
        }),
        Some("record") => record(env),
        _ => Err(ApiError::FaultyRequest),
    }
}

pub fn participant(env: &Envelope) -> Result<ParticipantAction, ApiError> {
    match env.action() {
        Some("mute") => Ok(ParticipantAction::Mute),
        Some("unmute") => Ok(ParticipantAction::Unmute),
        Some("deaf") => Ok(ParticipantAction::Deaf),
        Some("undeaf") => Ok(ParticipantAction::Undeaf),
        Some("kick") => Ok(ParticipantAction::Kick),
        Some("play") => Ok(ParticipantAction::Play {
            media_id: media_id(env)?,
        }),
        _ => Err(ApiError::FaultyRequest),
    }
}

pub fn bulk(env: &Envelope) -> Result<Bulk, ApiError> {
    match env.action() {
        Some("play") => conference(env).map(Bulk::Conference),
        Some("relate") => relate(env.argument_object("relate")?).map(Bulk::Relate),
        _ => participant(env).map(Bulk::Each),
    }
}

fn media_id(env: &Envelope) -> Result<String, ApiError> {
    match env.argument_object("play")?.get("media_id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        _ => Err(ApiError::required(
            "data.media_id",
            "action 'play' requires a media ID or URL",
        )),
    }
}

fn record(env: &Envelope) -> Result<ConferenceAction, ApiError> {
    match env.argument_object("record")?.get("action") {
        Some(Value::String(a)) if a == "start" => Ok(ConferenceAction::Record(RecordAction::Start)),
        Some(Value::String(a)) if a == "stop" => Ok(ConferenceAction::Record(RecordAction::Stop)),
        None => Err(ApiError::required(
            "data.action",
            "Field is required but missing",
        )),
        Some(other) => Err(not_in_enum("data.action", other, &["start", "stop"])),
    }
}

fn relate(arg: &Map<String, Value>) -> Result<Relate, ApiError> {
    let relationship = match arg.get("relationship") {
        None => Relationship::Clear,
        Some(v) => match v.as_str() {
            Some("deaf") => Relationship::Deaf,
            Some("mute") => Relationship::Mute,
            Some("clear") => Relationship::Clear,
            _ => return Err(not_in_enum("relationship", v, &["deaf", "mute", "clear"])),
        },
    };
    Ok(Relate {
        participant_id: participant_id(arg, "participant_id")?,
        other_participant: participant_id(arg, "other_participant")?,
        relationship,
    })
}

/// An engine member id, given as a number or a numeric string (Kazoo converts either).
fn participant_id(arg: &Map<String, Value>, field: &str) -> Result<u32, ApiError> {
    let value = arg
        .get(field)
        .ok_or_else(|| ApiError::required(field, "Field is required but missing"))?;
    let id = match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    id.ok_or_else(|| type_error(field, "integer"))
}

fn not_in_enum(field: &str, value: &Value, allowed: &[&str]) -> ApiError {
    ApiError::invalid(
        field,
        "enum",
        json!({
            "message": "Value not found in enumerated list of values",
            "target": allowed,
            "value": value,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: Value) -> Envelope {
        Envelope(v.as_object().unwrap().clone())
    }

    #[test]
    fn action_and_argument_at_either_level() {
        let top = env(json!({"action": "play", "data": {"media_id": "m1"}}));
        let nested = env(json!({"data": {"action": "play", "data": {"media_id": "m1"}}}));
        let want = ConferenceAction::Play {
            media_id: "m1".into(),
        };
        assert_eq!(conference(&top).unwrap(), want);
        assert_eq!(conference(&nested).unwrap(), want);
    }

    #[test]
    fn relate_accepts_numeric_strings_and_defaults_to_clear() {
        let e = env(
            json!({"action": "relate", "data": {"participant_id": "3", "other_participant": 4}}),
        );
        let want = Relate {
            participant_id: 3,
            other_participant: 4,
            relationship: Relationship::Clear,
        };
        assert_eq!(bulk(&e).unwrap(), Bulk::Relate(want));
    }

    #[test]
    fn relate_rejects_a_non_numeric_id_by_field() {
        let e = env(
            json!({"action": "relate", "data": {"participant_id": "x", "other_participant": 4}}),
        );
        let ApiError::Validation(map) = bulk(&e).unwrap_err() else {
            panic!()
        };
        assert!(map["participant_id"]["type"].is_object(), "{map}");
    }
}
