//! Arrays of regular expressions (callflow `patterns`, resource `rules` and `cid_rules`):
//! each must compile, within bounds, since they run against every dialed number.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use crate::conference::validation::ValidationErrors;
use regex::Regex;
use serde_json::{Value, json};

/// Expressions in one list.
pub const MAX_ITEMS: usize = 64;
/// Characters in one expression.
pub const MAX_LEN: usize = 512;
/// Compiled size of one expression (the regex crate's own bound on its program).
const SIZE_LIMIT: usize = 256 * 1024;
/// Expressions kept compiled for routing; past this the cache starts again empty.
const CACHED: usize = 4096;

/// Routing runs the account's patterns and rules on every call: compiled once, by text.
static COMPILED: LazyLock<Mutex<HashMap<String, Regex>>> = LazyLock::new(Default::default);

/// Checks the array at `field`, if present: strings that compile. Errors name the item.
pub fn check(value: Option<&Value>, field: &str, errors: &mut ValidationErrors) {
    let Some(value) = value else {
        return;
    };
    let Some(items) = value.as_array() else {
        return errors.type_error(&[field], "array", value);
    };
    super::check_max_items(items, field, MAX_ITEMS, errors);
    for (i, item) in items.iter().enumerate() {
        let i = i.to_string();
        let at = [field, i.as_str()];
        match item.as_str() {
            None => errors.type_error(&at, "string", item),
            Some(s) if s.chars().count() > MAX_LEN => {
                let msg = format!("String must not be more than {MAX_LEN} characters");
                errors.add(&at, "maxLength", &msg, Some(json!(MAX_LEN)), None);
            }
            Some(s) => {
                if let Err(e) = compile(s) {
                    let msg = format!("Invalid regular expression: {e}");
                    errors.add(
                        &at,
                        "format",
                        &msg,
                        Some(json!("regex")),
                        Some(item.clone()),
                    );
                }
            }
        }
    }
}

/// The expression compiled with the bound the API enforces.
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .build()
}

/// A stored expression for routing, from the cache (stored ones compiled when written, so
/// one that does not is only skipped).
pub fn compiled(pattern: &str) -> Option<Regex> {
    let mut cache = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(re) = cache.get(pattern) {
        return Some(re.clone());
    }
    let re = compile(pattern).ok()?;
    if cache.len() >= CACHED {
        cache.clear();
    }
    cache.insert(pattern.to_string(), re.clone());
    Some(re)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routing_cache_stays_bounded_and_answers_the_same() {
        for n in 0..=CACHED {
            let re = compiled(&format!("^{n}$")).expect("compiles");
            assert!(re.is_match(&n.to_string()));
        }
        let size = COMPILED.lock().unwrap().len();
        assert!((1..=CACHED).contains(&size), "{size}");
        assert!(compiled("^1$").unwrap().is_match("1"));
        assert!(compiled("(unclosed").is_none());
    }
}
