//! Readiness as a set of latches: staticlet is ready when every latch has been released (or
//! dropped), and stays ready. No code path can report ready early by forgetting a flag, and
//! whoever cares (systemd notification, `/readyz`) is told the moment the last latch goes.

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Clone)]
pub struct Readiness(watch::Receiver<bool>);

/// Held until one start-up step is done.
pub struct Latch(#[allow(dead_code)] Arc<Released>);

/// Dropped with the last latch: that is the moment of readiness.
struct Released(watch::Sender<bool>);

impl Drop for Released {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl Readiness {
    pub fn new() -> (Self, Latch) {
        let (tx, rx) = watch::channel(false);
        (Self(rx), Latch(Arc::new(Released(tx))))
    }

    pub fn is_ready(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once every latch is released.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|ready| *ready).await;
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

    #[tokio::test]
    async fn ready_only_when_every_latch_is_released_and_waiters_are_told() {
        let (readiness, runtime) = Readiness::new();
        let manifests = runtime.fork();
        let waiter = tokio::spawn({
            let readiness = readiness.clone();
            async move { readiness.wait().await }
        });
        assert!(!readiness.is_ready());
        runtime.release();
        assert!(!readiness.is_ready());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        manifests.release();
        assert!(readiness.is_ready());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
    }
}
