//! Loading a file, URL or speech sound into its slot, off the control plane: the file is opened
//! without blocking (a FIFO swapped in after the check fails instead of waiting for a
//! writer), read up to the size cap, and decoded on a blocking thread once the decoded size,
//! read from the header, fits the memory budget.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use mixer::wav::Pcm;
use tokio::sync::Semaphore;

use super::Sound;
use super::cache::{self, Shared, Slot};
use super::fetch::Fetcher;
use super::tts;

/// Sounds fetched or read, and decoded, at once: bounds the memory of loads in flight.
const CONCURRENT: usize = 2;

pub struct Loader {
    pub fetcher: Fetcher,
    pub cache: Shared,
    pub max_file_bytes: u64,
    permits: Semaphore,
}

impl Loader {
    pub fn new(fetcher: Fetcher, cache: Shared, max_file_bytes: u64) -> Self {
        Loader {
            fetcher,
            cache,
            max_file_bytes,
            permits: Semaphore::new(CONCURRENT),
        }
    }

    /// Fills `slot` with `sound` at `rate`, or with why (logged) it cannot be had.
    pub async fn load(self: Arc<Self>, sound: Sound, rate: u32, slot: Arc<Slot>) {
        let outcome = self.pcm(&sound, rate, &slot).await;
        if let Err(e) = &outcome {
            tracing::warn!(?sound, error = %e, "cannot play");
        }
        slot.fill(outcome);
    }

    async fn pcm(
        self: &Arc<Self>,
        sound: &Sound,
        rate: u32,
        slot: &Arc<Slot>,
    ) -> Result<Pcm, String> {
        // Before the fetch: a body waiting to be decoded counts against the bound too.
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let bytes: Arc<[u8]> = match sound {
            Sound::Url(url) => self.fetcher.get(&self.fetcher.check(url)?).await?,
            Sound::Tts { text, voice } => {
                tts::render(text, voice, self.max_file_bytes).await?.into()
            }
            Sound::File(_) | Sound::Stream(_) => Arc::from(&[][..]),
        };
        let (this, sound, slot) = (self.clone(), sound.clone(), slot.clone());
        tokio::task::spawn_blocking(move || {
            let bytes = match &sound {
                Sound::File(path) => read(path, this.max_file_bytes)?.into(),
                _ => bytes,
            };
            let size = decoded_bytes(&bytes, rate)?;
            cache::lock(&this.cache).reserve(&slot, size)?;
            Pcm::from_wav_bytes(&bytes, rate).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// A regular file's bytes, at most `max`.
fn read(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("larger than sounds.max_file_bytes ({max})"));
    }
    Ok(bytes)
}

/// The size of the WAV decoded to mono at `rate`, from its header.
fn decoded_bytes(wav: &[u8], rate: u32) -> Result<usize, String> {
    let reader = hound::WavReader::new(wav).map_err(|e| format!("not a readable WAV: {e}"))?;
    let spec = reader.spec();
    let frames = u64::from(reader.duration());
    let out = frames * u64::from(rate) / u64::from(spec.sample_rate.max(1)) + 1;
    usize::try_from(out * 2).map_err(|_| "too long".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_device_is_refused_without_blocking() {
        let path = std::env::temp_dir().join(format!("chorus-fifo-{}", uuid::Uuid::new_v4()));
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read(&path, 100).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(e.contains("regular"), "{e}");
        assert!(read(Path::new("/dev/zero"), 100).is_err());
    }
}
