//! The API as an attacker uses it, over 127.0.0.1 (issue 11): another account's token, media
//! paths and URLs that reach what they should not, memory-hungry URLs, and connections that
//! never finish. Each test asserts the safe outcome and that legitimate use still works.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus::config::{Config, DEFAULT_ACCOUNT};
use chorus::server::Running;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::{DialOpts, Phone};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const SECOND: Duration = Duration::from_secs(1);
const TOKEN_A: &str = "test-token";
const TOKEN_B: &str = "token-b";
const ACCOUNT_B: &str = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";

/// The test config with a second account, B, whose token is `TOKEN_B`.
fn config() -> Config {
    let mut config = support::server_config();
    config.api.tokens.push(chorus::api::config::TokenEntry {
        token: TOKEN_B.into(),
        account_id: ACCOUNT_B.into(),
    });
    config
}

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(srv: &Running) -> Api {
        let client = reqwest::Client::builder()
            .timeout(10 * SECOND)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let base = format!("http://{}/v2/accounts", srv.api);
        Api { base, client }
    }

    /// `method` on `/v2/accounts/{account}/conferences{path}` with `token`.
    async fn call(
        &self,
        token: &str,
        account: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}/{account}/conferences{path}", self.base);
        let mut req = self
            .client
            .request(method, url)
            .header("X-Auth-Token", token);
        if let Some(b) = body {
            req = req
                .body(b.to_string())
                .header("Content-Type", "application/json");
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A request of account A on its own conferences.
    async fn as_a(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(TOKEN_A, DEFAULT_ACCOUNT, method, path, body)
            .await
    }

    /// A request of account B on its own conferences.
    async fn as_b(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(TOKEN_B, ACCOUNT_B, method, path, body).await
    }

    /// Account A plays `media` to the whole of conference `id`.
    async fn play(&self, id: &str, media: &str) -> (u16, Value) {
        let body = json!({"action": "play", "data": {"media_id": media}});
        let put = reqwest::Method::PUT;
        self.as_a(put, &format!("/{id}"), Some(body)).await
    }
}

/// Polls `check` every 100 ms until it holds or `within` passes.
async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if check().await {
            return true;
        }
        tokio::time::sleep(SECOND / 10).await;
    }
    false
}

/// Kazoo routes a dial-in to the account whose realm its Request-URI names: B's caller
/// reaches B's conference and only B sees it; any other host stays with the default account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_in_reaches_the_account_whose_realm_it_names() {
    let mut config = config();
    config
        .conferences
        .realms
        .insert("B.example".into(), ACCOUNT_B.into());
    let srv = chorus::server::start(config).await.unwrap();
    let api = Api::new(&srv);
    let (get, put) = (reqwest::Method::GET, reqwest::Method::PUT);
    let doc = json!({"data": {"name": "board", "play_welcome": false,
        "member": {"numbers": ["7200"], "join_muted": false}}});
    let (status, made) = api.as_b(put, "", Some(doc)).await;
    assert_eq!(status, 201, "{made}");
    let id = made["data"]["id"].as_str().unwrap().to_string();
    let to_b = DialOpts {
        domain: Some("b.example".into()),
        ..DialOpts::default()
    };
    let b = Phone::dial(srv.sip, "7200", to_b).await.unwrap();
    let a = Phone::dial(srv.sip, "7200", DialOpts::default())
        .await
        .unwrap();
    tokio::time::sleep(SECOND).await;
    let participants = |v: &Value| v["data"].as_array().map_or(0, Vec::len);
    let (_, parts) = api
        .as_b(get.clone(), &format!("/{id}/participants"), None)
        .await;
    assert_eq!(
        participants(&parts),
        1,
        "B's caller is in B's conference: {parts}"
    );
    let (_, parts) = api
        .as_a(get.clone(), &format!("/{id}/participants"), None)
        .await;
    assert_eq!(participants(&parts), 0, "A has none of it: {parts}");
    // The other caller, to the server's address, opened A's ad-hoc room 7200.
    let (_, parts) = api.as_a(get, "/7200/participants", None).await;
    assert_eq!(participants(&parts), 1, "{parts}");
    drop((a, b));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_account_cannot_reach_recordings_conferences_or_participants() {
    let config = config();
    let data = config.data_dir.clone();
    let srv = chorus::server::start(config).await.unwrap();
    let api = Api::new(&srv);
    let (get, put) = (reqwest::Method::GET, reqwest::Method::PUT);
    // Account A's ad-hoc conference 7100 (dial-ins belong to A), recorded while it talks.
    let a = Phone::dial(srv.sip, "7100", DialOpts::default())
        .await
        .unwrap();
    let b = Phone::dial(srv.sip, "7100", DialOpts::default())
        .await
        .unwrap();
    tokio::time::sleep(2 * SECOND).await;
    let record = |action: &str| json!({"action": "record", "data": {"action": action}});
    let (status, _) = api.as_a(put.clone(), "/7100", Some(record("start"))).await;
    assert_eq!(status, 202);
    a.send_tone(697.0, SECOND).await;
    api.as_a(put.clone(), "/7100", Some(record("stop"))).await;
    let mut name = String::new();
    let listed = eventually(5 * SECOND, async || {
        let (_, list) = api.as_a(get.clone(), "/7100/recordings", None).await;
        name = list["data"][0]["name"].as_str().unwrap_or_default().into();
        !name.is_empty()
    })
    .await;
    assert!(listed, "account A lists its recording");
    let on_disk = data
        .join("recordings")
        .join(DEFAULT_ACCOUNT)
        .join("7100")
        .join(&name);
    assert!(
        on_disk.is_file(),
        "stored under its account: {}",
        on_disk.display()
    );

    // B's token on A's account: 403 for everything.
    let recording = format!("/7100/recordings/{name}");
    for path in [
        "",
        "/7100",
        "/7100/participants",
        "/7100/recordings",
        &recording,
    ] {
        let (status, body) = api
            .call(TOKEN_B, DEFAULT_ACCOUNT, get.clone(), path, None)
            .await;
        assert_eq!(
            (status, &body["message"]),
            (403, &json!("forbidden")),
            "{path}"
        );
    }
    // B's token on its own account, naming A's conference: nothing there.
    let (_, pids) = api.as_a(get.clone(), "/7100/participants", None).await;
    let pid = pids["data"][0]["participant_id"]
        .as_u64()
        .expect("A sees participants");
    let (status, list) = api.as_b(get.clone(), "/7100/recordings", None).await;
    assert_eq!(
        (status, &list["data"]),
        (200, &json!([])),
        "B lists none of A's"
    );
    let (status, body) = api.as_b(get.clone(), &recording, None).await;
    assert_eq!(
        (status, &body["message"]),
        (404, &json!("bad_identifier")),
        "B downloads nothing"
    );
    let (_, conf) = api.as_b(get.clone(), "/7100", None).await;
    assert!(
        conf["data"]["_read_only"]["participants"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{conf}"
    );
    let (_, parts) = api.as_b(get.clone(), "/7100/participants", None).await;
    assert_eq!(parts["data"], json!([]), "B sees no participants");
    let acts = [
        (
            format!("/7100/participants/{pid}"),
            json!({"data": {"action": "kick"}}),
        ),
        (
            format!("/7100/participants/{pid}"),
            json!({"data": {"action": "mute"}}),
        ),
        (
            "/7100/participants".into(),
            json!({"data": {"action": "kick"}}),
        ),
        ("/7100".into(), json!({"action": "lock", "data": {}})),
        ("/7100".into(), record("start")),
        (
            "/7100".into(),
            json!({"action": "play", "data": {"media_id": "tone_stream://%(500,0,440)"}}),
        ),
    ];
    for (path, body) in &acts {
        let (status, reply) = api.as_b(put.clone(), path, Some(body.clone())).await;
        assert_eq!(
            (status, &reply["message"]),
            (404, &json!("bad_identifier")),
            "{path} {body}"
        );
    }
    // Nothing B tried happened; A still acts on its conference.
    let (_, parts) = api.as_a(get.clone(), "/7100/participants", None).await;
    assert_eq!(
        parts["data"].as_array().map(Vec::len),
        Some(2),
        "nobody was kicked"
    );
    b.send_tone(1209.0, 2 * SECOND).await;
    assert!(a.hear_level(1209.0, SECOND) > -30.0, "nobody was muted");
    let mute = json!({"data": {"action": "mute"}});
    let path = format!("/7100/participants/{pid}");
    let (status, _) = api.as_a(put.clone(), &path, Some(mute)).await;
    assert_eq!(status, 202, "A still can");
    let wav = api
        .client
        .get(format!(
            "{}/{DEFAULT_ACCOUNT}/conferences{recording}",
            api.base
        ))
        .header("X-Auth-Token", TOKEN_A)
        .send()
        .await
        .unwrap();
    assert_eq!(wav.status().as_u16(), 200, "A downloads its recording");
    srv.stop().await;
}

/// A 16-bit mono WAV of `hz` at `rate` lasting `seconds`.
fn tone_wav(hz: f64, rate: u32, seconds: f64) -> Vec<u8> {
    let n = (f64::from(rate) * seconds) as u32;
    let data = n * 2;
    let mut wav = Vec::with_capacity(44 + data as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    for (v, len) in [
        (16u32, 4),
        (1, 2),
        (1, 2),
        (rate, 4),
        (rate * 2, 4),
        (2, 2),
        (16, 2),
    ] {
        wav.extend_from_slice(&v.to_le_bytes()[..len]);
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data.to_le_bytes());
    for i in 0..n {
        let x = (2.0 * std::f64::consts::PI * hz * f64::from(i) / f64::from(rate)).sin();
        wav.extend_from_slice(&((x * 12000.0) as i16).to_le_bytes());
    }
    wav
}

/// A unique folder under the temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("chorus-attack-{}", support::unique_token()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_paths_outside_the_folders_are_refused_alike_and_nothing_blocks() {
    let tmp = TempDir::new();
    let (media, private) = (tmp.0.join("media"), tmp.0.join("private"));
    std::fs::create_dir_all(&media).unwrap();
    std::fs::create_dir_all(&private).unwrap();
    std::fs::write(media.join("tone.wav"), tone_wav(1000.0, 8000, 3.0)).unwrap();
    std::fs::write(private.join("secret.wav"), tone_wav(700.0, 8000, 3.0)).unwrap();
    mkfifo(&media.join("fifo.wav"));
    mkfifo(&private.join("fifo.wav"));
    let mut config = config();
    config.sounds.folders = vec![media.clone()];
    let srv = chorus::server::start(config).await.unwrap();
    let api = Api::new(&srv);
    let phone = Phone::dial(srv.sip, "7200", DialOpts::default())
        .await
        .unwrap();
    tokio::time::sleep(2 * SECOND).await;

    let path = |p: PathBuf| p.to_str().unwrap().to_string();
    // Each pair: one that exists, one that does not. Both answer the same refusal.
    let pairs = [
        (
            path(private.join("secret.wav")),
            path(private.join("missing.wav")),
        ),
        (
            path(media.join("../private/secret.wav")),
            path(media.join("../private/missing.wav")),
        ),
        ("/etc/passwd".into(), "/etc/no-such-file".into()),
        ("/dev/zero".into(), "/dev/no-such-device".into()),
        (
            path(private.join("fifo.wav")),
            path(private.join("no-fifo.wav")),
        ),
        ("../../etc/passwd".into(), "../../etc/no-such-file".into()),
    ];
    for (exists, missing) in &pairs {
        let (status, refused) = api.play("7200", exists).await;
        assert_eq!(status, 400, "{exists}: {refused}");
        let field = &refused["data"]["data.media_id"];
        assert!(
            field["media"]["message"].is_string(),
            "names the field: {refused}"
        );
        let (status, other) = api.play("7200", missing).await;
        assert_eq!(status, 400, "{missing}: {other}");
        let message = |v: &Value| v["data"]["data.media_id"]["media"]["message"].clone();
        assert_eq!(message(&refused), message(&other), "{exists} vs {missing}");
    }
    // A FIFO inside a media folder: refused without being opened, and nothing waits on it.
    let (status, body) = api.play("7200", &path(media.join("fifo.wav"))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["data.media_id"]["media"]["message"],
        "not a regular file"
    );
    let started = Instant::now();
    let get = reqwest::Method::GET;
    let (status, _) = api.as_a(get, "/7200", None).await;
    assert_eq!(status, 200, "the control plane answers");
    println!("GET during the FIFO play: {:?}", started.elapsed());
    // What the folder holds plays.
    let (status, body) = api.play("7200", &path(media.join("tone.wav"))).await;
    assert_eq!(status, 202, "{body}");
    let heard = eventually(5 * SECOND, async || {
        phone.hear_level(1000.0, SECOND / 2) > -30.0
    });
    assert!(heard.await, "the media folder's file plays");
    srv.stop().await;
}

/// An HTTP server counting its requests by path: `/…/tone.wav` is a tone, `/…/away` redirects
/// to `away`, anything else is a 404.
async fn media_server(
    bind: &str,
    wav: Vec<u8>,
    away: String,
) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let wav = bytes::Bytes::from(wav);
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        log.lock().unwrap().push(uri.path().to_string());
        let (wav, away) = (wav.clone(), away.clone());
        async move {
            use axum::response::IntoResponse;
            match uri.path() {
                p if p.ends_with(".wav") && !p.contains("missing") => wav.into_response(),
                p if p.ends_with("/away") => axum::response::Redirect::to(&away).into_response(),
                _ => axum::http::StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_urls_are_refused_and_never_requested() {
    // The only loopback server the policy lets in is on [::1]; the one on 127.0.0.1 is what
    // a redirect tries to reach.
    let (inside, inside_seen) =
        media_server("127.0.0.1:0", tone_wav(700.0, 8000, 2.0), String::new()).await;
    let away = format!("http://{inside}/secret.wav");
    let (allowed, allowed_seen) = media_server("[::1]:0", tone_wav(1000.0, 8000, 3.0), away).await;
    let mut config = config();
    config.sounds.urls.allow_networks = vec!["::1".parse().unwrap()];
    config.sounds.urls.allow = [
        format!("http://{allowed}/ok/"),
        "127.0.0.1".into(),
        "169.254.169.254".into(),
    ]
    .iter()
    .map(|p| p.parse().unwrap())
    .collect();
    let srv = chorus::server::start(config).await.unwrap();
    let api = Api::new(&srv);
    let phone = Phone::dial(srv.sip, "7300", DialOpts::default())
        .await
        .unwrap();
    tokio::time::sleep(2 * SECOND).await;

    let refused = [
        format!("http://{}/metrics", srv.api),
        format!("http://{inside}/tone.wav"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://{allowed}/other/tone.wav"),
        "file:///etc/passwd".to_string(),
    ];
    for url in &refused {
        let (status, body) = api.play("7300", url).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(
            body["data"]["data.media_id"]["media"]["message"].is_string(),
            "{body}"
        );
    }
    let (status, body) = api.play("7300", &format!("http://{allowed}/ok/away")).await;
    assert_eq!(status, 202, "allowed at first: {body}");
    let (status, body) = api
        .play("7300", &format!("http://{allowed}/ok/tone.wav"))
        .await;
    assert_eq!(status, 202, "{body}");
    let heard = eventually(8 * SECOND, async || {
        phone.hear_level(1000.0, SECOND / 2) > -30.0
    });
    assert!(heard.await, "the allowed URL plays");
    assert_eq!(
        *allowed_seen.lock().unwrap(),
        ["/ok/away", "/ok/tone.wav"],
        "nothing else asked"
    );
    assert!(
        inside_seen.lock().unwrap().is_empty(),
        "the redirect to 127.0.0.1 was not followed"
    );
    srv.stop().await;
}

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_large_distinct_urls_stay_within_the_memory_budgets() {
    // 24 distinct 4 MiB WAVs (48 kHz, about 44 s each): 192 MiB fetched, as much decoded.
    const URLS: usize = 24;
    let (fetch_budget, pcm_budget) = (8 << 20, 16 << 20);
    let (media, _) = media_server("127.0.0.1:0", tone_wav(440.0, 48000, 44.0), String::new()).await;
    let mut config = config();
    config.sounds.urls.allow_networks = vec!["127.0.0.1".parse().unwrap()];
    config.sounds.urls.cache_bytes = fetch_budget;
    config.sounds.pcm_cache_bytes = pcm_budget;
    let srv = chorus::server::start(config).await.unwrap();
    let api = Api::new(&srv);
    let phone = Phone::dial(srv.sip, "7400", DialOpts::default())
        .await
        .unwrap();
    tokio::time::sleep(2 * SECOND).await;
    let before = rss();
    for n in 0..URLS {
        let (status, body) = api
            .play("7400", &format!("http://{media}/big/{n}.wav"))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    // Every fetch is done well within this (4 at a time over loopback).
    tokio::time::sleep(8 * SECOND).await;
    let grown = rss().saturating_sub(before);
    // Budgets, plus the bodies of loads in flight (4 fetches, 2 decodes) and allocator slack.
    let margin = 48 << 20;
    println!(
        "RSS grew {} MiB for {URLS} distinct 4 MiB URLs",
        grown >> 20
    );
    assert!(
        grown < (fetch_budget + pcm_budget + margin) as u64,
        "RSS grew {} MiB",
        grown >> 20
    );
    assert!(phone.hear_level(440.0, SECOND) > -30.0, "what fits plays");
    let get = reqwest::Method::GET;
    let (status, _) = api.as_a(get, "/7400", None).await;
    assert_eq!(status, 200);
    srv.stop().await;
}

/// True once the peer closed `stream` (EOF or reset), within `within`.
async fn closed(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let end = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(end.into(), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slow_and_unauthenticated_connections_are_capped_and_closed() {
    let mut config = config();
    config.api.max_connections_per_ip = 6;
    config.api.header_timeout_secs = 2;
    config.api.ws_auth_secs = 1;
    config.api.max_websockets = 3;
    let srv = chorus::server::start(config).await.unwrap();
    let api = Api::new(&srv);
    let get = reqwest::Method::GET;
    let works = async || api.as_a(get.clone(), "", None).await.0 == 200;

    // Five idle connections and one slowloris trickling a header: the cap is reached.
    let mut idle = Vec::new();
    for _ in 0..5 {
        idle.push(TcpStream::connect(srv.api).await.unwrap());
    }
    assert!(works().await, "a call still fits under the cap");
    let mut slow = TcpStream::connect(srv.api).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(SECOND / 2).await;
    let mut over = TcpStream::connect(srv.api).await.unwrap();
    assert!(
        closed(&mut over, 5 * SECOND).await,
        "the connection over the cap is closed"
    );
    let trickle = async {
        for i in 0..40 {
            if slow
                .write_all(format!("X-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
            tokio::time::sleep(SECOND / 4).await;
        }
        false
    };
    assert!(
        trickle.await,
        "the slowloris header was cut off despite trickling"
    );
    for conn in &mut idle {
        assert!(
            closed(conn, 10 * SECOND).await,
            "idle connections are closed"
        );
    }
    assert!(works().await, "calls work again");

    // WebSockets: one that never subscribes is closed; one that does stays; past the cap, 503.
    let url = format!("ws://{}/ws", srv.api);
    let (mut lurker, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut subscriber, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let sub = json!({"action": "subscribe", "auth_token": TOKEN_A, "request_id": "r1",
        "data": {"account_id": DEFAULT_ACCOUNT, "binding": "conference.event.*.*"}});
    subscriber
        .send(Message::text(sub.to_string()))
        .await
        .unwrap();
    let (_third, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let refused = tokio_tungstenite::connect_async(&url).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 503),
        "past max_websockets: {refused:?}"
    );
    let ended = tokio::time::timeout(10 * SECOND, async {
        while let Some(Ok(msg)) = lurker.next().await {
            if msg.is_close() {
                break;
            }
        }
    });
    assert!(ended.await.is_ok(), "the unauthenticated socket is closed");
    tokio::time::sleep(2 * SECOND).await;
    subscriber
        .send(Message::text(sub.to_string()))
        .await
        .unwrap();
    let reply = tokio::time::timeout(5 * SECOND, async {
        loop {
            match subscriber.next().await {
                Some(Ok(Message::Text(t))) => return serde_json::from_str::<Value>(&t).unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("the subscriber was closed: {other:?}"),
            }
        }
    });
    assert_eq!(
        reply.await.unwrap()["status"],
        "success",
        "an authenticated socket stays"
    );

    let metrics = api
        .client
        .get(format!("http://{}/metrics", srv.api))
        .send()
        .await;
    let text = metrics.unwrap().text().await.unwrap();
    let value = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} ")));
        line.and_then(|l| l[name.len()..].trim().parse().ok())
            .unwrap_or(-1.0)
    };
    assert!(
        value("chorus_api_connections_refused_total") >= 1.0,
        "{text}"
    );
    assert!(
        value("chorus_ws_unauthenticated_closed_total") >= 1.0,
        "{text}"
    );
    assert!(value("chorus_ws_refused_total") >= 1.0, "{text}");
    srv.stop().await;
}
