//! At most one log line per interval for an event that can repeat thousands of times a second
//! (accept failures, refused connections, refused requests): the line carries the count.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LogLimit {
    every: Duration,
    next: Option<Instant>,
    count: u64,
}

impl LogLimit {
    pub fn new(every: Duration) -> Self {
        LogLimit {
            every,
            next: None,
            count: 0,
        }
    }

    /// Counts `n` events; when a line is due, returns how many it stands for (the events
    /// since the last line) and starts a new interval.
    pub fn count(&mut self, now: Instant, n: u64) -> Option<u64> {
        self.count += n;
        if self.next.is_some_and(|at| now < at) {
            return None;
        }
        self.next = Some(now + self.every);
        Some(std::mem::take(&mut self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_carrying_the_count() {
        let mut log = LogLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(log.count(t0, 1), Some(1), "the first one is logged at once");
        let lines = (1..=200_000u64)
            .filter_map(|i| log.count(t0 + Duration::from_micros(i * 50), 1))
            .collect::<Vec<_>>();
        assert_eq!(lines, [200_000], "10 s of 20,000 a second: one line");
        assert_eq!(log.count(t0 + Duration::from_secs(25), 3), Some(3));
    }
}
