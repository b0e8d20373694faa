//! Each tick of a conference: feed the mixer from the calls' jitter buffers, then send the
//! mixes (a shared mix encoded once per codec and encoder setup), record, and report events.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Instant;

use mixer::{Conference, ConferenceId, Event as MixerEvent, Profile, TickHandler, TickOutput};

use super::{CallKey, Media, Report, SharedEncode};
use crate::media::call_recording::CallRecording;
use crate::media::codec::Encoder;
use crate::media::leg::LegEvent;

/// The report of a finished caller recording.
pub(super) fn recorded(call: CallKey, r: CallRecording) -> Report {
    Report::Recorded {
        id: r.id,
        call,
        rate: r.rate,
        pcm: r.pcm,
    }
}

impl Media {
    pub(super) fn forward_events(&mut self, id: ConferenceId, conf: &mut Conference) {
        while let Some(ev) = conf.poll_event() {
            let (member, talking, energy) = match ev {
                MixerEvent::StartTalking { member, energy } => (member, true, energy),
                MixerEvent::StopTalking { member, energy } => (member, false, energy),
                MixerEvent::PlaybackDone { id, stopped, .. } => {
                    self.playbacks.remove(&id.0);
                    self.report(Report::PlaybackDone { id: id.0, stopped });
                    continue;
                }
            };
            let call = self
                .conferences
                .get(&id)
                .and_then(|c| c.by_member.get(&member));
            if let Some(&call) = call {
                self.report(Report::Talking {
                    call,
                    talking,
                    energy,
                });
            }
        }
    }

    /// Sends one tick's mixes: a mix heard by several calls of one codec is encoded once.
    fn send_mixes(&mut self, id: ConferenceId, out: &TickOutput, profile: &Profile) {
        let Some(calls) = self.conferences.get_mut(&id) else {
            return;
        };
        let mut listeners = vec![0usize; out.mixes().len()];
        for r in out.routes() {
            listeners[r.mix] += 1;
        }
        // Encoded payload per (mix, encoder) for this tick.
        let mut encoded: Vec<(usize, SharedEncode, std::ops::Range<usize>)> = Vec::new();
        self.payload.clear();
        for r in out.routes() {
            let Some(s) = calls
                .by_member
                .get(&r.member)
                .and_then(|c| self.sessions.get_mut(c))
            else {
                continue;
            };
            let mix = &out.mixes()[r.mix];
            let key = mix.shared.map(|volume| SharedEncode {
                codec: s.leg.config().codec,
                options: s.leg.config().codec_options,
                volume,
            });
            let Some(key) = key.filter(|_| {
                listeners[r.mix] >= 2 && s.shares_payload(profile.frame_len_at(mix.rate))
            }) else {
                s.send_pcm(self.now, &mix.pcm, &mut self.io);
                continue;
            };
            let range = match encoded.iter().find(|(m, k, _)| *m == r.mix && *k == key) {
                Some((_, _, range)) => range.clone(),
                None => {
                    let Some(enc) = shared_encoder(&mut calls.shared, key) else {
                        s.send_pcm(self.now, &mix.pcm, &mut self.io);
                        continue;
                    };
                    let start = self.payload.len();
                    enc.encode(&mix.pcm, &mut self.payload);
                    encoded.push((r.mix, key, start..self.payload.len()));
                    start..self.payload.len()
                }
            };
            s.send_payload(self.now, &self.payload[range], &mut self.io);
        }
        for rec in &calls.recorders {
            if let Some(pcm) = out.pcm_for(rec.member) {
                rec.frames.push(pcm);
            }
        }
    }
}

fn shared_encoder(
    shared: &mut HashMap<SharedEncode, Box<dyn Encoder>>,
    key: SharedEncode,
) -> Option<&mut Box<dyn Encoder>> {
    match shared.entry(key) {
        Entry::Occupied(e) => Some(e.into_mut()),
        Entry::Vacant(v) => match key.codec.encoder(key.options) {
            Ok(e) => Some(v.insert(e)),
            Err(e) => {
                tracing::warn!(error = %e, "shared encoder");
                None
            }
        },
    }
}

impl TickHandler for Media {
    fn before_tick(&mut self, id: ConferenceId, conf: &mut Conference) {
        let Some(calls) = self.conferences.get(&id) else {
            return;
        };
        for call in calls.by_member.values() {
            let Some(s) = self.sessions.get_mut(call) else {
                continue;
            };
            let samples = conf.profile().frame_len_at(s.leg.config().pcm_rate());
            s.feed(self.now, samples);
            let mut pressed = false;
            while let Some(ev) = s.leg.poll_event() {
                match ev {
                    LegEvent::Dtmf(digit) => {
                        pressed = true;
                        let _ = self.reports.send(Report::Dtmf { call: *call, digit });
                    }
                    LegEvent::RemoteMoved(to) => tracing::info!(call, %to, "media from"),
                }
            }
            // Any digit ends a recording (the caller's "press any key when done").
            if let Some(r) = s.recording.take_if(|r| pressed || r.is_full()) {
                let _ = self.reports.send(recorded(*call, r));
            }
        }
        self.mixing_since = Instant::now();
    }

    fn after_tick(&mut self, id: ConferenceId, conf: &mut Conference, out: &TickOutput) {
        self.metrics.mix_tick.observe(self.mixing_since.elapsed());
        self.send_mixes(id, out, conf.profile());
        self.forward_events(id, conf);
    }
}
