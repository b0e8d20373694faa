//! The call control plane: SIP events in, media worker commands out. It never touches PCM.
//!
//! A call's life: INVITE -> route the dialed number (the account's callflow for it, see
//! `callflow`, whose caller hears ringback in early media while its branches ring, see
//! `ringback`; else a conference document's number, the service number, or an ad-hoc
//! conference) -> take an RTP port pair (none free: 503) -> SDP
//! answer (or our offer in the 200 and the answer in the ACK) -> the call's media waits in a
//! worker's lobby, receiving but silent until the ACK -> from the ACK the caller flow
//! (`conference::flow`) plays prompts and collects digits -> it joins the conference (entry
//! sounds, hold music, wait for a moderator, caller controls) -> re-INVITEs update hold and
//! codec -> BYE, CANCEL, RTP timeout, a control, the end of the conference or shutdown -> it
//! leaves.
//!
//! [`CallPlane`] is all of that as a sans-IO state machine (like `sip::Endpoint`): feed it
//! SIP events, worker reports, API actions, store answers and `now`; drain
//! [`CallPlane::poll_output`] and wake it at [`CallPlane::poll_timeout`]. [`Calls`] is the
//! thin async shell that owns the sockets, the store, the sounds and the files.

mod announce_count;
mod answer;
mod api;
mod callee_early;
#[cfg(test)]
mod callee_early_tests;
mod callflow;
mod callflow_node;
mod callflow_targets;
#[cfg(test)]
mod callflow_tests;
mod dial_order;
mod dial_targets;
mod dialout;
#[cfg(test)]
mod dialout_tests;
mod dns;
pub mod dtmf_relay;
mod early;
mod flow;
mod focus;
mod hooks;
mod live;
mod locate;
mod lookup;
mod members;
pub mod output;
mod plane;
mod prefetch;
mod random;
#[cfg(test)]
mod registered_phone;
mod ringback;
mod shell;
#[cfg(test)]
mod tests;

pub use plane::{CallPlane, Direction, Party, Settings};
pub use shell::{ApiLink, Calls, FocusLink};
