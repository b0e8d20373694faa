//! SIPp, an independent SIP implementation, places 50 calls into 5 conferences through
//! scripts/load against the real `chorus` binary: every call must succeed and every call
//! must get RTP back from its own server port, and the mix tick's p99 comes from /metrics.

mod support;

use std::net::UdpSocket;
use std::process::Command;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The value column of one row of scripts/load's result table.
fn row<'a>(table: &'a str, name: &str) -> &'a str {
    table
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no row {name:?} in:\n{table}"))
}

#[test]
fn sipp_calls_in_five_conferences_all_get_rtp_back() {
    let root = env!("CARGO_MANIFEST_DIR");
    let ports = support::free_port_range(50);
    let rtp_ports = format!("{}-{}", ports.start(), ports.end());
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/load"))
        .args(["--callers", "50", "--conferences", "5", "--seconds", "4"])
        // Below the ephemeral ports the SIP and media ports are drawn from: a range there
        // could hold one of them, which scripts/load refuses.
        .args(["--rate", "25", "--rtp-ports", &rtp_ports])
        .args(["--server", &format!("127.0.0.1:{}", free_udp_port())])
        .args(["--media-port", &free_udp_port().to_string()])
        .args(["--bin", env!("CARGO_BIN_EXE_chorus")])
        .args(["--config", &format!("{root}/config/chorus.toml")])
        .output()
        .expect("scripts/load runs");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/load failed:\n{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(row(&table, "calls successful / failed"), "50 / 0");
    assert!(
        row(&table, "server RTP ports that sent RTP back").starts_with("50 (100% of calls)"),
        "{table}"
    );
    // /metrics answered at both ends of the window with mix ticks in between.
    assert!(
        row(&table, "mix tick p99 (a room's mix, before sends)").starts_with("<= "),
        "{table}"
    );
}
