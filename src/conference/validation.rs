//! Kazoo's validation error shape (crossbar, JSON Schema draft-04 messages):
//! `{"<field.path>":{"<rule>":{"message","target"?,"value"?,"cause"?}}}`,
//! with dots inside a path segment escaped as `%2E`.

use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fmt;

/// The pattern of dial-in numbers and PINs.
pub const DIGITS_PATTERN: &str = "^[0-9]+$";

/// One failed rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleError {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Value>,
}

/// Every failed rule by field path, then rule name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ValidationErrors(BTreeMap<String, BTreeMap<String, RuleError>>);

impl ValidationErrors {
    /// One error with an optional target and cause (no value).
    pub fn single(
        key: &str,
        rule: &str,
        message: &str,
        target: Option<Value>,
        cause: Option<Value>,
    ) -> Self {
        let mut e = ValidationErrors::default();
        e.insert(
            key.to_string(),
            rule,
            RuleError {
                message: message.to_string(),
                target,
                value: None,
                cause,
            },
        );
        e
    }

    pub fn add(
        &mut self,
        path: &[&str],
        rule: &str,
        message: &str,
        target: Option<Value>,
        value: Option<Value>,
    ) {
        let err = RuleError {
            message: message.to_string(),
            target,
            value,
            cause: None,
        };
        self.insert(path_key(path), rule, err);
    }

    pub fn type_error(&mut self, path: &[&str], expected: &str, value: &Value) {
        let msg = format!("Value did not match type(s): {expected}");
        self.add(
            path,
            "type",
            &msg,
            Some(json!(expected)),
            Some(value.clone()),
        );
    }

    pub fn required(&mut self, path: &[&str]) {
        self.add(
            path,
            "required",
            "Field is required but missing",
            None,
            None,
        );
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// The `data` object of a 400 response.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// `inner`'s errors, found in an object at `path` (an inline document).
    pub fn nest(&mut self, path: &[&str], inner: ValidationErrors) {
        let prefix = path_key(path);
        for (key, rules) in inner.0 {
            self.0
                .entry(format!("{prefix}.{key}"))
                .or_default()
                .extend(rules);
        }
    }

    fn insert(&mut self, key: String, rule: &str, err: RuleError) {
        self.0.entry(key).or_default().insert(rule.to_string(), err);
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "validation error: {}", self.to_json())
    }
}

impl std::error::Error for ValidationErrors {}

fn path_key(path: &[&str]) -> String {
    path.iter()
        .map(|s| s.replace('.', "%2E"))
        .collect::<Vec<_>>()
        .join(".")
}

/// A schema rule for one field.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    Str {
        min: usize,
        max: usize,
    },
    Bool,
    BoolOrStr,
    Int {
        min: i64,
        max: Option<i64>,
    },
    /// An integer from a fixed list.
    IntIn(&'static [u32]),
    Object,
    /// An object, or a name (a string of 1 to 256 characters).
    ObjectOrName,
    /// An array of strings.
    Strings,
    /// An array of [`DIGITS_PATTERN`] strings.
    Digits,
    /// An array of strings from a fixed list.
    EnumList(&'static [&'static str]),
    /// A string from a fixed list.
    Enum(&'static [&'static str]),
    /// An array of anything (its items checked apart).
    Array,
}

impl Rule {
    pub fn check(self, path: &[&str], v: &Value, errors: &mut ValidationErrors) {
        match self {
            Rule::Str { min, max } => check_str(path, v, min, max, errors),
            Rule::Bool if !v.is_boolean() => errors.type_error(path, "boolean", v),
            Rule::BoolOrStr if !v.is_boolean() && !v.is_string() => {
                let msg = "Value did not match type(s): boolean, string";
                let target = json!(["boolean", "string"]);
                errors.add(path, "type", msg, Some(target), Some(v.clone()));
            }
            Rule::Int { min, max } => check_int(path, v, min, max, errors),
            Rule::IntIn(allowed) if !one_of(v, allowed) => {
                enum_error(path, json!(allowed), v, errors)
            }
            Rule::Object if !v.is_object() => errors.type_error(path, "object", v),
            Rule::Array if !v.is_array() => errors.type_error(path, "array", v),
            Rule::Enum(allowed) if !v.as_str().is_some_and(|s| allowed.contains(&s)) => {
                enum_error(path, json!(allowed), v, errors)
            }
            Rule::ObjectOrName if v.is_string() => check_str(path, v, 1, 256, errors),
            Rule::ObjectOrName if !v.is_object() => {
                let msg = "Value did not match type(s): object, string";
                let target = json!(["object", "string"]);
                errors.add(path, "type", msg, Some(target), Some(v.clone()));
            }
            Rule::Strings | Rule::Digits | Rule::EnumList(_) => self.check_items(path, v, errors),
            _ => {}
        }
    }

    fn check_items(self, path: &[&str], v: &Value, errors: &mut ValidationErrors) {
        let Some(items) = v.as_array() else {
            return errors.type_error(path, "array", v);
        };
        for (i, item) in items.iter().enumerate() {
            let i = i.to_string();
            let mut at = path.to_vec();
            at.push(&i);
            let Some(s) = item.as_str() else {
                errors.type_error(&at, "string", item);
                continue;
            };
            match self {
                Rule::Digits if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) => {
                    let msg = format!("Failed to match pattern '{DIGITS_PATTERN}'");
                    errors.add(
                        &at,
                        "pattern",
                        &msg,
                        Some(json!(DIGITS_PATTERN)),
                        Some(item.clone()),
                    );
                }
                Rule::EnumList(allowed) if !allowed.contains(&s) => {
                    enum_error(&at, json!(allowed), item, errors)
                }
                _ => {}
            }
        }
    }
}

/// Checks each `(path, rule)` of `schema` whose field is present in `obj`; errors are named
/// `prefix.path`. A nested path is skipped when its parent is not an object (the parent's
/// own rule reports that).
pub fn check_schema(
    obj: &Map<String, Value>,
    schema: &[(&str, Rule)],
    prefix: &[&str],
    errors: &mut ValidationErrors,
) {
    for (path, rule) in schema {
        let segs: Vec<&str> = path.split('.').collect();
        if let Some(v) = lookup(obj, &segs) {
            let at: Vec<&str> = prefix.iter().chain(&segs).copied().collect();
            rule.check(&at, v, errors);
        }
    }
}

/// The value at a dotted path of nested objects.
pub fn lookup<'a>(obj: &'a Map<String, Value>, segs: &[&str]) -> Option<&'a Value> {
    let (last, parents) = segs.split_last()?;
    let mut cur = obj;
    for s in parents {
        cur = cur.get(*s)?.as_object()?;
    }
    cur.get(*last)
}

fn one_of(v: &Value, allowed: &[u32]) -> bool {
    v.as_u64()
        .is_some_and(|n| allowed.iter().any(|a| u64::from(*a) == n))
}

fn enum_error(path: &[&str], allowed: Value, v: &Value, errors: &mut ValidationErrors) {
    let msg = "Value not found in enumerated list of values";
    errors.add(path, "enum", msg, Some(allowed), Some(v.clone()));
}

fn check_str(path: &[&str], v: &Value, min: usize, max: usize, errors: &mut ValidationErrors) {
    let Some(s) = v.as_str() else {
        return errors.type_error(path, "string", v);
    };
    let len = s.chars().count();
    if len < min {
        let msg = format!("String must be at least {min} characters");
        errors.add(path, "minLength", &msg, Some(json!(min)), Some(v.clone()));
    } else if len > max {
        let msg = format!("String must not be more than {max} characters");
        errors.add(path, "maxLength", &msg, Some(json!(max)), Some(v.clone()));
    }
}

fn check_int(path: &[&str], v: &Value, min: i64, max: Option<i64>, errors: &mut ValidationErrors) {
    let Some(n) = v.as_i64().or_else(|| v.as_u64().map(|_| i64::MAX)) else {
        return errors.type_error(path, "integer", v);
    };
    if n < min {
        let msg = format!("Value must be at least {min}");
        errors.add(path, "minimum", &msg, Some(json!(min)), Some(v.clone()));
    }
    if let Some(max) = max.filter(|m| n > *m) {
        let msg = format!("Value must be at most {max}");
        errors.add(path, "maximum", &msg, Some(json!(max)), Some(v.clone()));
    }
}
