//! Server configuration: a TOML file with defaults for every key, plus command-line overrides.

use crate::media::codec::{CodecKind, CodecOptions, OPUS_RATES};
use crate::media::leg::{LatchLimits, LegLimits};
use crate::media::packet_io::IoMode;
use serde::Deserialize;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A Kazoo-style 32-hex account id for a single-tenant install.
pub const DEFAULT_ACCOUNT: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub sip: SipConfig,
    pub rtp: RtpConfig,
    pub media: MediaConfig,
    pub conferences: ConferencesConfig,
    pub api: crate::api::config::ApiConfig,
    pub sounds: crate::sounds::config::SoundsConfig,
    /// Recordings uploaded to HTTP(S) storage.
    pub storage: crate::storage::StorageConfig,
    /// `[cluster]`: one node of several behind a SIP proxy; absent for a single node.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// `[store]`: where documents live.
    pub store: StoreConfig,
    /// The SQLite store (unless `[store] url` names PostgreSQL) and recordings live here.
    pub data_dir: PathBuf,
}

/// `[store]`: the document store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://user:password@host:port/dbname`: PostgreSQL, shared by the nodes of a
    /// cluster. Empty (the default): SQLite in `data_dir`, for one node.
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    pub listen: SocketAddr,
    pub user_agent: String,
    /// RFC 3261 T1: retransmissions start at it; an unacknowledged 2xx is given up after 64*T1.
    pub timer_t1_ms: u64,
    pub limits: crate::sip::admission::Limits,
    pub acl: crate::sip::admission::Acl,
    pub tcp: crate::sip::connections::TcpLimits,
    /// The realm of dial-in digest challenges.
    pub auth_realm: String,
    /// Offered in this order. MD5 first by default: clients that read only the first
    /// challenge (SIPp, older phones) know only MD5; RFC 8760 clients take the first they know.
    pub auth_algorithms: Vec<crate::sip::digest::Algorithm>,
    /// With entries, a dial-in INVITE must authenticate as one of them.
    pub dial_in_auth: Vec<DialInUser>,
    pub registrar: RegistrarConfig,
    /// Name servers (`ip:port`) that locate dial-out targets named by DNS (RFC 3263 SRV,
    /// then A/AAAA); empty: the system's (`/etc/resolv.conf`).
    pub dns_servers: Vec<SocketAddr>,
}

/// `[sip.registrar]`: REGISTER from devices (their `sip` credentials, realm `auth_realm` for
/// devices without `sip.realm`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrarConfig {
    /// Off: REGISTER is answered 405.
    pub enabled: bool,
    pub default_expires: u32,
    pub min_expires: u32,
    pub max_expires: u32,
    pub max_bindings_per_device: usize,
    pub max_bindings: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        let c = crate::registrar::Config::default();
        RegistrarConfig {
            enabled: true,
            default_expires: c.default_expires,
            min_expires: c.min_expires,
            max_expires: c.max_expires,
            max_bindings_per_device: c.max_per_device,
            max_bindings: c.max_total,
        }
    }
}

/// `[[sip.dial_in_auth]]`: a username and password a caller may dial in with.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialInUser {
    /// The account whose dial-ins it opens: `conferences.account` (the one dial-in account).
    pub account: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for DialInUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DialInUser")
            .field("account", &self.account)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtpConfig {
    pub ports: PortRange,
    pub timeout_secs: u64,
    pub codecs: Vec<CodecName>,
    pub ptime_ms: u32,
    /// Opus encoder complexity, 0..=10 (README, "Figures": what each costs and sounds like).
    pub opus_complexity: i32,
    /// PCM rate of Opus legs: 8000, 12000, 16000, 24000 or 48000 (README, "Figures").
    pub opus_rate: u32,
    /// Strict RTP and DTMF bounds: see docs/security.md, "Media (RTP)".
    pub probation_packets: u32,
    pub relatch_after_secs: u64,
    pub send_before_peer_packets: u32,
    pub dtmf_queue_digits: usize,
    pub dtmf_digits_per_sec: u32,
}

impl RtpConfig {
    /// What each call's leg allows its peer.
    pub fn leg_limits(&self) -> LegLimits {
        LegLimits {
            latch: LatchLimits {
                probation: self.probation_packets,
                relatch_after: Duration::from_secs(self.relatch_after_secs),
                send_before_peer: self.send_before_peer_packets,
            },
            dtmf_queue: self.dtmf_queue_digits,
            dtmf_per_sec: self.dtmf_digits_per_sec,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Mixing threads; one per core unless set (a conference never spans two).
    pub workers: usize,
    /// Packet I/O of the workers: io_uring, epoll, or io_uring when the kernel allows it.
    /// `CHORUS_MEDIA_IO` overrides it.
    pub io: IoMode,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConferencesConfig {
    /// A dialed number no conference document has opens an ad-hoc conference of that name.
    pub adhoc: bool,
    /// The account SIP dial-ins belong to (and the seed documents are created in).
    pub account: String,
    /// Kazoo's account realms: a dial-in whose Request-URI host is a realm here belongs
    /// to its account (`"acme.example.com" = "<account id>"`); any other to `account`.
    pub realms: std::collections::BTreeMap<String, String>,
    /// Documents loaded into a new store (see config/seed/README.md).
    pub seed: PathBuf,
    /// Prompt sets, a folder per language.
    pub prompts: PathBuf,
    /// Dialing this asks for a conference number (Kazoo's service mode); empty: none.
    pub service_number: String,
}

/// A codec as written in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodecName {
    Opus,
    G722,
    Pcmu,
    Pcma,
}

impl From<CodecName> for CodecKind {
    fn from(c: CodecName) -> Self {
        match c {
            CodecName::Opus => CodecKind::Opus,
            CodecName::G722 => CodecKind::G722,
            CodecName::Pcmu => CodecKind::Pcmu,
            CodecName::Pcma => CodecKind::Pcma,
        }
    }
}

/// An inclusive UDP port range written `LO-HI`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRange(pub RangeInclusive<u16>);

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("port range {s:?}: expected LO-HI with 1024 <= LO < HI <= 65534");
        let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
        let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
        let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
        if lo < 1024 || hi <= lo || hi > 65534 {
            return Err(bad());
        }
        Ok(PortRange(lo..=hi))
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sip: SipConfig::default(),
            rtp: RtpConfig::default(),
            media: MediaConfig::default(),
            conferences: ConferencesConfig::default(),
            api: crate::api::config::ApiConfig::default(),
            sounds: crate::sounds::config::SoundsConfig::default(),
            storage: crate::storage::StorageConfig::default(),
            cluster: None,
            store: StoreConfig::default(),
            data_dir: PathBuf::from("data"),
        }
    }
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            user_agent: "Chorus".into(),
            timer_t1_ms: 500,
            limits: Default::default(),
            acl: Default::default(),
            tcp: Default::default(),
            auth_realm: "chorus".into(),
            auth_algorithms: vec![
                crate::sip::digest::Algorithm::Md5,
                crate::sip::digest::Algorithm::Sha256,
            ],
            dial_in_auth: Vec::new(),
            registrar: RegistrarConfig::default(),
            dns_servers: Vec::new(),
        }
    }
}

impl Default for RtpConfig {
    fn default() -> Self {
        let limits = LegLimits::default();
        RtpConfig {
            ports: PortRange(20000..=29999),
            timeout_secs: 30,
            codecs: vec![
                CodecName::Opus,
                CodecName::G722,
                CodecName::Pcmu,
                CodecName::Pcma,
            ],
            ptime_ms: 20,
            opus_complexity: CodecOptions::default().opus_complexity,
            opus_rate: CodecOptions::default().opus_rate,
            probation_packets: limits.latch.probation,
            relatch_after_secs: limits.latch.relatch_after.as_secs(),
            send_before_peer_packets: limits.latch.send_before_peer,
            dtmf_queue_digits: limits.dtmf_queue,
            dtmf_digits_per_sec: limits.dtmf_per_sec,
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            io: IoMode::Auto,
        }
    }
}

impl Default for ConferencesConfig {
    fn default() -> Self {
        ConferencesConfig {
            adhoc: true,
            account: DEFAULT_ACCOUNT.into(),
            realms: Default::default(),
            seed: PathBuf::from("config/seed"),
            prompts: PathBuf::from("config/prompts"),
            service_number: "1999".into(),
        }
    }
}

impl Config {
    /// Reads and checks a config file; errors name the file and the bad key.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let config: Config =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        config.check()?;
        Ok(config)
    }

    /// Rejects values that parse but cannot work.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.rtp.codecs.is_empty() {
            anyhow::bail!("rtp.codecs: at least one codec is required");
        }
        if !(10..=60).contains(&self.rtp.ptime_ms) || !self.rtp.ptime_ms.is_multiple_of(10) {
            anyhow::bail!(
                "rtp.ptime_ms = {}: allowed 10, 20, ... 60",
                self.rtp.ptime_ms
            );
        }
        if !OPUS_RATES.contains(&self.rtp.opus_rate) {
            anyhow::bail!(
                "rtp.opus_rate = {}: allowed {OPUS_RATES:?}",
                self.rtp.opus_rate
            );
        }
        let rtp = &self.rtp;
        for (key, value) in [
            ("rtp.probation_packets", u64::from(rtp.probation_packets)),
            ("rtp.relatch_after_secs", rtp.relatch_after_secs),
            ("rtp.dtmf_queue_digits", rtp.dtmf_queue_digits as u64),
            (
                "rtp.dtmf_digits_per_sec",
                u64::from(rtp.dtmf_digits_per_sec),
            ),
        ] {
            if value == 0 {
                anyhow::bail!("{key} = 0: at least 1 is required");
            }
        }
        if self.media.workers == 0 {
            anyhow::bail!("media.workers = 0: at least 1 is required");
        }
        let realms = self.conferences.realms.values();
        let accounts = std::iter::once(("conferences.account", &self.conferences.account))
            .chain(realms.map(|a| ("conferences.realms", a)))
            .chain(
                self.api
                    .tokens
                    .iter()
                    .map(|t| ("api.tokens.account_id", &t.account_id)),
            );
        for (key, a) in accounts {
            // Account ids name folders (recordings, recorded names).
            if a.is_empty() || !a.bytes().all(|b| b.is_ascii_alphanumeric()) {
                anyhow::bail!("{key} = {a:?}: letters and digits only");
            }
        }
        if let Some(cluster) = &self.cluster {
            cluster.check()?;
        }
        self.check_sip()
    }

    fn check_sip(&self) -> anyhow::Result<()> {
        let sip = &self.sip;
        if !(50..=4000).contains(&sip.timer_t1_ms) {
            anyhow::bail!("sip.timer_t1_ms = {}: allowed 50..=4000", sip.timer_t1_ms);
        }
        if sip.tcp.header_timeout_secs == 0 || sip.tcp.idle_timeout_secs == 0 {
            anyhow::bail!("sip.tcp: header_timeout_secs and idle_timeout_secs must be at least 1");
        }
        if !sip.dial_in_auth.is_empty() && sip.auth_algorithms.is_empty() {
            anyhow::bail!("sip.auth_algorithms: at least one is required with sip.dial_in_auth");
        }
        for (i, u) in sip.dial_in_auth.iter().enumerate() {
            let mut realms = self.conferences.realms.values();
            if u.account != self.conferences.account && !realms.any(|a| *a == u.account) {
                anyhow::bail!(
                    "sip.dial_in_auth[{i}].account = {:?}: dial-ins belong to conferences.account = {:?} or a realm's account",
                    u.account,
                    self.conferences.account
                );
            }
            if u.username.is_empty() || u.password.is_empty() {
                anyhow::bail!("sip.dial_in_auth[{i}]: username and password must not be empty");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/chorus.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.sip.listen, "127.0.0.1:5060".parse().unwrap());
        assert!(c.conferences.adhoc);
        assert_eq!(c.conferences.account, DEFAULT_ACCOUNT);
        let defaults = SipConfig::default();
        assert_eq!(
            c.sip.limits, defaults.limits,
            "the shipped file shows the defaults"
        );
        assert_eq!(c.sip.tcp, defaults.tcp);
        assert_eq!(c.sip.acl, defaults.acl);
        assert_eq!(c.sip.auth_algorithms, defaults.auth_algorithms);
        assert_eq!(c.sip.timer_t1_ms, defaults.timer_t1_ms);
        assert_eq!(c.rtp.leg_limits(), LegLimits::default());
        let codec = CodecOptions::default();
        assert_eq!(
            (c.rtp.opus_complexity, c.rtp.opus_rate),
            (codec.opus_complexity, codec.opus_rate)
        );
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(c.media.workers, cores, "one media worker per core");
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = toml::from_str::<Config>("[rtp]\nports = \"30000-20000\"").unwrap_err();
        assert!(e.to_string().contains("port range"), "{e}");
        let e = toml::from_str::<Config>("[sip]\nlisten = 5").unwrap_err();
        assert!(e.to_string().contains("listen"), "{e}");
        let c: Config = toml::from_str("[rtp]\nptime_ms = 25").unwrap();
        assert!(c.check().unwrap_err().to_string().contains("rtp.ptime_ms"));
        let c: Config = toml::from_str("[rtp]\nopus_rate = 44100").unwrap();
        assert!(c.check().unwrap_err().to_string().contains("rtp.opus_rate"));
        let c: Config = toml::from_str(
            "[[sip.dial_in_auth]]\naccount = \"other\"\nusername = \"u\"\npassword = \"p\"",
        )
        .unwrap();
        assert!(
            c.check()
                .unwrap_err()
                .to_string()
                .contains("sip.dial_in_auth[0].account")
        );
        let e =
            toml::from_str::<Config>("[sip.limits]\ninvite_per_source = { rate = 5 }").unwrap_err();
        assert!(e.to_string().contains("burst"), "{e}");
        let e = toml::from_str::<Config>("[sip.acl]\ndeny = [\"10.0.0.0/33\"]").unwrap_err();
        assert!(e.to_string().contains("deny"), "{e}");
        let c: Config = toml::from_str("[rtp]\nprobation_packets = 0").unwrap();
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("rtp.probation_packets"), "{e}");
        let c: Config =
            toml::from_str("[cluster]\nnode = \"a b\"\nredis = \"redis://127.0.0.1/\"").unwrap();
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("cluster.node"), "{e}");
        let c: Config = toml::from_str("[cluster]\nnode = \"n1\"\nredis = \"nope://x\"").unwrap();
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("cluster.redis"), "{e}");
        let c: Config = toml::from_str("[conferences]\naccount = \"a/b\"").unwrap();
        assert!(
            c.check()
                .unwrap_err()
                .to_string()
                .contains("conferences.account")
        );
        let c: Config = toml::from_str(
            "[conferences.realms]
\"a.example\" = \"../x\"",
        )
        .unwrap();
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("conferences.realms"), "{e}");
    }
}
