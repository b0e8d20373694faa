//! SIPp registers as a device over loopback: a digest challenge, then 200 with its binding;
//! the binding is listed by the API and survives a restart; a wrong password and an unknown
//! device get 403 and no binding.

mod support;

use chorus::config::DEFAULT_ACCOUNT;
use serde_json::{Value, json};
use std::net::SocketAddr;

const TOKEN: &str = "test-token";

async fn api(base: SocketAddr, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let url = format!("http://{base}/v2/accounts/{DEFAULT_ACCOUNT}{path}");
    let mut req = reqwest::Client::new()
        .request(method, url)
        .header("X-Auth-Token", TOKEN);
    if let Some(b) = body {
        req = req.body(json!({"data": b}).to_string());
    }
    let r = req.send().await.unwrap();
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

/// Runs one SIPp REGISTER scenario as `user` with `password`; true when it passed.
async fn sipp(server: SocketAddr, scenario: &'static str, user: &str, password: &str) -> bool {
    let (user, password) = (user.to_owned(), password.to_owned());
    tokio::task::spawn_blocking(move || {
        let args = ["-s", &user, "-au", &user, "-ap", &password];
        support::sipp::run(server, scenario, &args)
    })
    .await
    .unwrap()
}

async fn registrations(api_addr: SocketAddr) -> Vec<Value> {
    let listed = api(api_addr, reqwest::Method::GET, "/registrations", None).await;
    listed["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_registers_with_digest_and_keeps_its_binding_over_a_restart() {
    let config = support::server_config();
    let srv = chorus::server::start(config.clone()).await.unwrap();
    let device = json!({"name": "desk", "sip": {"username": "alice", "password": "wonderland"}});
    let created = api(srv.api, reqwest::Method::PUT, "/devices", Some(device)).await;
    let device_id = created["data"]["id"].as_str().unwrap().to_owned();

    assert!(sipp(srv.sip, "uac_register_refused.xml", "alice", "wrong").await);
    assert!(sipp(srv.sip, "uac_register_refused.xml", "ghost", "wonderland").await);
    assert!(
        registrations(srv.api).await.is_empty(),
        "refused: no binding"
    );

    assert!(sipp(srv.sip, "uac_register.xml", "alice", "wonderland").await);
    let bound = registrations(srv.api).await;
    assert_eq!(bound.len(), 1, "{bound:?}");
    assert_eq!(bound[0]["authorizing_id"], device_id.as_str());
    assert!(
        bound[0]["contact"]
            .as_str()
            .unwrap()
            .starts_with("sip:alice@127.0.0.1:")
    );
    let left = bound[0]["expires"].as_u64().unwrap();
    assert!((290..=300).contains(&left), "{left}");
    srv.stop().await;

    let srv = chorus::server::start(config).await.unwrap();
    let kept = registrations(srv.api).await;
    assert_eq!(kept.len(), 1, "the binding survives the restart: {kept:?}");
    assert_eq!(kept[0]["contact"], bound[0]["contact"]);
    srv.stop().await;
}
