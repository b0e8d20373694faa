//! Which conference a dialed number reaches.

use std::collections::HashMap;

use crate::config::Config;

pub struct Router {
    numbers: HashMap<String, String>,
    adhoc: bool,
}

impl Router {
    pub fn new(config: &Config) -> Self {
        let numbers = config
            .conference
            .iter()
            .flat_map(|c| c.numbers.iter().map(|n| (n.clone(), c.name.clone())))
            .collect();
        Router {
            numbers,
            adhoc: config.conferences.adhoc,
        }
    }

    /// The conference name for the Request-URI user part: a configured number, else (when
    /// ad-hoc conferences are on) a conference named after the number itself.
    pub fn route(&self, user: &str) -> Option<String> {
        if let Some(name) = self.numbers.get(user) {
            return Some(name.clone());
        }
        let plausible = !user.is_empty() && user.len() <= 64 && user.bytes().all(is_name_byte);
        (self.adhoc && plausible).then(|| user.to_string())
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'*' | b'#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_numbers_then_adhoc() {
        let mut config: Config =
            toml::from_str("[[conference]]\nname = \"demo\"\nnumbers = [\"1000\"]").unwrap();
        let r = Router::new(&config);
        assert_eq!(r.route("1000").as_deref(), Some("demo"));
        assert_eq!(r.route("4242").as_deref(), Some("4242"));
        assert_eq!(r.route(""), None);
        assert_eq!(r.route("a b"), None);
        config.conferences.adhoc = false;
        let r = Router::new(&config);
        assert_eq!(r.route("4242"), None);
        assert_eq!(r.route("1000").as_deref(), Some("demo"));
    }
}
