//! Readiness as a set of latches: staticlet is ready when every latch has been released (or
//! dropped), and stays ready. No code path can report ready early by forgetting a flag.

use std::sync::{Arc, Weak};

#[derive(Clone)]
pub struct Readiness(Weak<()>);

/// Held until one start-up step is done.
pub struct Latch(#[allow(dead_code)] Arc<()>);

impl Readiness {
    pub fn new() -> (Self, Latch) {
        let latch = Arc::new(());
        (Self(Arc::downgrade(&latch)), Latch(latch))
    }

    pub fn is_ready(&self) -> bool {
        self.0.strong_count() == 0
    }
}

impl Latch {
    /// Another step that must finish before ready.
    pub fn fork(&self) -> Latch {
        Latch(self.0.clone())
    }
    pub fn release(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_latch_is_released() {
        let (readiness, runtime) = Readiness::new();
        let manifests = runtime.fork();
        assert!(!readiness.is_ready());
        runtime.release();
        assert!(!readiness.is_ready());
        manifests.release();
        assert!(readiness.is_ready());
    }
}
