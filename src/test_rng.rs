//! Seeded random inputs for tests: they come out the same on every run, so a failure
//! reproduces.

/// xorshift64 (13, 7, 17) from a nonzero seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value below `n` (> 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A value below `len` as an index (0 when `len` is 0).
    pub fn index(&mut self, len: usize) -> usize {
        (self.next() % len.max(1) as u64) as usize
    }
}

/// [`Rng`] as a source of draws, for code that takes one (weighted picks).
pub fn seeded(seed: u64) -> impl FnMut() -> u64 {
    let mut rng = Rng(seed);
    move || rng.next()
}
