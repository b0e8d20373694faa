//! Time-scale modification of queued PCM: audio added or removed without a step, as WebRTC
//! NetEq's accelerate and preemptive expand do. In speech exactly one pitch period is
//! removed or repeated, overlap-added over the whole period, and only where two
//! neighbouring periods match well enough that the seam cannot be heard. In quiet audio
//! any length goes, with a 1 ms crossfade.
//!
//! Every function works on a buffer whose samples before `from` have already been played:
//! they may be read (as the period to repeat) but are never changed.

use crate::media::pitch;

/// Correlation two neighbouring periods need before one is removed or repeated.
const VOICED: f32 = 0.8;
const PERIOD_MIN_MS: f32 = 2.5;
pub const PERIOD_MAX_MS: f32 = 15.0;
/// Mean |sample| below which a stretch of audio counts as quiet (about -55 dBFS).
const QUIET: u32 = 48;

/// Whether `x` is quiet enough to cut or pad at will.
pub fn is_quiet(x: &[i16]) -> bool {
    let sum: u64 = x.iter().map(|s| s.unsigned_abs() as u64).sum();
    sum < QUIET as u64 * x.len().max(1) as u64
}

fn crossfade(from: i16, to: i16, j: usize, len: usize) -> i16 {
    let w = (j + 1) as f32 / (len + 1) as f32;
    (from as f32 * (1.0 - w) + to as f32 * w) as i16
}

/// `x[..at] ++ fade(x[at..at+fade] -> x[at+count..]) ++ x[at+count+fade..]`: `count` fewer.
fn remove(buf: &mut Vec<i16>, at: usize, count: usize, fade: usize) {
    for j in 0..fade {
        buf[at + count + j] = crossfade(buf[at + j], buf[at + count + j], j, fade);
    }
    buf.drain(at..at + count);
}

/// `x[..at+count] ++ fade(x[at+count..] -> x[at..at+fade]) ++ x[at+fade..]`: the `count`
/// samples from `at` play twice; nothing before `at + count` changes.
fn insert(buf: &mut Vec<i16>, at: usize, count: usize, fade: usize) {
    let seam: Vec<i16> = (0..fade)
        .map(|j| crossfade(buf[at + count + j], buf[at + j], j, fade))
        .collect();
    let tail: Vec<i16> = buf[at + fade..].to_vec();
    buf.truncate(at + count);
    buf.extend_from_slice(&seam);
    buf.extend_from_slice(&tail);
}

/// Removes up to `count` quiet samples after `from`; returns how many.
pub fn cut_quiet(buf: &mut Vec<i16>, from: usize, count: usize, rate: u32) -> usize {
    let fade = pitch::samples(rate, 1.0);
    let count = count.min(buf.len().saturating_sub(from + fade));
    if count > 0 {
        remove(buf, from, count, fade);
    }
    count
}

/// Adds `count` samples near the end of the queue by repeating the quiet audio from `from`
/// on (silence when there is too little of it).
pub fn pad_quiet(buf: &mut Vec<i16>, from: usize, count: usize, rate: u32) {
    let fade = pitch::samples(rate, 1.0);
    let mut at = buf.len().saturating_sub(fade).max(from);
    let mut left = count;
    while left > 0 {
        let n = left.min(at - from);
        if n <= fade {
            buf.splice(at..at, std::iter::repeat_n(0, left));
            return;
        }
        insert(buf, at - n, n, fade);
        at += n;
        left -= n;
    }
}

fn lags(rate: u32, max: usize) -> std::ops::RangeInclusive<usize> {
    let max = max.min(pitch::samples(rate, PERIOD_MAX_MS));
    pitch::samples(rate, PERIOD_MIN_MS)..=max
}

/// Removes one pitch period right after `from` if the next two periods match; returns
/// the samples removed (0 when the audio there is not periodic).
pub fn accelerate(buf: &mut Vec<i16>, from: usize, rate: u32) -> usize {
    let avail = buf.len().saturating_sub(from);
    match pitch::best_lag(buf, lags(rate, avail / 2), rate, |lag| (from, lag)) {
        Some((p, corr)) if corr >= VOICED => {
            remove(buf, from, p, p);
            p
        }
        _ => 0,
    }
}

/// Repeats one pitch period at `from` if the period before it matches the one after;
/// returns the samples added (0 when the audio there is not periodic).
pub fn expand(buf: &mut Vec<i16>, from: usize, rate: u32) -> usize {
    let max = from.min(buf.len().saturating_sub(from));
    match pitch::best_lag(buf, lags(rate, max), rate, |lag| (from - lag, lag)) {
        Some((p, corr)) if corr >= VOICED => {
            insert(buf, from - p, p, p);
            p
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::testutil::{max_step, tone};

    #[test]
    fn a_period_goes_or_comes_without_a_step_and_the_past_stays() {
        for rate in [8000u32, 16000, 48000] {
            let x = tone(160.0, rate, rate as usize / 20, 10000.0);
            let limit = (std::f64::consts::TAU * 160.0 / rate as f64 * 10000.0 * 1.05) as i32;
            let from = rate as usize / 100;
            let period = rate as usize / 160;
            let mut a = x.clone();
            assert_eq!(accelerate(&mut a, from, rate), period, "{rate}");
            assert_eq!(a.len(), x.len() - period);
            let mut e = x.clone();
            assert_eq!(expand(&mut e, from, rate), period, "{rate}");
            assert_eq!(e.len(), x.len() + period);
            for y in [&a, &e] {
                assert_eq!(&y[..from], &x[..from]);
                assert!(max_step(y) <= limit, "{rate}: {} > {limit}", max_step(y));
            }
        }
    }

    #[test]
    fn noise_is_not_stretched_but_quiet_audio_is_cut_and_padded() {
        let mut seed = 1u32;
        let noise: Vec<i16> = (0..800)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 16) as i16
            })
            .collect();
        let mut n = noise.clone();
        assert_eq!(
            (accelerate(&mut n, 100, 8000), expand(&mut n, 100, 8000)),
            (0, 0)
        );
        assert!(!is_quiet(&noise));
        let quiet: Vec<i16> = noise.iter().map(|s| s / 2000).collect();
        assert!(is_quiet(&quiet));
        let mut q = quiet.clone();
        assert_eq!(cut_quiet(&mut q, 100, 300, 8000), 300);
        assert_eq!(&q[..100], &quiet[..100]);
        pad_quiet(&mut q, 100, 250, 8000);
        assert_eq!(q.len(), 750);
        assert_eq!(&q[..100], &quiet[..100]);
        assert!(is_quiet(&q) && max_step(&q) < 40);
    }
}
