//! Every torture fixture sent over UDP to the whole running server (not only the SIP
//! endpoint): each gets the answer its manifest names, or none when it says `drop`, and the
//! server still answers OPTIONS afterwards.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::timeout;

fn torture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sip/torture")
}

/// The status line code of a response, or "drop" when none came.
async fn first_status(sock: &UdpSocket, wait: Duration) -> String {
    let mut buf = vec![0u8; 65536];
    match timeout(wait, sock.recv(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n])
            .split_whitespace()
            .nth(1)
            .unwrap_or("?")
            .to_string(),
        _ => "drop".to_string(),
    }
}

#[tokio::test]
async fn torture_messages_get_their_answers_and_the_server_stays_up() {
    let mut config = support::server_config();
    config.rtp.ports = chorus::config::PortRange(43000..=43999);
    let srv = chorus::server::start(config).await.unwrap();
    let manifest = std::fs::read_to_string(torture_dir().join("expected.txt")).unwrap();
    let mut failures = Vec::new();
    let mut cases = 0;
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut it = line.split_whitespace();
        let (name, endpoint) = (it.next().unwrap(), it.next().unwrap());
        let server = it.next().and_then(|t| t.strip_prefix("server="));
        let expected = server.unwrap_or(endpoint);
        // A fresh socket per message, so no answer to one is read as the answer to the next.
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.connect(srv.sip).await.unwrap();
        sock.send(&std::fs::read(torture_dir().join(name)).unwrap())
            .await
            .unwrap();
        let wait = Duration::from_millis(if expected == "drop" { 100 } else { 2000 });
        let got = first_status(&sock, wait).await;
        if got != expected {
            failures.push(format!("{name}: expected {expected}, got {got}"));
        }
        cases += 1;
    }
    assert!(cases >= 50, "only {cases} torture fixtures");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    sock.connect(srv.sip).await.unwrap();
    let options = format!(
        "OPTIONS sip:1000@{} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKalive;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:1000@127.0.0.1>\r\n\
         Call-ID: alive-after-torture\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        srv.sip
    );
    sock.send(options.as_bytes()).await.unwrap();
    assert_eq!(first_status(&sock, Duration::from_secs(2)).await, "200");
    srv.stop().await;
}
