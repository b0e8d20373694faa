//! Seed keys heard end to end (docs/conformance.md): a profile's enter and exit sounds
//! (and the silent built-in `page` profile), the max-members sounds before the hang-up, a
//! conference's language, the jambonz beep and the profile's member flags, the jambonz
//! enter and wait hooks.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus::server::Running;
use serde_json::{Value, json};
use support::envelope::{best_match, envelope, prompt};
use support::{DialOpts, Phone};

const SECOND: Duration = Duration::from_secs(1);
const HEARD_DB: f64 = -40.0;
const SILENT_DB: f64 = -50.0;

async fn server(docs: &[(&str, Value)]) -> Running {
    let config = support::seeded_config(docs);
    chorus::server::start(config).await.expect("server starts")
}

/// A conference on member number `number`, no welcome, members unmuted, plus `extra`.
fn doc(name: &str, number: &str, extra: Value) -> Value {
    let mut doc = json!({"name": name, "play_welcome": false,
        "member": {"numbers": [number], "join_muted": false}});
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    doc
}

async fn dial(srv: &Running, number: &str) -> Phone {
    Phone::dial(srv.sip, number, DialOpts::default())
        .await
        .unwrap()
}

/// Level of `freq_hz` in what `phone` heard since `from`.
fn heard_since(phone: &Phone, from: Instant, freq_hz: f64) -> f64 {
    let (rate, pcm) = phone.heard().between(from, Instant::now());
    mixer::goertzel::level_db(&pcm, rate, freq_hz)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_enter_and_exit_sounds_play_and_the_page_profile_stays_silent() {
    let quiet = json!({"member-enter-sound": "", "alone-sound": "", "moh-sound": ""});
    let mut profile = quiet.clone();
    if let Some(p) = profile.as_object_mut() {
        p.insert("enter-sound".into(), json!("tone_stream://%(1500,0,1336)"));
        p.insert("exit-sound".into(), json!("tone_stream://%(1500,0,1477)"));
    }
    let tones = doc("tones", "5101", json!({ "profile": profile }));
    let paging = doc("paging", "5102", json!({"profile_name": "page"}));
    let srv = server(&[("tones", tones), ("paging", paging)]).await;

    let a = dial(&srv, "5101").await;
    tokio::time::sleep(SECOND).await;
    let joined = Instant::now();
    let mut b = dial(&srv, "5101").await;
    tokio::time::sleep(2 * SECOND).await;
    assert!(
        heard_since(&a, joined, 1336.0) > HEARD_DB,
        "the profile's enter-sound"
    );
    assert!(
        heard_since(&a, joined, 783.0) < SILENT_DB,
        "not the config's entry tone"
    );
    let left = Instant::now();
    b.hangup().await.unwrap();
    tokio::time::sleep(2 * SECOND).await;
    assert!(
        heard_since(&a, left, 1477.0) > HEARD_DB,
        "the profile's exit-sound"
    );

    let a = dial(&srv, "5102").await;
    tokio::time::sleep(SECOND).await;
    let joined = Instant::now();
    let mut b = dial(&srv, "5102").await;
    tokio::time::sleep(2 * SECOND).await;
    b.hangup().await.unwrap();
    tokio::time::sleep(2 * SECOND).await;
    // Kazoo's entry tone is 523/659/783 Hz, its exit tone 523/440/349 Hz.
    for freq in [659.0, 783.0, 440.0] {
        let level = heard_since(&a, joined, freq);
        assert!(
            level < SILENT_DB,
            "the page profile beeps at {freq} Hz: {level:.0} dB"
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_conference_plays_its_max_members_sound_then_hangs_up() {
    let by_doc = doc(
        "bydoc",
        "5103",
        json!({"max_participants": 1, "max_members_media": "tone_stream://%(2000,0,1209)"}),
    );
    let by_profile = doc(
        "byprofile",
        "5104",
        json!({"profile": {"max-members": 2, "max-members-sound": "tone_stream://%(2000,0,1633)"}}),
    );
    let srv = server(&[("bydoc", by_doc), ("byprofile", by_profile)]).await;
    for (number, members, freq) in [("5103", 1, 1209.0), ("5104", 2, 1633.0)] {
        let mut inside = Vec::new();
        for _ in 0..members {
            inside.push(dial(&srv, number).await);
        }
        tokio::time::sleep(SECOND).await;
        let dialed = Instant::now();
        let refused = dial(&srv, number).await;
        assert!(refused.wait_bye(10 * SECOND).await, "{number}: hung up");
        let level = heard_since(&refused, dialed, freq);
        assert!(level > HEARD_DB, "{number}: its sound first: {level:.0} dB");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_french_conference_speaks_french() {
    let quiet = json!({"member-enter-sound": "", "moh-sound": ""});
    let french = doc(
        "francais",
        "5105",
        json!({"language": "fr", "profile": quiet}),
    );
    let srv = server(&[("francais", french)]).await;
    let dialed = Instant::now();
    let phone = dial(&srv, "5105").await;
    let fit = |language| {
        let (rate, pcm) = phone.heard().between(dialed, Instant::now());
        let part = envelope(&prompt(language, "conf-alone", rate), rate);
        best_match(&envelope(&pcm, rate), &part).1
    };
    // The prompt lasts 3.4 s; a loaded machine may start it late.
    tokio::time::sleep(4 * SECOND).await;
    for _ in 0..12 {
        if fit("fr") > 0.8 {
            break;
        }
        tokio::time::sleep(SECOND / 2).await;
    }
    let (fr, en) = (fit("fr"), fit("en"));
    assert!(fr > 0.8, "the French alone prompt: correlation {fr:.2}");
    assert!(
        fr > en + 0.1,
        "French ({fr:.2}) rather than English ({en:.2})"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jambonz_beep_rings_and_profile_member_flags_apply_to_every_joiner() {
    let muted = doc(
        "muted",
        "5106",
        json!({"beep": true, "play_entry_tone": false,
               "profile": {"member-flags": "mute", "member-enter-sound": "", "alone-sound": "",
                           "moh-sound": ""}}),
    );
    let srv = server(&[("muted", muted)]).await;
    let a = dial(&srv, "5106").await;
    tokio::time::sleep(SECOND).await;
    let joined = Instant::now();
    let b = dial(&srv, "5106").await;
    tokio::time::sleep(2 * SECOND).await;
    // jambonz's beep: DTMF '#' (941 + 1477 Hz) for 100 ms, then 350 + 440 Hz.
    let level = heard_since(&a, joined, 350.0);
    assert!(level > HEARD_DB, "beep: {level:.0} dB");
    a.send_tone(697.0, 2 * SECOND).await;
    let level = b.hear_level(697.0, SECOND);
    assert!(level < SILENT_DB, "member-flags mute: {level:.0} dB");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speak_only_to_member_is_heard_only_by_the_tagged_coach() {
    let coached = json!({"name": "coached", "play_welcome": false,
        "member": {"numbers": ["5100"], "join_muted": false, "speak_only_to": "coach"},
        "moderator": {"numbers": ["5101"], "join_muted": false, "member_tag": "coach"}});
    let srv = server(&[("coached", coached)]).await;
    let a = dial(&srv, "5100").await;
    let coach = dial(&srv, "5101").await;
    let b = dial(&srv, "5100").await;
    tokio::time::sleep(2 * SECOND).await;
    let from = Instant::now();
    a.send_tone(697.0, 2 * SECOND).await;
    tokio::time::sleep(SECOND / 2).await;
    assert!(
        heard_since(&coach, from, 697.0) > HEARD_DB,
        "the coach hears A"
    );
    assert!(
        heard_since(&b, from, 697.0) < SILENT_DB,
        "B does not hear A"
    );
    let from = Instant::now();
    coach.send_tone(1209.0, 2 * SECOND).await;
    tokio::time::sleep(SECOND / 2).await;
    assert!(
        heard_since(&a, from, 1209.0) > HEARD_DB,
        "A hears the coach"
    );
    assert!(
        heard_since(&b, from, 1209.0) > HEARD_DB,
        "B hears the coach"
    );
    srv.stop().await;
}

/// A jambonz app on 127.0.0.1: each hook path answers with its scripted verbs in turn
/// (then `[]`), and every request's body is kept.
struct App {
    base: String,
    asked: Arc<Mutex<Vec<(String, Value)>>>,
}

type Script = Arc<Mutex<Vec<(&'static str, Vec<Value>)>>>;

impl App {
    async fn start(script: Vec<(&'static str, Vec<Value>)>) -> App {
        use axum::extract::{Path, State};
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let answer = move |State(script): State<Script>,
                           Path(hook): Path<String>,
                           axum::Json(body): axum::Json<Value>| async move {
            log.lock().unwrap().push((hook.clone(), body));
            let mut script = script.lock().unwrap();
            let answers = script.iter_mut().find(|(h, _)| *h == hook);
            let next = answers.and_then(|(_, a)| (!a.is_empty()).then(|| a.remove(0)));
            axum::Json(next.unwrap_or_else(|| json!([])))
        };
        let app = axum::Router::new()
            .route("/{hook}", axum::routing::post(answer))
            .with_state(Arc::new(Mutex::new(script)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        App { base, asked }
    }

    fn asked(&self, hook: &str) -> Vec<Value> {
        let asked = self.asked.lock().unwrap();
        asked
            .iter()
            .filter(|(h, _)| h == hook)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enter_hook_plays_before_the_join_and_the_wait_hook_while_waiting() {
    let tone = |hz: u32| json!([{"verb": "play", "url": format!("tone_stream://%(1500,0,{hz})")}]);
    let app = App::start(vec![
        ("enter", vec![tone(1633)]),
        ("wait", vec![tone(1336)]),
    ])
    .await;
    let quiet = json!({"member-enter-sound": "", "alone-sound": "", "moh-sound": ""});
    let hooked = doc(
        "hooked",
        "5110",
        json!({"wait_for_moderator": true, "play_entry_tone": false, "profile": quiet,
               "enter_hook": format!("{}/enter", app.base),
               "wait_hook": format!("{}/wait", app.base)}),
    );
    let mut config = support::seeded_config(&[("hooked", hooked)]);
    config.api.webhooks.allow_networks = vec!["127.0.0.1".parse().unwrap()];
    let srv = chorus::server::start(config).await.expect("server starts");

    let dialed = Instant::now();
    let a = dial(&srv, "5110").await;
    tokio::time::sleep(4 * SECOND).await;
    // The enter hook's tone, then (waiting for a moderator) 750 ms of silence and the wait
    // hook's tone; its next answer is `[]`, which ends the loop.
    let (rate, pcm) = a.heard().between(dialed, Instant::now());
    let second = |s: usize| {
        &pcm[(s * rate as usize).min(pcm.len())..((s + 1) * rate as usize).min(pcm.len())]
    };
    let enter = mixer::goertzel::level_db(second(0), rate, 1633.0);
    assert!(enter > HEARD_DB, "enter hook: {enter:.0} dB");
    let wait = (1..4).map(|s| mixer::goertzel::level_db(second(s), rate, 1336.0));
    let wait = wait.fold(f64::NEG_INFINITY, f64::max);
    assert!(wait > HEARD_DB, "wait hook: {wait:.0} dB");
    assert_eq!(app.asked("enter").len(), 1);
    assert_eq!(
        app.asked("wait").len(),
        2,
        "asked again once, then `[]` ends it"
    );
    let body = &app.asked("enter")[0];
    assert_eq!(body["friendlyName"], "hooked");
    assert!(
        body["callSid"].is_string() && body["from"].is_string(),
        "{body}"
    );
    drop(a);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_conference_is_recorded_from_its_first_join_under_its_path() {
    let recorded = doc("recorded", "5111", json!({"record": {"path": "board"}}));
    let config = support::seeded_config(&[("recorded", recorded)]);
    let recordings = config.data_dir.join("recordings");
    let srv = chorus::server::start(config).await.expect("server starts");
    let mut a = dial(&srv, "5111").await;
    tokio::time::sleep(SECOND).await;
    a.send_tone(697.0, 2 * SECOND).await;
    a.hangup().await.unwrap();
    // The recording ends with the conference, when its last member leaves.
    let mut found = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        found = walk(&recordings).into_iter().find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("board-")
        });
        if found.is_some() {
            break;
        }
    }
    let path = found.expect("a board-*.wav recording");
    tokio::time::sleep(SECOND).await;
    let pcm = mixer::wav::Pcm::from_wav_bytes(&std::fs::read(&path).unwrap(), 8000).unwrap();
    let level = mixer::goertzel::level_db(pcm.samples(), 8000, 697.0);
    assert!(
        level > -30.0,
        "{} holds the tone: {level:.0} dB",
        path.display()
    );
    srv.stop().await;
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| match e.path() {
            p if p.is_dir() => walk(&p),
            p => vec![p],
        })
        .collect()
}
