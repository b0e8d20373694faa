//! What a conference reports to the server, and the playback identifiers
//! those reports carry.

use crate::member::MemberId;

/// A caller-chosen playback identifier, echoed in [`Event::PlaybackDone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlaybackId(pub u64);

/// Who hears a playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlaybackTarget {
    /// Mixed into every hearing member's output.
    All,
    /// Overlaid on one member's output only.
    Member(MemberId),
}

/// Conference events, drained with `Conference::poll_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The member's talk detector turned on; `energy` is the frame score.
    StartTalking { member: MemberId, energy: u32 },
    /// Talking ended: hangover, mute, or leaving while talking.
    StopTalking { member: MemberId, energy: u32 },
    /// A playback ended (`stopped` = cut short by stop, or its member left).
    PlaybackDone {
        id: PlaybackId,
        target: PlaybackTarget,
        stopped: bool,
    },
}
