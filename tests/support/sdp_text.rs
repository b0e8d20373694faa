//! SDP as text: the phone's offers and answers, and reading the server's.

use chorus::media::codec::CodecKind;
use std::net::{IpAddr, SocketAddr};

/// Payload type the phone uses for telephone-event at 8 kHz (and at 48 kHz next to Opus).
pub const TELEPHONE_EVENT_PT: u8 = 101;
pub const TELEPHONE_EVENT_48K_PT: u8 = 110;
const OPUS_PT: u8 = 111;

/// Media direction attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attr(attr: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.attr() == attr)
    }

    /// What an answerer replies to an offer with this direction.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }
}

/// The RTP name, clock rate and static payload type (if any) of a codec.
pub fn rtp_format(kind: CodecKind) -> (&'static str, u32, Option<u8>) {
    match kind {
        CodecKind::Pcmu => ("PCMU", 8000, Some(0)),
        CodecKind::Pcma => ("PCMA", 8000, Some(8)),
        // G.722 keeps the 8 kHz RTP clock for historical reasons (RFC 3551 4.5.2).
        CodecKind::G722 => ("G722", 8000, Some(9)),
        CodecKind::Opus => ("opus", 48000, None),
    }
}

fn payload_type(kind: CodecKind) -> u8 {
    rtp_format(kind).2.unwrap_or(OPUS_PT)
}

/// The audio part of a session description.
#[derive(Clone, Debug, PartialEq)]
pub struct Sdp {
    pub rtp: SocketAddr,
    /// Payload types of the m-line, in preference order.
    pub formats: Vec<u8>,
    /// `a=rtpmap` lines: payload type, encoding name, clock rate.
    pub rtpmap: Vec<(u8, String, u32)>,
    pub direction: Direction,
}

impl Sdp {
    /// Reads the connection address, the first audio m-line and its attributes.
    pub fn parse(text: &str) -> Result<Sdp, String> {
        let (mut session_ip, mut media_ip, mut port) = (None, None, None);
        let (mut formats, mut rtpmap, mut direction) = (Vec::new(), Vec::new(), None);
        let mut in_audio = false;
        for line in text.lines().map(str::trim) {
            let Some((kind, value)) = line.split_once('=') else {
                continue;
            };
            match kind {
                "m" => {
                    if port.is_some() {
                        break; // only the first audio stream matters to the phone
                    }
                    in_audio = value.starts_with("audio ");
                    if in_audio {
                        let mut parts = value.split_whitespace().skip(1);
                        port = parts.next().and_then(|p| p.parse::<u16>().ok());
                        formats = parts.skip(1).filter_map(|f| f.parse().ok()).collect();
                    }
                }
                "c" => {
                    let ip = value
                        .split_whitespace()
                        .nth(2)
                        .and_then(|a| a.split('/').next()?.parse::<IpAddr>().ok());
                    if port.is_some() {
                        media_ip = ip;
                    } else {
                        session_ip = ip;
                    }
                }
                "a" if port.is_none() || in_audio => {
                    if let Some(map) = value.strip_prefix("rtpmap:") {
                        rtpmap.extend(parse_rtpmap(map));
                    } else if let Some(d) = Direction::from_attr(value) {
                        direction = Some(d);
                    }
                }
                _ => {}
            }
        }
        let port = port.ok_or("no audio m-line")?;
        let ip = media_ip.or(session_ip).ok_or("no c= address")?;
        Ok(Sdp {
            rtp: SocketAddr::new(ip, port),
            formats,
            rtpmap,
            direction: direction.unwrap_or(Direction::SendRecv),
        })
    }

    /// Encoding name and clock of a payload type: rtpmap first, then the static table.
    pub fn format(&self, pt: u8) -> Option<(String, u32)> {
        if let Some((_, name, rate)) = self.rtpmap.iter().find(|(p, _, _)| *p == pt) {
            return Some((name.clone(), *rate));
        }
        [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722]
            .into_iter()
            .map(rtp_format)
            .find(|(_, _, p)| *p == Some(pt))
            .map(|(name, rate, _)| (name.to_string(), rate))
    }

    /// The first format of the m-line that is one of `ours`, with its payload type.
    pub fn first_codec(&self, ours: &[CodecKind]) -> Option<(CodecKind, u8)> {
        self.formats.iter().find_map(|&pt| {
            let (name, rate) = self.format(pt)?;
            ours.iter()
                .find(|&&k| {
                    let (n, r, _) = rtp_format(k);
                    n.eq_ignore_ascii_case(&name) && r == rate
                })
                .map(|&k| (k, pt))
        })
    }

    /// The telephone-event payload type offered at `clock`, if any.
    pub fn telephone_event(&self, clock: u32) -> Option<u8> {
        self.formats.iter().copied().find(|&pt| {
            self.format(pt)
                .is_some_and(|(n, r)| n.eq_ignore_ascii_case("telephone-event") && r == clock)
        })
    }
}

fn parse_rtpmap(map: &str) -> Option<(u8, String, u32)> {
    let (pt, encoding) = map.split_once(' ')?;
    let mut parts = encoding.trim().split('/');
    let name = parts.next()?.to_string();
    let rate = parts.next()?.parse().ok()?;
    Some((pt.parse().ok()?, name, rate))
}

/// Writes a session description for `codecs` and telephone-`events` (payload type, clock) at
/// `rtp`. `version` must grow with every new offer or answer in a dialog (o= line).
pub fn write(
    rtp: SocketAddr,
    codecs: &[(CodecKind, u8)],
    events: &[(u8, u32)],
    direction: Direction,
    version: u32,
) -> String {
    let ip_ver = if rtp.is_ipv6() { "IP6" } else { "IP4" };
    let ip = rtp.ip();
    let mut formats = Vec::new();
    let mut attrs = String::new();
    for &(kind, pt) in codecs {
        let (name, rate, _) = rtp_format(kind);
        let channels = if kind == CodecKind::Opus { "/2" } else { "" };
        formats.push(pt.to_string());
        attrs += &format!("a=rtpmap:{pt} {name}/{rate}{channels}\r\n");
    }
    for &(pt, clock) in events {
        formats.push(pt.to_string());
        attrs += &format!("a=rtpmap:{pt} telephone-event/{clock}\r\na=fmtp:{pt} 0-16\r\n");
    }
    format!(
        "v=0\r\no=phone 1 {version} IN {ip_ver} {ip}\r\ns=-\r\nc=IN {ip_ver} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP {}\r\n{attrs}a=ptime:20\r\na={}\r\n",
        rtp.port(),
        formats.join(" "),
        direction.attr()
    )
}

/// The phone's offer: every codec in `codecs` with its usual payload type, and
/// telephone-event at each clock they use.
pub fn offer(rtp: SocketAddr, codecs: &[CodecKind], direction: Direction, version: u32) -> String {
    let with_pts: Vec<(CodecKind, u8)> = codecs.iter().map(|&k| (k, payload_type(k))).collect();
    let mut events = Vec::new();
    for (pt, clock) in [(TELEPHONE_EVENT_PT, 8000), (TELEPHONE_EVENT_48K_PT, 48000)] {
        if codecs.iter().any(|&k| rtp_format(k).1 == clock) {
            events.push((pt, clock));
        }
    }
    write(rtp, &with_pts, &events, direction, version)
}
