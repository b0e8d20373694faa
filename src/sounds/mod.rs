//! Sound strings (prompt ids, tones, silence, WAV files, media URLs) turned into mixer
//! sources at the rate of the mixer they play in.
//!
//! A string is resolved once into a [`Sound`] ([`reference`]): that is where media folders
//! and the URL policy are enforced. Files and URLs are loaded off the control plane
//! ([`load`], [`fetch`]) into a slot of the decoded-audio cache ([`cache`]), and the source
//! handed to the mixer plays the slot (silence until it is filled), so playing never waits
//! on a disk or a network. A prompt is read and resampled once per rate, then shared by
//! every call that hears it.

mod cache;
pub mod config;
mod fetch;
pub mod guard;
pub mod library;
mod load;
mod lru;
mod reference;
pub mod tts;

use std::path::Path;
use std::sync::{Arc, Mutex};

use mixer::sound::Sequence;
use mixer::source::Source;

use cache::{Lazy, PcmCache};
use config::SoundsConfig;
use fetch::Fetcher;
use load::Loader;
use reference::Resolver;
pub use reference::{Refused, Scope, Sound};

pub struct Sounds {
    resolver: Resolver,
    loader: Arc<Loader>,
}

impl Sounds {
    /// `prompts` holds a folder per language; `names` the recorded names and `media` the
    /// uploaded media, a folder per account each.
    pub fn new(config: &SoundsConfig, prompts: &Path, names: &Path, media: &Path) -> Self {
        let library = library::Library::new(media);
        let resolver = Resolver::new(
            prompts,
            &config.folders,
            names,
            library,
            config.max_file_bytes,
        );
        let fetcher = Fetcher::new(&config.urls, config.max_file_bytes);
        let cache = Arc::new(Mutex::new(PcmCache::new(config.pcm_cache_bytes)));
        let loader = Arc::new(Loader::new(fetcher, cache, config.max_file_bytes));
        Sounds { resolver, loader }
    }

    /// What `media` names, or why it cannot play.
    pub fn resolve(&self, media: &str, scope: Scope) -> Result<Option<Sound>, Refused> {
        self.resolver.resolve(media, scope, &self.loader.fetcher)
    }

    /// Starts fetching `media` if it is a URL, so it is ready when played.
    pub fn prefetch(&self, media: &str, scope: Scope) {
        if let Ok(Some(Sound::Url(url))) = self.resolve(media, scope) {
            let loader = self.loader.clone();
            tokio::spawn(async move {
                if let Ok(url) = loader.fetcher.check(&url) {
                    let _ = loader.fetcher.get(&url).await;
                }
            });
        }
    }

    /// The sounds of `media` played in turn; `None` when none of them can play. A sound
    /// that cannot (refused, unknown prompt, bad tone) is logged and skipped: the call goes
    /// on; one whose load fails later is skipped then.
    pub fn open(&self, media: &[String], scope: Scope, rate: u32) -> Option<Box<dyn Source>> {
        let sources: Vec<Box<dyn Source>> = media
            .iter()
            .filter_map(|m| self.one(m, scope, rate, false))
            .collect();
        (!sources.is_empty()).then(|| Box::new(Sequence::new(sources)) as Box<dyn Source>)
    }

    /// One sound played over and over (hold music).
    pub fn looping(&self, media: &str, scope: Scope, rate: u32) -> Option<Box<dyn Source>> {
        self.one(media, scope, rate, true)
    }

    fn one(&self, media: &str, scope: Scope, rate: u32, looping: bool) -> Option<Box<dyn Source>> {
        let sound = match self.resolve(media, scope) {
            Ok(sound) => sound?,
            Err(e) => {
                tracing::warn!(sound = %media, error = ?e, "cannot play");
                return None;
            }
        };
        if let Sound::Stream(spec) = &sound {
            return mixer::sound::open(spec, rate)
                .map_err(|e| tracing::warn!(sound = %media, error = %e, "cannot play"))
                .ok();
        }
        let stamp = match &sound {
            Sound::File(path) => modified(path),
            _ => 0,
        };
        let key = (sound, rate, stamp);
        let (slot, new) = cache::lock(&self.loader.cache).slot(&key);
        if new {
            tokio::spawn(self.loader.clone().load(key.0, rate, slot.clone()));
        }
        Some(Box::new(Lazy::new(slot, looping)))
    }

    /// After [`Self::open`]: resolves once the fetched and spoken sounds of `media` have
    /// loaded, with those that failed and why, so a failure is reported, not only heard as
    /// silence. Loads always end (fetch and render time limits).
    pub fn failures(
        &self,
        media: &[String],
        scope: Scope,
        rate: u32,
    ) -> impl std::future::Future<Output = Vec<(String, String)>> + Send + 'static {
        let loads: Vec<_> = media
            .iter()
            .filter_map(|m| {
                let sound = self.resolve(m, scope).ok()??;
                if !matches!(sound, Sound::Url(_) | Sound::Tts { .. }) {
                    return None;
                }
                let slot = cache::lock(&self.loader.cache).existing(&(sound, rate, 0))?;
                Some((m.clone(), slot))
            })
            .collect();
        async move {
            let mut failed = Vec::new();
            for (media, slot) in loads {
                if let Err(e) = slot.outcome().await {
                    failed.push((media, e));
                }
            }
            failed
        }
    }

    /// Forgets a file (a caller's recorded name, deleted when the call ends).
    pub fn forget(&self, path: &Path) {
        cache::lock(&self.loader.cache).forget(&Sound::File(path.to_path_buf()));
    }
}

/// A file's modification time in nanoseconds, 0 if unknown.
fn modified(path: &Path) -> u128 {
    let time = std::fs::metadata(path).and_then(|m| m.modified());
    time.ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixer::goertzel::level_db;
    use std::time::Duration;

    const SCOPE: Scope = Scope {
        language: "en",
        account: "acc",
        voice: None,
    };

    fn sounds(pcm_cache_bytes: usize) -> Sounds {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let config = SoundsConfig {
            pcm_cache_bytes,
            ..SoundsConfig::default()
        };
        let tmp = std::env::temp_dir();
        Sounds::new(&config, &root.join("config/prompts"), &tmp, &tmp)
    }

    /// Waits (bounded) for every load to finish.
    async fn loaded(s: &Sounds) {
        for _ in 0..500 {
            if cache::lock(&s.loader.cache).loading() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("sounds still loading");
    }

    fn drain(mut s: Box<dyn Source>, max: usize) -> Vec<i16> {
        let mut out = vec![0i16; max];
        let n = s.fill(&mut out);
        out.truncate(n);
        out
    }

    #[tokio::test]
    async fn tones_prompts_and_sequences_play_and_bad_ones_are_skipped() {
        let s = sounds(64 << 20);
        let beep = vec!["tone_stream://%(500,0,440)".to_string()];
        let pcm = drain(s.open(&beep, SCOPE, 8000).unwrap(), 8000);
        assert_eq!(pcm.len(), 4000);
        assert!(level_db(&pcm, 8000, 440.0) > -20.0);
        let media = [
            "conf-welcome",
            "no-such-prompt",
            "tone_stream://%(100,0,697)",
        ]
        .map(String::from);
        let source = s.open(&media, SCOPE, 16000).unwrap();
        loaded(&s).await;
        let pcm = drain(source, 16000 * 30);
        let (welcome, tone) = pcm.split_at(pcm.len() - 1600);
        assert!(welcome.iter().any(|&x| x.abs() > 1000), "the prompt speaks");
        assert!(level_db(tone, 16000, 697.0) > -20.0, "then the tone plays");
        assert!(s.open(&["no-such-prompt".into()], SCOPE, 8000).is_none());
    }

    #[tokio::test]
    async fn each_language_has_its_own_prompts_and_an_unknown_one_falls_back_to_english() {
        let s = sounds(64 << 20);
        let mut spoken = Vec::new();
        for language in ["en", "fr", "es", "xx"] {
            let scope = Scope { language, ..SCOPE };
            let source = s.open(&["conf-alone".into()], scope, 16000).unwrap();
            loaded(&s).await;
            let pcm = drain(source, 16000 * 30);
            assert!(pcm.iter().any(|&x| x.abs() > 1000), "{language} speaks");
            spoken.push(pcm);
        }
        assert_ne!(spoken[0], spoken[1], "French is not the English file");
        assert_ne!(spoken[0], spoken[2], "Spanish is not the English file");
        assert_eq!(spoken[0], spoken[3], "an unknown language plays English");
    }

    #[tokio::test]
    async fn a_failed_render_is_reported_with_its_reason() {
        let s = sounds(64 << 20);
        let media = ["tts://Hello.".to_string(), "conf-welcome".to_string()];
        let fine = s.open(&media, SCOPE, 8000).unwrap();
        assert!(s.failures(&media, SCOPE, 8000).await.is_empty());
        drop(fine);
        let scope = Scope {
            language: "zz-none",
            ..SCOPE
        };
        let bad = ["tts://Hello.".to_string()];
        let _silent = s.open(&bad, scope, 8000).unwrap();
        let failed = s.failures(&bad, scope, 8000).await;
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].1.contains("espeak-ng"), "{failed:?}");
    }

    #[tokio::test]
    async fn hold_music_loops() {
        let s = sounds(64 << 20);
        let music = s.looping("$${hold_music}", SCOPE, 8000).unwrap();
        loaded(&s).await;
        let pcm = drain(music, 8000 * 45);
        assert_eq!(pcm.len(), 8000 * 45, "longer than the 20 s file: it loops");
        assert!(pcm.iter().any(|&x| x.abs() > 1000), "music, not silence");
    }

    #[tokio::test]
    async fn decoded_audio_stays_within_its_budget() {
        // The hold music at 48 kHz is about 1.9 MB decoded: it does not fit in 1 MB.
        let s = sounds(1 << 20);
        let music = s.open(&["$${hold_music}".into()], SCOPE, 48000).unwrap();
        loaded(&s).await;
        assert!(drain(music, 480).is_empty(), "refused, so it ends at once");
        let welcome = s.open(&["conf-welcome".into()], SCOPE, 8000).unwrap();
        loaded(&s).await;
        assert!(!drain(welcome, 8000).is_empty());
        assert!(cache::lock(&s.loader.cache).used() <= 1 << 20);
    }
}
