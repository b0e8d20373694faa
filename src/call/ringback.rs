//! Ringback for a callflow's caller while its bridged branches ring, as Kazoo has
//! FreeSWITCH do: once a branch rings (180/183), a caller who offered SDP is answered with
//! early media, a `183 Session Progress` carrying our SDP answer, and hears a ringback
//! tone in its leg (the ring group's `ringback`, else US ringback, 440+480 Hz 2 s on, 4 s
//! off); a caller without an offer gets `180 Ringing` (early media needs an offer to
//! answer without 100rel). The 200 that follows carries the same answer over the same
//! port pair (RFC 6337 §3.1.1), whether a branch answers (the bridge) or the callflow
//! goes on to a `conference` node; the tone stops then. A branch's own early media
//! takes the tone's place while it is heard (`super::callee_early`).

use std::time::Instant;

use crate::media::worker::{Command, Target as PlayTarget};
use crate::sdp::SdpSession;
use crate::sip::CallId;

use super::early::{Early, EarlyMedia};
use super::output::{Output, Ports, SipAction, Sound};
use super::plane::{CallPlane, Party, is_sdp, sdp_body};
use super::random::random;

/// FreeSWITCH's `us-ring`, Kazoo's default ringback, repeated for as long as it rings.
pub const DEFAULT_RINGBACK: &str = "tone_stream://%(2000,4000,440,480)";

impl CallPlane {
    /// A branch of `caller`'s bridging node rings: the caller hears ringback.
    pub(super) fn branch_rings(&mut self, caller: CallId) {
        let Some(a) = self.answering.get_mut(&caller) else {
            return;
        };
        let offered = a.offer.as_ref().is_some_and(is_sdp);
        let Some(walk) = a.walk.as_mut() else {
            return;
        };
        if !matches!(walk.early, Early::Silent) {
            return;
        }
        if offered {
            walk.early = Early::Ports;
            return self.push(Output::AllocatePorts { call: caller });
        }
        walk.early = Early::Ringing;
        self.ringing(caller);
    }

    fn ringing(&mut self, call: CallId) {
        self.sip(SipAction::Respond {
            call,
            reinvite: false,
            status: 180,
            reason: "Ringing",
            body: None,
        });
    }

    /// Whether `call` waits for the port pair of its early media.
    pub(super) fn wants_early_ports(&self, call: CallId) -> bool {
        let walk = self.answering.get(&call).and_then(|a| a.walk.as_ref());
        walk.is_some_and(|w| matches!(w.early, Early::Ports))
    }

    /// The early media's port pair: the caller gets its 183 and the ringback (no port
    /// pair: 180 instead; an offer we cannot answer: 488, as the 200 would have been).
    pub(super) fn early_ports(&mut self, call: CallId, ports: Ports, now: Instant) {
        let local = match ports {
            Ok(local) => local,
            Err(e) => {
                tracing::warn!(%call, error = %e, "no RTP port for early media: 180 instead");
                self.set_early(call, Early::Ringing);
                return self.ringing(call);
            }
        };
        let Some(a) = self.answering.get(&call) else {
            return;
        };
        let offer = a.offer.as_ref().map(|b| String::from_utf8_lossy(&b.bytes));
        let worker = self.early_worker(&a.party);
        let (source, ringback) = (
            a.party.source,
            a.walk.as_ref().and_then(|w| w.ringback.clone()),
        );
        let mut sdp = SdpSession::new(self.settings.policy.clone(), local, random());
        let (neg, answer) = match sdp.answer(offer.as_deref().unwrap_or_default()) {
            Ok(answered) => answered,
            Err(e) => {
                tracing::info!(error = %e, "rejected: SDP");
                let headers = vec![("Warning", e.warning(&self.settings.host))];
                self.reject(call, 488, "Not Acceptable Here", headers);
                return self.abandon_ring(call, now);
            }
        };
        let answer = sdp_body(answer);
        self.sip(SipAction::Respond {
            call,
            reinvite: false,
            status: 183,
            reason: "Session Progress",
            body: Some(answer.clone()),
        });
        self.lobby(call, worker, &neg, source);
        // Early media flows before any ACK.
        self.command_to(worker, Command::Confirm { call: call.0 });
        let sound = ringback.unwrap_or_else(|| DEFAULT_RINGBACK.to_string());
        let early = EarlyMedia {
            sdp,
            answer,
            worker,
            rate: self.settings.codec_options().pcm_rate(neg.codec),
            playback: None,
            sound,
        };
        self.set_early(call, Early::Media(Box::new(early)));
        // A branch's own early media may have come first (`super::callee_early`).
        if !self.hear_early_leg(call) {
            self.play_ringback(call);
        }
    }

    /// The worker holding a caller's early media: a branch's early media joins it there.
    pub(super) fn early_worker(&self, caller: &Party) -> usize {
        self.worker_of(&caller.sip_call_id)
    }

    fn set_early(&mut self, call: CallId, early: Early) {
        if let Some(walk) = self.answering.get_mut(&call).and_then(|a| a.walk.as_mut()) {
            walk.early = early;
        }
    }

    pub(super) fn early_media(&mut self, call: CallId) -> Option<&mut EarlyMedia> {
        let walk = self.answering.get_mut(&call)?.walk.as_mut()?;
        match &mut walk.early {
            Early::Media(m) => Some(m),
            _ => None,
        }
    }

    /// Plays the caller's ringback, looping, into its leg.
    fn play_ringback(&mut self, call: CallId) {
        let id = self.new_id();
        let account = self.account(call);
        let Some(m) = self.early_media(call) else {
            return;
        };
        m.playback = Some(id);
        let worker = m.worker;
        let sound = Sound {
            media: Vec::new(),
            looping: Some(m.sound.clone()),
            language: "en".into(),
            account,
            voice: None,
            rate: m.rate,
        };
        self.playbacks.insert(id, call);
        let target = PlayTarget::Call(call.0);
        self.media(
            worker,
            super::output::MediaCommand::Play { target, id, sound },
        );
    }

    /// Stops the caller's ringback, if it plays: a branch's early media takes its place.
    pub(super) fn stop_ringback(&mut self, call: CallId) {
        let Some(m) = self.early_media(call) else {
            return;
        };
        let (worker, playback) = (m.worker, m.playback.take());
        if let Some(id) = playback {
            self.playbacks.remove(&id);
            self.command_to(worker, Command::StopPlayback { id });
        }
    }

    /// The ringback again, if the caller still waits in early media and hears nothing.
    pub(super) fn resume_ringback(&mut self, call: CallId) {
        if self.early_media(call).is_some_and(|m| m.playback.is_none()) {
            self.play_ringback(call);
        }
    }

    /// A ringback ended by itself: a custom one that could not play gives way to the
    /// default tone. Whether `id` was a ringback.
    pub(super) fn ringback_done(&mut self, id: u64, call: CallId) -> bool {
        let Some(m) = self.early_media(call).filter(|m| m.playback == Some(id)) else {
            return false;
        };
        m.playback = None;
        if m.sound != DEFAULT_RINGBACK {
            tracing::warn!(ringback = %m.sound, "ringback cannot play: the default instead");
            m.sound = DEFAULT_RINGBACK.to_string();
            self.play_ringback(call);
        }
        true
    }

    /// The early media of a caller now answered (by a branch, or going on to a
    /// `conference` node), its ringback stopped: the 200 reuses its session.
    pub(super) fn take_early(&mut self, call: CallId) -> Option<Box<EarlyMedia>> {
        let walk = self.answering.get_mut(&call)?.walk.as_mut()?;
        if !matches!(walk.early, Early::Media(_)) {
            return None;
        }
        self.stop_ringback(call);
        let walk = self.answering.get_mut(&call)?.walk.as_mut()?;
        let Early::Media(m) = std::mem::take(&mut walk.early) else {
            return None;
        };
        Some(m)
    }

    /// A caller going before its answer: its early media goes with it.
    pub(super) fn drop_early(&mut self, call: CallId) {
        if let Some(m) = self.take_early(call) {
            self.command_to(m.worker, Command::Leave { call: call.0 });
        }
    }
}
