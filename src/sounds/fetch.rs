//! Media URLs fetched under the [`UrlPolicy`], with size and time caps, a few at a time, each
//! URL once while its body is cached. Bodies are kept least-recently-used first under a byte
//! budget, so many distinct URLs cannot grow memory without bound.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use tokio::sync::{OnceCell, Semaphore};

use super::config::UrlConfig;
use super::guard::UrlPolicy;
use super::lru::Lru;

/// Fetches in flight at once: bounds the memory of bodies still arriving.
const CONCURRENT: usize = 4;
/// URLs waiting or cached at most; a fetch beyond is refused.
const MAX_ENTRIES: usize = 256;

type Body = Result<Arc<[u8]>, String>;
type Cell = Arc<OnceCell<Body>>;

pub struct Fetcher {
    policy: Arc<UrlPolicy>,
    client: reqwest::Client,
    max_bytes: u64,
    budget: usize,
    bodies: Mutex<Lru<String, Cell>>,
    permits: Semaphore,
}

impl Fetcher {
    pub fn new(config: &UrlConfig, max_bytes: u64) -> Self {
        let policy = Arc::new(UrlPolicy::new(
            &config.allow,
            &config.allow_networks,
            "sounds.urls",
        ));
        let timeout = Duration::from_secs(config.timeout_secs);
        Fetcher {
            client: policy.client(timeout, config.max_redirects),
            policy,
            max_bytes,
            budget: config.cache_bytes,
            bodies: Mutex::new(Lru::new()),
            permits: Semaphore::new(CONCURRENT),
        }
    }

    /// The URL, if the policy allows fetching it (addresses of names are checked later).
    pub fn check(&self, url: &str) -> Result<Url, String> {
        let url = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        self.policy.check(&url)?;
        Ok(url)
    }

    /// The body of `url`, fetched unless cached; a failure is not kept.
    pub async fn get(&self, url: &Url) -> Body {
        let cell = {
            let mut bodies = self.bodies();
            match bodies.get(&url.to_string()).cloned() {
                Some(cell) => cell,
                None if bodies.len() >= MAX_ENTRIES => {
                    return Err("too many media URLs being fetched".into());
                }
                None => {
                    let cell = Cell::default();
                    bodies.insert(url.to_string(), cell.clone());
                    cell
                }
            }
        };
        let body = cell
            .get_or_init(|| async {
                let _permit = self.permits.acquire().await;
                get(&self.client, url.clone(), self.max_bytes).await
            })
            .await
            .clone();
        let mut bodies = self.bodies();
        if body.is_err() {
            bodies.remove(&url.to_string());
        }
        while cached_bytes(&bodies) > self.budget && bodies.evict(|c| c.initialized()).is_some() {}
        body
    }

    fn bodies(&self) -> std::sync::MutexGuard<'_, Lru<String, Cell>> {
        self.bodies.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub fn cached_bytes(&self) -> usize {
        cached_bytes(&self.bodies())
    }
}

fn cached_bytes(bodies: &Lru<String, Cell>) -> usize {
    bodies
        .values()
        .filter_map(|c| c.get()?.as_ref().ok())
        .map(|b| b.len())
        .sum()
}

async fn get(client: &reqwest::Client, url: Url, max_bytes: u64) -> Body {
    let mut resp = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| error_chain(&e))?;
    if resp.content_length().is_some_and(|n| n > max_bytes) {
        return Err(format!("larger than sounds.max_file_bytes ({max_bytes})"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if (body.len() + chunk.len()) as u64 > max_bytes {
            return Err(format!("larger than sounds.max_file_bytes ({max_bytes})"));
        }
        body.extend_from_slice(&chunk);
    }
    if !body.starts_with(b"RIFF") || body.get(8..12) != Some(b"WAVE") {
        return Err("not a WAV file".into());
    }
    Ok(body.into())
}

/// reqwest's message and its causes (a refused redirect or address is a cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Serves `/{n}.wav` (a WAV of n KiB), `/text`, and `/away` redirecting to `/0.wav` on
    /// `elsewhere`, counting requests.
    async fn server(hits: Arc<AtomicUsize>, elsewhere: &str) -> String {
        let to = format!("{elsewhere}/0.wav");
        let app = axum::Router::new().route(
            "/{file}",
            axum::routing::get(
                move |axum::extract::Path(file): axum::extract::Path<String>| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let to = to.clone();
                    async move {
                        use axum::response::IntoResponse;
                        match file
                            .strip_suffix(".wav")
                            .and_then(|n| n.parse::<usize>().ok())
                        {
                            Some(kib) => {
                                let mut wav = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
                                wav.resize(12 + kib * 1024, 0);
                                wav.into_response()
                            }
                            None if file == "away" => {
                                axum::response::Redirect::to(&to).into_response()
                            }
                            None => "hello".into_response(),
                        }
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn fetcher(config: &str) -> Fetcher {
        Fetcher::new(&toml::from_str(config).unwrap(), 64 * 1024)
    }

    #[tokio::test]
    async fn a_url_is_fetched_once_a_non_wav_fails_and_the_cache_keeps_its_budget() {
        let hits = Arc::new(AtomicUsize::new(0));
        let base = server(hits.clone(), "http://127.0.0.1:9").await;
        let f = fetcher("allow_networks = [\"127.0.0.1\"]\ncache_bytes = 50000");
        let url = |p: &str| f.check(&format!("{base}/{p}")).unwrap();
        let wav = url("20.wav");
        let (a, b) = tokio::join!(f.get(&wav), f.get(&wav));
        assert!(a.unwrap().starts_with(b"RIFF") && b.is_ok());
        assert!(f.get(&wav).await.is_ok());
        assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched once");
        assert!(f.get(&url("text")).await.unwrap_err().contains("not a WAV"));
        let e = f.get(&url("100.wav")).await.unwrap_err();
        assert!(e.contains("max_file_bytes"), "{e}");
        for n in 21..30 {
            f.get(&url(&format!("{n}.wav"))).await.unwrap();
            assert!(f.cached_bytes() <= 50000, "{}", f.cached_bytes());
        }
    }

    #[tokio::test]
    async fn refused_addresses_and_redirects_are_not_fetched() {
        let (hits, other) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let target = server(other.clone(), "http://127.0.0.1:9").await;
        let base = server(hits.clone(), &target).await;
        let port = |u: &str| u.rsplit(':').next().unwrap().to_string();
        let f = fetcher(&format!(
            "allow = [\"http://127.0.0.1:{}/\"]\nallow_networks = [\"127.0.0.1\"]",
            port(&base)
        ));
        assert!(f.check(&format!("{target}/0.wav")).is_err(), "not allowed");
        let away = f.check(&format!("{base}/away")).unwrap();
        let e = f.get(&away).await.unwrap_err();
        assert!(e.contains("sounds.urls.allow"), "{e}");
        assert_eq!(
            other.load(Ordering::SeqCst),
            0,
            "the redirect was not followed"
        );
        let closed = Fetcher::new(&UrlConfig::default(), 1024);
        assert!(closed.check(&format!("{base}/0.wav")).is_err(), "loopback");
        assert!(closed.check("http://169.254.169.254/latest").is_err());
    }
}
