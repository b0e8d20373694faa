//! The real `chorus` binary in a child process, for tests that watch it from outside: its
//! memory and descriptors in /proc, and what it logs.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ServerProcess {
    child: Child,
    pub sip: SocketAddr,
    dir: PathBuf,
}

/// What to put in the server's config besides the listen addresses, store and prompts.
#[derive(Default)]
pub struct ServerSetup<'a> {
    /// Keys of the `[sip]` table, one per line.
    pub sip_keys: &'a str,
    /// Further tables (`[sip.limits]` ...).
    pub tables: &'a str,
    /// The RTP port range, distinct for each server a test binary runs at once.
    pub rtp_ports: &'a str,
    /// Runs on the command before it starts (e.g. to lower its descriptor limit).
    pub command: Option<fn(&mut Command)>,
}

impl ServerProcess {
    /// Starts the server and waits until it answers OPTIONS over UDP.
    pub fn start(setup: ServerSetup<'_>) -> ServerProcess {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::temp_dir().join(format!("chorus-proc-{}", super::unique_token()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // Port 0: a port picked here could be taken by a parallel test before the child binds.
        let config = format!(
            "data_dir = {data:?}\n\
             [sip]\nlisten = \"127.0.0.1:0\"\n{sip_keys}\n\
             [rtp]\nports = \"{rtp}\"\n\
             [conferences]\nseed = {seed:?}\nprompts = {prompts:?}\n\
             [api]\nlisten = \"127.0.0.1:0\"\n\
             {tables}\n",
            data = dir.join("data"),
            sip_keys = setup.sip_keys,
            rtp = setup.rtp_ports,
            seed = root.join("config/seed"),
            prompts = root.join("config/prompts"),
            tables = setup.tables,
        );
        let config_path = dir.join("chorus.toml");
        std::fs::write(&config_path, config).expect("config written");
        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_chorus"));
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(edit) = setup.command {
            edit(&mut command);
        }
        let child = command.spawn().expect("chorus starts");
        let mut server = ServerProcess {
            child,
            sip: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        server.sip = server.bound_sip();
        server.wait_ready();
        server
    }

    /// The SIP address the child logged once it had started everything.
    fn bound_sip(&self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let bound = self.log().lines().find_map(|line| {
                let (_, rest) = line.split_once("chorus serving")?;
                rest.split_whitespace()
                    .find_map(|field| field.strip_prefix("sip=")?.parse().ok())
            });
            if let Some(sip) = bound {
                return sip;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("chorus did not log its SIP address:\n{}", self.log());
    }

    fn wait_ready(&self) {
        let probe = UdpSocket::bind("127.0.0.1:0").expect("probe socket");
        probe
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let local = probe.local_addr().expect("local");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            let options = format!(
                "OPTIONS sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n\
                 From: <sip:probe@{local}>;tag=p\r\nTo: <sip:{sip}>\r\nCall-ID: {id}\r\n\
                 CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                sip = self.sip,
                branch = super::branch(),
                id = super::unique_token(),
            );
            let _ = probe.send_to(options.as_bytes(), self.sip);
            if let Ok(n) = probe.recv(&mut buf)
                && buf[..n].starts_with(b"SIP/2.0 200")
            {
                return;
            }
        }
        panic!("chorus did not answer OPTIONS:\n{}", self.log());
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS")
    }

    /// Resident anonymous memory (the heap and stacks, not the binary's pages), in KiB.
    pub fn anon_kib(&self) -> u64 {
        self.status_kib("RssAnon")
    }

    /// A `kB` field of /proc/<pid>/status.
    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the server is running");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"))
    }

    /// Open file descriptors.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("the server is running")
            .count()
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
