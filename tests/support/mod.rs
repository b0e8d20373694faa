//! A test phone for the integration tests (`mod support;` in tests/*.rs): SIP over UDP or
//! TCP built as text, RTP paced in real time, and what it hears decoded for Goertzel checks.
//!
//! ```ignore
//! let mut a = Phone::dial(server, "1000", DialOpts::default()).await?;
//! let b = Phone::dial(server, "1000", DialOpts::default()).await?;
//! a.send_tone(697.0, Duration::from_secs(1)).await;
//! assert!(b.hear_level(697.0, Duration::from_millis(500)) > -30.0);
//! a.hangup().await?;
//! ```

// Each test binary uses part of the phone; the rest is not dead, just unused there.
#![allow(dead_code, unused_imports)]

pub mod codec;
pub mod dialog;
pub mod dns;
pub mod envelope;
pub mod impair;
pub mod media;
pub mod pg_cluster;
pub mod phone;
pub mod pjsua;
pub mod process;
pub mod rtp;
pub mod sdp_text;
pub mod sip_text;
pub mod sipp;
pub mod transport;

pub use dialog::Transport;
pub use phone::{CallError, Calling, DialOpts, Dtmf, Phone};
pub use sdp_text::Direction;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs a peer script (tests/peers/*.py) to its end and reads the JSON it printed last;
/// a failure panics with its output (`what` names it, and what to install).
pub fn last_json<T: serde::de::DeserializeOwned>(cmd: &mut std::process::Command, what: &str) -> T {
    let run = cmd.output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A number no other call of this process gets (Call-IDs, tags, SSRCs).
pub fn unique() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos.rotate_left(20) ^ COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A unique token for Call-IDs and tags.
pub fn unique_token() -> String {
    format!("{:x}{:x}", std::process::id(), unique())
}

/// A new RFC 3261 Via branch.
pub fn branch() -> String {
    format!("z9hG4bK{}", unique_token())
}

/// A server config for tests: SIP on a free loopback port, the shipped seed and prompts,
/// and a fresh data directory of its own.
pub fn server_config() -> chorus::config::Config {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = chorus::config::Config::default();
    config.sip.listen = "127.0.0.1:0".parse().unwrap();
    config.api.listen = "127.0.0.1:0".parse().unwrap();
    config.api.tokens = vec![chorus::api::config::TokenEntry {
        token: "test-token".into(),
        account_id: chorus::config::DEFAULT_ACCOUNT.into(),
    }];
    config.rtp.ports = chorus::config::PortRange(31000..=39999);
    config.conferences.seed = root.join("config/seed");
    config.conferences.prompts = root.join("config/prompts");
    config.data_dir = std::env::temp_dir().join(format!("chorus-test-{}", unique_token()));
    config
}

/// [`server_config`] with a store seeded with `docs` (file stem -> conference document)
/// and the shipped system config.
pub fn seeded_config(docs: &[(&str, serde_json::Value)]) -> chorus::config::Config {
    let mut config = server_config();
    let seed = config.data_dir.with_extension("seed");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(seed.join("conferences")).unwrap();
    std::fs::create_dir_all(seed.join("system_config")).unwrap();
    std::fs::copy(
        root.join("config/seed/system_config/conferences.json"),
        seed.join("system_config/conferences.json"),
    )
    .unwrap();
    for (name, doc) in docs {
        let path = seed.join("conferences").join(format!("{name}.json"));
        std::fs::write(path, doc.to_string()).unwrap();
    }
    config.conferences.seed = seed;
    config
}

/// `pairs` RTP port pairs on 127.0.0.1 that are free now, below the kernel's ephemeral
/// ports and the range of [`server_config`], so nothing else takes them meanwhile.
pub fn free_port_range(pairs: u16) -> std::ops::RangeInclusive<u16> {
    assert!(pairs <= 50);
    for _ in 0..50 {
        let base = 30000 + 2 * (unique() % 400) as u16;
        let range = base..=base + 2 * pairs - 1;
        let all_free = range
            .clone()
            .map(|p| std::net::UdpSocket::bind(("127.0.0.1", p)))
            .collect::<Result<Vec<_>, _>>()
            .is_ok();
        if all_free {
            return range;
        }
    }
    panic!("no {pairs} free port pairs below 31000");
}

/// The server's `/metrics` at `api`, read once.
pub struct Metrics(String);

impl Metrics {
    pub async fn read(api: std::net::SocketAddr) -> Metrics {
        let text = reqwest::get(format!("http://{api}/metrics")).await.unwrap();
        Metrics(text.text().await.unwrap())
    }

    /// The value of the sample `name` (with its labels, if any).
    pub fn value(&self, name: &str) -> f64 {
        let prefix = format!("{name} ");
        (self.0.lines())
            .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{}", self.0))
    }
}
