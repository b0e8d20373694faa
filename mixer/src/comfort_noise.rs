//! Comfort noise, FreeSWITCH style: white noise spanning the 16-bit range
//! divided by the profile's `comfort-noise` divisor (higher is quieter,
//! 1000 is Kazoo's default, 0 is off). Its RMS is about 18900 / divisor.

/// A cheap xorshift noise generator; deterministic per seed.
#[derive(Debug, Clone)]
pub struct ComfortNoise {
    state: u32,
}

impl ComfortNoise {
    pub fn new(seed: u32) -> Self {
        ComfortNoise { state: seed | 1 }
    }

    /// Fills `out` with noise for `divisor`; silence when it is 0.
    pub fn fill(&mut self, divisor: u32, out: &mut [i16]) {
        if divisor == 0 {
            out.fill(0);
            return;
        }
        let d = divisor as i32;
        for s in out.iter_mut() {
            let mut x = self.state;
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            self.state = x;
            *s = ((x >> 16) as u16 as i16 as i32 / d) as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(s: &[i16]) -> f64 {
        (s.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
    }

    #[test]
    fn level_follows_the_divisor() {
        let mut cn = ComfortNoise::new(42);
        let mut buf = vec![0; 48000];
        for d in [10, 100, 1000] {
            cn.fill(d, &mut buf);
            let expect = 18918.0 / d as f64;
            let got = rms(&buf);
            assert!(
                (got / expect - 1.0).abs() < 0.1,
                "divisor {d}: {got} vs {expect}"
            );
        }
        cn.fill(0, &mut buf);
        assert_eq!(rms(&buf), 0.0);
    }
}
