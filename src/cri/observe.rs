//! The relister: one task lists this node's sandboxes and containers (two RPCs) every period, or
//! at once when a supervisor (or a container event) asks, and publishes the result. Debian's
//! containerd 1.6 has no container events, so polling is the baseline; one shared relist keeps the
//! cost independent of the number of pods. While `events::follow` follows the runtime's events,
//! the period is the safety net's (`events::EVENTED_RELIST_PERIOD`) instead.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::{ops::watchdog::Heartbeat, retry::LogOnce};

use super::{
    Cri,
    events::EVENTED_RELIST_PERIOD,
    labels,
    model::{RuntimePod, RuntimeSnapshot, group},
};

pub struct Observer {
    snapshots: watch::Sender<Arc<RuntimeSnapshot>>,
    requested: AtomicU64,
    wake: Notify,
    /// Beats at the start of every pass, and every period while it waits longer (with events):
    /// systemd's watchdog is pinged only while it does.
    heartbeat: Arc<Heartbeat>,
    /// Container events are followed: listings wait for them, or for the safety net.
    evented: AtomicBool,
}

impl Observer {
    pub fn new() -> Arc<Self> {
        let (snapshots, _) = watch::channel(Arc::new(RuntimeSnapshot::default()));
        Arc::new(Self {
            snapshots,
            requested: AtomicU64::new(0),
            wake: Notify::new(),
            heartbeat: Default::default(),
            evented: AtomicBool::new(false),
        })
    }

    /// The relist loop's heartbeat (see `ops::watchdog`).
    pub fn heartbeat(&self) -> Arc<Heartbeat> {
        self.heartbeat.clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<RuntimeSnapshot>> {
        self.snapshots.subscribe()
    }

    pub fn latest(&self) -> Arc<RuntimeSnapshot> {
        self.snapshots.borrow().clone()
    }

    /// Switches between the normal period (false) and the safety net's (true); see `events`.
    pub fn set_evented(&self, evented: bool) {
        if self.evented.swap(evented, Ordering::SeqCst) != evented {
            self.wake.notify_one();
        }
    }

    pub fn is_evented(&self) -> bool {
        self.evented.load(Ordering::SeqCst)
    }

    /// Asks for a relist without waiting for it (e.g. a container was just seen to exit).
    pub fn poke(&self) {
        self.requested.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Asks for a relist and waits for a listing that started after this call, so it reflects
    /// every action the caller finished before calling.
    pub async fn fresh(&self) -> Arc<RuntimeSnapshot> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut rx = self.snapshots.subscribe();
        self.wake.notify_one();
        match rx.wait_for(|s| s.covers >= ticket).await {
            Ok(snapshot) => snapshot.clone(),
            Err(_) => self.latest(), // observer gone: shutting down
        }
    }

    pub async fn run(
        self: Arc<Self>,
        runtime: super::SharedCri,
        node: String,
        period: Duration,
        shutdown: CancellationToken,
    ) {
        let mut failure = LogOnce::default();
        loop {
            self.heartbeat.beat();
            let covers = self.requested.load(Ordering::SeqCst);
            let evented = self.is_evented();
            let result = list(runtime.as_ref(), &node).await;
            let previous = self.latest();
            let snapshot = match result {
                Ok(pods) => {
                    if failure.recovered() {
                        tracing::info!(endpoint = runtime.endpoint(), "container runtime is reachable again");
                    }
                    RuntimeSnapshot { covers, listed: true, error: None, evented, pods }
                }
                Err(e) => {
                    let message = e.to_string();
                    if failure.failed(message.as_str()) {
                        tracing::warn!(error = %message, "container runtime unavailable; pods keep running, retrying");
                    }
                    RuntimeSnapshot {
                        covers,
                        listed: previous.listed,
                        error: Some(message),
                        evented,
                        pods: previous.pods.clone(),
                    }
                }
            };
            // Subscribers wake only for news: a change, or an answer to a refresh request. An
            // idle node's once-a-second relist then costs two RPCs and no work anywhere else.
            let news = snapshot.covers != previous.covers
                || snapshot.listed != previous.listed
                || snapshot.error != previous.error
                || snapshot.evented != previous.evented
                || snapshot.pods != previous.pods;
            self.snapshots.send_if_modified(|current| {
                *current = Arc::new(snapshot);
                news
            });
            // A failing runtime is retried at the normal period: the listing is cheap and
            // converging quickly when containerd returns matters more than the few calls.
            let listed_at = tokio::time::Instant::now();
            loop {
                let due = listed_at + self.period(period);
                let now = tokio::time::Instant::now();
                if now >= due {
                    break;
                }
                // Waiting for the safety net, the loop still beats every period.
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(due.min(now + period)) => self.heartbeat.beat(),
                    _ = self.wake.notified() => break,
                }
            }
        }
    }

    /// The wait between two listings nobody asked for.
    fn period(&self, normal: Duration) -> Duration {
        if self.is_evented() { EVENTED_RELIST_PERIOD } else { normal }
    }
}

/// One listing of this node's pods, as each relist makes it (two RPCs).
pub async fn list(runtime: &dyn Cri, node: &str) -> Result<BTreeMap<String, RuntimePod>, super::CriError> {
    let scope = [(labels::NODE, node)];
    let (sandboxes, containers) = tokio::try_join!(runtime.list_sandboxes(&scope), runtime.list_containers(&scope))?;
    Ok(group(sandboxes, containers))
}
