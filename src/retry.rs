//! Two small habits every retry loop in staticlet shares: waits that double up to a cap, and a
//! failure logged once until its message changes, so a runtime or API server that is down for an
//! hour costs one log line, not one per attempt, and its return is logged once too.

use std::time::Duration;

/// A wait that starts at `min` and doubles after every failure, up to `max`.
#[derive(Debug, Clone)]
pub struct Doubling {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Doubling {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, next: min }
    }

    /// The wait before the next attempt; the one after it is twice as long (capped).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// After a success: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Remembers the last failure so that it is reported only when it first appears or changes.
#[derive(Debug, Clone, Default)]
pub struct LogOnce {
    last: Option<String>,
}

impl LogOnce {
    /// Records a failure; true when it is news (first, or a different message) and should be logged.
    pub fn failed(&mut self, message: impl Into<String>) -> bool {
        let message = message.into();
        let news = self.last.as_deref() != Some(message.as_str());
        self.last = Some(message);
        news
    }

    /// Records a success; true when it ends a failure (worth one "back again" line).
    pub fn recovered(&mut self) -> bool {
        self.last.take().is_some()
    }

    /// The failure being remembered, if any.
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }

    pub fn is_failing(&self) -> bool {
        self.last.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_reset_after_success() {
        let mut wait = Doubling::new(Duration::from_secs(1), Duration::from_secs(5));
        let waits: Vec<u64> = (0..5).map(|_| wait.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        wait.reset();
        assert_eq!(wait.next_wait(), Duration::from_secs(1));
    }

    #[test]
    fn a_failure_is_news_once_until_it_changes_and_its_end_is_news_once() {
        let mut log = LogOnce::default();
        assert!(!log.recovered());
        assert!(log.failed("socket missing"));
        assert!(!log.failed("socket missing"));
        assert!(log.failed("connection refused"));
        assert_eq!(log.last(), Some("connection refused"));
        assert!(log.recovered());
        assert!(!log.recovered());
        assert!(log.failed("connection refused"), "the same failure after a recovery is news again");
    }
}
