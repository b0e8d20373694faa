//! The Kazoo/FreeSWITCH conference profile (spec §3.2): the settings a
//! conference is created with, validated key by key.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Conference rates FreeSWITCH accepts; members may use any of them too.
pub const RATES: [u32; 7] = [8000, 12000, 16000, 24000, 32000, 44100, 48000];
/// Highest accepted `energy-level`.
pub const MAX_ENERGY_LEVEL: u32 = 1800;
/// Highest accepted `comfort-noise` divisor.
pub const MAX_COMFORT_NOISE: u32 = 10000;

/// A rejected profile value: which key, what it was, what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    pub key: String,
    pub value: String,
    pub allowed: &'static str,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid conference profile value {:?} for `{}`: allowed {}",
            self.value, self.key, self.allowed
        )
    }
}

impl std::error::Error for ProfileError {}

/// The `*-sound` keys: prompt names, URLs or `tone_stream://` strings, kept
/// verbatim for the server's sound opener.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sounds {
    max_members: Option<String>,
    pub locked: Option<String>,
    pub alone: Option<String>,
    pub moh: Option<String>,
    pub enter: Option<String>,
    pub exit: Option<String>,
    pub muted: Option<String>,
    pub unmuted: Option<String>,
    pub deaf: Option<String>,
    pub undeaf: Option<String>,
    pub member_enter: Option<String>,
}

impl Sounds {
    fn slot(&mut self, key: &str) -> Option<&mut Option<String>> {
        Some(match key {
            "max-members-sound" => &mut self.max_members,
            "locked-sound" => &mut self.locked,
            "alone-sound" => &mut self.alone,
            "moh-sound" => &mut self.moh,
            "enter-sound" => &mut self.enter,
            "exit-sound" => &mut self.exit,
            "muted-sound" => &mut self.muted,
            "unmuted-sound" => &mut self.unmuted,
            "deaf-sound" => &mut self.deaf,
            "undeaf-sound" => &mut self.undeaf,
            "member-enter-sound" => &mut self.member_enter,
            _ => return None,
        })
    }
}

/// A validated conference profile. Build it with [`Profile::default`] (Kazoo's
/// built-in `default`) or [`Profile::page`], then [`Profile::set`] each key;
/// fields are private so every value has passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Highest mixing rate in Hz, one of [`RATES`]: the conference mixes at
    /// its members' highest rate up to this, and playback runs at it.
    rate: u32,
    /// Frame length in ms: 10..=120 in steps of 10.
    interval_ms: u32,
    /// Talk gate threshold on mean |x| per frame; 0 disables the gate.
    energy_level: u32,
    /// Comfort-noise divisor (FreeSWITCH meaning: higher is quieter); 0 is off.
    comfort_noise: u32,
    /// Member limit (>= 2); `None` is unlimited.
    max_members: Option<u32>,
    /// Channels the profile asks for (1 or 2). The mixer mixes mono for now.
    channels: u8,
    /// Announce the member count when it is >= this (> 1).
    announce_count: Option<u32>,
    sounds: Sounds,
    caller_controls: String,
    moderator_controls: String,
    /// Keys the engine passes through untouched (see [`PASSTHROUGH`]).
    passthrough: BTreeMap<String, String>,
}

/// Profile keys kept verbatim for the server (spec §3.2 "also passed through").
pub const PASSTHROUGH: [&str; 6] = [
    "conference-flags",
    "member-flags",
    "tts-engine",
    "tts-voice",
    "caller-id-name",
    "caller-id-number",
];

impl Default for Profile {
    fn default() -> Self {
        Profile {
            rate: 48000,
            interval_ms: 20,
            energy_level: 20,
            comfort_noise: 1000,
            max_members: None,
            channels: 2,
            announce_count: None,
            sounds: Sounds::default(),
            caller_controls: "default".into(),
            moderator_controls: "default".into(),
            passthrough: BTreeMap::new(),
        }
    }
}

impl Profile {
    /// Kazoo's `page` profile: 8 kHz, paging controls, silent enter/exit/MOH.
    pub fn page() -> Self {
        let silent = Some("silence_stream://1".to_string());
        Profile {
            rate: 8000,
            caller_controls: "paging".into(),
            sounds: Sounds {
                enter: silent.clone(),
                exit: silent.clone(),
                moh: silent,
                ..Sounds::default()
            },
            ..Profile::default()
        }
    }

    /// Applies `key = value`, rejecting unknown keys and out-of-range values.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ProfileError> {
        let err = |allowed| ProfileError {
            key: key.to_string(),
            value: value.to_string(),
            allowed,
        };
        let num = |allowed| value.trim().parse::<u32>().map_err(|_| err(allowed));
        match key {
            "rate" => {
                const A: &str = "8000, 12000, 16000, 24000, 32000, 44100 or 48000";
                self.rate = Some(num(A)?).filter(|r| RATES.contains(r)).ok_or(err(A))?;
            }
            "interval" => {
                const A: &str = "10 to 120 in steps of 10";
                let v = num(A)?;
                self.interval_ms = Some(v)
                    .filter(|v| (10..=120).contains(v) && v % 10 == 0)
                    .ok_or(err(A))?;
            }
            "energy-level" => {
                const A: &str = "0 to 1800";
                self.energy_level = check_energy_level(num(A)?).ok_or(err(A))?;
            }
            "comfort-noise" => {
                const A: &str = "0 (off) to 10000";
                self.comfort_noise = Some(num(A)?)
                    .filter(|v| *v <= MAX_COMFORT_NOISE)
                    .ok_or(err(A))?;
            }
            "max-members" => {
                const A: &str = "an integer >= 2";
                self.max_members = Some(Some(num(A)?).filter(|v| *v >= 2).ok_or(err(A))?);
            }
            "channels" => {
                const A: &str = "1 or 2";
                self.channels = match num(A)? {
                    1 => 1,
                    2 => 2,
                    _ => return Err(err(A)),
                };
            }
            "announce-count" => {
                const A: &str = "an integer >= 2";
                self.announce_count = Some(Some(num(A)?).filter(|v| *v >= 2).ok_or(err(A))?);
            }
            "caller-controls" => self.caller_controls = value.to_string(),
            "moderator-controls" => self.moderator_controls = value.to_string(),
            k if PASSTHROUGH.contains(&k) => {
                self.passthrough.insert(k.to_string(), value.to_string());
            }
            _ => match self.sounds.slot(key) {
                Some(slot) => *slot = Some(value.to_string()),
                None => return Err(err("a profile key of spec §3.2")),
            },
        }
        Ok(())
    }

    /// A profile from `default` plus `pairs`, stopping at the first bad pair.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ProfileError> {
        let mut p = Profile::default();
        for (k, v) in pairs {
            p.set(k, v)?;
        }
        Ok(p)
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn interval_ms(&self) -> u32 {
        self.interval_ms
    }

    pub fn energy_level(&self) -> u32 {
        self.energy_level
    }

    pub fn comfort_noise(&self) -> u32 {
        self.comfort_noise
    }

    pub fn max_members(&self) -> Option<u32> {
        self.max_members
    }

    pub fn channels(&self) -> u8 {
        self.channels
    }

    pub fn announce_count(&self) -> Option<u32> {
        self.announce_count
    }

    pub fn sounds(&self) -> &Sounds {
        &self.sounds
    }

    pub fn caller_controls(&self) -> &str {
        &self.caller_controls
    }

    pub fn moderator_controls(&self) -> &str {
        &self.moderator_controls
    }

    /// A passed-through key's value (`conference-flags`, `tts-voice`, ...).
    pub fn passthrough(&self, key: &str) -> Option<&str> {
        self.passthrough.get(key).map(String::as_str)
    }

    /// Samples per frame at `rate`.
    pub fn frame_len_at(&self, rate: u32) -> usize {
        (rate as u64 * self.interval_ms as u64 / 1000) as usize
    }

    /// Samples per frame at the profile rate (playback sources' frames).
    pub fn frame_len(&self) -> usize {
        self.frame_len_at(self.rate)
    }

    /// Time between ticks.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms as u64)
    }
}

/// `Some(level)` when `level` is a valid energy level.
pub fn check_energy_level(level: u32) -> Option<u32> {
    Some(level).filter(|l| *l <= MAX_ENERGY_LEVEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kazoos() {
        let p = Profile::default();
        assert_eq!(
            (
                p.rate(),
                p.interval_ms(),
                p.energy_level(),
                p.comfort_noise()
            ),
            (48000, 20, 20, 1000)
        );
        assert_eq!(p.frame_len(), 960);
        assert_eq!(Profile::page().rate(), 8000);
    }

    #[test]
    fn accepts_valid_values_and_sounds() {
        let p = Profile::from_pairs([
            ("rate", "44100"),
            ("interval", "10"),
            ("energy-level", "1800"),
            ("comfort-noise", "0"),
            ("max-members", "2"),
            ("moh-sound", "$${hold_music}"),
            ("conference-flags", "wait-mod"),
            ("moderator-controls", "moderator"),
        ])
        .unwrap();
        assert_eq!(p.frame_len(), 441);
        assert_eq!(p.max_members(), Some(2));
        assert_eq!(p.sounds().moh.as_deref(), Some("$${hold_music}"));
        assert_eq!(p.passthrough("conference-flags"), Some("wait-mod"));
        assert_eq!(
            (p.caller_controls(), p.moderator_controls()),
            ("default", "moderator")
        );
        assert_eq!(Profile::page().caller_controls(), "paging");
    }

    #[test]
    fn rejects_invalid_values_naming_key_value_and_allowed() {
        for (k, v) in [
            ("rate", "22050"),
            ("interval", "25"),
            ("interval", "130"),
            ("energy-level", "1801"),
            ("energy-level", "-1"),
            ("comfort-noise", "10001"),
            ("max-members", "1"),
            ("channels", "3"),
            ("announce-count", "x"),
            ("no-such-key", "1"),
        ] {
            let e = Profile::default().set(k, v).unwrap_err();
            assert_eq!((e.key.as_str(), e.value.as_str()), (k, v));
            let msg = e.to_string();
            assert!(
                msg.contains(k) && msg.contains(v) && msg.contains(e.allowed),
                "{msg}"
            );
        }
    }
}
