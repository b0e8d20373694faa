//! RTP media: packets, jitter buffer, codecs, DTMF, RTCP and the per-call leg.

pub mod call_recording;
pub mod codec;
pub mod dtmf;
pub mod jitter;
pub mod leg;
pub mod packet_io;
pub mod pitch;
pub mod ports;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod wav_writer;
pub mod worker;
