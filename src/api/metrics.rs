//! Counters the media and control code bump with relaxed atomics, rendered for Prometheus.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Gauges (`conferences`, `members`, `jitter_us`, `delay_us`, `api_connections`,
/// `ws_clients`) are `store`d or go both ways; the rest only grow.
#[derive(Debug, Default)]
pub struct Metrics {
    pub conferences: AtomicU64,
    pub members: AtomicU64,
    pub packets_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub packets_lost: AtomicU64,
    /// Valid RTP and RTCP from a source other than a leg's latched peer (dropped).
    pub packets_foreign: AtomicU64,
    /// RFC 4733 digits dropped at a leg's rate or queue bound, either way.
    pub dtmf_dropped: AtomicU64,
    /// Latest interarrival jitter estimate across calls, in microseconds.
    pub jitter_us: AtomicU64,
    /// Largest delay the server adds to a caller's audio, in microseconds.
    pub delay_us: AtomicU64,
    pub mix_tick: Histogram,
    pub webhook_failures: AtomicU64,
    pub webhook_dropped: AtomicU64,
    pub ws_dropped: AtomicU64,
    pub api_connections: AtomicU64,
    pub api_refused: AtomicU64,
    pub ws_clients: AtomicU64,
    pub ws_refused: AtomicU64,
    pub ws_unauthenticated: AtomicU64,
    /// Events of hosted rooms the cluster's event bus did not carry to the other nodes.
    pub bus_unpublished: AtomicU64,
    /// Event bus messages from other nodes dropped: oversized or unreadable.
    pub bus_refused: AtomicU64,
}

/// Upper bounds of the mix tick buckets, in microseconds: a 20 ms frame must mix well inside,
/// a small room's tick takes a few microseconds, and the load target is a p99 of 2 ms.
const BOUNDS_US: [u64; 12] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000,
];

#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = BOUNDS_US.iter().position(|&b| us <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in BOUNDS_US.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

impl Metrics {
    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let gauges = [
            (
                "chorus_conferences",
                "Running conferences",
                &self.conferences,
            ),
            (
                "chorus_members",
                "Members in all conferences",
                &self.members,
            ),
            (
                "chorus_api_connections",
                "Open API connections (WebSockets not included)",
                &self.api_connections,
            ),
            (
                "chorus_ws_clients",
                "Connected WebSocket clients",
                &self.ws_clients,
            ),
        ];
        let counters = [
            (
                "chorus_rtp_packets_received_total",
                "RTP packets received",
                &self.packets_in,
            ),
            (
                "chorus_rtp_packets_sent_total",
                "RTP packets sent",
                &self.packets_out,
            ),
            (
                "chorus_rtp_packets_lost_total",
                "RTP packets lost",
                &self.packets_lost,
            ),
            (
                "chorus_rtp_packets_foreign_total",
                "RTP and RTCP packets dropped: not from the leg's latched source",
                &self.packets_foreign,
            ),
            (
                "chorus_dtmf_dropped_total",
                "DTMF digits dropped at a call's rate or queue bound",
                &self.dtmf_dropped,
            ),
            (
                "chorus_webhook_failures_total",
                "Webhook deliveries that failed every attempt",
                &self.webhook_failures,
            ),
            (
                "chorus_webhook_dropped_total",
                "Webhooks dropped on a full hook queue",
                &self.webhook_dropped,
            ),
            (
                "chorus_ws_events_dropped_total",
                "Bus events a slow WebSocket client skipped",
                &self.ws_dropped,
            ),
            (
                "chorus_api_connections_refused_total",
                "API connections closed at accept: over a connection cap",
                &self.api_refused,
            ),
            (
                "chorus_ws_refused_total",
                "WebSocket upgrades refused: too many clients",
                &self.ws_refused,
            ),
            (
                "chorus_ws_unauthenticated_closed_total",
                "WebSockets closed for not subscribing in time",
                &self.ws_unauthenticated,
            ),
            (
                "chorus_bus_events_unpublished_total",
                "Events of hosted rooms not sent to the other nodes: behind, oversized, or Redis unreachable",
                &self.bus_unpublished,
            ),
            (
                "chorus_bus_events_refused_total",
                "Event bus messages from other nodes dropped: oversized or unreadable",
                &self.bus_refused,
            ),
        ];
        for (kind, list) in [("gauge", &gauges[..]), ("counter", &counters[..])] {
            for (name, help, value) in list {
                let v = value.load(Relaxed);
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
                );
            }
        }
        for (name, help, us) in [
            (
                "chorus_rtp_jitter_seconds",
                "Latest RTP interarrival jitter",
                &self.jitter_us,
            ),
            (
                "chorus_media_delay_seconds",
                "Largest latency the server adds to a caller's audio, in and out (jitter buffer, concealment, mixer pre-roll, pacing)",
                &self.delay_us,
            ),
        ] {
            let v = us.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        self.mix_tick.render(
            "chorus_mix_tick_seconds",
            "Time to mix one conference frame",
            &mut out,
        );
        out
    }
}
