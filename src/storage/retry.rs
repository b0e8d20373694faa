//! When each spooled upload is tried next: at once when new, then after a wait that doubles
//! from `first` up to `max` after each failure. Sans-IO: fed jobs, outcomes and the time;
//! it never drops a job (a job the memory bound leaves out stays in the spool on disk and
//! is read again once the queue has drained).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Entry {
    failures: u32,
    due: Instant,
    running: bool,
}

#[derive(Debug)]
pub struct Retries {
    jobs: BTreeMap<String, Entry>,
    first: Duration,
    max: Duration,
    cap: usize,
    /// Jobs were left out at the cap: read the spool again when the queue drains.
    overflowed: bool,
}

impl Retries {
    pub fn new(first: Duration, max: Duration, cap: usize) -> Self {
        Retries {
            jobs: BTreeMap::new(),
            first,
            max: max.max(first),
            cap,
            overflowed: false,
        }
    }

    /// A new job, due now; false (left on disk) when `cap` jobs are queued already.
    pub fn add(&mut self, job: &str, now: Instant) -> bool {
        if self.jobs.contains_key(job) {
            return true;
        }
        if self.jobs.len() >= self.cap {
            self.overflowed = true;
            return false;
        }
        let entry = Entry {
            failures: 0,
            due: now,
            running: false,
        };
        self.jobs.insert(job.to_string(), entry);
        true
    }

    /// The next job to try now, marked running; `None` if none is due.
    pub fn due(&mut self, now: Instant) -> Option<String> {
        let (job, entry) = self
            .jobs
            .iter_mut()
            .filter(|(_, e)| !e.running && e.due <= now)
            .min_by_key(|(_, e)| e.due)?;
        entry.running = true;
        Some(job.clone())
    }

    pub fn succeeded(&mut self, job: &str) {
        self.jobs.remove(job);
    }

    /// Tried and failed: due again after the doubled wait.
    pub fn failed(&mut self, job: &str, now: Instant) {
        if let Some(e) = self.jobs.get_mut(job) {
            let wait = self
                .first
                .saturating_mul(1u32.checked_shl(e.failures).unwrap_or(u32::MAX));
            e.failures = e.failures.saturating_add(1);
            e.due = now + wait.min(self.max);
            e.running = false;
        }
    }

    /// When the next waiting job is due.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.jobs
            .values()
            .filter(|e| !e.running)
            .map(|e| e.due)
            .min()
    }

    /// True once after the queue drained with jobs left out: read the spool again.
    pub fn rescan(&mut self) -> bool {
        let rescan = self.overflowed && self.jobs.is_empty();
        if rescan {
            self.overflowed = false;
        }
        rescan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn failures_back_off_doubling_up_to_the_max_and_nothing_is_dropped() {
        let t0 = Instant::now();
        let mut r = Retries::new(S, 5 * S, 2);
        assert!(r.add("a", t0));
        assert_eq!(r.due(t0).as_deref(), Some("a"));
        assert_eq!(r.due(t0), None, "running");
        let mut now = t0;
        for wait in [1, 2, 4, 5, 5] {
            r.failed("a", now);
            assert_eq!(r.next_timeout(), Some(now + wait * S));
            assert_eq!(r.due(now + wait * S - Duration::from_millis(1)), None);
            now += wait * S;
            assert_eq!(r.due(now).as_deref(), Some("a"));
        }
        assert!(r.add("b", now));
        assert!(!r.add("c", now), "over the cap: left in the spool");
        assert!(!r.rescan(), "not drained yet");
        r.succeeded("a");
        assert_eq!(r.due(now).as_deref(), Some("b"));
        r.succeeded("b");
        assert!(r.rescan(), "drained: read the spool again");
        assert!(!r.rescan());
        assert_eq!(r.next_timeout(), None);
    }
}
