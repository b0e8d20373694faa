//! `media`: an account's audio, uploaded (`/media/{id}/raw`, WAV or MP3, kept as the
//! server's WAV by [`crate::sounds::library`]) or spoken (`media_source: "tts"`, rendered
//! from `tts.text`). A media id plays wherever a prompt or sound is named.

use super::{Key, Spec, require, text_value};
use crate::conference::validation::{Rule, ValidationErrors, check_schema};
use crate::sounds::tts::MAX_TEXT;
use serde_json::{Map, Value, json};

const SCHEMA: &[(&str, Rule)] = &[
    ("name", Rule::Str { min: 1, max: 128 }),
    ("description", Rule::Str { min: 0, max: 256 }),
    ("media_source", Rule::Enum(&["recording", "upload", "tts"])),
    ("source_type", Rule::Str { min: 1, max: 64 }),
    ("source_id", Rule::Str { min: 1, max: 64 }),
    ("owner_id", Rule::Str { min: 1, max: 160 }),
    ("language", Rule::Str { min: 2, max: 16 }),
    ("streamable", Rule::Bool),
    ("tts", Rule::Object),
];

const TTS: &[(&str, Rule)] = &[
    (
        "text",
        Rule::Str {
            min: 1,
            max: MAX_TEXT,
        },
    ),
    ("voice", Rule::Str { min: 1, max: 64 }),
];

pub(super) static SPEC: Spec = Spec {
    collection: "media",
    defaults: || json!({"media_source": "upload", "streamable": true, "language": "en-us"}),
    validate,
    keys: &[Key {
        field: "owner_id",
        unique: None,
        values: owner_values,
    }],
};

fn validate(doc: &Map<String, Value>, errors: &mut ValidationErrors) {
    require(doc, &["name"], errors);
    check_schema(doc, SCHEMA, &[], errors);
    if let Some(tts) = doc.get("tts").and_then(Value::as_object) {
        check_schema(tts, TTS, &["tts"], errors);
    }
    if doc.get("media_source").and_then(Value::as_str) == Some("tts") && tts_text(doc).is_none() {
        errors.required(&["tts", "text"]);
    }
}

fn owner_values(doc: &Map<String, Value>) -> Vec<String> {
    text_value(doc, "owner_id")
}

/// What a `tts` media document speaks, if it is one.
pub fn tts_text(doc: &Map<String, Value>) -> Option<&str> {
    doc.get("tts")?
        .get("text")?
        .as_str()
        .filter(|t| !t.is_empty())
}

/// The voice a `tts` media document asks for (Kazoo's `female/en-US` style or an espeak-ng
/// voice name), if any.
pub fn tts_voice(doc: &Map<String, Value>) -> Option<&str> {
    doc.get("tts")?.get("voice")?.as_str()
}
