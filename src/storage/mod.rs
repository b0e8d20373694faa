//! Conference recordings uploaded to HTTP(S) storage, as Kazoo's HTTP storage handler does
//! with `send_multipart`: one PUT per recording to `{url}/{account_id}/{conference_id}/{file}`
//! whose `multipart/mixed` body is the recording's metadata (JSON) then the WAV.
//!
//! Nothing is lost when the storage fails: the local WAV always stays, and each recording
//! is first written to a spool (`{data_dir}/spool/uploads/*.json`) that outlives restarts; a
//! task uploads the spool one recording at a time, retrying with backoff
//! ([`retry::Retries`]) until the storage takes it. Uploads connect only where `[storage]`'s
//! own allow lists say, under the same address policy as webhooks (docs/security.md).

pub mod retry;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::sounds::config::{Network, UrlPattern};
use crate::sounds::guard::UrlPolicy;
use retry::Retries;

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Base URL recordings are PUT under; empty: no uploads.
    pub url: String,
    /// Hosts or URL prefixes the URL may name (empty: any host), and the internal networks
    /// it may reach (none by default), as `[api.webhooks]`.
    pub allow: Vec<UrlPattern>,
    pub allow_networks: Vec<Network>,
    /// One upload, body included.
    pub timeout_secs: u64,
    /// The wait after a first failure, doubled after each further one up to `max_retry_secs`.
    pub first_retry_ms: u64,
    pub max_retry_secs: u64,
    /// Spooled recordings tracked in memory at once; more wait on disk.
    pub max_queued: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: String::new(),
            allow: Vec::new(),
            allow_networks: Vec::new(),
            timeout_secs: 300,
            first_retry_ms: 5000,
            max_retry_secs: 600,
            max_queued: 1000,
        }
    }
}

/// A spooled upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    path: PathBuf,
    account_id: String,
    conference_id: String,
    name: String,
    seconds: f64,
}

/// The control plane's handle: hands finished recordings to the uploader.
#[derive(Debug, Clone)]
pub struct Uploads {
    spool: PathBuf,
    recordings: PathBuf,
    wake: mpsc::Sender<()>,
}

impl Uploads {
    /// Starts the uploader on the spool in `data_dir` (what an earlier run left is sent
    /// too); `None` when no storage URL is configured.
    pub fn start(config: &StorageConfig, data_dir: &Path, recordings: &Path) -> Option<Uploads> {
        if config.url.is_empty() {
            return None;
        }
        let spool = data_dir.join("spool/uploads");
        if let Err(e) = std::fs::create_dir_all(&spool) {
            tracing::error!(spool = %spool.display(), error = %e, "no upload spool: uploads off");
            return None;
        }
        let (wake, woken) = mpsc::channel(1);
        let uploader = Uploader::new(config, spool.clone());
        tokio::spawn(uploader.run(woken));
        Some(Uploads {
            spool,
            recordings: recordings.to_path_buf(),
            wake,
        })
    }

    /// A recording finished at `path` (`{recordings}/{account}/{conference}/{file}`):
    /// spooled, then uploaded.
    pub fn recorded(&self, path: &Path, seconds: f64) {
        let parts: Option<Vec<String>> = path
            .strip_prefix(&self.recordings)
            .ok()
            .map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect());
        let Some([account_id, conference_id, name]) = parts.as_deref() else {
            return tracing::warn!(path = %path.display(), "not a conference recording: not uploaded");
        };
        let job = Job {
            path: path.to_path_buf(),
            account_id: account_id.clone(),
            conference_id: conference_id.clone(),
            name: name.clone(),
            seconds,
        };
        let file = self
            .spool
            .join(format!("{}.json", uuid::Uuid::new_v4().simple()));
        let tmp = file.with_extension("tmp");
        let written = serde_json::to_vec(&job)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &file));
        match written {
            Ok(()) => drop(self.wake.try_send(())),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot spool the recording's upload")
            }
        }
    }
}

struct Uploader {
    url: String,
    policy: Arc<UrlPolicy>,
    client: reqwest::Client,
    spool: PathBuf,
    retries: Retries,
}

impl Uploader {
    fn new(config: &StorageConfig, spool: PathBuf) -> Self {
        let policy = Arc::new(UrlPolicy::new(
            &config.allow,
            &config.allow_networks,
            "storage",
        ));
        let timeout = Duration::from_secs(config.timeout_secs);
        Uploader {
            url: config.url.trim_end_matches('/').to_string(),
            client: policy.client(timeout, 0),
            policy,
            spool,
            retries: Retries::new(
                Duration::from_millis(config.first_retry_ms),
                Duration::from_secs(config.max_retry_secs),
                config.max_queued,
            ),
        }
    }

    async fn run(mut self, mut woken: mpsc::Receiver<()>) {
        self.scan();
        loop {
            while let Some(job) = self.retries.due(Instant::now()) {
                match self.upload(&job).await {
                    Ok(()) => {
                        let _ = std::fs::remove_file(self.spool.join(&job));
                        self.retries.succeeded(&job);
                    }
                    Err(e) => {
                        tracing::warn!(%job, error = %e, "recording upload failed: will retry");
                        self.retries.failed(&job, Instant::now());
                    }
                }
            }
            if self.retries.rescan() {
                self.scan();
            }
            let far = Instant::now() + Duration::from_secs(86_400);
            let next = self.retries.next_timeout().unwrap_or(far);
            tokio::select! {
                w = woken.recv() => match w {
                    Some(()) => self.scan(),
                    None => return,
                },
                () = tokio::time::sleep_until(next.into()) => {}
            }
        }
    }

    /// Queues the spool's jobs not queued yet (up to the memory bound).
    fn scan(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.spool) else {
            return;
        };
        let now = Instant::now();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") && !self.retries.add(&name, now) {
                break;
            }
        }
    }

    async fn upload(&self, job: &str) -> Result<(), String> {
        let text = std::fs::read(self.spool.join(job)).map_err(|e| e.to_string())?;
        let job: Job = serde_json::from_slice(&text).map_err(|e| format!("spool entry: {e}"))?;
        let url = format!(
            "{}/{}/{}/{}",
            self.url, job.account_id, job.conference_id, job.name
        );
        let url = reqwest::Url::parse(&url).map_err(|e| format!("{url}: {e}"))?;
        self.policy.check(&url)?;
        let file = tokio::fs::File::open(&job.path)
            .await
            .map_err(|e| format!("{}: {e}", job.path.display()))?;
        let len = file.metadata().await.map_err(|e| e.to_string())?.len();
        let boundary = uuid::Uuid::new_v4().simple().to_string();
        let metadata = serde_json::json!({
            "account_id": job.account_id,
            "conference_id": job.conference_id,
            "name": job.name,
            "content_type": "audio/wav",
            "content_length": len,
            "duration_seconds": job.seconds,
            "origin": {"app_name": crate::api::events::APP_NAME, "app_version": env!("CARGO_PKG_VERSION")},
        });
        let head = format!(
            "--{boundary}\r\nContent-Type: application/json\r\n\r\n{metadata}\r\n\
             --{boundary}\r\nContent-Type: audio/wav\r\nContent-Disposition: attachment; filename=\"{}\"\r\n\r\n",
            job.name
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let total = head.len() as u64 + len + tail.len() as u64;
        use futures_util::StreamExt;
        let body = futures_util::stream::iter([Ok(axum::body::Bytes::from(head))])
            .chain(tokio_util::io::ReaderStream::new(file))
            .chain(futures_util::stream::iter([Ok(axum::body::Bytes::from(
                tail,
            ))]));
        let response = self
            .client
            .put(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/mixed; boundary={boundary}"),
            )
            .header(reqwest::header::CONTENT_LENGTH, total)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match response.status().is_success() {
            true => Ok(()),
            false => Err(format!("storage answered {}", response.status())),
        }
    }
}
