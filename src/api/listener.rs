//! The API's accept loop: HTTP/1.1 connections under a global and a per-address cap, each
//! with a deadline for its request head (slow headers and idle keep-alive connections are
//! closed) and upgrades for WebSockets. A failed accept (out of file descriptors) backs off
//! instead of spinning.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use super::metrics::Metrics;
use super::{ApiState, router};

/// Wait after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub async fn serve(listener: TcpListener, state: ApiState) -> std::io::Result<()> {
    let config = state.config.clone();
    let metrics = state.metrics.clone();
    let open = Arc::new(Open::new(
        config.max_connections,
        config.max_connections_per_ip,
    ));
    let service = TowerToHyperService::new(router(state));
    let header_timeout = Duration::from_secs(config.header_timeout_secs);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "API accept failed: backing off");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(slot) = Open::admit(&open, peer.ip(), &metrics) else {
            metrics.api_refused.fetch_add(1, Relaxed);
            continue;
        };
        let service = service.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "API connection");
            }
            drop(slot);
        });
    }
}

/// Open connections, counted in all and per address.
struct Open {
    max: usize,
    per_ip: usize,
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; dropping it lets another in.
struct Slot {
    open: Arc<Open>,
    ip: IpAddr,
    metrics: Arc<Metrics>,
}

impl Open {
    fn new(max: usize, per_ip: usize) -> Self {
        Open {
            max,
            per_ip,
            counts: Mutex::default(),
        }
    }

    fn admit(open: &Arc<Open>, ip: IpAddr, metrics: &Arc<Metrics>) -> Option<Slot> {
        let mut counts = open.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (all, by_ip) = &mut *counts;
        let mine = by_ip.entry(ip).or_default();
        if *all >= open.max || *mine >= open.per_ip {
            if *mine == 0 {
                by_ip.remove(&ip);
            }
            return None;
        }
        *mine += 1;
        *all += 1;
        metrics.api_connections.store(*all as u64, Relaxed);
        Some(Slot {
            open: open.clone(),
            ip,
            metrics: metrics.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.open.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (all, by_ip) = &mut *counts;
        *all -= 1;
        if let Some(n) = by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by_ip.remove(&self.ip);
            }
        }
        self.metrics.api_connections.store(*all as u64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_in_all_and_per_address() {
        let open = Arc::new(Open::new(3, 2));
        let metrics = Arc::new(Metrics::default());
        let (a, b) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let a1 = Open::admit(&open, a, &metrics).unwrap();
        let _a2 = Open::admit(&open, a, &metrics).unwrap();
        assert!(Open::admit(&open, a, &metrics).is_none(), "per address");
        let _b1 = Open::admit(&open, b, &metrics).unwrap();
        assert!(Open::admit(&open, b, &metrics).is_none(), "in all");
        drop(a1);
        let _b2 = Open::admit(&open, b, &metrics).unwrap();
        assert_eq!(metrics.api_connections.load(Relaxed), 3);
    }
}
