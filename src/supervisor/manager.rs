//! Starts, replaces and stops pod supervisors as the desired set changes.
//!
//! Rules (kubelet's, minus its API-server gate):
//! - one supervisor per wanted pod; a changed manifest (new UID or content hash) stops the old
//!   version first, and the new version starts only when the old one is gone, so two versions
//!   never fight over ports or files;
//! - a runtime pod no manifest wants is stopped, but only once its source has reported at least
//!   once and only if its manifest is not merely broken: a slow URL or a typo never kills a pod.

use std::{collections::BTreeSet, sync::Arc};

use tokio::sync::{mpsc, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{Context, worker};
use crate::{
    cri::{RuntimeSnapshot, labels},
    desired::Desired,
    manifest::{Origin, SourceKind},
};

struct Handle {
    id: u64,
    full_name: String,
    uid: String,
    /// None for a supervisor that only stops an orphan.
    config_hash: Option<String>,
    terminate: CancellationToken,
}

pub struct Manager {
    ctx: Arc<Context>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    handles: Vec<Handle>,
    next_id: u64,
    done_tx: mpsc::UnboundedSender<u64>,
    done_rx: mpsc::UnboundedReceiver<u64>,
}

impl Manager {
    pub fn new(ctx: Arc<Context>, tracker: TaskTracker, shutdown: CancellationToken) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self { ctx, tracker, shutdown, handles: Vec::new(), next_id: 0, done_tx, done_rx }
    }

    pub async fn run(mut self, mut desired: watch::Receiver<Arc<Desired>>) {
        let mut snapshots = self.ctx.observer.subscribe();
        loop {
            let current = desired.borrow_and_update().clone();
            let snapshot = snapshots.borrow_and_update().clone();
            self.reconcile(&current, &snapshot);
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                changed = desired.changed() => if changed.is_err() { return },
                changed = snapshots.changed() => if changed.is_err() { return },
                Some(id) = self.done_rx.recv() => self.handles.retain(|h| h.id != id),
            }
        }
    }

    fn reconcile(&mut self, desired: &Desired, snapshot: &RuntimeSnapshot) {
        for handle in self.handles.iter().filter(|h| !h.terminate.is_cancelled()) {
            let wanted = desired
                .pods
                .get(&handle.full_name)
                .is_some_and(|d| d.pod.uid == handle.uid && Some(&d.pod.config_hash) == handle.config_hash.as_ref());
            if !wanted {
                handle.terminate.cancel();
            }
        }
        for (full_name, wanted) in &desired.pods {
            if self.handles.iter().any(|h| &h.full_name == full_name) {
                continue; // running, or an older version still stopping
            }
            let pod = wanted.pod.clone();
            let seen = pod
                .pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(crate::manifest::ANNOTATION_CONFIG_SEEN))
                .cloned()
                .unwrap_or_default();
            let terminate = CancellationToken::new();
            let ctx = self.ctx.clone();
            let (uid, hash) = (pod.uid.clone(), pod.config_hash.clone());
            let task = worker::supervise(ctx, pod, seen, terminate.clone(), self.shutdown.clone());
            self.spawn(full_name.clone(), uid, Some(hash), terminate, task);
        }
        if snapshot.listed && snapshot.error.is_none() {
            let known: BTreeSet<&str> = self.handles.iter().map(|h| h.uid.as_str()).collect();
            let orphans: Vec<_> = snapshot
                .pods
                .values()
                .filter(|rt| !known.contains(rt.uid.as_str()))
                .filter(|rt| {
                    let origin = rt
                        .latest_sandbox()
                        .and_then(|s| s.annotations.get(labels::ORIGIN))
                        .and_then(|o| parse_origin(o));
                    match origin {
                        Some(origin) => {
                            desired.seen_sources.contains(&origin.kind) && !desired.broken.contains(&origin)
                        }
                        None => true, // ours (node label) but unattributable: nothing can want it
                    }
                })
                .cloned()
                .collect();
            for rt in orphans {
                let terminate = CancellationToken::new();
                terminate.cancel();
                let task = worker::stop_orphan(self.ctx.clone(), rt.clone(), self.shutdown.clone());
                self.spawn(rt.full_name(), rt.uid.clone(), None, terminate, task);
            }
        }
        self.ctx.metrics.desired_pods.set(desired.pods.len() as i64);
    }

    fn spawn(
        &mut self,
        full_name: String,
        uid: String,
        config_hash: Option<String>,
        terminate: CancellationToken,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let done = self.done_tx.clone();
        self.tracker.spawn(async move {
            task.await;
            let _ = done.send(id);
        });
        self.handles.push(Handle { id, full_name, uid, config_hash, terminate });
    }
}

fn parse_origin(text: &str) -> Option<Origin> {
    let (kind, location) = text.split_once(':')?;
    let kind = match kind {
        "file" => SourceKind::File,
        "http" => SourceKind::Http,
        _ => return None,
    };
    Some(Origin { kind, location: location.to_owned() })
}
