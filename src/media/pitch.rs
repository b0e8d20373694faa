//! Pitch-period search by normalized cross-correlation, shared by loss concealment (which
//! repeats the last period) and time-scale modification (which adds or removes one).
//!
//! Lags are searched on every `rate / 8000`-th sample first (a coarse pass at telephone
//! resolution), then refined at full rate around the best coarse lag, so 48 kHz costs about
//! what 8 kHz does.

/// Normalized cross-correlation of `x[a..a + w]` and `x[a + lag..a + lag + w]`, every
/// `step`-th sample; 0 when either part is silent.
fn ncc(x: &[i16], a: usize, lag: usize, w: usize, step: usize) -> f32 {
    let (mut xy, mut xx, mut yy) = (0i64, 0i64, 0i64);
    for i in (a..a + w).step_by(step) {
        let (p, q) = (x[i] as i64, x[i + lag] as i64);
        xy += p * q;
        xx += p * p;
        yy += q * q;
    }
    if xx == 0 || yy == 0 {
        return 0.0;
    }
    (xy as f64 / ((xx as f64) * (yy as f64)).sqrt()) as f32
}

/// The lag in `lags` whose segments best match, with its correlation (-1..=1). `segment`
/// gives, for a lag, where the earlier segment starts and how long both are; every
/// segment must lie inside `x`.
pub fn best_lag(
    x: &[i16],
    lags: std::ops::RangeInclusive<usize>,
    rate: u32,
    segment: impl Fn(usize) -> (usize, usize),
) -> Option<(usize, f32)> {
    let step = (rate / 8000).max(1) as usize;
    let score = |lag: usize, step: usize| {
        let (a, w) = segment(lag);
        ncc(x, a, lag, w, step)
    };
    let (lo, hi) = (*lags.start(), *lags.end());
    if lo > hi || lo == 0 {
        return None;
    }
    let curve: Vec<(usize, f32)> = (lo..=hi)
        .step_by(step)
        .map(|lag| (lag, score(lag, step)))
        .collect();
    let best = curve.iter().map(|c| c.1).fold(f32::MIN, f32::max);
    // The shortest period: the first peak nearly as good as the best (multiples of the
    // period match as well).
    let peak = |i: usize| {
        let c = curve[i].1;
        (i == 0 || curve[i - 1].1 <= c) && curve.get(i + 1).is_none_or(|n| n.1 <= c)
    };
    let coarse = *(0..curve.len())
        .find(|&i| peak(i) && curve[i].1 >= best - 0.05)
        .map(|i| &curve[i])?;
    let fine_lo = coarse.0.saturating_sub(step).max(lo);
    let fine_hi = (coarse.0 + step).min(hi);
    (fine_lo..=fine_hi)
        .map(|lag| (lag, score(lag, 1)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Samples in `ms` milliseconds at `rate` (fractions allowed, e.g. 2.5 ms).
pub fn samples(rate: u32, ms: f32) -> usize {
    (rate as f32 * ms / 1000.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buzzy vowel-like wave: harmonics of `f0`.
    fn voiced(f0: f64, rate: u32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / rate as f64;
                let s: f64 = (1..6)
                    .map(|h| (std::f64::consts::TAU * f0 * h as f64 * t).sin() / h as f64)
                    .sum();
                (s * 6000.0) as i16
            })
            .collect()
    }

    #[test]
    fn finds_the_period_at_every_rate() {
        for rate in [8000u32, 16000, 48000] {
            let x = voiced(125.0, rate, rate as usize / 10);
            let (min, max) = (samples(rate, 2.5), samples(rate, 15.0));
            let w = samples(rate, 20.0);
            let end = x.len() - w;
            let (lag, corr) = best_lag(&x, min..=max, rate, |lag| (end - lag, w)).unwrap();
            let period = rate as usize / 125;
            assert!(lag.abs_diff(period) <= 1, "{rate}: {lag} vs {period}");
            assert!(corr > 0.99, "{corr}");
        }
    }

    #[test]
    fn silence_and_empty_ranges_have_no_period() {
        let x = vec![0i16; 800];
        assert_eq!(best_lag(&x, 20..=120, 8000, |lag| (0, lag)).unwrap().1, 0.0);
        let (lo, hi) = (30, 20);
        assert!(best_lag(&x, lo..=hi, 8000, |lag| (0, lag)).is_none());
    }
}
