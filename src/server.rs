//! Wires the server together: the SIP transport, the media workers and the call control
//! plane, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::api::events::RenderedEvent;
use crate::api::media::MediaFiles;
use crate::api::metrics::Metrics;
use crate::api::service::{Request, Service};
use crate::api::webhooks::{Policy, Webhooks};
use crate::api::{ApiState, Node};
use crate::call::{ApiLink, Calls, FocusLink};
use crate::cluster::forward::Forwarder;
use crate::cluster::registry::Addresses;
use crate::config::Config;
use crate::media::packet_io::IoMode;
use crate::media::worker::{self, Command};
use crate::sip::connections::TcpLimits;
use crate::sip::{self, DialInAuth, EndpointConfig, Timers};
use crate::sounds::library::Library;
use crate::store::{PostgresStore, Seed, SqliteStore, Store};
use redis::aio::ConnectionManager;

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
    crate::heap::spawn_trimmer();
    shutdown_signal().await;
    running.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// Binds SIP, starts the media workers and the control plane.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let listen = config.sip.listen;
    let tcp = tcp_limits(&config);
    let endpoint = endpoint_config(&config);
    let (sip, sip_events, registers, bound) = sip::spawn_with_registrar(listen, endpoint, tcp)
        .await
        .map_err(|e| anyhow::anyhow!("SIP listen on {listen}: {e}"))?;
    let (report_tx, reports) = mpsc::unbounded_channel();
    let metrics = Arc::new(Metrics::default());
    let timeout = Duration::from_secs(config.rtp.timeout_secs);
    let mut handles = Vec::new();
    let mut threads = Vec::new();
    let io = IoMode::from_env_or(config.media.io)?;
    for i in 0..config.media.workers {
        let (handle, thread) = worker::spawn(i, timeout, io, report_tx.clone(), metrics.clone())?;
        handles.push(handle);
        threads.push(thread);
    }
    let store = open_store(&config)?;
    let registrar = registrar_config(&config);
    let registrar = tokio::spawn(crate::registrar::shell::run(
        registrar,
        store.clone(),
        sip.clone(),
        registers,
    ));
    let names = config.data_dir.join("names");
    std::fs::create_dir_all(&names).map_err(|e| anyhow::anyhow!("{}: {e}", names.display()))?;
    let names = names.canonicalize()?;
    let redis = config
        .cluster
        .as_ref()
        .map(crate::cluster::registry::connect)
        .transpose()?;
    let forwarder = match (&config.cluster, &redis) {
        (Some(c), Some(r)) => Some(Forwarder::new(r.clone(), c.node.clone())?),
        _ => None,
    };
    // In a cluster: the other nodes' events, for this node's WebSocket clients.
    let remote = config.cluster.as_ref().map(|_| broadcast::channel(1024).0);
    let (requests, api, api_addr) =
        start_api(&config, metrics, store.clone(), forwarder, remote.clone()).await?;
    let bus = match (&config.cluster, &redis, remote) {
        (Some(c), Some(r), Some(remote)) => Some(crate::cluster::relay::spawn(
            c,
            r.clone(),
            api.events.subscribe(),
            remote,
            api.metrics.clone(),
        )?),
        _ => None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let at = Addresses {
        sip: bound,
        api: api_addr,
    };
    let (focus, registry) = start_focus(&config, redis, at);
    // Last, once everything is up: tests and operators read "serving" as ready.
    tracing::info!(sip = %bound, api = %api_addr, rtp = ?config.rtp.ports.0, workers = threads.len(), "chorus serving (SIP over UDP and TCP)");
    let calls = Calls::new(&config, sip, handles.clone(), store, names, api, focus);
    let done = tokio::spawn(async move {
        calls
            .run(sip_events, reports, requests, async {
                let _ = stopped.await;
            })
            .await;
        // Its SIP handle would keep the SIP task (and its sockets) alive.
        registrar.abort();
        // Claims still held lapse with their TTL.
        if let Some(r) = registry {
            r.abort();
        }
        for task in bus.into_iter().flatten() {
            task.abort();
        }
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

fn endpoint_config(config: &Config) -> EndpointConfig {
    let sip = &config.sip;
    let auth = (!sip.dial_in_auth.is_empty()).then(|| DialInAuth {
        realm: sip.auth_realm.clone(),
        algorithms: sip.auth_algorithms.clone(),
        users: sip
            .dial_in_auth
            .iter()
            .map(|u| (u.username.clone(), u.password.clone()))
            .collect(),
    });
    let l = &sip.limits;
    tracing::info!(
        invite_per_source = ?l.invite_per_source,
        invite_global = ?l.invite_global,
        unacked_per_source = l.unacked_per_source,
        unacked_global = l.unacked_global,
        calls_per_source = l.calls_per_source,
        acl = !(sip.acl.allow.is_empty() && sip.acl.deny.is_empty()),
        dial_in_auth = auth.as_ref().map_or(0, |a| a.users.len()),
        "SIP admission limits"
    );
    EndpointConfig {
        user_agent: sip.user_agent.clone(),
        contact_host: sip.listen.ip().to_string(),
        udp_port: sip.listen.port(),
        tcp_port: sip.listen.port(),
        timers: Timers {
            t1: Duration::from_millis(sip.timer_t1_ms),
            ..Timers::default()
        },
        limits: sip.limits.clone(),
        acl: sip.acl.clone(),
        auth,
        registrar: sip.registrar.enabled,
    }
}

fn registrar_config(config: &Config) -> crate::registrar::Config {
    let (sip, r) = (&config.sip, &config.sip.registrar);
    crate::registrar::Config {
        realm: sip.auth_realm.clone(),
        algorithms: sip.auth_algorithms.clone(),
        default_expires: r.default_expires,
        min_expires: r.min_expires,
        max_expires: r.max_expires,
        max_per_device: r.max_bindings_per_device,
        max_total: r.max_bindings,
    }
}

/// File descriptors kept for everything but SIP TCP and RTP: API connections, the store,
/// prompt, music and recording files, the workers' polls, SIP's UDP socket and listener.
const FDS_OTHER: u64 = 1024;
/// TCP connections allowed even when the descriptor limit cannot hold the RTP range.
const MIN_TCP: u64 = 64;

/// Raises the descriptor limit and fits the SIP TCP cap under it beside the RTP ports (one
/// descriptor each), so a TCP flood can never leave a call without its RTP sockets.
fn tcp_limits(config: &Config) -> TcpLimits {
    let (limit, before) = raise_fd_limit();
    let ports = config.rtp.ports.0.clone();
    let rtp = u64::from(ports.end() - ports.start()) + 1;
    let mut tcp = config.sip.tcp.clone();
    let budget = tcp_budget(limit, rtp, tcp.max_connections as u64);
    if budget < tcp.max_connections as u64 {
        tracing::warn!(
            fd_limit = limit,
            rtp_ports = rtp,
            "sip.tcp.max_connections lowered from {} to {budget} to keep descriptors for RTP",
            tcp.max_connections
        );
    }
    if limit < rtp + FDS_OTHER {
        tracing::warn!(
            fd_limit = limit,
            rtp_ports = rtp,
            "the descriptor limit cannot hold the RTP port range: raise it (LimitNOFILE) or narrow rtp.ports"
        );
    }
    tcp.max_connections = budget as usize;
    tracing::info!(
        fd_limit = limit,
        raised_from = before,
        rtp_reserved = rtp,
        tcp_max = tcp.max_connections,
        tcp_per_source = tcp.max_connections_per_source,
        idle_secs = tcp.idle_timeout_secs,
        header_secs = tcp.header_timeout_secs,
        "file descriptors and SIP TCP limits"
    );
    tcp
}

/// The TCP connections that fit under `limit` descriptors beside `rtp` RTP ports.
fn tcp_budget(limit: u64, rtp: u64, configured: u64) -> u64 {
    let spare = limit.saturating_sub(rtp + FDS_OTHER).max(MIN_TCP);
    configured.min(spare)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit now and before.
fn raise_fd_limit() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (1024, 1024);
    }
    let before = lim.rlim_cur;
    // Linux refuses "infinity" for open files; 2^20 is its default ceiling (fs.nr_open).
    let target = lim.rlim_max.min(1 << 20);
    if target > before {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return (target, before);
        }
    }
    (before, before)
}

/// Starts the REST/WebSocket API, its webhook sender and metrics; the control plane
/// answers the returned requests and publishes through the link.
async fn start_api(
    config: &Config,
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    forwarder: Option<Forwarder>,
    remote: Option<broadcast::Sender<RenderedEvent>>,
) -> anyhow::Result<(mpsc::Receiver<Request>, ApiLink, SocketAddr)> {
    let listen = config.api.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("API listen on {listen}: {e}"))?;
    let bound = listener.local_addr()?;
    let (service, requests) = Service::channel(64);
    let (events, _) = broadcast::channel(1024);
    let policy = Policy::new(&config.api.webhooks);
    let webhooks = Webhooks::spawn(events.subscribe(), metrics.clone(), policy);
    let name = match &config.cluster {
        Some(c) => c.node.clone(),
        None => format!("chorus@{}", config.sip.listen.ip()),
    };
    let node = Node {
        name,
        switch_url: format!("sip:{}", config.sip.listen),
        external_ip: config.sip.listen.ip().to_string(),
    };
    let state = ApiState::new(
        service,
        config.api.clone(),
        node,
        events.clone(),
        metrics.clone(),
    )
    .with_store(store)
    .with_media(MediaFiles::new(
        Library::new(&config.data_dir.join("media")),
        config.sounds.max_file_bytes,
    ))
    .with_forwarder(forwarder)
    .with_remote_events(remote);
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

/// The focus registry task, in a cluster (`[cluster]`).
fn start_focus(
    config: &Config,
    redis: Option<ConnectionManager>,
    at: Addresses,
) -> (Option<FocusLink>, Option<tokio::task::JoinHandle<()>>) {
    let (Some(cluster), Some(redis)) = (&config.cluster, redis) else {
        return (None, None);
    };
    // Bounded both ways: a full request queue refuses the claim (503) at once.
    let (requests, requests_rx) = mpsc::channel(1024);
    let (events_tx, events) = mpsc::channel(1024);
    let advertise = cluster.advertise_sip(at.sip);
    let task = crate::cluster::registry::spawn(cluster, redis, at, requests_rx, events_tx);
    tracing::info!(node = %cluster.node, %advertise, "cluster node: focus registry");
    (Some(FocusLink { requests, events }), Some(task))
}

/// The document store, seeded on its first start: PostgreSQL when `[store] url` names it,
/// else SQLite in the data directory.
fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let seed = Seed::read(&config.conferences.seed)?;
    let account = &config.conferences.account;
    if !config.store.url.is_empty() {
        let store = PostgresStore::open_seeded(&config.store.url, &seed, account)?;
        tracing::info!(?store, "store open (PostgreSQL)");
        return Ok(Arc::new(store));
    }
    let store = SqliteStore::open_seeded(&config.data_dir, &seed, account)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_connections_leave_descriptors_for_every_rtp_port() {
        assert_eq!(tcp_budget(20_000, 10_000, 8192), 8192);
        assert_eq!(
            tcp_budget(12_000, 10_000, 8192),
            12_000 - 10_000 - FDS_OTHER
        );
        assert_eq!(
            tcp_budget(1024, 10_000, 8192),
            MIN_TCP,
            "a limit too low for RTP anyway"
        );
        assert_eq!(tcp_budget(1 << 20, 10_000, 100), 100);
    }

    #[test]
    fn the_descriptor_limit_is_raised_to_the_hard_limit() {
        let (now, _) = raise_fd_limit();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in raise_fd_limit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, now);
        assert_eq!(now, lim.rlim_max.min(1 << 20));
    }
}
