//! systemd's watchdog (`WatchdogSec=` in the unit). `WATCHDOG=1` goes out only while the relist
//! loop, the daemon's heartbeat (it goes round every second whatever the pods do), keeps going
//! round: a wedged loop, or a wedged process, stops the pings, and systemd kills and restarts
//! staticlet, which adopts its pods again (`KillMode=process` leaves them running).
//!
//! One pass may rightly wait on the runtime for up to its request timeout, so only a loop stuck
//! for longer than that counts as wedged: restarting staticlet would not make a hung containerd
//! answer, it would only add a restart loop to the outage.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// When the watched loop last started a pass.
#[derive(Debug)]
pub struct Heartbeat {
    epoch: Instant,
    /// Milliseconds from `epoch`: an atomic, so beating costs the loop no lock.
    last: AtomicU64,
}

impl Heartbeat {
    pub fn new() -> Self {
        Self { epoch: Instant::now(), last: AtomicU64::new(0) }
    }

    pub fn beat(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// How long ago the last beat was (or the heartbeat was made).
    pub fn since_last(&self) -> Duration {
        self.epoch.elapsed().saturating_sub(Duration::from_millis(self.last.load(Ordering::Relaxed)))
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

/// How often to ping, if systemd watches this process: half its timeout, as
/// sd_watchdog_enabled(3) advises, so one late tick is not yet a missed deadline.
pub fn period_from_systemd() -> Option<Duration> {
    let mut usec = 0;
    // The environment is left as it is: setting it from a multi-threaded process is unsound,
    // and WATCHDOG_PID already keeps any child from answering for us.
    (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0).then(|| Duration::from_micros(usec) / 2)
}

/// Calls `ping` every `every` while `heartbeat` beat within `stale`; says once when it stops
/// pinging (the last words before systemd's kill) and once when the loop recovers.
pub async fn run(
    heartbeat: Arc<Heartbeat>,
    every: Duration,
    stale: Duration,
    shutdown: CancellationToken,
    mut ping: impl FnMut() + Send,
) {
    let mut tick = tokio::time::interval(every);
    let mut withheld = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let since = heartbeat.since_last();
        if since <= stale {
            if withheld {
                tracing::info!("the relist loop is going round again; watchdog pings resume");
                withheld = false;
            }
            ping();
        } else if !withheld {
            tracing::error!(
                since_last_pass = ?since,
                "the relist loop is stuck; watchdog pings withheld, so systemd restarts staticlet (pods keep running)"
            );
            withheld = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    async fn pings_over(heartbeat: Arc<Heartbeat>, total: Duration, beating: Option<Duration>) -> usize {
        let pings = Arc::new(AtomicUsize::new(0));
        let shutdown = CancellationToken::new();
        let counter = pings.clone();
        let watchdog = tokio::spawn(run(
            heartbeat.clone(),
            Duration::from_secs(5),
            Duration::from_secs(10),
            shutdown.clone(),
            move || {
                counter.fetch_add(1, Ordering::SeqCst);
            },
        ));
        if let Some(period) = beating {
            let (beats, stop) = (heartbeat.clone(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    beats.beat();
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(period) => {}
                    }
                }
            });
        }
        tokio::time::sleep(total).await;
        shutdown.cancel();
        watchdog.await.unwrap();
        pings.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_goes_round_is_pinged_for_every_period() {
        // Ticks at 0, 5, ..., 25 s: six pings in 29 s.
        let pings = pings_over(Arc::new(Heartbeat::new()), Duration::from_secs(29), Some(Duration::from_secs(1))).await;
        assert_eq!(pings, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn pings_stop_once_the_loop_has_not_gone_round_for_longer_than_stale() {
        // One beat at 0 s: the ticks at 0, 5 and 10 s are within 10 s of it; 15, 20 and 25 s are not.
        let heartbeat = Arc::new(Heartbeat::new());
        heartbeat.beat();
        assert_eq!(pings_over(heartbeat.clone(), Duration::from_secs(29), None).await, 3);
        assert!(heartbeat.since_last() >= Duration::from_secs(29));
    }

    #[tokio::test(start_paused = true)]
    async fn pings_resume_when_the_loop_goes_round_again() {
        let heartbeat = Arc::new(Heartbeat::new());
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(heartbeat.since_last() >= Duration::from_secs(60));
        // The tick at 0 s may or may not see the beater's first beat; the ones at 5, 10 and 15 s
        // do. Without the beats there would be none at all.
        assert!(pings_over(heartbeat, Duration::from_secs(19), Some(Duration::from_secs(1))).await >= 3);
    }
}
