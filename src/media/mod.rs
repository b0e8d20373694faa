//! RTP media: packets, jitter buffer, codecs, DTMF, RTCP and the per-call leg.

pub mod codec;
pub mod jitter;
pub mod rtcp;
pub mod rtp;
