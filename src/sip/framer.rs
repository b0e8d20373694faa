//! TCP stream framer: bytes in, whole messages out (RFC 3261 §18.3). Content-Length is
//! mandatory on streams; CRLF keep-alives (RFC 5626 §3.5.1) between messages are skipped.

use super::parse::{MAX_BODY_BYTES, MAX_HEADER_BYTES, parse_content_length};

/// The stream cannot be resynchronised: the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("header section longer than {MAX_HEADER_BYTES} bytes")]
    HeadersTooLong,
    #[error("missing or invalid Content-Length on a stream")]
    BadContentLength,
}

#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// How much of `buf` has been searched for the end of the header section, so that a
    /// message arriving a byte at a time costs linear, not quadratic, time.
    searched: usize,
    /// The length of the message at the front of `buf` once its header section is complete.
    total: Option<usize>,
}

impl Framer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether part of a message is waiting for the rest (keep-alive CRLFs aside), once
    /// [`Self::next_message`] has returned `Ok(None)`.
    pub fn pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next whole message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let total = match self.total {
            Some(total) => total,
            None => match self.message_length()? {
                Some(total) => *self.total.insert(total),
                None => return Ok(None),
            },
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        (self.searched, self.total) = (0, None);
        Ok(Some(std::mem::replace(&mut self.buf, rest)))
    }

    /// The length of the message at the front, once its header section is complete.
    fn message_length(&mut self) -> Result<Option<usize>, FrameError> {
        let skip = self
            .buf
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(self.buf.len());
        self.buf.drain(..skip);
        self.searched = self.searched.saturating_sub(skip);
        // The terminator may have begun in the bytes searched last time.
        let from = self.searched.saturating_sub(3);
        let Some(head_end) = find(&self.buf[from..], b"\r\n\r\n").map(|i| from + i) else {
            self.searched = self.buf.len();
            return if self.buf.len() > MAX_HEADER_BYTES {
                Err(FrameError::HeadersTooLong)
            } else {
                Ok(None)
            };
        };
        if head_end > MAX_HEADER_BYTES {
            return Err(FrameError::HeadersTooLong);
        }
        Ok(Some(head_end + 4 + content_length(&self.buf[..head_end])?))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The one Content-Length of a header section (long or compact name); duplicates must agree.
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let text = String::from_utf8_lossy(head);
    let mut found: Option<usize> = None;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if !(name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l")) {
            continue;
        }
        let n = parse_content_length(value).map_err(|_| FrameError::BadContentLength)?;
        if found.is_some_and(|f| f != n) {
            return Err(FrameError::BadContentLength);
        }
        found = Some(n);
    }
    found
        .filter(|n| *n <= MAX_BODY_BYTES)
        .ok_or(FrameError::BadContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 3\r\n\r\nabc";
    const B: &[u8] = b"BYE sip:a SIP/2.0\r\nl: 0\r\n\r\n";

    #[test]
    fn splits_joined_messages_and_skips_keepalives() {
        let mut f = Framer::new();
        let mut input = b"\r\n\r\n".to_vec();
        input.extend_from_slice(A);
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(B);
        f.push(&input);
        assert_eq!(f.next_message().unwrap().as_deref(), Some(A));
        assert_eq!(f.next_message().unwrap().as_deref(), Some(B));
        assert_eq!(f.next_message().unwrap(), None);
    }

    #[test]
    fn joins_a_message_split_byte_by_byte() {
        let mut f = Framer::new();
        for (i, b) in A.iter().enumerate() {
            assert_eq!(f.next_message().unwrap(), None, "complete too early at {i}");
            f.push(&[*b]);
        }
        assert_eq!(f.next_message().unwrap().as_deref(), Some(A));
    }

    #[test]
    fn largest_message_dripped_a_byte_at_a_time_frames_exactly() {
        // Fuzzing (fuzz/fuzz_targets/sip_framer.rs) ran at 47 inputs/s: every byte rescanned
        // the whole head, and reparsed it while the body came in. A 16 KB head and 64 KB body
        // sent one byte per segment cost seconds of CPU; now each byte is looked at once.
        let mut msg = b"INFO sip:a SIP/2.0\r\nX: ".to_vec();
        msg.resize(MAX_HEADER_BYTES - 20, b'x');
        msg.extend_from_slice(format!("\r\nl: {MAX_BODY_BYTES}\r\n\r\n").as_bytes());
        msg.resize(msg.len() + MAX_BODY_BYTES, b'b');
        let mut f = Framer::new();
        for _ in 0..2 {
            for (i, b) in msg.iter().enumerate() {
                assert_eq!(f.next_message().unwrap(), None, "complete too early at {i}");
                f.push(&[*b]);
            }
            assert_eq!(f.next_message().unwrap().as_deref(), Some(&msg[..]));
        }
    }

    #[test]
    fn head_end_split_across_reads_at_every_offset() {
        for cut in 0..B.len() {
            let mut f = Framer::new();
            f.push(&B[..cut]);
            assert_eq!(f.next_message().unwrap(), None);
            f.push(&B[cut..]);
            assert_eq!(
                f.next_message().unwrap().as_deref(),
                Some(B),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn bad_or_missing_or_huge_content_length_is_fatal() {
        for head in [
            &b"BYE sip:a SIP/2.0\r\n\r\n"[..],
            b"BYE sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n",
            b"BYE sip:a SIP/2.0\r\nContent-Length: 99999999999\r\n\r\n",
            b"BYE sip:a SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n",
        ] {
            let mut f = Framer::new();
            f.push(head);
            assert_eq!(f.next_message(), Err(FrameError::BadContentLength));
        }
    }

    #[test]
    fn endless_headers_are_fatal() {
        let mut f = Framer::new();
        f.push(&vec![b'a'; MAX_HEADER_BYTES + 10]);
        assert_eq!(f.next_message(), Err(FrameError::HeadersTooLong));
    }
}
