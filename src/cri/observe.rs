//! The relister: one task lists this node's sandboxes and containers (two RPCs) every period, or
//! at once when a supervisor asks, and publishes the result. Debian's containerd 1.6 has no
//! container events, so polling is the baseline; one shared relist keeps the cost independent of
//! the number of pods.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::{Runtime, api, labels};

#[derive(Debug, Default)]
pub struct RuntimeSnapshot {
    /// The highest refresh request this listing is guaranteed to reflect.
    pub covers: u64,
    /// False until the first listing succeeded.
    pub listed: bool,
    /// Why the last listing failed; `pods` then holds the last good listing.
    pub error: Option<String>,
    pub pods: BTreeMap<String, RuntimePod>,
}

impl RuntimeSnapshot {
    pub fn pod(&self, uid: &str) -> Option<&RuntimePod> {
        self.pods.get(uid)
    }
}

/// Everything the runtime has for one pod UID.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimePod {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    /// Oldest first.
    pub sandboxes: Vec<SandboxInfo>,
    /// Oldest first.
    pub containers: Vec<ContainerInfo>,
}

impl RuntimePod {
    pub fn ready_sandbox(&self) -> Option<&SandboxInfo> {
        self.sandboxes.iter().rev().find(|s| s.ready)
    }
    pub fn latest_sandbox(&self) -> Option<&SandboxInfo> {
        self.sandboxes.last()
    }
    /// The newest container of that name in the given sandbox.
    pub fn latest_container(&self, sandbox_id: &str, name: &str) -> Option<&ContainerInfo> {
        self.containers.iter().rev().find(|c| c.sandbox_id == sandbox_id && c.name == name)
    }
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SandboxInfo {
    pub id: String,
    pub attempt: u32,
    pub ready: bool,
    pub created_at: i64,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub state: ContainerState,
    pub created_at: i64,
    pub restart_count: u32,
    pub image_ref: String,
}

pub struct Observer {
    snapshots: watch::Sender<Arc<RuntimeSnapshot>>,
    requested: AtomicU64,
    wake: Notify,
}

impl Observer {
    pub fn new() -> Arc<Self> {
        let (snapshots, _) = watch::channel(Arc::new(RuntimeSnapshot::default()));
        Arc::new(Self { snapshots, requested: AtomicU64::new(0), wake: Notify::new() })
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<RuntimeSnapshot>> {
        self.snapshots.subscribe()
    }

    pub fn latest(&self) -> Arc<RuntimeSnapshot> {
        self.snapshots.borrow().clone()
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

    pub async fn run(self: Arc<Self>, runtime: Runtime, node: String, period: Duration, shutdown: CancellationToken) {
        let mut last_error: Option<String> = None;
        loop {
            let covers = self.requested.load(Ordering::SeqCst);
            let result = list(&runtime, &node).await;
            let previous = self.latest();
            let snapshot = match result {
                Ok(pods) => {
                    if last_error.take().is_some() {
                        tracing::info!(endpoint = runtime.endpoint(), "container runtime is reachable again");
                    }
                    RuntimeSnapshot { covers, listed: true, error: None, pods }
                }
                Err(e) => {
                    let message = e.to_string();
                    if last_error.as_deref() != Some(message.as_str()) {
                        tracing::warn!(error = %message, "container runtime unavailable; pods keep running, retrying");
                    }
                    last_error = Some(message.clone());
                    RuntimeSnapshot {
                        covers,
                        listed: previous.listed,
                        error: Some(message),
                        pods: previous.pods.clone(),
                    }
                }
            };
            // Subscribers wake only for news: a change, or an answer to a refresh request. An
            // idle node's once-a-second relist then costs two RPCs and no work anywhere else.
            let news = snapshot.covers != previous.covers
                || snapshot.listed != previous.listed
                || snapshot.error != previous.error
                || snapshot.pods != previous.pods;
            self.snapshots.send_if_modified(|current| {
                *current = Arc::new(snapshot);
                news
            });
            // A failing runtime is retried at the normal period: the listing is cheap and
            // converging quickly when containerd returns matters more than the few calls.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}

async fn list(runtime: &Runtime, node: &str) -> Result<BTreeMap<String, RuntimePod>, super::CriError> {
    let scope = [(labels::NODE, node)];
    let (sandboxes, containers) = tokio::try_join!(runtime.list_sandboxes(&scope), runtime.list_containers(&scope))?;
    Ok(group(sandboxes, containers))
}

/// Groups the runtime's flat lists by pod UID.
pub(crate) fn group(sandboxes: Vec<api::PodSandbox>, containers: Vec<api::Container>) -> BTreeMap<String, RuntimePod> {
    let mut pods: BTreeMap<String, RuntimePod> = BTreeMap::new();
    for sandbox in sandboxes {
        let Some(uid) = sandbox.labels.get(labels::POD_UID).cloned() else { continue };
        let pod = pods.entry(uid.clone()).or_insert_with(|| RuntimePod {
            uid,
            name: sandbox.labels.get(labels::POD_NAME).cloned().unwrap_or_default(),
            namespace: sandbox.labels.get(labels::POD_NAMESPACE).cloned().unwrap_or_default(),
            ..Default::default()
        });
        pod.sandboxes.push(SandboxInfo {
            attempt: sandbox.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
            ready: sandbox.state == api::PodSandboxState::SandboxReady as i32,
            created_at: sandbox.created_at,
            annotations: sandbox.annotations.into_iter().collect(),
            id: sandbox.id,
        });
    }
    for container in containers {
        let Some(uid) = container.labels.get(labels::POD_UID) else { continue };
        let Some(pod) = pods.get_mut(uid) else { continue };
        let state = match api::ContainerState::try_from(container.state) {
            Ok(api::ContainerState::ContainerCreated) => ContainerState::Created,
            Ok(api::ContainerState::ContainerRunning) => ContainerState::Running,
            Ok(api::ContainerState::ContainerExited) => ContainerState::Exited,
            _ => ContainerState::Unknown,
        };
        pod.containers.push(ContainerInfo {
            name: container.labels.get(labels::CONTAINER_NAME).cloned().unwrap_or_default(),
            restart_count: container.annotations.get(labels::RESTART_COUNT).and_then(|c| c.parse().ok()).unwrap_or(0),
            state,
            created_at: container.created_at,
            sandbox_id: container.pod_sandbox_id,
            image_ref: container.image_ref,
            id: container.id,
        });
    }
    for pod in pods.values_mut() {
        pod.sandboxes.sort_by_key(|s| s.created_at);
        pod.containers.sort_by_key(|c| c.created_at);
    }
    pods
}
