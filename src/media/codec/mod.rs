//! Audio codecs: G.711 u-law and A-law, G.722 and Opus behind one encoder/decoder interface.

mod conceal;
pub mod g711;
pub mod g722;
pub mod opus;
#[cfg(test)]
pub(crate) mod testutil;

/// The codecs Chorus speaks on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodecKind {
    Pcmu,
    Pcma,
    G722,
    Opus,
}

/// A codec could not be set up (only Opus can fail, on invalid settings).
#[derive(Debug, thiserror::Error)]
#[error("codec setup failed: {0}")]
pub struct CodecError(pub String);

/// The PCM rates libopus encodes from and decodes to.
pub const OPUS_RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];

/// Codec settings beyond the codec itself: the server's (`[rtp]`) and the peer's fmtp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CodecOptions {
    /// Opus complexity 0..=10: 5 costs about half of 10 for speech with little audible loss.
    pub opus_complexity: i32,
    /// The peer's Opus `maxplaybackrate` (RFC 7587): no point coding wider audio than it plays.
    pub opus_max_playback_rate: Option<u32>,
    /// The PCM rate of Opus legs (one of [`OPUS_RATES`]): below 48000 the codec works on
    /// fewer samples and the band above half this rate is not coded, either way.
    pub opus_rate: u32,
}

impl Default for CodecOptions {
    fn default() -> Self {
        CodecOptions {
            opus_complexity: 5,
            opus_max_playback_rate: None,
            opus_rate: 48000,
        }
    }
}

impl CodecOptions {
    /// Rate of the PCM `codec` consumes and produces with these options.
    pub fn pcm_rate(&self, codec: CodecKind) -> u32 {
        match codec {
            CodecKind::Opus => self.opus_rate,
            other => other.pcm_rate(),
        }
    }
}

impl CodecKind {
    /// Rate of the PCM this codec consumes and produces by default (not the RTP clock rate:
    /// G.722 is 16 kHz audio on an 8 kHz RTP clock; Opus legs may run lower, see
    /// [`CodecOptions::pcm_rate`]).
    pub fn pcm_rate(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => 8000,
            CodecKind::G722 => 16000,
            CodecKind::Opus => 48000,
        }
    }

    /// RTP timestamp clock rate (RFC 3551 / RFC 7587).
    pub fn rtp_clock(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 => 8000,
            CodecKind::Opus => 48000,
        }
    }

    /// The static payload type, if the codec has one.
    pub fn static_pt(self) -> Option<u8> {
        match self {
            CodecKind::Pcmu => Some(0),
            CodecKind::Pcma => Some(8),
            CodecKind::G722 => Some(9),
            CodecKind::Opus => None,
        }
    }

    /// Encoding name as written in `a=rtpmap` (compared case-insensitively when parsing).
    pub fn encoding_name(self) -> &'static str {
        match self {
            CodecKind::Pcmu => "PCMU",
            CodecKind::Pcma => "PCMA",
            CodecKind::G722 => "G722",
            CodecKind::Opus => "opus",
        }
    }

    /// PCM samples in one frame of `ptime_ms`.
    pub fn pcm_samples(self, ptime_ms: u32) -> usize {
        (self.pcm_rate() * ptime_ms / 1000) as usize
    }

    /// RTP timestamp increment for one frame of `ptime_ms`.
    pub fn rtp_ticks(self, ptime_ms: u32) -> u32 {
        self.rtp_clock() * ptime_ms / 1000
    }

    /// A fresh encoder for this codec.
    pub fn encoder(self, opts: CodecOptions) -> Result<Box<dyn Encoder>, CodecError> {
        Ok(match self {
            CodecKind::Pcmu => Box::new(g711::G711Encoder(g711::Law::Ulaw)),
            CodecKind::Pcma => Box::new(g711::G711Encoder(g711::Law::Alaw)),
            CodecKind::G722 => Box::<g722::G722Encoder>::default(),
            CodecKind::Opus => Box::new(opus::OpusEncoder::new(
                opts.opus_rate,
                opts.opus_complexity,
                opts.opus_max_playback_rate,
            )?),
        })
    }

    /// A fresh decoder for this codec.
    pub fn decoder(self, opts: CodecOptions) -> Result<Box<dyn Decoder>, CodecError> {
        Ok(match self {
            CodecKind::Pcmu => Box::new(g711::G711Decoder::new(g711::Law::Ulaw)),
            CodecKind::Pcma => Box::new(g711::G711Decoder::new(g711::Law::Alaw)),
            CodecKind::G722 => Box::<g722::G722Decoder>::default(),
            CodecKind::Opus => Box::new(opus::OpusDecoder::new(opts.opus_rate)?),
        })
    }
}

/// Turns PCM frames (mono, `pcm_rate`) into payloads.
pub trait Encoder: Send {
    /// Appends the payload for one frame of PCM to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>);
    /// The loss the receiver reports (RTCP, percent): codecs with in-band FEC (Opus) spend
    /// bits on it accordingly.
    fn expect_loss(&mut self, _percent: u8) {}
}

/// Turns payloads back into PCM (mono, `pcm_rate`).
pub trait Decoder: Send {
    /// Appends the decoded PCM of one payload to `out`.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>);
    /// Appends `samples` of concealment for a lost frame to `out`.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>);
    /// Conceals a lost frame when a later packet is already here, `ahead` frames on (1: the
    /// very next). Codecs with in-band forward error correction (Opus) rebuild the lost
    /// frame from the very next packet; G.711 and G.722 steer the concealment into it.
    fn recover(&mut self, _next: &[u8], _ahead: usize, samples: usize, out: &mut Vec<i16>) {
        self.conceal(samples, out);
    }
    /// Samples by which the output lags the input (concealment look-back).
    fn delay(&self) -> usize {
        0
    }
}
