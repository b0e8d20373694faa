//! What a callflow's caller has been sent while its branches ring (`super::ringback`
//! drives it): the state the caller's callflow walk and its answer carry.

use crate::sdp::SdpSession;
use crate::sip::Body;

/// What an unanswered callflow caller has been sent while its branches ring.
#[derive(Default)]
pub(super) enum Early {
    /// Nothing yet: no branch has rung.
    #[default]
    Silent,
    /// `180 Ringing` (no offer to answer early, or no port pair for it).
    Ringing,
    /// Waiting for the port pair of its early media.
    Ports,
    /// `183` sent: its media is in a worker's lobby, hearing the ringback.
    Media(Box<EarlyMedia>),
}

pub(super) struct EarlyMedia {
    pub sdp: SdpSession,
    /// The SDP answer the 183 carried: the 200 carries it again.
    pub answer: Body,
    pub worker: usize,
    pub rate: u32,
    /// The ringback playing; `None` once stopped.
    pub playback: Option<u64>,
    /// The ringback it plays (a custom one that cannot play falls back to the default).
    pub sound: String,
}
