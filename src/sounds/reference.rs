//! What a sound string may name, decided once into a typed [`Sound`]: a generated stream, a
//! WAV file inside a media folder, or a URL the policy allows. Prompt ids become files of the
//! prompt set; absolute paths must lie inside a media folder (the account's recorded names
//! count as one for that account). `..`, symlinks leading out, FIFOs, devices and oversized
//! files are refused, and a path outside the folders gets the same answer whether it exists.
//! A media document's id names its uploaded file in the account's media folder, before the
//! prompt of that name; `tts://text` is spoken by the TTS engine ([`super::tts`]).

use std::path::{Component, Path, PathBuf};

use super::fetch::Fetcher;
use super::library::Library;
use super::tts;

/// A playable sound, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Sound {
    /// `tone_stream://` or `silence_stream://`: generated, nothing to load.
    Stream(String),
    /// A regular file, by its canonical path.
    File(PathBuf),
    Url(String),
    /// `tts://text`, in a voice.
    Tts {
        text: String,
        voice: String,
    },
}

/// Why a sound string cannot play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not allowed, whatever is there (API: a validation error).
    Invalid(String),
    /// A prompt or file inside the folders that is not there (API: not found).
    Missing,
}

/// The language and account a sound is played for.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub language: &'a str,
    pub account: &'a str,
    /// The voice `tts://` speaks in (a profile's `tts-voice`); `None`: the language's.
    pub voice: Option<&'a str>,
}

/// The prompt set a prompt missing from another language's set is taken from.
pub const DEFAULT_LANGUAGE: &str = "en";

const OUTSIDE: &str = "expected a prompt or media id, a tone_stream/silence_stream, tts://text, an http(s) URL or a WAV file inside the media folders";

pub struct Resolver {
    prompts: PathBuf,
    folders: Vec<PathBuf>,
    /// Recorded names, a folder per account.
    names: PathBuf,
    /// Uploaded media, a folder per account.
    media: Library,
    max_file_bytes: u64,
}

impl Resolver {
    /// Relative folders are taken from the current directory, once.
    pub fn new(
        prompts: &Path,
        folders: &[PathBuf],
        names: &Path,
        media: Library,
        max_file_bytes: u64,
    ) -> Self {
        Resolver {
            prompts: absolute(prompts),
            folders: folders.iter().map(|f| absolute(f)).collect(),
            names: absolute(names),
            media,
            max_file_bytes,
        }
    }

    /// `Ok(None)` for the empty string (no sound).
    pub fn resolve(
        &self,
        spec: &str,
        scope: Scope,
        urls: &Fetcher,
    ) -> Result<Option<Sound>, Refused> {
        if spec.is_empty() {
            return Ok(None);
        }
        if spec.starts_with("tone_stream://") || spec.starts_with("silence_stream://") {
            return Ok(Some(Sound::Stream(spec.to_string())));
        }
        if spec.starts_with("http://") || spec.starts_with("https://") {
            let url = urls.check(spec).map_err(Refused::Invalid)?;
            return Ok(Some(Sound::Url(url.to_string())));
        }
        if let Some(text) = spec.strip_prefix("tts://") {
            return tts::sound(text, scope.voice, scope.language).map(Some);
        }
        if spec.contains("://") {
            return Err(Refused::Invalid(OUTSIDE.into()));
        }
        let file = match spec.starts_with('/') {
            true => self.path(Path::new(spec), scope.account)?,
            false => match self.uploaded(spec, scope.account) {
                Err(Refused::Missing) => self.prompt(spec, scope.language)?,
                found => found?,
            },
        };
        Ok(Some(Sound::File(file)))
    }

    /// The account's media file of id `spec`, if there is one.
    fn uploaded(&self, spec: &str, account: &str) -> Result<PathBuf, Refused> {
        let path = self.media.path(account, spec).ok_or(Refused::Missing)?;
        let dir = path.parent().ok_or(Refused::Missing)?.to_path_buf();
        self.checked(&path, &[dir])
    }

    /// `{prompts}/{language}/{id}.wav`, else the [`DEFAULT_LANGUAGE`]'s, per prompt (a set
    /// may lack some). Chorus has no FreeSWITCH globals: `$${name}` names the prompt `name`
    /// (`$${hold_music}`).
    fn prompt(&self, spec: &str, language: &str) -> Result<PathBuf, Refused> {
        let id = spec
            .strip_prefix("$${")
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or(spec);
        let safe = id
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b));
        let language_ok = !language.is_empty()
            && language
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
        if !safe || !language_ok {
            return Err(Refused::Invalid(OUTSIDE.into()));
        }
        let file = match id.ends_with(".wav") {
            true => id.to_string(),
            false => format!("{id}.wav"),
        };
        let roots = std::slice::from_ref(&self.prompts);
        match self.checked(&self.prompts.join(language).join(&file), roots) {
            Err(Refused::Missing) if language != DEFAULT_LANGUAGE => {
                self.checked(&self.prompts.join(DEFAULT_LANGUAGE).join(file), roots)
            }
            found => found,
        }
    }

    fn path(&self, path: &Path, account: &str) -> Result<PathBuf, Refused> {
        let mut roots = self.folders.clone();
        roots.push(self.prompts.clone());
        roots.push(self.names.join(account));
        let plain = path
            .components()
            .all(|c| !matches!(c, Component::ParentDir));
        if !plain || !roots.iter().any(|r| path.starts_with(r)) {
            return Err(Refused::Invalid(OUTSIDE.into()));
        }
        self.checked(path, &roots)
    }

    /// The canonical path of a regular file of at most the size cap inside one of `roots`.
    /// Only stat-like calls: nothing is opened, so a FIFO cannot block.
    fn checked(&self, path: &Path, roots: &[PathBuf]) -> Result<PathBuf, Refused> {
        let real = path.canonicalize().map_err(|_| Refused::Missing)?;
        let inside = roots
            .iter()
            .filter_map(|r| r.canonicalize().ok())
            .any(|r| real.starts_with(r));
        if !inside {
            return Err(Refused::Invalid(OUTSIDE.into()));
        }
        let meta = real.metadata().map_err(|_| Refused::Missing)?;
        if !meta.is_file() {
            return Err(Refused::Invalid("not a regular file".into()));
        }
        if meta.len() > self.max_file_bytes {
            let cap = self.max_file_bytes;
            return Err(Refused::Invalid(format!(
                "larger than sounds.max_file_bytes ({cap})"
            )));
        }
        Ok(real)
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// prompts/en/hi.wav, media/a.wav, names/acc1/n.wav, a secret outside, an escaping
    /// symlink and a FIFO inside media.
    fn tree() -> (Dir, Resolver) {
        let root =
            std::env::temp_dir().join(format!("chorus-ref-{}", uuid::Uuid::new_v4().simple()));
        for dir in [
            "prompts/en",
            "prompts/fr",
            "media",
            "names/acc1",
            "names/acc2",
            "uploads/acc1",
            "private",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in [
            "prompts/en/hi.wav",
            "prompts/fr/hi.wav",
            "media/a.wav",
            "names/acc1/n.wav",
            "names/acc2/n.wav",
            "uploads/acc1/m1.wav",
            "private/secret.wav",
        ] {
            std::fs::write(root.join(file), b"RIFF").unwrap();
        }
        std::fs::write(root.join("media/big.wav"), vec![0; 100]).unwrap();
        std::os::unix::fs::symlink(root.join("private"), root.join("media/out")).unwrap();
        let fifo = std::ffi::CString::new(root.join("media/fifo.wav").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let r = Resolver::new(
            &root.join("prompts"),
            &[root.join("media")],
            &root.join("names"),
            Library::new(&root.join("uploads")),
            50,
        );
        (Dir(root), r)
    }

    #[test]
    fn only_streams_prompts_urls_and_files_inside_the_folders_resolve() {
        let (dir, r) = tree();
        let urls = Fetcher::new(&Default::default(), 50);
        let scope = Scope {
            language: "en",
            account: "acc1",
            voice: None,
        };
        let resolve = |s: &str| r.resolve(s, scope, &urls);
        let root = dir.0.canonicalize().unwrap();
        let file = |p: &str| Ok(Some(Sound::File(root.join(p))));
        assert_eq!(resolve(""), Ok(None));
        assert_eq!(resolve("hi"), file("prompts/en/hi.wav"));
        assert_eq!(resolve("$${hi}"), file("prompts/en/hi.wav"));
        assert_eq!(resolve("nope"), Err(Refused::Missing));
        assert_eq!(resolve("m1"), file("uploads/acc1/m1.wav"), "a media id");
        let other = Scope {
            account: "acc2",
            ..scope
        };
        assert_eq!(
            r.resolve("m1", other, &urls),
            Err(Refused::Missing),
            "its own"
        );
        assert_eq!(
            resolve("tts://Hello there"),
            Ok(Some(Sound::Tts {
                text: "Hello there".into(),
                voice: "en".into()
            }))
        );
        // A profile's `tts-voice` speaks instead of the language's voice.
        let voiced = Scope {
            voice: Some("female/en-US"),
            ..scope
        };
        assert_eq!(
            r.resolve("tts://Hi", voiced, &urls),
            Ok(Some(Sound::Tts {
                text: "Hi".into(),
                voice: "en-us+f3".into()
            }))
        );
        let in_lang = |language, s: &str| {
            let scope = Scope { language, ..scope };
            r.resolve(s, scope, &urls)
        };
        assert_eq!(in_lang("fr", "hi"), file("prompts/fr/hi.wav"));
        std::fs::remove_file(dir.0.join("prompts/fr/hi.wav")).unwrap();
        assert_eq!(in_lang("fr", "hi"), file("prompts/en/hi.wav"), "per prompt");
        assert_eq!(
            in_lang("xx", "hi"),
            file("prompts/en/hi.wav"),
            "no set at all"
        );
        assert_eq!(in_lang("fr", "nope"), Err(Refused::Missing));
        let media = dir.0.join("media");
        assert_eq!(
            resolve(media.join("a.wav").to_str().unwrap()),
            file("media/a.wav")
        );
        assert_eq!(
            resolve(media.join("gone.wav").to_str().unwrap()),
            Err(Refused::Missing)
        );
        let own = dir.0.join("names/acc1/n.wav");
        assert_eq!(resolve(own.to_str().unwrap()), file("names/acc1/n.wav"));
        let outside = Err(Refused::Invalid(OUTSIDE.into()));
        for bad in [
            dir.0.join("names/acc2/n.wav"),
            dir.0.join("private/secret.wav"),
            dir.0.join("private/missing.wav"),
            media.join("../private/secret.wav"),
            media.join("out/secret.wav"),
            PathBuf::from("/dev/zero"),
            PathBuf::from("/etc/passwd"),
        ] {
            assert_eq!(resolve(bad.to_str().unwrap()), outside, "{}", bad.display());
        }
        for bad in [
            "../x",
            "a b",
            "file:///etc/passwd",
            "http://127.0.0.1/x.wav",
        ] {
            assert!(matches!(resolve(bad), Err(Refused::Invalid(_))), "{bad}");
        }
        let fifo = resolve(media.join("fifo.wav").to_str().unwrap());
        assert_eq!(fifo, Err(Refused::Invalid("not a regular file".into())));
        let big = resolve(media.join("big.wav").to_str().unwrap());
        assert!(matches!(big, Err(Refused::Invalid(m)) if m.contains("max_file_bytes")));
        assert!(matches!(
            r.resolve(
                "hi",
                Scope {
                    language: "../x",
                    account: "acc1",
                    voice: None,
                },
                &urls
            ),
            Err(Refused::Invalid(_))
        ));
    }
}
