//! The mirror sync loop: level-triggered on the desired set, the pod states, a watch on this
//! node's pods and a 10 s tick. Each pass makes the API server match, one pod at a time:
//! create missing mirrors, replace outdated/terminating/edited ones (delete with a UID
//! precondition, then create), delete orphans, patch status where it differs, post events.
//! A deleted mirror comes back as soon as the watch reports the deletion.
//! The decisions are pure (`pod::verdict`, `rules`); this file carries them out.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, ObjectReference, Pod};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions},
    runtime::{WatchStreamExt, reflector, watcher},
};
use tokio::{
    sync::{Notify, mpsc, watch},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    MirrorError, MirrorProblems,
    events::{RateLimit, event},
    lease::keep_node,
    node::NodeFacts,
    pod::{Verdict, mirror_of, status_differs, status_of, status_patch, verdict},
    rules::{Orphan, REJECTED_REASON, RefusalBackoff, is_refusal, must_reject, orphan, rejection_message},
};
use crate::{
    config::NodeTaint,
    desired::Desired,
    manifest::StaticPod,
    ops::metrics::{Metrics, label},
    retry::LogOnce,
    supervisor::{Views, events::PodEvent},
};

const RESYNC: Duration = Duration::from_secs(10);

pub struct Settings {
    pub kubeconfig: PathBuf,
    pub node: String,
    pub node_ip: String,
    pub runtime_version: String,
    /// What the Node is registered with (--node-labels, --register-with-taints).
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<NodeTaint>,
    /// The kubelet API's port (kubelet's `port`), advertised in the Node's daemonEndpoints.
    pub kubelet_port: u16,
}

pub struct MirrorSync {
    client: Client,
    settings: Settings,
    desired: watch::Receiver<Arc<Desired>>,
    views: Views,
    problems: MirrorProblems,
    events: mpsc::UnboundedReceiver<PodEvent>,
    /// Clients with a renewed certificate (rotateCertificates).
    rotation: Option<watch::Receiver<Client>>,
    metrics: Arc<Metrics>,
}

/// How a pod's pass ended when nothing failed.
#[derive(Debug, PartialEq, Eq)]
enum Synced {
    Done,
    /// Not tried: a refusal is being backed off. Neither news nor a recovery.
    BackingOff,
}

/// Per-pod memory of one run of the loop.
#[derive(Default)]
struct Memory {
    refusals: RefusalBackoff,
    failures: HashMap<String, LogOnce>,
    limit: RateLimit,
}

impl MirrorSync {
    /// Reads the kubeconfig; nothing is sent to the API server yet.
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
        Ok(Self::new(client, settings, desired, views, problems, events))
    }

    pub fn new(
        client: Client,
        settings: Settings,
        desired: watch::Receiver<Arc<Desired>>,
        views: Views,
        problems: MirrorProblems,
        events: mpsc::UnboundedReceiver<PodEvent>,
    ) -> Self {
        Self { client, settings, desired, views, problems, events, rotation: None, metrics: Default::default() }
    }

    /// The API client, for the kubelet API's token and access reviews.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Counts mirrors and refusals in `metrics` (kubelet_mirror_pods, staticlet_mirror_refusals).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// With client certificate rotation: each client sent on `clients` replaces the one in use
    /// (the watch and the Node keeper start again with it; a pod's mirror is unaffected).
    pub fn with_rotation(mut self, clients: watch::Receiver<Client>) -> Self {
        self.rotation = Some(clients);
        self
    }

    /// Runs until `shutdown`; the Node keeper and the watch run as their own tasks on `tracker`.
    pub async fn run(mut self, tracker: TaskTracker, shutdown: CancellationToken) {
        let mut rotation = self.rotation.take();
        loop {
            // One generation per client: rotating the certificate ends it and starts the next.
            let generation = shutdown.child_token();
            let rotated = async {
                let renewed = match rotation.as_mut() {
                    Some(clients) => clients.changed().await.is_ok(),
                    None => false,
                };
                if !renewed {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = self.run_with_client(&tracker, generation.clone()) => return,
                _ = rotated => {}
            }
            generation.cancel();
            if let Some(clients) = &rotation {
                self.client = clients.borrow().clone();
            }
            tracing::info!("client certificate renewed: the mirror sync continues with it");
        }
    }

    async fn run_with_client(&mut self, tracker: &TaskTracker, shutdown: CancellationToken) {
        let facts = NodeFacts {
            labels: self.settings.labels.clone(),
            taints: self.settings.taints.clone(),
            kubelet_port: self.settings.kubelet_port,
            ..NodeFacts::gather(&self.settings.node, &self.settings.node_ip, &self.settings.runtime_version)
        };
        let (node_uid_tx, mut node_uid) = watch::channel::<Option<String>>(None);
        tracker.spawn(keep_node(self.client.clone(), facts, node_uid_tx, shutdown.clone()));

        let (store, writer) = reflector::store::<Pod>();
        let changed = Arc::new(Notify::new());
        let watch_config = watcher::Config::default().fields(&format!("spec.nodeName={}", self.settings.node));
        let stream = reflector(writer, watcher(Api::all(self.client.clone()), watch_config)).default_backoff();
        tracker.spawn(watch_pods(stream, changed.clone(), shutdown.clone()));

        let mut views_changed = self.views.subscribe();
        let mut memory = Memory::default();
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
                    self.post_event(&store, &mut memory.limit, e).await;
                    continue;
                }
            }
            let Some(uid) = node_uid.borrow().clone() else { continue };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                ready = store.wait_until_ready() => if ready.is_err() { return },
            }
            let desired = self.desired.borrow().clone();
            self.metrics.mirror_pods.set(desired.pods.len() as i64);
            for wanted in desired.pods.values() {
                let result = self.sync_pod(&store, &wanted.pod, &uid, &mut memory.refusals).await;
                self.report(&wanted.pod.full_name(), &uid, result, &mut memory).await;
            }
            self.delete_orphans(&store, &desired).await;
            self.reject_bound_pods(&store, &mut memory).await;
        }
    }

    /// Logs a pod's sync failure once until it changes; a refusal also becomes a Node event.
    async fn report(&self, full: &str, node_uid: &str, result: Result<Synced, MirrorError>, memory: &mut Memory) {
        let failure = memory.failures.entry(full.to_owned()).or_default();
        let error = match result {
            Ok(Synced::Done) => {
                failure.recovered();
                return;
            }
            Ok(Synced::BackingOff) => return,
            Err(error) => error,
        };
        if !failure.failed(error.to_string()) {
            return;
        }
        tracing::warn!(pod = %full, error = %error, "mirror pod sync failed; the static pod is unaffected");
        if is_refusal(&error) {
            let node = &self.settings.node;
            let node_ref = ObjectReference {
                kind: Some("Node".into()),
                api_version: Some("v1".into()),
                name: Some(node.clone()),
                uid: Some(node_uid.to_owned()),
                ..Default::default()
            };
            let message = format!("mirror of {full} refused: {error}");
            let ev = event(node_ref, node, true, "FailedMirrorPod", &message, jiff::Timestamp::now());
            if let Err(e) =
                Api::<Event>::namespaced(self.client.clone(), "default").create(&PostParams::default(), &ev).await
            {
                tracing::debug!(error = %super::describe(&e), "posting FailedMirrorPod event failed");
            }
        }
    }

    async fn sync_pod(
        &self,
        store: &reflector::Store<Pod>,
        pod: &StaticPod,
        node_uid: &str,
        refusals: &mut RefusalBackoff,
    ) -> Result<Synced, MirrorError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), pod.namespace());
        let full = pod.full_name();
        let wanted = mirror_of(pod, &self.settings.node, node_uid);
        let existing = store.get(&reflector::ObjectRef::new(pod.name()).within(pod.namespace()));
        let v = verdict(&wanted, existing.as_deref());
        if v == Verdict::Keep {
            if let Some(existing) = existing {
                self.patch_status(&api, pod, &existing).await?;
            }
            return Ok(Synced::Done);
        }
        if refusals.waiting(&full, Instant::now()) {
            return Ok(Synced::BackingOff); // the problem is already shown
        }
        if let (Verdict::Replace(reason), Some(existing)) = (&v, &existing) {
            tracing::info!(pod = %full, reason, "replacing mirror pod");
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: existing.metadata.uid.clone(), resource_version: None }),
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
                refusals.succeeded(&full);
                self.problems.set(&full, None);
                self.patch_status(&api, pod, &created).await.map(|()| Synced::Done)
            }
            // Still there (an older copy not yet gone from our cache, or a race): the watch
            // brings it and the next pass judges it.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Synced::Done),
            Err(e) => {
                let error = MirrorError::api("create", format!("mirror pod {full}"), e);
                if let (true, Some(code)) = (is_refusal(&error), error.code()) {
                    self.metrics.mirror_refusals.get_or_create(&label("code", &code.to_string())).inc();
                }
                refusals.failed(&full, Instant::now());
                self.problems.set(&full, Some(format!("no mirror pod: {error}")));
                Err(error)
            }
        }
    }

    /// Patches the mirror's status when it differs, with the mirror's UID as a precondition so a
    /// status never lands on a newer mirror it was not computed for.
    async fn patch_status(&self, api: &Api<Pod>, pod: &StaticPod, mirror: &Pod) -> Result<(), MirrorError> {
        let state = self.views.get(&pod.uid);
        let mut status = status_of(pod, state.as_ref(), &self.settings.node_ip, jiff::Timestamp::now());
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

    /// Mirrors with no static pod behind them, as `rules::orphan` judges them.
    async fn delete_orphans(&self, store: &reflector::Store<Pod>, desired: &Desired) {
        let stopping: BTreeSet<String> = self.views.all().iter().map(|v| v.full_name()).collect();
        for mirror in store.state() {
            let meta = &mirror.metadata;
            let (ns, name) = (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default());
            let full = format!("{ns}/{name}");
            let params = match orphan(&mirror, desired.pods.contains_key(&full), stopping.contains(&full)) {
                Orphan::Leave => continue,
                Orphan::MarkTerminating { grace_seconds } => {
                    tracing::info!(pod = %full, "marking mirror pod terminating");
                    DeleteParams {
                        grace_period_seconds: Some(grace_seconds),
                        preconditions: Some(Preconditions { uid: meta.uid.clone(), resource_version: None }),
                        ..Default::default()
                    }
                }
                Orphan::Delete => {
                    tracing::info!(pod = %full, "deleting mirror pod of a static pod that is gone");
                    DeleteParams { grace_period_seconds: Some(0), ..Default::default() }
                }
            };
            match Api::<Pod>::namespaced(self.client.clone(), &ns).delete(&name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => {
                    let error = MirrorError::api("delete", format!("pod {full}"), e);
                    tracing::warn!(pod = %full, error = %error, "deleting orphan mirror failed");
                }
            }
        }
    }

    /// Pods the API server bound to this node (a DaemonSet's, a pod with spec.nodeName set by
    /// hand) are never run: each is marked Failed with a reason and an event, as kubelet rejects a
    /// pod it cannot admit, so it is not left Pending without a word.
    async fn reject_bound_pods(&self, store: &reflector::Store<Pod>, memory: &mut Memory) {
        let node = &self.settings.node;
        for pod in store.state().iter().filter(|p| must_reject(p)) {
            let meta = &pod.metadata;
            let (ns, name) = (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default());
            let full = format!("{ns}/{name}");
            let message = rejection_message(node);
            let patch = serde_json::json!({
                "metadata": { "uid": meta.uid },
                "status": { "phase": "Failed", "reason": REJECTED_REASON, "message": message },
            });
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            let failure = memory.failures.entry(format!("reject {full}")).or_default();
            match api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
                Ok(_) => {
                    failure.recovered();
                    tracing::warn!(pod = %full, "rejected a pod the API server bound to this node: it runs static pods only");
                }
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => continue,
                Err(e) => {
                    let error = MirrorError::api("patch", format!("pod {full} status"), e);
                    if failure.failed(error.to_string()) {
                        tracing::warn!(pod = %full, error = %error, "rejecting a pod bound to this node failed");
                    }
                    continue;
                }
            }
            let involved = ObjectReference {
                kind: Some("Pod".into()),
                api_version: Some("v1".into()),
                namespace: Some(ns.clone()),
                name: Some(name.clone()),
                uid: meta.uid.clone(),
                ..Default::default()
            };
            let ev = event(involved, node, true, REJECTED_REASON, &message, jiff::Timestamp::now());
            if let Err(e) = Api::<Event>::namespaced(self.client.clone(), &ns).create(&PostParams::default(), &ev).await
            {
                tracing::debug!(error = %super::describe(&e), "posting the rejection event failed");
            }
        }
    }

    async fn post_event(&self, store: &reflector::Store<Pod>, limit: &mut RateLimit, e: PodEvent) {
        let Some(mirror) = store.get(&reflector::ObjectRef::new(&e.pod).within(&e.namespace)) else { return };
        let object = format!("{}/{}", e.namespace, e.pod);
        if !limit.allow(&object, e.reason, &e.message, std::time::Instant::now()) {
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
        let ev = event(involved, &self.settings.node, e.warning, e.reason, &e.message, jiff::Timestamp::now());
        if let Err(err) =
            Api::<Event>::namespaced(self.client.clone(), &e.namespace).create(&PostParams::default(), &ev).await
        {
            tracing::debug!(error = %super::describe(&err), "posting event failed");
        }
    }
}

/// Drives the reflector's watch of this node's pods, waking the loop on every change; a failing
/// watch is logged once (the reflector retries with its own back-off).
async fn watch_pods<S>(stream: S, changed: Arc<Notify>, shutdown: CancellationToken)
where
    S: futures::Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Send,
{
    let mut stream = std::pin::pin!(stream);
    let mut failure = LogOnce::default();
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled() => return,
            item = stream.next() => item,
        };
        match item {
            Some(Ok(_)) => {
                failure.recovered();
                changed.notify_one();
            }
            Some(Err(e)) => {
                let message = super::describe(&e);
                if failure.failed(message.as_str()) {
                    tracing::warn!(error = %message, "watching this node's pods failed; retrying");
                }
            }
            None => return,
        }
    }
}
