//! The SIP endpoint's per-message cost against the number of live transactions, up to the
//! default cap (`sip.limits.transactions_global`, 20,000), as a flood leaves them: each
//! OPTIONS keeps a server transaction for 64 x T1 (32 s) after its answer. Timed, per
//! message: a retransmitted OPTIONS in (absorbed, its answer resent), the answer out, and
//! the next deadline asked for, as the transport task does after every input; and the timer
//! step the transport runs when a deadline passes. Before the timer heap both scanned every
//! transaction.
//!
//!   cargo bench --bench sip_endpoint

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chorus::sip::admission::{Acl, Limits};
use chorus::sip::{Endpoint, EndpointConfig, Timers, Transport};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn options(branch: usize) -> Vec<u8> {
    format!(
        "OPTIONS sip:conf@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bK-{branch}\r\n\
         From: <sip:probe@127.0.0.9>;tag=f{branch}\r\n\
         To: <sip:conf@127.0.0.1>\r\n\
         Call-ID: bench-{branch}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// An endpoint holding `n` completed OPTIONS transactions from a handful of sources.
fn endpoint(n: usize, now: Instant) -> Endpoint {
    let mut ep = Endpoint::new(EndpointConfig {
        user_agent: "Chorus-bench".into(),
        contact_host: "127.0.0.1".into(),
        udp_port: 5060,
        tcp_port: 5060,
        timers: Timers::default(),
        limits: Limits::default(),
        acl: Acl::default(),
        auth: None,
        registrar: false,
    });
    for i in 0..n {
        let from = SocketAddr::from(([127, 0, 0, 1 + (i % 8) as u8], 5060));
        ep.handle_input(now, from, Transport::Udp, &options(i));
        while ep.poll_transmit().is_some() {}
    }
    ep
}

fn per_message(c: &mut Criterion) {
    let mut group = c.benchmark_group("sip_endpoint");
    for n in [100, 20_000] {
        let now = Instant::now();
        let mut ep = endpoint(n, now);
        let from = SocketAddr::from(([127, 0, 0, 1], 5060));
        let resent = options(0);
        group.bench_with_input(BenchmarkId::new("message", n), &n, |b, _| {
            b.iter(|| {
                ep.handle_input(now, from, Transport::Udp, &resent);
                while let Some(t) = ep.poll_transmit() {
                    black_box(t);
                }
                black_box(ep.poll_timeout())
            })
        });
        // Nothing is due for 32 s: the step finds that out and asks for the next deadline.
        let soon = now + Duration::from_secs(1);
        group.bench_with_input(BenchmarkId::new("timer_step", n), &n, |b, _| {
            b.iter(|| {
                ep.handle_timeout(soon);
                black_box(ep.poll_timeout())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, per_message);
criterion_main!(benches);
