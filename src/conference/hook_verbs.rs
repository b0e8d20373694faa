//! What a jambonz `enterHook` or `waitHook` answers with (spec §6): a list of verbs, of
//! which a hook runs only `play` (its `url`, one or a list) and `say` (its `text`, spoken
//! as `tts://`), each `loop` times, and `pause` (`length` seconds of silence). They become
//! media strings played in turn; any other verb is skipped with a log line.

use serde_json::Value;

/// Verbs read from one answer, repeats of one verb and seconds of one pause: a hook
/// cannot make the server queue unbounded audio.
const MAX_VERBS: usize = 32;
const MAX_LOOP: u64 = 10;
const MAX_PAUSE_S: f64 = 60.0;

/// The media strings of a hook's answer, in order; none for anything but verbs.
pub fn media(answer: &Value) -> Vec<String> {
    let verbs = match answer {
        Value::Array(verbs) => verbs.as_slice(),
        verb @ Value::Object(_) => std::slice::from_ref(verb),
        _ => &[],
    };
    let mut out = Vec::new();
    for verb in verbs.iter().take(MAX_VERBS) {
        match verb.get("verb").and_then(Value::as_str) {
            Some("play") => repeat(verb, strings(verb.get("url")), &mut out),
            Some("say") => {
                let texts = strings(verb.get("text")).map(|t| format!("tts://{t}"));
                repeat(verb, texts, &mut out);
            }
            Some("pause") => {
                let length = verb.get("length").and_then(Value::as_f64).unwrap_or(0.0);
                let ms = (length.clamp(0.0, MAX_PAUSE_S) * 1000.0) as u64;
                if ms > 0 {
                    out.push(format!("silence_stream://{ms}"));
                }
            }
            other => {
                tracing::info!(verb = ?other, "hook verb skipped: a hook runs play, say and pause")
            }
        }
    }
    out
}

/// `media` `loop` times (`"forever"` is the cap: the wait hook is fetched again anyway).
fn repeat(verb: &Value, media: impl Iterator<Item = String>, out: &mut Vec<String>) {
    let times = match verb.get("loop") {
        Some(Value::String(s)) if s == "forever" => MAX_LOOP,
        Some(n) => n.as_u64().unwrap_or(1).min(MAX_LOOP),
        None => 1,
    };
    let media: Vec<String> = media.collect();
    for _ in 0..times {
        out.extend(media.iter().cloned());
    }
}

/// A string, or the strings of a list.
fn strings(v: Option<&Value>) -> impl Iterator<Item = String> + '_ {
    let list = match v {
        Some(Value::Array(items)) => items.as_slice(),
        Some(one) => std::slice::from_ref(one),
        None => &[],
    };
    list.iter().filter_map(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn play_say_and_pause_become_media_in_order_and_other_verbs_are_skipped() {
        let answer = json!([
            {"verb": "play", "url": ["http://h/a.wav", "http://h/b.wav"], "loop": 2},
            {"verb": "gather", "input": ["digits"]},
            {"verb": "say", "text": "Please wait"},
            {"verb": "pause", "length": 1.5},
            {"verb": "pause"},
        ]);
        assert_eq!(
            media(&answer),
            [
                "http://h/a.wav",
                "http://h/b.wav",
                "http://h/a.wav",
                "http://h/b.wav",
                "tts://Please wait",
                "silence_stream://1500",
            ]
        );
        assert_eq!(media(&json!({"verb": "say", "text": "one"})), ["tts://one"]);
        assert!(media(&json!([])).is_empty());
        assert!(media(&json!("play")).is_empty());
    }

    #[test]
    fn loops_pauses_and_verb_counts_are_capped() {
        let forever = json!([{"verb": "play", "url": "x", "loop": "forever"}]);
        assert_eq!(media(&forever).len(), MAX_LOOP as usize);
        let many = json!([{"verb": "play", "url": "x", "loop": 1_000_000}]);
        assert_eq!(media(&many).len(), MAX_LOOP as usize);
        assert_eq!(
            media(&json!([{"verb": "pause", "length": 1e12}])),
            ["silence_stream://60000"]
        );
        let verbs: Vec<Value> = (0..100)
            .map(|_| json!({"verb": "say", "text": "t"}))
            .collect();
        assert_eq!(media(&Value::Array(verbs)).len(), MAX_VERBS);
    }
}
