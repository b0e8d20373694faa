//! A tolerant SDP reader (RFC 4566) for the parts offer/answer needs.
//!
//! Why not the `sdp` crate (0.17): it drops `a=fmtp` lines that have a space after `;`
//! (what Opus offers from many phones look like), rejects some harmless oddities of
//! real phones, and knows nothing of static payload types without `a=rtpmap`. This reader
//! accepts LF or CRLF, ignores lines it does not need and never panics on any input.

use std::net::IpAddr;

use super::{Direction, SdpError};

/// `a=rtpmap:<pt> <name>/<clock>[/<channels>]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub name: String,
    pub clock_rate: u32,
    pub channels: u8,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Media {
    pub kind: String,
    pub port: u16,
    pub proto: String,
    /// The format list of the m-line as written (payload types for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=` address.
    pub connection: Option<IpAddr>,
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` parameter strings by payload type.
    pub fmtps: Vec<(u8, String)>,
    pub ptime: Option<u32>,
    pub maxptime: Option<u32>,
    pub direction: Option<Direction>,
    /// `a=rtcp:<port> [IN IP4 <addr>]`
    pub rtcp: Option<(u16, Option<IpAddr>)>,
    pub rtcp_mux: bool,
}

impl Media {
    /// The RTP payload types of the m-line (non-numeric formats are skipped).
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|&pt| pt < 128)
    }

    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, s)| s.as_str())
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription {
    /// `o=` session id and version.
    pub origin_id: String,
    pub origin_version: u64,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    pub direction: Option<Direction>,
    pub media: Vec<Media>,
}

impl SessionDescription {
    /// Where media of section `m` goes: media-level `c=`, else session-level.
    pub fn connection_of(&self, m: &Media) -> Option<IpAddr> {
        m.connection.or(self.connection)
    }

    /// Direction of section `m`: media-level attribute, else session-level, else sendrecv.
    pub fn direction_of(&self, m: &Media) -> Direction {
        m.direction
            .or(self.direction)
            .unwrap_or(Direction::SendRecv)
    }
}

fn bad(what: &str, line: &str) -> SdpError {
    let shown: String = line.chars().take(80).collect();
    SdpError::Malformed(format!("{what}: {shown:?}"))
}

/// `c=IN IP4 192.0.2.1` (also `/ttl` suffixes); an FQDN is an error (we don't resolve).
fn connection(value: &str) -> Result<IpAddr, SdpError> {
    let mut it = value.split_whitespace();
    let (net, _ty, addr) = (it.next(), it.next(), it.next());
    if net != Some("IN") {
        return Err(bad("connection network type", value));
    }
    let addr = addr.ok_or_else(|| bad("connection address", value))?;
    let addr = addr.split('/').next().unwrap_or(addr);
    addr.parse().map_err(|_| bad("connection address", value))
}

fn media_line(value: &str) -> Result<Media, SdpError> {
    let mut it = value.split_whitespace();
    let kind = it
        .next()
        .ok_or_else(|| bad("m= line", value))?
        .to_ascii_lowercase();
    let port = it.next().ok_or_else(|| bad("m= line", value))?;
    // `port/count` is legal; the count does not matter for audio.
    let port = port
        .split('/')
        .next()
        .unwrap_or(port)
        .parse()
        .map_err(|_| bad("m= port", value))?;
    let proto = it.next().ok_or_else(|| bad("m= line", value))?.to_string();
    let formats = it.map(str::to_string).collect();
    Ok(Media {
        kind,
        port,
        proto,
        formats,
        ..Default::default()
    })
}

fn rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, rest) = value.split_once(char::is_whitespace)?;
    let mut parts = rest.trim().split('/');
    let name = parts.next()?.trim().to_string();
    let clock_rate = parts.next()?.trim().parse().ok()?;
    let channels = parts
        .next()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(1);
    Some(RtpMap {
        payload_type: pt.trim().parse().ok()?,
        name,
        clock_rate,
        channels,
    })
}

fn attribute(
    session_direction: &mut Option<Direction>,
    media: Option<&mut Media>,
    attr: &str,
) -> Result<(), SdpError> {
    let (name, value) = attr.split_once(':').unwrap_or((attr, ""));
    let value = value.trim();
    if let Some(d) = Direction::from_attribute(name) {
        match media {
            Some(m) => m.direction = Some(d),
            None => *session_direction = Some(d),
        }
        return Ok(());
    }
    // The remaining attributes only mean something inside a media section.
    let Some(m) = media else { return Ok(()) };
    match name {
        "rtpmap" => m.rtpmaps.extend(rtpmap(value)),
        "fmtp" => {
            if let Some((pt, params)) = value.split_once(char::is_whitespace)
                && let Ok(pt) = pt.parse()
            {
                m.fmtps.push((pt, params.trim().to_string()));
            }
        }
        "ptime" => m.ptime = value.parse::<f32>().ok().map(|p| p as u32),
        "maxptime" => m.maxptime = value.parse::<f32>().ok().map(|p| p as u32),
        "rtcp-mux" => m.rtcp_mux = true,
        "rtcp" => {
            let mut it = value.split_whitespace();
            let port = it
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad("a=rtcp", attr))?;
            let rest: Vec<&str> = it.collect();
            let addr = if rest.is_empty() {
                None
            } else {
                Some(connection(&rest.join(" "))?)
            };
            m.rtcp = Some((port, addr));
        }
        _ => {}
    }
    Ok(())
}

/// Parses SDP text. Needs at least one `m=` line; unknown lines are skipped.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    let mut session = SessionDescription::default();
    let mut seen_version = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| bad("line without '='", line))?;
        let value = value.trim();
        match key.trim() {
            "v" => seen_version = true,
            "o" => {
                let f: Vec<&str> = value.split_whitespace().collect();
                if f.len() < 6 {
                    return Err(bad("o= line", line));
                }
                session.origin_id = f[1].to_string();
                session.origin_version = f[2].parse().unwrap_or(0);
            }
            "c" => {
                let addr = connection(value)?;
                match session.media.last_mut() {
                    Some(m) => m.connection = Some(addr),
                    None => session.connection = Some(addr),
                }
            }
            "m" => session.media.push(media_line(value)?),
            "a" => {
                attribute(&mut session.direction, session.media.last_mut(), value)?;
            }
            _ => {}
        }
    }
    if !seen_version {
        return Err(SdpError::Malformed("no v= line".into()));
    }
    if session.media.is_empty() {
        return Err(SdpError::NoAudio);
    }
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sessions_media_and_attributes() {
        let text = "v=0\no=- 12 34 IN IP6 ::1\ns=-\nc=IN IP6 2001:db8::5\nt=0 0\na=sendonly\n\
                    m=audio 4000/2 RTP/AVP 0 96 101\na=rtpmap:96 opus/48000/2\n\
                    a=fmtp:96 minptime=10; useinbandfec=1\na=ptime:20.0\na=maxptime:40\n\
                    a=rtcp:4001 IN IP4 192.0.2.9\na=rtcp-mux\n";
        let s = parse(text).unwrap();
        assert_eq!((s.origin_id.as_str(), s.origin_version), ("12", 34));
        assert_eq!(s.direction, Some(Direction::SendOnly));
        let m = &s.media[0];
        assert_eq!(
            (m.kind.as_str(), m.port, m.proto.as_str()),
            ("audio", 4000, "RTP/AVP")
        );
        assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![0, 96, 101]);
        assert_eq!(m.rtpmap(96).unwrap().channels, 2);
        assert_eq!(m.fmtp(96), Some("minptime=10; useinbandfec=1"));
        assert_eq!(
            (m.ptime, m.maxptime, m.rtcp_mux),
            (Some(20), Some(40), true)
        );
        assert_eq!(m.rtcp, Some((4001, Some("192.0.2.9".parse().unwrap()))));
        assert_eq!(s.connection_of(m), Some("2001:db8::5".parse().unwrap()));
        assert_eq!(s.direction_of(m), Direction::SendOnly);
    }

    #[test]
    fn rejects_what_cannot_be_used() {
        assert!(matches!(parse(""), Err(SdpError::Malformed(_))));
        assert!(matches!(parse("v=0\ns=-\n"), Err(SdpError::NoAudio)));
        assert!(parse("v=0\nc=IN IP4 pbx.example.com\nm=audio 1 RTP/AVP 0\n").is_err());
        assert!(parse("v=0\nm=audio port RTP/AVP 0\n").is_err());
        assert!(parse("v=0\nthis is not sdp\n").is_err());
        assert!(parse("v=0\no=short\nm=audio 1 RTP/AVP 0\n").is_err());
    }
}
