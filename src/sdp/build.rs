//! Writing our answers and offers.

use std::fmt::Write;
use std::net::IpAddr;

use super::negotiate::Negotiated;
use super::parse::SessionDescription;
use super::{Direction, SdpSession};
use crate::media::codec::CodecKind;

/// Payload types we use in our own offers for codecs without a static one.
const OPUS_PT: u8 = 111;
const DTMF_8K_PT: u8 = 101;
const DTMF_48K_PT: u8 = 110;

fn addr_type(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IP4" } else { "IP6" }
}

/// `v=` to `t=`: the session part we always send.
fn session_head(out: &mut String, s: &SdpSession) {
    let (id, version, ip) = s.origin();
    let at = addr_type(ip);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "v=0\r\no=chorus {id} {version} IN {at} {ip}\r\ns=chorus\r\nc=IN {at} {ip}\r\nt=0 0\r\n"
    );
}

fn rtpmap(out: &mut String, pt: u8, codec: CodecKind, opus_rate: u32) {
    let channels = if codec == CodecKind::Opus { "/2" } else { "" };
    let _ = write!(
        out,
        "a=rtpmap:{pt} {}/{}{channels}\r\n",
        codec.encoding_name(),
        codec.rtp_clock()
    );
    if codec == CodecKind::Opus {
        // We decode mono and want the peer's FEC; RFC 7587 requires the /2 in rtpmap anyway.
        let _ = write!(out, "a=fmtp:{pt} ");
        if opus_rate < 48000 {
            let _ = write!(
                out,
                "maxplaybackrate={opus_rate};sprop-maxcapturerate={opus_rate};"
            );
        }
        out.push_str("useinbandfec=1\r\n");
    }
}

fn dtmf(out: &mut String, pt: u8, clock: u32) {
    let _ = write!(
        out,
        "a=rtpmap:{pt} telephone-event/{clock}\r\na=fmtp:{pt} 0-15\r\n"
    );
}

/// The answer: our stream in the chosen section, every other section rejected (port 0),
/// so the answer has as many `m=` lines as the offer (RFC 3264 section 6).
pub fn answer(s: &SdpSession, offer: &SessionDescription, neg: &Negotiated) -> String {
    let mut out = String::with_capacity(512);
    session_head(&mut out, s);
    for (i, m) in offer.media.iter().enumerate() {
        if i != neg.media_index {
            let format = m.formats.first().map_or("0", String::as_str);
            let _ = write!(out, "m={} 0 {} {format}\r\n", m.kind, m.proto);
            continue;
        }
        let _ = write!(
            out,
            "m=audio {} {} {}",
            s.local.port(),
            m.proto,
            neg.payload_type
        );
        if let Some(pt) = neg.dtmf_payload_type {
            let _ = write!(out, " {pt}");
        }
        out.push_str("\r\n");
        rtpmap(&mut out, neg.payload_type, neg.codec, s.policy.opus_rate);
        if let Some(pt) = neg.dtmf_payload_type {
            dtmf(&mut out, pt, neg.codec.rtp_clock());
        }
        let _ = write!(out, "a=ptime:{}\r\n", neg.ptime_ms);
        if neg.rtcp_mux {
            out.push_str("a=rtcp-mux\r\n");
        }
        let _ = write!(out, "a={}\r\n", neg.direction.attribute());
    }
    out
}

/// An offer of every configured codec in preference order, with telephone-event at each
/// clock rate in use, and RTP/RTCP multiplexing.
pub fn offer(s: &SdpSession, direction: Direction) -> String {
    let codecs = &s.policy.codecs;
    let pt_of = |c: CodecKind| c.static_pt().unwrap_or(OPUS_PT);
    let mut dtmf_pts = Vec::new();
    if s.policy.dtmf {
        if codecs.iter().any(|c| c.rtp_clock() == 8000) {
            dtmf_pts.push((DTMF_8K_PT, 8000));
        }
        if codecs.contains(&CodecKind::Opus) {
            dtmf_pts.push((DTMF_48K_PT, 48000));
        }
    }
    let mut out = String::with_capacity(512);
    session_head(&mut out, s);
    let _ = write!(out, "m=audio {} RTP/AVP", s.local.port());
    for &c in codecs {
        let _ = write!(out, " {}", pt_of(c));
    }
    for (pt, _) in &dtmf_pts {
        let _ = write!(out, " {pt}");
    }
    out.push_str("\r\n");
    for &c in codecs {
        rtpmap(&mut out, pt_of(c), c, s.policy.opus_rate);
    }
    for &(pt, clock) in &dtmf_pts {
        dtmf(&mut out, pt, clock);
    }
    let _ = write!(
        out,
        "a=ptime:{}\r\na=rtcp-mux\r\na={}\r\n",
        s.policy.ptime_ms,
        direction.attribute()
    );
    out
}
