//! Kazoo `media` documents against a running server: WAV and MP3 uploads converted to the
//! server's format, played into a conference by id and heard by a phone; spoken (`tts`)
//! media and `tts://` text; tenant isolation and the upload size cap.

mod support;

use std::time::{Duration, Instant};

use chorus::config::DEFAULT_ACCOUNT;
use chorus::server::Running;
use serde_json::{Value, json};
use support::{DialOpts, Phone};

const SECOND: Duration = Duration::from_secs(1);
const TOKEN: &str = "test-token";
const OTHER: &str = "beef0000beef0000beef0000beef0000";
const OTHER_TOKEN: &str = "other-token";
/// The upload cap of these tests (`sounds.max_file_bytes`).
const CAP: u64 = 300_000;

async fn server() -> Running {
    let mut config = support::server_config();
    config.api.tokens.push(chorus::api::config::TokenEntry {
        token: OTHER_TOKEN.into(),
        account_id: OTHER.into(),
    });
    config.sounds.max_file_bytes = CAP;
    chorus::server::start(config).await.unwrap()
}

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(srv: &Running) -> Api {
        Api {
            base: format!("http://{}/v2/accounts", srv.api),
            client: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> (u16, Value, Vec<u8>) {
        let r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("X-Auth-Token", token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap().to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json, bytes)
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let body = body.to_string().into_bytes();
        let (status, json, _) = self
            .send(method, path, TOKEN, body, "application/json")
            .await;
        (status, json)
    }

    /// A new media document of the default account; its id.
    async fn media(&self, data: Value) -> String {
        let path = format!("/{DEFAULT_ACCOUNT}/media");
        let (status, body) = self
            .json(reqwest::Method::PUT, &path, json!({"data": data}))
            .await;
        assert_eq!(status, 201, "{body}");
        body["data"]["id"].as_str().unwrap().to_string()
    }

    async fn upload(&self, id: &str, bytes: Vec<u8>, content_type: &str) -> (u16, Value) {
        let path = format!("/{DEFAULT_ACCOUNT}/media/{id}/raw");
        let (status, json, _) = self
            .send(reqwest::Method::POST, &path, TOKEN, bytes, content_type)
            .await;
        (status, json)
    }

    /// A conference reached at `number`; its id.
    async fn conference(&self, number: &str) -> String {
        let doc = json!({"data": {"name": format!("media {number}"), "play_welcome": false,
            "member": {"numbers": [number], "join_muted": false}}});
        let path = format!("/{DEFAULT_ACCOUNT}/conferences");
        let (status, body) = self.json(reqwest::Method::PUT, &path, doc).await;
        assert_eq!(status, 201, "{body}");
        body["data"]["id"].as_str().unwrap().to_string()
    }

    async fn play(&self, conference: &str, media: &str) -> (u16, Value) {
        let path = format!("/{DEFAULT_ACCOUNT}/conferences/{conference}");
        let play = json!({"action": "play", "data": {"media_id": media}});
        self.json(reqwest::Method::PUT, &path, play).await
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read(root.join("fixtures/audio").join(name)).unwrap()
}

async fn two_phones(srv: &Running, number: &str) -> (Phone, Phone) {
    let a = Phone::dial(srv.sip, number, DialOpts::default()).await;
    let b = Phone::dial(srv.sip, number, DialOpts::default()).await;
    (a.unwrap(), b.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_wav_and_mp3_play_by_id_and_stay_in_their_account() {
    let srv = server().await;
    let api = Api::new(&srv);
    let wav = api.media(json!({"name": "wav tone"})).await;
    let mp3 = api.media(json!({"name": "mp3 tone"})).await;
    let (status, body) = api
        .upload(&wav, fixture("tone-697-8k.wav"), "audio/wav")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["content_type"], "audio/wav");
    assert_eq!(body["data"]["media_source"], "upload");
    let (status, body) = api
        .upload(&mp3, fixture("tone-1209.mp3"), "audio/mpeg")
        .await;
    assert_eq!(status, 200, "{body}");

    // Stored in the server's format: 16 kHz 16-bit mono WAV, whatever came in.
    let raw = format!("/{DEFAULT_ACCOUNT}/media/{mp3}/raw");
    let (status, _, bytes) = api
        .send(reqwest::Method::GET, &raw, TOKEN, vec![], "")
        .await;
    assert_eq!(status, 200);
    let spec = hound::WavReader::new(&bytes[..]).unwrap().spec();
    assert_eq!((spec.sample_rate, spec.channels), (16000, 1));

    let conference = api.conference("6400").await;
    let (a, b) = two_phones(&srv, "6400").await;
    tokio::time::sleep(2 * SECOND).await;
    for (id, hz) in [(&wav, 697.0), (&mp3, 1209.0)] {
        let (status, body) = api.play(&conference, id).await;
        assert!(status < 300, "{status} {body}");
        assert!(
            a.wait_hear(hz, -30.0, SECOND / 2, 3 * SECOND).await,
            "A hears the {hz} Hz upload"
        );
        assert!(b.hear_level(hz, SECOND / 2) > -30.0, "B too");
        tokio::time::sleep(SECOND).await;
    }

    // Another account: its own path does not hold the id, and another's path is forbidden.
    let theirs = format!("/{OTHER}/media/{wav}/raw");
    let (status, body, _) = api
        .send(reqwest::Method::GET, &theirs, OTHER_TOKEN, vec![], "")
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = api
        .send(reqwest::Method::GET, &raw, OTHER_TOKEN, vec![], "")
        .await;
    assert_eq!(status, 403);
    let path = format!("/{OTHER}/media");
    let data = json!({"data": {"name": "theirs"}}).to_string().into_bytes();
    let (status, body, _) = api
        .send(
            reqwest::Method::PUT,
            &path,
            OTHER_TOKEN,
            data,
            "application/json",
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let their_id = body["data"]["id"].as_str().unwrap().to_string();
    let their_raw = format!("/{OTHER}/media/{their_id}/raw");
    let (status, _, _) = api
        .send(
            reqwest::Method::POST,
            &their_raw,
            OTHER_TOKEN,
            fixture("tone-1209-16k.wav"),
            "audio/wav",
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = api.play(&conference, &their_id).await;
    assert_eq!(status, 404, "another account's media does not play: {body}");

    // Deleted: its audio goes with it.
    let path = format!("/{DEFAULT_ACCOUNT}/media/{wav}");
    let (status, _) = api.json(reqwest::Method::DELETE, &path, json!({})).await;
    assert_eq!(status, 200);
    let (status, _) = api.play(&conference, &wav).await;
    assert_eq!(status, 404);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_unreadable_uploads_are_refused_in_kazoos_shape() {
    let srv = server().await;
    let api = Api::new(&srv);
    let id = api.media(json!({"name": "big"})).await;
    let mut big = fixture("tone-697-16k.wav");
    big.resize(CAP as usize + (1 << 20), 0);
    let (status, body) = api.upload(&id, big, "audio/wav").await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["error"], "413");
    assert_eq!(body["data"]["file"]["maxSize"]["target"], CAP);
    let (status, body) = api.upload(&id, b"not audio".to_vec(), "audio/wav").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["data"]["file"]["format"]["message"].is_string(),
        "{body}"
    );
    let (status, _) = api
        .upload("0123456789abcdef0123456789abcdef", vec![1], "audio/wav")
        .await;
    assert_eq!(status, 404, "no such document");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoken_media_and_tts_text_are_heard() {
    let srv = server().await;
    let api = Api::new(&srv);
    let spoken = api
        .media(json!({"name": "spoken", "media_source": "tts",
            "tts": {"text": "Welcome to the media test.", "voice": "female/en-US"}}))
        .await;
    let conference = api.conference("6401").await;
    let (a, _b) = two_phones(&srv, "6401").await;
    tokio::time::sleep(2 * SECOND).await;
    for media in [spoken.as_str(), "tts://The meeting starts now."] {
        let from = Instant::now();
        let (status, body) = api.play(&conference, media).await;
        assert!(status < 300, "{media}: {status} {body}");
        tokio::time::sleep(3 * SECOND).await;
        let (_, pcm) = a.heard().between(from, Instant::now());
        let loud = pcm.iter().filter(|s| s.abs() > 2000).count();
        assert!(loud > 1000, "{media}: speech heard ({loud} loud samples)");
    }
    let (status, body) = api.play(&conference, "tts://").await;
    assert_eq!(status, 400, "empty text: {body}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_name_is_kept_as_the_callers_media_and_announced_on_the_next_call() {
    let srv = server().await;
    let api = Api::new(&srv);
    let doc = json!({"data": {"name": "names", "play_welcome": false, "play_name": true,
        "member": {"numbers": ["6402"], "join_muted": false}}});
    let path = format!("/{DEFAULT_ACCOUNT}/conferences");
    let (status, body) = api.json(reqwest::Method::PUT, &path, doc).await;
    assert_eq!(status, 201, "{body}");
    let as_user = |user: &str| DialOpts {
        user: user.into(),
        ..DialOpts::default()
    };
    // conf-announce_your_name and the beep, then the recording runs until a key.
    let announce_and_beep = Duration::from_millis(5500);
    let dave = Phone::dial(srv.sip, "6402", as_user("dave")).await.unwrap();
    tokio::time::sleep(announce_and_beep).await;
    dave.send_dtmf_rfc4733('#').await.unwrap();
    let mut carol = Phone::dial(srv.sip, "6402", as_user("carol"))
        .await
        .unwrap();
    tokio::time::sleep(announce_and_beep).await;
    carol.send_tone(1633.0, SECOND + SECOND / 2).await;
    carol.send_dtmf_rfc4733('#').await.unwrap();
    tokio::time::sleep(2 * SECOND).await;
    carol.hangup().await.unwrap();

    let media = format!("/{DEFAULT_ACCOUNT}/media");
    let (status, list) = api.json(reqwest::Method::GET, &media, json!({})).await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["source_type"] == "play_name")
        .collect();
    let carols = names
        .iter()
        .find(|d| d["owner_id"] == "caller:carol@127.0.0.1")
        .unwrap_or_else(|| panic!("carol's name kept: {list}"));
    let id = carols["id"].as_str().unwrap();
    let raw = format!("/{DEFAULT_ACCOUNT}/media/{id}/raw");
    let (status, _, wav) = api
        .send(reqwest::Method::GET, &raw, TOKEN, vec![], "")
        .await;
    assert_eq!(status, 200);
    let pcm = mixer::wav::Pcm::from_wav_bytes(&wav, 16000).unwrap();
    let level = mixer::goertzel::level_db(pcm.samples(), 16000, 1633.0);
    assert!(level > -30.0, "the kept name is carol's tone: {level} dB");

    // Carol calls again: not asked, she joins at once and Dave hears her kept name.
    let again = Instant::now();
    let _carol = Phone::dial(srv.sip, "6402", as_user("carol"))
        .await
        .unwrap();
    assert!(
        dave.wait_hear(1633.0, -35.0, SECOND / 2, 4 * SECOND).await,
        "Dave hears Carol's kept name"
    );
    assert!(
        again.elapsed() < announce_and_beep,
        "without recording again"
    );
    srv.stop().await;
}
