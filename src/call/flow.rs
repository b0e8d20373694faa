//! Carrying out a caller flow (`conference::flow`) for a call in its worker's lobby:
//! prompts, lookups, conference state, name recording, and at the end the join or hang-up.

use std::time::Instant;

use crate::conference::flow::{Flow, FlowAction, Target};
use crate::media::worker::{Command, Target as PlayTarget};
use crate::sip::CallId;
use crate::sounds::Scope;

use super::{Calls, Stage};

/// The flow of one call and what it has in flight.
pub struct CallerFlow {
    pub flow: Flow,
    playback: Option<u64>,
    recording: Option<u64>,
}

impl CallerFlow {
    pub fn new(flow: Flow) -> Self {
        CallerFlow {
            flow,
            playback: None,
            recording: None,
        }
    }
}

impl Calls {
    /// Feeds the call's flow (if it is in one) and carries out what it asks, until it asks
    /// nothing more.
    pub(super) async fn with_flow(&mut self, call: CallId, feed: impl FnOnce(&mut Flow, Instant)) {
        let Some(f) = self.flow_mut(call) else {
            return;
        };
        feed(&mut f.flow, Instant::now());
        while let Some(action) = self.flow_mut(call).and_then(|f| f.flow.poll()) {
            self.carry_out(call, action).await;
        }
    }

    fn flow_mut(&mut self, call: CallId) -> Option<&mut CallerFlow> {
        match &mut self.calls.get_mut(&call)?.stage {
            Stage::Flow(f) => Some(f),
            _ => None,
        }
    }

    async fn carry_out(&mut self, call: CallId, action: FlowAction) {
        let now = Instant::now();
        match action {
            // The call was answered before its flow started.
            FlowAction::Answer => {}
            FlowAction::Play { media, .. } => self.play_prompt(call, &media),
            FlowAction::StopPlayback => {
                if let Some(id) = self.flow_mut(call).and_then(|f| f.playback.take()) {
                    self.playbacks.remove(&id);
                    self.command(call, Command::StopPlayback { id });
                }
            }
            FlowAction::FindConference { number } => {
                let found = self
                    .store
                    .find_by_number(&self.account, &number)
                    .map_err(|e| tracing::error!(error = %e, "store: find by number"))
                    .unwrap_or_default();
                let matches = found.into_iter().map(|c| (c.id, c.doc)).collect();
                if let Some(f) = self.flow_mut(call) {
                    f.flow.on_lookup(now, matches);
                }
            }
            FlowAction::QueryConference { id } => {
                let state = self
                    .conferences
                    .get(&self.sip_conference(&id))
                    .map(|l| l.state())
                    .unwrap_or_default();
                if let Some(f) = self.flow_mut(call) {
                    f.flow.on_conference_state(now, state);
                }
            }
            FlowAction::RecordName { max } => {
                let id = self.new_id();
                self.recordings.insert(id, call);
                if let Some(f) = self.flow_mut(call) {
                    f.recording = Some(id);
                }
                self.command(
                    call,
                    Command::RecordCall {
                        call: call.0,
                        max,
                        id,
                    },
                );
            }
            FlowAction::StopRecording => {
                if let Some(id) = self.flow_mut(call).and_then(|f| f.recording) {
                    self.command(call, Command::StopRecording { id });
                }
            }
            FlowAction::Join(decision) => self.join(call, *decision).await,
            FlowAction::Hangup => self.hang_up(call).await,
        }
    }

    /// Plays prompts to a caller in the lobby; media that cannot play counts as played.
    fn play_prompt(&mut self, call: CallId, media: &[String]) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let lang = match &c.stage {
            Stage::Flow(f) => f.flow_language(),
            _ => "en".to_string(),
        };
        let scope = Scope {
            language: &lang,
            account: &self.account,
        };
        let Some(sound) = self.sounds.open(media, scope, c.rate) else {
            if let Some(f) = self.flow_mut(call) {
                f.flow.on_prompt_finished(Instant::now());
            }
            return;
        };
        let id = self.new_id();
        self.playbacks.insert(id, call);
        if let Some(f) = self.flow_mut(call) {
            f.playback = Some(id);
        }
        let target = PlayTarget::Call(call.0);
        self.command(call, Command::Play { target, id, sound });
    }

    /// A playback ended: a caller's prompt moves its flow on.
    pub(super) async fn on_playback_done(&mut self, id: u64, stopped: bool) {
        let Some(call) = self.playbacks.remove(&id) else {
            return;
        };
        let mine = self.flow_mut(call).is_some_and(|f| f.playback == Some(id));
        if !mine {
            return;
        }
        if let Some(f) = self.flow_mut(call) {
            f.playback = None;
        }
        if !stopped {
            self.with_flow(call, |f, now| f.on_prompt_finished(now))
                .await;
        }
    }

    /// A recorded name: kept as a WAV file for the entry and exit announcements.
    pub(super) async fn on_recorded(&mut self, id: u64, call: CallId, rate: u32, pcm: &[i16]) {
        if self.recordings.remove(&id).is_none() {
            return;
        }
        let media = (!pcm.is_empty())
            .then(|| self.save_name(call, rate, pcm))
            .flatten();
        if let Some(f) = self.flow_mut(call) {
            f.recording = None;
        }
        self.with_flow(call, |f, now| f.on_recording_finished(now, media))
            .await;
    }

    fn save_name(&mut self, call: CallId, rate: u32, pcm: &[i16]) -> Option<String> {
        let dir = self.names.join(&self.account);
        let path = dir.join(format!("name-{}.wav", call.0));
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| crate::media::wav_writer::write_file(&path, rate, pcm));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep the recorded name");
            return None;
        }
        let path = path.to_string_lossy().into_owned();
        if let Some(c) = self.calls.get_mut(&call) {
            c.name_file = Some(path.clone());
        }
        Some(path)
    }

    /// Sends a command to the worker holding the call's media.
    pub(super) fn command(&self, call: CallId, cmd: Command) {
        if let Some(c) = self.calls.get(&call) {
            self.workers[c.worker].send(cmd);
        }
    }
}

impl CallerFlow {
    /// The language prompts play in: the target conference's, else English.
    fn flow_language(&self) -> String {
        match self.flow.target() {
            Target::Conference { doc, .. } => doc.language().unwrap_or("en").to_string(),
            Target::ServiceMode => "en".to_string(),
        }
    }
}
