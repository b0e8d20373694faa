//! `callflows`: what a dialed number runs. `numbers` (exact, unique in the account) and
//! `patterns` (regexes) select the callflow; `flow` is a tree of `{module, data, children}`
//! whose children are keyed by outcome, `_` being the default branch.

use super::{Key, Scope, Spec, check_max_items, regex_list, require, strings};
use crate::conference::document::ConferenceDoc;
use crate::conference::validation::{Rule, ValidationErrors, check_schema};
use mixer::tone::ToneStream;
use serde_json::{Map, Value, json};

const TONE_STREAM: &str = "tone_stream://";

/// The modules a flow may name (the bridging modules and the conference).
pub const MODULES: [&str; 5] = ["conference", "device", "user", "ring_group", "resources"];

/// Nesting of flow nodes; a deeper tree is refused (it would only be an attack on the
/// recursive readers).
pub const MAX_DEPTH: usize = 32;
/// Numbers one callflow may claim.
pub const MAX_NUMBERS: usize = 128;

const SCHEMA: &[(&str, Rule)] = &[
    ("name", Rule::Str { min: 1, max: 128 }),
    ("numbers", Rule::Strings),
    ("flow", Rule::Object),
    ("featurecode", Rule::Object),
];

const NODE: &[(&str, Rule)] = &[
    ("module", Rule::Enum(&MODULES)),
    ("data", Rule::Object),
    ("children", Rule::Object),
];

pub(super) static SPEC: Spec = Spec {
    collection: "callflows",
    defaults: || json!({"numbers": [], "patterns": []}),
    validate,
    keys: &[Key {
        field: "numbers",
        unique: Some(Scope::Owner),
        values: |doc| strings(doc, "numbers"),
    }],
};

/// The callflow a dialed number runs: the one whose `numbers` list it, else the first
/// (in the order given) with a `patterns` regex that matches it. `doc` reads a callflow
/// document out of whatever holds it.
pub fn select<'a, D>(
    number: &str,
    callflows: &'a [D],
    doc: fn(&D) -> &Map<String, Value>,
) -> Option<&'a D> {
    let listed = |c: &&D| strings(doc(c), "numbers").iter().any(|n| n == number);
    let matches = |c: &&D| {
        let patterns = doc(c).get("patterns").and_then(Value::as_array);
        patterns.into_iter().flatten().any(|p| {
            p.as_str()
                .and_then(regex_list::compiled)
                .is_some_and(|re| re.is_match(number))
        })
    };
    callflows
        .iter()
        .find(listed)
        .or_else(|| callflows.iter().find(matches))
}

fn validate(doc: &Map<String, Value>, errors: &mut ValidationErrors) {
    require(doc, &["flow"], errors);
    check_schema(doc, SCHEMA, &[], errors);
    check_numbers(doc, errors);
    regex_list::check(doc.get("patterns"), "patterns", errors);
    if let Some(flow) = doc.get("flow").and_then(Value::as_object) {
        check_node(flow, &mut vec!["flow".to_owned()], errors);
    }
}

fn check_numbers(doc: &Map<String, Value>, errors: &mut ValidationErrors) {
    let Some(numbers) = doc.get("numbers").and_then(Value::as_array) else {
        return;
    };
    check_max_items(numbers, "numbers", MAX_NUMBERS, errors);
    for (i, n) in numbers.iter().enumerate() {
        let len = n.as_str().map_or(1, |s| s.chars().count());
        if !(1..=64).contains(&len) {
            let i = i.to_string();
            let msg = "String must be 1 to 64 characters";
            errors.add(&["numbers", &i], "length", msg, None, Some(n.clone()));
        }
    }
}

/// A `conference` node's `config` is an inline conference document: the same rules as a
/// stored one, so a bad profile is refused on write rather than met by a caller.
fn check_inline_conference(node: &Map<String, Value>, at: &[&str], errors: &mut ValidationErrors) {
    let config = node.get("data").and_then(|d| d.get("config"));
    let Some(config) = config.and_then(Value::as_object) else {
        return;
    };
    if node.get("module").and_then(Value::as_str) != Some("conference") {
        return;
    }
    if let Err(inner) = ConferenceDoc::from_map(config.clone()).validate() {
        errors.nest(&[at, &["data", "config"]].concat(), inner);
    }
}

/// A ring group's `ringback` is a `tone_stream://` our tone generator plays, else a media id
/// (whether the account has it is the store's check, see [`media_references`]): a bad one is
/// refused on write rather than met by a caller as the default tone.
fn check_ringback(node: &Map<String, Value>, at: &[&str], errors: &mut ValidationErrors) {
    let Some(ringback) = ring_group_ringback(node) else {
        return;
    };
    let path = [at, &["data", "ringback"]].concat();
    let Some(spec) = ringback.as_str() else {
        return errors.type_error(&path, "string", ringback);
    };
    if !spec.starts_with(TONE_STREAM) {
        return;
    }
    // The rate does not matter to the syntax; 8 kHz is the lowest a leg plays at.
    if let Err(e) = ToneStream::parse(spec, 8000) {
        let msg = format!("Not a tone_stream Chorus can play: {e}");
        errors.add(&path, "format", &msg, None, Some(ringback.clone()));
    }
}

/// A `ring_group` node's `data.ringback`, if it has one.
fn ring_group_ringback(node: &Map<String, Value>) -> Option<&Value> {
    if node.get("module").and_then(Value::as_str) != Some("ring_group") {
        return None;
    }
    node.get("data")?.get("ringback")
}

/// The media ids a callflow names (its ring groups' `ringback`s other than tone streams),
/// each with its field's path: the store refuses a write naming media the account lacks.
pub fn media_references(doc: &Map<String, Value>) -> Vec<(Vec<String>, String)> {
    let mut found = Vec::new();
    let mut nodes = vec![(vec!["flow".to_owned()], doc.get("flow"))];
    while let Some((path, node)) = nodes.pop() {
        let Some(node) = node.and_then(Value::as_object) else {
            continue;
        };
        let ringback = ring_group_ringback(node).and_then(Value::as_str);
        if let Some(id) = ringback.filter(|r| !r.starts_with(TONE_STREAM)) {
            let field = [&path[..], &["data".to_owned(), "ringback".to_owned()]].concat();
            found.push((field, id.to_owned()));
        }
        let children = node.get("children").and_then(Value::as_object);
        for (outcome, child) in children.into_iter().flatten() {
            let at = [&path[..], &["children".to_owned(), outcome.clone()]].concat();
            nodes.push((at, Some(child)));
        }
    }
    found
}

/// One node at `path` (a list of segments, `flow.children._` for the default child).
fn check_node(node: &Map<String, Value>, path: &mut Vec<String>, errors: &mut ValidationErrors) {
    let at: Vec<&str> = path.iter().map(String::as_str).collect();
    if at.len() / 2 >= MAX_DEPTH {
        let msg = format!("Flows must not nest deeper than {MAX_DEPTH}");
        return errors.add(&at, "maxDepth", msg.as_str(), Some(json!(MAX_DEPTH)), None);
    }
    if !node.contains_key("module") {
        let mut required = at.clone();
        required.push("module");
        errors.required(&required);
    }
    check_schema(node, NODE, &at, errors);
    check_inline_conference(node, &at, errors);
    check_ringback(node, &at, errors);
    let Some(children) = node.get("children").and_then(Value::as_object) else {
        return;
    };
    for (outcome, child) in children {
        path.extend(["children".to_owned(), outcome.clone()]);
        match child.as_object() {
            Some(child) => check_node(child, path, errors),
            None => {
                let at: Vec<&str> = path.iter().map(String::as_str).collect();
                errors.type_error(&at, "object", child);
            }
        }
        path.truncate(path.len() - 2);
    }
}
