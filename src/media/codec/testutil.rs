//! Signals and measures shared by the codec tests.

/// A sine of `freq` Hz, `n` samples at `rate`, peak `amp`.
pub fn tone(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<i16> {
    (0..n)
        .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16)
        .collect()
}

/// Signal-to-noise ratio of `out` against `reference` in dB (same length, aligned).
pub fn snr_db(reference: &[i16], out: &[i16]) -> f64 {
    let (mut sig, mut noise) = (0.0f64, 0.0f64);
    for (&r, &o) in reference.iter().zip(out) {
        sig += (r as f64).powi(2);
        noise += (r as f64 - o as f64).powi(2);
    }
    10.0 * (sig / noise.max(1.0)).log10()
}

/// The largest step between neighbouring samples (a click shows as a big one).
pub fn max_step(x: &[i16]) -> i32 {
    x.windows(2)
        .map(|w| (w[1] as i32 - w[0] as i32).abs())
        .max()
        .unwrap_or(0)
}
