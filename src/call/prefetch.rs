//! Media URLs fetched before they are played: every URL of a conference document when a
//! call is routed to it, so its prompts are ready by the time the flow plays them. A
//! conference play that comes before its URL is fetched waits (see [`Calls::defer`]);
//! lobby prompts and hold music do not wait: they skip an unfetched URL with a log line.

use serde_json::Value;

use super::Calls;
use super::fetch::{self, Fetched};
use crate::conference::document::ConferenceDoc;
use crate::media::worker::Target;

/// A conference play waiting for a URL: conference id, who hears it, its sounds.
pub struct Deferred(String, Target, Vec<String>);

impl Calls {
    /// Starts fetching every URL the document names (prompts, tones, profile sounds).
    pub(super) fn prefetch_doc(&mut self, doc: &ConferenceDoc) {
        let lang = doc.language().unwrap_or("en").to_string();
        let mut urls = Vec::new();
        for value in doc.json().values() {
            collect_urls(value, &mut urls);
        }
        for url in urls {
            self.sounds.prefetch(&url, &lang);
        }
    }

    /// Holds a play until `url` is fetched; it is played (or skipped if the fetch failed)
    /// when the fetch reports back.
    pub(super) fn defer(&mut self, url: String, id: &str, target: Target, media: &[String]) {
        let play = Deferred(id.to_string(), target, media.to_vec());
        self.deferred.entry(url).or_default().push(play);
    }

    pub(super) fn on_fetched(&mut self, fetched: Fetched) {
        let url = fetched.url.clone();
        self.sounds.fetched(fetched);
        for Deferred(id, target, media) in self.deferred.remove(&url).unwrap_or_default() {
            self.play(&id, target, &media);
        }
    }
}

fn collect_urls(value: &Value, urls: &mut Vec<String>) {
    match value {
        Value::String(s) if fetch::is_url(s) => urls.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_urls(v, urls)),
        Value::Object(map) => map.values().for_each(|v| collect_urls(v, urls)),
        _ => {}
    }
}
