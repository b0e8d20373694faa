//! Runs one SIPp scenario of fixtures/sipp against a server, in a scratch directory (SIPp
//! writes its logs where it runs).

use std::net::SocketAddr;

/// `sipp -sf fixtures/sipp/<scenario> <args> -m 1 -i 127.0.0.1 -p 0 -nostdin -timeout 20s
/// <server>`; true when the scenario passed (its failure is printed).
pub fn run(server: SocketAddr, scenario: &str, args: &[&str]) -> bool {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = std::env::temp_dir().join(format!("chorus-sipp-{}", super::unique_token()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new("sipp")
        .current_dir(&dir)
        .arg("-sf")
        .arg(format!("{root}/fixtures/sipp/{scenario}"))
        .args(args)
        .args([
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-nostdin",
            "-timeout",
            "20s",
        ])
        .arg(server.to_string())
        .output()
        .expect("sipp runs (bash scripts/install-deps --test)");
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        eprintln!(
            "sipp {scenario}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}
