//! Chorus mixing core: pure, clock-free per-conference mixing.
//!
//! Time comes in as an argument to [`Conference::tick`]; nothing here reads a
//! clock or a socket except the optional thread [`driver::Driver`].
//!
//! - [`profile`]: the Kazoo/FreeSWITCH conference profile, validated.
//! - [`member`]: join config, flags, relations; [`input`]: PCM ingress ring
//!   with the talk pre-roll.
//! - [`gate`]: FreeSWITCH talk detection and the mix gate.
//! - [`mix`]: wide accumulation and the soft limiter.
//! - [`comfort_noise`]: noise for members who hear no one.
//! - [`conference`]: members, playbacks and the per-tick N-1 mix;
//!   [`output`]: the distinct mixes and who gets which.
//! - [`driver`]: a sans-IO scheduler for many conferences and a thread runner.
//!
//! All PCM is mono i16. Playback sources produce PCM at the conference rate.

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
