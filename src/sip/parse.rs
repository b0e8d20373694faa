//! Normalising front: turns raw bytes into a header list with canonical long names, one value
//! per entry and a body framed by Content-Length, recording the first defect instead of giving up,
//! so that a broken request can still be answered with a precise 400.

/// Largest header section we accept; beyond it the answer is 513.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest body we accept (and the largest Content-Length the TCP framer will wait for).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The first line of a message, split but not yet validated further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request {
        method: String,
        uri: String,
    },
    Response {
        code: u16,
        reason: String,
    },
    /// Starts like a status line but is broken: never answered.
    BadStatusLine,
    /// Neither: the defect says why. Still answered when a Via is present.
    Invalid,
}

/// Why a message cannot be processed; `status` is the response code to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defect {
    pub status: u16,
    pub reason: String,
}

impl Defect {
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }
}

/// A message after normalisation. Header names are canonical (`Call-ID`, `Via`, ...), values
/// trimmed, comma lists split into one entry per element.
#[derive(Debug, Clone)]
pub struct Message {
    pub start: StartLine,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub defect: Option<Defect>,
}

impl Message {
    /// First value of a header (canonical name, case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl DoubleEndedIterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn note(&mut self, defect: Defect) {
        if self.defect.is_none() {
            self.defect = Some(defect);
        }
    }
}

/// How the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// UDP: the datagram ends the message; Content-Length may truncate it.
    Datagram,
    /// TCP: the framer already cut exactly Content-Length bytes of body.
    Stream,
}

/// Parses one message. `None` when there is nothing at all (empty or only CRLF keep-alives).
pub fn parse(bytes: &[u8], framing: Framing) -> Option<Message> {
    let start = bytes.iter().position(|b| *b != b'\r' && *b != b'\n')?;
    let bytes = &bytes[start..];
    let (head, body, terminated) = split_head(bytes);
    let head_text = String::from_utf8_lossy(head);
    let mut lines = unfold(&head_text).into_iter();
    let first = lines.next().unwrap_or_default();
    let mut msg = Message {
        start: StartLine::Invalid,
        headers: Vec::new(),
        body: Vec::new(),
        defect: None,
    };
    match parse_start_line(&first) {
        Ok(start) => msg.start = start,
        Err(d) => {
            if first.starts_with("SIP/") {
                msg.start = StartLine::BadStatusLine;
            }
            msg.note(d);
        }
    }
    if head.len() > MAX_HEADER_BYTES {
        msg.note(Defect::new(513, "Message Too Large"));
    }
    if std::str::from_utf8(head).is_err() {
        msg.note(Defect::new(400, "Invalid UTF-8 In Headers"));
    }
    if head.contains(&0) {
        msg.note(Defect::new(400, "NUL In Headers"));
    }
    for line in lines {
        parse_header_line(&line, &mut msg);
    }
    if !terminated {
        msg.note(Defect::new(400, "Missing Blank Line After Headers"));
    }
    frame_body(&mut msg, body, framing);
    Some(msg)
}

/// Splits at the first empty line (CRLF CRLF, or bare LF tolerated).
fn split_head(bytes: &[u8]) -> (&[u8], &[u8], bool) {
    let mut i = 0;
    while let Some(off) = bytes[i..].iter().position(|b| *b == b'\n') {
        let nl = i + off;
        let rest = &bytes[nl + 1..];
        let blank = if rest.starts_with(b"\r\n") {
            Some(2)
        } else if rest.starts_with(b"\n") {
            Some(1)
        } else {
            None
        };
        if let Some(len) = blank {
            return (&bytes[..nl], &rest[len..], true);
        }
        i = nl + 1;
    }
    (bytes, &[], false)
}

/// Splits header text into logical lines, joining folded continuation lines with one space.
fn unfold(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        match out.last_mut() {
            Some(prev) if line.starts_with([' ', '\t']) => {
                prev.push(' ');
                prev.push_str(line.trim());
            }
            _ => out.push(line.to_string()),
        }
    }
    out
}

fn parse_start_line(line: &str) -> Result<StartLine, Defect> {
    if line.starts_with("SIP/") {
        return parse_status_line(line);
    }
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts.as_slice() else {
        return Err(Defect::new(400, "Malformed Request-Line"));
    };
    if uri.is_empty() || version.is_empty() {
        return Err(Defect::new(400, "Malformed Request-Line"));
    }
    if !is_token(method) {
        return Err(Defect::new(400, "Malformed Method"));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(Defect::new(505, "Version Not Supported"));
    }
    Ok(StartLine::Request {
        method: method.to_string(),
        uri: uri.to_string(),
    })
}

fn parse_status_line(line: &str) -> Result<StartLine, Defect> {
    let mut it = line.splitn(3, ' ');
    let version = it.next().unwrap_or_default();
    let code = it.next().unwrap_or_default();
    let reason = it.next().unwrap_or_default();
    let code: u16 = match code.parse() {
        Ok(c) if code.len() == 3 && (100..700).contains(&c) => c,
        _ => return Err(Defect::new(400, "Malformed Status-Line")),
    };
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(Defect::new(505, "Version Not Supported"));
    }
    Ok(StartLine::Response {
        code,
        reason: reason.to_string(),
    })
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

fn parse_header_line(line: &str, msg: &mut Message) {
    if line.is_empty() {
        return;
    }
    let Some((name, value)) = line.split_once(':') else {
        msg.note(Defect::new(400, "Malformed Header Line"));
        return;
    };
    let name = name.trim_end_matches([' ', '\t']);
    if !is_token(name) {
        msg.note(Defect::new(400, "Malformed Header Name"));
        return;
    }
    let name = canonical_name(name);
    let value = value.trim();
    if is_list_header(&name) {
        for item in split_list(value) {
            msg.headers.push((name.clone(), item));
        }
    } else {
        msg.headers.push((name, value.to_string()));
    }
}

/// Long canonical spelling for compact forms (RFC 3261 §7.3.3, RFC 3515, 3841, 4028, 3892)
/// and for the headers we read, so lookups never depend on the sender's capitalisation.
pub fn canonical_name(name: &str) -> String {
    const NAMES: &[(&str, &str)] = &[
        ("v", "Via"),
        ("i", "Call-ID"),
        ("l", "Content-Length"),
        ("f", "From"),
        ("t", "To"),
        ("m", "Contact"),
        ("c", "Content-Type"),
        ("k", "Supported"),
        ("s", "Subject"),
        ("e", "Content-Encoding"),
        ("o", "Event"),
        ("u", "Allow-Events"),
        ("r", "Refer-To"),
        ("x", "Session-Expires"),
        ("a", "Accept-Contact"),
        ("b", "Referred-By"),
        ("j", "Reject-Contact"),
        ("d", "Request-Disposition"),
        ("y", "Identity"),
        ("n", "Identity-Info"),
        ("via", "Via"),
        ("call-id", "Call-ID"),
        ("content-length", "Content-Length"),
        ("from", "From"),
        ("to", "To"),
        ("contact", "Contact"),
        ("content-type", "Content-Type"),
        ("supported", "Supported"),
        ("cseq", "CSeq"),
        ("max-forwards", "Max-Forwards"),
        ("record-route", "Record-Route"),
        ("route", "Route"),
        ("require", "Require"),
        ("proxy-require", "Proxy-Require"),
        ("allow", "Allow"),
        ("accept", "Accept"),
        ("user-agent", "User-Agent"),
    ];
    NAMES
        .iter()
        .find(|(short, _)| short.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_string(), |(_, long)| long.to_string())
}

/// Headers whose comma-joined values are separate elements (RFC 3261 §7.3.1).
fn is_list_header(name: &str) -> bool {
    matches!(
        name,
        "Via"
            | "Contact"
            | "Route"
            | "Record-Route"
            | "Require"
            | "Proxy-Require"
            | "Supported"
            | "Allow"
            | "Accept"
    )
}

/// Splits on commas outside quotes and angle brackets.
pub fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut cur = String::new();
    for ch in value.chars() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    out.push(cur.trim().to_string());
    out.retain(|s| !s.is_empty());
    out
}

fn frame_body(msg: &mut Message, body: &[u8], framing: Framing) {
    let lengths: Vec<String> = msg
        .headers_named("Content-Length")
        .map(str::to_string)
        .collect();
    if lengths.len() > 1 && lengths.iter().any(|l| *l != lengths[0]) {
        msg.note(Defect::new(400, "Conflicting Content-Length"));
    }
    let declared = match lengths.first() {
        None if framing == Framing::Stream => {
            msg.note(Defect::new(400, "Missing Content-Length"));
            None
        }
        None => None,
        Some(l) => match parse_content_length(l) {
            Ok(n) => Some(n),
            Err(d) => {
                msg.note(d);
                None
            }
        },
    };
    let body = match declared {
        Some(n) if n > body.len() => {
            msg.note(Defect::new(400, "Content-Length Exceeds Body"));
            body
        }
        Some(n) => &body[..n],
        None => body,
    };
    if body.len() > MAX_BODY_BYTES {
        msg.note(Defect::new(513, "Message Too Large"));
        return;
    }
    msg.body = body.to_vec();
}

/// A decimal Content-Length no larger than [`MAX_BODY_BYTES`] (larger is 513).
pub fn parse_content_length(value: &str) -> Result<usize, Defect> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Defect::new(400, "Bad Content-Length"));
    }
    match value.parse::<usize>() {
        Ok(n) if n <= MAX_BODY_BYTES => Ok(n),
        _ => Err(Defect::new(513, "Message Too Large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Message {
        parse(s.as_bytes(), Framing::Datagram).expect("message")
    }

    #[test]
    fn compact_and_case_insensitive_names_become_canonical() {
        let m = p(
            "OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\ni: abc\r\n\
                   f: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\nCSEQ: 1 OPTIONS\r\nl: 0\r\n\r\n",
        );
        assert_eq!(m.header("Call-ID"), Some("abc"));
        assert_eq!(m.header("From"), Some("<sip:x@y>;tag=1"));
        assert_eq!(m.header("CSeq"), Some("1 OPTIONS"));
        assert_eq!(m.headers_named("Via").count(), 1);
        assert!(m.defect.is_none());
    }

    #[test]
    fn comma_lists_split_outside_quotes_and_brackets() {
        let m = p(
            "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h1;branch=z9hG4bK1, SIP/2.0/UDP h2\r\n\
                   Contact: \"a, b\" <sip:x@y;p=1,2>, <sip:z@w>\r\n\r\n",
        );
        assert_eq!(m.headers_named("Via").collect::<Vec<_>>().len(), 2);
        let contacts: Vec<_> = m.headers_named("Contact").collect();
        assert_eq!(contacts, ["\"a, b\" <sip:x@y;p=1,2>", "<sip:z@w>"]);
    }

    #[test]
    fn folded_lines_are_joined() {
        let m = p("OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n  two\r\n\r\n");
        assert_eq!(m.header("Subject"), Some("one two"));
    }

    #[test]
    fn body_truncated_to_content_length_or_rejected_when_short() {
        let m = p("INFO sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabcdef");
        assert_eq!(m.body, b"abc");
        let m = p("INFO sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nabc");
        assert_eq!(m.defect.map(|d| d.status), Some(400));
    }

    #[test]
    fn bad_version_is_505_and_empty_is_nothing() {
        let m = p("OPTIONS sip:a@b SIP/7.0\r\n\r\n");
        assert_eq!(m.defect.map(|d| d.status), Some(505));
        assert!(parse(b"\r\n\r\n", Framing::Datagram).is_none());
    }
}
