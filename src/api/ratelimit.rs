//! Kazoo-style token buckets, one per auth token: each request spends a token, tokens refill
//! at a steady rate, and an empty bucket answers 429 instead of reaching the control plane.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub struct Buckets {
    burst: f64,
    per_second: f64,
    levels: Mutex<HashMap<String, (f64, Instant)>>,
}

/// The envelope's `tokens` object: what this request cost and what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    pub remaining: u64,
}

impl Buckets {
    pub fn new(burst: u32, per_second: u32) -> Self {
        let levels = Mutex::new(HashMap::new());
        Self {
            burst: f64::from(burst),
            per_second: f64::from(per_second),
            levels,
        }
    }

    /// Spends one token of `token`'s bucket, or `None` when it is empty.
    pub fn take(&self, token: &str, now: Instant) -> Option<Spent> {
        let mut levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        let (level, at) = levels.entry(token.to_owned()).or_insert((self.burst, now));
        let refilled = now.saturating_duration_since(*at).as_secs_f64() * self.per_second;
        *level = (*level + refilled).min(self.burst);
        *at = now;
        if *level < 1.0 {
            return None;
        }
        *level -= 1.0;
        Some(Spent {
            remaining: *level as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn empties_then_refills_at_the_rate() {
        let buckets = Buckets::new(2, 4);
        let t0 = Instant::now();
        assert_eq!(buckets.take("a", t0), Some(Spent { remaining: 1 }));
        assert_eq!(buckets.take("a", t0), Some(Spent { remaining: 0 }));
        assert_eq!(buckets.take("a", t0), None);
        assert!(buckets.take("b", t0).is_some(), "buckets are per token");
        assert!(buckets.take("a", t0 + Duration::from_millis(260)).is_some());
        assert_eq!(buckets.take("a", t0 + Duration::from_millis(260)), None);
    }
}
