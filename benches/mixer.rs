//! Mixer tick cost: 10/100/1000 members at 8/16/48 kHz, with 3 talkers and
//! with everyone talking, plus the gate alone (everyone below energy-level)
//! and G.711 phones (8 kHz) in Kazoo's default 48 kHz profile.
//! Input pushes happen outside the timed region (they are the network
//! threads' work); only `tick` is timed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mixer::{Conference, MemberConfig, MemberInput, Profile};

fn sine(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<i16> {
    (0..n)
        .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16)
        .collect()
}

struct Room {
    conf: Conference,
    inputs: Vec<MemberInput>,
    frames: Vec<Vec<i16>>,
    now: Instant,
}

/// `members` members at `rate` in a profile at `profile_rate`; the first
/// `talkers` push a tone, the rest push `quiet` (silence, or noise below
/// the energy level).
fn room(profile_rate: u32, rate: u32, members: usize, talkers: usize, quiet: &[i16]) -> Room {
    let mut profile = Profile::default();
    profile
        .set("rate", &profile_rate.to_string())
        .expect("valid rate");
    let mut conf = Conference::new(profile);
    let n = conf.profile().frame_len_at(rate);
    let tone = sine(697.0, rate, n, 8000.0);
    let (mut inputs, mut frames) = (Vec::new(), Vec::new());
    for i in 0..members {
        let cfg = MemberConfig {
            rate,
            ..MemberConfig::default()
        };
        inputs.push(conf.add_member(cfg).expect("join").1);
        frames.push(if i < talkers {
            tone.clone()
        } else {
            quiet[..n].to_vec()
        });
    }
    let mut r = Room {
        conf,
        inputs,
        frames,
        now: Instant::now(),
    };
    // Criterion re-runs the routine per sample: build and warm the room
    // (buffers allocated, talkers' gates open) once, outside the timing.
    time_ticks(&mut r, 3);
    r
}

fn time_ticks(r: &mut Room, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let interval = r.conf.profile().interval();
    for _ in 0..iters {
        for (input, frame) in r.inputs.iter_mut().zip(&r.frames) {
            input.push(frame);
        }
        let t = Instant::now();
        black_box(r.conf.tick(r.now));
        total += t.elapsed();
        r.now += interval;
    }
    total
}

fn ticks(c: &mut Criterion) {
    let silence = vec![0i16; 960];
    let mut g = c.benchmark_group("tick");
    for rate in [8000, 16000, 48000] {
        for members in [10, 100, 1000] {
            for (label, talkers) in [("3talk", 3), ("alltalk", members)] {
                let id = BenchmarkId::new(format!("{rate}/{label}"), members);
                let mut r = room(rate, rate, members, talkers, &silence);
                g.bench_function(id, |b| b.iter_custom(|iters| time_ticks(&mut r, iters)));
            }
        }
    }
    g.finish();
}

/// What the server runs for G.711 phones under Kazoo's default profile.
fn g711(c: &mut Criterion) {
    let silence = vec![0i16; 160];
    let mut g = c.benchmark_group("g711");
    for (label, talkers) in [("3talk", 3), ("alltalk", 1000)] {
        let id = BenchmarkId::new(format!("profile48000/8000/{label}"), 1000);
        let mut r = room(48000, 8000, 1000, talkers, &silence);
        g.bench_function(id, |b| b.iter_custom(|iters| time_ticks(&mut r, iters)));
    }
    g.finish();
}

fn gating(c: &mut Criterion) {
    // Background noise at mean |x| ~ 10, below the default energy-level 20.
    let hiss: Vec<i16> = (0..960)
        .map(|i| if i % 2 == 0 { 10 } else { -10 })
        .collect();
    let mut g = c.benchmark_group("gate");
    for members in [100, 1000] {
        let mut r = room(48000, 48000, members, 0, &hiss);
        g.bench_function(BenchmarkId::new("48000/all_below_level", members), |b| {
            b.iter_custom(|iters| time_ticks(&mut r, iters))
        });
    }
    g.finish();
}

criterion_group!(benches, ticks, g711, gating);
criterion_main!(benches);
