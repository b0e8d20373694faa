//! The call plane's side of a cluster (`crate::cluster`): a conference is hosted only
//! once this node holds its focus claim. The first caller routed to a conference asks
//! for the claim and waits unanswered; the claim is released when the last call routed
//! to (or joined into) the conference ends. Callers of a conference another node hosts,
//! or that no claim can be made for, get 503 with Retry-After: the proxy in front
//! (config/cluster/kamailio.cfg) then asks the registry again and relays to the focus,
//! and a caller reached directly retries; a 302 would hand callers internal addresses.
//! A caller of the service number, already answered, claims the conference whose number
//! it keys (before its PIN) and waits in its flow until granted; when another node hosts
//! it, the caller is brought there over SIP (see [`CallPlane::relay`]), which alone asks
//! for the PIN.

use std::time::{Duration, Instant};

use crate::api::service::ConfRef;
use crate::cluster::focus::Event;
use crate::cluster::registry::Request;
use crate::sip::{CallId, Protocol};

use super::callflow::caller_from;
use super::dial_order::{Contact, Endpoint, Plan, Purpose, Ring};
use super::output::Output;
use super::plane::{CallPlane, Claim, Claiming, Stage};

/// Retry-After of a caller refused because another node hosts the conference: by then
/// the proxy routes it there.
const HELD_ELSEWHERE_RETRY_AFTER: &str = "1";
/// Retry-After when no claim can be made (registry unreachable, room bound reached).
const NO_CLAIM_RETRY_AFTER: &str = "5";
/// Numbers routed to one conference in the registry; a document may list more.
const MAX_ROUTED_NUMBERS: usize = 32;
/// A service-number caller brought to the focus node waits this long for its answer.
const RELAY_TIMEOUT: Duration = Duration::from_secs(20);

impl CallPlane {
    /// Routes a call to `conf` under its claim; true when the call may be answered now
    /// (the claim is held), false when it waits for [`CallPlane::handle_focus`].
    pub(super) fn focus_route(
        &mut self,
        call: CallId,
        conf: ConfRef,
        numbers: Vec<String>,
    ) -> bool {
        let Some(a) = self.answering.get_mut(&call) else {
            return false;
        };
        a.focus = Some(conf.clone());
        self.claim(conf, numbers)
    }

    /// Counts one more call relying on `conf`'s claim, asking for the claim when none is
    /// held or in flight; true when it is held.
    fn claim(&mut self, conf: ConfRef, mut numbers: Vec<String>) -> bool {
        if let Some(claim) = self.claims.get_mut(&conf) {
            claim.calls += 1;
            return claim.granted;
        }
        let calls = 1;
        let granted = false;
        self.claims.insert(conf.clone(), Claim { calls, granted });
        numbers.sort();
        numbers.dedup();
        numbers.truncate(MAX_ROUTED_NUMBERS);
        self.push(Output::Focus(Request::Claim { conf, numbers }));
        false
    }

    /// A caller of the service number entered a conference this node does not hold: it
    /// claims it (the conference's numbers then route here) and goes on once granted (its
    /// flow, or its join). When another node holds it, the caller is brought there.
    pub(super) fn wait_for_claim(
        &mut self,
        call: CallId,
        conf: ConfRef,
        waiting: Claiming,
        now: Instant,
    ) {
        let mut numbers: Vec<String> = waiting
            .doc()
            .all_numbers()
            .into_iter()
            .map(String::from)
            .collect();
        // An ad-hoc room has no numbers: it is reached by its name.
        if numbers.is_empty() {
            numbers.push(conf.id.clone());
        }
        let Some(f) = self.flow_mut(call) else {
            tracing::info!(conference = %conf, "another node hosts the conference: hanging up");
            return self.hang_up(call, now);
        };
        f.claiming = Some(waiting);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let before = c.focus.replace(conf.clone());
        // Not held here (`hosts` said so): the join waits for the registry's answer.
        self.claim(conf, numbers);
        self.unfocus(before);
    }

    /// Whether this node hosts `conf` (a caller about to join it): a call that reached
    /// it another way (the service number) now relies on the claim too.
    pub(super) fn hosts(&mut self, call: CallId, conf: &ConfRef) -> bool {
        // A bridge room is this node's own.
        let private = self.conferences.get(conf).is_some_and(|l| l.private);
        if !self.settings.cluster || private {
            return true;
        }
        if !self.claims.get(conf).is_some_and(|c| c.granted) {
            return false;
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        if c.focus.as_ref() != Some(conf) {
            let before = c.focus.replace(conf.clone());
            if let Some(claim) = self.claims.get_mut(conf) {
                claim.calls += 1;
            }
            self.unfocus(before);
        }
        true
    }

    /// A call routed to `conf` ended: the last one releases the claim.
    pub(super) fn unfocus(&mut self, conf: Option<ConfRef>) {
        let Some(conf) = conf else {
            return;
        };
        let Some(claim) = self.claims.get_mut(&conf) else {
            return;
        };
        claim.calls = claim.calls.saturating_sub(1);
        if claim.calls == 0 {
            self.claims.remove(&conf);
            self.push(Output::Focus(Request::Release(conf)));
        }
    }

    /// What the focus registry decided.
    pub fn handle_focus(&mut self, event: Event, now: Instant) {
        match event {
            Event::Granted(conf) => {
                let Some(claim) = self.claims.get_mut(&conf) else {
                    return;
                };
                claim.granted = true;
                tracing::info!(conference = %conf, "focus: hosting here");
                for call in self.waiting_for(&conf) {
                    self.take_ports(call, now);
                }
                for call in self.claiming(&conf) {
                    match self.flow_mut(call).and_then(|f| f.claiming.take()) {
                        Some(Claiming::Lookup(id, doc)) => {
                            self.with_flow(call, now, |f, now| f.on_lookup(now, vec![(id, doc)]));
                        }
                        Some(Claiming::Join(decision)) => {
                            self.join(call, conf.clone(), *decision, now);
                        }
                        None => {}
                    }
                }
            }
            Event::Refused { conf, holder } => {
                tracing::info!(conference = %conf, holder = %holder.node, "focus: hosted by another node, refusing its callers");
                if let Some(route) = &holder.route {
                    for call in self.claiming(&conf) {
                        self.relay(call, &conf, route, now);
                    }
                }
                self.refuse_waiting(&conf, HELD_ELSEWHERE_RETRY_AFTER, now);
            }
            Event::Unavailable(conf) => {
                tracing::warn!(conference = %conf, "focus: no claim possible, refusing its callers");
                self.refuse_waiting(&conf, NO_CLAIM_RETRY_AFTER, now);
            }
            Event::Lost { conf, holder } => {
                tracing::warn!(conference = %conf, %holder, "focus: claim lost to another node, ending the room here");
                self.claims.remove(&conf);
                self.refuse_waiting(&conf, HELD_ELSEWHERE_RETRY_AFTER, now);
                let calls: Vec<CallId> = self
                    .calls
                    .iter()
                    .filter(|(_, c)| c.focus.as_ref() == Some(&conf))
                    .map(|(k, _)| *k)
                    .collect();
                for call in calls {
                    self.hang_up(call, now);
                }
            }
        }
    }

    /// Unanswered calls routed to `conf`.
    fn waiting_for(&self, conf: &ConfRef) -> Vec<CallId> {
        self.answering
            .iter()
            .filter(|(_, a)| a.focus.as_ref() == Some(conf))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Brings a service-number caller to the node hosting its conference, at `route`
    /// (`sip:HOST:PORT`): the caller waits in a private room of its own while this node
    /// dials the conference's number there, and the answer joins that room. Digits pass
    /// through (the focus asks for the PIN); either side hanging up ends the other.
    fn relay(&mut self, call: CallId, conf: &ConfRef, route: &str, now: Instant) {
        let Some(waiting) = self.flow_mut(call).and_then(|f| f.claiming.take()) else {
            return;
        };
        let addr = route.strip_prefix("sip:").and_then(|a| a.parse().ok());
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        // It relies on the claim no longer: the room it joins is its own.
        c.focus = None;
        let from = caller_from(&c.party);
        let room = ConfRef {
            account: conf.account.clone(),
            id: format!("relay:{:x}", call.0),
        };
        let Some(addr) = addr.filter(|_| self.open_room(&room, now)) else {
            tracing::warn!(conference = %conf, %route, "relay: no usable route to the focus");
            return self.hang_up(call, now);
        };
        let number = waiting
            .doc()
            .all_numbers()
            .first()
            .map_or(conf.id.clone(), |n| (*n).to_owned());
        tracing::info!(conference = %conf, %route, %number, "relay: bringing the caller to the focus node");
        self.join_room(call, &room, now);
        let contact = Contact {
            uri: format!("sip:{number}@{addr}"),
            addr,
            auth: None,
            host: None,
            protocol: Protocol::Udp,
            caller_id: None,
            confirm: false,
        };
        let endpoint = Endpoint::new(number, vec![contact], Ring::Simultaneous);
        let plan = Plan::once(RELAY_TIMEOUT);
        self.start_order(
            Purpose::Relay { room },
            from,
            vec![endpoint],
            plan,
            None,
            now,
        );
    }

    /// The caller of relay room `room` left while its leg to the focus node still rings:
    /// the leg is cancelled rather than left to ring until answered (then hung up).
    pub(super) fn abandon_relay(&mut self, room: &ConfRef, now: Instant) {
        self.abandon_orders(
            |p| matches!(p, Purpose::Relay { room: r } if r == room),
            now,
        );
    }

    /// Answered calls waiting to join `conf` until this node holds it.
    fn claiming(&self, conf: &ConfRef) -> Vec<CallId> {
        self.calls
            .iter()
            .filter(|(_, c)| c.focus.as_ref() == Some(conf))
            .filter(|(_, c)| matches!(&c.stage, Stage::Flow(f) if f.claiming.is_some()))
            .map(|(k, _)| *k)
            .collect()
    }

    fn refuse_waiting(&mut self, conf: &ConfRef, retry_after: &str, now: Instant) {
        self.claims.remove(conf);
        for call in self.waiting_for(conf) {
            let retry = vec![("Retry-After", retry_after.to_string())];
            self.reject(call, 503, "Service Unavailable", retry);
        }
        for call in self.claiming(conf) {
            tracing::info!(conference = %conf, "not hosted here: hanging up the service number's caller");
            if let Some(c) = self.calls.get_mut(&call) {
                // It relied on a claim that is gone.
                c.focus = None;
            }
            self.hang_up(call, now);
        }
    }
}
