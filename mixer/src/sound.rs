//! Sound strings as the profile and API give them (`tone_stream://…`,
//! `silence_stream://…`, a WAV path), and sequences of sounds played in turn.
//! Fetching and caching URLs is the server's job; it hands over local paths.

use crate::source::Source;
use crate::tone::{ToneError, ToneStream};
use crate::wav::{Pcm, WavError};
use std::collections::VecDeque;

/// A sound string that cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum SoundError {
    #[error(transparent)]
    Tone(#[from] ToneError),
    #[error(transparent)]
    Wav(#[from] WavError),
    #[error("bad silence_stream `{0}`: expected milliseconds")]
    Silence(String),
}

/// Opens `spec` as a source producing mono PCM at `rate` Hz. A path means
/// blocking file I/O: call this off the mixing tick.
pub fn open(spec: &str, rate: u32) -> Result<Box<dyn Source>, SoundError> {
    if spec.starts_with("tone_stream://") {
        return Ok(Box::new(ToneStream::parse(spec, rate)?));
    }
    if let Some(arg) = spec.strip_prefix("silence_stream://") {
        return Ok(Box::new(Silence::parse(arg, rate)?));
    }
    Ok(Box::new(Pcm::load(spec, rate)?.source()))
}

/// `silence_stream://MS[,NOISE]`: MS milliseconds of silence, forever when
/// MS <= 0 (as in FreeSWITCH). The NOISE divisor is accepted and ignored:
/// comfort noise is the mixer's business.
#[derive(Debug)]
pub struct Silence {
    /// `None` plays forever.
    left: Option<usize>,
}

impl Silence {
    fn parse(arg: &str, rate: u32) -> Result<Silence, SoundError> {
        let bad = || SoundError::Silence(arg.to_string());
        let (ms, noise) = arg.split_once(',').unwrap_or((arg, "0"));
        noise.trim().parse::<i32>().map_err(|_| bad())?;
        let ms: i64 = ms.trim().parse().map_err(|_| bad())?;
        let left = u64::try_from(ms)
            .ok()
            .filter(|&ms| ms > 0)
            .map(|ms| (ms.saturating_mul(u64::from(rate)) / 1000) as usize);
        Ok(Silence { left })
    }
}

impl Source for Silence {
    fn fill(&mut self, out: &mut [i16]) -> usize {
        let n = self.left.map_or(out.len(), |left| left.min(out.len()));
        out[..n].fill(0);
        if let Some(left) = &mut self.left {
            *left -= n;
        }
        n
    }
}

/// Several sources played one after another, e.g. an entry announcement:
/// [entry tone, the member's name, `conf-has_joined`].
pub struct Sequence {
    sources: VecDeque<Box<dyn Source>>,
}

impl Sequence {
    pub fn new(sources: impl IntoIterator<Item = Box<dyn Source>>) -> Sequence {
        Sequence {
            sources: sources.into_iter().collect(),
        }
    }
}

impl Source for Sequence {
    fn fill(&mut self, out: &mut [i16]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(current) = self.sources.front_mut() else {
                break;
            };
            n += current.fill(&mut out[n..]);
            if n < out.len() {
                self.sources.pop_front();
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::level_db;

    /// Plays `source` in 20 ms frames at 8 kHz until it ends or `max_ms` passes.
    fn drain(mut source: Box<dyn Source>, max_ms: usize) -> Vec<i16> {
        let mut out = Vec::new();
        let mut frame = [0; 160];
        while out.len() < max_ms * 8 {
            let n = source.fill(&mut frame);
            out.extend_from_slice(&frame[..n]);
            if n < frame.len() {
                break;
            }
        }
        out
    }

    #[test]
    fn opens_tones_and_silence() {
        let tone = drain(open("tone_stream://%(500,0,440)", 8000).unwrap(), 10_000);
        assert_eq!(tone.len(), 4000);
        assert!(level_db(&tone, 8000, 440.0) > -15.0);
        let quiet = drain(open("silence_stream://250", 8000).unwrap(), 10_000);
        assert_eq!(quiet.len(), 2000);
        assert!(quiet.iter().all(|&s| s == 0));
        assert_eq!(
            drain(open("silence_stream://30,1400", 8000).unwrap(), 1000).len(),
            240
        );
        for forever in ["silence_stream://-1", "silence_stream://0"] {
            assert_eq!(drain(open(forever, 8000).unwrap(), 5000).len(), 40_000);
        }
    }

    #[test]
    fn opens_wav_files_by_path() {
        let path = std::env::temp_dir().join(format!("chorus-sound-{}.wav", std::process::id()));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..8000 {
            let x = (2.0 * std::f64::consts::PI * 600.0 * i as f64 / 16000.0).sin();
            w.write_sample((x * 10000.0) as i16).unwrap();
        }
        w.finalize().unwrap();
        let pcm = drain(open(path.to_str().unwrap(), 8000).unwrap(), 10_000);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(pcm.len(), 4000);
        assert!(level_db(&pcm, 8000, 600.0) > -15.0);
    }

    #[test]
    fn bad_sounds_are_errors() {
        for spec in [
            "silence_stream://",
            "silence_stream://soon",
            "silence_stream://5,x",
        ] {
            assert!(
                matches!(open(spec, 8000), Err(SoundError::Silence(_))),
                "{spec}"
            );
        }
        assert!(matches!(
            open("tone_stream://%(1)", 8000),
            Err(SoundError::Tone(_))
        ));
        let err = open("/no/such/prompt.wav", 8000).err().unwrap();
        assert!(err.to_string().contains("/no/such/prompt.wav"), "{err}");
    }

    #[test]
    fn a_sequence_plays_its_parts_in_order() {
        let parts = [
            "tone_stream://%(110,0,523)",
            "silence_stream://45",
            "tone_stream://%(200,0,880)",
        ];
        let seq = Sequence::new(parts.iter().map(|s| open(s, 8000).unwrap()));
        let pcm = drain(Box::new(seq), 10_000);
        assert_eq!(pcm.len(), (110 + 45 + 200) * 8);
        assert!(level_db(&pcm[..880], 8000, 523.0) > -15.0);
        assert!(level_db(&pcm[..880], 8000, 880.0) < -40.0);
        assert!(pcm[880..1240].iter().all(|&s| s == 0));
        assert!(level_db(&pcm[1240..], 8000, 880.0) > -15.0);
        assert!(level_db(&pcm[1240..], 8000, 523.0) < -40.0);
    }

    #[test]
    fn empty_and_endless_sequences() {
        assert!(drain(Box::new(Sequence::new([])), 1000).is_empty());
        let endless = Sequence::new([
            open("tone_stream://%(10,0,440)", 8000).unwrap(),
            open("silence_stream://-1", 8000).unwrap(),
        ]);
        assert_eq!(drain(Box::new(endless), 2000).len(), 16_000);
    }
}
