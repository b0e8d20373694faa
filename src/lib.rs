//! Chorus: a SIP/RTP audio conference media server.

pub mod api;
pub mod call;
pub mod cluster;
pub mod conference;
pub mod config;
pub mod documents;
pub mod heap;
pub mod media;
pub mod registrar;
pub mod sdp;
pub mod server;
pub mod sip;
pub mod sounds;
pub mod storage;
pub mod store;
#[cfg(test)]
mod test_rng;
