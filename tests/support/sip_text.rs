//! SIP messages as text: a small, lenient parser for what the server sends the test phone.
//! Independent of the server's own SIP code, so tests do not check the server against itself.

/// Compact header forms (RFC 3261 7.3.3) and their full names.
const COMPACT: [(&str, &str); 9] = [
    ("v", "Via"),
    ("f", "From"),
    ("t", "To"),
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("k", "Supported"),
    ("s", "Subject"),
];

/// What the start line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request { method: String, uri: String },
    Response { status: u16, reason: String },
}

/// One SIP request or response.
#[derive(Clone, Debug)]
pub struct Message {
    pub start: StartLine,
    /// Header names in their full form, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Message {
    /// Parses one whole message. The body is cut to Content-Length when one is given.
    pub fn parse(bytes: &[u8]) -> Result<Message, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or("no blank line after the headers")?;
        let mut lines = head.split("\r\n");
        let start = parse_start(lines.next().unwrap_or_default())?;
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // Folded continuation of the previous header.
                let (_, value) = headers.last_mut().ok_or("continuation before any header")?;
                value.push(' ');
                value.push_str(line.trim());
                continue;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("bad header line {line:?}"))?;
            headers.push((full_name(name.trim()), value.trim().to_string()));
        }
        let mut message = Message {
            start,
            headers,
            body: body.to_string(),
        };
        if let Some(len) = message.header("Content-Length") {
            let len: usize = len
                .parse()
                .map_err(|_| format!("bad Content-Length {len}"))?;
            let body = message.body.as_bytes();
            if body.len() < len {
                return Err(format!("body shorter than Content-Length {len}"));
            }
            message.body = String::from_utf8_lossy(&body[..len]).into_owned();
        }
        Ok(message)
    }

    /// First value of a header (case-insensitive name, compact forms expanded).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_all(name).next()
    }

    /// Every value of a header, comma-separated values split (except inside <> or quotes).
    pub fn headers_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = full_name(name);
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
            .flat_map(|(_, v)| split_list(v))
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let (n, method) = self.header("CSeq")?.split_once(' ')?;
        Some((n.trim().parse().ok()?, method.trim()))
    }

    /// The tag parameter of a From or To header.
    pub fn tag(&self, header: &str) -> Option<&str> {
        param(self.header(header)?, "tag")
    }
}

fn parse_start(line: &str) -> Result<StartLine, String> {
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let status = code
            .parse()
            .map_err(|_| format!("bad status line {line:?}"))?;
        return Ok(StartLine::Response {
            status,
            reason: reason.to_string(),
        });
    }
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(uri), Some("SIP/2.0")) => Ok(StartLine::Request {
            method: method.to_string(),
            uri: uri.to_string(),
        }),
        _ => Err(format!("bad start line {line:?}")),
    }
}

fn full_name(name: &str) -> String {
    COMPACT
        .iter()
        .find(|(short, _)| short.eq_ignore_ascii_case(name))
        .map_or(name, |(_, full)| full)
        .to_string()
}

/// Splits a header value on the commas that separate list items.
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let mut items = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, ch) in value.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                items.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(value[start..].trim());
    items.into_iter().filter(|s| !s.is_empty())
}

/// A `;name=value` parameter of a header value, after any `<uri>` part.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = value.rsplit_once('>').map_or(value, |(_, p)| p);
    params.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// The URI of a name-addr (`"Name" <sip:x@y>;tag=1` gives `sip:x@y`) or a bare addr-spec.
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// Length of the first whole message in a stream buffer (TCP framing by Content-Length),
/// or None until it has all arrived. Strip CRLF keep-alives before calling it.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]);
    let len = head
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| {
            let name = name.trim();
            name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l")
        })
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (buf.len() >= end + len).then_some(end + len)
}
