//! Signals and measures shared by the codec tests.

/// A sine of `freq` Hz, `n` samples at `rate`, peak `amp`.
pub fn tone(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<i16> {
    (0..n)
        .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16)
        .collect()
}

/// A voice-like second at `rate`: harmonics of a pitch gliding 120 -> 220 Hz, syllables
/// at 4 Hz.
pub fn voice(rate: u32) -> Vec<i16> {
    let mut phase = 0.0f64;
    (0..rate as usize)
        .map(|i| {
            let t = i as f64 / rate as f64;
            phase += 2.0 * std::f64::consts::PI * (120.0 + 100.0 * t) / rate as f64;
            let syllable = (std::f64::consts::PI * 4.0 * t).sin().abs();
            let voiced: f64 = (1..=12).map(|h| (phase * h as f64).sin() / h as f64).sum();
            (6000.0 * syllable * voiced) as i16
        })
        .collect()
}

/// Mean SNR of Opus frames lost and rebuilt from the next packet's in-band FEC, against
/// the same frames decoded without loss (48 kHz, 20 ms `packets`, at least 46 of them).
pub fn fec_rebuilt_snr(packets: &[Vec<u8>]) -> f64 {
    use super::Decoder;
    use super::opus::OpusDecoder;
    let snrs: Vec<f64> = (10..45)
        .step_by(5)
        .map(|k| {
            let (mut whole, mut gap) = (
                OpusDecoder::new(48000).unwrap(),
                OpusDecoder::new(48000).unwrap(),
            );
            let (mut reference, mut rebuilt) = (Vec::new(), Vec::new());
            for p in &packets[..k] {
                gap.decode(p, &mut Vec::new());
                whole.decode(p, &mut Vec::new());
            }
            whole.decode(&packets[k], &mut reference);
            gap.recover(&packets[k + 1], 1, 960, &mut rebuilt);
            snr_db(&reference, &rebuilt)
        })
        .collect();
    snrs.iter().sum::<f64>() / snrs.len() as f64
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
