//! Wires the server together: the SIP transport, the media workers and the call control
//! plane, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::call::Calls;
use crate::config::Config;
use crate::media::worker::{self, Command};
use crate::sip::{self, EndpointConfig, Timers};

/// A started server; [`Running::stop`] hangs up every call and stops it.
pub struct Running {
    /// Where SIP listens (UDP and TCP), with the real port when 0 was configured.
    pub sip: SocketAddr,
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
    };
    let (sip, sip_events, bound) = sip::spawn(listen, endpoint)
        .await
        .map_err(|e| anyhow::anyhow!("SIP listen on {listen}: {e}"))?;
    let (report_tx, reports) = mpsc::unbounded_channel();
    let timeout = Duration::from_secs(config.rtp.timeout_secs);
    let mut handles = Vec::new();
    let mut threads = Vec::new();
    for i in 0..config.media.workers {
        let (handle, thread) = worker::spawn(i, timeout, report_tx.clone())?;
        handles.push(handle);
        threads.push(thread);
    }
    tracing::info!(sip = %bound, rtp = ?config.rtp.ports.0, workers = threads.len(), "chorus serving (SIP over UDP and TCP)");
    let (stop, stopped) = oneshot::channel::<()>();
    let calls = Calls::new(&config, sip, handles.clone());
    let done = tokio::spawn(async move {
        calls
            .run(sip_events, reports, async {
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
        stop,
        done,
    })
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
