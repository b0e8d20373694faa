//! jambonz `enterHook` and `waitHook` (spec §6). The shell posts the call's info to the
//! hook and answers with the media of the verbs it returns (`conference::hook_verbs`).
//! Enter media play to the caller before the join; wait media play to a member waiting
//! for a moderator, after 750 ms of silence, and the hook is fetched again when they end,
//! until it has nothing to play or the wait is over.

use std::time::Instant;

use serde_json::json;

use crate::api::service::ConfRef;
use crate::sip::CallId;

use super::output::Output;
use super::plane::{CallPlane, Stage};

/// The silence before each round of a wait hook's verbs (jambonz's pause between fetches).
const WAIT_PAUSE: &str = "silence_stream://750";

impl CallPlane {
    /// Asks the shell for the verbs of hook `url` on behalf of `call`, in conference `name`.
    pub(super) fn fetch_hook(&mut self, call: CallId, url: String, name: &str) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let from = c.party.from.uri.trim_start_matches("sip:");
        let body = json!({
            "callSid": c.party.sip_call_id,
            "callId": c.party.sip_call_id,
            "direction": c.party.direction.as_str(),
            "from": from,
            "to": name,
            "callerId": c.party.from.display_name.as_deref().unwrap_or_default(),
            "callStatus": "in-progress",
            "accountSid": self.settings.account,
            "friendlyName": name,
        });
        self.push(Output::FetchHook { call, url, body });
    }

    /// The shell's answer to [`Output::FetchHook`]: the media of the hook's verbs, none if
    /// it failed or had nothing to play.
    pub fn handle_hook(&mut self, call: CallId, media: Vec<String>, now: Instant) {
        match self.calls.get(&call).map(|c| &c.stage) {
            Some(Stage::Flow(_)) => self.with_flow(call, now, |f, now| f.on_hook(now, media)),
            Some(Stage::Member(conf)) if !media.is_empty() => {
                let conf = conf.clone();
                if self.is_waiting(&conf, call) {
                    let media = std::iter::once(WAIT_PAUSE.to_string()).chain(media);
                    self.hold(&conf, call, media.collect(), None);
                }
            }
            _ => {}
        }
    }

    /// A member starts waiting for a moderator: the wait hook's verbs, else hold music.
    pub(super) fn start_waiting(&mut self, conf: &ConfRef, call: CallId) {
        let Some(live) = self.conferences.get(conf) else {
            return;
        };
        match live.doc.wait_hook().map(str::to_string) {
            Some(url) => {
                let name = live.doc.name().unwrap_or(&conf.id).to_string();
                self.fetch_hook(call, url, &name);
            }
            None => self.start_moh(conf, call, None),
        }
    }

    /// What a member hears while waiting ended by itself: the wait hook's next round.
    pub(super) fn waiting_sound_ended(&mut self, conf: &ConfRef, call: CallId) {
        let hooked = self
            .conferences
            .get(conf)
            .is_some_and(|l| l.doc.wait_hook().is_some());
        if hooked && self.is_waiting(conf, call) {
            self.start_waiting(conf, call);
        }
    }

    fn is_waiting(&self, conf: &ConfRef, call: CallId) -> bool {
        let live = self.conferences.get(conf);
        live.and_then(|l| l.members.get(&call))
            .is_some_and(|m| m.waiting)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::WAIT_PAUSE;
    use crate::call::tests::Harness;
    use crate::sip::CallId;

    const ENTER: &str = "http://app/enter";
    const WAIT: &str = "http://app/wait";

    fn hooked() -> Harness {
        Harness::new(vec![(
            "room",
            json!({"name": "room", "play_welcome": false, "wait_for_moderator": true,
                   "enter_hook": ENTER, "wait_hook": WAIT,
                   "member": {"numbers": ["100"]}, "moderator": {"numbers": ["200"]}}),
        )])
    }

    #[test]
    fn the_enter_hook_plays_to_each_joiner_before_the_join() {
        let mut h = hooked();
        h.hook_answers.push_back(vec!["tts://welcome".into()]);
        let call = h.call(1, "200");
        assert_eq!(h.hooks_fetched, [(call, ENTER.to_string())]);
        assert!(h.played.contains(&vec!["tts://welcome".to_string()]));
        assert!(h.media.contains(&"attach"), "{:?}", h.media);
    }

    #[test]
    fn the_wait_hook_loops_while_a_member_waits_until_it_has_nothing_to_play() {
        let mut h = hooked();
        h.hook_answers.push_back(Vec::new());
        h.hook_answers.push_back(vec!["tts://hold on".into()]);
        h.hook_answers.push_back(vec!["tts://still waiting".into()]);
        let call = h.call(1, "100");
        let fetched: Vec<&str> = h.hooks_fetched.iter().map(|(_, u)| u.as_str()).collect();
        // Enter (nothing to play), then the wait hook twice, then once more: `[]` ends it.
        assert_eq!(fetched, [ENTER, WAIT, WAIT, WAIT]);
        let rounds: Vec<&Vec<String>> = h.played.iter().filter(|m| m[0] == WAIT_PAUSE).collect();
        assert_eq!(
            rounds,
            [
                &vec![WAIT_PAUSE.to_string(), "tts://hold on".into()],
                &vec![WAIT_PAUSE.to_string(), "tts://still waiting".into()],
            ]
        );
        assert!(h.hooks_fetched.iter().all(|(c, _)| *c == call));
        // A moderator ends the wait: no more fetches for the member.
        h.call(2, "200");
        let waits = |h: &Harness| {
            h.hooks_fetched
                .iter()
                .filter(|(c, _)| *c == CallId(1))
                .count()
        };
        assert_eq!(waits(&h), 4);
    }
}
