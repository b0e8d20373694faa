//! The fields every event carries on the WebSocket (Kazoo's `node`, `msg_id`, `app_name`,
//! `app_version`, the call's `custom_channel_vars` from its SIP `X-` headers), and the
//! `play-failed` event of media that cannot be fetched after the play was answered.

mod support;

use std::time::Duration;

use chorus::config::DEFAULT_ACCOUNT;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::{DialOpts, Phone};
use tokio_tungstenite::tungstenite::Message;

const SECOND: Duration = Duration::from_secs(1);
const TOKEN: &str = "test-token";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_event(ws: &mut Ws, name: &str) -> Value {
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["name"] == name {
                        return v;
                    }
                }
                Some(Ok(_)) => continue,
                other => panic!("websocket ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(10 * SECOND, wait)
        .await
        .unwrap_or_else(|_| panic!("no {name} event"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_the_node_ids_and_the_callers_x_headers_and_failed_plays_are_reported() {
    let mut config = support::server_config();
    config.sounds.urls.allow_networks = vec!["127.0.0.1".parse().unwrap()];
    let srv = chorus::server::start(config).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", srv.api))
        .await
        .unwrap();
    let sub = json!({"action": "subscribe", "auth_token": TOKEN, "request_id": "r1",
        "data": {"account_id": DEFAULT_ACCOUNT, "binding": "conference.event.6500.*"}});
    ws.send(Message::text(sub.to_string())).await.unwrap();

    // Twenty X- headers: the first sixteen are kept; Account-ID is never the caller's.
    let mut headers = vec![
        ("X-Customer-Id".to_string(), "42".to_string()),
        ("X-Account-ID".to_string(), "someone-else".to_string()),
        ("X-Long".to_string(), "v".repeat(1000)),
    ];
    headers.extend((0..20).map(|i| (format!("X-Extra-{i}"), i.to_string())));
    let opts = DialOpts {
        headers,
        ..DialOpts::default()
    };
    let _a = Phone::dial(srv.sip, "6500", opts).await.unwrap();
    let added = next_event(&mut ws, "add-member").await;
    let data = &added["data"];
    assert!(
        data["node"].as_str().unwrap().starts_with("chorus@"),
        "{data}"
    );
    assert_eq!(data["focus"], data["node"], "the hosting node: {data}");
    assert_eq!(data["app_name"], "chorus");
    assert_eq!(data["app_version"], env!("CARGO_PKG_VERSION"));
    let msg_id = data["msg_id"].as_str().unwrap().to_string();
    assert_eq!(msg_id.len(), 32, "{data}");
    let vars = data["custom_channel_vars"].as_object().unwrap();
    assert_eq!(vars["customer_id"], "42", "{vars:?}");
    assert_eq!(
        vars["account_id"], DEFAULT_ACCOUNT,
        "the server's, not the caller's"
    );
    assert_eq!(vars["long"].as_str().unwrap().len(), 256, "values are cut");
    assert_eq!(vars.len(), 16 + 1, "16 kept, plus the account: {vars:?}");

    // A URL that fails after the play was answered: an event says so.
    let app = axum::Router::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let media = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{media}/gone.wav");
    let play = json!({"action": "play", "data": {"media_id": url}});
    let r = reqwest::Client::new()
        .put(format!(
            "http://{}/v2/accounts/{DEFAULT_ACCOUNT}/conferences/6500",
            srv.api
        ))
        .header("X-Auth-Token", TOKEN)
        .body(play.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let failed = next_event(&mut ws, "play-failed").await;
    let data = &failed["data"];
    assert_eq!(data["media_id"], url.as_str(), "{data}");
    assert!(data["error"].as_str().unwrap().contains("404"), "{data}");
    assert_ne!(data["msg_id"], msg_id.as_str(), "each event its own id");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_unmute_deaf_and_undeaf_are_published_on_the_wire() {
    let srv = chorus::server::start(support::server_config())
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", srv.api))
        .await
        .unwrap();
    let sub = json!({"action": "subscribe", "auth_token": TOKEN, "request_id": "r1",
        "data": {"account_id": DEFAULT_ACCOUNT, "binding": "conference.event.6501.*"}});
    ws.send(Message::text(sub.to_string())).await.unwrap();
    let _a = Phone::dial(srv.sip, "6501", DialOpts::default())
        .await
        .unwrap();
    let added = next_event(&mut ws, "add-member").await;
    let pid = added["data"]["participant_id"].as_u64().unwrap();
    let url = format!(
        "http://{}/v2/accounts/{DEFAULT_ACCOUNT}/conferences/6501/participants/{pid}",
        srv.api
    );
    let client = reqwest::Client::new();
    for (action, event, speak, hear) in [
        ("mute", "mute-member", false, true),
        ("unmute", "unmute-member", true, true),
        ("deaf", "deaf-member", true, false),
        ("undeaf", "undeaf-member", true, true),
    ] {
        let r = client
            .put(&url)
            .header("X-Auth-Token", TOKEN)
            .body(json!({"action": action}).to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{action}: {}", r.status());
        let e = next_event(&mut ws, event).await;
        let data = &e["data"];
        assert_eq!(data["participant_id"].as_u64(), Some(pid), "{data}");
        assert_eq!(data["event"], event);
        let vars = &data["conference_channel_vars"];
        assert_eq!(
            (&vars["speak"], &vars["hear"]),
            (&json!(speak), &json!(hear)),
            "{action}: {vars}"
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_action_hook_gets_each_leaving_members_call_info() {
    type Got = std::sync::Arc<std::sync::Mutex<Vec<Value>>>;
    let got = Got::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/action",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let sink = sink.clone();
            async move { sink.lock().unwrap().push(v) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/action", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut config = support::server_config();
    config.api.webhooks.allow_networks = vec!["127.0.0.1".parse().unwrap()];
    let srv = chorus::server::start(config).await.unwrap();
    let doc = json!({"data": {"name": "acted", "play_welcome": false, "action_hook": hook,
        "member": {"numbers": ["6502"], "join_muted": false}}});
    let r = reqwest::Client::new()
        .put(format!(
            "http://{}/v2/accounts/{DEFAULT_ACCOUNT}/conferences",
            srv.api
        ))
        .header("X-Auth-Token", TOKEN)
        .body(doc.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let opts = DialOpts {
        user: "erin".into(),
        ..DialOpts::default()
    };
    let mut a = Phone::dial(srv.sip, "6502", opts).await.unwrap();
    tokio::time::sleep(2 * SECOND).await;
    assert!(
        got.lock().unwrap().is_empty(),
        "nothing while in the conference"
    );
    a.hangup().await.unwrap();
    for _ in 0..100 {
        if !got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let body = &got[0];
    assert_eq!(body["friendlyName"], "acted");
    assert_eq!(body["callStatus"], "completed");
    assert!(
        body["from"].as_str().unwrap().starts_with("erin@"),
        "{body}"
    );
    assert!(body["callSid"].is_string() && body["accountSid"] == DEFAULT_ACCOUNT);
    assert!(body["duration"].as_f64().unwrap() > 1.0, "{body}");
    srv.stop().await;
}
