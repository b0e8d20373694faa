//! The server started as `scripts/serve` starts it: the `chorus` binary run from the repo
//! root on the shipped config/chorus.toml (relative prompt and seed paths), with only the
//! listen addresses, RTP ports and data directory moved aside. A caller alone in an ad-hoc
//! room hears the alone prompt, then the hold music, each matched against its file.

mod support;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::envelope::{best_match, correlation, envelope, prompt};
use support::{DialOpts, Phone};

/// A loopback port free for both UDP and TCP (SIP uses both).
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_plays_the_alone_prompt_then_hold_music() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = std::env::temp_dir().join(format!("chorus-shipped-{}", support::unique_token()));
    let log = data.with_extension("log");
    let sip: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .current_dir(root)
        .args([
            "serve",
            "--config",
            "config/chorus.toml",
            "--rtp-ports",
            "41000-41999",
        ])
        .args(["--sip", &sip.to_string(), "--api", &api, "--data"])
        .arg(&data)
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let server = Server(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(&api).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server starts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let phone = Phone::dial(sip, "7500", DialOpts::default()).await.unwrap();
    let dialed = Instant::now();
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (rate, pcm) = phone.heard().between(dialed, Instant::now());
    drop(server);
    let heard = envelope(&pcm, rate);
    let file = |name: &str| prompt("en", name, rate);
    // The joiner hears its enter sound over the alone prompt, then the music after it.
    let (joining, alone, music) = (
        file("conf-joining_conference"),
        file("conf-alone"),
        file("hold_music"),
    );
    let mut expected: Vec<i16> = (0..alone.len().max(joining.len()))
        .map(|i| {
            let at = |v: &[i16]| i32::from(v.get(i).copied().unwrap_or(0));
            (at(&alone) + at(&joining)).clamp(-32768, 32767) as i16
        })
        .collect();
    let prompts = envelope(&expected, rate).len();
    expected.extend_from_slice(&music[..rate as usize * 4]);
    let expected = envelope(&expected, rate);
    let (at, fit) = best_match(&heard, &expected);
    assert!(
        fit > 0.7,
        "the prompts, then the music: correlation {fit:.2}"
    );
    let fit = correlation(&heard[at..at + prompts], &expected[..prompts]);
    assert!(fit > 0.5, "the alone prompt plays: correlation {fit:.2}");
    let fit = correlation(
        &heard[at + prompts..at + expected.len()],
        &expected[prompts..],
    );
    assert!(fit > 0.7, "then the hold music: correlation {fit:.2}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        !log.contains("cannot play"),
        "every sound resolved once:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(data.with_extension("log"));
}
