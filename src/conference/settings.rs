//! The `conferences` config category (spec §3.2): the account's document over
//! the system's, each key falling back to the documented default.

use super::vocabulary::Role;
use serde_json::{Map, Value};
use std::sync::Arc;

/// §1 step 12 default entry tone (members and moderators).
pub const ENTRY_TONE: &str =
    "tone_stream://v=-7;>=2;+=.1;%(300,0,523,659);v=-7;>=3;+=.1;%(800,0,659,783)";
/// §1 step 12 default exit tone (members and moderators).
pub const EXIT_TONE: &str =
    "tone_stream://v=-7;>=2;+=.1;%(300,0,523,440);v=-7;>=3;+=.1;%(800,0,349,440)";
/// Default PIN / conference-number first-digit timeout.
pub const DIGIT_TIMEOUT_MS: u64 = 5000;

/// The system and account `conferences` config documents: read-only and shared, since
/// every call of an account holds the same ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConferencesConfig {
    system: Arc<Map<String, Value>>,
    account: Arc<Map<String, Value>>,
}

impl ConferencesConfig {
    pub fn new(system: Map<String, Value>, account: Map<String, Value>) -> Self {
        ConferencesConfig {
            system: Arc::new(system),
            account: Arc::new(account),
        }
    }

    /// Whether both hold the very same documents (not copies).
    #[cfg(test)]
    pub fn is_same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.system, &other.system) && Arc::ptr_eq(&self.account, &other.account)
    }

    /// The account's value, else the system's.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.account.get(key).or_else(|| self.system.get(key))
    }

    pub fn entry_tone(&self, role: Role) -> &str {
        let key = match role {
            Role::Member => "entry_tone",
            Role::Moderator => "moderator_entry_tone",
        };
        self.str(key).unwrap_or(ENTRY_TONE)
    }

    pub fn exit_tone(&self, role: Role) -> &str {
        let key = match role {
            Role::Member => "exit_tone",
            Role::Moderator => "moderator_exit_tone",
        };
        self.str(key).unwrap_or(EXIT_TONE)
    }

    pub fn pin_timeout_ms(&self) -> u64 {
        self.uint("pin_timeout").unwrap_or(DIGIT_TIMEOUT_MS)
    }

    pub fn number_timeout_ms(&self) -> u64 {
        self.uint("number_timeout").unwrap_or(DIGIT_TIMEOUT_MS)
    }

    pub fn review_name(&self) -> bool {
        self.get("review_name")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn support_name_announcement(&self) -> bool {
        self.get("support_name_announcement")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// `controls.{name}`: the account's group, else the system's.
    pub fn controls(&self, name: &str) -> Option<&Value> {
        [&self.account, &self.system]
            .into_iter()
            .find_map(|doc| doc.get("controls")?.get(name))
    }

    /// `profiles.{name}` with `profiles.{lang}.{name}` merged over it, from the
    /// first of account and system that has either.
    pub fn profile(&self, name: &str, lang: &str) -> Option<Map<String, Value>> {
        [&self.account, &self.system].into_iter().find_map(|doc| {
            let profiles = doc.get("profiles")?;
            let generic = profiles.get(name).and_then(Value::as_object);
            let localized = profiles.get(lang).and_then(|l| l.get(name)?.as_object());
            if generic.is_none() && localized.is_none() {
                return None;
            }
            let mut merged = generic.cloned().unwrap_or_default();
            merged.extend(localized.cloned().unwrap_or_default());
            Some(merged)
        })
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    fn uint(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = ConferencesConfig::default();
        assert_eq!(c.entry_tone(Role::Moderator), ENTRY_TONE);
        assert_eq!(c.exit_tone(Role::Member), EXIT_TONE);
        assert_eq!((c.pin_timeout_ms(), c.number_timeout_ms()), (5000, 5000));
        assert!(!c.review_name() && c.support_name_announcement());
    }

    #[test]
    fn account_overrides_system() {
        let c = ConferencesConfig::new(
            obj(json!({"pin_timeout": 7000, "entry_tone": "sys", "moderator_entry_tone": "m"})),
            obj(json!({"entry_tone": "acct"})),
        );
        assert_eq!(c.entry_tone(Role::Member), "acct");
        assert_eq!(c.entry_tone(Role::Moderator), "m");
        assert_eq!(c.pin_timeout_ms(), 7000);
    }

    #[test]
    fn profiles_merge_language_over_generic_and_account_wins() {
        let c = ConferencesConfig::new(
            obj(json!({"profiles": {"big": {"rate": 8000}, "wide": {"rate": 16000}}})),
            obj(json!({"profiles": {"big": {"rate": 48000, "interval": 10},
                                    "fr": {"big": {"alone-sound": "seul"}}}})),
        );
        let big = c.profile("big", "fr").unwrap_or_default();
        assert_eq!(
            Value::Object(big),
            json!({"rate": 48000, "interval": 10, "alone-sound": "seul"})
        );
        assert_eq!(
            c.profile("wide", "fr").unwrap_or_default()["rate"],
            json!(16000)
        );
        assert_eq!(c.profile("nope", "fr"), None);
    }
}
