//! Answering a call: route the dialed number (a store request), take an RTP port pair
//! (none free: 503), answer the SDP offer (or offer in the 200 and take the answer from the
//! ACK), put the media in the lobby, and from the ACK start the caller flow. Re-INVITEs
//! update hold and codec.

use std::net::IpAddr;
use std::time::Instant;

use crate::conference::document::ConferenceDoc;
use crate::conference::flow::{CallflowOptions, Flow, FlowSetup, Target};
use crate::conference::settings::ConferencesConfig;
use crate::media::codec::CodecOptions;
use crate::media::leg::LegConfig;
use crate::media::worker::Command;
use crate::sdp::{Direction, Negotiated, SdpError, SdpSession};
use crate::sip::{Body, CallId};

use super::callflow_node::{Next, Node, Walk};
use super::early::EarlyMedia;
use super::output::{Caller, MediaCommand, Output, Ports, SipAction, StoreQuery, StoreRequest};
use super::plane::{
    Answering, Call, CallPlane, CallerFlow, Lookup, Party, Stage, is_sdp, sdp_body,
};
use super::random::random;

/// A route lookup's answer: the config, the documents of the number, the caller's name,
/// the number's callflow.
pub(super) type Routed = (
    ConferencesConfig,
    Vec<(String, ConferenceDoc)>,
    Option<String>,
    Option<Box<Node>>,
);

/// Retry-After of the 503 an INVITE gets when no RTP port pair is free (seconds).
const PORTS_BUSY_RETRY_AFTER: &str = "10";

impl CallPlane {
    pub(super) fn on_invite(
        &mut self,
        call: CallId,
        party: Party,
        number: String,
        offer: Option<Body>,
    ) {
        let id = self.new_id();
        self.lookups.insert(id, (call, Lookup::Route));
        let account = party.account.clone();
        let query = StoreQuery::Route {
            number: number.clone(),
            caller: Caller::from_uri(&party.from.uri),
        };
        let (setup, focus, walk) = (None, None, None);
        self.answering.insert(
            call,
            Answering {
                party,
                number,
                offer,
                setup,
                focus,
                walk,
            },
        );
        self.push(Output::Store(StoreRequest { id, account, query }));
    }

    /// The store answered the route lookup (`None`: it failed): the number's callflow
    /// runs, else the number routes as below.
    pub(super) fn on_routed(&mut self, call: CallId, answer: Option<Routed>, now: Instant) {
        let Some(number) = self.answering.get(&call).map(|a| a.number.clone()) else {
            return;
        };
        if let Some((config, _, name_media, Some(node))) = answer {
            tracing::info!(%number, "callflow");
            if let Some(a) = self.answering.get_mut(&call) {
                a.walk = Some(Walk {
                    visited: 0,
                    children: Vec::new(),
                    early: Default::default(),
                    ringback: None,
                    ignore_early_media: false,
                    config,
                    name_media,
                });
            }
            return self.run_node(call, *node, now);
        }
        let setup = answer.and_then(|(config, found, name, _)| {
            let mut setup = self.route(&number, config, found)?;
            setup.name_media = name;
            Some(setup)
        });
        let Some(setup) = setup else {
            tracing::info!(%number, "rejected: no such conference");
            return self.reject(call, 404, "Not Found", Vec::new());
        };
        self.proceed(call, setup, now);
    }

    /// A routed call takes its port pair (in a cluster, once its conference is claimed).
    pub(super) fn proceed(&mut self, call: CallId, setup: FlowSetup, now: Instant) {
        let Some(number) = self.answering.get(&call).map(|a| a.number.clone()) else {
            return;
        };
        let mut claim = None;
        if let Target::Conference { id, doc } = &setup.target {
            self.prefetch_doc(call, doc);
            let mut numbers = vec![number.clone()];
            numbers.extend(doc.all_numbers().into_iter().map(String::from));
            claim = Some((self.sip_conference(call, id), numbers));
        }
        let Some(a) = self.answering.get_mut(&call) else {
            return;
        };
        a.setup = Some(Next::Flow(Box::new(setup)));
        let granted = match claim {
            Some((conf, numbers)) if self.settings.cluster => self.focus_route(call, conf, numbers),
            _ => true,
        };
        if granted {
            self.take_ports(call, now);
        }
    }

    /// Where a dialed number leads: a conference document's number, the service number
    /// (asks for a conference number), or an ad-hoc conference named after the number.
    fn route(
        &self,
        number: &str,
        config: ConferencesConfig,
        found: Vec<(String, ConferenceDoc)>,
    ) -> Option<FlowSetup> {
        let setup = |target, dialed, callflow| FlowSetup {
            target,
            dialed,
            callflow,
            config,
            name_media: None,
        };
        if self.settings.service_number.as_deref() == Some(number) {
            return Some(setup(Target::ServiceMode, None, CallflowOptions::default()));
        }
        if let [(id, doc)] = found.as_slice() {
            let options = CallflowOptions::for_doc(doc);
            let target = Target::Conference {
                id: id.clone(),
                doc: doc.clone(),
            };
            return Some(setup(target, Some(number.to_string()), options));
        }
        let doc =
            (self.settings.adhoc && found.is_empty()).then(|| adhoc_doc_for_number(number))??;
        let options = CallflowOptions::for_doc(&doc);
        let target = Target::Conference {
            id: number.to_string(),
            doc,
        };
        Some(setup(target, None, options))
    }

    /// The shell's answer to [`Output::AllocatePorts`]: the call is answered with SDP.
    pub fn handle_ports(&mut self, call: CallId, ports: Ports, now: Instant) {
        if self.is_leg(call) {
            return self.leg_ports(call, ports, now);
        }
        if self.wants_early_ports(call) {
            return self.early_ports(call, ports, now);
        }
        let Some(next) = self.answering.get(&call).and_then(|a| a.setup.as_ref()) else {
            return;
        };
        // A bridge's callee waits in its room: it goes if the caller cannot be answered.
        let room = match next {
            Next::Bridge(room) => Some(room.clone()),
            Next::Flow(_) => None,
        };
        let local = match ports {
            Ok(local) => local,
            Err(e) => {
                tracing::warn!(%call, error = %e, "rejected: no RTP port");
                let retry = vec![("Retry-After", PORTS_BUSY_RETRY_AFTER.to_string())];
                self.reject(call, 503, "Service Unavailable", retry);
                return room.iter().for_each(|r| self.close_room(r, now));
            }
        };
        let Some(Answering {
            party,
            offer,
            setup: Some(next),
            focus,
            ..
        }) = self.answering.remove(&call)
        else {
            return;
        };
        let config = next.config();
        let worker = match &next {
            Next::Flow(setup) => self.worker_for(&setup.target),
            Next::Bridge(room) => self.worker_of(&room.id),
        };
        let refused_focus = focus.clone();
        let mut sdp = SdpSession::new(self.settings.policy.clone(), local, random());
        let new = |sdp, stage| Call {
            party,
            acked: false,
            sdp,
            worker,
            rate: 8000,
            stage,
            config,
            name_file: None,
            focus,
        };
        let Some(offer) = offer.filter(is_sdp) else {
            let offer = sdp.offer(Direction::SendRecv);
            self.calls
                .insert(call, new(sdp, Stage::AwaitingAnswer(next)));
            return self.respond(call, false, Some(sdp_body(offer)));
        };
        match sdp.answer(&String::from_utf8_lossy(&offer.bytes)) {
            Ok((neg, answer)) => {
                let (stage, bridge) = first_stage(next);
                self.calls.insert(call, new(sdp, stage));
                self.respond(call, false, Some(sdp_body(answer)));
                self.start_media(call, &neg);
                if let Some(room) = bridge {
                    self.join_room(call, &room, now);
                }
            }
            Err(e) => {
                tracing::info!(error = %e, "rejected: SDP");
                self.reject_sdp(call, &e, false);
                self.unfocus(refused_focus);
                let name_file = None;
                self.push(Output::Released { call, name_file });
                room.iter().for_each(|r| self.close_room(r, now));
            }
        }
    }

    /// A routed caller is answered: over its early media's session if it has one
    /// (`super::ringback`), else over a new port pair.
    pub(super) fn take_ports(&mut self, call: CallId, now: Instant) {
        match self.take_early(call) {
            Some(early) => self.answer_early(call, *early, now),
            None => self.push(Output::AllocatePorts { call }),
        }
    }

    /// The 200 repeats the 183's answer; the media already in a lobby goes where the call
    /// goes next.
    fn answer_early(&mut self, call: CallId, early: EarlyMedia, now: Instant) {
        let Some(Answering {
            party,
            setup: Some(next),
            focus,
            ..
        }) = self.answering.remove(&call)
        else {
            return;
        };
        let config = next.config();
        let (stage, bridge) = first_stage(next);
        let c = Call {
            party,
            acked: false,
            sdp: early.sdp,
            worker: early.worker,
            rate: early.rate,
            stage,
            config,
            name_file: None,
            focus,
        };
        self.calls.insert(call, c);
        self.respond(call, false, Some(early.answer));
        if let Some(room) = bridge {
            self.join_room(call, &room, now);
        }
    }

    /// The call's media enters its worker's lobby: it receives at once (a phone sends as
    /// soon as it sees the 200) and sends from the ACK on.
    pub(super) fn start_media(&mut self, call: CallId, neg: &Negotiated) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.rate = self.settings.codec_options().pcm_rate(neg.codec);
        tracing::info!(call = %c.party.sip_call_id, codec = ?neg.codec, ptime = neg.ptime_ms, "answered");
        let (worker, source) = (c.worker, c.party.source);
        self.lobby(call, worker, neg, source);
    }

    /// Puts the call's negotiated media in `worker`'s lobby (held if the SDP says so).
    pub(super) fn lobby(&mut self, call: CallId, worker: usize, neg: &Negotiated, source: IpAddr) {
        let lobby = MediaCommand::Lobby {
            call: call.0,
            rtcp_mux: neg.rtcp_mux,
            leg: Box::new(self.leg_config(neg, source)),
        };
        self.media(worker, lobby);
        if neg.on_hold() {
            self.command_to(
                worker,
                Command::Update {
                    call: call.0,
                    leg: Box::new(self.leg_config(neg, source)),
                    held: true,
                },
            );
        }
    }

    /// The 200's ACK: media may flow to the caller, and the caller flow starts (its first
    /// prompt is heard from the start).
    fn confirm(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.acked = true;
        self.command(call, Command::Confirm { call: call.0 });
        self.with_flow(call, now, |f, now| f.on_answered(now));
    }

    pub(super) fn on_ack(&mut self, call: CallId, body: Option<Body>, now: Instant) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let answer = body
            .filter(is_sdp)
            .map(|b| String::from_utf8_lossy(&b.bytes).into_owned());
        let awaiting = matches!(c.stage, Stage::AwaitingAnswer(..));
        let first = !c.acked;
        let Some(answer) = answer else {
            if awaiting {
                tracing::info!(call = %c.party.sip_call_id, "no SDP answer in the ACK");
                return self.hang_up(call, now);
            }
            if first {
                self.confirm(call, now);
            }
            return;
        };
        let neg = match c.sdp.accept_answer(&answer) {
            Ok(neg) => neg,
            Err(e) => {
                tracing::info!(call = %c.party.sip_call_id, error = %e, "unusable SDP answer in the ACK");
                return self.hang_up(call, now);
            }
        };
        if !awaiting {
            self.update_media(call, &neg);
        } else if let Stage::AwaitingAnswer(next) =
            std::mem::replace(&mut c.stage, Stage::Member(Default::default()))
        {
            match next {
                Next::Flow(setup) => {
                    c.stage = Stage::Flow(Box::new(CallerFlow::new(Flow::new(*setup))));
                    self.start_media(call, &neg);
                }
                Next::Bridge(room) => {
                    c.stage = Stage::Member(room.clone());
                    self.start_media(call, &neg);
                    self.join_room(call, &room, now);
                }
            }
        }
        if first {
            self.confirm(call, now);
        }
    }

    pub(super) fn on_reinvite(&mut self, call: CallId, body: Option<Body>) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if matches!(c.stage, Stage::AwaitingAnswer(..)) {
            return self.sip(SipAction::Reject {
                call,
                reinvite: true,
                status: 491,
                reason: "Request Pending",
                headers: Vec::new(),
            });
        }
        let Some(offer) = body.filter(is_sdp) else {
            // An offerless re-INVITE: we offer, the ACK answers.
            let offer = c.sdp.offer(Direction::SendRecv);
            return self.respond(call, true, Some(sdp_body(offer)));
        };
        match c.sdp.answer(&String::from_utf8_lossy(&offer.bytes)) {
            Ok((neg, answer)) => {
                tracing::info!(call = %c.party.sip_call_id, hold = neg.on_hold(), codec = ?neg.codec, "re-INVITE");
                self.update_media(call, &neg);
                self.respond(call, true, Some(sdp_body(answer)));
            }
            Err(e) => self.reject_sdp(call, &e, true),
        }
    }

    fn update_media(&mut self, call: CallId, neg: &Negotiated) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.rate = self.settings.codec_options().pcm_rate(neg.codec);
        let (worker, source) = (c.worker, c.party.source);
        self.update_on(worker, call, neg, source);
    }

    /// The call's media on `worker` takes new SDP (codec, remote, hold).
    pub(super) fn update_on(
        &mut self,
        worker: usize,
        call: CallId,
        neg: &Negotiated,
        source: IpAddr,
    ) {
        let leg = Box::new(self.leg_config(neg, source));
        let held = neg.on_hold();
        self.command_to(
            worker,
            Command::Update {
                call: call.0,
                leg,
                held,
            },
        );
    }

    /// The leg for a negotiated stream with the server's `[rtp]` settings.
    fn leg_config(&self, neg: &Negotiated, sip_source: IpAddr) -> LegConfig {
        let mut leg = LegConfig::from_negotiated(neg, random() as u32);
        leg.sip_source = Some(sip_source);
        leg.limits = self.settings.limits;
        leg.codec_options = CodecOptions {
            opus_max_playback_rate: leg.codec_options.opus_max_playback_rate,
            ..self.settings.codec_options()
        };
        leg
    }

    fn respond(&mut self, call: CallId, reinvite: bool, body: Option<Body>) {
        self.sip(SipAction::Respond {
            call,
            reinvite,
            status: 200,
            reason: "OK",
            body,
        });
    }

    fn reject_sdp(&mut self, call: CallId, e: &SdpError, reinvite: bool) {
        let headers = vec![("Warning", e.warning(&self.settings.host))];
        self.sip(SipAction::Reject {
            call,
            reinvite,
            status: 488,
            reason: "Not Acceptable Here",
            headers,
        });
    }
}

/// An answered call's first stage, and the bridge room it joins at once, if any.
fn first_stage(next: Next) -> (Stage, Option<crate::api::service::ConfRef>) {
    match next {
        Next::Flow(setup) => {
            let flow = CallerFlow::new(Flow::new(*setup));
            (Stage::Flow(Box::new(flow)), None)
        }
        Next::Bridge(room) => (Stage::Member(room.clone()), Some(room)),
    }
}

/// An ad-hoc conference: no document, so no numbers, PINs or welcome; callers join unmuted
/// (Kazoo's `join_muted` default only applies to documents created through the API).
/// `None` for a name no caller could have dialed.
fn adhoc_doc_for_number(name: &str) -> Option<ConferenceDoc> {
    let plausible = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b));
    plausible.then(|| adhoc_doc(name))
}

/// The ad-hoc document of conference `name` (a dial into a conference with no document).
pub(super) fn adhoc_doc(name: &str) -> ConferenceDoc {
    let doc = serde_json::json!({"name": name, "play_welcome": false});
    ConferenceDoc::from_map(doc.as_object().cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::vocabulary::Role;

    #[test]
    fn adhoc_names_are_plausible_numbers_or_names() {
        assert!(adhoc_doc_for_number("4242").is_some());
        assert!(adhoc_doc_for_number("team-standup").is_some());
        assert!(adhoc_doc_for_number("").is_none());
        assert!(adhoc_doc_for_number("a b").is_none());
        assert!(adhoc_doc_for_number(&"9".repeat(65)).is_none());
        let doc = adhoc_doc_for_number("4242").unwrap();
        assert!(!doc.play_welcome());
        assert!(!doc.join_muted(Role::Member));
    }
}
