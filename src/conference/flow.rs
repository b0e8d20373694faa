//! The caller flow (spec §1) as a sans-IO state machine, one per call:
//! answer, welcome, conference number, role, PIN, capacity/lock/moderator
//! checks, name recording, then a [`JoinDecision`].
//!
//! Feed inputs (`on_*`, [`Flow::handle_timeout`]) with the current time and
//! drain [`Flow::poll`] after each. Each `Play` is answered by one
//! `on_prompt_finished`, except a play stopped by `StopPlayback`, whose end
//! must not be reported. Media strings in [`FlowAction::Play`] are
//! prompt ids, tones or paths as the doc gives them: open them through
//! [`super::profile::Prompts::resolve`] in the conference's language.
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

use super::document::{ConferenceDoc, Role, ToneSetting};
use super::settings::{ConferencesConfig, DIGIT_TIMEOUT_MS};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most digits of a conference number or PIN.
const MAX_DIGITS: usize = 16;
/// Between digits of a number or PIN.
const INTER_DIGIT: Duration = Duration::from_millis(2000);
/// Failures before `conf-too_many_attempts`.
const ATTEMPTS: u8 = 3;
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
    Play { media: Vec<String>, interruptible: bool },
    StopPlayback,
    /// Look up the account's conferences by number; answer with `on_lookup`.
    FindConference { number: String },
    /// Answer with `on_conference_state`.
    QueryConference { id: String },
    /// Record the caller; answer with `on_recording_finished`.
    RecordName { max: Duration },
    StopRecording,
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
    Hangup,
}

#[derive(Debug, Clone)]
enum State {
    Answering,
    Playing(Next),
    Collecting(Collect),
    LookingUp,
    Querying,
    Recording { deadline: Instant, stopping: bool },
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
            State::Recording { deadline, stopping: false } => Some(*deadline),
            _ => None,
        }
    }

    pub fn on_answered(&mut self, _now: Instant) {
        if !matches!(self.state, State::Answering) {
            return;
        }
        let cf = &self.setup.callflow;
        if cf.welcome {
            let media = cf.welcome_media.clone().unwrap_or_else(|| "conf-welcome".into());
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
                    self.state = State::Recording { deadline: now + NAME_MAX, stopping: false };
                    self.out.push_back(FlowAction::RecordName { max: NAME_MAX });
                }
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
        if !matches!(self.state, State::LookingUp) {
            return;
        }
        match (matches.pop(), matches.is_empty()) {
            (Some((id, doc)), true) => {
                self.failures = 0;
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
                let media = vec!["conf-your_announcement".into(), name.clone(), "conf-review".into()];
                self.collect(media, Purpose::Review, 1, DIGIT_TIMEOUT_MS);
            }
            _ => self.join(),
        }
    }

    pub fn on_conference_state(&mut self, _now: Instant, state: ConferenceState) {
        if !matches!(self.state, State::Querying) {
            return;
        }
        let Some((_, doc)) = self.conference() else {
            return self.hang_up();
        };
        let max = doc.max_participants();
        let refusal = if max > 0 && state.members >= max {
            Some(Some("conf-max_participants".to_string()))
        } else if state.locked {
            let sound = state.locked_sound.unwrap_or_else(|| "conf-max_participants".into());
            Some(Some(sound))
        } else if self.role == Role::Member
            && doc.require_moderator()
            && !doc.wait_for_moderator()
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
        self.collect(media, Purpose::Number, MAX_DIGITS, self.setup.config.number_timeout_ms());
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
            None if member_pins.contains(&entry) || (member_pins.is_empty() && entry.is_empty()) => {
                Some(Role::Member)
            }
            None => moderator_pins.contains(&entry).then_some(Role::Moderator),
        }
    }

    fn collect(&mut self, media: Vec<String>, purpose: Purpose, max: usize, first_timeout_ms: u64) {
        self.out.push_back(FlowAction::Play { media, interruptible: true });
        self.state = State::Collecting(Collect {
            purpose,
            digits: String::new(),
            max,
            first_timeout: Duration::from_millis(first_timeout_ms),
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
                self.state = State::LookingUp;
                self.out.push_back(FlowAction::FindConference { number: c.digits });
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

    fn join(&mut self) {
        let Some((id, doc)) = self.conference() else {
            return self.hang_up();
        };
        let cf = &self.setup.callflow;
        let play_name = doc.play_name() && self.setup.config.support_name_announcement();
        let name = self.name.clone().filter(|_| play_name);
        let config = &self.setup.config;
        let entry = cf.play_entry_tone.clone().unwrap_or_else(|| doc.play_entry_tone());
        let exit = cf.play_exit_tone.clone().unwrap_or_else(|| doc.play_exit_tone());
        let decision = join_decision(
            id,
            doc,
            self.role,
            sounds(entry, config.entry_tone(self.role), name.as_deref(), "conf-has_joined"),
            sounds(exit, config.exit_tone(self.role), name.as_deref(), "conf-has_left"),
            name.clone(),
        );
        self.state = State::Done;
        self.out.push_back(FlowAction::Join(Box::new(decision)));
    }

    fn play(&mut self, media: Vec<String>, next: Next) {
        self.out.push_back(FlowAction::Play { media, interruptible: false });
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
        },
        entry_sounds,
        exit_sounds,
        name,
    }
}

fn prompts(before: Option<&str>, prompt: &str) -> Vec<String> {
    before.into_iter().chain([prompt]).map(str::to_string).collect()
}

/// `[tone, name, announcement]`, each part only when present.
fn sounds(tone: ToneSetting, default: &str, name: Option<&str>, announcement: &str) -> Vec<String> {
    let tone = match tone {
        ToneSetting::On => Some(default.to_string()),
        ToneSetting::Off => None,
        ToneSetting::Custom(s) => Some(s),
    };
    let name = name.map(|n| [n.to_string(), announcement.to_string()]);
    tone.into_iter().chain(name.into_iter().flatten()).collect()
}
