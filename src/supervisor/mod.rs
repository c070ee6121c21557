//! Pod supervisors: one task per static pod, each asking the pure `decide::next_action` what to
//! do and carrying it out through `cri`. The `manager` starts and stops them as the desired set
//! changes (its rules are the pure `manager::plan`), serialises versions of one pod, and stops
//! runtime pods nobody wants any more.
//!
//! - `worker`: the per-pod loop (observe, decide, act, publish the typed `status::PodState`);
//! - `act`: carrying out one action through CRI; `stop`: stopping a pod with its grace period;
//! - `lifecycle`: postStart and preStop hooks (`crate::hook`), and stopping a pod past its
//!   activeDeadlineSeconds (`deadline`); `termination`: the terminated state's message;
//! - `decide`, `backoff`, `status`, `deadline`: pure rules, table-tested.

mod act;
pub mod backoff;
pub mod deadline;
pub mod decide;
pub mod events;
mod lifecycle;
pub mod manager;
pub mod status;
mod stop;
pub mod termination;
mod worker;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

pub use manager::Manager;
pub use status::PodState;

use crate::{
    cri::{Observer, SharedCri},
    ops::metrics::Metrics,
};

/// What every supervisor shares.
pub struct Context {
    pub runtime: SharedCri,
    pub observer: Arc<Observer>,
    pub node: String,
    /// The node's InternalIP: a host-network pod's IP, where its probes go by default.
    pub node_ip: String,
    pub pod_logs_dir: PathBuf,
    pub root_dir: PathBuf,
    pub views: Views,
    pub metrics: Arc<Metrics>,
    pub events: events::Events,
}

#[cfg(test)]
impl Context {
    /// A context for unit tests: `runtime` (usually `cri::fake::FakeCri`), node `n`, directories
    /// under `dir`, no API server.
    pub fn for_tests(runtime: SharedCri, dir: &std::path::Path) -> Self {
        Self {
            runtime,
            observer: Observer::new(),
            node: "n".into(),
            node_ip: "127.0.0.1".into(),
            pod_logs_dir: dir.join("logs"),
            root_dir: dir.join("root"),
            views: Views::default(),
            metrics: Arc::new(Metrics::new()),
            events: events::Events::default(),
        }
    }
}

/// The latest view of every supervised pod, by UID, for the local status API and the mirror
/// sync, which subscribes to be told of every change.
#[derive(Clone)]
pub struct Views {
    views: Arc<Mutex<BTreeMap<String, PodState>>>,
    changed: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Views {
    fn default() -> Self {
        Self { views: Default::default(), changed: Arc::new(tokio::sync::watch::channel(0).0) }
    }
}

impl Views {
    pub fn set(&self, view: PodState) {
        let mut views = self.views.lock().expect("views lock");
        if views.get(&view.uid) != Some(&view) {
            views.insert(view.uid.clone(), view);
            self.changed.send_modify(|n| *n += 1);
        }
    }
    pub fn remove(&self, uid: &str) {
        if self.views.lock().expect("views lock").remove(uid).is_some() {
            self.changed.send_modify(|n| *n += 1);
        }
    }
    pub fn all(&self) -> Vec<PodState> {
        self.views.lock().expect("views lock").values().cloned().collect()
    }
    pub fn get(&self, uid: &str) -> Option<PodState> {
        self.views.lock().expect("views lock").get(uid).cloned()
    }
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
