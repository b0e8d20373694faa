//! The document API over loopback against a running server: create, read, update and delete
//! of devices, users, groups, resources and callflows, validation errors naming the field,
//! tenant isolation, and the system's resources behind a system token.

mod support;

use chorus::config::DEFAULT_ACCOUNT;
use chorus::server::Running;
use serde_json::{Value, json};

const TOKEN: &str = "test-token";
const OTHER_TOKEN: &str = "other-token";
const OTHER_ACCOUNT: &str = "0000000000000000000000000000000b";
const SYSTEM_TOKEN: &str = "system-token";

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn start() -> (Running, Api) {
        let mut config = support::server_config();
        config.api.tokens.push(chorus::api::config::TokenEntry {
            token: OTHER_TOKEN.into(),
            account_id: OTHER_ACCOUNT.into(),
        });
        config.api.system_tokens = vec![SYSTEM_TOKEN.into()];
        let srv = chorus::server::start(config).await.unwrap();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        let api = Api {
            base: format!("http://{}", srv.api),
            client,
        };
        (srv, api)
    }

    /// `path` under `/v2`; `token` `None` sends none.
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}/v2{path}", self.base));
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(json!({"data": b}).to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null);
        (status, body)
    }

    /// On the default account with its token.
    async fn acct(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let path = format!("/accounts/{DEFAULT_ACCOUNT}{path}");
        self.call(method, &path, Some(TOKEN), body).await
    }
}

/// Whether `got` has every field of `sent` (objects may gain defaults).
fn holds(got: &Value, sent: &Value) -> bool {
    match (got, sent) {
        (Value::Object(g), Value::Object(s)) => s
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|gv| holds(gv, v))),
        _ => got == sent,
    }
}

/// A valid document of each kind, and a field to change.
fn samples() -> Vec<(&'static str, Value, (&'static str, Value))> {
    vec![
        (
            "devices",
            json!({"name": "desk", "sip": {"username": "alice", "password": "s3cret!"},
                "call_forward": {"enabled": false, "number": "+14155550000"}}),
            ("name", json!("desk 2")),
        ),
        (
            "users",
            json!({"first_name": "Alice", "last_name": "Liddell",
                "caller_id": {"internal": {"name": "Alice", "number": "2001"}}}),
            ("last_name", json!("Pleasance")),
        ),
        (
            "groups",
            json!({"name": "sales", "endpoints": {"0123456789abcdef0123456789abcdef": {"type": "user"}}}),
            ("name", json!("support")),
        ),
        (
            "resources",
            json!({"name": "trunk", "rules": ["^\\+1\\d{10}$"], "gateways": [
                {"server": "127.0.0.1", "port": 5080, "transport": "udp", "prefix": "9"}]}),
            ("weight_cost", json!(10)),
        ),
        (
            "callflows",
            json!({"numbers": ["2000"], "patterns": ["^9(\\d+)$"],
                "flow": {"module": "user", "data": {"id": "0123456789abcdef0123456789abcdef"},
                    "children": {"_": {"module": "resources", "data": {}}}}}),
            ("numbers", json!(["2000", "2001"])),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_is_created_read_updated_and_deleted() {
    let (srv, api) = Api::start().await;
    for (kind, doc, (field, value)) in samples() {
        let (status, created) = api
            .acct("PUT", &format!("/{kind}"), Some(doc.clone()))
            .await;
        assert_eq!(status, 201, "{kind}: {created}");
        assert_eq!(created["status"], "success");
        let id = created["data"]["id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 32, "{kind}");
        let one = format!("/{kind}/{id}");
        let (status, got) = api.acct("GET", &one, None).await;
        assert_eq!(status, 200, "{kind}: {got}");
        assert!(
            holds(&got["data"], &doc),
            "{kind} keeps what was sent: {got}"
        );
        let (_, listed) = api.acct("GET", &format!("/{kind}"), None).await;
        assert_eq!(listed["page_size"], 1, "{kind}: {listed}");
        assert_eq!(listed["data"][0]["id"], id.as_str());

        let mut replaced = doc.clone();
        replaced[field] = value.clone();
        let (status, after) = api.acct("POST", &one, Some(replaced)).await;
        assert_eq!(
            (status, &after["data"][field]),
            (200, &value),
            "{kind}: {after}"
        );
        let (status, after) = api
            .acct("PATCH", &one, Some(json!({"x_note": "patched"})))
            .await;
        assert_eq!(status, 200, "{kind}: {after}");
        assert_eq!(
            (&after["data"][field], &after["data"]["x_note"]),
            (&value, &json!("patched"))
        );

        let (status, gone) = api.acct("DELETE", &one, None).await;
        assert_eq!((status, &gone["data"]["id"]), (200, &json!(id)), "{kind}");
        let (status, missing) = api.acct("GET", &one, None).await;
        assert_eq!(status, 404, "{kind}: {missing}");
        assert_eq!(missing["message"], "bad_identifier");
        let (_, listed) = api.acct("GET", &format!("/{kind}"), None).await;
        assert_eq!(listed["data"], json!([]), "{kind}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_documents_get_kazoo_errors_naming_the_field() {
    let (srv, api) = Api::start().await;
    let cases = [
        (
            "devices",
            json!({"sip": {"username": "bob", "password": "abc"}}),
            ["name", "sip.password"],
        ),
        (
            "users",
            json!({"first_name": "A", "last_name": 7}),
            ["last_name", "last_name"],
        ),
        (
            "resources",
            json!({"name": "r", "gateways": [{"server": "h", "transport": "sctp"}]}),
            ["gateways.0.transport", "gateways.0.transport"],
        ),
        (
            "callflows",
            json!({"patterns": ["("], "flow": {"module": "nope"}}),
            ["patterns.0", "flow.module"],
        ),
    ];
    for (kind, body, fields) in cases {
        let (status, e) = api.acct("PUT", &format!("/{kind}"), Some(body)).await;
        assert_eq!(status, 400, "{kind}: {e}");
        assert_eq!(
            (&e["status"], &e["message"]),
            (&json!("error"), &json!("validation error"))
        );
        for f in fields {
            assert!(e["data"][f].is_object(), "{kind} names {f}: {e}");
        }
    }
    // A callflow number another callflow holds is refused, naming the number.
    let flow = |n: &str| json!({"numbers": [n], "flow": {"module": "device", "data": {}}});
    let (status, _) = api.acct("PUT", "/callflows", Some(flow("3000"))).await;
    assert_eq!(status, 201);
    let (status, e) = api.acct("PUT", "/callflows", Some(flow("3000"))).await;
    assert_eq!(status, 400);
    assert_eq!(
        e["data"]["numbers"]["unique"]["cause"],
        json!(["3000"]),
        "{e}"
    );
    // So are SIP credentials in use, in any account.
    let device = json!({"name": "d", "sip": {"username": "carol", "password": "secret"}});
    let (status, _) = api.acct("PUT", "/devices", Some(device.clone())).await;
    assert_eq!(status, 201);
    let path = format!("/accounts/{OTHER_ACCOUNT}/devices");
    let (status, e) = api
        .call("PUT", &path, Some(OTHER_TOKEN), Some(device))
        .await;
    assert_eq!(status, 400);
    assert!(e["data"]["sip.username"]["unique"].is_object(), "{e}");
    // A body that is not a document.
    let (status, e) = api.acct("PUT", "/users", None).await;
    assert_eq!(
        (status, e["data"]["data"]["required"].is_object()),
        (400, true),
        "{e}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_see_only_their_own_documents() {
    let (srv, api) = Api::start().await;
    let user = json!({"first_name": "A", "last_name": "B"});
    let (_, created) = api.acct("PUT", "/users", Some(user.clone())).await;
    let id = created["data"]["id"].as_str().unwrap();
    let mine = format!("/accounts/{DEFAULT_ACCOUNT}/users/{id}");
    for method in ["GET", "POST", "PATCH", "DELETE"] {
        let body = (method == "POST" || method == "PATCH").then(|| user.clone());
        let (status, e) = api
            .call(method, &mine, Some(OTHER_TOKEN), body.clone())
            .await;
        assert_eq!(
            (status, &e["message"]),
            (403, &json!("forbidden")),
            "{method}"
        );
        let (status, _) = api.call(method, &mine, None, body.clone()).await;
        assert_eq!(status, 401, "{method} without a token");
        // The same id under the other account's own path is simply not there.
        let theirs = format!("/accounts/{OTHER_ACCOUNT}/users/{id}");
        let (status, _) = api.call(method, &theirs, Some(OTHER_TOKEN), body).await;
        assert_eq!(status, 404, "{method} {theirs}");
    }
    let (_, listed) = api
        .call(
            "GET",
            &format!("/accounts/{OTHER_ACCOUNT}/users"),
            Some(OTHER_TOKEN),
            None,
        )
        .await;
    assert_eq!(listed["data"], json!([]));
    // A system token is not an account's.
    let (status, _) = api.call("GET", &mine, Some(SYSTEM_TOKEN), None).await;
    assert_eq!(status, 403);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_devices_are_those_it_owns() {
    let (srv, api) = Api::start().await;
    let (_, user) = api
        .acct(
            "PUT",
            "/users",
            Some(json!({"first_name": "A", "last_name": "B"})),
        )
        .await;
    let uid = user["data"]["id"].as_str().unwrap();
    for (name, owner) in [("mine", Some(uid)), ("loose", None)] {
        let mut device = json!({"name": name});
        if let Some(o) = owner {
            device["owner_id"] = json!(o);
        }
        let (status, _) = api.acct("PUT", "/devices", Some(device)).await;
        assert_eq!(status, 201);
    }
    let (status, devices) = api
        .acct("GET", &format!("/users/{uid}/devices"), None)
        .await;
    assert_eq!(status, 200, "{devices}");
    let names: Vec<&Value> = devices["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["name"])
        .collect();
    assert_eq!(names, [&json!("mine")]);
    let (status, _) = api
        .acct(
            "GET",
            "/users/0123456789abcdef0123456789abcdef/devices",
            None,
        )
        .await;
    assert_eq!(status, 404);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_resources_need_a_system_token() {
    let (srv, api) = Api::start().await;
    let carrier = json!({"name": "global", "gateways": [{"server": "127.0.0.1", "port": 5090}]});
    let (status, _) = api
        .call("PUT", "/resources", None, Some(carrier.clone()))
        .await;
    assert_eq!(status, 401);
    let (status, e) = api
        .call("PUT", "/resources", Some(TOKEN), Some(carrier.clone()))
        .await;
    assert_eq!((status, &e["message"]), (403, &json!("forbidden")));
    let (status, created) = api
        .call("PUT", "/resources", Some(SYSTEM_TOKEN), Some(carrier))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_str().unwrap();
    let (status, got) = api
        .call(
            "PATCH",
            &format!("/resources/{id}"),
            Some(SYSTEM_TOKEN),
            Some(json!({"weight_cost": 5})),
        )
        .await;
    assert_eq!((status, &got["data"]["weight_cost"]), (200, &json!(5)));
    let (_, listed) = api
        .call("GET", "/resources", Some(SYSTEM_TOKEN), None)
        .await;
    assert_eq!(listed["data"][0]["id"], id);
    // Global resources are not the account's local ones.
    let (_, local) = api.acct("GET", "/resources", None).await;
    assert_eq!(local["data"], json!([]));
    let (status, _) = api.acct("GET", &format!("/resources/{id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = api
        .call(
            "DELETE",
            &format!("/resources/{id}"),
            Some(SYSTEM_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200);
    srv.stop().await;
}
