//! Wires the server together: the SIP transport, the media workers and the call control
//! plane, until SIGINT or SIGTERM.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::call::Calls;
use crate::config::Config;
use crate::media::worker::{self, Command};
use crate::sip::{self, EndpointConfig, Timers};

pub async fn run(config: Config) -> anyhow::Result<()> {
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
    Calls::new(&config, sip, handles.clone())
        .run(sip_events, reports, shutdown_signal())
        .await;
    for h in &handles {
        h.send(Command::Shutdown);
    }
    for t in threads {
        let _ = t.join();
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminate = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
