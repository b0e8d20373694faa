//! Status webhooks delivered to local receivers.

use super::*;
use crate::api::config::WebhooksConfig;
use crate::api::webhooks::{Policy, StatusEvent, StatusHook, Webhooks};
use axum::http::StatusCode;
use axum::routing::post;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::mpsc;

/// A hook endpoint on 127.0.0.1 answering `status` and passing on each body it gets.
async fn receiver(status: StatusCode) -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(body): axum::Json<Value>| {
            let _ = tx.send(body);
            async move { status }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// The policy the receivers need: hooks may reach 127.0.0.1.
fn loopback() -> Policy {
    Policy::new(&WebhooksConfig {
        allow_networks: vec!["127.0.0.1".parse().unwrap()],
        ..WebhooksConfig::default()
    })
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(BOUND, rx.recv())
        .await
        .expect("a hook in time")
        .unwrap()
}

fn hook(url: &str, events: &[StatusEvent], owner: Option<&str>) -> StatusHook {
    StatusHook {
        url: url.into(),
        events: events.to_vec(),
        owner_call_id: owner.map(str::to_owned),
        action_url: None,
    }
}

const ALL: [StatusEvent; 7] = [
    StatusEvent::Start,
    StatusEvent::End,
    StatusEvent::Join,
    StatusEvent::Leave,
    StatusEvent::StartTalking,
    StatusEvent::EndTalking,
    StatusEvent::StopTalking,
];

#[tokio::test]
async fn status_events_arrive_in_order_with_the_documented_fields() {
    let (events, _) = broadcast::channel(64);
    let metrics = Arc::new(Metrics::default());
    let hooks = Webhooks::spawn(events.subscribe(), metrics, loopback());
    let (url, mut rx) = receiver(StatusCode::OK).await;
    hooks.set(ACCOUNT_A, "conf1", Some(hook(&url, &ALL, Some("call-1"))));

    let (one, two) = (
        participant(1, "call-1", false, SystemTime::now()),
        participant(2, "call-2", false, SystemTime::now()),
    );
    let sequence = [
        event(EventName::AddMember, "conf1", 1, Some(one.clone())),
        event(EventName::AddMember, "conf2", 1, Some(one.clone())),
        event(EventName::AddMember, "conf1", 2, Some(two.clone())),
        event(EventName::StartTalking, "conf1", 2, Some(two.clone())),
        event(EventName::StartTalking, "conf1", 2, Some(one.clone())),
        event(EventName::StopTalking, "conf1", 2, Some(one.clone())),
        event(EventName::MuteMember, "conf1", 2, Some(one.clone())),
        event(EventName::DelMember, "conf1", 1, Some(two)),
        event(EventName::DelMember, "conf1", 0, Some(one.clone())),
        event(EventName::ConferenceDestroy, "conf1", 0, None),
        event(EventName::AddMember, "conf1", 1, Some(one)),
    ];
    for e in sequence {
        events.send(e).unwrap();
    }
    let want = [
        "start",
        "join",
        "join",
        "start-talking",
        "end-talking",
        "stop-talking",
        "leave",
        "leave",
        "end",
    ];
    let mut got = Vec::new();
    for _ in want {
        got.push(next(&mut rx).await);
    }
    let names: Vec<&str> = got.iter().map(|b| b["event"].as_str().unwrap()).collect();
    assert_eq!(names, want);
    let first = &got[0];
    for (key, value) in [
        ("conferenceSid", json!(format!("conf:{ACCOUNT_A}:standup"))),
        ("friendlyName", json!("standup")),
        ("members", json!(1)),
        ("callSid", json!("call-1")),
        ("callId", json!("call-1")),
        ("accountSid", json!(ACCOUNT_A)),
        ("direction", json!("inbound")),
        ("from", json!("1001@example.test")),
        ("to", json!("5000@example.test")),
        ("callerId", json!("Caller 1")),
        ("sipStatus", json!(200)),
        ("callStatus", json!("in-progress")),
    ] {
        assert_eq!(first[key], value, "{key} in {first}");
    }
    let duration = first["duration"].as_f64().unwrap();
    assert!(
        (1.4..1.6).contains(&duration),
        "fractional seconds since start: {duration}"
    );
    humantime::parse_rfc3339(first["time"].as_str().unwrap()).unwrap();
    assert_eq!(
        (&got[8]["members"], got[8].get("callSid")),
        (&json!(0), None)
    );
    let late = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
    assert!(
        late.is_err(),
        "the hook ended with its conference: {late:?}"
    );
}

#[test]
fn status_events_read_the_seeds_end_talking_and_the_stop_talking_alias() {
    let names = ["end-talking", "stop-talking", "talking-ended"];
    let parsed: Vec<_> = names.iter().map(|n| StatusEvent::parse(n)).collect();
    assert_eq!(
        parsed,
        [
            Some(StatusEvent::EndTalking),
            Some(StatusEvent::StopTalking),
            None
        ]
    );
    for event in ALL {
        assert_eq!(StatusEvent::parse(event.as_str()), Some(event));
    }
}

#[tokio::test]
async fn a_failing_hook_retries_boundedly_without_delaying_another() {
    let (events, _) = broadcast::channel(64);
    let metrics = Arc::new(Metrics::default());
    let policy = Policy {
        retries: 2,
        backoff: Duration::from_secs(1),
        ..loopback()
    };
    let hooks = Webhooks::spawn(events.subscribe(), metrics.clone(), policy);
    let (bad_url, mut bad) = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    let (good_url, mut good) = receiver(StatusCode::OK).await;
    hooks.set(
        ACCOUNT_A,
        "bad",
        Some(hook(&bad_url, &[StatusEvent::Join], None)),
    );
    hooks.set(
        ACCOUNT_A,
        "good",
        Some(hook(&good_url, &[StatusEvent::Join], None)),
    );

    let who = participant(1, "call-1", false, SystemTime::now());
    events
        .send(event(EventName::AddMember, "bad", 1, Some(who.clone())))
        .unwrap();
    next(&mut bad).await;
    events
        .send(event(EventName::AddMember, "good", 1, Some(who)))
        .unwrap();
    assert_eq!(next(&mut good).await["event"], "join");
    assert_eq!(
        metrics.webhook_failures.load(Relaxed),
        0,
        "delivered while the bad hook still retries"
    );

    for _ in 0..2 {
        assert_eq!(
            next(&mut bad).await["event"],
            "join",
            "the same payload is retried"
        );
    }
    assert_eq!(counted(&metrics.webhook_failures, 1).await, 1);
    assert!(bad.try_recv().is_err(), "no attempt after the last retry");
}

#[tokio::test]
async fn a_full_hook_queue_drops_and_counts() {
    let (events, _) = broadcast::channel(64);
    let metrics = Arc::new(Metrics::default());
    let policy = Policy {
        retries: 1,
        backoff: Duration::from_secs(2),
        queue: 2,
        ..loopback()
    };
    let hooks = Webhooks::spawn(events.subscribe(), metrics.clone(), policy);
    let (url, mut rx) = receiver(StatusCode::SERVICE_UNAVAILABLE).await;
    hooks.set(
        ACCOUNT_A,
        "conf1",
        Some(hook(&url, &[StatusEvent::Join], None)),
    );
    let who = participant(1, "call-1", false, SystemTime::now());
    events
        .send(event(EventName::AddMember, "conf1", 2, Some(who.clone())))
        .unwrap();
    next(&mut rx).await;
    // One in flight, two queued, the rest dropped.
    for members in 3..8 {
        events
            .send(event(
                EventName::AddMember,
                "conf1",
                members,
                Some(who.clone()),
            ))
            .unwrap();
    }
    assert_eq!(counted(&metrics.webhook_dropped, 3).await, 3);
}

#[tokio::test]
async fn hooks_at_internal_addresses_are_never_posted_to() {
    let (events, _) = broadcast::channel(64);
    let metrics = Arc::new(Metrics::default());
    let shipped = Policy::new(&WebhooksConfig::default());
    let hooks = Webhooks::spawn(events.subscribe(), metrics.clone(), shipped);
    let (url, mut rx) = receiver(StatusCode::OK).await;
    // Literal loopback (refused as the hook is set) and a name resolving to it (refused at
    // connect time).
    let by_name = url.replace("127.0.0.1", "localhost");
    hooks.set(
        ACCOUNT_A,
        "lit",
        Some(hook(&url, &[StatusEvent::Join], None)),
    );
    hooks.set(
        ACCOUNT_A,
        "name",
        Some(hook(&by_name, &[StatusEvent::Join], None)),
    );
    let who = participant(1, "call-1", false, SystemTime::now());
    for conf in ["lit", "name"] {
        events
            .send(event(EventName::AddMember, conf, 1, Some(who.clone())))
            .unwrap();
    }
    let got = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
    assert!(got.is_err(), "an internal hook was posted to: {got:?}");
}
