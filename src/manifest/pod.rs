//! `StaticPod`: a pod as staticlet runs it, with kubelet's defaults applied, and the questions
//! the rest of the daemon asks of it (full name, grace period, restart policy, host network).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use super::identity::Origin;

/// A pod as staticlet runs it: identity applied, kubelet's defaults filled in, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticPod {
    pub uid: String,
    /// Content hash: differs between two versions of a manifest, even with a pinned UID.
    pub config_hash: String,
    pub origin: Origin,
    /// Shared: the same pod is held by the source's memory, the desired set, its worker, its
    /// prober and the mirror, and a k8s-openapi `Pod` is kilobytes once its containers are in.
    pub pod: Arc<Pod>,
}

impl StaticPod {
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }
    /// `namespace/name`: the key two pods may not share.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace(), self.name())
    }
    pub fn spec(&self) -> &PodSpec {
        self.pod.spec.as_ref().expect("identity::build always sets a spec")
    }
    /// terminationGracePeriodSeconds, defaulted to 30 s, at least 1 s (kubelet's minimum).
    pub fn grace_period(&self) -> Duration {
        let secs = self.spec().termination_grace_period_seconds.unwrap_or(30).max(1);
        Duration::from_secs(secs as u64)
    }
    pub fn restart_policy(&self) -> RestartPolicy {
        match self.spec().restart_policy.as_deref() {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }
    /// Init containers, sidecars (restartPolicy Always) among them, in order.
    pub fn init_containers(&self) -> &[Container] {
        self.spec().init_containers.as_deref().unwrap_or_default()
    }
    /// A container of either list, by name.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.init_containers().iter().chain(&self.spec().containers).find(|c| c.name == name)
    }
    pub fn host_network(&self) -> bool {
        self.spec().host_network.unwrap_or(false)
    }
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.pod.metadata.labels.clone().unwrap_or_default()
    }
    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.pod.metadata.annotations.clone().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts_after(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }
}

/// A native sidecar: an init container with `restartPolicy: Always`, started in order with the
/// init containers and then kept running beside the main containers.
pub fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}
