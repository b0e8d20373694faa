//! Callflows (issue 9 part 4): a dialed number runs the account's callflow for it. The
//! shell resolves the callflow document into a [`Node`] tree up front (documents read,
//! registrations and gateways looked up, see `super::callflow_targets`); the plane walks it
//! here. `conference` sends the caller into the conference flow with the element's options;
//! `device`, `user`, `ring_group` and `resources` ring endpoints through the dial-out
//! machinery (`super::dialout`) while the caller hears ringback (`super::ringback`). The first branch to
//! answer cancels the others and is bridged to the caller through a private two-member
//! room (no prompts, no tones, no events, invisible to the API), so the codecs may differ.
//! A failure runs the child for its cause (`busy`, `no_answer`, `unavailable`, `failed`),
//! else the `_` child; with none left the caller gets 486, 480, 404 or 503.

use std::time::Instant;

use crate::api::service::{ConfRef, EndpointResponse};
use crate::conference::document::ConferenceDoc;
use crate::conference::flow::{FlowSetup, join_decision};
use crate::conference::profile;
use crate::conference::settings::ConferencesConfig;
use crate::conference::vocabulary::Role;
use crate::sdp::{Negotiated, SdpSession};
use crate::sip::CallId;

use super::callflow_node::{BridgeNode, Failure, MAX_VISITS, Module, Next, Node};
use super::dial_order::{Purpose, quoted};
use super::live::Live;
use super::output::{Output, SipAction};
use super::plane::{CallPlane, Party};

impl CallPlane {
    /// Runs `node` for unanswered `call`.
    pub(super) fn run_node(&mut self, call: CallId, node: Node, now: Instant) {
        let Some(walk) = self.answering.get_mut(&call).and_then(|a| a.walk.as_mut()) else {
            return;
        };
        walk.visited += 1;
        if walk.visited > MAX_VISITS || node.module == Module::TooLarge {
            tracing::warn!(%call, visited = walk.visited, "callflow too large: refused");
            return self.reject(call, 500, "Server Internal Error", Vec::new());
        }
        walk.children = node.children;
        match node.module {
            Module::Conference(c) => {
                let setup = FlowSetup {
                    target: c.target,
                    dialed: None,
                    callflow: c.options,
                    config: walk.config.clone(),
                    name_media: walk.name_media.clone(),
                };
                self.proceed(call, setup, now);
            }
            Module::Bridge(b) => self.ring(call, b, now),
            Module::Skip => self.next_child(call, "_", Failure::Unavailable, now),
            Module::Fail(f) => self.next_child(call, f.child(), f, now),
            Module::TooLarge => {}
        }
    }

    /// The child for `outcome`, else `_`; with neither the caller gets `failure`'s answer.
    fn next_child(&mut self, call: CallId, outcome: &str, failure: Failure, now: Instant) {
        let Some(walk) = self.answering.get_mut(&call).and_then(|a| a.walk.as_mut()) else {
            return;
        };
        let mut children = std::mem::take(&mut walk.children);
        let at = |key: &str| children.iter().position(|(k, _)| k == key);
        match at(outcome).or_else(|| at("_")) {
            Some(i) => {
                let (_, child) = children.swap_remove(i);
                self.run_node(call, child, now);
            }
            None => {
                let (status, reason) = failure.status();
                tracing::info!(%call, status, "callflow: nothing left to run");
                self.reject(call, status, reason, Vec::new());
            }
        }
    }

    /// Rings a bridging node's endpoints for the caller, who hears ringback once one
    /// rings (`super::ringback`).
    fn ring(&mut self, call: CallId, node: BridgeNode, now: Instant) {
        let Some(a) = self.answering.get_mut(&call) else {
            return;
        };
        let from = caller_from(&a.party);
        if let Some(walk) = a.walk.as_mut() {
            walk.ringback = node.ringback;
            walk.ignore_early_media = node.ignore_early_media;
        }
        let purpose = Purpose::Bridge { caller: call };
        self.start_order(purpose, from, node.endpoints, node.plan, None, now);
    }

    /// Every branch failed: the child for the cause runs.
    pub(super) fn ring_failed(
        &mut self,
        caller: CallId,
        outcomes: &[EndpointResponse],
        now: Instant,
    ) {
        let causes: Vec<&str> = outcomes
            .iter()
            .filter_map(|r| r.outcome.as_ref().err().map(String::as_str))
            .collect();
        let failure = Failure::of(&causes);
        tracing::info!(%caller, ?causes, ?failure, "callflow: no branch answered");
        self.next_child(caller, failure.child(), failure, now);
    }

    /// A caller gone while its branches ring: they are cancelled.
    pub(super) fn abandon_ring(&mut self, caller: CallId, now: Instant) {
        self.abandon_orders(
            |p| matches!(p, Purpose::Bridge { caller: c } if *c == caller),
            now,
        );
    }

    /// Branch `leg` answered: it waits in a private room for the caller, who is answered
    /// now and joins it once its SDP is settled.
    pub(super) fn bridge(
        &mut self,
        caller: CallId,
        leg: CallId,
        answered: (Party, SdpSession),
        neg: &Negotiated,
        up_on: Option<usize>,
        now: Instant,
    ) {
        if !self.answering.contains_key(&caller) {
            self.sip(SipAction::Bye { call: leg });
            let name_file = None;
            return self.push(Output::Released {
                call: leg,
                name_file,
            });
        }
        let room = ConfRef {
            account: self.account(caller),
            id: bridge_room_id(leg),
        };
        tracing::info!(callee = %answered.0.sip_call_id, room = %room, "callflow: answered, bridging");
        if !self.open_room(&room, now) {
            self.sip(SipAction::Bye { call: leg });
            let name_file = None;
            self.push(Output::Released {
                call: leg,
                name_file,
            });
            return self.reject(caller, 500, "Server Internal Error", Vec::new());
        }
        let config = ConferencesConfig::default();
        self.leg_call(leg, answered, neg, up_on, &room, config);
        self.join_room(leg, &room, now);
        if let Some(a) = self.answering.get_mut(&caller) {
            a.setup = Some(Next::Bridge(room));
        }
        self.take_ports(caller, now);
    }

    /// Opens a private bridging room: no sounds, no controls, no hold music, no events.
    pub(super) fn open_room(&mut self, room: &ConfRef, now: Instant) -> bool {
        let doc = room_doc();
        let mut resolved = match profile::resolve(&doc, &ConferencesConfig::default(), None) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "bridge room profile");
                return false;
            }
        };
        resolved.sounds.clear();
        resolved.caller_controls = "none".into();
        resolved.moderator_controls = "none".into();
        let key = self.conference_key();
        let worker = self.worker_of(&room.id);
        let mut live = Live::new(key, worker, doc, resolved, self.wall(now));
        live.private = true;
        self.conferences.insert(room.clone(), live);
        true
    }

    /// Seats a call of the bridge in its room (it ends with the other member, see
    /// `member_left`).
    pub(super) fn join_room(&mut self, call: CallId, room: &ConfRef, now: Instant) {
        if !self.conferences.contains_key(room) {
            return self.hang_up(call, now);
        }
        let doc = room_doc();
        let mut decision =
            join_decision(&room.id, &doc, Role::Member, Vec::new(), Vec::new(), None);
        decision.flags.nomoh = true;
        // Digits pass through a bridge: the far side may be asking for them (a PIN).
        decision.flags.dist_dtmf = true;
        self.join(call, room.clone(), decision, now);
    }

    /// Hangs up whoever is in a bridge room (its caller could not be answered).
    pub(super) fn close_room(&mut self, room: &ConfRef, now: Instant) {
        let members: Vec<CallId> = self
            .conferences
            .get(room)
            .map(|l| l.members.keys().copied().collect())
            .unwrap_or_default();
        for call in members {
            self.hang_up(call, now);
        }
        self.conferences.remove(room);
    }
}

/// The private room bridging answered leg `leg` to its caller.
pub(super) fn bridge_room_id(leg: CallId) -> String {
    format!("bridge:{:x}", leg.0)
}

/// The From of legs placed for a caller: the caller's name and URI.
pub(super) fn caller_from(party: &Party) -> String {
    let from = &party.from;
    match &from.display_name {
        Some(name) => format!("{} <{}>", quoted(name), from.uri),
        None => format!("<{}>", from.uri),
    }
}

/// The document of a private bridge room: nothing played, nobody muted.
fn room_doc() -> ConferenceDoc {
    let doc = serde_json::json!({
        "name": "bridge",
        "play_welcome": false,
        "play_entry_tone": false,
        "play_exit_tone": false,
    });
    ConferenceDoc::from_map(doc.as_object().cloned().unwrap_or_default())
}
