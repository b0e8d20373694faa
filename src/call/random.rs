//! Random numbers for ids (SSRCs, SDP session ids, Call-IDs) and weighted picks: not
//! secrets, only unlikely to repeat.

use std::hash::BuildHasher;

/// A random 64-bit value from the hasher's per-process random keys.
pub fn random() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::collections::hash_map::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}
