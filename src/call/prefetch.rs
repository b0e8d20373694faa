//! Media URLs fetched before they are played: every URL of a conference document when a
//! call is routed to it, so its prompts are ready by the time the flow plays them.

use serde_json::Value;

use super::Calls;
use crate::conference::document::ConferenceDoc;
use crate::sounds::Scope;

impl Calls {
    /// Starts fetching every URL the document names (prompts, tones, profile sounds).
    pub(super) fn prefetch_doc(&self, doc: &ConferenceDoc) {
        let scope = Scope {
            language: doc.language().unwrap_or("en"),
            account: &self.account,
        };
        let mut urls = Vec::new();
        for value in doc.json().values() {
            collect_urls(value, &mut urls);
        }
        for url in urls {
            self.sounds.prefetch(url, scope);
        }
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
