//! Media URLs (http/https WAVs in documents, profiles and API plays) fetched off the
//! control-plane task: each URL once, its bytes shared by every rate it is decoded at.
//! A fetch reports back through a channel the `Calls` loop selects on, so the control
//! plane never waits on the network.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

const TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds the memory one URL can take (about 17 min of 8 kHz 16-bit mono).
const MAX_BYTES: usize = 16 << 20;

/// A fetch that finished: the WAV bytes, or why not.
pub struct Fetched {
    pub url: String,
    result: Result<Arc<[u8]>, String>,
}

pub enum State {
    Pending,
    Ready(Arc<[u8]>),
    Failed,
}

pub struct Fetcher {
    client: reqwest::Client,
    urls: HashMap<String, State>,
    done: mpsc::UnboundedSender<Fetched>,
}

/// Whether a resolved sound is fetched over the network.
pub fn is_url(spec: &str) -> bool {
    spec.starts_with("http://") || spec.starts_with("https://")
}

impl Fetcher {
    pub fn new() -> (Fetcher, mpsc::UnboundedReceiver<Fetched>) {
        let (done, reports) = mpsc::unbounded_channel();
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default();
        let urls = HashMap::new();
        (Fetcher { client, urls, done }, reports)
    }

    /// Starts fetching `url` unless it is fetched or on its way; a failed one is tried
    /// again (the server may be back).
    pub fn start(&mut self, url: &str) {
        if matches!(self.urls.get(url), Some(State::Pending | State::Ready(_))) {
            return;
        }
        self.urls.insert(url.to_string(), State::Pending);
        let (client, done, url) = (self.client.clone(), self.done.clone(), url.to_string());
        tokio::spawn(async move {
            let result = get(&client, &url).await;
            let _ = done.send(Fetched { url, result });
        });
    }

    pub fn finish(&mut self, fetched: Fetched) {
        let state = match fetched.result {
            Ok(bytes) => State::Ready(bytes),
            Err(e) => {
                tracing::warn!(url = %fetched.url, error = %e, "media URL not fetched");
                State::Failed
            }
        };
        self.urls.insert(fetched.url, state);
    }

    pub fn state(&self, url: &str) -> Option<&State> {
        self.urls.get(url)
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Arc<[u8]>, String> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BYTES {
            return Err(format!("larger than {MAX_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    if !body.starts_with(b"RIFF") || body.get(8..12) != Some(b"WAVE") {
        return Err("not a WAV file".into());
    }
    Ok(body.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Serves a WAV header at `/a.wav` and text at `/text`, counting requests.
    async fn server(hits: Arc<AtomicUsize>) -> String {
        let count = move || {
            hits.fetch_add(1, Ordering::SeqCst);
        };
        let wav = count.clone();
        let app = axum::Router::new()
            .route(
                "/a.wav",
                axum::routing::get(move || async move {
                    wav();
                    b"RIFF\0\0\0\0WAVEfmt ".to_vec()
                }),
            )
            .route(
                "/text",
                axum::routing::get(move || async move {
                    count();
                    "hello"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_url_is_fetched_once_and_a_non_wav_fails() {
        let hits = Arc::new(AtomicUsize::new(0));
        let base = server(hits.clone()).await;
        let (mut fetcher, mut reports) = Fetcher::new();
        let wav = format!("{base}/a.wav");
        fetcher.start(&wav);
        fetcher.start(&wav);
        fetcher.finish(reports.recv().await.unwrap());
        fetcher.start(&wav);
        assert!(matches!(fetcher.state(&wav), Some(State::Ready(b)) if b.starts_with(b"RIFF")));
        let text = format!("{base}/text");
        fetcher.start(&text);
        fetcher.finish(reports.recv().await.unwrap());
        assert!(matches!(fetcher.state(&text), Some(State::Failed)));
        assert_eq!(hits.load(Ordering::SeqCst), 2, "the WAV was fetched once");
        assert!(reports.try_recv().is_err(), "no second fetch of the WAV");
    }
}
