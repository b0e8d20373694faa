//! Gives freed heap memory back to the OS once load goes away. glibc keeps what a burst freed
//! inside its arenas (it returns only the free top of each heap), so after a flood of calls
//! the peak would stay resident for good. The bytes in use are sampled every [`EVERY`]; when
//! they have fallen [`DROP`] below their peak since the last trim, `malloc_trim` hands the
//! free pages back. Measured in tests/attack_sip.rs (docs/security.md has the figures).

use std::time::Duration;

const EVERY: Duration = Duration::from_secs(2);
const DROP: usize = 1 << 20;

/// Starts the sampling on the current tokio runtime (glibc only; elsewhere nothing).
pub fn spawn_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        let mut peak = 0;
        loop {
            tokio::time::sleep(EVERY).await;
            // SAFETY: mallinfo2 and malloc_trim only read and adjust the allocator's state.
            let in_use = unsafe { libc::mallinfo2() }.uordblks;
            peak = peak.max(in_use);
            if in_use + DROP < peak {
                let returned = unsafe { libc::malloc_trim(0) } == 1;
                tracing::debug!(peak, in_use, returned, "heap trimmed");
                peak = in_use;
            }
        }
    });
}
