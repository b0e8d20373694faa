//! Conference data and caller logic (spec §1-§3, §6), pure and sans-IO: no
//! sockets, no clocks (time is passed in), no files. How the control plane
//! uses it:
//!
//! 1. **Route.** A dialed number is looked up with
//!    [`Store::find_by_number`](crate::store::Store::find_by_number); exactly
//!    one match gives a [`flow::Target::Conference`] with `dialed` set (the
//!    digits decide the role), none gives [`flow::Target::ServiceMode`].
//!    [`settings::ConferencesConfig`] comes from
//!    [`Store::conferences_config`](crate::store::Store::conferences_config).
//! 2. **Prompt.** A [`flow::Flow`] per call: feed it answer, digits, prompt and
//!    recording ends, lookups, conference state and timeouts
//!    ([`flow::Flow::poll_timeout`]); carry out each [`flow::FlowAction`].
//!    Media strings are resolved when played, by `crate::sounds`.
//! 3. **Create the conference** on its first join with
//!    [`profile::resolve`]: a [`mixer::Profile`] (numbers and sounds, ready
//!    for the mixer) plus every sound, the control groups and the flags.
//! 4. **Join** with the [`flow::JoinDecision`]: role, member flags, this
//!    caller's entry/exit sound lists. Play the jambonz
//!    [`document::BEEP`] after a join when [`document::ConferenceDoc::beep`].
//! 5. **Caller controls.** [`controls::group`] with the profile's
//!    `caller_controls` (members) or `moderator_controls` (moderators) gives
//!    the bindings of a [`controls::DigitMatcher`]; feed it the member's
//!    digits (unless `dist_dtmf`) and apply the [`vocabulary::Action`]s.
//! 6. **API.** [`document::ConferenceDoc`] reads and validates bodies; the
//!    store validates again inside its write transaction, adding account-wide
//!    number uniqueness; [`validation::ValidationErrors::to_json`] is the
//!    400's `data`.

pub mod controls;
pub mod document;
pub mod flow;
pub mod hook_verbs;
pub mod profile;
pub mod profile_keys;
pub mod settings;
pub mod validation;
pub mod vocabulary;
