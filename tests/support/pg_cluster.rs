//! A throwaway PostgreSQL cluster: `initdb` in a temp dir, `pg_ctl` on a free loopback
//! port (trust auth, no fsync), stopped and removed on drop. `scripts/install-deps --test`
//! installs the Debian `postgresql` package; without it [`Cluster::start`] says why and
//! answers `None`, and the caller skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

/// The newest `/usr/lib/postgresql/N/bin` holding `initdb`.
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}

impl Cluster {
    /// A new cluster, running; `None` (with the reason on stderr) when PostgreSQL is not
    /// installed or does not start.
    pub fn start() -> Option<Cluster> {
        let Some(bin) = bin_dir() else {
            eprintln!(
                "SKIP: PostgreSQL is not installed (bash scripts/install-deps --test installs it)"
            );
            return None;
        };
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("chorus-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cluster = Cluster {
            dir,
            bin,
            port: free_port(),
        };
        let data = cluster.dir.display().to_string();
        let made = cluster.run("mkdir", &["-p", &data])
            && cluster.run(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-U",
                    "chorus",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            )
            && cluster.start_again();
        if !made {
            eprintln!("SKIP: PostgreSQL did not start (see {data}/log)");
            return None;
        }
        Some(cluster)
    }

    /// `program` (from the PostgreSQL bin dir unless a system tool) as the `postgres` user
    /// when we are root (PostgreSQL refuses to run as root); whether it succeeded.
    fn run(&self, program: &str, args: &[&str]) -> bool {
        let path = match self.bin.join(program) {
            p if p.exists() => p,
            _ => PathBuf::from(program),
        };
        let mut cmd = if unsafe { libc::geteuid() } == 0 {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd.args(args).output();
        match out {
            Ok(o) if o.status.success() => true,
            Ok(o) => {
                eprintln!("{program}: {}", String::from_utf8_lossy(&o.stderr).trim());
                false
            }
            Err(e) => {
                eprintln!("{program}: {e}");
                false
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn data(&self) -> String {
        self.dir.display().to_string()
    }

    /// Starts the (stopped) cluster and waits until it accepts connections.
    pub fn start_again(&self) -> bool {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data()
        );
        let log = Path::new(&self.data()).join("log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-l", &log, "-o", &opts, "-w", "start"],
        )
    }

    /// Stops the cluster at once (open connections are cut).
    pub fn stop(&self) -> bool {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        )
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the cluster's processes: connections stay
    /// open and nothing answers, as behind a link that drops every packet.
    pub fn freeze(&self, frozen: bool) -> bool {
        let pid = std::fs::read_to_string(self.dir.join("postmaster.pid")).unwrap_or_default();
        let Some(pid) = pid.lines().next().filter(|p| p.parse::<u32>().is_ok()) else {
            return false;
        };
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let children = Command::new("pkill").args([signal, "-P", pid]).status();
        let postmaster = Command::new("kill").args([signal, pid]).status();
        children.is_ok() && postmaster.is_ok_and(|s| s.success())
    }

    /// The URL of a fresh, empty database.
    pub fn new_database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}", N.fetch_add(1, Ordering::Relaxed));
        let admin = self.url("postgres");
        // On a thread of its own: the client runs a runtime, which an async test's may not.
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut admin = postgres::Client::connect(&admin, postgres::NoTls)
                    .expect("connect to the test cluster");
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create database");
            })
            .join()
            .expect("create database")
        });
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://chorus@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
