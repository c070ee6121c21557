//! Pod supervisors: one task per static pod, each asking the pure `decide::next_action` what to
//! do and carrying it out through `cri`. The `manager` starts and stops them as the desired set
//! changes, serialises versions of one pod, and stops runtime pods nobody wants any more.

pub mod backoff;
pub mod decide;
mod manager;
pub mod status;
mod worker;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

pub use manager::Manager;
pub use status::PodView;

use crate::{cri::{Observer, Runtime}, ops::metrics::Metrics};

/// What every supervisor shares.
pub struct Context {
    pub runtime: Runtime,
    pub observer: Arc<Observer>,
    pub node: String,
    pub pod_logs_dir: PathBuf,
    pub root_dir: PathBuf,
    pub views: Views,
    pub metrics: Arc<Metrics>,
}

/// The latest view of every supervised pod, by UID, for the local status API.
#[derive(Clone, Default)]
pub struct Views(Arc<Mutex<BTreeMap<String, PodView>>>);

impl Views {
    pub fn set(&self, view: PodView) {
        self.0.lock().expect("views lock").insert(view.uid.clone(), view);
    }
    pub fn remove(&self, uid: &str) {
        self.0.lock().expect("views lock").remove(uid);
    }
    pub fn all(&self) -> Vec<PodView> {
        self.0.lock().expect("views lock").values().cloned().collect()
    }
}
