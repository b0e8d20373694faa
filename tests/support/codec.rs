//! The one place the phone builds codecs, through the server crate's codec interface.

use chorus::media::codec::{CodecKind, CodecOptions, Decoder, Encoder};

pub fn encoder(kind: CodecKind) -> Box<dyn Encoder> {
    kind.encoder(CodecOptions::default())
        .expect("the test phone's codecs build")
}

pub fn decoder(kind: CodecKind) -> Box<dyn Decoder> {
    kind.decoder(CodecOptions::default())
        .expect("the test phone's codecs build")
}

/// PCM samples in one 20 ms frame.
pub fn frame_samples(kind: CodecKind) -> usize {
    kind.pcm_rate() as usize / 50
}
