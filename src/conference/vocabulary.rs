//! The conference vocabulary shared by documents, settings, profiles and
//! controls: roles, tone settings and caller-control actions. A leaf: it
//! imports nothing from its siblings, so they all depend on it one way.

use serde_json::Value;

/// A conference participant's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Member,
    Moderator,
}

impl Role {
    /// The document key of the role's settings.
    pub fn key(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Moderator => "moderator",
        }
    }
}

/// `play_entry_tone` / `play_exit_tone`: a bool, or a media id, URL or tone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToneSetting {
    On,
    Off,
    Custom(String),
}

impl ToneSetting {
    /// Absent or unreadable means on (§3.1 default true).
    pub fn from_json(v: Option<&Value>) -> ToneSetting {
        match v {
            Some(Value::Bool(false)) => ToneSetting::Off,
            Some(Value::String(s)) => ToneSetting::Custom(s.clone()),
            _ => ToneSetting::On,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toggle {
    Toggle,
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Up,
    /// `equ` for energy, `zero` for volumes.
    Reset,
    Down,
}

/// A caller-control action. Kazoo's `transfer`, `execute_application` and `event` need a
/// dialplan Chorus has not: they are refused (a validation error naming the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Mute(Toggle),
    Deaf(Toggle),
    DeafMute,
    Energy(Step),
    TalkVolume(Step),
    ListenVolume(Step),
    Lock,
    Hangup,
}

impl Action {
    /// The accepted action strings (for `enum` validation errors).
    pub const VOCABULARY: [&'static str; 18] = [
        "mute",
        "mute on",
        "mute off",
        "deaf",
        "deaf on",
        "deaf off",
        "deaf mute",
        "energy up",
        "energy equ",
        "energy dn",
        "vol talk up",
        "vol talk zero",
        "vol talk dn",
        "vol listen up",
        "vol listen zero",
        "vol listen dn",
        "lock",
        "hangup",
    ];

    /// Parses an action string; `None` if it is not in the vocabulary.
    pub fn parse(s: &str) -> Option<Action> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let step = |w: &str, reset: &str| match w {
            "up" => Some(Step::Up),
            "dn" => Some(Step::Down),
            w if w == reset => Some(Step::Reset),
            _ => None,
        };
        Some(match words.as_slice() {
            ["mute"] => Action::Mute(Toggle::Toggle),
            ["mute", "on"] => Action::Mute(Toggle::On),
            ["mute", "off"] => Action::Mute(Toggle::Off),
            ["deaf"] => Action::Deaf(Toggle::Toggle),
            ["deaf", "on"] => Action::Deaf(Toggle::On),
            ["deaf", "off"] => Action::Deaf(Toggle::Off),
            ["deaf", "mute"] => Action::DeafMute,
            ["energy", w] => Action::Energy(step(w, "equ")?),
            ["vol", "talk", w] => Action::TalkVolume(step(w, "zero")?),
            ["vol", "listen", w] => Action::ListenVolume(step(w, "zero")?),
            ["lock"] => Action::Lock,
            ["hangup"] => Action::Hangup,
            _ => return None,
        })
    }
}

/// Binding digits: 1 to 16 of `0-9 * #`.
pub fn valid_digits(d: &str) -> bool {
    (1..=16).contains(&d.len())
        && d.bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_whole_vocabulary() {
        assert_eq!(Action::parse("mute"), Some(Action::Mute(Toggle::Toggle)));
        assert_eq!(Action::parse("deaf  off"), Some(Action::Deaf(Toggle::Off)));
        assert_eq!(Action::parse("deaf mute"), Some(Action::DeafMute));
        assert_eq!(
            Action::parse("energy equ"),
            Some(Action::Energy(Step::Reset))
        );
        assert_eq!(
            Action::parse("vol talk zero"),
            Some(Action::TalkVolume(Step::Reset))
        );
        assert_eq!(
            Action::parse("vol listen dn"),
            Some(Action::ListenVolume(Step::Down))
        );
        for bad in [
            "",
            "mute maybe",
            "vol talk equ",
            "energy zero",
            "explode",
            "transfer 1000 XML",
            "execute_application",
            "event",
        ] {
            assert_eq!(Action::parse(bad), None, "{bad}");
        }
        for s in &Action::VOCABULARY {
            assert!(Action::parse(s).is_some(), "{s}");
        }
    }
}
