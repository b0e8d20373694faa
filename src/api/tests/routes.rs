//! `/metrics` and the OpenAPI document against the routes the router really serves.

use super::*;
use crate::api::{account_routes, open_routes, openapi, system_routes};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

/// Prometheus text: `name{labels} value` samples keyed by `name{labels}`.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample: {l}"));
            let value = value.parse().unwrap_or_else(|_| panic!("bad value: {l}"));
            (key.to_owned(), value)
        })
        .collect()
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text() {
    let h = Harness::start().await;
    h.metrics.conferences.store(2, Relaxed);
    h.metrics.packets_in.fetch_add(1500, Relaxed);
    h.metrics.jitter_us.store(2500, Relaxed);
    h.metrics.delay_us.store(31_000, Relaxed);
    h.metrics.mix_tick.observe(Duration::from_micros(80));
    h.metrics.mix_tick.observe(Duration::from_micros(3000));
    h.metrics.mix_tick.observe(Duration::from_millis(90));
    let response = h.raw("GET", "/metrics", None, None).await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let samples = parse_prometheus(&response.text().await.unwrap());
    assert_eq!(samples["chorus_conferences"], 2.0);
    assert_eq!(samples["chorus_rtp_packets_received_total"], 1500.0);
    assert_eq!(samples["chorus_rtp_jitter_seconds"], 0.0025);
    assert_eq!(samples["chorus_media_delay_seconds"], 0.031);
    assert_eq!(samples["chorus_webhook_failures_total"], 0.0);
    assert_eq!(
        samples["chorus_mix_tick_seconds_bucket{le=\"0.0001\"}"],
        1.0
    );
    assert_eq!(samples["chorus_mix_tick_seconds_bucket{le=\"0.005\"}"], 2.0);
    assert_eq!(samples["chorus_mix_tick_seconds_bucket{le=\"+Inf\"}"], 3.0);
    assert_eq!(samples["chorus_mix_tick_seconds_count"], 3.0);
    assert!((samples["chorus_mix_tick_seconds_sum"] - 0.09308).abs() < 1e-9);
}

const METHODS: [&str; 5] = ["GET", "PUT", "POST", "PATCH", "DELETE"];

/// Every served path and method is documented, and every documented one is served.
#[tokio::test]
async fn openapi_documents_exactly_the_served_routes() {
    // Every path and method once: more requests than the default burst.
    let h = Harness::start_with(1000).await;
    let doc: Value = serde_json::from_str(openapi::DOCUMENT).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let documented = doc["paths"].as_object().unwrap();
    let served: Vec<&str> = account_routes()
        .into_iter()
        .chain(open_routes())
        .chain(system_routes())
        .map(|(p, _)| p)
        .collect();
    assert_eq!(served.len(), documented.len(), "{served:?}");
    for path in served {
        let item = documented
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not documented"));
        let url = path
            .replace("{account_id}", ACCOUNT_A)
            .replace("{conference_id}", "c1")
            .replace("{participant_id}", "1")
            .replace("{document_id}", "d1")
            .replace("{name}", "r.wav");
        let system = system_routes().iter().any(|(p, _)| *p == path);
        let token = if system { TOKEN_SYSTEM } else { TOKEN_A };
        for method in METHODS {
            let status = h
                .raw(method, &url, Some(token), None)
                .await
                .status()
                .as_u16();
            let is_documented = item.get(method.to_lowercase().as_str()).is_some();
            assert_eq!(
                status != 405,
                is_documented,
                "{method} {path} answered {status}"
            );
        }
    }
}
