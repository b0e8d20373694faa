//! Uploaded media (the audio of Kazoo `media` documents), kept per account as
//! `{root}/{account}/{id}.wav` in the server's own format (16-bit mono at [`RATE`], as the
//! prompts), converted once on upload from WAV or MP3 so playing never decodes MP3 and
//! every sound plays through the same WAV path.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use mixer::wav::Pcm;

/// The rate uploads are stored at: the prompts' (scripts/make-prompts).
pub const RATE: u32 = 16000;

/// Where an account's media files live.
#[derive(Debug, Clone)]
pub struct Library {
    root: PathBuf,
}

impl Library {
    pub fn new(root: &Path) -> Self {
        Library {
            root: std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf()),
        }
    }

    /// The folder of every account's media.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of media `id` of `account`; `None` when either is not a plain name (ids and
    /// accounts name files: no separators, dots or empty names).
    pub fn path(&self, account: &str, id: &str) -> Option<PathBuf> {
        (is_plain(account) && is_plain(id))
            .then(|| self.root.join(account).join(format!("{id}.wav")))
    }

    /// Stores a converted file, replacing the previous one at once (a call playing the old
    /// one keeps its decoded copy).
    pub fn save(&self, account: &str, id: &str, wav: &[u8]) -> std::io::Result<PathBuf> {
        let path = self
            .path(account, id)
            .ok_or(std::io::ErrorKind::InvalidInput)?;
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{id}.{}.tmp", uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, wav)?;
        std::fs::rename(&tmp, &path).inspect_err(|_| drop(std::fs::remove_file(&tmp)))?;
        Ok(path)
    }

    /// Forgets media `id` (its document was deleted); no file is fine.
    pub fn remove(&self, account: &str, id: &str) {
        if let Some(path) = self.path(account, id) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// 1 to 64 ASCII letters, digits, `-` or `_`.
pub fn is_plain(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The audio formats an upload may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Wav,
    Mp3,
}

impl Format {
    /// Read from the bytes themselves, not the client's Content-Type.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WAVE") {
            return Some(Format::Wav);
        }
        // An ID3v2 tag, or an MPEG audio frame sync (11 set bits).
        let sync = bytes.len() > 1 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0;
        (bytes.starts_with(b"ID3") || sync).then_some(Format::Mp3)
    }
}

/// An upload converted to the server's WAV, or why it cannot be.
pub fn convert(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let pcm = match Format::sniff(bytes) {
        Some(Format::Wav) => Pcm::from_wav_bytes(bytes, RATE).map_err(|e| e.to_string())?,
        Some(Format::Mp3) => {
            let (mono, rate) = decode_mp3(bytes)?;
            Pcm::from_samples(&mono, rate, RATE).map_err(|e| e.to_string())?
        }
        None => return Err("expected a WAV or MP3 file".into()),
    };
    if pcm.samples().is_empty() {
        return Err("no audio in the file".into());
    }
    crate::media::wav_writer::wav_bytes(RATE, pcm.samples()).map_err(|e| e.to_string())
}

/// Longest MP3 decoded, in samples of its own rate (20 minutes at 48 kHz, as WAV files).
const MAX_MP3_SAMPLES: usize = 20 * 60 * 48_000;

/// An MP3's audio averaged to mono, and its rate.
fn decode_mp3(bytes: &[u8]) -> Result<(Vec<i16>, u32), String> {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::errors::Error;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, TrackType};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;

    let bad = |e: Error| format!("not a readable MP3: {e}");
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("mp3");
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            source,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(bad)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or("not a readable MP3: no audio track")?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or("not a readable MP3: no audio parameters")?;
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(bad)?;
    let (mut mono, mut rate, mut frame) = (Vec::new(), 0, Vec::<i16>::new());
    while let Some(packet) = format.next_packet().map_err(bad)? {
        if packet.track_id != track_id {
            continue;
        }
        let audio = match decoder.decode(&packet) {
            Ok(audio) => audio,
            // A damaged frame is skipped, as players do.
            Err(Error::DecodeError(_)) => continue,
            Err(e) => return Err(bad(e)),
        };
        let channels = audio.spec().channels().count().max(1);
        rate = audio.spec().rate();
        frame.resize(audio.samples_interleaved(), 0);
        audio.copy_to_slice_interleaved(&mut frame);
        mono.extend(frame.chunks(channels).map(|c| {
            let sum: i32 = c.iter().map(|&s| i32::from(s)).sum();
            (sum / channels as i32) as i16
        }));
        if mono.len() > MAX_MP3_SAMPLES {
            return Err("longer than 20 minutes".into());
        }
    }
    Ok((mono, rate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixer::goertzel::level_db;

    fn fixture(name: &str) -> Vec<u8> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::read(root.join("fixtures/audio").join(name)).unwrap()
    }

    #[test]
    fn wav_and_mp3_uploads_become_the_servers_wav_and_keep_their_tone() {
        for (file, tone) in [("tone-697-8k.wav", 697.0), ("tone-1209.mp3", 1209.0)] {
            let wav = convert(&fixture(file)).unwrap();
            let reader = hound::WavReader::new(&wav[..]).unwrap();
            let spec = reader.spec();
            assert_eq!(
                (spec.sample_rate, spec.channels, spec.bits_per_sample),
                (RATE, 1, 16)
            );
            let pcm = Pcm::from_wav_bytes(&wav, RATE).unwrap();
            let secs = pcm.samples().len() as f64 / f64::from(RATE);
            assert!((0.9..1.2).contains(&secs), "{file}: {secs} s");
            assert!(
                level_db(&pcm.samples()[1600..8000], RATE, tone) > -20.0,
                "{file}"
            );
        }
    }

    #[test]
    fn other_bytes_are_refused_with_a_reason() {
        assert!(convert(b"hello").unwrap_err().contains("WAV or MP3"));
        let mut broken = fixture("tone-1209.mp3");
        broken.truncate(10);
        assert!(convert(&broken).is_err());
        assert!(convert(b"RIFF\0\0\0\0WAVEjunk").is_err());
    }

    #[test]
    fn only_plain_ids_name_files() {
        let lib = Library::new(Path::new("/tmp/m"));
        assert_eq!(
            lib.path("acc", "abc"),
            Some(PathBuf::from("/tmp/m/acc/abc.wav"))
        );
        for (account, id) in [("acc", "../x"), ("acc", "a.b"), ("", "a"), ("a/b", "c")] {
            assert_eq!(lib.path(account, id), None, "{account} {id}");
        }
    }
}
