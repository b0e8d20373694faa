//! Kazoo caller flow and controls end to end over SIP with DTMF: PINs decide the role,
//! wrong PINs hang up, full and locked conferences refuse, members wait for a moderator
//! with hold music, *1 mutes, joins ring the entry tone, an endconf member ends it, and a
//! dist-dtmf member's keys reach the others; announce-count tells a joiner the count.

mod support;

use std::time::{Duration, Instant};

use chorus::server::Running;
use serde_json::json;
use support::{DialOpts, Dtmf, Phone};

const SECOND: Duration = Duration::from_secs(1);
const HEARD_DB: f64 = -30.0;
const SILENT_DB: f64 = -50.0;

/// A server whose store is seeded with `docs` (file stem -> conference document).
async fn server(docs: &[(&str, serde_json::Value)]) -> Running {
    let config = support::seeded_config(docs);
    chorus::server::start(config).await.expect("server starts")
}

/// Keys `pin` once conf-welcome (1.7 s) is over, into conf-enter_conf_pin.
fn pin(pin: &str) -> DialOpts {
    DialOpts {
        pin: Some(pin.to_string()),
        pin_delay: Duration::from_millis(2500),
        ..DialOpts::default()
    }
}

/// RMS level (dBFS) of what the phone received over the last `window`.
fn loudness(phone: &Phone, window: Duration) -> f64 {
    let now = Instant::now();
    let (_, pcm) = phone.heard().between(now - window, now);
    let energy: f64 = pcm.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    let rms = (energy / pcm.len().max(1) as f64).sqrt() / 32768.0;
    20.0 * rms.max(1e-9).log10()
}

async fn keys(phone: &Phone, digits: &str) {
    for d in digits.chars() {
        phone.send_dtmf_rfc4733(d).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pin_decides_the_role_and_three_wrong_pins_hang_up() {
    let doc = json!({"name": "pins", "conference_numbers": ["5000"],
        "member": {"pins": ["1234"], "join_muted": false}, "moderator": {"pins": ["4321"], "join_muted": false}});
    let srv = server(&[("pins", doc)]).await;
    let member = Phone::dial(srv.sip, "5000", pin("1234#")).await.unwrap();
    let info = DialOpts {
        pin_dtmf: Dtmf::Info,
        ..pin("4321#")
    };
    let moderator = Phone::dial(srv.sip, "5000", info).await.unwrap();
    // Both got past the PIN prompt into the conference: they hear each other.
    let welcome_and_pin = 6 * SECOND;
    tokio::time::sleep(welcome_and_pin).await;
    tokio::join!(
        member.send_tone(697.0, 2 * SECOND),
        moderator.send_tone(1209.0, 2 * SECOND)
    );
    assert!(
        member.hear_level(1209.0, SECOND) > HEARD_DB,
        "member hears moderator"
    );
    assert!(
        moderator.hear_level(697.0, SECOND) > HEARD_DB,
        "moderator hears member"
    );
    let roles = participants(&srv, "pins").await;
    let mut moderators: Vec<bool> = roles.iter().map(|p| p["is_moderator"] == true).collect();
    moderators.sort();
    assert_eq!(
        moderators,
        [false, true],
        "one member, one moderator: {roles:?}"
    );

    let wrong = Phone::dial(srv.sip, "5000", DialOpts::default())
        .await
        .unwrap();
    for _ in 0..3 {
        tokio::time::sleep(2 * SECOND).await;
        keys(&wrong, "9999#").await;
    }
    assert!(
        wrong.wait_bye(10 * SECOND).await,
        "hung up after three wrong PINs"
    );
    assert!(
        loudness(&wrong, 4 * SECOND) > -40.0,
        "conf-too_many_attempts played first"
    );
    srv.stop().await;
}

/// The participants the REST API shows for a conference.
async fn participants(srv: &Running, id: &str) -> Vec<serde_json::Value> {
    let url = format!(
        "http://{}/v2/accounts/{}/conferences/{id}/participants",
        srv.api,
        chorus::config::DEFAULT_ACCOUNT
    );
    let body = api_get(&url).await;
    body["data"].as_array().cloned().unwrap_or_default()
}

async fn api_get(url: &str) -> serde_json::Value {
    let client = reqwest::Client::new();
    let r = client
        .get(url)
        .header("X-Auth-Token", "test-token")
        .send()
        .await
        .unwrap();
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_conference_and_a_locked_one_refuse_with_their_prompts() {
    let full = json!({"name": "full", "conference_numbers": ["5001"], "max_participants": 2,
        "play_welcome": false, "member": {"join_muted": false}});
    let lockable = json!({"name": "lockable", "conference_numbers": ["5002"],
        "play_welcome": false, "member": {"join_muted": false}, "caller_controls": "locking",
        "controls": {"locking": [{"action": "lock", "digits": "*7"}]}});
    let srv = server(&[("full", full), ("lockable", lockable)]).await;
    let _a = Phone::dial(srv.sip, "5001", DialOpts::default())
        .await
        .unwrap();
    let _b = Phone::dial(srv.sip, "5001", DialOpts::default())
        .await
        .unwrap();
    tokio::time::sleep(SECOND).await;
    let third = Phone::dial(srv.sip, "5001", DialOpts::default())
        .await
        .unwrap();
    assert!(
        third.wait_bye(10 * SECOND).await,
        "the third caller is refused"
    );
    assert!(
        loudness(&third, 5 * SECOND) > -40.0,
        "after conf-max_participants"
    );

    let locker = Phone::dial(srv.sip, "5002", DialOpts::default())
        .await
        .unwrap();
    tokio::time::sleep(SECOND).await;
    keys(&locker, "*7").await;
    tokio::time::sleep(SECOND).await;
    let late = Phone::dial(srv.sip, "5002", DialOpts::default())
        .await
        .unwrap();
    assert!(
        late.wait_bye(10 * SECOND).await,
        "a locked conference refuses"
    );
    assert!(
        loudness(&late, 5 * SECOND) > -40.0,
        "after the locked prompt"
    );
    assert!(!locker.wait_bye(SECOND).await, "the member inside stays");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_wait_with_hold_music_until_a_moderator_arrives() {
    let doc = json!({"name": "waitmod", "wait_for_moderator": true, "play_welcome": false,
        "member": {"numbers": ["5003"], "join_muted": false}, "moderator": {"numbers": ["5004"]}});
    let srv = server(&[("waitmod", doc)]).await;
    let a = Phone::dial(srv.sip, "5003", DialOpts::default())
        .await
        .unwrap();
    let b = Phone::dial(srv.sip, "5003", DialOpts::default())
        .await
        .unwrap();
    tokio::time::sleep(2 * SECOND).await;
    assert!(
        loudness(&a, SECOND) > -45.0,
        "a waiting member hears hold music"
    );
    b.send_tone(1209.0, 2 * SECOND).await;
    assert!(
        a.hear_level(1209.0, SECOND) < SILENT_DB,
        "members are not mixed yet"
    );
    let _moderator = Phone::dial(srv.sip, "5004", DialOpts::default())
        .await
        .unwrap();
    tokio::time::sleep(SECOND).await;
    b.send_tone(1209.0, 2 * SECOND).await;
    assert!(
        a.hear_level(1209.0, SECOND) > HEARD_DB,
        "the moderator's arrival mixes them"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn star_one_toggles_mute_and_joins_ring_the_entry_tone() {
    let srv = server(&[]).await;
    let a = Phone::dial(srv.sip, "5010", DialOpts::default())
        .await
        .unwrap();
    tokio::time::sleep(SECOND).await;
    let b = Phone::dial(srv.sip, "5010", DialOpts::default())
        .await
        .unwrap();
    // Kazoo's entry tone: 523+659 Hz for 300 ms, then 659+783 Hz for 800 ms.
    tokio::time::sleep(SECOND).await;
    assert!(
        a.hear_level(783.0, SECOND) > -40.0,
        "A hears the entry tone"
    );
    assert!(
        a.hear_level(659.0, SECOND) > -40.0,
        "A hears the entry tone"
    );
    tokio::time::sleep(SECOND).await;

    a.send_tone(697.0, SECOND + SECOND / 2).await;
    assert!(b.hear_level(697.0, SECOND) > HEARD_DB, "B hears A");
    keys(&a, "*1").await;
    tokio::time::sleep(2 * SECOND).await; // the conf-muted prompt plays to A
    a.send_tone(697.0, SECOND + SECOND / 2).await;
    assert!(b.hear_level(697.0, SECOND) < SILENT_DB, "*1 muted A");
    keys(&a, "*1").await;
    tokio::time::sleep(2 * SECOND).await;
    a.send_tone(697.0, SECOND + SECOND / 2).await;
    assert!(b.hear_level(697.0, SECOND) > HEARD_DB, "*1 again unmuted A");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endconf_member_leaving_ends_the_conference() {
    let doc = json!({"name": "endconf", "play_welcome": false,
        "member": {"numbers": ["5005"], "join_muted": false},
        "moderator": {"numbers": ["5006"], "end_conference_on_exit": true}});
    let srv = server(&[("endconf", doc)]).await;
    let member = Phone::dial(srv.sip, "5005", DialOpts::default())
        .await
        .unwrap();
    let mut moderator = Phone::dial(srv.sip, "5006", DialOpts::default())
        .await
        .unwrap();
    tokio::time::sleep(SECOND).await;
    assert!(!member.wait_bye(SECOND).await);
    moderator.hangup().await.unwrap();
    assert!(member.wait_bye(5 * SECOND).await, "everyone is hung up");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dist_dtmf_member_sends_its_keys_to_the_others() {
    let doc = json!({"name": "distdtmf", "play_welcome": false,
        "member": {"numbers": ["5007"], "join_muted": false, "distribute_dtmf": true},
        "moderator": {"numbers": ["5008"]}});
    let srv = server(&[("distdtmf", doc)]).await;
    let a = Phone::dial(srv.sip, "5007", DialOpts::default())
        .await
        .unwrap();
    let b = Phone::dial(srv.sip, "5008", DialOpts::default())
        .await
        .unwrap();
    tokio::time::sleep(SECOND).await;
    keys(&a, "5").await;
    tokio::time::sleep(SECOND).await;
    let to_b: Vec<char> = b.heard().dtmf.iter().map(|(_, k)| *k).collect();
    assert_eq!(to_b, ['5'], "B's phone got A's key");
    keys(&b, "5").await;
    tokio::time::sleep(SECOND).await;
    assert!(a.heard().dtmf.is_empty(), "B has no dist-dtmf flag");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announce_count_tells_the_joiner_how_many_are_in() {
    let doc = |name: &str, number: &str, profile: serde_json::Value| {
        json!({"name": name, "play_welcome": false, "play_entry_tone": false,
            "member": {"numbers": [number], "join_muted": false}, "profile": profile})
    };
    let silent = "silence_stream://1";
    let counted = doc(
        "counted",
        "5011",
        json!({"announce-count": 2, "member-enter-sound": silent}),
    );
    let quiet = doc("quiet", "5012", json!({"member-enter-sound": silent}));
    let srv = server(&[("counted", counted), ("quiet", quiet)]).await;
    let mut levels = Vec::new();
    for number in ["5011", "5012"] {
        let _first = Phone::dial(srv.sip, number, DialOpts::default())
            .await
            .unwrap();
        tokio::time::sleep(SECOND).await;
        let second = Phone::dial(srv.sip, number, DialOpts::default())
            .await
            .unwrap();
        // conf-there_is, digits/1, conf-other_participant: 2.8 s.
        tokio::time::sleep(3 * SECOND).await;
        levels.push(loudness(&second, 3 * SECOND));
    }
    assert!(levels[0] > -40.0, "the count is said: {levels:?}");
    assert!(
        levels[1] < SILENT_DB,
        "not without announce-count: {levels:?}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_name_is_announced_to_the_others() {
    let doc = json!({"name": "names", "conference_numbers": ["5020"], "play_welcome": false,
        "play_name": true, "member": {"join_muted": false}});
    let srv = server(&[("names", doc)]).await;
    // conf-announce_your_name (4.2 s) and the 440 Hz beep, then the recording runs
    // until a key: B records a silent name, A says its "name" as a 1633 Hz tone.
    let announce_and_beep = 5500;
    // Two callers, so neither reuses the other's kept name.
    let as_user = |user: &str| DialOpts {
        user: user.into(),
        ..DialOpts::default()
    };
    let b = Phone::dial(srv.sip, "5020", as_user("bob")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(announce_and_beep)).await;
    keys(&b, "#").await;
    tokio::time::sleep(2 * SECOND).await;
    let a = Phone::dial(srv.sip, "5020", as_user("alice"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(announce_and_beep)).await;
    a.send_tone(1633.0, SECOND + SECOND / 2).await;
    keys(&a, "#").await;
    let window = Duration::from_millis(500);
    assert!(
        b.wait_hear(1633.0, -35.0, window, 8 * SECOND).await,
        "B hears A's recorded name when A joins"
    );
    srv.stop().await;
}
