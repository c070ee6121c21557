//! The JSON of `GET /pods`, which `staticlet get pods` prints: a display of the supervisor's
//! typed `PodState`, with kubectl's words (READY `1/2`, STATUS `CrashLoopBackOff`) and RFC 3339
//! times, plus the problems a user needs to see next to the pod.

use serde::{Deserialize, Serialize};

use crate::supervisor::status::{ContainerPhase, ContainerStatus, PodState};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub source: String,
    pub ready: String,
    pub status: String,
    pub restarts: u32,
    /// config.seen: when this version of the pod was first seen.
    pub since: String,
    pub ip: String,
    /// When the current sandbox was created (RFC 3339), the pod's startTime.
    pub started: Option<String>,
    pub terminating: bool,
    /// Init containers and sidecars, in order.
    #[serde(default)]
    pub init_containers: Vec<ContainerView>,
    pub containers: Vec<ContainerView>,
    /// Set while the manifest is broken and this is the last good version.
    pub manifest_error: Option<String>,
    /// The last error carrying out an action (image pull, container start, runtime down).
    pub last_error: Option<String>,
    /// Why the API server has no mirror of this pod (admission refused it, ...).
    #[serde(default)]
    pub mirror_error: Option<String>,
    /// Why the pod failed as a whole (`DeadlineExceeded`), and kubelet's message for it.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerView {
    pub name: String,
    pub id: String,
    /// Running, Waiting or Terminated.
    pub state: String,
    pub reason: String,
    pub ready: bool,
    pub restart_count: u32,
    pub exit_code: Option<i32>,
    pub image: String,
    /// The runtime's image reference (imageID).
    pub image_ref: String,
    /// When the current container was created or started (RFC 3339).
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// A terminated container's termination message.
    #[serde(default)]
    pub message: Option<String>,
}

impl PodView {
    pub fn of(state: &PodState) -> Self {
        let views = |containers: &[ContainerStatus]| containers.iter().map(ContainerView::of).collect();
        Self {
            namespace: state.namespace.clone(),
            name: state.name.clone(),
            uid: state.uid.clone(),
            source: state.source.clone(),
            ready: state.ready(),
            status: state.status(),
            restarts: state.restarts(),
            since: state.seen.clone(),
            ip: state.ip.clone(),
            started: state.started.map(|t| t.to_string()),
            terminating: state.terminating,
            init_containers: views(&state.init_containers),
            containers: views(&state.containers),
            manifest_error: None,
            last_error: state.last_error.clone(),
            mirror_error: None,
            reason: state.reason.as_ref().map(|(reason, _)| reason.clone()),
            message: state.reason.as_ref().map(|(_, message)| message.clone()),
        }
    }
}

impl ContainerView {
    fn of(c: &ContainerStatus) -> Self {
        let (kind, finished_at, message) = match &c.phase {
            ContainerPhase::Waiting { .. } => ("Waiting", None, None),
            ContainerPhase::Running => ("Running", None, None),
            ContainerPhase::Terminated { finished_at, message, .. } => {
                ("Terminated", finished_at.map(|t| t.to_string()), (!message.is_empty()).then(|| message.clone()))
            }
        };
        Self {
            name: c.name.clone(),
            id: c.id.clone(),
            state: kind.into(),
            reason: c.phase.reason().into(),
            ready: c.ready,
            restart_count: c.restart_count,
            exit_code: c.phase.exit_code(),
            image: c.image.clone(),
            image_ref: c.image_ref.clone(),
            started_at: c.started_at.map(|t| t.to_string()),
            finished_at,
            message,
        }
    }
}
