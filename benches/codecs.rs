//! Cost of one 20 ms frame through each codec, of the jitter buffer, concealment and
//! time-scale modification per packet, and of sending one tick to a room's Opus listeners
//! with an encode each against one shared encode.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chorus::media::codec::{CodecKind, CodecOptions};
use chorus::media::jitter::{JitterBuffer, JitterConfig, PacketInfo};
use chorus::media::leg::{Leg, LegConfig};
use chorus::media::{pitch, rtcp};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// 20 ms of a speech-like signal (two tones and a little noise) at `rate`.
fn frame(rate: u32) -> Vec<i16> {
    let n = rate as usize / 50;
    let mut seed = 1u32;
    (0..n)
        .map(|i| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let t = i as f64 / rate as f64;
            let s = 6000.0 * (2.0 * std::f64::consts::PI * 220.0 * t).sin()
                + 3000.0 * (2.0 * std::f64::consts::PI * 1330.0 * t).sin();
            (s + (seed >> 22) as f64 - 512.0) as i16
        })
        .collect()
}

/// The espeak-ng speech of the quality tool, in 20 ms frames at `rate`: Opus spends what
/// speech makes it spend (a steady tone would take its cheaper music path).
fn speech(rate: u32) -> Vec<Vec<i16>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/audio/speech-16k.wav");
    let pcm = mixer::wav::Pcm::load(std::path::Path::new(path), rate).unwrap();
    let n = rate as usize / 50;
    pcm.samples().chunks_exact(n).map(<[i16]>::to_vec).collect()
}

fn codec(c: &mut Criterion, name: &str, kind: CodecKind, options: CodecOptions) {
    let frames = speech(options.pcm_rate(kind));
    let mut enc = kind.encoder(options).unwrap();
    let mut payload = Vec::with_capacity(1500);
    let mut i = 0;
    c.bench_function(&format!("{name} encode 20ms"), |b| {
        b.iter(|| {
            payload.clear();
            enc.encode(black_box(&frames[i % frames.len()]), &mut payload);
            i += 1;
        })
    });
    let mut enc = kind.encoder(options).unwrap();
    let payloads: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            let mut p = Vec::new();
            enc.encode(f, &mut p);
            p
        })
        .collect();
    let mut dec = kind.decoder(options).unwrap();
    let mut out = Vec::with_capacity(2000);
    c.bench_function(&format!("{name} decode 20ms"), |b| {
        b.iter(|| {
            out.clear();
            dec.decode(black_box(&payloads[i % payloads.len()]), &mut out);
            i += 1;
        })
    });
}

fn codecs(c: &mut Criterion) {
    let default = CodecOptions::default();
    codec(c, "pcmu", CodecKind::Pcmu, default);
    codec(c, "pcma", CodecKind::Pcma, default);
    codec(c, "g722", CodecKind::G722, default);
    // The complexities README's Opus quality table compares, and `[rtp] opus_rate`.
    for complexity in [0, 2, 5, 10] {
        let options = CodecOptions {
            opus_complexity: complexity,
            ..default
        };
        codec(c, &format!("opus c{complexity}"), CodecKind::Opus, options);
    }
    for rate in [16000, 24000] {
        let options = CodecOptions {
            opus_rate: rate,
            ..default
        };
        codec(c, &format!("opus {rate} c5"), CodecKind::Opus, options);
    }
}

/// A packet pushed and a frame pulled (decoded by PCMU); G.711 Appendix I concealment of
/// a lost frame (its pitch search included); and the pitch search time-scale
/// modification runs before it adds or removes a period.
fn jitter(c: &mut Criterion) {
    let payload: Vec<u8> = {
        let mut enc = CodecKind::Pcmu.encoder(CodecOptions::default()).unwrap();
        let mut p = Vec::new();
        enc.encode(&frame(8000), &mut p);
        p
    };
    let mut jb = JitterBuffer::new(JitterConfig::new(8000, 20));
    let mut dec = CodecKind::Pcmu.decoder(CodecOptions::default()).unwrap();
    let t0 = Instant::now();
    let mut i = 0u32;
    c.bench_function("jitter push+pull pcmu", |b| {
        b.iter(|| {
            let now = t0 + Duration::from_millis(20 * i as u64);
            let info = PacketInfo {
                seq: i as u16,
                timestamp: i.wrapping_mul(160),
                ssrc: 1,
                marker: false,
                payload: &payload,
            };
            jb.push(now, black_box(info));
            black_box(jb.pull(now + Duration::from_millis(5), 160, 8000, dec.as_mut()));
            i = i.wrapping_add(1);
        })
    });
    let mut out = Vec::with_capacity(2000);
    c.bench_function("pcmu conceal 20ms (first lost frame)", |b| {
        b.iter(|| {
            out.clear();
            dec.decode(&payload, &mut out);
            dec.conceal(160, &mut out);
            black_box(&out);
        })
    });
    for rate in [8000u32, 48000] {
        let pcm: Vec<i16> = (0..4).flat_map(|_| frame(rate)).collect();
        let from = rate as usize / 50;
        let max = rate as usize * 15 / 1000;
        c.bench_function(&format!("tsm pitch search {}k", rate / 1000), |b| {
            b.iter(|| {
                black_box(pitch::best_lag(
                    black_box(&pcm),
                    max / 6..=max,
                    rate,
                    |lag| (from - lag, lag),
                ))
            })
        });
    }
}

/// `n` Opus legs past the ACK, each latched to its phone (by an empty receiver report).
fn opus_legs(n: usize) -> Vec<Leg> {
    let now = Instant::now();
    (0..n)
        .map(|i| {
            let phone = std::net::SocketAddr::from(([127, 0, 0, 1], 20_000 + 2 * i as u16));
            let cfg = LegConfig::new(CodecKind::Opus, 111, 20, phone, 0x1000 + i as u32);
            let mut leg = Leg::new(cfg).unwrap();
            leg.confirm();
            let mut rr = Vec::new();
            rtcp::write_rr(&mut rr, 0x9999, &[]);
            leg.handle_rtcp(now, phone, &rr).unwrap();
            leg
        })
        .collect()
}

/// One tick to `n` listeners hearing the same mix: every leg encoding it (what a talker's
/// private N-1 mix costs) against one encode wrapped in each leg's RTP header (the worker's
/// shared encode for pure listeners). Throughput is listeners served per second of one core.
fn shared_opus(c: &mut Criterion) {
    let pcm = frame(48_000);
    let mut group = c.benchmark_group("opus listeners per tick");
    for n in [10usize, 100] {
        group.throughput(Throughput::Elements(n as u64));
        let mut legs = opus_legs(n);
        let mut now = Instant::now();
        group.bench_with_input(BenchmarkId::new("private encodes", n), &n, |b, _| {
            b.iter(|| {
                now += Duration::from_millis(20);
                for leg in &mut legs {
                    black_box(leg.send_pcm(now, &pcm).map(|t| t.bytes.len()));
                }
            })
        });
        let mut shared = CodecKind::Opus.encoder(CodecOptions::default()).unwrap();
        let mut payload = Vec::with_capacity(1500);
        group.bench_with_input(BenchmarkId::new("one shared encode", n), &n, |b, _| {
            b.iter(|| {
                now += Duration::from_millis(20);
                payload.clear();
                shared.encode(&pcm, &mut payload);
                for leg in &mut legs {
                    black_box(leg.send_payload(now, &payload).map(|t| t.bytes.len()));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, codecs, jitter, shared_opus);
criterion_main!(benches);
