//! Sound strings (prompt ids, tones, silence, WAV paths) turned into mixer sources at the
//! rate of the mixer they play in. Decoded WAVs are cached per (file, rate): a prompt is
//! read and resampled once, then shared by every call that hears it. Media URLs are
//! fetched once ([`super::fetch`]) and decoded the same way.

use std::collections::HashMap;

use mixer::sound::Sequence;
use mixer::source::Source;
use mixer::wav::Pcm;

use tokio::sync::mpsc;

use super::fetch::{self, Fetched, Fetcher, State};
use crate::conference::profile::Prompts;

pub struct Sounds {
    prompts: Prompts,
    cache: HashMap<(String, u32), Pcm>,
    fetcher: Fetcher,
}

impl Sounds {
    /// The sounds, and the channel their URL fetches report on (see [`Sounds::fetched`]).
    pub fn new(prompts: Prompts) -> (Self, mpsc::UnboundedReceiver<Fetched>) {
        let (fetcher, reports) = Fetcher::new();
        let cache = HashMap::new();
        let sounds = Sounds {
            prompts,
            cache,
            fetcher,
        };
        (sounds, reports)
    }

    /// Starts fetching `media` if it is a URL, so it is ready when played.
    pub fn prefetch(&mut self, media: &str, lang: &str) {
        if let Some(spec) = self
            .prompts
            .resolve(media, lang)
            .filter(|s| fetch::is_url(s))
        {
            self.fetcher.start(&spec);
        }
    }

    pub fn fetched(&mut self, fetched: Fetched) {
        self.fetcher.finish(fetched);
    }

    /// The first URL of `media` still being fetched.
    pub fn pending(&self, media: &[String], lang: &str) -> Option<String> {
        media
            .iter()
            .filter_map(|m| self.prompts.resolve(m, lang))
            .find(|spec| matches!(self.fetcher.state(spec), Some(State::Pending)))
    }

    /// The sounds of `media` played in turn; `None` when none of them can play. A sound
    /// that cannot (unknown prompt, bad tone, URL) is logged and skipped: the call goes on.
    pub fn open(&mut self, media: &[String], lang: &str, rate: u32) -> Option<Box<dyn Source>> {
        let sources: Vec<Box<dyn Source>> = media
            .iter()
            .filter_map(|m| self.one(m, lang, rate, false))
            .collect();
        (!sources.is_empty()).then(|| Box::new(Sequence::new(sources)) as Box<dyn Source>)
    }

    /// One sound played over and over (hold music).
    pub fn looping(&mut self, media: &str, lang: &str, rate: u32) -> Option<Box<dyn Source>> {
        self.one(media, lang, rate, true)
    }

    fn one(
        &mut self,
        media: &str,
        lang: &str,
        rate: u32,
        looping: bool,
    ) -> Option<Box<dyn Source>> {
        let spec = self.prompts.resolve(media, lang)?;
        if spec.contains("://") && !fetch::is_url(&spec) {
            return mixer::sound::open(&spec, rate)
                .map_err(|e| tracing::warn!(sound = %media, error = %e, "cannot play"))
                .ok();
        }
        let key = (spec, rate);
        if !self.cache.contains_key(&key) {
            match self.decode(&key.0, rate) {
                Ok(pcm) => {
                    self.cache.insert(key.clone(), pcm);
                }
                Err(e) => {
                    tracing::warn!(sound = %media, error = %e, "cannot play");
                    return None;
                }
            }
        }
        let pcm = &self.cache[&key];
        Some(if looping {
            Box::new(pcm.looping())
        } else {
            Box::new(pcm.source())
        })
    }

    /// A WAV file, or a fetched URL's bytes, at `rate`.
    fn decode(&self, spec: &str, rate: u32) -> Result<Pcm, String> {
        if !fetch::is_url(spec) {
            return Pcm::load(spec, rate).map_err(|e| e.to_string());
        }
        match self.fetcher.state(spec) {
            Some(State::Ready(bytes)) => {
                Pcm::from_wav_bytes(bytes, rate).map_err(|e| e.to_string())
            }
            Some(State::Pending) => Err("still being fetched".into()),
            Some(State::Failed) => Err("its fetch failed".into()),
            None => Err("never fetched".into()),
        }
    }

    /// Forgets a file (a caller's recorded name, deleted when the call ends).
    pub fn forget(&mut self, path: &str) {
        self.cache.retain(|(p, _), _| p != path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixer::goertzel::level_db;

    fn sounds() -> Sounds {
        Sounds::new(Prompts::new(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prompts"),
        ))
        .0
    }

    fn drain(mut s: Box<dyn Source>, max: usize) -> Vec<i16> {
        let mut out = vec![0i16; max];
        let n = s.fill(&mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn tones_prompts_and_sequences_play_and_bad_ones_are_skipped() {
        let mut s = sounds();
        let beep = vec!["tone_stream://%(500,0,440)".to_string()];
        let pcm = drain(s.open(&beep, "en", 8000).unwrap(), 8000);
        assert_eq!(pcm.len(), 4000);
        assert!(level_db(&pcm, 8000, 440.0) > -20.0);
        let media = [
            "conf-welcome",
            "no-such-prompt",
            "tone_stream://%(100,0,697)",
        ]
        .map(String::from);
        let pcm = drain(s.open(&media, "en", 16000).unwrap(), 16000 * 30);
        let (welcome, tone) = pcm.split_at(pcm.len() - 1600);
        assert!(welcome.iter().any(|&x| x.abs() > 1000), "the prompt speaks");
        assert!(level_db(tone, 16000, 697.0) > -20.0, "then the tone plays");
        assert!(s.open(&["no-such-prompt".into()], "en", 8000).is_none());
        assert!(s.open(&["conf-welcome".into()], "xx", 8000).is_none());
    }

    #[test]
    fn hold_music_loops() {
        let mut s = sounds();
        let music = s.looping("$${hold_music}", "en", 8000).unwrap();
        let pcm = drain(music, 8000 * 45);
        assert_eq!(pcm.len(), 8000 * 45, "longer than the 20 s file: it loops");
    }
}
