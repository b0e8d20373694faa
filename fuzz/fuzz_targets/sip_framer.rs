//! The TCP framer (`sip::Framer`): the messages and the error it finds do not depend on how
//! the stream is cut into reads, and every message it yields fits the size limits.
#![no_main]

use chorus::sip::parse::{MAX_BODY_BYTES, MAX_HEADER_BYTES};
use chorus::sip::{FrameError, Framer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the read size, as a socket would cut the stream.
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let whole = frame(stream, stream.len().max(1));
    let pieces = frame(stream, usize::from(cut % 64) + 1);
    assert_eq!(whole, pieces);
    for m in &whole.0 {
        assert!(m.len() <= MAX_HEADER_BYTES + 4 + MAX_BODY_BYTES);
    }
});

fn frame(stream: &[u8], read: usize) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut f = Framer::new();
    let mut out = Vec::new();
    for chunk in stream.chunks(read) {
        f.push(chunk);
        loop {
            match f.next_message() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}
