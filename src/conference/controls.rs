//! Caller controls (spec §2): DTMF bindings by group, the action vocabulary,
//! and a sans-IO matcher turning timed digits into actions.
//!
//! The control plane feeds a member's digits to its [`DigitMatcher`] unless
//! the member has `dist-dtmf` (then digits go to the others instead).

use super::document::ConferenceDoc;
use super::settings::ConferencesConfig;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Digits of one binding must arrive within this of each other.
pub const INTER_DIGIT: Duration = Duration::from_millis(500);

/// Kazoo's `default` group: `(digits, action)`.
const DEFAULT_GROUP: [(&str, &str); 7] = [
    ("*1", "mute"),
    ("*2", "mute on"),
    ("*3", "mute off"),
    ("*4", "deaf"),
    ("*5", "deaf on"),
    ("*6", "deaf off"),
    ("#", "hangup"),
];

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

/// One DTMF binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub digits: String,
    pub action: Action,
}

/// The bindings of the group `name` (the doc's `caller_controls` or
/// `moderator_controls`), from the first source that has them: the doc's
/// `controls`, the account's then the system's `conferences.controls`, then
/// Kazoo's default group. `none` and `paging` have no bindings.
pub fn group(name: &str, doc: &ConferenceDoc, config: &ConferencesConfig) -> Vec<Binding> {
    if name == "none" || name == "paging" {
        return Vec::new();
    }
    let found = doc
        .controls()
        .and_then(|c| c.get(name))
        .or_else(|| config.controls(name));
    match found {
        Some(v) => parse_bindings(v),
        None => DEFAULT_GROUP
            .iter()
            .filter_map(|(d, a)| binding(d, a))
            .collect(),
    }
}

/// `[{"action", "digits"}]`; bad entries are skipped (the API validates docs; config files
/// may be hand-written).
fn parse_bindings(v: &Value) -> Vec<Binding> {
    let Some(list) = v.as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|b| {
            let action = b.get("action")?.as_str()?;
            let digits = b.get("digits")?.as_str()?;
            binding(digits, action)
        })
        .collect()
}

fn binding(digits: &str, action: &str) -> Option<Binding> {
    valid_digits(digits).then_some(())?;
    Some(Binding {
        digits: digits.to_string(),
        action: Action::parse(action)?,
    })
}

/// Matches a member's digits against its bindings. When one binding's digits
/// are a prefix of another's, the shorter fires once [`INTER_DIGIT`] passes
/// without a next digit ([`DigitMatcher::handle_timeout`]).
#[derive(Debug, Clone)]
pub struct DigitMatcher {
    bindings: Vec<Binding>,
    pending: String,
    last: Option<Instant>,
}

impl DigitMatcher {
    pub fn new(bindings: Vec<Binding>) -> Self {
        DigitMatcher {
            bindings,
            pending: String::new(),
            last: None,
        }
    }

    pub fn feed(&mut self, now: Instant, digit: char) -> Option<Action> {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) > INTER_DIGIT)
        {
            self.pending.clear();
        }
        self.last = Some(now);
        self.pending.push(digit);
        if !self.is_prefix() {
            // A stray digit may still start a binding on its own.
            self.pending = digit.to_string();
            if !self.is_prefix() {
                self.pending.clear();
                return None;
            }
        }
        if self.extends() {
            return None;
        }
        self.take_exact()
    }

    /// When to call [`DigitMatcher::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.last
            .filter(|_| !self.pending.is_empty())
            .map(|t| t + INTER_DIGIT)
    }

    /// Fires a complete binding left waiting for a longer one.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Action> {
        let due = self.poll_timeout().is_some_and(|t| now >= t);
        if !due {
            return None;
        }
        let action = self.take_exact();
        self.pending.clear();
        action
    }

    fn is_prefix(&self) -> bool {
        self.bindings
            .iter()
            .any(|b| b.digits.starts_with(&self.pending))
    }

    fn extends(&self) -> bool {
        self.bindings
            .iter()
            .any(|b| b.digits.len() > self.pending.len() && b.digits.starts_with(&self.pending))
    }

    fn take_exact(&mut self) -> Option<Action> {
        let action = self
            .bindings
            .iter()
            .find(|b| b.digits == self.pending)
            .map(|b| b.action.clone());
        if action.is_some() {
            self.pending.clear();
        }
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    fn ms(base: Instant, n: u64) -> Instant {
        base + Duration::from_millis(n)
    }

    fn default_matcher() -> DigitMatcher {
        let cfg = ConferencesConfig::default();
        DigitMatcher::new(group("default", &ConferenceDoc::default(), &cfg))
    }

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

    #[test]
    fn star_one_within_500ms_toggles_mute() {
        let t = Instant::now();
        let mut m = default_matcher();
        assert_eq!(m.feed(t, '*'), None);
        assert_eq!(m.feed(ms(t, 500), '1'), Some(Action::Mute(Toggle::Toggle)));
        assert_eq!(m.feed(ms(t, 600), '#'), Some(Action::Hangup));
    }

    #[test]
    fn stale_prefix_resets() {
        let t = Instant::now();
        let mut m = default_matcher();
        m.feed(t, '*');
        assert_eq!(m.feed(ms(t, 501), '1'), None);
        m.feed(ms(t, 600), '*');
        assert_eq!(m.feed(ms(t, 700), '5'), Some(Action::Deaf(Toggle::On)));
    }

    #[test]
    fn a_stray_digit_can_start_a_binding() {
        let t = Instant::now();
        let mut m = default_matcher();
        m.feed(t, '*');
        assert_eq!(m.feed(ms(t, 100), '9'), None);
        m.feed(ms(t, 200), '*');
        assert_eq!(m.feed(ms(t, 300), '*'), None);
        assert_eq!(m.feed(ms(t, 400), '3'), Some(Action::Mute(Toggle::Off)));
    }

    #[test]
    fn shorter_binding_fires_after_the_inter_digit_limit() {
        let t = Instant::now();
        let v = json!([{"action": "lock", "digits": "1"}, {"action": "hangup", "digits": "12"}]);
        let mut m = DigitMatcher::new(parse_bindings(&v));
        assert_eq!(m.feed(t, '1'), None);
        assert_eq!(m.poll_timeout(), Some(ms(t, 500)));
        assert_eq!(m.handle_timeout(ms(t, 499)), None);
        assert_eq!(m.handle_timeout(ms(t, 500)), Some(Action::Lock));
        assert_eq!(m.poll_timeout(), None);
        m.feed(ms(t, 1000), '1');
        assert_eq!(m.feed(ms(t, 1100), '2'), Some(Action::Hangup));
    }

    #[test]
    fn groups_come_from_doc_then_account_then_system_then_defaults() {
        let doc_group = json!({"controls": {"mine": [{"action": "lock", "digits": "9"}]}});
        let doc = ConferenceDoc::from_map(doc_group.as_object().cloned().unwrap_or_default());
        let sys = json!({"controls": {"mine": [{"action": "hangup", "digits": "0"}],
                                      "sys": [{"action": "vol talk up", "digits": "3"},
                                              {"action": "nonsense", "digits": "4"}]}});
        let acct = json!({"controls": {"acct": [{"action": "deaf mute", "digits": "7"}]}});
        let obj = |v: Value| v.as_object().cloned().unwrap_or_else(Map::new);
        let cfg = ConferencesConfig::new(obj(sys), obj(acct));
        assert_eq!(group("mine", &doc, &cfg)[0].action, Action::Lock);
        assert_eq!(group("acct", &doc, &cfg)[0].action, Action::DeafMute);
        let sys_group = group("sys", &doc, &cfg);
        assert_eq!(sys_group.len(), 1);
        assert_eq!(sys_group[0].action, Action::TalkVolume(Step::Up));
        assert_eq!(group("default", &doc, &cfg).len(), 7);
        assert!(group("none", &doc, &cfg).is_empty());
        assert!(group("paging", &doc, &cfg).is_empty());
    }
}
