//! Carrying out a caller flow (`conference::flow`) for a call in its worker's lobby:
//! prompts, lookups, conference state, name recording, and at the end the join or hang-up.

use std::time::Instant;

use crate::conference::flow::{Flow, FlowAction, Target};
use crate::media::worker::{Command, Target as PlayTarget};
use crate::sip::CallId;

use super::output::{Caller, MediaCommand, Output, Sound, StoreQuery, StoreRequest};
use super::plane::{CallPlane, CallerFlow, Lookup, Stage};

impl CallerFlow {
    pub fn new(flow: Flow) -> Self {
        CallerFlow {
            flow,
            playback: None,
            recording: None,
            claiming: None,
        }
    }

    /// The language prompts play in: the target conference's, else English.
    fn language(&self) -> String {
        match self.flow.target() {
            Target::Conference { doc, .. } => doc.language().unwrap_or("en").to_string(),
            Target::ServiceMode => "en".to_string(),
        }
    }
}

impl CallPlane {
    /// Feeds the call's flow (if it is in one) and carries out what it asks, until it asks
    /// nothing more.
    pub(super) fn with_flow(
        &mut self,
        call: CallId,
        now: Instant,
        feed: impl FnOnce(&mut Flow, Instant),
    ) {
        let Some(f) = self.flow_mut(call) else {
            return;
        };
        feed(&mut f.flow, now);
        while let Some(action) = self.flow_mut(call).and_then(|f| f.flow.poll()) {
            self.carry_out(call, action, now);
        }
    }

    pub(super) fn flow_mut(&mut self, call: CallId) -> Option<&mut CallerFlow> {
        match &mut self.calls.get_mut(&call)?.stage {
            Stage::Flow(f) => Some(f),
            _ => None,
        }
    }

    fn carry_out(&mut self, call: CallId, action: FlowAction, now: Instant) {
        match action {
            // The call was answered before its flow started.
            FlowAction::Answer => {}
            FlowAction::Play { media, .. } => self.play_prompt(call, media),
            FlowAction::StopPlayback => {
                if let Some(id) = self.flow_mut(call).and_then(|f| f.playback.take()) {
                    self.playbacks.remove(&id);
                    self.command(call, Command::StopPlayback { id });
                }
            }
            FlowAction::FindConference { number } => {
                let id = self.new_id();
                self.lookups.insert(id, (call, Lookup::Find));
                let account = self.account(call);
                let query = StoreQuery::FindByNumber { number };
                self.push(Output::Store(StoreRequest { id, account, query }));
            }
            FlowAction::QueryConference { id } => {
                let state = self
                    .conferences
                    .get(&self.sip_conference(call, &id))
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
                let record = Command::RecordCall {
                    call: call.0,
                    max,
                    id,
                };
                self.command(call, record);
            }
            FlowAction::StopRecording => {
                if let Some(id) = self.flow_mut(call).and_then(|f| f.recording) {
                    self.command(call, Command::StopRecording { id });
                }
            }
            FlowAction::FetchHook { url } => {
                let name = match self.flow_mut(call).map(|f| f.flow.target()) {
                    Some(Target::Conference { id, doc }) => doc.name().unwrap_or(id).to_string(),
                    _ => String::new(),
                };
                self.fetch_hook(call, url, &name);
            }
            FlowAction::Join(decision) => {
                let id = self.sip_conference(call, &decision.conference_id);
                self.join(call, id, *decision, now);
            }
            FlowAction::Hangup => self.hang_up(call, now),
        }
    }

    /// Plays prompts to a caller in the lobby; the shell reports media that cannot play
    /// as played.
    pub(super) fn play_prompt(&mut self, call: CallId, media: Vec<String>) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let language = match &c.stage {
            Stage::Flow(f) => f.language(),
            _ => "en".to_string(),
        };
        let (worker, rate) = (c.worker, c.rate);
        let id = self.new_id();
        self.playbacks.insert(id, call);
        if let Some(f) = self.flow_mut(call) {
            f.playback = Some(id);
        }
        let sound = Sound {
            media,
            looping: None,
            language,
            account: self.account(call),
            // Lobby prompts speak in the language's voice; the profile's is the room's.
            voice: None,
            rate,
        };
        let target = PlayTarget::Call(call.0);
        self.media(worker, MediaCommand::Play { target, id, sound });
    }

    /// A playback ended: a caller's prompt moves its flow on; a member's hold music is off,
    /// and a wait hook's round that ran out asks the hook again.
    pub(super) fn on_playback_done(&mut self, id: u64, stopped: bool, now: Instant) {
        if let Some((conf, call)) = self.moh_done(id)
            && !stopped
        {
            self.waiting_sound_ended(&conf, call);
        }
        let Some(call) = self.playbacks.get(&id).copied() else {
            return;
        };
        if self.ringback_done(id, call) {
            return;
        }
        self.playbacks.remove(&id);
        let mine = self.flow_mut(call).is_some_and(|f| f.playback == Some(id));
        if !mine {
            return;
        }
        if let Some(f) = self.flow_mut(call) {
            f.playback = None;
        }
        if !stopped {
            self.with_flow(call, now, |f, now| f.on_prompt_finished(now));
        }
    }

    /// A recorded name: the shell keeps it as a WAV file for the entry and exit
    /// announcements, then answers with [`CallPlane::handle_name_saved`].
    pub(super) fn on_recorded(
        &mut self,
        id: u64,
        call: CallId,
        rate: u32,
        pcm: Vec<i16>,
        now: Instant,
    ) {
        if self.recordings.remove(&id).is_none() {
            return;
        }
        if let Some(f) = self.flow_mut(call) {
            f.recording = None;
        }
        if pcm.is_empty() {
            return self.handle_name_saved(call, None, now);
        }
        let account = self.account(call);
        let caller = self
            .calls
            .get(&call)
            .and_then(|c| Caller::from_uri(&c.party.from.uri));
        self.push(Output::SaveName {
            call,
            account,
            caller,
            rate,
            pcm,
        });
    }

    /// The recorded name's file (`None`: nothing recorded, or it could not be kept).
    pub fn handle_name_saved(&mut self, call: CallId, path: Option<String>, now: Instant) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.name_file.clone_from(&path);
        }
        self.with_flow(call, now, |f, now| f.on_recording_finished(now, path));
    }
}
