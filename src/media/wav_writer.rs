//! Writes a conference recording to a 16-bit mono WAV on its own thread, so the media
//! thread never touches a file: it hands over one frame per tick and never waits.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Frames queued for the writer (about 10 s at 20 ms) before the media thread drops some.
const QUEUE: usize = 500;
const HEADER_LEN: u32 = 44;

/// The media thread's end: frames in, the file closes when this is dropped.
pub struct Frames(Sender<Vec<i16>>);

impl Frames {
    /// Queues one frame; a writer far behind (slow disk) loses frames, not the mix.
    pub fn push(&self, pcm: &[i16]) {
        if let Err(TrySendError::Full(_)) = self.0.try_send(pcm.to_vec()) {
            tracing::warn!("conference recording behind: frame dropped");
        }
    }
}

/// Starts writing `path` at `rate` Hz; `done` gets the seconds written or the failure
/// once the returned [`Frames`] is dropped.
pub fn spawn(
    path: PathBuf,
    rate: u32,
    done: impl FnOnce(PathBuf, io::Result<f64>) + Send + 'static,
) -> io::Result<Frames> {
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    std::thread::Builder::new()
        .name("wav-writer".into())
        .spawn(move || {
            let result = write(&path, rate, &rx);
            done(path, result);
        })?;
    Ok(Frames(tx))
}

fn write(path: &Path, rate: u32, frames: &Receiver<Vec<i16>>) -> io::Result<f64> {
    // A conference recorded from its document has no API call to make its folder first.
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(&header(rate, 0))?;
    let mut samples: u64 = 0;
    let mut bytes = Vec::new();
    for frame in frames {
        bytes.clear();
        bytes.extend(frame.iter().flat_map(|s| s.to_le_bytes()));
        out.write_all(&bytes)?;
        samples += frame.len() as u64;
    }
    // RIFF sizes are 32-bit: a recording past 4 GiB keeps a saturated size.
    let data = u32::try_from(samples * 2).unwrap_or(u32::MAX - HEADER_LEN);
    out.seek(SeekFrom::Start(0))?;
    out.write_all(&header(rate, data))?;
    out.flush()?;
    Ok(samples as f64 / f64::from(rate))
}

/// Writes a whole recording at once (a recorded name: seconds, not a stream).
pub fn write_file(path: &Path, rate: u32, pcm: &[i16]) -> io::Result<()> {
    std::fs::write(path, wav_bytes(rate, pcm)?)
}

/// A whole 16-bit mono WAV in memory.
pub fn wav_bytes(rate: u32, pcm: &[i16]) -> io::Result<Vec<u8>> {
    let data = u32::try_from(pcm.len() * 2).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut bytes = header(rate, data).to_vec();
    bytes.extend(pcm.iter().flat_map(|s| s.to_le_bytes()));
    Ok(bytes)
}

/// The canonical 44-byte header of 16-bit mono PCM with `data` bytes of samples.
fn header(rate: u32, data: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    let fields: [(usize, &[u8]); 13] = [
        (0, b"RIFF"),
        (4, &(data + HEADER_LEN - 8).to_le_bytes()),
        (8, b"WAVE"),
        (12, b"fmt "),
        (16, &16u32.to_le_bytes()),
        (20, &1u16.to_le_bytes()),
        (22, &1u16.to_le_bytes()),
        (24, &rate.to_le_bytes()),
        (28, &(rate * 2).to_le_bytes()),
        (32, &2u16.to_le_bytes()),
        (34, &16u16.to_le_bytes()),
        (36, b"data"),
        (40, &data.to_le_bytes()),
    ];
    for (at, bytes) in fields {
        h[at..at + bytes.len()].copy_from_slice(bytes);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixer::wav::Pcm;

    #[test]
    fn written_wav_reads_back() {
        let path = std::env::temp_dir().join(format!("chorus-wav-{}.wav", std::process::id()));
        let (tx, rx) = crossbeam_channel::bounded(1);
        let frames = spawn(path.clone(), 8000, move |_, r| {
            let _ = tx.send(r.map_err(|e| e.to_string()));
        })
        .unwrap();
        let ramp: Vec<i16> = (0..160).map(|i| i * 100 - 8000).collect();
        frames.push(&ramp);
        frames.push(&ramp);
        drop(frames);
        let seconds = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(seconds, 0.04);
        let pcm = Pcm::load(&path, 8000).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(&pcm.samples()[..160], &ramp[..]);
        assert_eq!(pcm.samples().len(), 320);
    }
}
