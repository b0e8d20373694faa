//! The registrar (RFC 3261 §10), sans-IO: a REGISTER is authenticated by digest against the
//! credentials of the device its address-of-record names, then its contacts are bound to the
//! device until they expire.
//!
//! The SIP layer parses a REGISTER into a [`Register`], the shell looks the device up in the
//! store ([`crate::store::Store::find_documents`] on `sip.username`) and hands both to
//! [`Registrar::register`] with the time; the answer is a [`Reply`]. Changed bindings come out
//! of [`Registrar::poll_change`] for the shell to store, so a restart [`Registrar::restore`]s
//! them until they expire; [`Registrar::poll_timeout`] says when the next one does. A change
//! names the bindings dropped, not only those left, so that nodes sharing a store update
//! one device's contacts without undoing each other's ([`binding::merge`]).
//!
//! Unknown devices, wrong passwords and credentials for another device get 401/403 and never
//! a binding. Bindings are bounded per device and in all (503 past either).

mod binding;
pub mod shell;

pub use binding::{Binding, merge as merge_bindings};

use crate::sip::digest::{Algorithm, Digest, Outcome};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone)]
pub struct Config {
    /// The realm of devices without `sip.realm`, and of challenges to unknown users.
    pub realm: String,
    /// Challenge algorithms, preferred first.
    pub algorithms: Vec<Algorithm>,
    /// Expiry when the REGISTER asks none, the shortest accepted (423 below) and the longest
    /// granted (longer requests are shortened).
    pub default_expires: u32,
    pub min_expires: u32,
    pub max_expires: u32,
    /// Contacts one device may bind, and bindings in all.
    pub max_per_device: usize,
    pub max_total: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            realm: "chorus".into(),
            algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
            default_expires: 3600,
            min_expires: 60,
            max_expires: 7200,
            max_per_device: 10,
            max_total: 100_000,
        }
    }
}

/// The device an address-of-record names, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub device: DeviceRef,
    pub username: String,
    pub password: String,
    /// `sip.realm`; `None` is [`Config::realm`].
    pub realm: Option<String>,
}

/// A device of an account: whose bindings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceRef {
    pub account: String,
    pub id: String,
}

/// A REGISTER as the SIP layer parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register<'a> {
    pub call_id: &'a str,
    pub cseq: u32,
    /// The `Expires` header.
    pub expires: Option<u32>,
    pub contacts: Contacts,
    /// The `Authorization` header values.
    pub authorizations: Vec<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// No Contact: a query for the current bindings.
    Query,
    /// `Contact: *` (valid only with `Expires: 0`): remove every binding.
    All,
    /// Contact URIs and their `expires` parameters.
    List(Vec<(String, Option<u32>)>),
}

/// The response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn new(status: u16, reason: &'static str) -> Self {
        Self {
            status,
            reason,
            headers: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

pub struct Registrar {
    config: Config,
    digest: Digest,
    bindings: BTreeMap<DeviceRef, Vec<Binding>>,
    /// Devices whose bindings changed since they were last polled.
    changed: VecDeque<DeviceRef>,
    /// The bindings each changed device lost since it was last polled.
    dropped: BTreeMap<DeviceRef, Vec<Binding>>,
}

impl Registrar {
    /// `secret` keys the nonces (a restart invalidates them: phones are challenged again).
    pub fn new(config: Config, secret: [u8; 32]) -> Self {
        let digest = Digest::new(&config.realm, config.algorithms.clone(), [], secret);
        Self {
            config,
            digest,
            bindings: BTreeMap::new(),
            changed: VecDeque::new(),
            dropped: BTreeMap::new(),
        }
    }

    /// Loads a device's stored bindings, dropping the expired and those over the bounds.
    pub fn restore(&mut self, wall: SystemTime, device: DeviceRef, mut bindings: Vec<Binding>) {
        bindings.retain(|b| b.expires_at > wall);
        let room = self.config.max_total.saturating_sub(self.total());
        bindings.truncate(self.config.max_per_device.min(room));
        if !bindings.is_empty() {
            self.bindings.insert(device, bindings);
        }
    }

    /// Answers a REGISTER for `device` (`None`: no device has the address-of-record's
    /// username). `now` dates nonces, `wall` bindings.
    pub fn register(
        &mut self,
        now: Instant,
        wall: SystemTime,
        request: &Register,
        device: Option<&Credentials>,
    ) -> Reply {
        let realm = device
            .and_then(|d| d.realm.clone())
            .unwrap_or_else(|| self.config.realm.clone());
        let password = |user: &str| {
            device
                .filter(|d| d.username == user)
                .map(|d| d.password.as_str())
        };
        let outcome = self.digest.check_in(
            &realm,
            password,
            now,
            "REGISTER",
            request.authorizations.iter().copied(),
        );
        match (outcome, device) {
            (Outcome::Authorized { .. }, Some(device)) => self.bind(wall, request, &device.device),
            (Outcome::Challenge { stale }, _) => {
                let challenges = self.digest.challenges_in(&realm, now, stale);
                let reply = Reply::new(401, "Unauthorized");
                challenges
                    .into_iter()
                    .fold(reply, |r, c| r.with("WWW-Authenticate", c))
            }
            _ => Reply::new(403, "Forbidden"),
        }
    }

    /// The device's live bindings, newest first (what dialing it rings).
    pub fn contacts(&self, wall: SystemTime, device: &DeviceRef) -> Vec<&Binding> {
        let all = self.bindings.get(device).into_iter().flatten();
        let mut live: Vec<&Binding> = all.filter(|b| b.expires_at > wall).collect();
        live.reverse();
        live
    }

    /// When the next binding expires.
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        self.bindings.values().flatten().map(|b| b.expires_at).min()
    }

    /// Drops the bindings expired by `wall`.
    pub fn handle_timeout(&mut self, wall: SystemTime) {
        let expired: Vec<DeviceRef> = self
            .bindings
            .iter()
            .filter(|(_, bs)| bs.iter().any(|b| b.expires_at <= wall))
            .map(|(d, _)| d.clone())
            .collect();
        for device in expired {
            self.update(&device, |bs| bs.retain(|b| b.expires_at > wall));
        }
    }

    /// A device whose bindings changed, its bindings now (empty: none left) and those it
    /// lost since the last poll (expired, unregistered or replaced).
    pub fn poll_change(&mut self) -> Option<(DeviceRef, Vec<Binding>, Vec<Binding>)> {
        let device = self.changed.pop_front()?;
        let bindings = self.bindings.get(&device).cloned().unwrap_or_default();
        let dropped = self.dropped.remove(&device).unwrap_or_default();
        Some((device, bindings, dropped))
    }

    fn total(&self) -> usize {
        self.bindings.values().map(Vec::len).sum()
    }

    /// An authenticated REGISTER: RFC 3261 §10.3 steps 5 to 8.
    fn bind(&mut self, wall: SystemTime, request: &Register, device: &DeviceRef) -> Reply {
        let contacts = match &request.contacts {
            Contacts::Query => return self.ok(wall, device),
            Contacts::All if request.expires == Some(0) => {
                self.update(device, Vec::clear);
                return self.ok(wall, device);
            }
            Contacts::All => return Reply::new(400, "Bad Request"),
            Contacts::List(list) => list,
        };
        let mut wanted = self.bindings.get(device).cloned().unwrap_or_default();
        for (uri, expires) in contacts {
            let asked = expires
                .or(request.expires)
                .unwrap_or(self.config.default_expires);
            if asked > 0 && asked < self.config.min_expires {
                let min = self.config.min_expires.to_string();
                return Reply::new(423, "Interval Too Brief").with("Min-Expires", min);
            }
            let existing = wanted.iter().position(|b| b.same_contact(uri));
            if let Some(i) = existing {
                // An older or repeated request of the same registration changes nothing.
                if wanted[i].call_id == request.call_id && wanted[i].cseq >= request.cseq {
                    continue;
                }
                wanted.remove(i);
            }
            if asked > 0 {
                let granted = asked.min(self.config.max_expires);
                let expires_at = wall + Duration::from_secs(u64::from(granted));
                let call_id = request.call_id.to_owned();
                wanted.push(Binding::new(uri, expires_at, call_id, request.cseq));
            }
        }
        wanted.retain(|b| b.expires_at > wall);
        let others = self.total() - self.bindings.get(device).map_or(0, Vec::len);
        if wanted.len() > self.config.max_per_device
            || others + wanted.len() > self.config.max_total
        {
            return Reply::new(503, "Too Many Registered Contacts");
        }
        self.update(device, |bs| *bs = wanted);
        self.ok(wall, device)
    }

    /// Changes a device's bindings and queues the change for the store.
    fn update(&mut self, device: &DeviceRef, change: impl FnOnce(&mut Vec<Binding>)) {
        let mut bindings = self.bindings.remove(device).unwrap_or_default();
        let before = bindings.clone();
        change(&mut bindings);
        let lost = before.into_iter().filter(|b| !bindings.contains(b));
        self.dropped.entry(device.clone()).or_default().extend(lost);
        if !bindings.is_empty() {
            self.bindings.insert(device.clone(), bindings);
        }
        if !self.changed.contains(device) {
            self.changed.push_back(device.clone());
        }
    }

    /// 200 listing every binding with its remaining seconds.
    fn ok(&self, wall: SystemTime, device: &DeviceRef) -> Reply {
        let reply = Reply::new(200, "OK");
        self.contacts(wall, device).into_iter().fold(reply, |r, b| {
            let left = b.expires_at.duration_since(wall).unwrap_or_default();
            r.with(
                "Contact",
                format!("<{}>;expires={}", b.contact, left.as_secs()),
            )
        })
    }
}

#[cfg(test)]
mod tests;
