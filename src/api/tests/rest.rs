//! The conference REST API: envelope, CRUD, realtime state, actions, errors, auth.

use super::fake::Seen;
use super::*;
use crate::api::render::GREGORIAN_OFFSET;
use crate::api::service::{
    ConferenceAction, ParticipantAction, RecordAction, Relate, Relationship, Target,
};

fn assert_envelope(body: &Value) {
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body["auth_token"], TOKEN_A);
    assert_eq!(body["node"], "chorus@test");
    assert_eq!(body["revision"], "undefined");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["request_id"].as_str().map(str::len), Some(32));
    assert_eq!(body["tokens"]["consumed"], 1);
    assert!(body["tokens"]["remaining"].is_u64(), "{body}");
    let stamp = body["timestamp"].as_str().unwrap();
    humantime::parse_rfc3339(stamp).unwrap_or_else(|e| panic!("{stamp}: {e}"));
}

/// Kazoo's error shape: status, the code as a string, message, data.
fn assert_error(body: &Value, code: u16, message: &str) {
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["error"], code.to_string(), "{body}");
    assert_eq!(body["message"], message, "{body}");
    assert!(
        body["request_id"].is_string() && body["timestamp"].is_string(),
        "{body}"
    );
}

async fn create(h: &Harness, doc: Value) -> String {
    let (status, body) = h.a("PUT", "", Some(json!({ "data": doc }))).await;
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn crud_round_trip_with_envelope() {
    let h = Harness::start().await;
    let doc = json!({"name": "standup", "play_welcome": false, "member": {"numbers": ["5001"]}});
    let (status, body) = h.a("PUT", "", Some(json!({ "data": doc }))).await;
    assert_eq!(status, 201);
    assert_envelope(&body);
    let id = body["data"]["id"].as_str().unwrap().to_owned();

    let (status, list) = h.a("GET", "", None).await;
    assert_eq!(status, 200);
    assert_envelope(&list);
    assert_eq!(list["page_size"], 1);
    let entry = &list["data"][0];
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["member"]["numbers"], json!(["5001"]));
    assert_eq!(entry["flags"], json!([]), "flags default to []");
    assert!(
        entry.get("play_welcome").is_none(),
        "list entries are projected: {entry}"
    );
    let idle =
        json!({"members": 0, "moderators": 0, "admins": 0, "duration": 0, "is_locked": false});
    assert_eq!(entry["_read_only"], idle);
    for key in ["members", "admins", "duration", "is_locked"] {
        assert_eq!(
            entry[key], idle[key],
            "the docs' summary {key} on the entry"
        );
    }

    let (status, one) = h.a("GET", &format!("/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(one["data"]["play_welcome"], false);
    assert_eq!(one["data"]["_read_only"]["participants"], json!([]));

    let replaced = json!({"data": {"name": "retro"}});
    let (status, body) = h.a("POST", &format!("/{id}"), Some(replaced)).await;
    assert_eq!(
        (status, body["data"]["name"].clone()),
        (200, json!("retro"))
    );
    assert!(
        body["data"].get("play_welcome").is_none(),
        "POST replaces the document"
    );

    let patch = json!({"data": {"play_name": true}});
    let (status, body) = h.a("PATCH", &format!("/{id}"), Some(patch)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&body["data"]["name"], &body["data"]["play_name"]),
        (&json!("retro"), &json!(true))
    );

    let (status, body) = h.a("DELETE", &format!("/{id}"), None).await;
    assert_eq!((status, body["data"]["id"].clone()), (200, json!(id)));
    let (status, body) = h.a("GET", &format!("/{id}"), None).await;
    assert_eq!(status, 404);
    assert_error(&body, 404, "bad_identifier");
    assert_eq!(
        body["data"],
        json!({"cause": id, "message": "bad identifier"})
    );
}

#[tokio::test]
async fn validation_errors_pass_through_with_kazoo_shape() {
    let h = Harness::start().await;
    let long = "x".repeat(129);
    let (status, body) = h.a("PUT", "", Some(json!({"data": {"name": long}}))).await;
    assert_eq!(status, 400);
    assert_error(&body, 400, "validation error");
    assert_eq!(body["data"]["name"]["maxLength"]["target"], 128);

    create(&h, json!({"name": "a", "conference_numbers": ["7000"]})).await;
    let clash = json!({"data": {"name": "b", "moderator": {"numbers": ["7000"]}}});
    let (status, body) = h.a("PUT", "", Some(clash)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"],
        json!({"numbers": {"unique": {"message": "Numbers already in use", "cause": "7000"}}})
    );
}

#[tokio::test]
async fn realtime_state_in_both_participant_forms() {
    let h = Harness::start().await;
    let id = create(&h, json!({"name": "standup"})).await;
    let started = SystemTime::now() - Duration::from_secs(30);
    let joined = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let people = vec![
        participant(1, "call-1", false, joined),
        participant(2, "call-2", true, started),
    ];
    h.fake
        .state()
        .live
        .insert(id.clone(), live(people, started));

    let (_, one) = h.a("GET", &format!("/{id}"), None).await;
    let ro = &one["data"]["_read_only"];
    assert_eq!(
        (&ro["members"], &ro["moderators"], &ro["admins"]),
        (&json!(1), &json!(1), &json!(1))
    );
    assert_eq!(ro["is_locked"], true);
    assert!(ro["duration"].as_u64().unwrap() >= 30);
    let p = &ro["participants"][0];
    assert_eq!(p["join_time"], 1_700_000_000 + GREGORIAN_OFFSET);
    assert!(p["duration"].as_u64().unwrap() > 0);
    for (key, want) in [
        ("call_id", json!("call-1")),
        ("conference_name", json!("standup")),
        ("conference_uuid", json!("uuid-1")),
        ("switch_hostname", json!("chorus@test")),
        ("participant_id", json!(1)),
        ("caller_id_name", json!("Caller 1")),
        ("caller_id_number", json!("1001")),
        ("custom_application_vars", json!({"team": "blue"})),
        ("latency_ms", json!(31)),
    ] {
        assert_eq!(p[key], want, "{key} in {p}");
    }
    let nested = p["conference_channel_vars"].as_object().unwrap();
    let keys = [
        "is_moderator",
        "floor",
        "video",
        "see",
        "speak",
        "hear",
        "talking",
        "mute_detect",
        "energy_level",
        "current_energy",
        "member_id",
        "member_ghost",
    ];
    for key in keys {
        assert!(nested.contains_key(key), "nested {key}");
        assert_eq!(p[key], nested[key], "flat {key} matches nested");
    }
    assert_eq!(
        (&p["speak"], &p["current_energy"]),
        (&json!(true), &json!(7))
    );

    let (_, list) = h
        .a(
            "GET",
            "/{id}/participants".replace("{id}", &id).as_str(),
            None,
        )
        .await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    let (_, two) = h.a("GET", &format!("/{id}/participants/2"), None).await;
    assert_eq!(two["data"]["is_moderator"], true);
    let (status, none) = h.a("GET", &format!("/{id}/participants/99"), None).await;
    assert_eq!((status, none["data"].clone()), (200, json!({})));

    let (_, all) = h.a("GET", "", None).await;
    let ro = &all["data"][0]["_read_only"];
    assert_eq!(
        (&ro["uuid"], &ro["participant_count"]),
        (&json!("uuid-1"), &json!(2))
    );
    assert_eq!(ro["switch_url"], "sip:127.0.0.1:5060");
    assert!(ro["start_time"].as_u64().unwrap() > GREGORIAN_OFFSET);
}

#[tokio::test]
async fn actions_reach_the_service_as_typed_requests() {
    let h = Harness::start().await;
    let id = create(&h, json!({"name": "standup"})).await;
    let people = vec![participant(1, "call-1", false, SystemTime::now())];
    h.fake
        .state()
        .live
        .insert(id.clone(), live(people.clone(), SystemTime::now()));
    let conf = format!("/{id}");
    let bulk = format!("/{id}/participants");
    let one = format!("/{id}/participants/1");
    let cases = [
        (&conf, json!({"action": "lock"}), 202, json!("ok")),
        (
            &conf,
            json!({"data": {"action": "unlock"}}),
            202,
            json!("ok"),
        ),
        (
            &conf,
            json!({"action": "play", "data": {"media_id": "m1"}}),
            202,
            json!("ok"),
        ),
        (
            &conf,
            json!({"data": {"action": "record", "data": {"action": "start"}}}),
            202,
            json!("starting recording"),
        ),
        (
            &conf,
            json!({"action": "record", "data": {"action": "stop"}}),
            202,
            json!("stopping recording"),
        ),
        (
            &bulk,
            json!({"data": {"action": "mute"}}),
            200,
            json!("standup"),
        ),
        (&bulk, json!({"action": "kick"}), 200, json!("standup")),
        (
            &bulk,
            json!({"action": "play", "data": {"media_id": "m2"}}),
            202,
            json!("ok"),
        ),
        (
            &bulk,
            json!({"action": "relate", "data": {"participant_id": 1, "other_participant": "1", "relationship": "deaf"}}),
            202,
            json!("relating participants"),
        ),
        (&one, json!({"action": "undeaf"}), 202, json!("ok")),
        (
            &one,
            json!({"data": {"action": "play", "data": {"media_id": "m3"}}}),
            202,
            json!("ok"),
        ),
    ];
    for (path, request, status, data) in cases {
        let (got, body) = h.a("PUT", path, Some(request.clone())).await;
        assert_eq!(got, status, "{request} -> {body}");
        // Bulk mute/kick answer the conference document; the others an acknowledgement.
        let answer = if status == 200 {
            body["data"]["name"].clone()
        } else {
            body["data"].clone()
        };
        assert_eq!(answer, data, "{request}");
    }
    let play = |m: &str| ConferenceAction::Play { media_id: m.into() };
    let want = vec![
        Seen::Conference(id.clone(), ConferenceAction::Lock),
        Seen::Conference(id.clone(), ConferenceAction::Unlock),
        Seen::Conference(id.clone(), play("m1")),
        Seen::Conference(id.clone(), ConferenceAction::Record(RecordAction::Start)),
        Seen::Conference(id.clone(), ConferenceAction::Record(RecordAction::Stop)),
        Seen::Participants(id.clone(), Target::All, ParticipantAction::Mute),
        Seen::Participants(id.clone(), Target::All, ParticipantAction::Kick),
        Seen::Conference(id.clone(), play("m2")),
        Seen::Relate(
            id.clone(),
            Relate {
                participant_id: 1,
                other_participant: 1,
                relationship: Relationship::Deaf,
            },
        ),
        Seen::Participants(id.clone(), Target::One(1), ParticipantAction::Undeaf),
        Seen::Participants(
            id.clone(),
            Target::One(1),
            ParticipantAction::Play {
                media_id: "m3".into(),
            },
        ),
    ];
    assert_eq!(h.fake.state().seen, want);

    let (status, body) = h
        .a(
            "PUT",
            &format!("/{id}/participants/7"),
            Some(json!({"action": "mute"})),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["data"]["cause"], "7");
    let (status, body) = h
        .a(
            "PUT",
            &conf,
            Some(json!({"action": "play", "data": {"media_id": "missing"}})),
        )
        .await;
    assert_eq!(
        (status, body["data"]["cause"].clone()),
        (404, json!("missing"))
    );
}

#[tokio::test]
async fn bad_action_arguments_name_the_field_and_change_nothing() {
    let h = Harness::start().await;
    let id = create(&h, json!({"name": "standup"})).await;
    let conf = format!("/{id}");
    let bulk = format!("/{id}/participants");
    let one = format!("/{id}/participants/1");
    let cases = [
        (&conf, json!({}), 404, "faulty_request", None),
        (
            &conf,
            json!({"action": "explode"}),
            404,
            "faulty_request",
            None,
        ),
        (&conf, json!({"action": 7}), 404, "faulty_request", None),
        (
            &bulk,
            json!({"action": "lock"}),
            404,
            "faulty_request",
            None,
        ),
        (
            &conf,
            json!({"action": "play"}),
            400,
            "validation error",
            Some(("data", "required", "action 'play' requires a data object")),
        ),
        (
            &conf,
            json!({"action": "play", "data": {}}),
            400,
            "validation error",
            Some((
                "data.media_id",
                "required",
                "action 'play' requires a media ID or URL",
            )),
        ),
        (
            &conf,
            json!({"action": "play", "data": {"media_id": 5}}),
            400,
            "validation error",
            Some((
                "data.media_id",
                "required",
                "action 'play' requires a media ID or URL",
            )),
        ),
        (
            &conf,
            json!({"action": "record"}),
            400,
            "validation error",
            Some(("data", "required", "action 'record' requires a data object")),
        ),
        (
            &conf,
            json!({"action": "record", "data": {}}),
            400,
            "validation error",
            Some(("data.action", "required", "Field is required but missing")),
        ),
        (
            &conf,
            json!({"action": "record", "data": {"action": "pause"}}),
            400,
            "validation error",
            Some((
                "data.action",
                "enum",
                "Value not found in enumerated list of values",
            )),
        ),
        (
            &bulk,
            json!({"action": "relate", "data": {"other_participant": 2}}),
            400,
            "validation error",
            Some((
                "participant_id",
                "required",
                "Field is required but missing",
            )),
        ),
        (
            &bulk,
            json!({"action": "relate", "data": {"participant_id": 1, "other_participant": true}}),
            400,
            "validation error",
            Some((
                "other_participant",
                "type",
                "Value did not match type(s): integer",
            )),
        ),
        (
            &bulk,
            json!({"action": "relate", "data": {"participant_id": 1, "other_participant": 2, "relationship": "hug"}}),
            400,
            "validation error",
            Some((
                "relationship",
                "enum",
                "Value not found in enumerated list of values",
            )),
        ),
        (
            &one,
            json!({"action": "play"}),
            400,
            "validation error",
            Some(("data", "required", "action 'play' requires a data object")),
        ),
        (
            &one,
            json!({"action": "relate"}),
            404,
            "faulty_request",
            None,
        ),
    ];
    for (path, request, status, message, field) in cases {
        let (got, body) = h.a("PUT", path, Some(request.clone())).await;
        assert_eq!(got, status, "{request} -> {body}");
        assert_error(&body, status, message);
        if let Some((field, rule, text)) = field {
            assert_eq!(
                body["data"][field][rule]["message"], text,
                "{request} -> {body}"
            );
        } else {
            assert_eq!(body["data"], json!({"message": "faulty request"}));
        }
    }
    let (_, body) = h
        .a(
            "PUT",
            &conf,
            Some(json!({"action": "record", "data": {"action": "pause"}})),
        )
        .await;
    assert_eq!(
        body["data"]["data.action"]["enum"]["target"],
        json!(["start", "stop"])
    );
    assert_eq!(body["data"]["data.action"]["enum"]["value"], "pause");
    let (status, _) = h
        .a(
            "PUT",
            &format!("/{id}/participants/abc"),
            Some(json!({"action": "mute"})),
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        h.fake.state().seen.is_empty(),
        "no action reached the service"
    );
}

#[tokio::test]
async fn tokens_are_checked_and_bound_to_their_account() {
    let h = Harness::start().await;
    let id = create(&h, json!({"name": "mine"})).await;
    let before = h.fake.state().requests;
    let a_path = format!("/v2/accounts/{ACCOUNT_A}/conferences/{id}");
    for token in [None, Some("nope")] {
        let (status, body) = h.send("GET", &a_path, token, None).await;
        assert_eq!(status, 401);
        assert_error(&body, 401, "invalid_credentials");
        assert_eq!(body["data"], json!({"message": "invalid credentials"}));
    }
    let (status, body) = h.send("GET", &a_path, Some(TOKEN_B), None).await;
    assert_eq!(status, 403);
    assert_error(&body, 403, "forbidden");
    let put = Some(json!({"action": "lock"}).to_string());
    assert_eq!(h.send("PUT", &a_path, Some(TOKEN_B), put).await.0, 403);
    assert_eq!(
        h.fake.state().requests,
        before,
        "refused requests never reach the service"
    );

    let b_list = format!("/v2/accounts/{ACCOUNT_B}/conferences");
    let (status, body) = h.send("GET", &b_list, Some(TOKEN_B), None).await;
    assert_eq!(
        (status, body["data"].clone()),
        (200, json!([])),
        "B sees none of A's conferences"
    );
}

#[tokio::test]
async fn bad_bodies_get_clear_errors_and_change_nothing() {
    let h = Harness::start().await;
    let path = format!("/v2/accounts/{ACCOUNT_A}/conferences");
    let big = json!({"data": {"name": "x", "pad": "y".repeat(100 * 1024)}}).to_string();
    let cases = [
        ("{\"data\": {\"name\": ", 400, "invalid request body", "EOF"),
        ("[1, 2]", 400, "invalid request body", "envelope"),
        ("{\"data\": \"standup\"}", 400, "validation error", "type"),
        ("{}", 400, "validation error", "required"),
        (
            big.as_str(),
            413,
            "validation error",
            "must not be more than 65536 bytes",
        ),
    ];
    for (body, status, message, mentions) in cases {
        let (got, answer) = h
            .send("PUT", &path, Some(TOKEN_A), Some(body.to_owned()))
            .await;
        assert_eq!(got, status, "{answer}");
        assert_error(&answer, status, message);
        assert!(answer["data"].to_string().contains(mentions), "{answer}");
    }
    assert_eq!(h.fake.state().requests, 0, "the service was never called");
}

#[tokio::test]
async fn recordings_list_and_download() {
    let h = Harness::start().await;
    let id = create(&h, json!({"name": "standup"})).await;
    let dir = std::env::temp_dir().join(format!("chorus-api-rec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("rec.wav");
    let bytes: Vec<u8> = b"RIFF"
        .iter()
        .copied()
        .chain((0..5000u32).map(|i| i as u8))
        .collect();
    std::fs::write(&wav, &bytes).unwrap();
    let name = format!("{id}-1.wav");
    h.fake.state().recordings.insert(name.clone(), wav);

    let (status, list) = h.a("GET", &format!("/{id}/recordings"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        list["data"],
        json!([{"name": name, "bytes": bytes.len(), "created": GREGORIAN_OFFSET}])
    );
    let url = format!("/v2/accounts/{ACCOUNT_A}/conferences/{id}/recordings/{name}");
    let response = h.raw("GET", &url, Some(TOKEN_A), None).await;
    assert_eq!(response.headers()["content-type"], "audio/wav");
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());
    for bad in ["..%2F..%2Fetc%2Fpasswd", ".hidden", "nope.wav"] {
        let (status, body) = h.a("GET", &format!("/{id}/recordings/{bad}"), None).await;
        assert_eq!(status, 404, "{bad}: {body}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_empty_token_bucket_answers_429_without_calling_the_service() {
    let h = Harness::start_with(2).await;
    let (_, first) = h.a("GET", "", None).await;
    assert_eq!(first["tokens"], json!({"consumed": 1, "remaining": 1}));
    assert_eq!(h.a("GET", "", None).await.0, 200);
    let (status, body) = h.a("PUT", "", Some(json!({"data": {"name": "x"}}))).await;
    assert_eq!(status, 429);
    assert_error(&body, 429, "too_many_requests");
    assert_eq!(h.fake.state().requests, 2);
    let other = format!("/v2/accounts/{ACCOUNT_B}/conferences");
    assert_eq!(
        h.send("GET", &other, Some(TOKEN_B), None).await.0,
        200,
        "buckets are per token"
    );
}

#[tokio::test]
async fn unknown_paths_get_a_kazoo_not_found() {
    let h = Harness::start().await;
    let (status, body) = h.send("GET", "/v2/nothing/here", Some(TOKEN_A), None).await;
    assert_eq!(status, 404);
    assert_error(&body, 404, "not_found");
}

#[tokio::test]
async fn lists_page_by_page_size_and_start_key_or_all_without_pagination() {
    let h = Harness::start().await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        ids.push(create(&h, json!({ "name": name })).await);
    }
    ids.sort();
    let listed = |body: &Value| -> Vec<String> {
        let entries = body["data"].as_array().cloned().unwrap_or_default();
        entries
            .iter()
            .map(|e| e["id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let (status, first) = h.a("GET", "?page_size=2", None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(listed(&first), ids[..2]);
    assert_eq!(
        (
            &first["page_size"],
            &first["start_key"],
            &first["next_start_key"]
        ),
        (&json!(2), &json!(ids[0]), &json!(ids[2]))
    );
    let next = format!("?page_size=2&start_key={}", ids[2]);
    let (_, second) = h.a("GET", &next, None).await;
    assert_eq!(listed(&second), ids[2..4]);
    let last = format!("?page_size=2&start_key={}", ids[4]);
    let (_, third) = h.a("GET", &last, None).await;
    assert_eq!(listed(&third), ids[4..]);
    assert!(third.get("next_start_key").is_none(), "{third}");
    let (_, all) = h.a("GET", "?page_size=2&paginate=false", None).await;
    assert_eq!((listed(&all), &all["page_size"]), (ids.clone(), &json!(5)));
    assert!(all.get("next_start_key").is_none(), "{all}");
    let (status, bad) = h.a("GET", "?page_size=0", None).await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad["data"]["page_size"]["minimum"].is_object(), "{bad}");
}

#[tokio::test]
async fn dial_answers_each_endpoint_in_kazoo_shape() {
    let h = Harness::start().await;
    let body =
        json!({"action": "dial", "data": {"endpoints": ["sip:bob@127.0.0.1", "4155550000"]}});
    let (status, body) = h.a("PUT", "/standup", Some(body)).await;
    assert_eq!(status, 202, "{body}");
    assert_envelope(&body);
    assert_eq!(body["message"], "attempted dial");
    let responses = &body["data"]["endpoint_responses"];
    assert_eq!(responses[0]["status"], "success");
    assert_eq!(responses[0]["message"], "dialing endpoints");
    assert_eq!(responses[0]["endpoint_id"], "sip:bob@127.0.0.1");
    assert_eq!(responses[1]["call_id"], "call-1");
    // A bad argument never reaches the service.
    let before = h.fake.state().requests;
    let bad = json!({"action": "dial", "data": {"endpoints": "bob"}});
    let (status, body) = h.a("PUT", "/standup", Some(bad)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["data"]["data.endpoints"]["type"].is_object(), "{body}");
    assert_eq!(h.fake.state().requests, before);
}
