//! Audio codecs: G.711 u-law and A-law, G.722 and Opus behind one encoder/decoder interface.

/// The codecs Chorus speaks on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodecKind {
    Pcmu,
    Pcma,
    G722,
    Opus,
}

impl CodecKind {
    /// Rate of the PCM this codec consumes and produces (not the RTP clock rate:
    /// G.722 is 16 kHz audio on an 8 kHz RTP clock).
    pub fn pcm_rate(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => 8000,
            CodecKind::G722 => 16000,
            CodecKind::Opus => 48000,
        }
    }
}

/// Turns PCM frames (mono, `pcm_rate`) into payloads.
pub trait Encoder: Send {
    /// Appends the payload for one frame of PCM to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>);
}

/// Turns payloads back into PCM (mono, `pcm_rate`).
pub trait Decoder: Send {
    /// Appends the decoded PCM of one payload to `out`.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>);
    /// Appends `samples` of concealment for a lost frame to `out`.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>);
}
