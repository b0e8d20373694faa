//! Arrays of regular expressions (callflow `patterns`, resource `rules` and `cid_rules`):
//! each must compile, within bounds, since they run against every dialed number.

use crate::conference::validation::ValidationErrors;
use serde_json::{Value, json};

/// Expressions in one list.
pub const MAX_ITEMS: usize = 64;
/// Characters in one expression.
pub const MAX_LEN: usize = 512;
/// Compiled size of one expression (the regex crate's own bound on its program).
const SIZE_LIMIT: usize = 256 * 1024;

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
pub fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .build()
}
