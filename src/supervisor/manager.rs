//! Starts, replaces and stops pod supervisors as the desired set changes.
//!
//! Rules (kubelet's, minus its API-server gate):
//! - one supervisor per wanted pod; a changed manifest (new UID or content hash) stops the old
//!   version first, and the new version starts only when the old one is gone, so two versions
//!   never fight over ports or files;
//! - a runtime pod no manifest wants is stopped, but only once its source has reported at least
//!   once and only if its manifest is not merely broken: a slow URL or a typo never kills a pod.

use std::{
    collections::{BTreeSet, VecDeque},
    sync::Arc,
};

use tokio::sync::{mpsc, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{Context, stop, worker};
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
    /// UIDs of pods recently told to stop (the newest RECENTLY_STOPPED), so a pod started again
    /// with one of them counts as restarted (kubelet_restarted_pods_total).
    stopped: VecDeque<String>,
}

const RECENTLY_STOPPED: usize = 256;

impl Manager {
    pub fn new(ctx: Arc<Context>, tracker: TaskTracker, shutdown: CancellationToken) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self { ctx, tracker, shutdown, handles: Vec::new(), next_id: 0, done_tx, done_rx, stopped: VecDeque::new() }
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
        let supervised: Vec<Supervised> = self
            .handles
            .iter()
            .map(|h| Supervised {
                id: h.id,
                full_name: h.full_name.clone(),
                uid: h.uid.clone(),
                config_hash: h.config_hash.clone(),
                stopping: h.terminate.is_cancelled(),
            })
            .collect();
        for op in plan(&supervised, desired, snapshot) {
            match op {
                Op::Terminate(id) => {
                    if let Some(handle) = self.handles.iter().find(|h| h.id == id) {
                        handle.terminate.cancel();
                        if self.stopped.len() == RECENTLY_STOPPED {
                            self.stopped.pop_front();
                        }
                        self.stopped.push_back(handle.uid.clone());
                    }
                }
                Op::Start(full_name) => {
                    let wanted = &desired.pods[&full_name];
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
                    let (uid, hash) = (pod.uid.clone(), pod.config_hash.clone());
                    if let Some(at) = self.stopped.iter().position(|stopped| *stopped == uid) {
                        self.stopped.remove(at);
                        self.ctx.metrics.restarted_pods.inc();
                    }
                    let task = worker::supervise(self.ctx.clone(), pod, seen, terminate.clone(), self.shutdown.clone());
                    self.spawn(full_name, uid, Some(hash), terminate, task);
                }
                Op::StopOrphan(uid) => {
                    let rt = snapshot.pods[&uid].clone();
                    let terminate = CancellationToken::new();
                    terminate.cancel();
                    let task = stop::stop_orphan(self.ctx.clone(), rt.clone(), self.shutdown.clone());
                    self.spawn(rt.full_name(), rt.uid.clone(), None, terminate, task);
                }
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

/// A running supervisor, as `plan` sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Supervised {
    pub id: u64,
    pub full_name: String,
    pub uid: String,
    /// None for a supervisor that only stops an orphan.
    pub config_hash: Option<String>,
    /// Told to stop its pod, and still stopping it.
    pub stopping: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Tell this supervisor to stop its pod: no manifest wants that version any more.
    Terminate(u64),
    /// Start a supervisor for this desired pod (by full name).
    Start(String),
    /// Stop this runtime pod (by UID), which no supervisor and no manifest claims.
    StopOrphan(String),
}

/// The manager's two safety rules as one pure decision:
/// - one version of a pod at a time, keyed by full name: a new version starts only once no
///   supervisor of that name is left, not even one still stopping the old version;
/// - a runtime pod nobody supervises is an orphan only once *its* source has answered and its
///   manifest is not merely broken.
pub fn plan(supervised: &[Supervised], desired: &Desired, runtime: &RuntimeSnapshot) -> Vec<Op> {
    let mut ops = Vec::new();
    for s in supervised.iter().filter(|s| !s.stopping) {
        let wanted = desired
            .pods
            .get(&s.full_name)
            .is_some_and(|d| d.pod.uid == s.uid && Some(&d.pod.config_hash) == s.config_hash.as_ref());
        if !wanted {
            ops.push(Op::Terminate(s.id));
        }
    }
    let mut known: BTreeSet<&str> = supervised.iter().map(|s| s.uid.as_str()).collect();
    for (full_name, wanted) in &desired.pods {
        if !supervised.iter().any(|s| &s.full_name == full_name) {
            ops.push(Op::Start(full_name.clone()));
            known.insert(wanted.pod.uid.as_str());
        }
    }
    if !runtime.listed || runtime.error.is_some() {
        return ops;
    }
    for rt in runtime.pods.values().filter(|rt| !known.contains(rt.uid.as_str())) {
        let origin = rt.latest_sandbox().and_then(|s| s.annotations.get(labels::ORIGIN)).and_then(|o| parse_origin(o));
        let orphan = match origin {
            Some(origin) => desired.seen_sources.contains(&origin.kind) && !desired.broken.contains(&origin),
            None => true, // ours (node label) but unattributable: nothing can want it
        };
        if orphan {
            ops.push(Op::StopOrphan(rt.uid.clone()));
        }
    }
    ops
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        cri::{RuntimePod, SandboxInfo},
        desired::DesiredPod,
        manifest::{StaticPod, parse_manifest},
    };

    fn static_pod(name: &str, command: &str) -> StaticPod {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{containers: [{{name: c, image: i:1, command: [{command}]}}]}}\n"
        );
        parse_manifest(yaml.as_bytes(), &Origin::file(format!("/m/{name}.yaml")), "n").unwrap().remove(0)
    }

    fn desired(pods: &[&StaticPod], seen: &[SourceKind], broken: &[&str]) -> Desired {
        Desired {
            pods: pods
                .iter()
                .map(|p| {
                    let d = DesiredPod { pod: (*p).clone(), seen: jiff::Timestamp::UNIX_EPOCH, stale: None };
                    (p.full_name(), d)
                })
                .collect(),
            errors: vec![],
            seen_sources: seen.iter().copied().collect(),
            broken: broken.iter().map(|b| Origin::file(*b)).collect(),
        }
    }

    fn supervising(id: u64, pod: &StaticPod, stopping: bool) -> Supervised {
        Supervised {
            id,
            full_name: pod.full_name(),
            uid: pod.uid.clone(),
            config_hash: Some(pod.config_hash.clone()),
            stopping,
        }
    }

    fn runtime(pods: &[(&str, Option<&str>)]) -> RuntimeSnapshot {
        let pods: BTreeMap<String, RuntimePod> = pods
            .iter()
            .map(|(uid, origin)| {
                let annotations = origin.map(|o| (labels::ORIGIN.to_owned(), o.to_owned())).into_iter().collect();
                let sandbox = SandboxInfo { id: format!("s-{uid}"), ready: true, annotations, ..Default::default() };
                let rt = RuntimePod {
                    uid: uid.to_string(),
                    name: uid.to_string(),
                    sandboxes: vec![sandbox],
                    ..Default::default()
                };
                (uid.to_string(), rt)
            })
            .collect();
        RuntimeSnapshot { covers: 0, listed: true, error: None, evented: false, pods }
    }

    #[test]
    fn a_new_pod_gets_a_supervisor() {
        let web = static_pod("web", "a");
        assert_eq!(plan(&[], &desired(&[&web], &[SourceKind::File], &[]), &runtime(&[])), [Op::Start(web.full_name())]);
    }

    #[test]
    fn an_edited_pod_stops_the_old_version_before_the_new_one_starts() {
        let (v1, v2) = (static_pod("web", "a"), static_pod("web", "b"));
        let wanted = desired(&[&v2], &[SourceKind::File], &[]);
        assert_eq!(plan(&[supervising(1, &v1, false)], &wanted, &runtime(&[])), [Op::Terminate(1)]);
        // Still stopping: the new version waits.
        assert_eq!(plan(&[supervising(1, &v1, true)], &wanted, &runtime(&[])), []);
        // Gone: now it starts.
        assert_eq!(plan(&[], &wanted, &runtime(&[])), [Op::Start(v2.full_name())]);
    }

    #[test]
    fn orphan_rules_table() {
        let file = Some("file:/m/gone.yaml");
        // (runtime pod's origin, sources that answered, broken manifests, stopped?)
        for (origin, seen, broken, stopped) in [
            (file, &[SourceKind::File][..], &[][..], true),
            (file, &[], &[], false),
            (file, &[SourceKind::Http], &[], false),
            (file, &[SourceKind::File], &["/m/gone.yaml"], false),
            (Some("http:http://x/pods"), &[SourceKind::File], &[], false),
            (None, &[], &[], true),
        ] {
            let ops = plan(&[], &desired(&[], seen, broken), &runtime(&[("u-gone", origin)]));
            let expected = if stopped { vec![Op::StopOrphan("u-gone".into())] } else { vec![] };
            assert_eq!(ops, expected, "origin {origin:?}, seen {seen:?}, broken {broken:?}");
        }
    }

    #[test]
    fn a_pod_being_started_or_stopped_is_never_an_orphan() {
        let web = static_pod("web", "a");
        let old = static_pod("old", "a");
        let snapshot = runtime(&[(&web.uid, Some("file:/m/web.yaml")), (&old.uid, Some("file:/m/old.yaml"))]);
        let wanted = desired(&[&web], &[SourceKind::File], &[]);
        assert_eq!(plan(&[supervising(7, &old, true)], &wanted, &snapshot), [Op::Start(web.full_name())]);
    }

    #[test]
    fn nothing_is_judged_an_orphan_before_the_runtime_has_been_listed() {
        let mut snapshot = runtime(&[("u-gone", None)]);
        snapshot.listed = false;
        assert_eq!(plan(&[], &desired(&[], &[SourceKind::File], &[]), &snapshot), []);
        snapshot.listed = true;
        snapshot.error = Some("unavailable".into());
        assert_eq!(plan(&[], &desired(&[], &[SourceKind::File], &[]), &snapshot), []);
    }
}
