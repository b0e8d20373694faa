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
    let mut run = Command::new("python3");
    run.arg(format!("{root}/tests/peers/pjsua_calls.py"))
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
        .args(["--out", &out]);
    super::last_json(&mut run, "pjsua script")
}

pub type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// Runs the PJSUA2 driver tests/peers/`script` with `args`, the 697 Hz and 1209 Hz tone
/// files after `tone_flags` and a folder for its recordings; its stdout, line by line.
/// The driver is killed when the child is dropped.
pub fn driver(
    script: &str,
    args: &[&str],
    tone_flags: [&str; 2],
) -> (tokio::process::Child, Lines) {
    use tokio::io::AsyncBufReadExt;
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::env::temp_dir().join(format!("chorus-{script}-{}", super::unique_token()));
    std::fs::create_dir_all(&out).unwrap();
    let mut child = tokio::process::Command::new("python3")
        .arg(format!("{root}/tests/peers/{script}"))
        .args(args)
        .arg(tone_flags[0])
        .arg(format!("{root}/fixtures/audio/tone-697-8k.wav"))
        .arg(tone_flags[1])
        .arg(format!("{root}/fixtures/audio/tone-1209-8k.wav"))
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Whether the driver printed "ready" within `wait` (PJSIP logs its start on stdout too).
pub async fn ready(lines: &mut Lines, wait: std::time::Duration) -> bool {
    let ready = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line == "ready" {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(wait, ready).await.unwrap_or(false)
}

/// The JSON a driver prints last, before it exits (waiting at most `wait` for each line).
pub async fn result_of(lines: &mut Lines, wait: std::time::Duration) -> serde_json::Value {
    let mut last = String::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(wait, lines.next_line()).await {
        last = line;
    }
    serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {last}"))
}
