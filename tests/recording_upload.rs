//! Conference recordings uploaded to HTTP storage (Kazoo storage style: a PUT whose
//! multipart body is the metadata then the WAV), retried with backoff while the storage
//! fails, and kept in the spool across a restart until it takes them.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chorus::config::DEFAULT_ACCOUNT;
use chorus::server::Running;
use serde_json::json;
use support::{DialOpts, Phone};

const SECOND: Duration = Duration::from_secs(1);
const TOKEN: &str = "test-token";

/// What the storage received: (path, content type, body).
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A storage that answers 503 to its first `failures` PUTs, then 201.
async fn storage(failures: usize) -> (std::net::SocketAddr, Received) {
    let received = Received::default();
    let state = (received.clone(), Arc::new(Mutex::new(failures)));
    let put = |State((got, left)): State<(Received, Arc<Mutex<usize>>)>,
               Path(path): Path<String>,
               headers: HeaderMap,
               body: axum::body::Bytes| async move {
        let mut left = left.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let kind = headers["content-type"].to_str().unwrap().to_string();
        got.lock().unwrap().push((path, kind, body.to_vec()));
        StatusCode::CREATED
    };
    let app = axum::Router::new()
        .route("/store/{*path}", axum::routing::put(put))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

async fn server(data_dir: &std::path::Path, store: std::net::SocketAddr) -> Running {
    let mut config = support::server_config();
    config.data_dir = data_dir.to_path_buf();
    config.storage.url = format!("http://{store}/store");
    config.storage.allow_networks = vec!["127.0.0.1".parse().unwrap()];
    config.storage.first_retry_ms = 200;
    chorus::server::start(config).await.unwrap()
}

fn data_dir() -> std::path::PathBuf {
    support::server_config().data_dir
}

/// Records two seconds of conference 6600 with a caller in it; the local WAV's path.
async fn record(srv: &Running, data_dir: &std::path::Path) -> std::path::PathBuf {
    let _a = Phone::dial(srv.sip, "6600", DialOpts::default())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!(
        "http://{}/v2/accounts/{DEFAULT_ACCOUNT}/conferences/6600",
        srv.api
    );
    for (action, wait) in [("start", 2 * SECOND), ("stop", SECOND)] {
        let body = json!({"action": "record", "data": {"action": action}});
        // The answered caller may reach its room a moment later on a loaded machine: until
        // then the conference is not running (404).
        let mut status = StatusCode::NOT_FOUND;
        for _ in 0..50 {
            let r = client.put(&url).header("X-Auth-Token", TOKEN);
            status = r.body(body.to_string()).send().await.unwrap().status();
            if status != StatusCode::NOT_FOUND {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(status.is_success(), "{action}: {status}");
        tokio::time::sleep(wait).await;
    }
    let folder = data_dir
        .join("recordings")
        .join(DEFAULT_ACCOUNT)
        .join("6600");
    let mut files = std::fs::read_dir(folder).unwrap();
    files.next().unwrap().unwrap().path()
}

async fn wait_for(received: &Received, n: usize) -> bool {
    for _ in 0..200 {
        if received.lock().unwrap().len() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_is_put_with_its_metadata_after_the_storage_recovers() {
    let (store, received) = storage(2).await;
    let dir = data_dir();
    let srv = server(&dir, store).await;
    let wav = record(&srv, &dir).await;
    assert!(wait_for(&received, 1).await, "uploaded after two 503s");
    let (path, kind, body) = received.lock().unwrap()[0].clone();
    let name = wav.file_name().unwrap().to_str().unwrap();
    assert_eq!(path, format!("{DEFAULT_ACCOUNT}/6600/{name}"));
    let boundary = kind.strip_prefix("multipart/mixed; boundary=").unwrap();
    let text = String::from_utf8_lossy(&body);
    let json_start = text.find('{').unwrap();
    let json_end = text.find(&format!("\r\n--{boundary}")[..]).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&text[json_start..json_end]).unwrap();
    assert_eq!(meta["conference_id"], "6600");
    assert_eq!(meta["account_id"], DEFAULT_ACCOUNT);
    let local = std::fs::read(&wav).unwrap();
    assert_eq!(meta["content_length"], local.len());
    assert!(meta["duration_seconds"].as_f64().unwrap() > 1.0, "{meta}");
    let at = body.windows(4).position(|w| w == b"RIFF").unwrap();
    assert_eq!(&body[at..at + local.len()], &local[..], "the WAV itself");
    assert!(wav.exists(), "the local WAV stays");
    let spool = dir.join("spool/uploads");
    tokio::time::sleep(SECOND / 2).await;
    assert_eq!(
        std::fs::read_dir(spool).unwrap().count(),
        0,
        "spool emptied"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_the_storage_never_took_is_uploaded_after_a_restart() {
    let (store, received) = storage(usize::MAX).await;
    let dir = data_dir();
    let srv = server(&dir, store).await;
    record(&srv, &dir).await;
    tokio::time::sleep(SECOND).await;
    srv.stop().await;
    assert!(received.lock().unwrap().is_empty());
    let spool = dir.join("spool/uploads");
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        1,
        "kept in the spool"
    );

    let (store, received) = storage(0).await;
    let srv = server(&dir, store).await;
    assert!(wait_for(&received, 1).await, "sent by the next run");
    srv.stop().await;
}
