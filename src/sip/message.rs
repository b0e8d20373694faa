//! Typed views of normalised messages (name-addrs and URIs through rsip) and the text builders
//! for the responses and requests we send.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use rsip::prelude::{ToTypedHeader, UntypedHeader};

use super::parse::{Defect, Message, StartLine};

/// RFC 3261 magic cookie: branches starting with it are globally unique transaction ids.
pub const MAGIC: &str = "z9hG4bK";

/// A message body with its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// A From/To/Contact value: display name, URI and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display_name: Option<String>,
    pub uri: String,
    pub user: Option<String>,
    pub tag: Option<String>,
}

impl NameAddr {
    /// The front does what rsip cannot: quoted display names with escapes, whitespace around
    /// `;` and `=` (RFC 4475 wsinv), IPv6 references, and non-SIP URIs (tel:, ...), which rsip
    /// rejects but which are still a valid From or To; rsip parses SIP URIs and params.
    pub fn parse(value: &str) -> Option<Self> {
        let (display_name, rest) = split_display_name(value.trim())?;
        let display_name = display_name.filter(|d| !d.is_empty());
        let tidy = tidy_params(rest);
        if !is_sip_uri(tidy.trim_start_matches('<')) {
            return Self::opaque(display_name, &tidy);
        }
        let (masked, v6) = mask_ipv6(&tidy);
        let typed = rsip::headers::From::new(masked).typed().ok()?;
        Some(Self {
            display_name,
            user: typed.uri.user().map(percent_decode),
            tag: typed.tag().map(|t| t.value().to_string()),
            uri: unmask_ipv6(typed.uri.to_string(), v6.as_deref()),
        })
    }

    /// A name-addr whose URI we only carry: `<uri>;params` or `uri;params`.
    fn opaque(display_name: Option<String>, value: &str) -> Option<Self> {
        let (uri, params) = match value.strip_prefix('<') {
            Some(inner) => inner.split_once('>')?,
            None => value.split_once(';').unwrap_or((value, "")),
        };
        let (scheme, rest) = uri.split_once(':')?;
        // Whitespace, quotes and angle brackets are never part of a URI (RFC 3986): a value
        // holding them would be sent back as a broken Request-URI.
        let unsafe_char = |c: char| c.is_whitespace() || "<>\"".contains(c);
        if !is_scheme(scheme) || rest.is_empty() || uri.contains(unsafe_char) {
            return None;
        }
        let tag = params
            .split(';')
            .find_map(|p| p.strip_prefix("tag="))
            .map(str::to_string);
        let user = scheme
            .eq_ignore_ascii_case("tel")
            .then(|| rest.split(';').next().unwrap_or_default().to_string());
        Some(Self {
            display_name,
            uri: uri.to_string(),
            user,
            tag,
        })
    }
}

/// RFC 3261 §25.1: `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

fn is_sip_uri(uri: &str) -> bool {
    let scheme = uri.split_once(':').map_or("", |(s, _)| s);
    scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
}

/// Splits `"quoted \" name" <uri>;params` or `token name <uri>` into display name and rest.
fn split_display_name(value: &str) -> Option<(Option<String>, &str)> {
    if let Some(quoted) = value.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => name.push(chars.next()?.1),
                '"' => return Some((Some(name), quoted[i + 1..].trim_start())),
                c => name.push(c),
            }
        }
        return None;
    }
    match value.find('<') {
        Some(0) | None => Some((None, value)),
        Some(i) => Some((Some(value[..i].trim().to_string()), &value[i..])),
    }
}

/// Removes whitespace around `;` and `=` outside the angle brackets.
fn tidy_params(value: &str) -> String {
    let split = value.find('>').map_or(0, |i| i + 1);
    let (addr, params) = value.split_at(split);
    let mut out = addr.trim().to_string();
    for (i, part) in params.split(';').enumerate() {
        if i > 0 {
            out.push(';');
        }
        let tidy: Vec<&str> = part.split('=').map(str::trim).collect();
        out.push_str(&tidy.join("="));
    }
    out
}

/// rsip's host parser splits at the first ':', so IPv6 references are swapped for a
/// placeholder domain while it parses.
const V6_PLACEHOLDER: &str = "ipv6-reference.invalid";

fn mask_ipv6(value: &str) -> (String, Option<String>) {
    match (value.find('['), value.find(']')) {
        (Some(a), Some(b)) if a < b => {
            let v6 = value[a..=b].to_string();
            (value.replacen(&v6, V6_PLACEHOLDER, 1), Some(v6))
        }
        _ => (value.to_string(), None),
    }
}

fn unmask_ipv6(value: String, v6: Option<&str>) -> String {
    match v6 {
        Some(v6) => value.replacen(V6_PLACEHOLDER, v6, 1),
        None => value,
    }
}

/// The decoded user part of a SIP URI, if it has one.
pub fn uri_user(uri: &str) -> Option<String> {
    let uri = rsip::Uri::try_from(mask_ipv6(uri).0.as_str()).ok()?;
    uri.user().map(percent_decode)
}

/// `%XX` escapes decoded (RFC 3261 §19.1.2), invalid ones kept as they are.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The fields of a Via we route and match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub host: String,
    pub port: Option<u16>,
    pub branch: Option<String>,
    pub rport: bool,
}

impl Via {
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let sent = parts.next()?.trim();
        let (proto, sent_by) = sent.split_once(|c: char| c.is_ascii_whitespace())?;
        if !proto.to_ascii_uppercase().starts_with("SIP/2.0/") {
            return None;
        }
        let (host, port) = split_host_port(sent_by.trim())?;
        let mut via = Via {
            host,
            port,
            branch: None,
            rport: false,
        };
        for param in parts {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "branch" => via.branch = Some(v.trim().to_string()),
                "rport" => via.rport = true,
                _ => {}
            }
        }
        Some(via)
    }

    pub fn sent_by(&self) -> String {
        format!("{}:{}", self.host, self.port.unwrap_or(5060))
    }
}

fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.trim().parse().ok()?),
        None => None,
    };
    Some((host.to_string(), port))
}

/// A request whose mandatory headers are present and well-formed.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub uri: String,
    pub via: Via,
    pub from: NameAddr,
    pub to: NameAddr,
    pub call_id: String,
    pub cseq: u32,
    pub max_forwards: Option<u32>,
    pub msg: Message,
}

impl Request {
    /// Validates a normalised request; the error carries the status to answer with.
    pub fn from_message(msg: Message) -> Result<Self, Defect> {
        if let Some(d) = &msg.defect {
            return Err(d.clone());
        }
        let StartLine::Request { method, uri } = &msg.start else {
            return Err(Defect::new(400, "Not A Request"));
        };
        check_request_uri(uri)?;
        let via = msg
            .header("Via")
            .ok_or_else(|| Defect::new(400, "Missing Via"))?;
        let via = Via::parse(via).ok_or_else(|| Defect::new(400, "Bad Via"))?;
        let from = name_addr(&msg, "From")?;
        let to = name_addr(&msg, "To")?;
        let call_id = msg
            .header("Call-ID")
            .filter(|c| !c.is_empty() && !c.contains(char::is_whitespace))
            .ok_or_else(|| Defect::new(400, "Missing Call-ID"))?
            .to_string();
        let (cseq, cseq_method) = parse_cseq(msg.header("CSeq"))?;
        if cseq_method != *method {
            return Err(Defect::new(400, "CSeq Method Mismatch"));
        }
        let max_forwards = match msg.header("Max-Forwards") {
            None => None,
            Some(v) => Some(
                v.parse::<u32>()
                    .ok()
                    .filter(|n| *n <= 255)
                    .ok_or_else(|| Defect::new(400, "Bad Max-Forwards"))?,
            ),
        };
        Ok(Self {
            method: method.clone(),
            uri: uri.clone(),
            via,
            from,
            to,
            call_id,
            cseq,
            max_forwards,
            msg,
        })
    }

    pub fn body(&self) -> Option<Body> {
        if self.msg.body.is_empty() {
            return None;
        }
        Some(Body {
            content_type: self
                .msg
                .header("Content-Type")
                .unwrap_or("application/octet-stream")
                .to_string(),
            bytes: self.msg.body.clone(),
        })
    }
}

fn check_request_uri(uri: &str) -> Result<(), Defect> {
    let scheme = uri.split_once(':').map(|(s, _)| s).unwrap_or_default();
    if !is_scheme(scheme) {
        return Err(Defect::new(400, "Bad Request-URI"));
    }
    if !is_sip_uri(uri) {
        return Err(Defect::new(416, "Unsupported URI Scheme"));
    }
    match rsip::Uri::try_from(mask_ipv6(uri).0.as_str()) {
        Ok(u) if !u.host().to_string().is_empty() => Ok(()),
        _ => Err(Defect::new(400, "Bad Request-URI")),
    }
}

fn name_addr(msg: &Message, name: &'static str) -> Result<NameAddr, Defect> {
    let value = msg
        .header(name)
        .ok_or_else(|| Defect::new(400, format!("Missing {name}")))?;
    NameAddr::parse(value).ok_or_else(|| Defect::new(400, format!("Bad {name}")))
}

/// `CSeq: <number below 2^31> <method>`.
pub fn parse_cseq(value: Option<&str>) -> Result<(u32, String), Defect> {
    let value = value.ok_or_else(|| Defect::new(400, "Missing CSeq"))?;
    let mut it = value.split_whitespace();
    let (Some(n), Some(m), None) = (it.next(), it.next(), it.next()) else {
        return Err(Defect::new(400, "Bad CSeq"));
    };
    match n.parse::<u32>() {
        Ok(n) if n < 1 << 31 && super::parse::is_token(m) => Ok((n, m.to_string())),
        _ => Err(Defect::new(400, "Bad CSeq")),
    }
}

/// A response to one of our requests, reduced to what client transactions match on.
#[derive(Debug, Clone)]
pub struct Response {
    pub code: u16,
    pub branch: String,
    pub cseq_method: String,
}

impl Response {
    pub fn from_message(msg: &Message) -> Option<Self> {
        let StartLine::Response { code, .. } = msg.start else {
            return None;
        };
        if msg.defect.is_some() {
            return None;
        }
        let via = Via::parse(msg.header("Via")?)?;
        let (_, cseq_method) = parse_cseq(msg.header("CSeq")).ok()?;
        Some(Self {
            code,
            branch: via.branch?,
            cseq_method,
        })
    }
}

/// Where a response goes on an unreliable transport (RFC 3261 §18.2.2 with RFC 3581 rport):
/// the source IP, and the source port when rport was asked for, else the Via port.
pub fn response_destination(via: Option<&Via>, source: SocketAddr) -> SocketAddr {
    match via {
        Some(v) if !v.rport => SocketAddr::new(source.ip(), v.port.unwrap_or(5060)),
        _ => source,
    }
}

/// Adds `received` (when the host is not the source IP) and a filled `rport` to a Via value.
fn stamp_via(value: &str, source: SocketAddr) -> String {
    let host_matches = Via::parse(value)
        .and_then(|v| v.host.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip == source.ip());
    let mut out = String::new();
    for (i, param) in value.split(';').enumerate() {
        if i > 0 && param.trim().eq_ignore_ascii_case("rport") {
            let _ = write!(out, ";rport={}", source.port());
            continue;
        }
        if i > 0 {
            out.push(';');
        }
        out.push_str(param);
    }
    if !host_matches {
        let _ = write!(out, ";received={}", source.ip());
    }
    out
}

/// What the server adds to the copied headers of a response.
pub struct ResponseParts<'a> {
    pub status: u16,
    pub reason: &'a str,
    pub to_tag: Option<&'a str>,
    pub headers: &'a [(&'a str, String)],
    pub body: Option<&'a Body>,
}

/// A response to `req` (RFC 3261 §8.2.6): Via list, From, To, Call-ID, CSeq copied, headers
/// the request lacks simply left out (that is how a 400 for a missing one still goes out).
pub fn build_response(req: &Message, source: SocketAddr, parts: &ResponseParts) -> Vec<u8> {
    let mut out = format!(
        "SIP/2.0 {} {}\r\n",
        parts.status,
        parts.reason.replace(['\r', '\n'], " ")
    );
    for (i, via) in req.headers_named("Via").enumerate() {
        let via = if i == 0 {
            stamp_via(via, source)
        } else {
            via.to_string()
        };
        let _ = write!(out, "Via: {via}\r\n");
    }
    if let Some(from) = req.header("From") {
        let _ = write!(out, "From: {from}\r\n");
    }
    if let Some(to) = req.header("To") {
        let has_tag = NameAddr::parse(to).is_some_and(|n| n.tag.is_some());
        match parts.to_tag {
            Some(tag) if !has_tag => {
                let _ = write!(out, "To: {to};tag={tag}\r\n");
            }
            _ => {
                let _ = write!(out, "To: {to}\r\n");
            }
        }
    }
    for name in ["Call-ID", "CSeq"] {
        if let Some(v) = req.header(name) {
            let _ = write!(out, "{name}: {v}\r\n");
        }
    }
    finish(out, parts.headers, parts.body)
}

/// Appends extra headers, Content-Type/Length and the body.
pub fn finish(mut out: String, headers: &[(&str, String)], body: Option<&Body>) -> Vec<u8> {
    for (name, value) in headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if let Some(b) = body {
        let _ = write!(out, "Content-Type: {}\r\n", b.content_type);
    }
    let len = body.map_or(0, |b| b.bytes.len());
    let _ = write!(out, "Content-Length: {len}\r\n\r\n");
    let mut bytes = out.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(&b.bytes);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_parses_ipv6_rport_and_branch() {
        let v = Via::parse("SIP/2.0/UDP [::1]:5070;rport;branch=z9hG4bKx").unwrap();
        assert_eq!(
            (v.host.as_str(), v.port, v.rport),
            ("::1", Some(5070), true)
        );
        assert_eq!(v.branch.as_deref(), Some("z9hG4bKx"));
        assert!(Via::parse("garbage").is_none());
    }

    #[test]
    fn name_addr_gives_display_uri_user_tag() {
        let n = NameAddr::parse("\"Alice\" <sip:alice@example.com>;tag=88").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("Alice"));
        assert_eq!(n.user.as_deref(), Some("alice"));
        assert_eq!(n.tag.as_deref(), Some("88"));
        let n = NameAddr::parse("\"J \\\"R\\\"\"  <sip:%6Ad@[::1]:5060> ; tag = 7").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("J \"R\""));
        assert_eq!(n.user.as_deref(), Some("jd"));
        assert_eq!(n.uri, "sip:%6Ad@[::1]:5060");
        assert_eq!(n.tag.as_deref(), Some("7"));
        assert_eq!(
            uri_user("sip:%63onf%2Dr%6Fom@127.0.0.1;transport=udp").as_deref(),
            Some("conf-room")
        );
        let n = NameAddr::parse("\"Carrier\" <tel:+4930123;phone-context=x>;tag=9").unwrap();
        assert_eq!(n.user.as_deref(), Some("+4930123"));
        assert_eq!(n.tag.as_deref(), Some("9"));
        assert!(NameAddr::parse("<1nvalid:x>").is_none());
        // Found by fuzzing: this Contact became the Request-URI of our BYE.
        assert!(NameAddr::parse("<sipTo: <sip:2000@127.0.0.1:5060>").is_none());
        let n = NameAddr::parse("Bob Smith <sip:bob@b>").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("Bob Smith"));
    }

    #[test]
    fn response_goes_to_rport_or_via_port() {
        let src: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let v = Via::parse("SIP/2.0/UDP 192.168.1.2:5062;branch=z9hG4bK1").unwrap();
        assert_eq!(
            response_destination(Some(&v), src),
            "10.0.0.1:5062".parse().unwrap()
        );
        let v = Via::parse("SIP/2.0/UDP 192.168.1.2:5062;rport").unwrap();
        assert_eq!(response_destination(Some(&v), src), src);
        assert_eq!(
            stamp_via("SIP/2.0/UDP 192.168.1.2:5062;rport", src),
            "SIP/2.0/UDP 192.168.1.2:5062;rport=4000;received=10.0.0.1"
        );
    }
}
