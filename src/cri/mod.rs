//! The container runtime, through CRI v1: the only module that speaks gRPC.
//!
//! `Cri` is the seam: every runtime call the daemon makes goes through it, so the supervisors run
//! the same against the real tonic client (`Runtime`) and, in unit tests, against the recording
//! fake (`fake::FakeCri`) that can script any call's failure. `translate` turns a static pod into
//! CRI configs (pure), with `resources` (quantities, QoS, kubelet's cgroup formulas) and
//! `security` (securityContext); `host` holds the machine facts they need; `pod_cgroup` writes a
//! pod's own cgroup; `model` is what a relist says, typed; `observe` relists the runtime and
//! publishes what it saw to every pod supervisor; `events` follows the runtime's container events,
//! where it has them, so the relister can rest.

mod client;
pub mod dns;
pub mod events;
pub mod exit_watch;
#[cfg(test)]
pub mod fake;
pub mod host;
pub mod hosts;
pub mod labels;
mod model;
mod observe;
pub mod pod_cgroup;
pub mod resources;
pub mod security;
pub mod translate;
pub mod volumes;

use std::{sync::Arc, time::Duration};

pub use client::{CriError, Runtime};
pub use k8s_cri::v1 as api;
pub use model::{ContainerInfo, ContainerState, RuntimePod, RuntimeSnapshot, SandboxInfo};
pub use observe::{Observer, list as list_pods};

/// The runtime calls staticlet makes, named after their CRI RPCs. Errors name the RPC and the
/// endpoint (`CriError::Rpc`).
#[async_trait::async_trait]
pub trait Cri: Send + Sync {
    fn endpoint(&self) -> &str;
    /// `(runtime name, runtime version)`, e.g. `("containerd", "1.6.20~ds1")`.
    async fn version(&self) -> Result<(String, String), CriError>;
    /// `handler` is the runtime handler (`RunPodSandboxRequest.runtime_handler`, "" for the
    /// runtime's default): a pod's `runtimeClassName` as written, there being no RuntimeClass
    /// object to resolve it through without an API server.
    async fn run_sandbox(&self, config: api::PodSandboxConfig, handler: &str) -> Result<String, CriError>;
    async fn stop_sandbox(&self, id: &str) -> Result<(), CriError>;
    async fn remove_sandbox(&self, id: &str) -> Result<(), CriError>;
    /// The sandbox's IP address ("" for host-network pods).
    async fn sandbox_ip(&self, id: &str) -> Result<String, CriError>;
    async fn list_sandboxes(&self, labels: &[(&str, &str)]) -> Result<Vec<api::PodSandbox>, CriError>;
    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<api::Container>, CriError>;
    /// GetContainerEvents: the runtime's container and sandbox events, opened on the first poll
    /// and open until the runtime ends it (no deadline). A runtime without the RPC (containerd
    /// 1.6) yields one Unimplemented error.
    fn container_events(&self) -> events::EventStream;
    /// Always sends the sandbox config: containerd 1.6 panics without it.
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, CriError>;
    async fn start_container(&self, id: &str) -> Result<(), CriError>;
    /// Stops with SIGTERM, then SIGKILL after `grace`.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), CriError>;
    async fn remove_container(&self, id: &str) -> Result<(), CriError>;
    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus, CriError>;
    /// Makes the runtime open the container's log file again, by its path: after the file was
    /// renamed away (log rotation), the container's output goes to a fresh file.
    async fn reopen_container_log(&self, id: &str) -> Result<(), CriError>;
    /// The host PID of the container's init process (None if the runtime does not say).
    async fn container_pid(&self, id: &str) -> Result<Option<i32>, CriError>;
    /// Runs `cmd` in the container and waits for it (at most `timeout`): (exit code, output).
    /// Probes and exec hooks use it.
    async fn exec_sync(&self, id: &str, cmd: Vec<String>, timeout: Duration) -> Result<ExecResult, CriError>;
    /// The runtime's streaming URL for one exec, attach or port-forward session (CRI Exec,
    /// Attach, PortForward): the kubelet API proxies the caller's upgraded connection to it.
    async fn streaming_url(&self, request: StreamRequest) -> Result<String, CriError>;
    /// The image's ID if the runtime has it.
    async fn image_id(&self, image: &str) -> Result<Option<String>, CriError>;
    async fn pull_image(&self, image: &str, sandbox: api::PodSandboxConfig) -> Result<String, CriError>;
    /// The image as ImageStatus describes it (its user in `uid` / `username`), None if absent.
    async fn image_status(&self, image: &str) -> Result<Option<api::Image>, CriError>;
    /// The runtime's cgroup driver, asked once and remembered: CRI `RuntimeConfig` where the
    /// runtime has it (containerd 2.x), else containerd's own config from verbose `Status`
    /// (1.6, 1.7); None when neither says.
    async fn cgroup_driver(&self) -> Result<Option<resources::CgroupDriver>, CriError>;
    /// ListContainerStats of the containers carrying every label in `labels` (all for none).
    /// containerd 1.6 answers for exited containers too, with only attributes and the writable
    /// layer; `cpu` and `memory` are set for running ones.
    async fn list_container_stats(&self, labels: &[(&str, &str)]) -> Result<Vec<api::ContainerStats>, CriError>;
    /// ListPodSandboxStats of the sandboxes carrying every label in `labels`: the pod cgroup's CPU
    /// and memory, the sandbox's network and process count (containerd 1.6 implements it; an
    /// older runtime answers Unimplemented).
    async fn list_pod_sandbox_stats(&self, labels: &[(&str, &str)]) -> Result<Vec<api::PodSandboxStats>, CriError>;
}

/// A streaming session to ask the runtime for (kubelet's query names in the comments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRequest {
    Exec {
        container_id: String,
        command: Vec<String>,
        streams: Streams,
    },
    Attach {
        container_id: String,
        streams: Streams,
    },
    /// Ports come from the session's own streams (SPDY) or the `ports` query (WebSocket).
    PortForward {
        sandbox_id: String,
        ports: Vec<i32>,
    },
}

/// Which streams a session has: `input`, `output`, `error`, `tty`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// What an ExecSync ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i32,
    /// stdout then stderr, as the probe message kubelet shows.
    pub output: String,
}

/// The runtime as the daemon's tasks share it.
pub type SharedCri = Arc<dyn Cri>;
