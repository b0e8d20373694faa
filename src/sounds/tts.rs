//! `tts://text` and `tts` media documents, spoken by the local TTS engine (espeak-ng, the
//! engine the prompts are made with: scripts/make-prompts). Rendering runs the engine as a
//! child process off the control plane, with the text on its standard input (never an
//! argument: no option injection), a time limit and a size cap; the decoded result is cached
//! with the other sounds (their byte budget bounds it).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::{Refused, Sound};

/// Longest text spoken: bounds the rendering time and the audio it makes.
pub const MAX_TEXT: usize = 1024;
/// The engine; it must be on the PATH (scripts/install-deps installs it).
const ENGINE: &str = "espeak-ng";
/// A render not done by then is killed and fails.
const TIME_LIMIT: Duration = Duration::from_secs(10);

/// The sound of `text` in `voice` (a Kazoo voice like `female/en-US`, or an espeak-ng
/// voice), else in the language's default voice.
pub fn sound(text: &str, voice: Option<&str>, language: &str) -> Result<Sound, Refused> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT {
        return Err(Refused::Invalid(format!(
            "tts:// needs 1 to {MAX_TEXT} characters of text"
        )));
    }
    let voice = espeak_voice(voice.unwrap_or(language))
        .ok_or_else(|| Refused::Invalid("tts voice: expected e.g. female/en-US or fr".into()))?;
    Ok(Sound::Tts {
        text: text.to_string(),
        voice,
    })
}

/// Kazoo's `gender/lang-REGION` (or a bare espeak-ng voice) as an espeak-ng voice:
/// `female/en-US` is `en-us+f3`.
fn espeak_voice(voice: &str) -> Option<String> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let (gender, language) = match voice.split_once('/') {
        Some((gender, language)) => (Some(gender.to_ascii_lowercase()), language),
        None => (None, voice),
    };
    if !plain(language) {
        return None;
    }
    let language = language.to_ascii_lowercase();
    match gender.as_deref() {
        Some("female") => Some(format!("{language}+f3")),
        Some("male") | None => Some(language),
        Some(_) => None,
    }
}

/// The engine's WAV of `text`, at most `max_bytes`.
pub async fn render(text: &str, voice: &str, max_bytes: u64) -> Result<Vec<u8>, String> {
    let out = std::env::temp_dir().join(format!("chorus-tts-{}.wav", uuid::Uuid::new_v4()));
    let result = tokio::time::timeout(TIME_LIMIT, speak(text, voice, &out)).await;
    let bytes = match result {
        Ok(Ok(())) => read_capped(&out, max_bytes).await,
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("{ENGINE} took longer than {TIME_LIMIT:?}")),
    };
    let _ = tokio::fs::remove_file(&out).await;
    bytes
}

async fn speak(text: &str, voice: &str, out: &std::path::Path) -> Result<(), String> {
    let mut child = tokio::process::Command::new(ENGINE)
        .args(["-v", voice, "-s", "150", "--stdin", "-w"])
        .arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {ENGINE}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
    let done = child.wait_with_output().await.map_err(|e| e.to_string())?;
    // espeak-ng exits 0 for an unknown voice: it says so on stderr and writes nothing.
    let said = String::from_utf8_lossy(&done.stderr);
    if !done.status.success() || said.contains("not found") {
        let said: String = said.chars().take(200).collect();
        return Err(format!(
            "{ENGINE} failed ({}): {}",
            done.status,
            said.trim()
        ));
    }
    Ok(())
}

async fn read_capped(path: &std::path::Path, max: u64) -> Result<Vec<u8>, String> {
    let len = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("{ENGINE} wrote nothing: {e}"))?
        .len();
    if len > max {
        return Err(format!("speech larger than sounds.max_file_bytes ({max})"));
    }
    tokio::fs::read(path).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kazoo_voices_become_espeak_voices_and_bad_ones_are_refused() {
        assert_eq!(espeak_voice("female/en-US").as_deref(), Some("en-us+f3"));
        assert_eq!(espeak_voice("male/fr-FR").as_deref(), Some("fr-fr"));
        assert_eq!(espeak_voice("es").as_deref(), Some("es"));
        for bad in ["robot/en", "en us", "../en", ""] {
            assert!(espeak_voice(bad).is_none(), "{bad}");
        }
        let long = "a".repeat(MAX_TEXT + 1);
        assert!(matches!(sound(&long, None, "en"), Err(Refused::Invalid(_))));
        assert!(matches!(sound("  ", None, "en"), Err(Refused::Invalid(_))));
    }

    #[tokio::test]
    async fn the_engine_speaks_and_an_unknown_voice_fails() {
        let wav = render("Hello, conference.", "en", 1 << 20).await.unwrap();
        let pcm = mixer::wav::Pcm::from_wav_bytes(&wav, 16000).unwrap();
        assert!(pcm.samples().len() > 8000, "about a second of speech");
        assert!(
            pcm.samples().iter().any(|&s| s.abs() > 1000),
            "speech, not silence"
        );
        let e = render("Hello", "xx-nope", 1 << 20).await.unwrap_err();
        assert!(e.contains("espeak-ng"), "{e}");
        let e = render("Hello, conference.", "en", 100).await.unwrap_err();
        assert!(e.contains("max_file_bytes"), "{e}");
    }
}
