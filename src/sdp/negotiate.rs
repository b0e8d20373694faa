//! Choosing the stream parameters from an offer (we answer) or an answer (we offered).

use std::net::{IpAddr, SocketAddr};

use super::parse::{Media, SessionDescription};
use super::{Direction, MediaPolicy, SdpError};
use crate::media::codec::CodecKind;

/// What a peer's `a=fmtp` asks of our Opus encoder (RFC 7587 section 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpusParams {
    pub useinbandfec: bool,
    pub maxplaybackrate: Option<u32>,
    pub stereo: bool,
}

impl OpusParams {
    fn from_fmtp(fmtp: &str) -> Self {
        let mut p = OpusParams::default();
        for param in fmtp.split(';') {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "useinbandfec" => p.useinbandfec = v == "1",
                "maxplaybackrate" => p.maxplaybackrate = v.parse().ok(),
                "stereo" => p.stereo = v == "1",
                _ => {}
            }
        }
        p
    }
}

/// The agreed audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Index of the audio `m=` section.
    pub media_index: usize,
    pub codec: CodecKind,
    pub payload_type: u8,
    /// Packet time we send with.
    pub ptime_ms: u32,
    /// telephone-event payload type at the codec's RTP clock.
    pub dtmf_payload_type: Option<u8>,
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    pub rtcp_mux: bool,
    /// The peer's direction, with `c=0.0.0.0` hold folded in.
    pub remote_direction: Direction,
    /// Ours (what the answer says, or what we offered).
    pub direction: Direction,
    /// The peer's Opus parameters when Opus was chosen.
    pub opus: Option<OpusParams>,
}

impl Negotiated {
    /// The peer put the call on hold (sendonly, inactive or `c=0.0.0.0`: it no longer
    /// wants our audio).
    pub fn on_hold(&self) -> bool {
        !self.remote_direction.receives()
    }
}

/// The codec a payload type stands for: by `a=rtpmap`, else by static assignment.
fn codec_of(m: &Media, pt: u8) -> Option<CodecKind> {
    let Some(map) = m.rtpmap(pt) else {
        return [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722]
            .into_iter()
            .find(|c| c.static_pt() == Some(pt));
    };
    [
        CodecKind::Pcmu,
        CodecKind::Pcma,
        CodecKind::G722,
        CodecKind::Opus,
    ]
    .into_iter()
    .find(|c| map.name.eq_ignore_ascii_case(c.encoding_name()) && map.clock_rate == c.rtp_clock())
}

/// The telephone-event payload type at `clock`, if offered.
fn dtmf_pt(m: &Media, clock: u32) -> Option<u8> {
    m.payload_types().find(|&pt| {
        m.rtpmap(pt).is_some_and(|r| {
            r.name.eq_ignore_ascii_case("telephone-event") && r.clock_rate == clock
        })
    })
}

/// Packet time within 10..60 ms honouring `a=ptime`/`a=maxptime`; Opus only has
/// 10/20/40/60 ms frames, the others take any multiple of 10 ms.
fn ptime(codec: CodecKind, m: &Media, default: u32) -> u32 {
    let mut p = m.ptime.filter(|&p| p > 0).unwrap_or(default);
    if let Some(max) = m.maxptime.filter(|&p| p > 0) {
        p = p.min(max);
    }
    let p = p.clamp(10, 60);
    match codec {
        CodecKind::Opus => [60, 40, 20, 10].into_iter().find(|&f| f <= p).unwrap_or(20),
        _ => p / 10 * 10,
    }
}

fn transport_ok(m: &Media) -> bool {
    m.proto.eq_ignore_ascii_case("RTP/AVP") || m.proto.eq_ignore_ascii_case("RTP/AVPF")
}

/// Remote addresses and direction of section `m` (hold by `c=0.0.0.0` included).
fn remote(
    sd: &SessionDescription,
    m: &Media,
) -> Result<(SocketAddr, SocketAddr, Direction), SdpError> {
    let ip = sd
        .connection_of(m)
        .ok_or_else(|| SdpError::Malformed("audio without c= address".into()))?;
    let rtp = SocketAddr::new(ip, m.port);
    let rtcp = match m.rtcp {
        _ if m.rtcp_mux => rtp,
        Some((port, addr)) => SocketAddr::new(addr.unwrap_or(ip), port),
        None => SocketAddr::new(ip, m.port.wrapping_add(1)),
    };
    let mut direction = sd.direction_of(m);
    if is_unspecified(ip) {
        // RFC 2543-style hold: the peer wants nothing sent to it.
        direction = match direction {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            _ => Direction::Inactive,
        };
    }
    Ok((rtp, rtcp, direction))
}

fn is_unspecified(ip: IpAddr) -> bool {
    ip.is_unspecified()
}

fn choose_codec(policy: &MediaPolicy, m: &Media) -> Option<(CodecKind, u8)> {
    policy.codecs.iter().find_map(|&c| {
        m.payload_types()
            .find(|&pt| codec_of(m, pt) == Some(c))
            .map(|pt| (c, pt))
    })
}

fn negotiated(
    policy: &MediaPolicy,
    sd: &SessionDescription,
    index: usize,
    (codec, payload_type): (CodecKind, u8),
    direction: impl FnOnce(Direction) -> Direction,
) -> Result<Negotiated, SdpError> {
    let m = &sd.media[index];
    let (remote_rtp, remote_rtcp, remote_direction) = remote(sd, m)?;
    Ok(Negotiated {
        media_index: index,
        codec,
        payload_type,
        ptime_ms: ptime(codec, m, policy.ptime_ms),
        dtmf_payload_type: if policy.dtmf {
            dtmf_pt(m, codec.rtp_clock())
        } else {
            None
        },
        remote_rtp,
        remote_rtcp,
        rtcp_mux: m.rtcp_mux,
        remote_direction,
        direction: direction(remote_direction),
        opus: (codec == CodecKind::Opus)
            .then(|| OpusParams::from_fmtp(m.fmtp(payload_type).unwrap_or(""))),
    })
}

/// Picks the first usable audio stream of an offer and our preferred codec in it.
pub fn answer(policy: &MediaPolicy, offer: &SessionDescription) -> Result<Negotiated, SdpError> {
    let mut error = SdpError::NoAudio;
    for (i, m) in offer.media.iter().enumerate() {
        if m.kind != "audio" || m.port == 0 {
            continue;
        }
        if !transport_ok(m) {
            error = SdpError::UnsupportedTransport(m.proto.clone());
            continue;
        }
        match choose_codec(policy, m) {
            Some(choice) => return negotiated(policy, offer, i, choice, Direction::answer),
            None => error = SdpError::NoCommonCodec,
        }
    }
    Err(error)
}

/// Reads the peer's answer to our offer: its first listed codec we know is the one.
pub fn accept_answer(
    policy: &MediaPolicy,
    answer: &SessionDescription,
) -> Result<Negotiated, SdpError> {
    let (i, m) = answer
        .media
        .iter()
        .enumerate()
        .find(|(_, m)| m.kind == "audio" && m.port != 0)
        .ok_or(SdpError::NoAudio)?;
    let choice = m
        .payload_types()
        .find_map(|pt| {
            codec_of(m, pt)
                .filter(|c| policy.codecs.contains(c))
                .map(|c| (c, pt))
        })
        .ok_or(SdpError::NoCommonCodec)?;
    negotiated(policy, answer, i, choice, Direction::answer)
}
