//! Profile resolution (spec §3.2): which profile a conference runs with and the Kazoo
//! overlays. Sound values stay as written (prompt ids, tones, paths, URLs): they are
//! resolved once, when played (`crate::sounds`), in the conference's language.
//!
//! Decision: a profile found in the doc or config is layered over the built-in
//! of its name (`page`, else `default`), so omitting a key keeps Kazoo's
//! default sound instead of silencing it; set a `*-sound` to `""` for none.

use super::document::ConferenceDoc;
use super::profile_keys::{
    CONFERENCE_FLAGS, CONFERENCE_FLAGS_TEXT, MEMBER_FLAGS, MEMBER_FLAGS_TEXT, MIXER_KEYS,
    flag_list, scalar,
};
use super::settings::ConferencesConfig;
use super::vocabulary::{Role, ToneSetting};
use mixer::{Profile, ProfileError};
use serde_json::Value;
use std::collections::BTreeMap;

/// Built-in `default` sounds (§3.2); enter/exit come from the tone overlay.
const DEFAULT_SOUNDS: [(&str, &str); 9] = [
    ("locked-sound", "conf-max_participants"),
    ("alone-sound", "conf-alone"),
    ("moh-sound", "$${hold_music}"),
    ("muted-sound", "conf-muted"),
    ("unmuted-sound", "conf-unmuted"),
    ("deaf-sound", "conf-deaf"),
    ("undeaf-sound", "conf-undeaf"),
    ("member-enter-sound", "conf-joining_conference"),
    ("max-members-sound", "conf-max_participants"),
];

/// The profile a conference runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedProfile {
    /// The profile name looked up (`default` when unknown).
    pub name: String,
    pub language: String,
    /// Numbers and the sounds the mixer has slots for.
    pub mixer: Profile,
    /// Every `*-sound` key with a sound, as written (including
    /// `max-members-sound` and keys the mixer has no slot for).
    pub sounds: BTreeMap<String, String>,
    pub caller_controls: String,
    pub moderator_controls: String,
    /// `conference-flags` (`|`-separated), plus `wait-mod` when the doc waits
    /// for a moderator.
    pub conference_flags: Vec<String>,
    pub member_flags: Vec<String>,
    /// Keys passed through untouched (`tts-engine`, `caller-id-name`, ...).
    pub other: BTreeMap<String, String>,
}

/// Resolves the profile of `doc`: its inline `profile`, else the config
/// profile named `profile_name` (account, then system), else the built-in.
/// `account_language` is used when the doc has no `language` (else `en`).
pub fn resolve(
    doc: &ConferenceDoc,
    config: &ConferencesConfig,
    account_language: Option<&str>,
) -> Result<ResolvedProfile, ProfileError> {
    let mut p = layered(doc, config, account_language)?;
    overlay(&mut p, doc, config)?;
    let mut sounds = BTreeMap::new();
    for (key, value) in std::mem::take(&mut p.sounds) {
        if !value.is_empty() {
            // Sound keys only fail for want of a mixer slot: kept in `sounds`.
            p.mixer.set(&key, &value).ok();
            sounds.insert(key, value);
        }
    }
    Ok(ResolvedProfile { sounds, ..p })
}

/// The profile's own `enter-sound` or `exit-sound` (doc, config or built-in profile, §3.2
/// resolution), before the tone overlay: what a tone that is on plays instead of the
/// config's role tone. `Some("")` is a profile that silences it.
pub fn own_sound(doc: &ConferenceDoc, config: &ConferencesConfig, key: &str) -> Option<String> {
    layered(doc, config, None).ok()?.sounds.remove(key)
}

/// The profile before the Kazoo overlays: the built-in of its name, the found profile's
/// keys, the doc's control groups and `wait-mod`.
fn layered(
    doc: &ConferenceDoc,
    config: &ConferencesConfig,
    account_language: Option<&str>,
) -> Result<ResolvedProfile, ProfileError> {
    let language = doc
        .language()
        .or(account_language)
        .unwrap_or("en")
        .to_string();
    let requested = doc.profile_name().unwrap_or("default");
    let found = match doc.profile() {
        Some(p) => Some(p.clone()),
        None => config.profile(requested, &language),
    };
    let name = match (&found, requested) {
        (None, n) if n != "page" => "default",
        (_, n) => n,
    };
    let mut p = builtin(name);
    for (key, value) in found.iter().flatten() {
        p.apply(key, value)?;
    }
    if let Some(group) = doc.caller_controls() {
        p.caller_controls = group.to_string();
    }
    if let Some(group) = doc.moderator_controls() {
        p.moderator_controls = group.to_string();
    }
    if doc.wait_for_moderator() && !p.waits_for_moderator() {
        p.conference_flags.push("wait-mod".into());
    }
    Ok(ResolvedProfile {
        name: name.to_string(),
        language,
        ..p
    })
}

fn builtin(name: &str) -> ResolvedProfile {
    let (mixer, sounds, controls) = if name == "page" {
        let page = Profile::page();
        let s = page.sounds();
        let sounds = [
            ("enter-sound", &s.enter),
            ("exit-sound", &s.exit),
            ("moh-sound", &s.moh),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
        .collect();
        (page, sounds, "paging")
    } else {
        let sounds = DEFAULT_SOUNDS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (Profile::default(), sounds, "default")
    };
    ResolvedProfile {
        name: name.to_string(),
        language: String::new(),
        mixer,
        sounds,
        caller_controls: controls.to_string(),
        moderator_controls: controls.to_string(),
        conference_flags: Vec::new(),
        member_flags: Vec::new(),
        other: BTreeMap::new(),
    }
}

impl ResolvedProfile {
    /// The voice `tts://` media in the room speak in (`tts-voice`), if the profile names one.
    pub fn tts_voice(&self) -> Option<&str> {
        self.other.get("tts-voice").map(String::as_str)
    }

    /// `conference-flags` has `wait-mod` (the doc's `wait_for_moderator` adds it).
    pub fn waits_for_moderator(&self) -> bool {
        self.conference_flags.iter().any(|f| f == "wait-mod")
    }

    fn apply(&mut self, key: &str, value: &Value) -> Result<(), ProfileError> {
        let text = scalar(value).ok_or_else(|| ProfileError {
            key: key.to_string(),
            value: value.to_string(),
            allowed: "a string, number or boolean",
        })?;
        match key {
            k if k.ends_with("-sound") => {
                self.sounds.insert(k.to_string(), text);
            }
            "caller-controls" => self.caller_controls = text,
            "moderator-controls" => self.moderator_controls = text,
            "conference-flags" => {
                self.conference_flags =
                    known_flags(key, &text, &CONFERENCE_FLAGS, CONFERENCE_FLAGS_TEXT)?
            }
            "member-flags" => {
                self.member_flags = known_flags(key, &text, &MEMBER_FLAGS, MEMBER_FLAGS_TEXT)?
            }
            k if MIXER_KEYS.iter().any(|(m, _)| *m == k) => self.mixer.set(k, &text)?,
            k => {
                self.other.insert(k.to_string(), text);
            }
        }
        Ok(())
    }
}

/// The Kazoo overlays: member limit and its sound, entry/exit tones.
fn overlay(
    p: &mut ResolvedProfile,
    doc: &ConferenceDoc,
    config: &ConferencesConfig,
) -> Result<(), ProfileError> {
    let max = doc.max_participants();
    if max > 1 {
        p.mixer.set("max-members", &max.to_string())?;
    }
    // Decision: the doc's `max_members_media`, else the profile's own sound, else Kazoo's.
    let max_sound = p.sounds.entry("max-members-sound".into());
    match doc.max_members_media() {
        Some(media) => *max_sound.or_default() = media.to_string(),
        None => {
            max_sound.or_insert_with(|| "conf-max_participants".into());
        }
    }
    let tones = [
        (
            "enter-sound",
            doc.play_entry_tone(),
            config.entry_tone(Role::Member),
        ),
        (
            "exit-sound",
            doc.play_exit_tone(),
            config.exit_tone(Role::Member),
        ),
    ];
    for (key, setting, default) in tones {
        match setting {
            ToneSetting::Off => {
                p.sounds.remove(key);
            }
            ToneSetting::On => {
                p.sounds
                    .entry(key.to_string())
                    .or_insert_with(|| default.to_string());
            }
            ToneSetting::Custom(s) => {
                p.sounds.insert(key.to_string(), s);
            }
        }
    }
    Ok(())
}

/// The `|`-separated flags of `text`, or an error naming the first the engine lacks.
fn known_flags(
    key: &str,
    text: &str,
    known: &[&str],
    allowed: &'static str,
) -> Result<Vec<String>, ProfileError> {
    flag_list(text)
        .map(|f| match known.contains(&f) {
            true => Ok(f.to_string()),
            false => Err(ProfileError {
                key: key.to_string(),
                value: f.to_string(),
                allowed,
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::settings::{ENTRY_TONE, EXIT_TONE};
    use serde_json::{Map, json};

    fn doc(v: Value) -> ConferenceDoc {
        ConferenceDoc::from_map(v.as_object().cloned().unwrap_or_default())
    }

    fn run(d: Value, cfg: &ConferencesConfig) -> ResolvedProfile {
        resolve(&doc(d), cfg, None).unwrap()
    }

    #[test]
    fn builtin_default_with_tones_and_prompt_paths() {
        let p = run(json!({}), &ConferencesConfig::default());
        assert_eq!(p.name, "default");
        assert_eq!(p.mixer, {
            let mut m = Profile::default();
            for (k, v) in &p.sounds {
                m.set(k, v).ok();
            }
            m
        });
        assert_eq!(p.mixer.rate(), 48000);
        assert_eq!(p.sounds["enter-sound"], ENTRY_TONE);
        assert_eq!(p.sounds["exit-sound"], EXIT_TONE);
        assert_eq!(p.sounds["alone-sound"], "conf-alone");
        assert_eq!(p.sounds["moh-sound"], "$${hold_music}");
        assert_eq!(p.sounds["max-members-sound"], "conf-max_participants");
        assert_eq!(p.mixer.sounds().muted.as_deref(), Some("conf-muted"));
        for (key, prompt) in [
            ("unmuted-sound", "conf-unmuted"),
            ("deaf-sound", "conf-deaf"),
            ("undeaf-sound", "conf-undeaf"),
            ("locked-sound", "conf-max_participants"),
            ("member-enter-sound", "conf-joining_conference"),
        ] {
            assert_eq!(p.sounds[key], prompt, "{key}");
        }
        assert_eq!(p.mixer.max_members(), None);
        assert_eq!(
            (p.caller_controls.as_str(), p.moderator_controls.as_str()),
            ("default", "default")
        );
    }

    #[test]
    fn page_profile_is_silent_and_has_no_controls() {
        let p = run(
            json!({"profile_name": "page"}),
            &ConferencesConfig::default(),
        );
        assert_eq!(p.mixer.rate(), 8000);
        assert_eq!(p.caller_controls, "paging");
        assert_eq!(p.sounds["enter-sound"], "silence_stream://1");
        assert_eq!(p.sounds["moh-sound"], "silence_stream://1");
        assert!(!p.sounds.contains_key("alone-sound"));
    }

    #[test]
    fn unknown_name_falls_back_to_default() {
        let p = run(
            json!({"profile_name": "nope"}),
            &ConferencesConfig::default(),
        );
        assert_eq!((p.name.as_str(), p.mixer.rate()), ("default", 48000));
    }

    #[test]
    fn doc_profile_wins_over_config_and_layers_over_default() {
        let cfg = ConferencesConfig::new(
            json!({"profiles": {"big": {"rate": 8000}}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            Map::new(),
        );
        let p = run(json!({"profile_name": "big"}), &cfg);
        assert_eq!((p.name.as_str(), p.mixer.rate()), ("big", 8000));
        let p = run(
            json!({"profile_name": "big", "profile": {"rate": 16000, "alone-sound": "",
                   "conference-flags": "wait-mod", "tts-engine": "flite",
                   "caller-controls": "mine", "moderator-controls": "theirs"}}),
            &cfg,
        );
        assert_eq!(p.mixer.rate(), 16000);
        assert!(!p.sounds.contains_key("alone-sound"));
        assert_eq!(p.sounds["muted-sound"], "conf-muted");
        assert_eq!(p.conference_flags, ["wait-mod"]);
        assert_eq!(p.other["tts-engine"], "flite");
        assert_eq!(p.caller_controls, "mine");
        assert_eq!(p.moderator_controls, "theirs");
    }

    #[test]
    fn overlays_members_tones_language_and_controls() {
        let cfg = ConferencesConfig::new(
            json!({"entry_tone": "tone_stream://%(100,0,400)"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            Map::new(),
        );
        let p = run(
            json!({"max_participants": 5, "max_members_media": "full", "play_entry_tone": true,
                   "play_exit_tone": false, "language": "fr", "moderator_controls": "none",
                   "wait_for_moderator": true}),
            &cfg,
        );
        assert_eq!(p.mixer.max_members(), Some(5));
        assert_eq!(p.sounds["max-members-sound"], "full");
        assert_eq!(p.sounds["enter-sound"], "tone_stream://%(100,0,400)");
        assert!(!p.sounds.contains_key("exit-sound") && p.mixer.sounds().exit.is_none());
        assert_eq!(p.moderator_controls, "none");
        assert_eq!(p.conference_flags, ["wait-mod"]);
        let p = run(
            json!({"max_participants": 1, "play_entry_tone": "http://x/t.wav"}),
            &cfg,
        );
        assert_eq!(p.mixer.max_members(), None);
        assert_eq!(p.sounds["enter-sound"], "http://x/t.wav");
    }

    #[test]
    fn bad_config_values_are_errors_not_panics() {
        let cfg = ConferencesConfig::new(
            json!({"profiles": {"x": {"rate": 22050}, "y": {"rate": [1]}}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            Map::new(),
        );
        for name in ["x", "y"] {
            let e = resolve(&doc(json!({"profile_name": name})), &cfg, None).unwrap_err();
            assert_eq!(e.key, "rate");
        }
        let flags = doc(json!({"profile": {"member-flags": "mute|nomoh"}}));
        let e = resolve(&flags, &cfg, None).unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.value.as_str()),
            ("member-flags", "nomoh")
        );
    }
}
