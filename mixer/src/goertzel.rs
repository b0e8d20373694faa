//! Goertzel single-frequency power: how tests (and in-band tone checks) tell
//! which frequencies a stream of PCM carries.

/// Normalised power of `freq` in `samples` at `rate`: a full-scale sine at
/// `freq` gives about 0.25, silence gives 0.
pub fn power(samples: &[i16], rate: u32, freq: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let k = 2.0 * (2.0 * std::f64::consts::PI * freq / rate as f64).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x as f64 / 32768.0 + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let n = samples.len() as f64;
    (s1 * s1 + s2 * s2 - k * s1 * s2) / (n * n)
}

/// Level of `freq` in dBFS-like units relative to a full-scale sine (0 dB).
pub fn level_db(samples: &[i16], rate: u32, freq: f64) -> f64 {
    10.0 * (power(samples, rate, freq) / 0.25).max(1e-12).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn finds_the_tone_and_not_others() {
        let s = sine(697.0, 8000, 1600, 16000.0);
        assert!(level_db(&s, 8000, 697.0) > -10.0);
        assert!(level_db(&s, 8000, 1209.0) < -40.0);
    }
}
