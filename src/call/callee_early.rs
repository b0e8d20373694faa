//! A callee's own early media reaches its callflow caller, as FreeSWITCH passes a bridge's
//! early media unless `ignore_early_media`: when a branch's provisional response carries
//! SDP (a carrier's "the number you dialed...", the far end's own ringback), that SDP is
//! taken as the answer for now, the branch's media starts on the worker of the caller's
//! early media and sits in the caller's lobby, heard one way, and our ringback stops
//! (`super::ringback`). Its 200 keeps that media (updated if the 200's SDP differs) and
//! bridges as any answer does. If the branch fails, its media goes and the caller hears
//! our ringback again while the others ring, as FreeSWITCH rings back anew on its next
//! attempt (a failover gateway, the next member of a `single` ring).
//!
//! Which branches are heard: none of a node with `ignore_early_media` (Kazoo's ring groups
//! always bridge so); otherwise a branch ringing alone (a `resources` gateway, a device),
//! not one ringing beside others (FreeSWITCH would let its early media win the race and
//! cancel them), not a forward that must confirm with a key, and only for a caller who
//! offered SDP (early media needs an answer to travel on).

use std::time::Instant;

use crate::media::worker::Command;
use crate::sip::{Body, CallId};

use super::dial_order::{EarlyLeg, Leg, LegState, Purpose};
use super::early::Early;
use super::output::SipAction;
use super::plane::CallPlane;

impl CallPlane {
    /// Branch `leg` of `caller` sent a provisional response with SDP: its media starts,
    /// for the caller to hear, if it may be heard.
    pub(super) fn branch_early_media(&mut self, leg: CallId, caller: CallId, body: &Body) {
        if !self.may_hear_early(leg, caller) {
            return;
        }
        let Some(worker) = self
            .answering
            .get(&caller)
            .map(|a| self.early_worker(&a.party))
        else {
            return;
        };
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let LegState::Ringing(sdp) = &l.state else {
            return;
        };
        // Read on a copy: the offer stays open for the 200's answer.
        let neg = match sdp
            .clone()
            .accept_answer(&String::from_utf8_lossy(&body.bytes))
        {
            Ok(neg) => neg,
            Err(e) => {
                tracing::info!(call = %l.call_id, error = %e, "dial: unusable early media SDP, ignored");
                return;
            }
        };
        let LegState::Ringing(sdp) = std::mem::replace(&mut l.state, LegState::Joining) else {
            return;
        };
        tracing::info!(call = %l.call_id, codec = ?neg.codec, "dial: the caller hears the callee's early media");
        let source = l.contact.addr.ip();
        l.state = LegState::Early(Box::new(EarlyLeg {
            sdp: *sdp,
            neg: neg.clone(),
            worker,
        }));
        self.lobby(leg, worker, &neg, source);
        self.hear_early_leg(caller);
    }

    /// Whether `caller` may hear branch `leg`'s early media (see the module's comment).
    fn may_hear_early(&self, leg: CallId, caller: CallId) -> bool {
        let walk = self.answering.get(&caller).and_then(|a| a.walk.as_ref());
        let offered = walk.is_some_and(|w| matches!(w.early, Early::Ports | Early::Media(_)));
        let passed = walk.is_some_and(|w| !w.ignore_early_media);
        let Some(l) = self.legs.get(&leg) else {
            return false;
        };
        let alone = !self
            .legs
            .iter()
            .any(|(c, other)| *c != leg && other.order == l.order);
        offered && passed && alone && !l.contact.confirm
    }

    /// Seats `caller`'s early branch, if it has one, in the caller's lobby once that is
    /// up: the ringback stops. Whether it did.
    pub(super) fn hear_early_leg(&mut self, caller: CallId) -> bool {
        let Some(worker) = self.early_media(caller).map(|m| m.worker) else {
            return false;
        };
        let Some(leg) = self.early_leg_of(caller) else {
            return false;
        };
        self.stop_ringback(caller);
        self.command_to(
            worker,
            Command::EarlyMedia {
                callee: leg.0,
                caller: caller.0,
            },
        );
        true
    }

    /// The branch whose early media `caller` hears.
    fn early_leg_of(&self, caller: CallId) -> Option<CallId> {
        self.legs.iter().find_map(|(call, l)| {
            let early = matches!(l.state, LegState::Early(_));
            let purpose = self.orders.get(&l.order).map(|o| &o.purpose);
            let mine = matches!(purpose, Some(Purpose::Bridge { caller: c }) if *c == caller);
            (early && mine).then_some(*call)
        })
    }

    /// Whether `call` is a branch heard in early media.
    pub(super) fn is_early_leg(&self, call: CallId) -> bool {
        let leg = self.legs.get(&call);
        leg.is_some_and(|l| matches!(l.state, LegState::Early(_)))
    }

    /// An early branch whose media failed (silent past the RTP timeout, or it could not
    /// be seated): it is given up as a failed branch.
    pub(super) fn early_leg_lost(&mut self, call: CallId, now: Instant) {
        tracing::info!(%call, "dial: the callee's early media failed: given up");
        self.sip(SipAction::Cancel { call });
        self.leg_failed(call, "MEDIA_TIMEOUT", false, now);
    }

    /// A branch that is gone (`leg`, already forgotten): its early media, if any, goes,
    /// and while the order is undecided its caller hears ringback again.
    pub(super) fn silence_early_leg(&mut self, call: CallId, leg: &Leg) {
        let LegState::Early(e) = &leg.state else {
            return;
        };
        self.command_to(e.worker, Command::Leave { call: call.0 });
        let Some(o) = self.orders.get(&leg.order) else {
            return;
        };
        let answered = o.outcomes.iter().any(|(_, r)| matches!(r, Some(Ok(_))));
        if let (Purpose::Bridge { caller }, false) = (&o.purpose, answered) {
            let caller = *caller;
            self.resume_ringback(caller);
        }
    }
}
