//! Manifest sources. Each yields whole snapshots (level-triggered); `run` merges them into the
//! desired set and publishes it, logging each manifest problem once, when it first appears.

pub mod dir;
mod trust;
pub mod url;

use std::{collections::BTreeMap, sync::Arc};

use tokio::sync::{mpsc, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::Config,
    desired::{Desired, SourceSnapshot, merge},
    manifest::SourceKind,
    ops::metrics::Metrics,
    pod_security::Policy,
};

/// Starts the configured sources and the merge; returns the desired set as it evolves. The sources
/// count their scans and polls in `metrics`.
pub fn spawn(
    config: &Config,
    metrics: &Metrics,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> watch::Receiver<Arc<Desired>> {
    let (snapshot_tx, mut snapshot_rx) = mpsc::channel::<SourceSnapshot>(16);
    if let Some(path) = &config.static_pod_path {
        let source = dir::DirSource::new(
            path.clone(),
            config.node_name.clone(),
            config.file_check_frequency,
            config.static_pod_path_strict_modes,
            metrics.manifest_dir_scans.clone(),
        );
        tracker.spawn(source.run(snapshot_tx.clone(), shutdown.clone()));
    }
    if let Some(url) = &config.static_pod_url {
        let source = url::UrlSource::new(
            url.clone(),
            config.static_pod_url_header.clone(),
            config.node_name.clone(),
            config.http_check_frequency,
            metrics.manifest_url_polls.clone(),
        );
        tracker.spawn(source.run(snapshot_tx.clone(), shutdown.clone()));
    }
    drop(snapshot_tx);

    let (desired_tx, desired_rx) = watch::channel(Arc::new(Desired::default()));
    let shutdown = shutdown.clone();
    let policy = Policy::from_config(config);
    tracker.spawn(async move {
        let mut snapshots: BTreeMap<SourceKind, SourceSnapshot> = BTreeMap::new();
        // Pod Security warnings in force, by source, each logged once, when it first appears.
        let mut warned: BTreeMap<SourceKind, Vec<String>> = BTreeMap::new();
        loop {
            let snapshot = tokio::select! {
                _ = shutdown.cancelled() => return,
                s = snapshot_rx.recv() => match s { Some(s) => s, None => return },
            };
            let (snapshot, warnings) = policy.admit(snapshot);
            let before = warned.get(&snapshot.kind).map(Vec::as_slice).unwrap_or_default();
            for warning in warnings.iter().filter(|w| !before.contains(w)) {
                tracing::warn!("{warning}");
            }
            warned.insert(snapshot.kind, warnings);
            snapshots.insert(snapshot.kind, snapshot);
            let previous = desired_tx.borrow().clone();
            let next = merge(&previous, &snapshots, jiff::Timestamp::now());
            for error in next.errors.iter().filter(|e| !previous.errors.contains(e)) {
                tracing::error!(location = error.location(), "{error}");
            }
            for fixed in previous.errors.iter().filter(|e| !next.errors.contains(e)) {
                tracing::info!(location = fixed.location(), "manifest problem resolved");
            }
            if *previous != next {
                desired_tx.send_replace(Arc::new(next));
            }
        }
    });
    desired_rx
}
