//! `/ws` subscriptions against the live server.

use super::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(h: &Harness) -> Socket {
    let url = format!("{}/ws", h.base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(ws: &mut Socket, request: Value) {
    ws.send(Message::text(request.to_string())).await.unwrap();
}

async fn next(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(BOUND, ws.next())
            .await
            .expect("a message in time");
        if let Message::Text(text) = msg.unwrap().unwrap() {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

fn subscribe(action: &str, token: &str, binding: &str) -> Value {
    json!({
        "action": action, "auth_token": token, "request_id": "r1",
        "data": {"account_id": ACCOUNT_A, "binding": binding},
    })
}

#[tokio::test]
async fn subscribed_client_gets_add_member_with_documented_fields() {
    let h = Harness::start().await;
    let mut ws = connect(&h).await;
    let binding = "conference.event.conf1.*";
    send(&mut ws, subscribe("subscribe", TOKEN_A, binding)).await;
    let reply = next(&mut ws).await;
    let want = json!({"action": "reply", "request_id": "r1", "status": "success", "data": {"subscribed": [binding]}});
    assert_eq!(reply, want);

    let who = participant(3, "call-3", true, SystemTime::now());
    h.events
        .send(event(EventName::AddMember, "conf2", 1, Some(who.clone())))
        .unwrap();
    h.events
        .send(event(EventName::AddMember, "conf1", 1, Some(who)))
        .unwrap();
    let pushed = next(&mut ws).await;
    assert_eq!(pushed["action"], "event");
    assert_eq!(pushed["subscribed_key"], binding);
    assert_eq!(pushed["subscription_key"], "conference.event.conf1.call-3");
    assert_eq!(pushed["name"], "add-member");
    assert_eq!(
        pushed["routing_key"],
        format!("conference.event.add-member.{ACCOUNT_A}.conf1.call-3")
    );
    let data = &pushed["data"];
    for (key, want) in [
        ("event", json!("add-member")),
        ("event_category", json!("conference")),
        ("event_name", json!("participant_event")),
        ("conference_id", json!("conf1")),
        ("instance_id", json!("uuid-1")),
        ("conference_node", json!("chorus@test")),
        ("profile", json!("default")),
        ("call_id", json!("call-3")),
        ("participant_id", json!(3)),
        ("account_id", json!(ACCOUNT_A)),
        ("caller_id_name", json!("Caller 3")),
        ("caller_id_number", json!("1003")),
        ("channel_presence_id", json!("1003@example.test")),
        ("custom_channel_vars", json!({"account_id": ACCOUNT_A})),
        ("custom_application_vars", json!({"team": "blue"})),
    ] {
        assert_eq!(data[key], want, "{key} in {data}");
    }
    let vars = data["conference_channel_vars"].as_object().unwrap();
    assert_eq!(vars.len(), 12, "{data}");
    for (key, value) in vars {
        assert_eq!(&data[key], value, "flat {key}");
    }
    assert_eq!(
        (&vars["is_moderator"], &vars["member_id"]),
        (&json!(true), &json!(3))
    );

    send(&mut ws, subscribe("unsubscribe", TOKEN_A, binding)).await;
    let reply = next(&mut ws).await;
    assert_eq!(
        reply["data"],
        json!({"unsubscribed": [binding], "subscribed": []})
    );
    send(
        &mut ws,
        subscribe("subscribe", TOKEN_A, "conference.event.*.*"),
    )
    .await;
    next(&mut ws).await;
    h.events
        .send(event(EventName::Lock, "conf1", 1, None))
        .unwrap();
    let pushed = next(&mut ws).await;
    assert_eq!(
        (&pushed["name"], &pushed["subscribed_key"]),
        (&json!("lock"), &json!("conference.event.*.*"))
    );
    assert_eq!(
        pushed["data"]["call_id"], "conf1",
        "conference events carry the conference id as call id"
    );
}

#[tokio::test]
async fn other_nodes_events_follow_the_same_account_and_binding_rules() {
    let h = Harness::start().await;
    let mut ws = connect(&h).await;
    let binding = "conference.event.conf1.*";
    send(&mut ws, subscribe("subscribe", TOKEN_A, binding)).await;
    next(&mut ws).await;

    let who = participant(5, "call-5", false, SystemTime::now());
    let joined = event(EventName::AddMember, "conf1", 2, Some(who));
    let mut elsewhere = joined.clone();
    elsewhere.account_id = ACCOUNT_B.into();
    let other_room = event(EventName::Lock, "conf2", 1, None);
    for e in [&elsewhere, &other_room, &joined] {
        h.remote.send(e.rendered("node2")).unwrap();
    }
    let pushed = next(&mut ws).await;
    assert_eq!(
        (&pushed["name"], &pushed["subscribed_key"]),
        (&json!("add-member"), &json!(binding))
    );
    assert_eq!(
        pushed["routing_key"],
        format!("conference.event.add-member.{ACCOUNT_A}.conf1.call-5")
    );
    let data = &pushed["data"];
    for (key, want) in [
        ("focus", json!("node2")),
        ("conference_node", json!("node2")),
        ("account_id", json!(ACCOUNT_A)),
        ("participant_id", json!(5)),
        ("caller_id_number", json!("1005")),
        ("event_name", json!("participant_event")),
    ] {
        assert_eq!(data[key], want, "{key} in {data}");
    }
    // Local events still come, named after this node.
    h.events
        .send(event(EventName::Lock, "conf1", 2, None))
        .unwrap();
    let pushed = next(&mut ws).await;
    assert_eq!(
        (&pushed["name"], &pushed["data"]["focus"]),
        (&json!("lock"), &json!("chorus@test"))
    );
}

#[tokio::test]
async fn unsubscribed_binding_stops_events() {
    let h = Harness::start().await;
    let mut ws = connect(&h).await;
    send(
        &mut ws,
        subscribe("subscribe", TOKEN_A, "conference.event.conf1.*"),
    )
    .await;
    send(
        &mut ws,
        subscribe("subscribe", TOKEN_A, "conference.event.conf2.*"),
    )
    .await;
    send(
        &mut ws,
        subscribe("unsubscribe", TOKEN_A, "conference.event.conf1.*"),
    )
    .await;
    for _ in 0..3 {
        next(&mut ws).await;
    }
    h.events
        .send(event(EventName::Lock, "conf1", 1, None))
        .unwrap();
    h.events
        .send(event(EventName::Unlock, "conf2", 1, None))
        .unwrap();
    let pushed = next(&mut ws).await;
    assert_eq!(
        pushed["data"]["conference_id"], "conf2",
        "conf1's event was not delivered"
    );
}

#[tokio::test]
async fn bad_subscriptions_are_refused() {
    let h = Harness::start().await;
    let mut ws = connect(&h).await;
    let cases = [
        (
            subscribe("subscribe", "nope", "conference.event.conf1.*"),
            "invalid credentials",
        ),
        (
            subscribe("subscribe", TOKEN_B, "conference.event.conf1.*"),
            "forbidden",
        ),
        (
            subscribe("subscribe", TOKEN_A, "conference.command.conf1"),
            "unsupported binding",
        ),
        (
            subscribe("dance", TOKEN_A, "conference.event.conf1.*"),
            "unknown action",
        ),
    ];
    for (request, says) in cases {
        send(&mut ws, request).await;
        let reply = next(&mut ws).await;
        assert_eq!(reply["status"], "error", "{reply}");
        assert!(
            reply["data"]["message"].as_str().unwrap().contains(says),
            "{reply}"
        );
    }
    ws.send(Message::text("not json")).await.unwrap();
    let reply = next(&mut ws).await;
    assert_eq!(
        reply["data"]["message"], "expected a JSON object",
        "{reply}"
    );
    h.events
        .send(event(EventName::Lock, "conf1", 1, None))
        .unwrap();
    send(
        &mut ws,
        subscribe("subscribe", TOKEN_A, "conference.event.conf1.*"),
    )
    .await;
    assert_eq!(
        next(&mut ws).await["status"],
        "success",
        "the refused event was never queued"
    );
}

#[tokio::test]
async fn a_stuck_client_does_not_hold_up_publishers_or_other_clients() {
    let h = Harness::start().await;
    let mut stuck = connect(&h).await;
    send(
        &mut stuck,
        subscribe("subscribe", TOKEN_A, "conference.event.*.*"),
    )
    .await;
    let mut live = connect(&h).await;
    send(
        &mut live,
        subscribe("subscribe", TOKEN_A, "conference.event.marker.*"),
    )
    .await;
    next(&mut live).await;

    let mut heavy = participant(1, "call-1", false, SystemTime::now());
    heavy.custom_application_vars = json!({"pad": "x".repeat(8 * 1024)});
    // ~40 MB for a client that never reads: far past any socket buffer.
    for _ in 0..5_000 {
        h.events
            .send(event(
                EventName::StartTalking,
                "busy",
                2,
                Some(heavy.clone()),
            ))
            .unwrap();
        tokio::task::yield_now().await;
    }
    h.events
        .send(event(EventName::Lock, "marker", 2, None))
        .unwrap();
    let pushed = next(&mut live).await;
    assert_eq!(pushed["data"]["conference_id"], "marker");

    // The stuck client is cut off after its send timeout and its backlog counted as dropped.
    assert!(counted(&h.metrics.ws_dropped, 1).await > 0);
    let drained = tokio::time::timeout(BOUND, async {
        while let Some(Ok(msg)) = stuck.next().await {
            if msg.is_close() {
                break;
            }
        }
    });
    drained
        .await
        .expect("the server closed the stuck connection");
}
