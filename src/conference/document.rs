//! The Kazoo conference document (spec §3.1) plus Chorus's jambonz options (§6).
//!
//! A document is kept as the raw JSON object so PUT/POST/PATCH and round trips
//! lose no field Chorus does not know; typed accessors read it tolerantly (a
//! wrong type reads as the default) so a stored doc can never make a call panic.
//!
//! jambonz options, flattened into the Kazoo shape (snake_case, role settings
//! under `member` / `moderator`):
//! - `startConferenceOnEnter:false` is `wait_for_moderator:true` (Kazoo's own
//!   TwiML mapping), `maxParticipants` is `max_participants`, `joinMuted` is the
//!   role's `join_muted`;
//! - `member|moderator.end_conference_on_exit` (bool, false): the `endconf` flag;
//! - `member|moderator.distribute_dtmf` (bool, false): the `dist-dtmf` flag;
//! - `beep` (bool, false): the jambonz join beep, played to all after each join;
//! - `end_conference_duration` (int seconds >= 0): grace time after the last
//!   `endconf` member leaves;
//! - `status_hook` (URL) and `status_events` (subset of [`STATUS_EVENTS`]);
//! - `action_hook` (URL): called with the member's call info when each member leaves;
//! - `enter_hook` (URL): fetched before each join; its `play`/`say`/`pause` verbs play to
//!   the joiner first ([`super::hook_verbs`]);
//! - `wait_hook` (URL): fetched while a member waits for a moderator, after 750 ms of
//!   silence each time, its verbs played, until it answers `[]` (instead of hold music);
//! - `record` (object, optional `path`): the first member's join starts the conference
//!   recording, `{path}-{ms}.wav` in the account's recordings folder (else `{id}-{ms}.wav`);
//!   jambonz's `listen` (a WebSocket audio stream) is refused by name;
//! - `member|moderator.member_tag` (string): the role's members carry this tag;
//! - `member|moderator.speak_only_to` (string): the role's members are heard only by
//!   members tagged so (jambonz's coach), and hear everyone.
//!
//! Also Chorus's own: `require_moderator_media` (string), played to a member
//! refused for want of a moderator (§1 step 14; none by default).

use super::validation::{Rule, ValidationErrors, check_schema};
use super::vocabulary::{Action, Role, ToneSetting, valid_digits};
use serde_json::{Map, Value, json};

/// The jambonz status hook events (§5.2).
/// `stop-talking` is jambonz's code name for the seed's `end-talking`, kept as an alias.
pub const STATUS_EVENTS: [&str; 7] = [
    "start",
    "end",
    "join",
    "leave",
    "start-talking",
    "end-talking",
    "stop-talking",
];

/// The jambonz `beep`.
pub const BEEP: &str = "tone_stream://v=-7;%(100,0,941.0,1477.0);v=-7;>=2;+=.1;%(1400,0,350,440)";

/// Keys the server derives; a client's copy is dropped on write, as are
/// CouchDB-style `_*` and Kazoo private `pvt_*` keys.
const READ_ONLY: [&str; 2] = ["id", "focus"];

/// Schema rules, checked in order; a nested path is skipped when its parent is
/// not an object (the parent's own rule reports that).
const SCHEMA: &[(&str, Rule)] = &[
    ("name", Rule::Str { min: 1, max: 128 }),
    ("owner_id", Rule::Str { min: 32, max: 32 }),
    ("conference_numbers", Rule::Digits),
    ("member", Rule::Object),
    ("member.numbers", Rule::Digits),
    ("member.pins", Rule::Digits),
    ("member.join_muted", Rule::Bool),
    ("member.join_deaf", Rule::Bool),
    ("member.play_entry_prompt", Rule::Bool),
    ("member.end_conference_on_exit", Rule::Bool),
    ("member.distribute_dtmf", Rule::Bool),
    ("member.member_tag", Rule::Str { min: 1, max: 64 }),
    ("member.speak_only_to", Rule::Str { min: 1, max: 64 }),
    ("moderator", Rule::Object),
    ("moderator.numbers", Rule::Digits),
    ("moderator.pins", Rule::Digits),
    ("moderator.join_muted", Rule::Bool),
    ("moderator.join_deaf", Rule::Bool),
    ("moderator.play_entry_prompt", Rule::Bool),
    ("moderator.end_conference_on_exit", Rule::Bool),
    ("moderator.distribute_dtmf", Rule::Bool),
    ("moderator.member_tag", Rule::Str { min: 1, max: 64 }),
    ("moderator.speak_only_to", Rule::Str { min: 1, max: 64 }),
    ("max_participants", Rule::Int { min: 0, max: None }),
    ("max_members_media", Rule::Str { min: 0, max: 2048 }),
    ("play_entry_tone", Rule::BoolOrStr),
    ("play_exit_tone", Rule::BoolOrStr),
    ("play_welcome", Rule::Bool),
    ("play_name", Rule::Bool),
    ("require_moderator", Rule::Bool),
    ("wait_for_moderator", Rule::Bool),
    ("require_moderator_media", Rule::Str { min: 0, max: 2048 }),
    ("profile", Rule::ObjectOrName),
    ("profile_name", Rule::Str { min: 1, max: 256 }),
    ("caller_controls", Rule::Str { min: 1, max: 128 }),
    ("moderator_controls", Rule::Str { min: 1, max: 128 }),
    ("controls", Rule::Object),
    ("language", Rule::Str { min: 1, max: 32 }),
    ("domain", Rule::Str { min: 0, max: 253 }),
    ("bridge_username", Rule::Str { min: 0, max: 256 }),
    ("bridge_password", Rule::Str { min: 0, max: 256 }),
    ("flags", Rule::Strings),
    ("pin_timeout", Rule::Int { min: 1, max: None }),
    ("beep", Rule::Bool),
    ("end_conference_duration", Rule::Int { min: 0, max: None }),
    ("status_hook", Rule::Str { min: 1, max: 2048 }),
    ("action_hook", Rule::Str { min: 1, max: 2048 }),
    ("enter_hook", Rule::Str { min: 1, max: 2048 }),
    ("wait_hook", Rule::Str { min: 1, max: 2048 }),
    ("record", Rule::Object),
    ("status_events", Rule::EnumList(&STATUS_EVENTS)),
];

/// Schema defaults filled in on every validated write (Kazoo fills them on
/// create, so a doc that skipped the API reads `member.join_muted` as false).
/// Decision: `moderator.join_muted` defaults to true as the API documentation says
/// (the callflow schema says false); a doc written without the API still reads false.
fn defaults() -> Value {
    json!({
        "conference_numbers": [],
        "member": {"numbers": [], "pins": [], "join_muted": true, "join_deaf": false},
        "moderator": {"numbers": [], "pins": [], "join_muted": true, "join_deaf": false},
        "max_participants": 0,
        "play_welcome": true,
        "play_name": false,
        "require_moderator": false,
        "wait_for_moderator": false,
    })
}

/// A conference document: the raw JSON object with typed accessors.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConferenceDoc(Map<String, Value>);

impl ConferenceDoc {
    /// Wraps a stored or inline (callflow `config`) object as is: no defaults.
    pub fn from_map(obj: Map<String, Value>) -> Self {
        ConferenceDoc(obj)
    }

    /// An API body for PUT (create) or POST (replace): read-only keys dropped,
    /// defaults filled, then validated.
    pub fn from_request(body: Value) -> Result<Self, ValidationErrors> {
        let doc = ConferenceDoc(request_object(body, &READ_ONLY, defaults())?);
        doc.validate()?;
        Ok(doc)
    }

    /// PATCH: `patch` merged into this doc (RFC 7396: objects merge, `null`
    /// deletes), then validated as a replace.
    pub fn patched(&self, patch: &Value) -> Result<Self, ValidationErrors> {
        let mut merged = Value::Object(self.0.clone());
        merge_patch(&mut merged, patch);
        Self::from_request(merged)
    }

    /// Every schema violation, in Kazoo's validation error shape.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        check_schema(&self.0, SCHEMA, &[], &mut errors);
        if let Some(profile) = self.profile() {
            super::profile_keys::validate(profile, &mut errors);
        }
        if let Some(controls) = self.controls() {
            validate_controls(controls, &mut errors);
        }
        if let Some(v) = self.0.get("listen") {
            let why = "Streaming conference audio to a WebSocket (jambonz listen) is not supported";
            errors.add(&["listen"], "not_supported", why, None, Some(v.clone()));
        }
        if let Some(path) = self.0.get("record").and_then(|r| r.get("path")) {
            Rule::Str { min: 1, max: 128 }.check(&["record", "path"], path, &mut errors);
        }
        errors.into_result()
    }

    pub fn json(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_json(self) -> Map<String, Value> {
        self.0
    }

    /// The doc as the API returns it: the stored object plus `id`.
    pub fn to_api(&self, id: &str) -> Value {
        let mut obj = self.0.clone();
        obj.insert("id".into(), json!(id));
        Value::Object(obj)
    }

    pub fn name(&self) -> Option<&str> {
        self.str("name")
    }

    pub fn conference_numbers(&self) -> Vec<&str> {
        strings(self.0.get("conference_numbers"))
    }

    pub fn numbers(&self, role: Role) -> Vec<&str> {
        strings(self.role_field(role, "numbers"))
    }

    pub fn pins(&self, role: Role) -> Vec<&str> {
        strings(self.role_field(role, "pins"))
    }

    /// Every dial-in number: conference, member and moderator lists.
    pub fn all_numbers(&self) -> Vec<&str> {
        let mut all = self.conference_numbers();
        all.extend(self.numbers(Role::Member));
        all.extend(self.numbers(Role::Moderator));
        all
    }

    /// Absent is false for both roles: the member default `true` exists only
    /// as a schema default filled in on write (§1 step 10).
    pub fn join_muted(&self, role: Role) -> bool {
        self.role_bool(role, "join_muted")
    }

    pub fn join_deaf(&self, role: Role) -> bool {
        self.role_bool(role, "join_deaf")
    }

    pub fn end_conference_on_exit(&self, role: Role) -> bool {
        self.role_bool(role, "end_conference_on_exit")
    }

    pub fn distribute_dtmf(&self, role: Role) -> bool {
        self.role_bool(role, "distribute_dtmf")
    }

    /// jambonz `memberTag`: the tag the role's members carry.
    pub fn member_tag(&self, role: Role) -> Option<&str> {
        self.role_field(role, "member_tag").and_then(Value::as_str)
    }

    /// jambonz `speakOnlyTo`: only members with this tag hear the role's members.
    pub fn speak_only_to(&self, role: Role) -> Option<&str> {
        self.role_field(role, "speak_only_to")
            .and_then(Value::as_str)
    }

    /// 0 is unlimited.
    pub fn max_participants(&self) -> u32 {
        self.uint("max_participants")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    }

    pub fn max_members_media(&self) -> Option<&str> {
        self.str("max_members_media")
    }

    pub fn play_entry_tone(&self) -> ToneSetting {
        ToneSetting::from_json(self.0.get("play_entry_tone"))
    }

    pub fn play_exit_tone(&self) -> ToneSetting {
        ToneSetting::from_json(self.0.get("play_exit_tone"))
    }

    pub fn play_welcome(&self) -> bool {
        self.bool_or("play_welcome", true)
    }

    pub fn play_name(&self) -> bool {
        self.bool_or("play_name", false)
    }

    pub fn require_moderator(&self) -> bool {
        self.bool_or("require_moderator", false)
    }

    pub fn wait_for_moderator(&self) -> bool {
        self.bool_or("wait_for_moderator", false)
    }

    /// Chorus: what a member hears before being hung up for want of a
    /// moderator (§1 step 14); absent plays nothing.
    pub fn require_moderator_media(&self) -> Option<&str> {
        self.str("require_moderator_media")
            .filter(|s| !s.is_empty())
    }

    pub fn profile(&self) -> Option<&Map<String, Value>> {
        self.0.get("profile").and_then(Value::as_object)
    }

    /// `profile_name`, else a `profile` given as a name (the API documentation's form).
    pub fn profile_name(&self) -> Option<&str> {
        self.str("profile_name").or_else(|| self.str("profile"))
    }

    /// The members' controls group; absent means the profile's.
    pub fn caller_controls(&self) -> Option<&str> {
        self.str("caller_controls")
    }

    pub fn moderator_controls(&self) -> Option<&str> {
        self.str("moderator_controls")
    }

    pub fn controls(&self) -> Option<&Map<String, Value>> {
        self.0.get("controls").and_then(Value::as_object)
    }

    pub fn language(&self) -> Option<&str> {
        self.str("language")
    }

    pub fn pin_timeout_ms(&self) -> Option<u64> {
        self.uint("pin_timeout")
    }

    pub fn flags(&self) -> Vec<&str> {
        strings(self.0.get("flags"))
    }

    pub fn beep(&self) -> bool {
        self.bool_or("beep", false)
    }

    pub fn end_conference_duration_s(&self) -> Option<u64> {
        self.uint("end_conference_duration")
    }

    pub fn status_hook(&self) -> Option<&str> {
        self.str("status_hook")
    }

    /// jambonz `actionHook`: called when a member's conference task ends (it leaves).
    pub fn action_hook(&self) -> Option<&str> {
        self.str("action_hook")
    }

    /// jambonz `enterHook`: its verbs play to each joiner before the join.
    pub fn enter_hook(&self) -> Option<&str> {
        self.str("enter_hook")
    }

    /// jambonz `waitHook`: its verbs play, in a loop, to members waiting for a moderator.
    pub fn wait_hook(&self) -> Option<&str> {
        self.str("wait_hook")
    }

    /// jambonz `record`: whether the first member's join starts the conference recording.
    pub fn records(&self) -> bool {
        self.0.get("record").is_some_and(Value::is_object)
    }

    /// `record.path`: the recording's file name.
    pub fn record_path(&self) -> Option<&str> {
        self.0.get("record")?.get("path")?.as_str()
    }

    /// The events the status hook wants; absent means none (as jambonz).
    pub fn status_events(&self) -> Vec<&str> {
        strings(self.0.get("status_events"))
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn uint(&self, key: &str) -> Option<u64> {
        self.0.get(key).and_then(Value::as_u64)
    }

    fn bool_or(&self, key: &str, default: bool) -> bool {
        self.0.get(key).and_then(Value::as_bool).unwrap_or(default)
    }

    fn role_field(&self, role: Role, key: &str) -> Option<&Value> {
        self.0.get(role.key())?.get(key)
    }

    fn role_bool(&self, role: Role, key: &str) -> bool {
        self.role_field(role, key)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// The string items of an array; anything else reads as empty.
fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Numbers of `doc` already used by `others` (id, doc) with a different id.
/// Empty means the doc may be saved.
pub fn numbers_in_use<'a>(
    doc: &ConferenceDoc,
    id: Option<&str>,
    others: impl IntoIterator<Item = (&'a str, &'a ConferenceDoc)>,
) -> Vec<String> {
    let used: Vec<&str> = others
        .into_iter()
        .filter(|(other_id, _)| Some(*other_id) != id)
        .flat_map(|(_, other)| other.all_numbers())
        .collect();
    let mut taken: Vec<String> = Vec::new();
    for n in doc.all_numbers() {
        if used.contains(&n) && !taken.iter().any(|t| t == n) {
            taken.push(n.to_string());
        }
    }
    taken
}

/// The 400 for [`numbers_in_use`] (key `numbers`, rule `unique`).
pub fn numbers_in_use_error(numbers: &[String]) -> ValidationErrors {
    ValidationErrors::single(
        "numbers",
        "unique",
        "Numbers already in use",
        None,
        Some(json!(numbers)),
    )
}

/// An API body (PUT or POST) as the object to validate: `read_only` keys and CouchDB-style
/// `_*` and Kazoo private `pvt_*` keys dropped, missing `defaults` filled in.
pub(crate) fn request_object(
    body: Value,
    read_only: &[&str],
    defaults: Value,
) -> Result<Map<String, Value>, ValidationErrors> {
    let Value::Object(mut obj) = body else {
        return Err(ValidationErrors::single(
            "data",
            "type",
            "Value did not match type(s): object",
            Some(json!("object")),
            None,
        ));
    };
    obj.retain(|k, _| {
        !read_only.contains(&k.as_str()) && !k.starts_with('_') && !k.starts_with("pvt_")
    });
    fill_defaults(&mut obj, defaults);
    Ok(obj)
}

/// Adds the keys of `defaults` missing from `obj`, recursing into objects.
fn fill_defaults(obj: &mut Map<String, Value>, defaults: Value) {
    let Value::Object(defaults) = defaults else {
        return;
    };
    for (k, d) in defaults {
        match obj.get_mut(&k) {
            None => {
                obj.insert(k, d);
            }
            Some(Value::Object(inner)) => fill_defaults(inner, d),
            Some(_) => {}
        }
    }
}

/// RFC 7396 JSON merge patch.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// `controls`: `{group: [{"action": <vocabulary>, "digits": "*1"}]}`.
fn validate_controls(controls: &Map<String, Value>, errors: &mut ValidationErrors) {
    for (group, bindings) in controls {
        let path = ["controls", group.as_str()];
        let Some(list) = bindings.as_array() else {
            errors.type_error(&path, "array", bindings);
            continue;
        };
        for (i, b) in list.iter().enumerate() {
            let i = i.to_string();
            let at = |k| ["controls", group.as_str(), i.as_str(), k];
            match b.get("action") {
                Some(Value::String(a)) if Action::parse(a).is_some() => {}
                Some(v) => errors.add(
                    &at("action"),
                    "enum",
                    "Value not found in enumerated list of values",
                    Some(json!(Action::VOCABULARY)),
                    Some(v.clone()),
                ),
                None => errors.required(&at("action")),
            }
            match b.get("digits") {
                Some(Value::String(d)) if valid_digits(d) => {}
                Some(v) => errors.add(
                    &at("digits"),
                    "pattern",
                    "Failed to match pattern '^[0-9*#]{1,16}$'",
                    Some(json!("^[0-9*#]{1,16}$")),
                    Some(v.clone()),
                ),
                None => errors.required(&at("digits")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(v: Value) -> Result<ConferenceDoc, Value> {
        ConferenceDoc::from_request(v).map_err(|e| e.to_json())
    }

    #[test]
    fn create_fills_schema_defaults_and_keeps_unknown_fields() {
        let doc = create(json!({"name": "sales", "x_custom": {"a": 1}, "member": {"pins": ["1"]}}))
            .unwrap();
        assert!(doc.join_muted(Role::Member));
        assert!(
            doc.join_muted(Role::Moderator),
            "as the API documentation says"
        );
        assert_eq!(doc.pins(Role::Member), ["1"]);
        assert_eq!(doc.json()["x_custom"], json!({"a": 1}));
        assert_eq!(doc.json()["member"]["numbers"], json!([]));
        assert_eq!(doc.json()["moderator"]["join_deaf"], json!(false));
        assert!(doc.play_welcome());
    }

    #[test]
    fn absent_join_muted_reads_false_without_the_api() {
        let doc = ConferenceDoc::from_map(Map::new());
        assert!(!doc.join_muted(Role::Member));
        assert_eq!(doc.caller_controls(), None);
        assert_eq!(doc.play_entry_tone(), ToneSetting::On);
    }

    #[test]
    fn client_id_and_read_only_are_dropped() {
        let doc =
            create(json!({"id": "x", "_read_only": {}, "_rev": "1", "pvt_type": "x", "focus": "fs1", "name": "a"})).unwrap();
        for k in ["id", "_read_only", "_rev", "pvt_type", "focus"] {
            assert!(!doc.json().contains_key(k), "{k}");
        }
        assert_eq!(doc.name(), Some("a"));
        assert_eq!(doc.to_api("abc")["id"], json!("abc"));
    }

    #[test]
    fn name_length_error_has_kazoos_shape() {
        let long = "x".repeat(129);
        let e = create(json!({"name": long})).unwrap_err();
        assert_eq!(
            e,
            json!({"name": {"maxLength": {
                "message": "String must not be more than 128 characters",
                "target": 128, "value": long}}})
        );
        let e = create(json!({"name": ""})).unwrap_err();
        assert_eq!(e["name"]["minLength"]["target"], json!(1));
    }

    #[test]
    fn numbers_must_be_digit_strings() {
        let e = create(json!({"conference_numbers": ["1000", "12a"], "member": {"pins": [5]}}))
            .unwrap_err();
        assert_eq!(
            e["conference_numbers.1"]["pattern"]["target"],
            json!("^[0-9]+$")
        );
        assert_eq!(e["member.pins.0"]["type"]["target"], json!("string"));
        assert!(e.get("conference_numbers.0").is_none());
    }

    #[test]
    fn type_enum_and_minimum_rules() {
        let e = create(json!({
            "member": "x", "play_entry_tone": 3, "max_participants": -1,
            "status_events": ["join", "explode"], "pin_timeout": "5",
            "owner_id": "short", "domain": 7, "bridge_username": [], "language": "",
            "moderator": {"play_entry_prompt": "yes"}
        }))
        .unwrap_err();
        assert_eq!(e["owner_id"]["minLength"]["target"], json!(32));
        for key in ["domain", "bridge_username"] {
            assert!(e[key]["type"].is_object(), "{key}: {e}");
        }
        assert!(e["language"]["minLength"].is_object(), "{e}");
        assert!(e["moderator.play_entry_prompt"]["type"].is_object(), "{e}");
        assert_eq!(e["member"]["type"]["target"], json!("object"));
        assert_eq!(
            e["play_entry_tone"]["type"]["target"],
            json!(["boolean", "string"])
        );
        assert_eq!(e["max_participants"]["minimum"]["target"], json!(0));
        assert_eq!(e["status_events.1"]["enum"]["value"], json!("explode"));
        assert!(e["pin_timeout"]["type"].is_object());
    }

    #[test]
    fn non_object_body_is_a_type_error() {
        let e = create(json!([1])).unwrap_err();
        assert_eq!(e["data"]["type"]["target"], json!("object"));
    }

    #[test]
    fn controls_are_checked_and_dotted_keys_escaped() {
        let e = create(json!({"controls": {"a.b": [
            {"action": "mute", "digits": "*1"},
            {"action": "explode", "digits": "x"},
            {}
        ]}}))
        .unwrap_err();
        assert_eq!(
            e["controls.a%2Eb.1.action"]["enum"]["value"],
            json!("explode")
        );
        assert!(e["controls.a%2Eb.1.digits"]["pattern"].is_object());
        assert!(e["controls.a%2Eb.2.action"]["required"].is_object());
        assert!(e.get("controls.a%2Eb.0.action").is_none());
    }

    #[test]
    fn profile_values_are_validated() {
        let e = create(json!({"profile": {"rate": 22050, "energy-level": 5000, "moh-sound": 1}}))
            .unwrap_err();
        assert!(e["profile.rate"]["enum"].is_object());
        assert_eq!(e["profile.energy-level"]["maximum"]["target"], json!(1800));
        assert!(e["profile.moh-sound"]["type"].is_object());
        assert!(create(json!({"profile": {"rate": 16000, "x-key": "y"}})).is_ok());
    }

    #[test]
    fn profile_may_be_a_name() {
        let doc = create(json!({"profile": "page"})).unwrap();
        assert_eq!((doc.profile_name(), doc.profile()), (Some("page"), None));
        let both = create(json!({"profile": "page", "profile_name": "big"})).unwrap();
        assert_eq!(both.profile_name(), Some("big"));
        let e = create(json!({"profile": ""})).unwrap_err();
        assert!(e["profile"]["minLength"].is_object(), "{e}");
        let e = create(json!({"profile": 7})).unwrap_err();
        assert!(e["profile"]["type"].is_object(), "{e}");
    }

    #[test]
    fn profile_flags_the_engine_lacks_are_refused_by_name() {
        let ok = json!({"profile": {"conference-flags": "wait-mod",
                                    "member-flags": "mute|endconf|dist-dtmf"}});
        assert!(create(ok).is_ok());
        let e = create(
            json!({"profile": {"conference-flags": "wait-mod|video-floor-only",
                                          "member-flags": "nomoh"}}),
        )
        .unwrap_err();
        assert_eq!(
            e["profile.conference-flags"]["enum"]["value"],
            json!("video-floor-only")
        );
        assert_eq!(e["profile.member-flags"]["enum"]["value"], json!("nomoh"));
    }

    #[test]
    fn listen_is_refused_by_name_and_record_takes_a_path() {
        let e = create(json!({"listen": {"url": "wss://x"}})).unwrap_err();
        assert_eq!(
            e["listen"]["not_supported"]["value"],
            json!({"url": "wss://x"})
        );
        let e = create(json!({"record": {"path": 7}})).unwrap_err();
        assert!(e["record.path"]["type"].is_object(), "{e}");
        let doc = create(json!({"record": {"path": "board"}})).unwrap();
        assert!(doc.records());
        assert_eq!(doc.record_path(), Some("board"));
        assert!(!create(json!({})).unwrap().records());
    }

    #[test]
    fn control_actions_without_a_dialplan_are_refused_by_name() {
        for action in ["transfer", "execute_application", "event"] {
            let e = create(json!({"controls": {"g": [{"action": action, "digits": "7"}]}}))
                .unwrap_err();
            assert_eq!(
                e["controls.g.0.action"]["enum"]["value"],
                json!(action),
                "{e}"
            );
        }
    }

    #[test]
    fn patch_merges_deletes_and_revalidates() {
        let doc =
            create(json!({"name": "a", "member": {"pins": ["1"]}, "play_name": true})).unwrap();
        let p = doc
            .patched(&json!({"member": {"numbers": ["2000"]}, "name": null, "play_name": null}))
            .unwrap();
        assert_eq!(p.pins(Role::Member), ["1"]);
        assert_eq!(p.numbers(Role::Member), ["2000"]);
        assert_eq!(p.name(), None);
        // A deleted field with a schema default gets the default back.
        assert_eq!(p.json()["play_name"], json!(false));
        assert!(doc.patched(&json!({"name": 7})).is_err());
    }

    #[test]
    fn numbers_unique_across_the_account() {
        let a = create(json!({"conference_numbers": ["1000"], "member": {"numbers": ["1001"]}}))
            .unwrap();
        let b = create(json!({"moderator": {"numbers": ["1001", "1000", "3"]}})).unwrap();
        let taken = numbers_in_use(&b, Some("b"), [("a", &a), ("b", &b)]);
        assert_eq!(taken, ["1001", "1000"]);
        assert!(numbers_in_use(&a, Some("a"), [("a", &a)]).is_empty());
        assert_eq!(
            numbers_in_use_error(&taken).to_json(),
            json!({"numbers": {"unique": {"message": "Numbers already in use", "cause": ["1001", "1000"]}}})
        );
    }

    #[test]
    fn jambonz_options() {
        let doc = create(
            json!({"beep": true, "moderator": {"end_conference_on_exit": true},
            "end_conference_duration": 10, "status_hook": "http://h/s",
            "status_events": ["join", "end-talking", "stop-talking"]}),
        )
        .unwrap();
        assert!(doc.beep() && doc.end_conference_on_exit(Role::Moderator));
        assert!(!doc.end_conference_on_exit(Role::Member));
        assert_eq!(doc.end_conference_duration_s(), Some(10));
        assert_eq!(doc.status_events(), ["join", "end-talking", "stop-talking"]);
        assert!(ConferenceDoc::default().status_events().is_empty());
        let tags = create(json!({"member": {"speak_only_to": "coach"},
            "moderator": {"member_tag": "coach"}}))
        .unwrap();
        assert_eq!(tags.speak_only_to(Role::Member), Some("coach"));
        assert_eq!(tags.member_tag(Role::Moderator), Some("coach"));
        assert_eq!(tags.member_tag(Role::Member), None);
        let bad = create(json!({"member": {"member_tag": ""}})).unwrap_err();
        assert!(format!("{bad:?}").contains("member.member_tag"), "{bad:?}");
    }
}
