//! PJSUA2 (PJSIP 2.15), an independent SIP phone stack, places two calls into one conference
//! through tests/peers/pjsua_calls.py: each phone plays its own tone and records what it
//! hears; each must hear the other's tone and not its own, with G.711 and with G.722.

mod support;

use std::process::Command;

use chorus::config::PortRange;

/// Tone levels (dB) each phone heard, keyed by phone ("a", "b") and frequency ("697", "1209").
fn pjsua_call(
    sip: std::net::SocketAddr,
    number: &str,
    codec: &str,
    rate: &str,
) -> serde_json::Value {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::env::temp_dir().join(format!("chorus-pjsua-{}-{number}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let out = out.to_string_lossy().into_owned();
    let run = Command::new("python3")
        .arg(format!("{root}/tests/peers/pjsua_calls.py"))
        .args([
            "--server",
            &sip.to_string(),
            "--number",
            number,
            "--codec",
            codec,
        ])
        .args([
            "--tone-a",
            &format!("{root}/fixtures/audio/tone-697-{rate}.wav"),
        ])
        .args([
            "--tone-b",
            &format!("{root}/fixtures/audio/tone-1209-{rate}.wav"),
        ])
        .args(["--out", &out])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "pjsua script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pjsua_phones_hear_each_other_not_themselves() {
    let mut config = support::server_config();
    config.rtp.ports = PortRange(48000..=48999);
    let srv = chorus::server::start(config).await.unwrap();
    for (number, codec, rate) in [("7200", "PCMU/8000", "8k"), ("7201", "G722/16000", "16k")] {
        let sip = srv.sip;
        let heard = tokio::task::spawn_blocking(move || pjsua_call(sip, number, codec, rate))
            .await
            .unwrap();
        assert_eq!(
            heard["answered"],
            serde_json::json!([true, true]),
            "{codec}: {heard}"
        );
        let level = |phone: &str, freq: &str| heard[phone][freq].as_f64().unwrap();
        assert!(level("a", "1209") > -30.0, "{codec}: A hears B: {heard}");
        assert!(level("b", "697") > -30.0, "{codec}: B hears A: {heard}");
        assert!(
            level("a", "697") < -50.0,
            "{codec}: A does not hear itself: {heard}"
        );
        assert!(
            level("b", "1209") < -50.0,
            "{codec}: B does not hear itself: {heard}"
        );
    }
    srv.stop().await;
}
