//! PCM WAV prompts and music, decoded once to mono at the profile rate.
//!
//! Decoded samples live in an `Arc<[i16]>`: a prompt cached once is played
//! by any number of members at once without copying.

use crate::resample::Resampler;
use crate::source::Source;
use hound::{SampleFormat, WavReader};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Longest file accepted (20 minutes): bounds memory for a cached prompt.
const MAX_SECONDS: u64 = 20 * 60;
/// Sample rates accepted in a file; outside this the header is nonsense.
const RATES: std::ops::RangeInclusive<u32> = 4000..=192_000;

/// A WAV that could not be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct WavError {
    /// The file path, or `<bytes>` for `from_wav_bytes`.
    pub name: String,
    pub problem: WavProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum WavProblem {
    #[error("not a readable PCM WAV: {0}")]
    Decode(#[from] hound::Error),
    #[error("unsupported sample format: {bits}-bit {format:?}")]
    Format { bits: u16, format: SampleFormat },
    #[error("unsupported sample rate {0} Hz")]
    Rate(u32),
    #[error("longer than {MAX_SECONDS} s")]
    TooLong,
}

/// Decoded mono audio at one rate, cheap to clone and share.
#[derive(Debug, Clone)]
pub struct Pcm {
    samples: Arc<[i16]>,
}

impl Pcm {
    /// Decodes the WAV file at `path` to mono at `rate` Hz.
    pub fn load(path: impl AsRef<Path>, rate: u32) -> Result<Pcm, WavError> {
        let path = path.as_ref();
        let fail = |problem| WavError {
            name: path.display().to_string(),
            problem,
        };
        let reader = WavReader::open(path).map_err(|e| fail(e.into()))?;
        decode(reader, rate).map_err(fail)
    }

    /// Decodes WAV file contents (e.g. fetched from a URL) to mono at `rate` Hz.
    pub fn from_wav_bytes(bytes: &[u8], rate: u32) -> Result<Pcm, WavError> {
        let fail = |problem| WavError {
            name: "<bytes>".to_string(),
            problem,
        };
        let reader = WavReader::new(bytes).map_err(|e| fail(e.into()))?;
        decode(reader, rate).map_err(fail)
    }

    /// Mono samples at `from` Hz (another decoder's output) converted to `rate` Hz, under
    /// the same rate and length limits as a file.
    pub fn from_samples(mono: &[i16], from: u32, rate: u32) -> Result<Pcm, WavError> {
        let fail = |problem| WavError {
            name: "<samples>".to_string(),
            problem,
        };
        if !RATES.contains(&from) {
            return Err(fail(WavProblem::Rate(from)));
        }
        if mono.len() as u64 > MAX_SECONDS * u64::from(from) {
            return Err(fail(WavProblem::TooLong));
        }
        Ok(Pcm {
            samples: convert_rate(mono, from, rate).into(),
        })
    }

    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Plays the audio once.
    pub fn source(&self) -> PcmSource {
        self.player(false)
    }

    /// Plays the audio round and round (hold music) until dropped.
    pub fn looping(&self) -> PcmSource {
        self.player(true)
    }

    fn player(&self, looping: bool) -> PcmSource {
        PcmSource {
            samples: Arc::clone(&self.samples),
            pos: 0,
            looping,
        }
    }
}

/// One playback of a `Pcm`.
#[derive(Debug)]
pub struct PcmSource {
    samples: Arc<[i16]>,
    pos: usize,
    looping: bool,
}

impl Source for PcmSource {
    fn fill(&mut self, out: &mut [i16]) -> usize {
        let mut n = 0;
        while n < out.len() {
            if self.pos == self.samples.len() {
                // An empty file would otherwise loop forever.
                if !self.looping || self.samples.is_empty() {
                    break;
                }
                self.pos = 0;
            }
            let take = (out.len() - n).min(self.samples.len() - self.pos);
            out[n..n + take].copy_from_slice(&self.samples[self.pos..self.pos + take]);
            n += take;
            self.pos += take;
        }
        n
    }
}

fn decode<R: Read>(reader: WavReader<R>, rate: u32) -> Result<Pcm, WavProblem> {
    let spec = reader.spec();
    if !RATES.contains(&spec.sample_rate) {
        return Err(WavProblem::Rate(spec.sample_rate));
    }
    if u64::from(reader.duration()) > MAX_SECONDS * u64::from(spec.sample_rate) {
        return Err(WavProblem::TooLong);
    }
    let channels = usize::from(spec.channels);
    let mono = match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Int, 8) => {
            downmix(reader.into_samples::<i8>(), channels, |s| i32::from(s) << 8)
        }
        (SampleFormat::Int, 16) => downmix(reader.into_samples::<i16>(), channels, i32::from),
        (SampleFormat::Int, 24) => downmix(reader.into_samples::<i32>(), channels, |s| s >> 8),
        (SampleFormat::Int, 32) => downmix(reader.into_samples::<i32>(), channels, |s| s >> 16),
        (SampleFormat::Float, 32) => downmix(reader.into_samples::<f32>(), channels, |s| {
            (s * 32768.0).clamp(i32::MIN as f32, i32::MAX as f32) as i32
        }),
        (format, bits) => return Err(WavProblem::Format { bits, format }),
    }?;
    Ok(Pcm {
        samples: convert_rate(&mono, spec.sample_rate, rate).into(),
    })
}

/// Averages each frame's channels into one 16-bit sample.
fn downmix<S>(
    samples: impl Iterator<Item = hound::Result<S>>,
    channels: usize,
    to_16bit: impl Fn(S) -> i32,
) -> Result<Vec<i16>, WavProblem> {
    let mut mono = Vec::new();
    let (mut sum, mut count) = (0i64, 0usize);
    for s in samples {
        sum += i64::from(to_16bit(s?));
        count += 1;
        if count == channels {
            mono.push((sum / channels as i64).clamp(i16::MIN.into(), i16::MAX.into()) as i16);
            (sum, count) = (0, 0);
        }
    }
    Ok(mono)
}

/// Converts a whole clip, trimming the filter delay so the result lines up
/// with the original and has exactly its duration.
fn convert_rate(pcm: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to {
        return pcm.to_vec();
    }
    let want = (pcm.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let mut r = Resampler::new(from, to, pcm.len());
    let delay = r.delay();
    let flush = (delay as u64 * u64::from(from) / u64::from(to)) as usize + 2;
    let mut out = Vec::with_capacity(want + delay + 2);
    r.process(pcm, &mut out);
    r.process(&vec![0; flush], &mut out);
    out.drain(..delay.min(out.len()));
    out.truncate(want);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::level_db;
    use hound::{WavSpec, WavWriter};
    use std::io::Cursor;

    /// A WAV of `secs` seconds with a 1 kHz tone on the left (or only)
    /// channel and 2 kHz on the right, at half scale.
    fn wav(rate: u32, channels: u16, bits: u16, format: SampleFormat, secs: f64) -> Vec<u8> {
        let spec = WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        };
        let mut bytes = Cursor::new(Vec::new());
        let mut w = WavWriter::new(&mut bytes, spec).unwrap();
        for i in 0..(rate as f64 * secs) as usize {
            for ch in 0..channels {
                let freq = 1000.0 * f64::from(ch + 1);
                let x = 0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin();
                match (format, bits) {
                    (SampleFormat::Float, _) => w.write_sample(x as f32).unwrap(),
                    (_, 8) => w.write_sample((x * 127.0) as i8).unwrap(),
                    (_, 16) => w.write_sample((x * 32767.0) as i16).unwrap(),
                    (_, b) => w
                        .write_sample((x * f64::from(1u32 << (b - 1))) as i32)
                        .unwrap(),
                }
            }
        }
        w.finalize().unwrap();
        bytes.into_inner()
    }

    #[test]
    fn every_pcm_format_decodes_to_the_same_tone() {
        for (bits, format) in [
            (8, SampleFormat::Int),
            (16, SampleFormat::Int),
            (24, SampleFormat::Int),
            (32, SampleFormat::Int),
            (32, SampleFormat::Float),
        ] {
            let pcm = Pcm::from_wav_bytes(&wav(8000, 1, bits, format, 0.5), 8000).unwrap();
            assert_eq!(pcm.samples().len(), 4000);
            let level = level_db(pcm.samples(), 8000, 1000.0);
            assert!(
                (level + 6.0).abs() < 0.3,
                "{bits}-bit {format:?}: {level} dB"
            );
        }
    }

    #[test]
    fn stereo_is_averaged_to_mono() {
        let pcm = Pcm::from_wav_bytes(&wav(16000, 2, 16, SampleFormat::Int, 0.5), 16000).unwrap();
        for freq in [1000.0, 2000.0] {
            let level = level_db(pcm.samples(), 16000, freq);
            assert!((level + 12.0).abs() < 0.3, "{freq}: {level} dB");
        }
    }

    #[test]
    fn files_are_resampled_to_the_target_rate() {
        for (from, to) in [(8000, 48000), (44100, 48000), (48000, 8000), (22050, 16000)] {
            let pcm = Pcm::from_wav_bytes(&wav(from, 1, 16, SampleFormat::Int, 1.0), to).unwrap();
            assert_eq!(pcm.samples().len(), to as usize, "{from}->{to}");
            let level = level_db(pcm.samples(), to, 1000.0);
            assert!((level + 6.0).abs() < 0.5, "{from}->{to}: {level} dB");
            // The filter delay is trimmed: sound starts at once.
            assert!(
                pcm.samples()[to as usize / 1000..to as usize / 500]
                    .iter()
                    .any(|&s| s.abs() > 1000)
            );
        }
    }

    #[test]
    fn sources_share_the_samples_and_loop_when_asked() {
        let pcm = Pcm::from_wav_bytes(&wav(8000, 1, 16, SampleFormat::Int, 0.1), 8000).unwrap();
        let (mut once, mut forever) = (pcm.source(), pcm.looping());
        assert_eq!(Arc::strong_count(&pcm.samples), 3);
        let mut frame = vec![0; 300];
        assert_eq!(once.fill(&mut frame), 300);
        assert_eq!(once.fill(&mut frame), 300);
        assert_eq!(once.fill(&mut frame), 200);
        assert_eq!(once.fill(&mut frame), 0);
        let mut looped = Vec::new();
        for _ in 0..10 {
            assert_eq!(forever.fill(&mut frame), 300);
            looped.extend_from_slice(&frame);
        }
        assert_eq!(&looped[800..1600], pcm.samples());
        assert_eq!(&looped[2400..3000], &pcm.samples()[..600]);
    }

    #[test]
    fn loading_from_a_file_works_and_errors_name_it() {
        let path = std::env::temp_dir().join(format!("chorus-wav-{}.wav", std::process::id()));
        std::fs::write(&path, wav(16000, 1, 16, SampleFormat::Int, 0.25)).unwrap();
        assert_eq!(Pcm::load(&path, 8000).unwrap().samples().len(), 2000);
        std::fs::write(&path, b"RIFF\x04\x00\x00\x00junk").unwrap();
        let err = Pcm::load(&path, 8000).unwrap_err().to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains("WAV"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        let err = Pcm::load(&path, 8000).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
    }

    #[test]
    fn unusable_files_are_refused() {
        let mut bytes = wav(8000, 1, 16, SampleFormat::Int, 0.1);
        // Sample rate 1 Hz, byte rate 2.
        bytes[24..28].copy_from_slice(&1u32.to_le_bytes());
        bytes[28..32].copy_from_slice(&2u32.to_le_bytes());
        let err = Pcm::from_wav_bytes(&bytes, 8000).unwrap_err();
        assert!(matches!(err.problem, WavProblem::Rate(1)), "{err}");
        assert!(err.to_string().starts_with("<bytes>: "));
        let truncated = wav(8000, 1, 24, SampleFormat::Int, 0.1);
        let err = Pcm::from_wav_bytes(&truncated[..truncated.len() - 2], 8000).unwrap_err();
        assert!(matches!(err.problem, WavProblem::Decode(_)), "{err}");
    }

    #[test]
    fn the_shipped_prompts_play() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/prompts/en");
        for name in ["conf-welcome", "conf-has_joined", "digits/7", "hold_music"] {
            let pcm = Pcm::load(dir.join(format!("{name}.wav")), 48000).unwrap();
            let seconds = pcm.samples().len() as f64 / 48000.0;
            assert!((0.3..=30.0).contains(&seconds), "{name}: {seconds} s");
            let peak = pcm
                .samples()
                .iter()
                .map(|s| s.unsigned_abs())
                .max()
                .unwrap();
            assert!(peak > 8000, "{name}: peak {peak}");
        }
        // Hold music fades in and out, so looping it has no click.
        let moh = Pcm::load(dir.join("hold_music.wav"), 16000).unwrap();
        let edges = [
            &moh.samples()[..160],
            &moh.samples()[moh.samples().len() - 160..],
        ];
        assert!(edges.iter().flat_map(|e| e.iter()).all(|s| s.abs() < 300));
    }

    #[test]
    fn corrupted_headers_never_panic() {
        let good = wav(8000, 2, 16, SampleFormat::Int, 0.01);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..3000 {
            let mut bytes = good.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed % 48) as usize;
                bytes[at] = (seed >> 32) as u8;
            }
            let cut = (seed >> 40) as usize % bytes.len();
            let _ = Pcm::from_wav_bytes(&bytes[..cut.max(40)], 8000);
        }
    }
}
