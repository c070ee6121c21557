//! What the runtime has for this node's pods, as staticlet reasons about it: sandboxes and
//! containers grouped by pod UID, with the container state as an enum. Built from one relist
//! (`group`); pure, so every decision downstream can be tested with hand-made values.

use std::collections::BTreeMap;

use super::{api, labels};

#[derive(Debug, Default)]
pub struct RuntimeSnapshot {
    /// The highest refresh request this listing is guaranteed to reflect.
    pub covers: u64,
    /// False until the first listing succeeded.
    pub listed: bool,
    /// Why the last listing failed; `pods` then holds the last good listing.
    pub error: Option<String>,
    /// The runtime's container events were followed when this listing was made (`events`).
    pub evented: bool,
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
