//! DSP costs per 20 ms frame: tone synthesis and resampling, in thread CPU
//! time: on a machine shared with other builds, wall time mostly measures
//! the wait for a core.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mixer::resample::Resampler;
use mixer::source::Source;
use mixer::tone::ToneStream;
use std::hint::black_box;
use std::time::Duration;

const ENTRY: &str = "tone_stream://v=-7;>=2;+=.1;%(300,0,523,659);v=-7;>=3;+=.1;%(800,0,659,783)";

fn tone(c: &mut Criterion<CpuTime>) {
    // Looped so every iteration renders audio rather than an ended stream.
    let mut entry = ToneStream::parse(&format!("{ENTRY};loops=-1"), 48000).unwrap();
    let mut frame = vec![0i16; 960];
    c.bench_function("tone entry 48k 20ms", |b| {
        b.iter(|| black_box(entry.fill(black_box(&mut frame))))
    });
}

fn resample(c: &mut Criterion<CpuTime>) {
    for (from, to) in [(8000, 48000), (48000, 8000), (16000, 48000), (44100, 48000)] {
        let n = from as usize / 50;
        let input: Vec<i16> = (0..n)
            .map(|i| ((i * 7919) % 20000) as i16 - 10000)
            .collect();
        let mut r = Resampler::new(from, to, n);
        let mut out = Vec::with_capacity(to as usize / 50);
        c.bench_function(&format!("resample {from}->{to} 20ms"), |b| {
            b.iter(|| {
                out.clear();
                r.process(black_box(&input), &mut out);
                black_box(out.len())
            })
        });
    }
}

struct CpuTime;

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for CpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanos
    }
}

struct Nanos;

impl ValueFormatter for Nanos {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        if typical < 1000.0 {
            return "ns cpu";
        }
        values.iter_mut().for_each(|v| *v /= 1000.0);
        "µs cpu"
    }
    fn scale_throughputs(&self, _: f64, _: &Throughput, _: &mut [f64]) -> &'static str {
        "ns cpu"
    }
    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns cpu"
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = tone, resample
}
criterion_main!(benches);
