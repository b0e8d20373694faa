//! Sample-rate conversion between a member's rate and the conference rate.
//! PLACEHOLDER API: the mixer-dsp branch replaces the body with a rubato-based resampler.

/// Streaming mono resampler for fixed-size frames.
pub struct Resampler {
    from: u32,
    to: u32,
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz, fed frames of `frame_in` samples.
    pub fn new(from: u32, to: u32, frame_in: usize) -> Self {
        let _ = frame_in;
        Resampler { from, to }
    }

    /// Appends exactly `input.len() * to / from` samples to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        let n = input.len() * self.to as usize / self.from as usize;
        out.extend((0..n).map(|i| input[i * input.len() / n]));
    }
}
