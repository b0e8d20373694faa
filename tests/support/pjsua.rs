//! Two PJSUA2 (PJSIP) phones in one call through tests/peers/pjsua_calls.py.

use std::process::Command;

/// Two PJSUA2 phones dial `number` at `sip` with `codec`, each playing its tone (697 and
/// 1209 Hz at `rate`) for a while: the tone levels (dB) each phone heard, keyed by phone
/// ("a", "b") and frequency ("697", "1209").
pub fn pjsua_call(
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
