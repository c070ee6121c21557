//! kubelet's crash-loop back-off (client-go `flowcontrol.Backoff` as kubelet uses it): the first
//! restart is immediate, then 10 s, doubling to 300 s; an entry untouched for twice the maximum
//! (10 minutes) starts over. Monotonic times in, decisions out: no timers here. Not the wall clock,
//! as kubelet's: a step of it (NTP, a resumed VM) would stretch a back-off by the step, or end it.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct Entry {
    delay: Duration,
    last_update: Instant,
}

#[derive(Debug, Clone)]
pub struct CrashBackoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Default for CrashBackoff {
    fn default() -> Self {
        Self::new(INITIAL, MAX)
    }
}

impl CrashBackoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max, entries: HashMap::new() }
    }

    /// When a container that exited at `exited` may be restarted, if that is later than `now`.
    pub fn wait_until(&self, key: &str, exited: Instant, now: Instant) -> Option<Instant> {
        let entry = self.entries.get(key)?;
        if self.expired(exited, entry.last_update) {
            return None;
        }
        let until = exited + entry.delay;
        (now < until).then_some(until)
    }

    /// Records a restart at `now`, lengthening the next wait.
    pub fn record_restart(&mut self, key: &str, now: Instant) {
        let delay = match self.entries.get(key) {
            Some(entry) if !self.expired(now, entry.last_update) => (entry.delay * 2).min(self.max),
            _ => self.initial,
        };
        self.entries.insert(key.to_owned(), Entry { delay, last_update: now });
    }

    fn expired(&self, at: Instant, last_update: Instant) -> bool {
        at.saturating_duration_since(last_update) > self.max * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Instant {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(Instant::now) + Duration::from_secs(secs)
    }

    #[test]
    fn first_restart_is_immediate() {
        assert_eq!(CrashBackoff::default().wait_until("c", at(100), at(100)), None);
    }

    #[test]
    fn first_backoff_is_10_seconds() {
        let mut b = CrashBackoff::default();
        b.record_restart("c", at(100));
        assert_eq!(b.wait_until("c", at(101), at(101)), Some(at(111)));
        assert_eq!(b.wait_until("c", at(101), at(111)), None);
    }

    #[test]
    fn backoff_doubles_each_time() {
        let mut b = CrashBackoff::default();
        let mut delays = vec![];
        for i in 0..5 {
            b.record_restart("c", at(1000 + i));
            delays.push(b.wait_until("c", at(1000 + i), at(1000 + i)).unwrap().duration_since(at(1000 + i)));
        }
        assert_eq!(delays, [10, 20, 40, 80, 160].map(Duration::from_secs));
    }

    #[test]
    fn backoff_is_capped_at_5_minutes() {
        let mut b = CrashBackoff::default();
        for i in 0..10 {
            b.record_restart("c", at(1000 + i));
        }
        assert_eq!(b.wait_until("c", at(1010), at(1010)), Some(at(1310)));
    }

    #[test]
    fn backoff_resets_after_10_minutes_without_a_crash() {
        let mut b = CrashBackoff::default();
        for i in 0..4 {
            b.record_restart("c", at(1000 + i));
        }
        // The last restart was at 1003; 601 s later the history is forgotten.
        assert_eq!(b.wait_until("c", at(1604), at(1604)), None);
        b.record_restart("c", at(1605));
        assert_eq!(b.wait_until("c", at(1606), at(1606)), Some(at(1616)));
    }

    #[test]
    fn containers_back_off_independently() {
        let mut b = CrashBackoff::default();
        b.record_restart("a", at(0));
        assert_eq!(b.wait_until("b", at(1), at(1)), None);
    }
}
