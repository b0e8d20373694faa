//! SIP: normalising parser front, transactions, dialogs and transports.
//!
//! Layers, bottom up:
//! - [`parse`]: bytes to a normalised header list (compact forms expanded, comma lists split,
//!   folding joined, Content-Length framing), recording the first defect so a broken request
//!   can still get a precise 4xx. [`framer`] cuts a TCP byte stream into messages.
//! - [`message`]: typed views (rsip parses URIs and name-addrs) and response/request builders.
//! - [`transaction`]: RFC 3261 §17 retransmission/absorption state machines.
//! - [`dialog`]: §12 dialog state for our calls, answered or placed.
//! - [`endpoint`]: the sans-IO endpoint tying them together (UAS, plus UAC for dial-out).
//! - [`transport`]: the tokio task that drives one endpoint over UDP and TCP.
//!
//! # Using the endpoint (sans-IO)
//! Feed [`Endpoint::handle_input`] with each datagram or framed TCP message and the current
//! time, call [`Endpoint::handle_timeout`] when [`Endpoint::poll_timeout`] is reached, and after
//! every call drain [`Endpoint::poll_transmit`] and [`Endpoint::poll_event`].
//!
//! A call starts with [`Event::Invite`] (100 Trying already sent). The application answers with
//! [`Endpoint::respond`]: provisional, then 2xx (resent at T1, 2T1 ... T2 until the ACK arrives;
//! [`Event::Ack`] carries the answer of a late offer) or a rejection (3xx-6xx, after which the
//! handle is finished, with no further event). Re-INVITEs arrive as
//! [`Event::ReInvite`] and are answered with [`Endpoint::respond_reinvite`]. The peer's BYE and
//! CANCEL are answered by the endpoint and reported as [`Event::Bye`] / [`Event::Cancelled`].
//! [`Endpoint::bye`] hangs up; [`Event::Terminated`] reports every other end of a call.
//! OPTIONS, errors (400, 405, 415, 416, 420, 481, 482, 483, 500, 501, 505, 513) and
//! retransmissions are handled inside.
//!
//! Dial-out: [`Endpoint::invite`] with a [`Dial`] gives a call handle; [`Event::Progress`] for
//! each provisional, then [`Event::Answered`] (ACK sent, dialog up: `bye`/`info` work as for
//! incoming calls) or [`Event::Rejected`] (final status; 408 on timer B; 487 after
//! [`Endpoint::cancel`]).
//!
//! In-dialog requests we send go to the address the peer last sent from, on that transport
//! (symmetric signalling, which phones behind NAT need); responses follow RFC 3261 §18.2.2
//! with RFC 3581 rport.

pub mod admission;
pub mod connections;
pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod framer;
pub mod log_limit;
pub mod message;
pub mod parse;
pub mod timer_map;
pub mod transaction;
pub mod transport;

#[cfg(test)]
mod admission_tests;
#[cfg(test)]
mod dial_tests;
#[cfg(test)]
mod endpoint_tests;
#[cfg(test)]
mod register_tests;
#[cfg(test)]
mod torture_tests;

pub use endpoint::{
    CallId, ConnId, Dial, DialAuth, DialInAuth, Endpoint, EndpointConfig, Event, IncomingRegister,
    Protocol, RegisterId, RequestId, SipError, TerminationReason, Transmit, Transport,
};
pub use framer::{FrameError, Framer};
pub use message::{Body, NameAddr};
pub use transaction::Timers;
pub use transport::{SipHandle, spawn, spawn_with_registrar};
