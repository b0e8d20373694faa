//! Opus mono through the `opus` crate (libopus 1.6 built statically), at 48 kHz PCM or
//! one of libopus's lower rates.
//! Speech settings: VoIP application, in-band FEC on (a lost frame can be rebuilt from the
//! next packet), DTX off (a conference needs a steady packet clock to detect dead peers).

use super::{CodecError, Decoder, Encoder};
use opus::{Application, Bandwidth, Bitrate, Channels};

/// The largest Opus frame (120 ms at 48 kHz; fewer samples at lower rates).
const MAX_FRAME: usize = 5760;
/// RFC 6716's upper bound on one frame's payload.
const MAX_PAYLOAD: usize = 1275;
/// Expected loss told to the encoder until the receiver reports its own, so that it spends
/// bits on FEC.
const LOSS_PERCENT: i32 = 5;
/// The bitrate of legs below 48 kHz. libopus's own pick shrinks with the rate (about
/// 19 kbit/s at 16 kHz, of which FEC takes its share); 24 kbit/s keeps wideband speech near
/// the 48 kHz ceiling (README, "Figures": Opus legs at 16 kHz).
const BELOW_48K_BITRATE: i32 = 24_000;
/// The reported loss is followed within these bounds: at least a little FEC (a report
/// covers seconds; the next loss burst may be now), at most what still leaves speech bits.
const LOSS_HINT: (i32, i32) = (1, 25);

fn err(e: opus::Error) -> CodecError {
    CodecError(e.to_string())
}

/// The widest Opus audio bandwidth a receiver playing at `rate` Hz can use.
fn bandwidth_for(rate: u32) -> Bandwidth {
    match rate {
        0..=8000 => Bandwidth::Narrowband,
        8001..=12000 => Bandwidth::Mediumband,
        12001..=16000 => Bandwidth::Wideband,
        16001..=24000 => Bandwidth::Superwideband,
        _ => Bandwidth::Fullband,
    }
}

/// Opus encoder, mono.
pub struct OpusEncoder {
    inner: opus::Encoder,
}

impl OpusEncoder {
    /// PCM at `rate` (one of [`super::OPUS_RATES`]); `complexity` 0..=10 (clamped);
    /// `max_playback_rate` limits the coded audio bandwidth.
    pub fn new(
        rate: u32,
        complexity: i32,
        max_playback_rate: Option<u32>,
    ) -> Result<Self, CodecError> {
        let mut inner = opus::Encoder::new(rate, Channels::Mono, Application::Voip).map_err(err)?;
        if let Some(rate) = max_playback_rate {
            inner.set_max_bandwidth(bandwidth_for(rate)).map_err(err)?;
        }
        if rate < 48000 {
            inner
                .set_bitrate(Bitrate::Bits(BELOW_48K_BITRATE))
                .map_err(err)?;
        }
        inner.set_complexity(complexity.clamp(0, 10)).map_err(err)?;
        inner.set_inband_fec(true).map_err(err)?;
        inner.set_packet_loss_perc(LOSS_PERCENT).map_err(err)?;
        inner.set_dtx(false).map_err(err)?;
        Ok(OpusEncoder { inner })
    }
}

impl Encoder for OpusEncoder {
    fn expect_loss(&mut self, percent: u8) {
        let percent = i32::from(percent).clamp(LOSS_HINT.0, LOSS_HINT.1);
        if let Err(e) = self.inner.set_packet_loss_perc(percent) {
            tracing::debug!("opus loss hint {percent}: {e}");
        }
    }

    /// A frame of a size Opus cannot encode (not 2.5..60 ms) produces no payload.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + MAX_PAYLOAD, 0);
        match self.inner.encode(pcm, &mut out[start..]) {
            Ok(n) => out.truncate(start + n),
            Err(e) => {
                out.truncate(start);
                tracing::warn!(samples = pcm.len(), "opus encode failed: {e}");
            }
        }
    }
}

/// Opus decoder, mono, with libopus's own concealment and FEC recovery.
pub struct OpusDecoder {
    inner: opus::Decoder,
    rate: u32,
}

impl OpusDecoder {
    /// PCM out at `rate` (one of [`super::OPUS_RATES`]), whatever band the sender coded.
    pub fn new(rate: u32) -> Result<Self, CodecError> {
        Ok(OpusDecoder {
            inner: opus::Decoder::new(rate, Channels::Mono).map_err(err)?,
            rate,
        })
    }

    /// Runs libopus into `out`; an empty `payload` asks for concealment of `max` samples.
    fn run(&mut self, payload: &[u8], max: usize, fec: bool, out: &mut Vec<i16>) -> bool {
        let start = out.len();
        out.resize(start + max, 0);
        match self.inner.decode(payload, &mut out[start..], fec) {
            Ok(n) => {
                out.truncate(start + n);
                true
            }
            Err(_) => {
                out.truncate(start);
                false
            }
        }
    }
}

impl Decoder for OpusDecoder {
    /// A corrupt payload is concealed as one 20 ms frame rather than dropped.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        if !self.run(payload, MAX_FRAME, false, out) {
            self.conceal(self.rate as usize / 50, out);
        }
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        let start = out.len();
        // libopus conceals in multiples of 2.5 ms; pad or cut to what the caller asked for.
        if !self.run(&[], samples.min(MAX_FRAME), false, out) {
            out.truncate(start);
        }
        out.resize(start + samples, 0);
    }

    fn recover(&mut self, next: &[u8], ahead: usize, samples: usize, out: &mut Vec<i16>) {
        // In-band FEC carries only the frame right before its packet.
        if ahead > 1 {
            return self.conceal(samples, out);
        }
        let start = out.len();
        if !self.run(next, samples.min(MAX_FRAME), true, out) {
            out.truncate(start);
            self.conceal(samples, out);
            return;
        }
        out.resize(start + samples, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::testutil::{fec_rebuilt_snr, tone, voice};
    use mixer::goertzel::level_db;

    const RATE: u32 = 48000;

    fn encode_all(enc: &mut OpusEncoder, pcm: &[i16]) -> Vec<Vec<u8>> {
        pcm.chunks(RATE as usize / 50)
            .map(|f| {
                let mut p = Vec::new();
                enc.encode(f, &mut p);
                p
            })
            .collect()
    }

    #[test]
    fn tone_round_trip_keeps_frequency() {
        let input = tone(1000.0, RATE, 48000, 12000.0);
        let mut enc = OpusEncoder::new(RATE, 5, None).unwrap();
        let mut dec = OpusDecoder::new(RATE).unwrap();
        let mut out = Vec::new();
        for p in encode_all(&mut enc, &input) {
            assert!(!p.is_empty() && p.len() <= MAX_PAYLOAD);
            dec.decode(&p, &mut out);
        }
        assert_eq!(out.len(), input.len());
        let tail = &out[24000..];
        assert!(level_db(tail, RATE, 1000.0) > -12.0);
        assert!(level_db(tail, RATE, 2500.0) < -35.0);
    }

    /// A 16 kHz leg talks with a fullband peer both ways: its decoder takes 48 kHz-coded
    /// packets (20 ms frames of 320 samples) and what it codes from 16 kHz decodes at 48 kHz.
    #[test]
    fn a_16_khz_leg_hears_and_is_heard_by_a_48_khz_peer() {
        let mut out = Vec::new();
        let mut dec = OpusDecoder::new(16000).unwrap();
        let mut enc = OpusEncoder::new(RATE, 5, None).unwrap();
        for p in encode_all(&mut enc, &tone(1000.0, RATE, RATE as usize, 12000.0)) {
            let before = out.len();
            dec.decode(&p, &mut out);
            assert_eq!(out.len() - before, 320);
        }
        assert!(level_db(&out[8000..], 16000, 1000.0) > -12.0);
        let mut enc = OpusEncoder::new(16000, 5, None).unwrap();
        let mut dec = OpusDecoder::new(RATE).unwrap();
        let mut back = Vec::new();
        for frame in tone(1500.0, 16000, 16000, 12000.0).chunks(320) {
            let mut p = Vec::new();
            enc.encode(frame, &mut p);
            dec.decode(&p, &mut back);
        }
        assert_eq!(back.len(), RATE as usize);
        assert!(level_db(&back[24000..], RATE, 1500.0) > -12.0);
        assert!(level_db(&back[24000..], RATE, 3000.0) < -35.0);
    }

    #[test]
    fn fec_and_plc_fill_a_lost_frame_with_the_tone() {
        let input = tone(600.0, RATE, 48000, 12000.0);
        let mut enc = OpusEncoder::new(RATE, 5, None).unwrap();
        let packets = encode_all(&mut enc, &input);
        let mut dec = OpusDecoder::new(RATE).unwrap();
        let mut out = Vec::new();
        for p in &packets[..30] {
            dec.decode(p, &mut out);
        }
        let mut fec = Vec::new();
        dec.recover(&packets[31], 1, 960, &mut fec);
        assert_eq!(fec.len(), 960);
        assert!(
            level_db(&fec, RATE, 600.0) > -20.0,
            "fec {}",
            level_db(&fec, RATE, 600.0)
        );
        dec.decode(&packets[31], &mut out);
        let mut plc = Vec::new();
        dec.conceal(960, &mut plc);
        assert_eq!(plc.len(), 960);
        assert!(level_db(&plc, RATE, 600.0) > -25.0);
    }

    /// Mean SNR of frames rebuilt from the next packet, with the encoder told to expect
    /// `loss` percent.
    fn rebuilt_snr(loss: u8) -> f64 {
        let mut enc = OpusEncoder::new(RATE, 5, None).unwrap();
        enc.expect_loss(loss);
        fec_rebuilt_snr(&encode_all(&mut enc, &voice(RATE)))
    }

    #[test]
    fn a_reported_loss_buys_better_rebuilt_frames() {
        let (low, high) = (rebuilt_snr(0), rebuilt_snr(25));
        eprintln!("rebuilt SNR: hint 0 {low:.1} dB, hint 25 {high:.1} dB");
        assert!(high > low + 1.0, "{low:.1} vs {high:.1} dB");
    }

    #[test]
    fn max_playback_rate_limits_bandwidth() {
        let input = tone(6000.0, RATE, 24000, 8000.0);
        let mut enc = OpusEncoder::new(RATE, 5, Some(8000)).unwrap();
        let mut dec = OpusDecoder::new(RATE).unwrap();
        let mut out = Vec::new();
        for p in encode_all(&mut enc, &input) {
            dec.decode(&p, &mut out);
        }
        // Narrowband Opus stops at 4 kHz: the 6 kHz tone is gone.
        assert!(level_db(&out[9600..], RATE, 6000.0) < -30.0);
    }

    #[test]
    fn garbage_payload_is_concealed() {
        let mut dec = OpusDecoder::new(RATE).unwrap();
        let mut out = Vec::new();
        dec.decode(&[0xff, 0xff, 0xff, 0x01, 0x02], &mut out);
        dec.decode(&[], &mut out);
        assert!(out.len() >= 960);
    }
}
