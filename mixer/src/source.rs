//! The pull interface every playback (tone, WAV, silence) implements.

/// A stream of mono PCM at a fixed rate, pulled one frame at a time.
pub trait Source: Send {
    /// Writes the next samples into `out` and returns how many were written.
    /// Fewer than `out.len()` means the source has ended.
    fn fill(&mut self, out: &mut [i16]) -> usize;
}
