//! Chorus mixing core: pure, clock-free per-conference mixing.
//!
//! Time comes in as an argument to [`Conference::tick`]; nothing here reads a
//! clock or a socket except the optional thread [`driver::Driver`].
//!
//! - [`profile`]: the Kazoo/FreeSWITCH conference profile, validated.
//! - [`member`]: join config, flags, relations; [`input`]: PCM ingress ring
//!   with the talk pre-roll and producer-side frame scores.
//! - [`gate`]: FreeSWITCH talk detection and the mix gate.
//! - [`mix`]: wide accumulation and the soft limiter.
//! - [`comfort_noise`]: noise for members who hear no one.
//! - [`conference`]: members, playbacks and the per-tick N-1 mix;
//!   [`output`]: the distinct mixes and who gets which; [`events`].
//! - [`driver`]: a sans-IO scheduler for many conferences and a thread runner.
//!
//! All PCM is mono i16 (a profile's `channels` is recorded, not mixed).
//! The conference mixes at its members' highest rate, capped by the
//! profile's `rate` ([`Conference::mix_rate`]); members may use any profile
//! rate and are resampled in and out when theirs differs. Playback sources
//! produce PCM at the profile's `rate` and are resampled to the mix rate.
//!
//! Design choices the server should know:
//! - Gating: FreeSWITCH's talking state and events, but hot frames are mixed
//!   at once and every talker is delayed by [`input::PREROLL_MS`] (10 ms) so
//!   the attack before the first hot frame is kept. That is the only
//!   latency the mixer adds beyond one tick.
//! - Sums are i32; each distinct mix is soft-limited on its own, so clipping
//!   never wraps and never leaks into another member's N-1 mix.
//! - Non-contributing listeners share one mix per (rate, listen volume);
//!   [`TickOutput::routes`] says who gets which, so each distinct mix is
//!   encoded once per codec group.
//! - Steady-state ticks allocate nothing. The only `unsafe` is the runtime
//!   AVX2 dispatch of the per-talker loops ([`mix::add`],
//!   [`mix::limit_minus`]).

pub mod comfort_noise;
pub mod conference;
pub mod driver;
pub mod events;
pub mod gate;
pub mod goertzel;
pub mod input;
pub mod member;
pub mod mix;
pub mod output;
pub mod profile;
pub mod resample;
pub mod sound;
pub mod source;
pub mod tone;
pub mod wav;

pub use conference::{Conference, ControlError};
pub use driver::{ConferenceId, Driver, Hooks, Scheduler, TickHandler};
pub use events::{Event, PlaybackId, PlaybackTarget};
pub use input::MemberInput;
pub use member::{JoinError, MemberConfig, MemberFlags, MemberId, Relation};
pub use output::{Mix, Route, TickOutput};
pub use profile::{Profile, ProfileError};
