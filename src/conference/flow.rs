//! The caller flow (spec §1) as a sans-IO state machine, one per call:
//! answer, welcome, conference number, role, PIN, capacity/lock/moderator
//! checks, name recording, then a [`JoinDecision`].
//!
//! Feed inputs (`on_*`, [`Flow::handle_timeout`]) with the current time and
//! drain [`Flow::poll`] after each. Each `Play` is answered by one
//! `on_prompt_finished`, except a play stopped by `StopPlayback`, whose end
//! must not be reported. Media strings in [`FlowAction::Play`] are
//! prompt ids, tones or paths as the doc gives them: open them through
//! `crate::sounds` in the conference's language.
//!
//! Decisions where the spec leaves room:
//! - attempts 1 and 2 play `conf-bad_conf` / `conf-bad_pin`; the 3rd failure
//!   plays only `conf-too_many_attempts`, then hangs up;
//! - callflow `moderator:true` makes the role a known moderator, so only the
//!   moderator PINs are asked for (as Kazoo's discovery does);
//! - capacity, lock and the moderator requirement are checked before the name
//!   is recorded, so a refused caller is not asked for it; the engine's
//!   `max-members` and lock still refuse a join that races past them;
//! - a review answer other than `1` (or none) records the name again.

use super::document::ConferenceDoc;
use super::profile;
use super::settings::{ConferencesConfig, DIGIT_TIMEOUT_MS};
use super::vocabulary::{Role, ToneSetting};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most digits of a conference number or PIN.
const MAX_DIGITS: usize = 16;
/// Between digits of a number or PIN.
const INTER_DIGIT: Duration = Duration::from_millis(2000);
/// Failures before `conf-too_many_attempts`.
const ATTEMPTS: u8 = 3;
/// Cap on a first-digit timeout, so a huge `pin_timeout` cannot overflow the clock.
const MAX_FIRST_DIGIT: Duration = Duration::from_secs(600);
/// Longest recorded name.
pub const NAME_MAX: Duration = Duration::from_secs(60);
/// The beep before name recording: 440 Hz, 500 ms on, 100 ms off.
pub const NAME_BEEP: &str = "tone_stream://%(500,100,440)";

/// The callflow `conference` element's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallflowOptions {
    /// `moderator:true` forces moderator; false forces nothing.
    pub moderator: bool,
    /// Override the doc's `play_entry_tone` / `play_exit_tone`.
    pub play_entry_tone: Option<ToneSetting>,
    pub play_exit_tone: Option<ToneSetting>,
    /// `welcome_prompt.play` (default true) and `welcome_prompt.media_id`.
    pub welcome: bool,
    pub welcome_media: Option<String>,
}

impl Default for CallflowOptions {
    fn default() -> Self {
        CallflowOptions {
            moderator: false,
            play_entry_tone: None,
            play_exit_tone: None,
            welcome: true,
            welcome_media: None,
        }
    }
}

impl CallflowOptions {
    /// For a call routed by number, with no callflow: the doc's
    /// `play_welcome` decides the welcome (a callflow would override it).
    pub fn for_doc(doc: &ConferenceDoc) -> Self {
        CallflowOptions {
            welcome: doc.play_welcome(),
            ..CallflowOptions::default()
        }
    }
}

/// Where the call goes, as the control plane resolved it.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A doc found by id or by the dialed number, or an ad-hoc `config`.
    Conference { id: String, doc: ConferenceDoc },
    /// Neither: ask for a conference number.
    ServiceMode,
}

/// Everything a flow needs up front.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSetup {
    pub target: Target,
    /// The number dialed, when it routed to the doc (decides the role).
    pub dialed: Option<String>,
    pub callflow: CallflowOptions,
    pub config: ConferencesConfig,
    /// The caller's `name_pronounced` media, reused instead of recording.
    pub name_media: Option<String>,
}

/// The answer to [`FlowAction::QueryConference`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConferenceState {
    /// Members now in the conference (0 if not running).
    pub members: u32,
    pub locked: bool,
    pub moderator_present: bool,
    /// The profile's `locked-sound`.
    pub locked_sound: Option<String>,
}

/// Member flags the join starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JoinFlags {
    pub mute: bool,
    pub deaf: bool,
    pub moderator: bool,
    /// Ends the conference when this member leaves.
    pub endconf: bool,
    /// Digits go to the others instead of the caller controls.
    pub dist_dtmf: bool,
    /// No hold music while alone (a dialed leg's `disable_moh`).
    pub nomoh: bool,
}

impl JoinFlags {
    /// The profile's `member-flags` (only [`profile::MEMBER_FLAGS`] get this far).
    pub fn add_member_flags(&mut self, flags: &[String]) {
        for flag in flags {
            match flag.as_str() {
                "mute" => self.mute = true,
                "deaf" => self.deaf = true,
                "moderator" => self.moderator = true,
                "endconf" => self.endconf = true,
                "dist-dtmf" => self.dist_dtmf = true,
                _ => {}
            }
        }
    }
}

/// The outcome of a successful flow.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinDecision {
    pub conference_id: String,
    pub doc: ConferenceDoc,
    pub role: Role,
    pub flags: JoinFlags,
    /// Played to everyone when this caller joins / leaves; they replace the
    /// profile's `enter-sound` / `exit-sound` for this caller.
    pub entry_sounds: Vec<String>,
    pub exit_sounds: Vec<String>,
    /// The recorded or reused name.
    pub name: Option<String>,
}

/// What the control plane must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum FlowAction {
    Answer,
    /// Play in turn to this caller; an interruptible play stops on a digit
    /// (the flow then emits [`FlowAction::StopPlayback`]).
    Play {
        media: Vec<String>,
        interruptible: bool,
    },
    StopPlayback,
    /// Look up the account's conferences by number; answer with `on_lookup`.
    FindConference {
        number: String,
    },
    /// Answer with `on_conference_state`.
    QueryConference {
        id: String,
    },
    /// Record the caller; answer with `on_recording_finished`.
    RecordName {
        max: Duration,
    },
    StopRecording,
    /// Fetch the jambonz `enterHook`; answer with `on_hook` (no media if it failed).
    FetchHook {
        url: String,
    },
    Join(Box<JoinDecision>),
    Hangup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Number,
    Pin,
    Review,
}

#[derive(Debug, Clone)]
struct Collect {
    purpose: Purpose,
    digits: String,
    max: usize,
    first_timeout: Duration,
    /// `None` while the prompt plays: the clock starts when it ends.
    deadline: Option<Instant>,
    prompt_playing: bool,
}

/// What follows a blocking prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    AfterWelcome,
    Record,
    Join,
    Hangup,
}

#[derive(Debug, Clone)]
enum State {
    Answering,
    Playing(Next),
    Collecting(Collect),
    /// The entered number, which then decides the role like a dialed one.
    LookingUp(String),
    Querying,
    Recording {
        deadline: Instant,
        stopping: bool,
    },
    /// Waiting for the enter hook's verbs.
    Entering,
    Done,
}

/// One caller's way into a conference.
#[derive(Debug)]
pub struct Flow {
    setup: FlowSetup,
    state: State,
    out: VecDeque<FlowAction>,
    /// Failures of the current step (number or PIN).
    failures: u8,
    /// The role known before the PIN (by number or forced).
    known_role: Option<Role>,
    role: Role,
    name: Option<String>,
}

impl Flow {
    pub fn new(setup: FlowSetup) -> Self {
        let name = setup.name_media.clone();
        Flow {
            setup,
            state: State::Answering,
            out: VecDeque::from([FlowAction::Answer]),
            failures: 0,
            known_role: None,
            role: Role::Member,
            name,
        }
    }

    /// Where the call was routed.
    pub fn target(&self) -> &Target {
        &self.setup.target
    }

    pub fn poll(&mut self) -> Option<FlowAction> {
        self.out.pop_front()
    }

    /// True once the flow has joined or hung up.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Collecting(c) => c.deadline,
            State::Recording {
                deadline,
                stopping: false,
            } => Some(*deadline),
            _ => None,
        }
    }

    pub fn on_answered(&mut self, _now: Instant) {
        if !matches!(self.state, State::Answering) {
            return;
        }
        let cf = &self.setup.callflow;
        if cf.welcome {
            let media = cf
                .welcome_media
                .clone()
                .unwrap_or_else(|| "conf-welcome".into());
            self.play(vec![media], Next::AfterWelcome);
        } else {
            self.after_welcome();
        }
    }

    pub fn on_prompt_finished(&mut self, now: Instant) {
        match &mut self.state {
            State::Playing(next) => match *next {
                Next::AfterWelcome => self.after_welcome(),
                Next::Record => {
                    self.state = State::Recording {
                        deadline: now + NAME_MAX,
                        stopping: false,
                    };
                    self.out.push_back(FlowAction::RecordName { max: NAME_MAX });
                }
                Next::Join => self.seat(),
                Next::Hangup => self.hang_up(),
            },
            State::Collecting(c) if c.prompt_playing => {
                c.prompt_playing = false;
                c.deadline = Some(now + c.first_timeout);
            }
            _ => {}
        }
    }

    pub fn on_digit(&mut self, now: Instant, digit: char) {
        match &mut self.state {
            State::Collecting(c) => {
                if c.prompt_playing {
                    c.prompt_playing = false;
                    self.out.push_back(FlowAction::StopPlayback);
                }
                if digit != '#' {
                    c.digits.push(digit);
                }
                if digit == '#' || c.digits.len() >= c.max {
                    self.collected();
                } else {
                    c.deadline = Some(now + INTER_DIGIT);
                }
            }
            State::Recording { stopping, .. } if !*stopping => self.stop_recording(),
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_none_or(|t| now < t) {
            return;
        }
        match self.state {
            State::Collecting(_) => self.collected(),
            State::Recording { .. } => self.stop_recording(),
            _ => {}
        }
    }

    /// The docs whose numbers contain the entered number.
    pub fn on_lookup(&mut self, _now: Instant, mut matches: Vec<(String, ConferenceDoc)>) {
        let State::LookingUp(number) = &self.state else {
            return;
        };
        match (matches.pop(), matches.is_empty()) {
            (Some((id, doc)), true) => {
                self.failures = 0;
                self.setup.dialed = Some(number.clone());
                self.setup.target = Target::Conference { id, doc };
                self.choose_role();
            }
            _ => self.failed(Purpose::Number),
        }
    }

    pub fn on_recording_finished(&mut self, _now: Instant, media: Option<String>) {
        if !matches!(self.state, State::Recording { .. }) {
            return;
        }
        self.name = media;
        match &self.name {
            Some(name) if self.setup.config.review_name() => {
                let media = vec![
                    "conf-your_announcement".into(),
                    name.clone(),
                    "conf-review".into(),
                ];
                self.collect(media, Purpose::Review, 1, DIGIT_TIMEOUT_MS);
            }
            _ => self.join(),
        }
    }

    /// The enter hook's media (none when it failed or had nothing to play): played, then
    /// the join.
    pub fn on_hook(&mut self, _now: Instant, media: Vec<String>) {
        if !matches!(self.state, State::Entering) {
            return;
        }
        if media.is_empty() {
            self.seat();
        } else {
            self.play(media, Next::Join);
        }
    }

    pub fn on_conference_state(&mut self, _now: Instant, state: ConferenceState) {
        if !matches!(self.state, State::Querying) {
            return;
        }
        let Some((_, doc)) = self.conference() else {
            return self.hang_up();
        };
        let profile = profile::resolve(doc, &self.setup.config, None).ok();
        let max = doc.max_participants();
        let engine_max = profile.as_ref().and_then(|p| p.mixer.max_members());
        let full =
            (max > 0 && state.members >= max) || engine_max.is_some_and(|m| state.members >= m);
        let refusal = if full {
            // The `max-members-sound`: the doc's `max_members_media`, else the profile's.
            let sound = profile
                .as_ref()
                .and_then(|p| p.sounds.get("max-members-sound").cloned());
            Some(Some(
                sound.unwrap_or_else(|| "conf-max_participants".into()),
            ))
        } else if state.locked {
            let sound = state
                .locked_sound
                .unwrap_or_else(|| "conf-max_participants".into());
            Some(Some(sound))
        } else if self.role == Role::Member
            && doc.require_moderator()
            && !profile.is_some_and(|p| p.waits_for_moderator())
            && !state.moderator_present
        {
            Some(doc.require_moderator_media().map(str::to_string))
        } else {
            None
        };
        match refusal {
            Some(Some(sound)) => self.play(vec![sound], Next::Hangup),
            Some(None) => self.hang_up(),
            None => self.announce_name(),
        }
    }

    fn conference(&self) -> Option<(&str, &ConferenceDoc)> {
        match &self.setup.target {
            Target::Conference { id, doc } => Some((id, doc)),
            Target::ServiceMode => None,
        }
    }

    fn after_welcome(&mut self) {
        match self.setup.target {
            Target::ServiceMode => self.ask_number(None),
            Target::Conference { .. } => self.choose_role(),
        }
    }

    /// `before` is a failure prompt played first, in the same interruptible play.
    fn ask_number(&mut self, before: Option<&str>) {
        let media = prompts(before, "conf-enter_conf_number");
        self.collect(
            media,
            Purpose::Number,
            MAX_DIGITS,
            self.setup.config.number_timeout_ms(),
        );
    }

    /// §1 step 4 (the intended rule) and step 6, then the PIN.
    fn choose_role(&mut self) {
        let Some((_, doc)) = self.conference() else {
            return self.hang_up();
        };
        let known = if self.setup.callflow.moderator {
            Some(Role::Moderator)
        } else {
            self.setup.dialed.as_deref().and_then(|d| {
                let member = doc.numbers(Role::Member).contains(&d);
                let moderator = doc.numbers(Role::Moderator).contains(&d);
                match (member, moderator) {
                    (true, false) => Some(Role::Member),
                    (false, true) => Some(Role::Moderator),
                    _ => None,
                }
            })
        };
        let pin_needed = match known {
            Some(role) => !doc.pins(role).is_empty(),
            None => !(doc.pins(Role::Member).is_empty() && doc.pins(Role::Moderator).is_empty()),
        };
        self.known_role = known;
        if pin_needed {
            self.ask_pin(None);
        } else {
            self.role = known.unwrap_or(Role::Member);
            self.query();
        }
    }

    fn ask_pin(&mut self, before: Option<&str>) {
        let timeout = self
            .conference()
            .and_then(|(_, doc)| doc.pin_timeout_ms())
            .unwrap_or_else(|| self.setup.config.pin_timeout_ms());
        let media = prompts(before, "conf-enter_conf_pin");
        self.collect(media, Purpose::Pin, MAX_DIGITS, timeout);
    }

    /// §1 step 5: the role a PIN entry grants, if any.
    fn classify_pin(&self, entry: &str) -> Option<Role> {
        let (_, doc) = self.conference()?;
        let member_pins = doc.pins(Role::Member);
        let moderator_pins = doc.pins(Role::Moderator);
        match self.known_role {
            Some(role) => doc.pins(role).contains(&entry).then_some(role),
            None if member_pins.contains(&entry)
                || (member_pins.is_empty() && entry.is_empty()) =>
            {
                Some(Role::Member)
            }
            None => moderator_pins.contains(&entry).then_some(Role::Moderator),
        }
    }

    fn collect(&mut self, media: Vec<String>, purpose: Purpose, max: usize, first_timeout_ms: u64) {
        self.out.push_back(FlowAction::Play {
            media,
            interruptible: true,
        });
        self.state = State::Collecting(Collect {
            purpose,
            digits: String::new(),
            max,
            first_timeout: Duration::from_millis(first_timeout_ms).min(MAX_FIRST_DIGIT),
            deadline: None,
            prompt_playing: true,
        });
    }

    fn collected(&mut self) {
        // Every branch below sets the next state.
        let State::Collecting(c) = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        if c.prompt_playing {
            self.out.push_back(FlowAction::StopPlayback);
        }
        match c.purpose {
            Purpose::Number if c.digits.is_empty() => self.failed(Purpose::Number),
            Purpose::Number => {
                self.out.push_back(FlowAction::FindConference {
                    number: c.digits.clone(),
                });
                self.state = State::LookingUp(c.digits);
            }
            Purpose::Pin => match self.classify_pin(&c.digits) {
                Some(role) => {
                    self.failures = 0;
                    self.role = role;
                    self.query();
                }
                None => self.failed(Purpose::Pin),
            },
            Purpose::Review if c.digits == "1" => self.join(),
            Purpose::Review => self.record_name(),
        }
    }

    fn failed(&mut self, purpose: Purpose) {
        self.failures += 1;
        if self.failures >= ATTEMPTS {
            return self.play(vec!["conf-too_many_attempts".into()], Next::Hangup);
        }
        if purpose == Purpose::Number {
            self.ask_number(Some("conf-bad_conf"));
        } else {
            self.ask_pin(Some("conf-bad_pin"));
        }
    }

    fn query(&mut self) {
        let Some((id, _)) = self.conference() else {
            return self.hang_up();
        };
        let id = id.to_string();
        self.state = State::Querying;
        self.out.push_back(FlowAction::QueryConference { id });
    }

    /// §1 step 9.
    fn announce_name(&mut self) {
        let wanted = self.conference().is_some_and(|(_, d)| d.play_name())
            && self.setup.config.support_name_announcement();
        if wanted && self.name.is_none() {
            self.record_name();
        } else {
            self.join();
        }
    }

    fn record_name(&mut self) {
        let media = vec!["conf-announce_your_name".into(), NAME_BEEP.into()];
        self.play(media, Next::Record);
    }

    fn stop_recording(&mut self) {
        if let State::Recording { stopping, .. } = &mut self.state {
            *stopping = true;
            self.out.push_back(FlowAction::StopRecording);
        }
    }

    /// jambonz runs the `enterHook` before every join (spec §6).
    fn join(&mut self) {
        let hook = self.conference().and_then(|(_, doc)| doc.enter_hook());
        match hook.map(str::to_string) {
            Some(url) => {
                self.state = State::Entering;
                self.out.push_back(FlowAction::FetchHook { url });
            }
            None => self.seat(),
        }
    }

    fn seat(&mut self) {
        let Some((id, doc)) = self.conference() else {
            return self.hang_up();
        };
        let cf = &self.setup.callflow;
        let play_name = doc.play_name() && self.setup.config.support_name_announcement();
        let name = self.name.clone().filter(|_| play_name);
        let config = &self.setup.config;
        let entry = cf
            .play_entry_tone
            .clone()
            .unwrap_or_else(|| doc.play_entry_tone());
        let exit = cf
            .play_exit_tone
            .clone()
            .unwrap_or_else(|| doc.play_exit_tone());
        // A tone that is on plays the profile's own sound, else the config's role tone.
        let tone = |key, role_tone: &str| {
            profile::own_sound(doc, config, key).unwrap_or_else(|| role_tone.to_string())
        };
        let mut decision = join_decision(
            id,
            doc,
            self.role,
            sounds(
                entry,
                &tone("enter-sound", config.entry_tone(self.role)),
                name.as_deref(),
                "conf-has_joined",
            ),
            sounds(
                exit,
                &tone("exit-sound", config.exit_tone(self.role)),
                name.as_deref(),
                "conf-has_left",
            ),
            name.clone(),
        );
        if let Ok(p) = profile::resolve(doc, config, None) {
            decision.flags.add_member_flags(&p.member_flags);
        }
        self.state = State::Done;
        self.out.push_back(FlowAction::Join(Box::new(decision)));
    }

    fn play(&mut self, media: Vec<String>, next: Next) {
        self.out.push_back(FlowAction::Play {
            media,
            interruptible: false,
        });
        self.state = State::Playing(next);
    }

    fn hang_up(&mut self) {
        self.state = State::Done;
        self.out.push_back(FlowAction::Hangup);
    }
}

/// The join of `role` into `doc` with its flags (§1 step 10, §6); public for
/// legs that skip the prompts (inter-node joins, dial-out).
pub fn join_decision(
    id: &str,
    doc: &ConferenceDoc,
    role: Role,
    entry_sounds: Vec<String>,
    exit_sounds: Vec<String>,
    name: Option<String>,
) -> JoinDecision {
    JoinDecision {
        conference_id: id.to_string(),
        doc: doc.clone(),
        role,
        flags: JoinFlags {
            mute: doc.join_muted(role),
            deaf: doc.join_deaf(role),
            moderator: role == Role::Moderator,
            endconf: doc.end_conference_on_exit(role),
            dist_dtmf: doc.distribute_dtmf(role),
            nomoh: false,
        },
        entry_sounds,
        exit_sounds,
        name,
    }
}

fn prompts(before: Option<&str>, prompt: &str) -> Vec<String> {
    before
        .into_iter()
        .chain([prompt])
        .map(str::to_string)
        .collect()
}

/// `[tone, name, announcement]`, each part only when present (an empty tone is none).
fn sounds(tone: ToneSetting, default: &str, name: Option<&str>, announcement: &str) -> Vec<String> {
    let tone = match tone {
        ToneSetting::On => Some(default.to_string()),
        ToneSetting::Off => None,
        ToneSetting::Custom(s) => Some(s),
    }
    .filter(|t| !t.is_empty());
    let name = name.map(|n| [n.to_string(), announcement.to_string()]);
    tone.into_iter().chain(name.into_iter().flatten()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::settings::{ENTRY_TONE, EXIT_TONE};
    use serde_json::{Map, Value, json};

    /// A flow on a virtual clock.
    struct Call {
        flow: Flow,
        t0: Instant,
        now: Instant,
    }

    impl Call {
        fn new(setup: FlowSetup) -> Call {
            let t0 = Instant::now();
            let mut call = Call {
                flow: Flow::new(setup),
                t0,
                now: t0,
            };
            assert_eq!(call.actions(), [FlowAction::Answer]);
            call.flow.on_answered(t0);
            call
        }

        fn actions(&mut self) -> Vec<FlowAction> {
            std::iter::from_fn(|| self.flow.poll()).collect()
        }

        fn advance(&mut self, ms: u64) {
            self.now += Duration::from_millis(ms);
            self.flow.handle_timeout(self.now);
        }

        fn finish_prompt(&mut self) -> Vec<FlowAction> {
            self.flow.on_prompt_finished(self.now);
            self.actions()
        }

        fn dial(&mut self, digits: &str) -> Vec<FlowAction> {
            for d in digits.chars() {
                self.advance(100);
                self.flow.on_digit(self.now, d);
            }
            self.actions()
        }

        fn state(&mut self, state: ConferenceState) -> Vec<FlowAction> {
            self.flow.on_conference_state(self.now, state);
            self.actions()
        }

        fn elapsed(&self) -> Duration {
            self.now - self.t0
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    /// The seed demo conference: member 1001/PIN 1234, moderator 1002/PIN 4321.
    fn demo() -> ConferenceDoc {
        ConferenceDoc::from_request(json!({
            "name": "demo", "conference_numbers": ["1000"],
            "member": {"numbers": ["1001"], "pins": ["1234"]},
            "moderator": {"numbers": ["1002"], "pins": ["4321"]}
        }))
        .unwrap_or_default()
    }

    fn setup(doc: ConferenceDoc, dialed: Option<&str>) -> FlowSetup {
        FlowSetup {
            target: Target::Conference {
                id: "demo".into(),
                doc,
            },
            dialed: dialed.map(str::to_string),
            callflow: CallflowOptions {
                welcome: false,
                ..CallflowOptions::default()
            },
            config: ConferencesConfig::default(),
            name_media: None,
        }
    }

    fn play(media: &[&str], interruptible: bool) -> FlowAction {
        FlowAction::Play {
            media: media.iter().map(|s| s.to_string()).collect(),
            interruptible,
        }
    }

    fn query() -> FlowAction {
        FlowAction::QueryConference { id: "demo".into() }
    }

    fn joined(actions: Vec<FlowAction>) -> JoinDecision {
        match actions.as_slice() {
            [FlowAction::Join(d)] => (**d).clone(),
            other => panic!("expected a join, got {other:?}"),
        }
    }

    fn pin_prompt() -> FlowAction {
        play(&["conf-enter_conf_pin"], true)
    }

    #[test]
    fn welcome_plays_by_default_and_media_overrides_it() {
        let mut s = setup(demo(), Some("1001"));
        s.callflow.welcome = true;
        let mut call = Call::new(s.clone());
        assert_eq!(call.actions(), [play(&["conf-welcome"], false)]);
        assert_eq!(call.finish_prompt(), [pin_prompt()]);

        s.callflow.welcome_media = Some("http://m/hi.wav".into());
        assert_eq!(Call::new(s).actions(), [play(&["http://m/hi.wav"], false)]);
    }

    #[test]
    fn member_number_and_pin_join_muted() {
        let mut call = Call::new(setup(demo(), Some("1001")));
        assert_eq!(call.actions(), [pin_prompt()]);
        call.finish_prompt();
        assert_eq!(call.dial("1234#"), [query()]);
        let d = joined(call.state(ConferenceState::default()));
        assert_eq!((d.conference_id.as_str(), d.role), ("demo", Role::Member));
        assert_eq!(
            d.flags,
            JoinFlags {
                mute: true,
                ..JoinFlags::default()
            }
        );
        assert_eq!(d.entry_sounds, [ENTRY_TONE]);
        assert_eq!(d.exit_sounds, [EXIT_TONE]);
        assert!(call.flow.is_done());
    }

    #[test]
    fn the_enter_hook_plays_its_media_before_the_join() {
        let hooked = demo()
            .patched(&json!({"enter_hook": "http://app/enter"}))
            .unwrap_or_default();
        let fetch = FlowAction::FetchHook {
            url: "http://app/enter".into(),
        };
        let mut call = Call::new(setup(hooked.clone(), Some("1001")));
        call.finish_prompt();
        call.dial("1234#");
        assert_eq!(
            call.state(ConferenceState::default()),
            std::slice::from_ref(&fetch)
        );
        call.flow.on_hook(call.now, vec!["tts://hello".into()]);
        assert_eq!(call.actions(), [play(&["tts://hello"], false)]);
        assert_eq!(joined(call.finish_prompt()).role, Role::Member);
        // A hook that failed or had nothing to play: the join at once.
        let mut call = Call::new(setup(hooked, Some("1001")));
        call.finish_prompt();
        call.dial("1234#");
        assert_eq!(call.state(ConferenceState::default()), [fetch]);
        call.flow.on_hook(call.now, Vec::new());
        assert_eq!(joined(call.actions()).role, Role::Member);
    }

    #[test]
    fn moderator_number_wants_the_moderator_pin() {
        let mut call = Call::new(setup(demo(), Some("1002")));
        call.actions();
        call.finish_prompt();
        assert_eq!(
            call.dial("1234#"),
            [play(&["conf-bad_pin", "conf-enter_conf_pin"], true)]
        );
        call.finish_prompt();
        assert_eq!(call.dial("4321#"), [query()]);
        let d = joined(call.state(ConferenceState::default()));
        assert_eq!(d.role, Role::Moderator);
        assert_eq!(
            d.flags,
            JoinFlags {
                moderator: true,
                // The API's default, as its documentation says.
                mute: true,
                ..JoinFlags::default()
            }
        );
    }

    #[test]
    fn digit_interrupts_the_pin_prompt() {
        let mut call = Call::new(setup(demo(), Some("1001")));
        call.actions();
        assert_eq!(call.dial("1"), [FlowAction::StopPlayback]);
        assert_eq!(call.dial("234#"), [query()]);
    }

    #[test]
    fn three_bad_pins_hang_up() {
        let mut call = Call::new(setup(demo(), Some("1001")));
        call.actions();
        call.finish_prompt();
        assert_eq!(
            call.dial("9#"),
            [play(&["conf-bad_pin", "conf-enter_conf_pin"], true)]
        );
        call.finish_prompt();
        assert_eq!(
            call.dial("9#"),
            [play(&["conf-bad_pin", "conf-enter_conf_pin"], true)]
        );
        call.finish_prompt();
        assert_eq!(
            call.dial("4321#"),
            [play(&["conf-too_many_attempts"], false)]
        );
        assert_eq!(call.finish_prompt(), [FlowAction::Hangup]);
        assert!(call.flow.is_done());
    }

    #[test]
    fn pin_timeouts_first_digit_then_between_digits() {
        let mut call = Call::new(setup(demo(), Some("1001")));
        call.actions();
        call.finish_prompt();
        assert_eq!(
            call.flow.poll_timeout(),
            Some(call.now + Duration::from_millis(5000))
        );
        call.advance(4999);
        assert_eq!(call.actions(), []);
        call.advance(1);
        assert_eq!(
            call.actions(),
            [play(&["conf-bad_pin", "conf-enter_conf_pin"], true)]
        );
        call.finish_prompt();
        call.dial("1234");
        call.advance(1999);
        assert_eq!(call.actions(), []);
        call.advance(1);
        assert_eq!(call.actions(), [query()]);
    }

    #[test]
    fn welcome_follows_the_doc_without_a_callflow() {
        let quiet = demo()
            .patched(&json!({"play_welcome": false}))
            .unwrap_or_default();
        let mut s = setup(quiet.clone(), Some("1001"));
        s.callflow = CallflowOptions::for_doc(&quiet);
        assert_eq!(Call::new(s).actions(), [pin_prompt()]);
        let mut s = setup(demo(), Some("1001"));
        s.callflow = CallflowOptions::for_doc(&demo());
        assert_eq!(Call::new(s).actions(), [play(&["conf-welcome"], false)]);
    }

    #[test]
    fn built_in_tones_are_playable() {
        use crate::conference::document::BEEP;
        for tone in [NAME_BEEP, BEEP, ENTRY_TONE, EXIT_TONE] {
            assert!(mixer::tone::ToneStream::parse(tone, 8000).is_ok(), "{tone}");
        }
    }

    #[test]
    fn huge_pin_timeout_is_capped() {
        let doc = demo()
            .patched(&json!({"pin_timeout": u64::MAX}))
            .unwrap_or_default();
        let mut call = Call::new(setup(doc, Some("1001")));
        call.actions();
        call.finish_prompt();
        assert_eq!(call.flow.poll_timeout(), Some(call.now + MAX_FIRST_DIGIT));
    }

    #[test]
    fn pin_timeout_from_the_doc_then_config() {
        let doc = demo()
            .patched(&json!({"pin_timeout": 8000}))
            .unwrap_or_default();
        let mut call = Call::new(setup(doc, Some("1001")));
        call.actions();
        call.finish_prompt();
        assert_eq!(
            call.flow.poll_timeout(),
            Some(call.now + Duration::from_millis(8000))
        );

        let mut s = setup(demo(), Some("1001"));
        s.config = ConferencesConfig::new(obj(json!({"pin_timeout": 3000})), Map::new());
        let mut call = Call::new(s);
        call.actions();
        call.finish_prompt();
        assert_eq!(
            call.flow.poll_timeout(),
            Some(call.now + Duration::from_millis(3000))
        );
    }

    #[test]
    fn undetermined_role_is_classified_by_pin() {
        for (pin, role) in [("1234#", Role::Member), ("4321#", Role::Moderator)] {
            let mut call = Call::new(setup(demo(), Some("1000")));
            assert_eq!(call.actions(), [pin_prompt()]);
            call.finish_prompt();
            assert_eq!(call.dial(pin), [query()]);
            assert_eq!(joined(call.state(ConferenceState::default())).role, role);
        }
        // Member PINs empty: an empty entry is a member, a bad one is not.
        let doc = demo()
            .patched(&json!({"member": {"pins": []}}))
            .unwrap_or_default();
        let mut call = Call::new(setup(doc.clone(), None));
        call.actions();
        call.finish_prompt();
        assert_eq!(call.dial("#"), [query()]);
        assert_eq!(
            joined(call.state(ConferenceState::default())).role,
            Role::Member
        );
        let mut call = Call::new(setup(doc, None));
        call.actions();
        call.finish_prompt();
        assert_eq!(
            call.dial("5#"),
            [play(&["conf-bad_pin", "conf-enter_conf_pin"], true)]
        );
    }

    #[test]
    fn no_pins_means_member_without_a_prompt() {
        let doc = ConferenceDoc::from_request(json!({"member": {"numbers": ["1001"]}}))
            .unwrap_or_default();
        let mut call = Call::new(setup(doc.clone(), Some("5555")));
        assert_eq!(call.actions(), [query()]);
        let d = joined(call.state(ConferenceState::default()));
        assert_eq!(d.role, Role::Member);
        assert!(d.flags.mute, "the API filled member.join_muted = true");
        // A doc that skipped the API joins unmuted.
        let raw = ConferenceDoc::from_map(Map::new());
        let mut call = Call::new(setup(raw, None));
        call.actions();
        assert!(!joined(call.state(ConferenceState::default())).flags.mute);
    }

    #[test]
    fn number_in_both_lists_is_undetermined() {
        let doc = demo()
            .patched(
                &json!({"member": {"numbers": ["7"]}, "moderator": {"numbers": ["7"], "pins": []}}),
            )
            .unwrap_or_default();
        let mut call = Call::new(setup(doc, Some("7")));
        assert_eq!(call.actions(), [pin_prompt()]);
        call.finish_prompt();
        // An empty moderator PIN list matches no entry.
        assert_eq!(
            call.dial("#"),
            [play(&["conf-bad_pin", "conf-enter_conf_pin"], true)]
        );
        call.finish_prompt();
        assert_eq!(call.dial("1234#"), [query()]);
        assert_eq!(
            joined(call.state(ConferenceState::default())).role,
            Role::Member
        );
    }

    #[test]
    fn forced_moderator_asks_only_moderator_pins() {
        let mut s = setup(demo(), Some("1001"));
        s.callflow.moderator = true;
        let mut call = Call::new(s.clone());
        call.actions();
        call.finish_prompt();
        assert_eq!(
            call.dial("1234#"),
            [play(&["conf-bad_pin", "conf-enter_conf_pin"], true)]
        );
        s.target = Target::Conference {
            id: "demo".into(),
            doc: demo()
                .patched(&json!({"moderator": {"pins": []}}))
                .unwrap_or_default(),
        };
        let mut call = Call::new(s);
        assert_eq!(call.actions(), [query()]);
        assert_eq!(
            joined(call.state(ConferenceState::default())).role,
            Role::Moderator
        );
    }

    #[test]
    fn service_mode_finds_the_conference_by_number() {
        let mut s = setup(demo(), None);
        s.target = Target::ServiceMode;
        let mut call = Call::new(s);
        assert_eq!(call.actions(), [play(&["conf-enter_conf_number"], true)]);
        call.finish_prompt();
        assert_eq!(
            call.dial("1002#"),
            [FlowAction::FindConference {
                number: "1002".into()
            }]
        );
        call.flow.on_lookup(call.now, vec![("demo".into(), demo())]);
        assert_eq!(
            call.actions(),
            [pin_prompt()],
            "1002 is the moderator number"
        );
        call.finish_prompt();
        call.dial("4321#");
        assert_eq!(
            joined(call.state(ConferenceState::default())).role,
            Role::Moderator
        );

        // The entered member number makes a known member: the moderator PIN fails.
        let mut s = setup(demo(), Some("5000"));
        s.target = Target::ServiceMode;
        let mut call = Call::new(s);
        call.actions();
        call.dial("1001#");
        call.flow.on_lookup(call.now, vec![("demo".into(), demo())]);
        call.actions();
        assert_eq!(
            call.dial("4321#"),
            [
                FlowAction::StopPlayback,
                play(&["conf-bad_pin", "conf-enter_conf_pin"], true)
            ]
        );
    }

    #[test]
    fn service_mode_gives_up_after_three_failures() {
        let mut s = setup(demo(), None);
        s.target = Target::ServiceMode;
        let mut call = Call::new(s);
        call.actions();
        call.finish_prompt();
        // 1: nothing entered within 5 s.
        call.advance(5000);
        assert_eq!(
            call.actions(),
            [play(&["conf-bad_conf", "conf-enter_conf_number"], true)]
        );
        assert_eq!(call.elapsed(), Duration::from_millis(5000));
        call.finish_prompt();
        // 2: no match.
        call.dial("42#");
        call.flow.on_lookup(call.now, vec![]);
        assert_eq!(
            call.actions(),
            [play(&["conf-bad_conf", "conf-enter_conf_number"], true)]
        );
        call.finish_prompt();
        // 3: two matches.
        call.dial("1000#");
        call.flow
            .on_lookup(call.now, vec![("a".into(), demo()), ("b".into(), demo())]);
        assert_eq!(call.actions(), [play(&["conf-too_many_attempts"], false)]);
        assert_eq!(call.finish_prompt(), [FlowAction::Hangup]);
    }

    #[test]
    fn number_collection_stops_at_sixteen_digits() {
        let mut s = setup(demo(), None);
        s.target = Target::ServiceMode;
        let mut call = Call::new(s);
        call.actions();
        let actions = call.dial("12345678901234567");
        assert_eq!(
            actions,
            [
                FlowAction::StopPlayback,
                FlowAction::FindConference {
                    number: "1234567890123456".into()
                }
            ]
        );
    }

    #[test]
    fn full_conference_refuses_the_caller() {
        let doc = demo()
            .patched(&json!({"max_participants": 2}))
            .unwrap_or_default();
        let mut call = Call::new(setup(doc, Some("1001")));
        call.actions();
        call.dial("1234#");
        let full = ConferenceState {
            members: 2,
            ..ConferenceState::default()
        };
        assert_eq!(call.state(full), [play(&["conf-max_participants"], false)]);
        assert_eq!(call.finish_prompt(), [FlowAction::Hangup]);
    }

    #[test]
    fn locked_conference_plays_the_locked_sound() {
        let mut call = Call::new(setup(demo(), Some("1002")));
        call.actions();
        call.dial("4321#");
        let locked = ConferenceState {
            members: 3,
            locked: true,
            locked_sound: Some("conf-locked".into()),
            ..ConferenceState::default()
        };
        assert_eq!(call.state(locked), [play(&["conf-locked"], false)]);
        assert_eq!(call.finish_prompt(), [FlowAction::Hangup]);
    }

    #[test]
    fn require_moderator_without_waiting_hangs_up_members() {
        let doc = demo()
            .patched(&json!({"require_moderator": true}))
            .unwrap_or_default();
        let mut call = Call::new(setup(doc.clone(), Some("1001")));
        call.actions();
        call.dial("1234#");
        assert_eq!(call.state(ConferenceState::default()), [FlowAction::Hangup]);

        let with_media = doc
            .patched(&json!({"require_moderator_media": "conf-no_moderator"}))
            .unwrap_or_default();
        let mut call = Call::new(setup(with_media, Some("1001")));
        call.actions();
        call.dial("1234#");
        assert_eq!(
            call.state(ConferenceState::default()),
            [play(&["conf-no_moderator"], false)]
        );

        let mut call = Call::new(setup(doc.clone(), Some("1001")));
        call.actions();
        call.dial("1234#");
        let present = ConferenceState {
            moderator_present: true,
            ..ConferenceState::default()
        };
        assert_eq!(joined(call.state(present)).role, Role::Member);

        let waiting = doc
            .patched(&json!({"wait_for_moderator": true}))
            .unwrap_or_default();
        let mut call = Call::new(setup(waiting, Some("1001")));
        call.actions();
        call.dial("1234#");
        assert_eq!(
            joined(call.state(ConferenceState::default())).role,
            Role::Member
        );
    }

    #[test]
    fn play_name_records_and_announces() {
        let doc = demo()
            .patched(&json!({"play_name": true}))
            .unwrap_or_default();
        let mut call = Call::new(setup(doc, Some("1001")));
        call.actions();
        call.dial("1234#");
        assert_eq!(
            call.state(ConferenceState::default()),
            [play(&["conf-announce_your_name", NAME_BEEP], false)]
        );
        assert_eq!(
            call.finish_prompt(),
            [FlowAction::RecordName { max: NAME_MAX }]
        );
        assert_eq!(
            call.dial("5"),
            [FlowAction::StopRecording],
            "any digit stops it"
        );
        assert_eq!(call.dial("5"), []);
        call.flow
            .on_recording_finished(call.now, Some("/rec/name.wav".into()));
        let d = joined(call.actions());
        assert_eq!(
            d.entry_sounds,
            [ENTRY_TONE, "/rec/name.wav", "conf-has_joined"]
        );
        assert_eq!(d.exit_sounds, [EXIT_TONE, "/rec/name.wav", "conf-has_left"]);
        assert_eq!(d.name.as_deref(), Some("/rec/name.wav"));
    }

    #[test]
    fn name_recording_stops_after_sixty_seconds() {
        let doc = demo()
            .patched(&json!({"play_name": true}))
            .unwrap_or_default();
        let mut call = Call::new(setup(doc, Some("1001")));
        call.actions();
        call.dial("1234#");
        call.state(ConferenceState::default());
        call.finish_prompt();
        call.advance(59_999);
        assert_eq!(call.actions(), []);
        call.advance(1);
        assert_eq!(call.actions(), [FlowAction::StopRecording]);
        call.flow.on_recording_finished(call.now, None);
        assert_eq!(joined(call.actions()).entry_sounds, [ENTRY_TONE]);
    }

    #[test]
    fn known_name_is_reused_and_name_support_can_be_off() {
        let doc = demo()
            .patched(&json!({"play_name": true}))
            .unwrap_or_default();
        let mut s = setup(doc, Some("1001"));
        s.name_media = Some("media/bob".into());
        let mut call = Call::new(s.clone());
        call.actions();
        call.dial("1234#");
        assert_eq!(
            joined(call.state(ConferenceState::default())).entry_sounds[1],
            "media/bob"
        );

        s.name_media = None;
        s.config =
            ConferencesConfig::new(obj(json!({"support_name_announcement": false})), Map::new());
        let mut call = Call::new(s);
        call.actions();
        call.dial("1234#");
        assert_eq!(
            joined(call.state(ConferenceState::default())).entry_sounds,
            [ENTRY_TONE]
        );
    }

    #[test]
    fn review_name_keeps_on_one_and_rerecords_otherwise() {
        let doc = demo()
            .patched(&json!({"play_name": true}))
            .unwrap_or_default();
        let mut s = setup(doc, Some("1001"));
        s.config = ConferencesConfig::new(obj(json!({"review_name": true})), Map::new());
        let mut call = Call::new(s);
        call.actions();
        call.dial("1234#");
        call.state(ConferenceState::default());
        call.finish_prompt();
        call.flow.on_recording_finished(call.now, Some("n1".into()));
        let review = play(&["conf-your_announcement", "n1", "conf-review"], true);
        assert_eq!(call.actions(), [review]);
        assert_eq!(
            call.dial("2"),
            [
                FlowAction::StopPlayback,
                play(&["conf-announce_your_name", NAME_BEEP], false)
            ]
        );
        call.finish_prompt();
        call.flow.on_recording_finished(call.now, Some("n2".into()));
        call.actions();
        call.finish_prompt();
        assert_eq!(joined(call.dial("1")).name.as_deref(), Some("n2"));
    }

    #[test]
    fn tones_per_role_and_callflow_overrides() {
        let mut s = setup(demo(), Some("1002"));
        s.config = ConferencesConfig::new(
            obj(json!({"moderator_entry_tone": "tone_stream://%(200,0,800)", "exit_tone": "x"})),
            Map::new(),
        );
        let mut call = Call::new(s.clone());
        call.actions();
        call.dial("4321#");
        let d = joined(call.state(ConferenceState::default()));
        assert_eq!(d.entry_sounds, ["tone_stream://%(200,0,800)"]);
        assert_eq!(d.exit_sounds, [EXIT_TONE], "moderator_exit_tone defaults");

        s.callflow.play_entry_tone = Some(ToneSetting::Off);
        s.callflow.play_exit_tone = Some(ToneSetting::Custom("bye".into()));
        let mut call = Call::new(s);
        call.actions();
        call.dial("4321#");
        let d = joined(call.state(ConferenceState::default()));
        assert!(d.entry_sounds.is_empty());
        assert_eq!(d.exit_sounds, ["bye"]);
    }

    /// The member's join into `demo()` patched with `patch`, in state `state`.
    fn member_join(patch: Value, state: ConferenceState) -> Vec<FlowAction> {
        let doc = demo().patched(&patch).unwrap_or_default();
        let mut call = Call::new(setup(doc, Some("1001")));
        call.actions();
        call.dial("1234#");
        call.state(state)
    }

    #[test]
    fn profile_enter_and_exit_sounds_replace_the_tones() {
        let d = joined(member_join(
            json!({"profile": {"enter-sound": "in", "exit-sound": ""}}),
            ConferenceState::default(),
        ));
        assert_eq!((d.entry_sounds, d.exit_sounds), (vec!["in".into()], vec![]));
        let d = joined(member_join(
            json!({"profile_name": "page"}),
            ConferenceState::default(),
        ));
        let silent = vec!["silence_stream://1".to_string()];
        assert_eq!((&d.entry_sounds, &d.exit_sounds), (&silent, &silent));
        let d = joined(member_join(
            json!({"profile": "page", "play_entry_tone": "bong", "play_exit_tone": false}),
            ConferenceState::default(),
        ));
        assert_eq!(d.entry_sounds, ["bong"], "a doc tone string still wins");
        assert!(d.exit_sounds.is_empty());
    }

    #[test]
    fn a_full_profile_plays_its_max_members_sound() {
        let at = |members| ConferenceState {
            members,
            ..ConferenceState::default()
        };
        let profile = json!({"profile": {"max-members": 3, "max-members-sound": "full"}});
        assert_eq!(
            member_join(profile.clone(), at(3)),
            [play(&["full"], false)]
        );
        joined(member_join(profile, at(2)));
        let media = json!({"max_participants": 2, "max_members_media": "no-room",
                           "profile": {"max-members-sound": "full"}});
        assert_eq!(member_join(media, at(2)), [play(&["no-room"], false)]);
    }

    #[test]
    fn profile_flags_reach_the_join_and_the_wait() {
        let d = joined(member_join(
            json!({"profile": {"member-flags": "mute|endconf|dist-dtmf"}, "member": {"join_muted": false}}),
            ConferenceState::default(),
        ));
        assert!(d.flags.mute && d.flags.endconf && d.flags.dist_dtmf && !d.flags.deaf);
        let waits = json!({"require_moderator": true, "profile": {"conference-flags": "wait-mod"}});
        joined(member_join(waits, ConferenceState::default()));
    }

    #[test]
    fn jambonz_role_flags_reach_the_join() {
        let doc = demo()
            .patched(
                &json!({"moderator": {"join_deaf": true, "end_conference_on_exit": true,
                                           "distribute_dtmf": true}}),
            )
            .unwrap_or_default();
        let mut call = Call::new(setup(doc, Some("1002")));
        call.actions();
        call.dial("4321#");
        let flags = joined(call.state(ConferenceState::default())).flags;
        assert_eq!(
            flags,
            JoinFlags {
                mute: true,
                deaf: true,
                moderator: true,
                endconf: true,
                dist_dtmf: true,
                nomoh: false,
            }
        );
    }

    #[test]
    fn inputs_out_of_turn_are_ignored() {
        let mut call = Call::new(setup(demo(), Some("1001")));
        call.actions();
        call.flow.on_lookup(call.now, vec![]);
        call.flow.on_recording_finished(call.now, None);
        call.flow
            .on_conference_state(call.now, ConferenceState::default());
        call.flow.on_answered(call.now);
        assert_eq!(call.actions(), []);
        assert_eq!(call.dial("1234#"), [FlowAction::StopPlayback, query()]);
    }
}
