//! SDP offer/answer (RFC 3264) for one audio stream: read offers and answers, choose the
//! codec by server preference, and write answers and offers.

mod build;
mod negotiate;
mod parse;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};

use crate::media::codec::CodecKind;

pub use negotiate::{Negotiated, OpusParams};
pub use parse::{Media, RtpMap, SessionDescription, parse};

/// Media direction attribute (RFC 3264 section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn from_attribute(name: &str) -> Option<Self> {
        Some(match name {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answerer that can send and receive answers to this offer with.
    pub fn answer(self) -> Self {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// Whether the side holding this direction sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side holding this direction receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// Why an offer or answer cannot be used. The SIP layer answers an offer with
/// `488 Not Acceptable Here` and `Warning: <SdpError::warning(host)>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("malformed SDP: {0}")]
    Malformed(String),
    #[error("no usable audio stream")]
    NoAudio,
    #[error("audio only offered over {0}, which is not supported")]
    UnsupportedTransport(String),
    #[error("no codec in common")]
    NoCommonCodec,
}

impl SdpError {
    /// The RFC 3261 Warning header value for this error, e.g.
    /// `305 chorus.example.com "Incompatible media format"`.
    pub fn warning(&self, host: &str) -> String {
        let (code, text) = match self {
            SdpError::Malformed(_) => (399, "Malformed session description"),
            SdpError::NoAudio => (304, "Media type not available"),
            SdpError::UnsupportedTransport(_) => (302, "Incompatible transport protocol"),
            SdpError::NoCommonCodec => (305, "Incompatible media format"),
        };
        format!("{code} {host} \"{text}\"")
    }
}

/// What this server offers and accepts (from configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPolicy {
    /// Codecs in server preference order.
    pub codecs: Vec<CodecKind>,
    /// Packet time used when the peer states none.
    pub ptime_ms: u32,
    /// Offer and accept RFC 4733 telephone-event.
    pub dtmf: bool,
    /// The PCM rate of our Opus legs: below 48000 we tell the peer (RFC 7587
    /// `maxplaybackrate`, `sprop-maxcapturerate`) so that it codes no band we drop.
    pub opus_rate: u32,
}

impl Default for MediaPolicy {
    fn default() -> Self {
        MediaPolicy {
            codecs: vec![
                CodecKind::Opus,
                CodecKind::G722,
                CodecKind::Pcmu,
                CodecKind::Pcma,
            ],
            ptime_ms: 20,
            dtmf: true,
            opus_rate: 48000,
        }
    }
}

/// Our side of one call's SDP: the address we receive on and the `o=` line's id/version,
/// which increases with every description we send (RFC 3264 section 8).
#[derive(Debug, Clone)]
pub struct SdpSession {
    pub policy: MediaPolicy,
    /// Our RTP address (RTCP is on the same port when muxed, else port + 1).
    pub local: SocketAddr,
    session_id: u64,
    version: u64,
    /// What we last offered (to read the answer against).
    offered: bool,
}

impl SdpSession {
    /// `session_id` should be unique per call (e.g. random or a timestamp).
    pub fn new(policy: MediaPolicy, local: SocketAddr, session_id: u64) -> Self {
        SdpSession {
            policy,
            local,
            session_id,
            version: session_id,
            offered: false,
        }
    }

    /// Answers a (re-)offer: the negotiated stream and the answer text.
    pub fn answer(&mut self, offer: &str) -> Result<(Negotiated, String), SdpError> {
        let offer = parse(offer)?;
        let neg = negotiate::answer(&self.policy, &offer)?;
        self.version += 1;
        let text = build::answer(self, &offer, &neg);
        Ok((neg, text))
    }

    /// An offer of every configured codec (INVITE without SDP, or our re-INVITE).
    pub fn offer(&mut self, direction: Direction) -> String {
        self.version += 1;
        self.offered = true;
        build::offer(self, direction)
    }

    /// Reads the answer to our last offer.
    pub fn accept_answer(&mut self, answer: &str) -> Result<Negotiated, SdpError> {
        if !self.offered {
            return Err(SdpError::Malformed("answer without an offer".into()));
        }
        let answer = parse(answer)?;
        self.offered = false;
        negotiate::accept_answer(&self.policy, &answer)
    }

    fn origin(&self) -> (u64, u64, IpAddr) {
        (self.session_id, self.version, self.local.ip())
    }
}
