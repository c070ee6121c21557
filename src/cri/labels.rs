//! Labels and annotations staticlet puts on sandboxes and containers.
//!
//! The `io.kubernetes.*` keys are kubelet's, so `crictl` users and tools see what they expect, and a
//! restarted staticlet can find and adopt its pods. `staticlet.io/node` scopes everything we list to
//! our own node name, so several staticlets (or a kubelet) can share one runtime without touching
//! each other's pods.

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const NODE: &str = "staticlet.io/node";

/// Container annotation: how many times this container had been restarted when it was created.
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
/// Sandbox annotation: terminationGracePeriodSeconds, so a pod whose manifest vanished while
/// staticlet was down can still be stopped with its own grace period.
pub const GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
/// Sandbox annotation: `file:<path>` or `http:<url>`, the manifest the pod came from.
pub const ORIGIN: &str = "staticlet.io/origin";
/// Sandbox annotation: the content hash of the manifest version the sandbox runs.
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
