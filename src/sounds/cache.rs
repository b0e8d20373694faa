//! Decoded sounds in memory under one byte budget. A sound is a [`Slot`] that its loader
//! fills once; playbacks hold the slot, so audio still playing stays counted after the cache
//! lets it go, and the budget bounds everything decoded that is alive, not just what is
//! cached. A load that does not fit once every unused sound is evicted is refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use mixer::source::Source;
use mixer::wav::{Pcm, PcmSource};

use super::Sound;
use super::lru::Lru;

/// Entries kept at most (failed and pending ones cost no budget but still take room).
const MAX_ENTRIES: usize = 1024;

/// One sound at one rate: empty while loading, then its audio or why it failed.
#[derive(Debug)]
pub struct Slot {
    pcm: OnceLock<Result<Pcm, String>>,
    filled: tokio::sync::Notify,
    bytes: AtomicUsize,
    budget: Arc<AtomicUsize>,
}

impl Slot {
    /// Sets the outcome once; later calls do nothing.
    pub fn fill(&self, pcm: Result<Pcm, String>) {
        let _ = self.pcm.set(pcm);
        self.filled.notify_waiters();
    }

    fn failed(&self) -> bool {
        matches!(self.pcm.get(), Some(Err(_)))
    }

    /// Waits for the load to end: why it failed, if it did.
    pub async fn outcome(&self) -> Result<(), String> {
        loop {
            let filled = self.filled.notified();
            tokio::pin!(filled);
            filled.as_mut().enable();
            if let Some(outcome) = self.pcm.get() {
                return outcome.as_ref().map(drop).map_err(Clone::clone);
            }
            filled.await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.budget
            .fetch_sub(*self.bytes.get_mut(), Ordering::Relaxed);
    }
}

/// A sound, the rate it plays at, and its file's modification time (ns; 0 for other
/// sounds): a file replaced in place (an upload, a re-recorded name) is loaded anew.
pub type Key = (Sound, u32, u128);

pub struct PcmCache {
    slots: Lru<Key, Arc<Slot>>,
    limit: usize,
    used: Arc<AtomicUsize>,
}

impl PcmCache {
    pub fn new(limit: usize) -> Self {
        PcmCache {
            slots: Lru::new(),
            limit,
            used: Arc::default(),
        }
    }

    /// The slot of `key`, and whether it is new (its load must be started). A failed one is
    /// replaced: the file or server may be back.
    pub fn slot(&mut self, key: &Key) -> (Arc<Slot>, bool) {
        if let Some(slot) = self.slots.get(key).filter(|s| !s.failed()) {
            return (slot.clone(), false);
        }
        let slot = Arc::new(Slot {
            pcm: OnceLock::new(),
            filled: tokio::sync::Notify::new(),
            bytes: AtomicUsize::new(0),
            budget: self.used.clone(),
        });
        self.slots.insert(key.clone(), slot.clone());
        while self.slots.len() > MAX_ENTRIES && self.evict_unused() {}
        (slot, true)
    }

    /// The slot of `key` if there is one (a load begun by [`Self::slot`]).
    pub fn existing(&mut self, key: &Key) -> Option<Arc<Slot>> {
        self.slots.get(key).cloned()
    }

    /// Counts `bytes` for `slot`, evicting unused sounds until they fit.
    pub fn reserve(&mut self, slot: &Slot, bytes: usize) -> Result<(), String> {
        if bytes > self.limit {
            return Err(format!(
                "{bytes} bytes decoded: more than sounds.pcm_cache_bytes"
            ));
        }
        loop {
            let fits = self
                .used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                    (used + bytes <= self.limit).then_some(used + bytes)
                })
                .is_ok();
            if fits {
                slot.bytes.fetch_add(bytes, Ordering::Relaxed);
                return Ok(());
            }
            if !self.evict_unused() {
                return Err("sound memory is full of playing sounds".into());
            }
        }
    }

    /// Drops the least recently used sound nothing plays; false when there is none.
    fn evict_unused(&mut self) -> bool {
        self.slots.evict(|s| Arc::strong_count(s) == 1).is_some()
    }

    /// Forgets every rate of `sound` (a recorded name about to be deleted).
    pub fn forget(&mut self, sound: &Sound) {
        self.slots.retain(|(s, _, _)| s != sound);
    }

    /// Bytes of decoded audio alive, cached or playing.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Sounds still loading.
    #[cfg(test)]
    pub fn loading(&self) -> usize {
        self.slots
            .values()
            .filter(|s| s.pcm.get().is_none())
            .count()
    }
}

/// Plays a slot: silence while it loads, then its audio; nothing if the load failed.
pub struct Lazy {
    slot: Arc<Slot>,
    looping: bool,
    playing: Option<PcmSource>,
}

impl Lazy {
    pub fn new(slot: Arc<Slot>, looping: bool) -> Self {
        Lazy {
            slot,
            looping,
            playing: None,
        }
    }
}

impl Source for Lazy {
    fn fill(&mut self, out: &mut [i16]) -> usize {
        if self.playing.is_none() {
            match self.slot.pcm.get() {
                None => {
                    out.fill(0);
                    return out.len();
                }
                Some(Err(_)) => return 0,
                Some(Ok(pcm)) if self.looping => self.playing = Some(pcm.looping()),
                Some(Ok(pcm)) => self.playing = Some(pcm.source()),
            }
        }
        self.playing.as_mut().map_or(0, |p| p.fill(out))
    }
}

/// The cache shared by the control plane and the loaders.
pub type Shared = Arc<Mutex<PcmCache>>;

pub fn lock(cache: &Shared) -> std::sync::MutexGuard<'_, PcmCache> {
    cache.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(samples: usize) -> Pcm {
        let mut wav = std::io::Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut wav, spec).unwrap();
        (0..samples).for_each(|_| w.write_sample(1000i16).unwrap());
        w.finalize().unwrap();
        Pcm::from_wav_bytes(wav.get_ref(), 8000).unwrap()
    }

    fn key(n: u32) -> Key {
        (Sound::Url(format!("http://x/{n}.wav")), 8000, 0)
    }

    #[test]
    fn the_budget_counts_playing_sounds_and_evicts_unused_ones() {
        let mut cache = PcmCache::new(1000);
        let (a, _) = cache.slot(&key(1));
        cache.reserve(&a, 600).unwrap();
        a.fill(Ok(pcm(300)));
        let playing = Lazy::new(a, false);
        let (b, new) = cache.slot(&key(2));
        assert!(new);
        assert!(cache.reserve(&b, 600).is_err(), "a still plays: no room");
        drop(playing);
        cache.reserve(&b, 600).unwrap();
        assert_eq!(cache.used(), 600, "a was evicted and freed");
        assert!(cache.reserve(&b, 2000).is_err(), "larger than the budget");
        drop(b);
        cache.forget(&key(2).0);
        assert_eq!(cache.used(), 0);
    }

    #[test]
    fn lazy_plays_silence_then_audio_and_ends_on_failure() {
        let mut cache = PcmCache::new(1 << 20);
        let (slot, _) = cache.slot(&key(1));
        let mut lazy = Lazy::new(slot.clone(), false);
        let mut out = [7i16; 160];
        assert_eq!(lazy.fill(&mut out), 160);
        assert!(out.iter().all(|&s| s == 0), "silence while loading");
        slot.fill(Ok(pcm(100)));
        assert_eq!(lazy.fill(&mut out), 100);
        let (failed, _) = cache.slot(&key(2));
        failed.fill(Err("gone".into()));
        assert_eq!(Lazy::new(failed, true).fill(&mut out), 0);
        let (_, new) = cache.slot(&key(2));
        assert!(new, "a failed load is tried again");
    }
}
