//! Chorus: a SIP/RTP audio conference media server.

pub mod config;
pub mod media;
pub mod sdp;
pub mod sip;
