//! JSON views of conferences and participants, as Kazoo's crossbar shows them.

use super::Node;
use super::service::{Conference, Live, Participant};
use serde_json::{Map, Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds from 0000-01-01 to 1970-01-01: Kazoo stamps times in Gregorian seconds.
pub const GREGORIAN_OFFSET: u64 = 62_167_219_200;

pub fn gregorian(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + GREGORIAN_OFFSET
}

fn seconds_between(earlier: SystemTime, now: SystemTime) -> u64 {
    now.duration_since(earlier).map_or(0, |d| d.as_secs())
}

/// The keys a list entry keeps (Kazoo's `crossbar_listing` view).
const LIST_KEYS: [&str; 7] = [
    "id",
    "name",
    "owner_id",
    "member",
    "moderator",
    "ui_flags",
    "conference_numbers",
];

pub fn list_entry(conf: &Conference, node: &Node, now: SystemTime) -> Value {
    let mut entry: Map<String, Value> = LIST_KEYS
        .iter()
        .filter_map(|k| Some((k.to_string(), conf.doc.get(*k)?.clone())))
        .collect();
    let flags = conf.doc.get("flags").cloned().unwrap_or_else(|| json!([]));
    entry.insert("flags".into(), flags);
    let read_only = match &conf.live {
        None => idle(),
        Some(live) => {
            let mut ro = counts(live, node, now);
            ro.extend([
                ("uuid".into(), live.uuid.clone().into()),
                ("run_time".into(), ro["duration"].clone()),
                ("start_time".into(), gregorian(live.started_at).into()),
                ("switch_hostname".into(), node.name.clone().into()),
                ("switch_url".into(), node.switch_url.clone().into()),
                ("switch_external_ip".into(), node.external_ip.clone().into()),
                ("participant_count".into(), live.participants.len().into()),
            ]);
            ro
        }
    };
    // The docs' list example shows the summary counts on the entry itself.
    for key in SUMMARY_KEYS {
        let count = read_only.get(key).cloned().unwrap_or_default();
        entry.insert(key.into(), count);
    }
    entry.insert("_read_only".into(), Value::Object(read_only));
    Value::Object(entry)
}

/// Counts a list entry also carries at its top level.
const SUMMARY_KEYS: [&str; 4] = ["members", "admins", "duration", "is_locked"];

/// `GET /conferences/{id}`: the document plus its realtime `_read_only`.
pub fn full(conf: &Conference, id: &str, node: &Node, now: SystemTime) -> Value {
    let mut doc = object(conf.doc.clone());
    let mut read_only = match &conf.live {
        None => idle(),
        Some(live) => counts(live, node, now),
    };
    read_only.insert("participants".into(), participants(conf, id, node, now));
    doc.insert("_read_only".into(), Value::Object(read_only));
    Value::Object(doc)
}

pub fn participants(conf: &Conference, id: &str, node: &Node, now: SystemTime) -> Value {
    let Some(live) = &conf.live else {
        return json!([]);
    };
    let name = conf.doc.get("name").and_then(Value::as_str).unwrap_or(id);
    let all = live.participants.iter();
    Value::Array(all.map(|p| participant(p, name, live, node, now)).collect())
}

/// Kazoo's participant object, with the channel variables both nested and flattened
/// (the crossbar docs show the flat form, the code emits the nested one).
pub fn participant(
    p: &Participant,
    name: &str,
    live: &Live,
    node: &Node,
    now: SystemTime,
) -> Value {
    let vars = json!({
        "is_moderator": p.is_moderator,
        "floor": p.floor,
        "video": p.video,
        "see": p.see,
        "speak": p.speak,
        "hear": p.hear,
        "talking": p.talking,
        "mute_detect": p.mute_detect,
        "energy_level": p.energy_level,
        "current_energy": p.current_energy,
        "member_id": p.participant_id,
        "member_ghost": p.member_ghost,
    });
    let mut flat = object(vars.clone());
    flat.extend(object(json!({
            "call_id": p.call_id,
            "conference_name": name,
            "conference_uuid": live.uuid,
            "switch_hostname": node.name,
            "participant_id": p.participant_id,
            "join_time": gregorian(p.joined_at),
            "duration": seconds_between(p.joined_at, now),
            "caller_id_name": p.caller_id_name,
            "caller_id_number": p.caller_id_number,
            "custom_channel_vars": p.custom_channel_vars,
            "custom_application_vars": p.custom_application_vars,
            "conference_channel_vars": vars,
            "latency_ms": p.latency_ms,
    })));
    Value::Object(flat)
}

fn idle() -> Map<String, Value> {
    let v = json!({"members": 0, "moderators": 0, "admins": 0, "duration": 0, "is_locked": false});
    object(v)
}

/// Members and moderators are counted apart; `admins` is the docs' name for moderators.
/// `focus` names the node hosting the conference (Kazoo's key; the cluster node name).
fn counts(live: &Live, node: &Node, now: SystemTime) -> Map<String, Value> {
    let moderators = live.participants.iter().filter(|p| p.is_moderator).count();
    let v = json!({
        "members": live.participants.len() - moderators,
        "moderators": moderators,
        "admins": moderators,
        "duration": seconds_between(live.started_at, now),
        "is_locked": live.is_locked,
        "focus": node.name,
    });
    object(v)
}

/// The map of a JSON object (built with `json!`, so never anything else).
pub fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
