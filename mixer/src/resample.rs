//! Sample-rate conversion between a member's rate (or the profile rate of
//! playback) and the conference's mix rate.
//!
//! A rational polyphase FIR (Kaiser-windowed sinc) with one precomputed
//! coefficient row per output phase. Rates are fixed for a stream's life and
//! the ratios are small (8k:48k is 1:6, 44.1k:48k is 147:160), so this beats
//! an asynchronous sinc resampler on speed and has a fixed, short delay:
//! `HALF_TAPS` samples of the lower rate (2 ms at 8 kHz). Samples and
//! coefficients are 16-bit integers: the dot product then compiles to
//! `pmaddwd` (8 multiply-adds per instruction on baseline x86-64) and the
//! input needs no conversion.
//!
//! Why not rubato (the card crate): measured per 20 ms frame 8k->48k in
//! thread CPU time, rubato 5.0.1's sinc resampler (64 taps) took 40 us and
//! its FFT resampler 4.4 us with 10 ms of delay; this takes about 6 us with
//! 2 ms (48k->8k: rubato FFT 4.5 us, this 3.8 us).

/// Sinc zero crossings each side, counted at the lower rate: sets the
/// transition width, the delay and the cost.
const HALF_TAPS: usize = 16;
/// Kaiser shape: about 77 dB stopband (A = beta / 0.1102 + 8.7).
const BETA: f64 = 7.5;
/// Cutoff as a fraction of the lower Nyquist: the transition band straddles
/// it so the telephone band (to 3.4 kHz at 8 kHz) stays flat.
const CUTOFF: f64 = 0.94;
/// Awkward ratios (e.g. 44.1k to 8001 Hz) get their phase rounded to one of
/// this many rows instead of an unbounded table.
const MAX_PHASES: u64 = 1024;
/// Rows are padded to whole SIMD-friendly chunks.
const LANES: usize = 16;

/// Streaming mono resampler for fixed-size frames.
pub struct Resampler {
    /// Output samples per `down` input samples (the reduced ratio to/from).
    up: u64,
    down: u64,
    taps: usize,
    phases: u64,
    /// `phases` rows of `taps` coefficients, scaled by 2^`shift`.
    coeffs: Vec<i16>,
    shift: u32,
    /// Input samples advanced per output: `down / up` as whole + fraction.
    step: usize,
    step_frac: u64,
    /// Unconsumed input, primed with `taps - 1` zeros of history.
    buf: Vec<i16>,
    /// Next output position: `buf[at]` plus `frac / up` of a sample.
    at: usize,
    frac: u64,
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz, fed frames of `frame_in` samples.
    pub fn new(from: u32, to: u32, frame_in: usize) -> Self {
        let g = gcd(from.max(1) as u64, to.max(1) as u64);
        let (up, down) = (to.max(1) as u64 / g, from.max(1) as u64 / g);
        let c = (up as f64 / down as f64).min(1.0);
        let taps = ((2 * HALF_TAPS) as f64 / c).ceil() as usize;
        let taps = taps.div_ceil(LANES) * LANES;
        let phases = up.min(MAX_PHASES);
        let mut buf = Vec::with_capacity(taps + frame_in);
        buf.resize(taps - 1, 0);
        let (coeffs, shift) = quantize(&design(taps, phases, 0.5 * c * CUTOFF), taps);
        Resampler {
            up,
            down,
            taps,
            phases,
            coeffs,
            shift,
            step: (down / up) as usize,
            step_frac: down % up,
            buf,
            at: 0,
            frac: 0,
        }
    }

    /// Appends exactly `input.len() * to / from` samples to `out` whenever
    /// that is a whole number (any 10 ms frame); otherwise the running total
    /// stays within one sample of the exact count.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.up == self.down {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend_from_slice(input);
        // Divisions cost more than the filter at these sizes: positions are
        // stepped incrementally.
        while self.at + self.taps <= self.buf.len() {
            let phase = if self.phases == self.up {
                self.frac
            } else {
                self.frac * self.phases / self.up
            } as usize;
            let row = &self.coeffs[phase * self.taps..(phase + 1) * self.taps];
            let acc = dot(&self.buf[self.at..self.at + self.taps], row);
            let y = (acc + (1 << (self.shift - 1))) >> self.shift;
            out.push(y.clamp(i16::MIN.into(), i16::MAX.into()) as i16);
            self.at += self.step;
            self.frac += self.step_frac;
            if self.frac >= self.up {
                self.frac -= self.up;
                self.at += 1;
            }
        }
        self.buf.drain(..self.at);
        self.at = 0;
    }

    /// How many output samples the filter lags its input by.
    pub fn delay(&self) -> usize {
        if self.up == self.down {
            return 0;
        }
        (self.taps as u64 / 2 * self.up / self.down) as usize
    }
}

/// A resampler from `from` to `to`, or `None` when the rates match.
pub(crate) fn converter(from: u32, to: u32, frame_in: usize) -> Option<Resampler> {
    (from != to).then(|| Resampler::new(from, to, frame_in))
}

/// Converts `input` with `rs` into `out`, or copies it when the rates
/// match (`None`).
pub(crate) fn convert(rs: Option<&mut Resampler>, input: &[i16], out: &mut Vec<i16>) {
    match rs {
        Some(rs) => rs.process(input, out),
        None => out.extend_from_slice(input),
    }
}

/// Windowed-sinc rows: row `p` interpolates at fractional position
/// `p / phases`; each row sums to 1 so every phase has unity DC gain.
fn design(taps: usize, phases: u64, cutoff: f64) -> Vec<f64> {
    let centre = (taps / 2 - 1) as f64;
    let half = (taps / 2) as f64;
    let norm = bessel_i0(BETA);
    let mut coeffs = Vec::with_capacity(taps * phases as usize);
    for p in 0..phases {
        let frac = p as f64 / phases as f64;
        let row: Vec<f64> = (0..taps)
            .map(|j| {
                let t = frac + centre - j as f64;
                let w = (1.0 - (t / half).powi(2)).max(0.0).sqrt();
                sinc(2.0 * cutoff * t) * bessel_i0(BETA * w) / norm
            })
            .collect();
        let sum: f64 = row.iter().sum();
        coeffs.extend(row.iter().map(|&h| h / sum));
    }
    coeffs
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > 1e-12 * sum {
        term *= (x / (2.0 * k)).powi(2);
        sum += term;
        k += 1.0;
    }
    sum
}

/// Fixed-point coefficients with the most fractional bits (at most 15)
/// such that every coefficient fits an i16 and no row's worst-case sum of
/// full-scale samples can overflow the i32 accumulator.
fn quantize(coeffs: &[f64], taps: usize) -> (Vec<i16>, u32) {
    let peak = coeffs.iter().fold(0.0f64, |m, c| m.max(c.abs()));
    let widest = coeffs
        .chunks(taps)
        .map(|row| row.iter().map(|c| c.abs()).sum::<f64>())
        .fold(0.0, f64::max);
    let shift = (1..=15)
        .rev()
        .find(|&s| {
            let scale = f64::from(1u32 << s);
            peak * scale < 32767.0 && (widest * scale + taps as f64) * 32768.0 < i32::MAX as f64
        })
        .unwrap_or(1);
    let scale = f64::from(1u32 << shift);
    (
        coeffs.iter().map(|c| (c * scale).round() as i16).collect(),
        shift,
    )
}

/// Integer multiply-accumulate; rows are whole `LANES` chunks so the
/// compiler vectorises it without a scalar tail.
fn dot(a: &[i16], b: &[i16]) -> i32 {
    a.chunks_exact(LANES)
        .zip(b.chunks_exact(LANES))
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(&x, &y)| i32::from(x) * i32::from(y))
                .sum::<i32>()
        })
        .sum()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::level_db;

    fn sine(freq: f64, rate: u32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / rate as f64;
                (16000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
            })
            .collect()
    }

    /// Resamples one second of `input` in 10 ms frames, checking every
    /// frame's output length, and returns the last half second.
    fn convert(input: &[i16], from: u32, to: u32) -> Vec<i16> {
        let (fin, fout) = (from as usize / 100, to as usize / 100);
        let mut r = Resampler::new(from, to, fin);
        let mut out = Vec::new();
        for frame in input.chunks(fin) {
            let before = out.len();
            r.process(frame, &mut out);
            assert_eq!(out.len() - before, fout, "{from}->{to}");
        }
        out.split_off(out.len() / 2)
    }

    fn keeps_tone(from: u32, to: u32, freq: f64) {
        let out = convert(&sine(freq, from, from as usize), from, to);
        // 16000/32768 of full scale is -6.2 dB.
        let level = level_db(&out, to, freq);
        assert!((level + 6.2).abs() < 0.5, "{from}->{to}: {level} dB");
        assert!(level_db(&out, to, freq * 1.5) < -50.0, "{from}->{to}");
    }

    #[test]
    fn a_1khz_tone_keeps_its_frequency_and_level() {
        for (from, to) in [
            (8000, 48000),
            (48000, 8000),
            (16000, 48000),
            (48000, 16000),
            (44100, 48000),
            (48000, 44100),
            (8000, 16000),
            (8000, 8000),
        ] {
            keeps_tone(from, to, 1000.0);
        }
    }

    #[test]
    fn the_telephone_band_stays_flat() {
        keeps_tone(8000, 48000, 3000.0);
        keeps_tone(48000, 8000, 300.0);
        keeps_tone(48000, 8000, 3000.0);
    }

    #[test]
    fn downsampling_removes_what_would_alias() {
        // 5 kHz cannot exist at 8 kHz; unfiltered it would fold to 3 kHz.
        let out = convert(&sine(5000.0, 48000, 48000), 48000, 8000);
        assert!(level_db(&out, 8000, 3000.0) < -65.0);
        let out = convert(&sine(10000.0, 48000, 48000), 48000, 16000);
        assert!(level_db(&out, 16000, 6000.0) < -65.0);
    }

    #[test]
    fn upsampling_suppresses_images() {
        let out = convert(&sine(3000.0, 8000, 8000), 8000, 48000);
        for image in [5000.0, 11000.0, 13000.0, 19000.0] {
            assert!(level_db(&out, 48000, image) < -65.0, "{image} Hz");
        }
    }

    #[test]
    fn odd_lengths_keep_the_running_total() {
        let mut r = Resampler::new(44100, 48000, 0);
        let mut out = Vec::new();
        let mut fed = 0usize;
        for n in [1, 7, 441, 1000, 3] {
            r.process(&vec![0; n], &mut out);
            fed += n;
            let exact = fed * 48000 / 44100;
            assert!(out.len().abs_diff(exact) <= 1, "{} vs {exact}", out.len());
        }
    }

    #[test]
    fn awkward_ratios_use_a_bounded_table() {
        let mut r = Resampler::new(44100, 8001, 441);
        assert!(r.coeffs.len() <= MAX_PHASES as usize * r.taps);
        let mut out = Vec::new();
        r.process(&sine(1000.0, 44100, 44100), &mut out);
        let level = level_db(&out[4000..], 8001, 1000.0);
        assert!((level + 6.2).abs() < 0.5, "{level} dB");
    }

    #[test]
    fn delay_is_16_samples_of_the_lower_rate_and_reported_exactly() {
        for (from, to, delay) in [(8000, 48000, 96), (48000, 8000, 16), (16000, 48000, 48)] {
            let mut r = Resampler::new(from, to, 0);
            assert_eq!(r.delay(), delay);
            // An impulse comes out `delay` samples late.
            let mut impulse = vec![0i16; from as usize / 50];
            impulse[0] = 30000;
            let mut out = Vec::new();
            r.process(&impulse, &mut out);
            let peak = (0..out.len())
                .max_by_key(|&i| out[i].unsigned_abs())
                .unwrap();
            assert_eq!(peak, delay, "{from}->{to}");
        }
    }
}
