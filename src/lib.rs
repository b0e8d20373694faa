//! Chorus: a SIP/RTP audio conference media server.

pub mod media;
pub mod sdp;
pub mod sip;
