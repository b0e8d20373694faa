//! The kinds' schema checks: what each accepts, and the field each refusal names.

use super::*;
use serde_json::json;

/// The rules that failed, as `field -> [rule]`.
fn refused(kind: Kind, body: Value) -> Value {
    let errors = kind.from_request(body).expect_err("refused").to_json();
    let map = errors.as_object().expect("object");
    map.iter()
        .map(|(field, rules)| {
            let names: Vec<&String> = rules.as_object().expect("rules").keys().collect();
            (field.clone(), json!(names))
        })
        .collect::<Map<String, Value>>()
        .into()
}

#[test]
fn each_kind_accepts_a_kazoo_document_and_fills_defaults() {
    let device = json!({"name": "desk", "owner_id": "0123456789abcdef0123456789abcdef",
        "sip": {"username": "alice", "password": "s3cret", "realm": "acme.example"},
        "call_forward": {"enabled": true, "number": "+14155550000"},
        "caller_id": {"external": {"name": "Alice", "number": "+14155550001"}}});
    let doc = Kind::Device.from_request(device).unwrap();
    assert_eq!(
        (doc["enabled"].clone(), doc["sip"]["method"].clone()),
        (json!(true), json!("password"))
    );
    let user = json!({"first_name": "Alice", "last_name": "Liddell", "username": "Alice"});
    assert_eq!(Kind::User.from_request(user).unwrap()["priv_level"], "user");
    let group =
        json!({"name": "sales", "endpoints": {"d1": {"type": "device"}, "u1": {"type": "user"}}});
    Kind::Group.from_request(group).unwrap();
    let carrier = json!({"name": "trunk", "rules": ["^\\+1\\d{10}$"], "weight_cost": 10,
        "gateways": [{"server": "127.0.0.1", "port": 5080, "transport": "udp",
            "username": "u", "password": "p", "prefix": "9", "suffix": ""}]});
    assert_eq!(
        Kind::Resource.from_request(carrier).unwrap()["enabled"],
        true
    );
    let flow = json!({"numbers": ["2000"], "patterns": ["^\\+?1?(\\d{10})$"],
        "flow": {"module": "ring_group", "data": {"endpoints": []},
            "children": {"_": {"module": "resources", "data": {"to_did": "+14155550000"}}}}});
    let doc = Kind::Callflow.from_request(flow).unwrap();
    assert_eq!(doc["flow"]["children"]["_"]["module"], "resources");
}

#[test]
fn refusals_name_the_field_and_rule() {
    let cases = [
        (Kind::Device, json!({}), json!({"name": ["required"]})),
        (
            Kind::Device,
            json!({"name": "d", "sip": {"username": "alice", "password": "abc"}}),
            json!({"sip.password": ["minLength"]}),
        ),
        (
            Kind::Device,
            json!({"name": "d", "sip": {"password": "abcdef"}}),
            json!({"sip.username": ["required"]}),
        ),
        (
            Kind::Device,
            json!({"name": "d", "call_forward": {"enabled": "yes"}}),
            json!({"call_forward.enabled": ["type"]}),
        ),
        (
            Kind::User,
            json!({"first_name": "A", "caller_id": {"internal": {"number": 5}}}),
            json!({"last_name": ["required"], "caller_id.internal.number": ["type"]}),
        ),
        (
            Kind::Group,
            json!({"name": "g", "endpoints": {"x": {"type": "phone"}, "y": {}}}),
            json!({"endpoints.x.type": ["enum"], "endpoints.y.type": ["required"]}),
        ),
        (
            Kind::Resource,
            json!({"name": "r", "rules": ["(unclosed"], "gateways": [{"port": 70000}]}),
            json!({"rules.0": ["format"], "gateways.0.server": ["required"],
                "gateways.0.port": ["maximum"]}),
        ),
        (
            Kind::Callflow,
            json!({"numbers": ["1"]}),
            json!({"flow": ["required"]}),
        ),
        (
            Kind::Callflow,
            json!({"patterns": ["[a-"], "flow": {"module": "voicemail",
                "children": {"_": {"data": 1}, "busy": "x"}}}),
            json!({"patterns.0": ["format"], "flow.module": ["enum"],
                "flow.children._.module": ["required"], "flow.children._.data": ["type"],
                "flow.children.busy": ["type"]}),
        ),
        (
            // An inline conference (`config`) is checked as a stored one.
            Kind::Callflow,
            json!({"flow": {"module": "device", "children": {"_": {"module": "conference",
                "data": {"config": {"max_participants": "x", "play_welcome": true}}}}}}),
            json!({"flow.children._.data.config.max_participants": ["type"]}),
        ),
        (
            // A ring group's ringback: a tone stream must parse, anything else be a string.
            Kind::Callflow,
            json!({"flow": {"module": "ring_group", "data": {"ringback": 440},
                "children": {"_": {"module": "ring_group",
                    "data": {"ringback": "tone_stream://%(1000,ring,425)"}}}}}),
            json!({"flow.data.ringback": ["type"], "flow.children._.data.ringback": ["format"]}),
        ),
    ];
    for (kind, body, expected) in cases {
        assert_eq!(refused(kind, body.clone()), expected, "{kind:?} {body}");
    }
}

#[test]
fn bounds_are_enforced() {
    let mut node = json!({"module": "device"});
    for _ in 0..callflow::MAX_DEPTH + 1 {
        node = json!({"module": "device", "children": {"_": node}});
    }
    let errors = refused(Kind::Callflow, json!({"flow": node}));
    assert!(
        errors
            .as_object()
            .unwrap()
            .values()
            .any(|r| r == &json!(["maxDepth"])),
        "{errors}"
    );
    let many: Vec<String> = (0..=callflow::MAX_NUMBERS).map(|n| n.to_string()).collect();
    let errors = refused(
        Kind::Callflow,
        json!({"numbers": many, "flow": {"module": "user"}}),
    );
    assert_eq!(errors, json!({"numbers": ["maxItems"]}));
    let gateways = vec![json!({"server": "a"}); resource::MAX_GATEWAYS + 1];
    let errors = refused(Kind::Resource, json!({"name": "r", "gateways": gateways}));
    assert_eq!(errors, json!({"gateways": ["maxItems"]}));
    // A regex whose compiled program exceeds the size limit is refused, not built.
    let huge = json!({"name": "r", "rules": ["(\\w{100}){100}"]});
    assert_eq!(
        refused(Kind::Resource, huge),
        json!({"rules.0": ["format"]})
    );
}

#[test]
fn patch_merges_then_validates() {
    let doc = Kind::User
        .from_request(json!({"first_name": "A", "last_name": "B"}))
        .unwrap();
    let patched = Kind::User
        .patched(&doc, &json!({"email": "a@b.c", "enabled": null}))
        .unwrap();
    assert_eq!(patched["email"], "a@b.c");
    assert_eq!(
        patched["enabled"], true,
        "a removed field gets its default back"
    );
    let e = Kind::User
        .patched(&doc, &json!({"first_name": null}))
        .unwrap_err();
    assert!(e.to_json()["first_name"]["required"].is_object());
}

#[test]
fn a_ring_groups_ringback_is_a_playable_tone_or_media_the_account_has() {
    use crate::store::{DocumentWrite, SqliteStore, Store, StoreError};
    let store = SqliteStore::open(std::path::Path::new(":memory:")).expect("open");
    let account = Owner::Account("a");
    let write = |kind, body: Value| {
        store.write_document(account, kind, None, DocumentWrite::Create(body), None)
    };
    let media = write(
        Kind::Media,
        json!({"name": "ring", "media_source": "tts",
        "tts": {"text": "Please hold"}}),
    );
    let media_id = media.expect("media created").id;
    let group = |ringback: &str| json!({"flow": {"module": "ring_group", "data": {"endpoints": [], "ringback": ringback}}});
    for good in ["tone_stream://%(1000,3000,425)", media_id.as_str()] {
        write(Kind::Callflow, group(good)).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    let Err(StoreError::Invalid(e)) = write(Kind::Callflow, group("no-such-media")) else {
        panic!("a missing media id is refused")
    };
    let e = e.to_json();
    assert_eq!(
        e["flow.data.ringback"]["not_found"]["value"], "no-such-media",
        "{e}"
    );
    let bad = write(Kind::Callflow, group("tone_stream://%(1000,3000)"));
    let Err(StoreError::Invalid(e)) = bad else {
        panic!("a tone stream without a frequency is refused")
    };
    let message = &e.to_json()["flow.data.ringback"]["format"]["message"];
    assert!(
        message.as_str().is_some_and(|m| m.contains("tone")),
        "{message}"
    );
}
