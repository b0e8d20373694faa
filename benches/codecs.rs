//! Cost of one 20 ms frame through each codec, and of the jitter buffer per packet.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chorus::media::codec::{CodecKind, EncoderOptions};
use chorus::media::jitter::{JitterBuffer, JitterConfig, PacketInfo};
use criterion::{Criterion, criterion_group, criterion_main};

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

fn codec(c: &mut Criterion, name: &str, kind: CodecKind, complexity: i32) {
    let pcm = frame(kind.pcm_rate());
    let mut enc = kind
        .encoder(EncoderOptions {
            opus_complexity: complexity,
            ..EncoderOptions::default()
        })
        .unwrap();
    let mut payload = Vec::with_capacity(1500);
    c.bench_function(&format!("{name} encode 20ms"), |b| {
        b.iter(|| {
            payload.clear();
            enc.encode(black_box(&pcm), &mut payload);
        })
    });
    let mut dec = kind.decoder().unwrap();
    let mut out = Vec::with_capacity(2000);
    c.bench_function(&format!("{name} decode 20ms"), |b| {
        b.iter(|| {
            out.clear();
            dec.decode(black_box(&payload), &mut out);
        })
    });
}

fn codecs(c: &mut Criterion) {
    codec(c, "pcmu", CodecKind::Pcmu, 0);
    codec(c, "pcma", CodecKind::Pcma, 0);
    codec(c, "g722", CodecKind::G722, 0);
    codec(c, "opus c0", CodecKind::Opus, 0);
    codec(c, "opus c5", CodecKind::Opus, 5);
}

fn jitter(c: &mut Criterion) {
    let payload = [0x55u8; 160];
    let mut jb = JitterBuffer::new(JitterConfig::new(8000, 20));
    let t0 = Instant::now();
    let mut i = 0u32;
    c.bench_function("jitter push+pop", |b| {
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
            black_box(jb.pop(now + Duration::from_millis(5)));
            i = i.wrapping_add(1);
        })
    });
}

criterion_group!(benches, codecs, jitter);
criterion_main!(benches);
