//! Gives the heap's free pages back to the kernel. glibc's malloc keeps what a burst freed (a
//! hundred pods started at once, a node's listings decoded) inside its arenas, and returns only
//! a free top of the heap by itself; the pages freed in the middle stay counted in the daemon's
//! RSS for good. Measured with 100 pods on containerd 2: 7.5 MiB anonymous memory before a trim,
//! 5.7 MiB after (docs/ARCHITECTURE.md, "Memory"). A trim walks the free lists once; once a minute
//! it costs nothing measurable at rest.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub const TRIM_EVERY: Duration = Duration::from_secs(60);

/// Trims the heap every `every` until shutdown.
pub async fn trim_every(every: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is at once, when there is nothing to give back yet
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let released = trim();
        tracing::trace!(released, "heap trimmed");
    }
}

/// Returns the free pages of every malloc arena to the kernel; true if any were.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> bool {
    // malloc_trim takes no pointer and touches only the allocator's own state, which it locks.
    #[allow(unsafe_code)]
    let released = unsafe { libc::malloc_trim(0) };
    released == 1
}

/// Other allocators (musl's) give memory back on their own, or have no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn pages_freed_below_the_top_of_the_heap_are_given_back() {
        // Small blocks, then all freed but the newest, which pins the top of the heap: only a
        // trim can return the pages under it.
        let mut blocks: Vec<Box<[u8; 512]>> = (0..40_000).map(|_| Box::new([1u8; 512])).collect();
        let top = blocks.pop();
        drop(blocks);
        assert!(trim(), "20 MB freed under a live block is given back");
        drop(top);
    }
}
