//! Wires the server together: the SIP transport, the media workers and the call control
//! plane, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::api::metrics::Metrics;
use crate::api::service::{Request, Service};
use crate::api::webhooks::{Policy, Webhooks};
use crate::api::{ApiState, Node};
use crate::call::{ApiLink, Calls};
use crate::config::Config;
use crate::media::worker::{self, Command};
use crate::sip::{self, EndpointConfig, Timers};
use crate::store::{Seed, SqliteStore, Store};

/// A started server; [`Running::stop`] hangs up every call and stops it.
pub struct Running {
    /// Where SIP listens (UDP and TCP), with the real port when 0 was configured.
    pub sip: SocketAddr,
    /// Where the REST API listens.
    pub api: SocketAddr,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.done.await;
    }
}

/// Serves until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let running = start(config).await?;
    shutdown_signal().await;
    running.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// Binds SIP, starts the media workers and the control plane.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let listen = config.sip.listen;
    let endpoint = EndpointConfig {
        user_agent: config.sip.user_agent.clone(),
        contact_host: listen.ip().to_string(),
        udp_port: listen.port(),
        tcp_port: listen.port(),
        timers: Timers::default(),
        limits: crate::sip::admission::Limits::default(),
        acl: crate::sip::admission::Acl::default(),
        auth: None,
    };
    let (sip, sip_events, bound) = sip::spawn(listen, endpoint)
        .await
        .map_err(|e| anyhow::anyhow!("SIP listen on {listen}: {e}"))?;
    let (report_tx, reports) = mpsc::unbounded_channel();
    let metrics = Arc::new(Metrics::default());
    let timeout = Duration::from_secs(config.rtp.timeout_secs);
    let mut handles = Vec::new();
    let mut threads = Vec::new();
    for i in 0..config.media.workers {
        let (handle, thread) = worker::spawn(i, timeout, report_tx.clone(), metrics.clone())?;
        handles.push(handle);
        threads.push(thread);
    }
    tracing::info!(sip = %bound, rtp = ?config.rtp.ports.0, workers = threads.len(), "chorus serving (SIP over UDP and TCP)");
    let store = open_store(&config)?;
    let names = config.data_dir.join("names");
    std::fs::create_dir_all(&names).map_err(|e| anyhow::anyhow!("{}: {e}", names.display()))?;
    let names = names.canonicalize()?;
    let (requests, api, api_addr) = start_api(&config, metrics).await?;
    let (stop, stopped) = oneshot::channel::<()>();
    let calls = Calls::new(&config, sip, handles.clone(), store, names, api);
    let done = tokio::spawn(async move {
        calls
            .run(sip_events, reports, requests, async {
                let _ = stopped.await;
            })
            .await;
        for h in &handles {
            h.send(Command::Shutdown);
        }
        // Workers stop at their next wake-up, which the shutdown command triggers.
        let _ =
            tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join())))
                .await;
    });
    Ok(Running {
        sip: bound,
        api: api_addr,
        stop,
        done,
    })
}

/// Starts the REST/WebSocket API, its webhook sender and metrics; the control plane
/// answers the returned requests and publishes through the link.
async fn start_api(
    config: &Config,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(mpsc::Receiver<Request>, ApiLink, SocketAddr)> {
    let listen = config.api.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("API listen on {listen}: {e}"))?;
    let bound = listener.local_addr()?;
    let (service, requests) = Service::channel(64);
    let (events, _) = broadcast::channel(1024);
    let webhooks = Webhooks::spawn(events.subscribe(), metrics.clone(), Policy::default())?;
    let node = Node {
        name: format!("chorus@{}", config.sip.listen.ip()),
        switch_url: format!("sip:{}", config.sip.listen),
        external_ip: config.sip.listen.ip().to_string(),
    };
    let state = ApiState::new(
        service,
        config.api.clone(),
        node,
        events.clone(),
        metrics.clone(),
    );
    tokio::spawn(async move {
        if let Err(e) = crate::api::serve(listener, state).await {
            tracing::error!(error = %e, "API stopped");
        }
    });
    tracing::info!(api = %bound, "REST API, WebSocket /ws, /metrics");
    let recordings = config.data_dir.join("recordings");
    let link = ApiLink {
        events,
        webhooks,
        metrics,
        recordings,
    };
    Ok((requests, link, bound))
}

/// The document store in the data directory, seeded on its first start.
fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let seed = Seed::read(&config.conferences.seed)?;
    let store = SqliteStore::open_seeded(&config.data_dir, &seed, &config.conferences.account)?;
    tracing::info!(data = %config.data_dir.display(), "store open");
    Ok(Arc::new(store))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let terminate = async {
        match term.as_mut() {
            Some(t) => drop(t.recv().await),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
