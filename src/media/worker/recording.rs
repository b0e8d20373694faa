//! Recording a caller's voice (returned as PCM) and a conference's mix (written to a WAV).

use std::path::PathBuf;
use std::time::Duration;

use mixer::{ConferenceId, MemberConfig, MemberFlags};

use super::seating::is_lobby;
use super::tick::recorded;
use super::{CallKey, Recorder, Report, Worker};
use crate::media::call_recording::CallRecording;
use crate::media::wav_writer;

/// The recorder hears the conference like any listener and is never heard.
const LISTENER: MemberFlags = MemberFlags {
    speak: false,
    hear: true,
    moderator: false,
};

impl Worker {
    /// Starts recording the caller; any earlier recording of the call is finished first.
    pub(super) fn record_call(&mut self, call: CallKey, max: Duration, id: u64) {
        let Some(s) = self.media.sessions.get_mut(&call) else {
            tracing::debug!(call, "record: no such call");
            return;
        };
        let rate = s.leg.config().pcm_rate();
        let earlier = s.recording.replace(CallRecording::new(id, rate, max));
        if let Some(r) = earlier {
            self.media.report(recorded(call, r));
        }
    }

    pub(super) fn record_conference(&mut self, conference: ConferenceId, path: PathBuf, id: u64) {
        let fail = |reason: &str| Report::RecordingFailed {
            id,
            path: path.clone(),
            reason: reason.into(),
        };
        let rate = match self.scheduler.get(conference) {
            Some(c) if !is_lobby(conference) => c.profile().rate(),
            _ => return self.media.report(fail("no such conference on this worker")),
        };
        let cfg = MemberConfig {
            rate,
            flags: LISTENER,
            ..MemberConfig::default()
        };
        let member = match self.with_conf(conference, |c, _| c.add_member(cfg)) {
            Some(Ok((member, _input))) => member,
            Some(Err(e)) => return self.media.report(fail(&e.to_string())),
            None => return self.media.report(fail("no such conference on this worker")),
        };
        let reports = self.media.reports.clone();
        let started = wav_writer::spawn(path.clone(), rate, move |path, result| {
            let _ = reports.send(match result {
                Ok(seconds) => Report::RecordingDone { id, path, seconds },
                Err(e) => Report::RecordingFailed {
                    id,
                    path,
                    reason: e.to_string(),
                },
            });
        });
        match started {
            Ok(frames) => {
                if let Some(calls) = self.media.conferences.get_mut(&conference) {
                    calls.recorders.push(Recorder { id, member, frames });
                }
            }
            Err(e) => {
                self.with_conf(conference, |c, _| c.remove_member(member));
                self.media.report(fail(&e.to_string()));
            }
        }
    }

    pub(super) fn stop_recording(&mut self, id: u64) {
        let call = self
            .media
            .sessions
            .iter_mut()
            .find_map(|(&call, s)| Some(call).zip(s.recording.take_if(|r| r.id == id)));
        if let Some((call, r)) = call {
            return self.media.report(recorded(call, r));
        }
        let found = self
            .media
            .conferences
            .iter_mut()
            .find_map(|(&conf, calls)| {
                let i = calls.recorders.iter().position(|r| r.id == id)?;
                Some((conf, calls.recorders.remove(i)))
            });
        match found {
            // Dropping the recorder closes the writer's queue: it finishes the file.
            Some((conference, recorder)) => {
                self.with_conf(conference, |c, _| c.remove_member(recorder.member));
            }
            None => tracing::debug!(id, "stop: no such recording"),
        }
    }
}
