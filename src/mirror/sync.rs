//! The mirror sync loop: level-triggered on the desired set, the pod views, a watch on this
//! node's pods and a 10 s tick. Each pass makes the API server match, one pod at a time:
//! create missing mirrors, replace outdated/terminating/edited ones (delete with a UID
//! precondition, then create), delete orphans, patch status where it differs, post events.
//! A deleted mirror comes back as soon as the watch reports the deletion.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, ObjectReference, Pod};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions},
    runtime::{WatchStreamExt, reflector, watcher},
};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{
    MirrorError, MirrorProblems,
    events::{RateLimit, event},
    node::{self, NodeFacts},
    pod::{ANNOTATION_MIRROR, Verdict, mirror_of, status_differs, status_of, status_patch, verdict},
};
use crate::{
    desired::Desired,
    manifest::StaticPod,
    supervisor::{Views, events::PodEvent},
};

const RESYNC: Duration = Duration::from_secs(10);
const LEASE_RENEW: Duration = Duration::from_secs(10);
const NODE_STATUS: Duration = Duration::from_secs(300);
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);

pub struct Settings {
    pub kubeconfig: PathBuf,
    pub node: String,
    pub node_ip: String,
    pub runtime_version: String,
}

pub struct MirrorSync {
    client: Client,
    settings: Settings,
    desired: watch::Receiver<Arc<Desired>>,
    views: Views,
    problems: MirrorProblems,
    events: mpsc::UnboundedReceiver<PodEvent>,
}

/// Back-off for one pod's refused mirror: a rejection is retried, but not hammered.
struct Retry {
    next: Instant,
    delay: Duration,
}

impl MirrorSync {
    pub async fn connect(
        settings: Settings,
        desired: watch::Receiver<Arc<Desired>>,
        views: Views,
        problems: MirrorProblems,
        events: mpsc::UnboundedReceiver<PodEvent>,
    ) -> Result<Self, MirrorError> {
        let path = settings.kubeconfig.display().to_string();
        let invalid = |message: String| MirrorError::Kubeconfig { path: path.clone(), message };
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&settings.kubeconfig).map_err(|e| invalid(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| invalid(e.to_string()))?;
        let client = Client::try_from(config).map_err(|e| invalid(e.to_string()))?;
        Ok(Self { client, settings, desired, views, problems, events })
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let node_name = self.settings.node.clone();
        let facts = NodeFacts::gather(&node_name, &self.settings.node_ip, &self.settings.runtime_version);
        let (node_uid_tx, mut node_uid) = watch::channel::<Option<String>>(None);
        tokio::spawn(keep_node(self.client.clone(), facts, node_uid_tx, shutdown.clone()));

        let pods: Api<Pod> = Api::all(self.client.clone());
        let (store, writer) = reflector::store::<Pod>();
        let changed = Arc::new(Notify::new());
        let watch_config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
        let stream = reflector(writer, watcher(pods, watch_config)).default_backoff();
        let notify = changed.clone();
        let watch_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut failing = false;
            loop {
                let item = tokio::select! {
                    _ = watch_shutdown.cancelled() => return,
                    item = stream.next() => item,
                };
                match item {
                    Some(Ok(_)) => {
                        failing = false;
                        notify.notify_one();
                    }
                    Some(Err(e)) => {
                        if !failing {
                            tracing::warn!(error = %super::describe(&e), "watching this node's pods failed; retrying");
                        }
                        failing = true;
                    }
                    None => return,
                }
            }
        });

        let mut views_changed = self.views.subscribe();
        let mut retries: HashMap<String, Retry> = HashMap::new();
        let mut limit = RateLimit::default();
        let mut last_error: HashMap<String, String> = HashMap::new();
        let mut tick = tokio::time::interval(RESYNC);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = changed.notified() => {}
                _ = self.desired.changed() => {}
                _ = views_changed.changed() => {}
                _ = node_uid.changed() => {}
                _ = tick.tick() => {}
                Some(e) = self.events.recv() => {
                    self.post_event(&store, &mut limit, e).await;
                    continue;
                }
            }
            let Some(uid) = node_uid.borrow().clone() else { continue };
            if store.wait_until_ready().await.is_err() {
                return;
            }
            let desired = self.desired.borrow().clone();
            for wanted in desired.pods.values() {
                let full = wanted.pod.full_name();
                let result = self.sync_pod(&store, &wanted.pod, &uid, &mut retries).await;
                match result {
                    Ok(()) => {
                        last_error.remove(&full);
                    }
                    Err(e) => {
                        let message = e.to_string();
                        if last_error.get(&full) != Some(&message) {
                            tracing::warn!(pod = %full, error = %message, "mirror pod sync failed; the static pod is unaffected");
                            if e.code().is_some_and(|c| c == 403 || c == 422 || c == 400) {
                                let node_ref = ObjectReference {
                                    kind: Some("Node".into()),
                                    api_version: Some("v1".into()),
                                    name: Some(node_name.clone()),
                                    uid: Some(node_name.clone()),
                                    ..Default::default()
                                };
                                let ev = event(
                                    node_ref,
                                    &node_name,
                                    true,
                                    "FailedMirrorPod",
                                    &format!("mirror of {full} refused: {message}"),
                                );
                                let _ = Api::<Event>::namespaced(self.client.clone(), "default")
                                    .create(&PostParams::default(), &ev)
                                    .await;
                            }
                            last_error.insert(full.clone(), message);
                        }
                    }
                }
            }
            self.delete_orphans(&store, &desired).await;
        }
    }

    async fn sync_pod(
        &self,
        store: &reflector::Store<Pod>,
        pod: &StaticPod,
        node_uid: &str,
        retries: &mut HashMap<String, Retry>,
    ) -> Result<(), MirrorError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), pod.namespace());
        let full = pod.full_name();
        let wanted = mirror_of(pod, &self.settings.node, node_uid);
        let existing = store.get(&reflector::ObjectRef::new(pod.name()).within(pod.namespace()));
        match verdict(&wanted, existing.as_deref()) {
            Verdict::Keep => {}
            v => {
                if retries.get(&full).is_some_and(|r| Instant::now() < r.next) {
                    return Ok(()); // backing off after a refusal; the problem is already shown
                }
                if let (Verdict::Replace(reason), Some(existing)) = (&v, &existing) {
                    tracing::info!(pod = %full, reason, "replacing mirror pod");
                    let params = DeleteParams {
                        grace_period_seconds: Some(0),
                        preconditions: Some(Preconditions {
                            uid: existing.metadata.uid.clone(),
                            resource_version: None,
                        }),
                        ..Default::default()
                    };
                    match api.delete(pod.name(), &params).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                        Err(e) => return Err(MirrorError::api("delete", format!("pod {full}"), e)),
                    }
                }
                match api.create(&PostParams::default(), &wanted).await {
                    Ok(created) => {
                        tracing::info!(pod = %full, mirror_uid = ?created.metadata.uid, "mirror pod created");
                        retries.remove(&full);
                        self.problems.set(&full, None);
                        self.patch_status(&api, pod, &created).await?;
                    }
                    // Still there (an older copy not yet gone from our cache, or a race): the
                    // watch brings it and the next pass judges it.
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => {
                        let error = MirrorError::api("create", format!("mirror pod {full}"), e);
                        let delay = retries.get(&full).map(|r| (r.delay * 2).min(RETRY_MAX)).unwrap_or(RETRY_MIN);
                        retries.insert(full.clone(), Retry { next: Instant::now() + delay, delay });
                        self.problems.set(&full, Some(format!("no mirror pod: {error}")));
                        return Err(error);
                    }
                }
                return Ok(());
            }
        }
        if let Some(existing) = existing {
            self.patch_status(&api, pod, &existing).await?;
        }
        Ok(())
    }

    /// Patches the mirror's status when it differs, with the mirror's UID as a precondition so a
    /// status never lands on a newer mirror it was not computed for.
    async fn patch_status(&self, api: &Api<Pod>, pod: &StaticPod, mirror: &Pod) -> Result<(), MirrorError> {
        let view = self.views.get(&pod.uid);
        let mut status = status_of(pod, view.as_ref(), &self.settings.node_ip);
        let current = mirror.status.as_ref();
        if !status_differs(current, &status) {
            return Ok(());
        }
        tracing::debug!(pod = %pod.full_name(), current = ?current, wanted = ?status, "mirror status differs");
        // Conditions keep their transition time while their status stays the same.
        for c in status.conditions.iter_mut().flatten() {
            let old = current.and_then(|s| s.conditions.as_ref()).and_then(|cs| cs.iter().find(|o| o.type_ == c.type_));
            if let Some(old) = old.filter(|o| o.status == c.status) {
                c.last_transition_time = old.last_transition_time.clone();
            }
        }
        let patch = status_patch(mirror.metadata.uid.as_deref(), &status);
        match api.patch_status(pod.name(), &PatchParams::default(), &Patch::Strategic(&patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(MirrorError::api("patch", format!("pod {} status", pod.full_name()), e)),
        }
    }

    /// Mirrors with no static pod behind them, once that pod has fully stopped.
    async fn delete_orphans(&self, store: &reflector::Store<Pod>, desired: &Desired) {
        // A pod no manifest wants but still supervised is stopping (its worker removes its view
        // only once the pod is gone), even if the worker has not said "terminating" yet.
        let stopping: Vec<String> =
            self.views.all().into_iter().map(|v| format!("{}/{}", v.namespace, v.name)).collect();
        for mirror in store.state() {
            let meta = &mirror.metadata;
            if meta.annotations.as_ref().is_none_or(|a| !a.contains_key(ANNOTATION_MIRROR)) {
                continue;
            }
            let (ns, name) = (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default());
            let full = format!("{ns}/{name}");
            if desired.pods.contains_key(&full) {
                continue;
            }
            let params = if stopping.contains(&full) {
                if meta.deletion_timestamp.is_some() {
                    continue;
                }
                // Still stopping on the node: a graceful delete marks the mirror Terminating in
                // kubectl, as the pod is; the final delete follows when it has stopped.
                let grace = mirror.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
                tracing::info!(pod = %full, "marking mirror pod terminating");
                DeleteParams {
                    grace_period_seconds: Some(grace.max(1) as u32),
                    preconditions: Some(Preconditions { uid: meta.uid.clone(), resource_version: None }),
                    ..Default::default()
                }
            } else {
                tracing::info!(pod = %full, "deleting mirror pod of a static pod that is gone");
                DeleteParams { grace_period_seconds: Some(0), ..Default::default() }
            };
            match Api::<Pod>::namespaced(self.client.clone(), &ns).delete(&name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => {
                    tracing::warn!(pod = %full, error = %MirrorError::api("delete", format!("pod {full}"), e), "deleting orphan mirror failed")
                }
            }
        }
    }

    async fn post_event(&self, store: &reflector::Store<Pod>, limit: &mut RateLimit, e: PodEvent) {
        let Some(mirror) = store.get(&reflector::ObjectRef::new(&e.pod).within(&e.namespace)) else { return };
        let object = format!("{}/{}", e.namespace, e.pod);
        if !limit.allow(&object, e.reason, &e.message, Instant::now()) {
            return;
        }
        let involved = ObjectReference {
            kind: Some("Pod".into()),
            api_version: Some("v1".into()),
            namespace: Some(e.namespace.clone()),
            name: Some(e.pod.clone()),
            uid: mirror.metadata.uid.clone(),
            ..Default::default()
        };
        let ev = event(involved, &self.settings.node, e.warning, e.reason, &e.message);
        if let Err(err) =
            Api::<Event>::namespaced(self.client.clone(), &e.namespace).create(&PostParams::default(), &ev).await
        {
            tracing::debug!(error = %super::describe(&err), "posting event failed");
        }
    }
}

/// Registers the Node, renews its Lease every 10 s and posts its status every 5 minutes, as kubelet
/// does (its nodeStatusReportFrequency). Publishes the Node's UID for mirror owner references.
///
/// At rest that is one request per renewal: the Node is looked up only when the Lease is missing,
/// and the status is posted early only after a failed pass.
/// The Lease is owned by the Node, so a deleted Node takes its Lease with it, and the next renewal
/// finds out and registers the Node again.
async fn keep_node(
    client: Client,
    facts: NodeFacts,
    uid_tx: watch::Sender<Option<String>>,
    shutdown: CancellationToken,
) {
    let mut last_status: Option<Instant> = None;
    let mut failing: Option<String> = None;
    loop {
        let result = async {
            let known = uid_tx.borrow().clone();
            let mut register = async || {
                let uid = node::ensure_node(&client, &facts).await?;
                if uid_tx.borrow().as_deref() != Some(uid.as_str()) {
                    tracing::info!(node = %facts.name, %uid, "node registered");
                    uid_tx.send_replace(Some(uid.clone()));
                    last_status = None;
                }
                Ok::<String, MirrorError>(uid)
            };
            if known.is_none() {
                register().await?;
            }
            if !node::renew_lease(&client, &facts.name).await? {
                let uid = register().await?;
                node::create_lease(&client, &facts.name, &uid).await?;
            }
            if last_status.is_none_or(|t| t.elapsed() >= NODE_STATUS) {
                node::post_status(&client, &facts).await?;
                last_status = Some(Instant::now());
            }
            Ok::<(), MirrorError>(())
        }
        .await;
        match result {
            Ok(()) => {
                if failing.take().is_some() {
                    tracing::info!("API server reachable again");
                }
            }
            Err(e) => {
                let message = e.to_string();
                if failing.as_deref() != Some(message.as_str()) {
                    tracing::warn!(error = %message, "node registration or lease failed; static pods are unaffected, retrying");
                }
                failing = Some(message);
                // While we were away the node lifecycle controller may have marked the Node
                // NotReady; only our status post sets it Ready again, so post at once on return.
                last_status = None;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(if failing.is_some() { Duration::from_secs(2) } else { LEASE_RENEW }) => {}
        }
    }
}
