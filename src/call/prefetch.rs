//! Media URLs fetched before they are played: every URL of a conference document when a
//! call is routed to it, so its prompts are ready by the time the flow plays them.

use serde_json::Value;

use super::output::Output;
use super::plane::CallPlane;
use crate::conference::document::ConferenceDoc;
use crate::sip::CallId;

impl CallPlane {
    /// Asks for every URL the document `call` is routed to names (prompts, tones, profile
    /// sounds) to be fetched.
    pub(super) fn prefetch_doc(&mut self, call: CallId, doc: &ConferenceDoc) {
        let mut urls = Vec::new();
        for value in doc.json().values() {
            collect_urls(value, &mut urls);
        }
        if urls.is_empty() {
            return;
        }
        self.push(Output::Prefetch {
            media: urls.into_iter().map(str::to_string).collect(),
            language: doc.language().unwrap_or("en").to_string(),
            account: self.account(call),
        });
    }
}

fn collect_urls<'a>(value: &'a Value, urls: &mut Vec<&'a str>) {
    match value {
        Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => urls.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_urls(v, urls)),
        Value::Object(map) => map.values().for_each(|v| collect_urls(v, urls)),
        _ => {}
    }
}
