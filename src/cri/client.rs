use std::time::Duration;

use k8s_cri::v1::{
    self as api, image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
};
use tonic::transport::{Channel, Endpoint};

use super::{Cri, ExecResult, StreamRequest, resources::CgroupDriver};
use crate::ops::metrics::RuntimeOperations;

/// A failed runtime call, named by the RPC and the endpoint, so "containerd is down" and "this
/// image is missing" read differently in the log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CriError {
    #[error("invalid container runtime endpoint {endpoint:?}: {message}")]
    Endpoint { endpoint: String, message: String },
    #[error("{rpc} on {endpoint}: {message} ({code:?})")]
    Rpc { rpc: &'static str, endpoint: String, code: tonic::Code, message: String },
}

impl CriError {
    /// The runtime could not be reached at all (socket missing, daemon restarting).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Rpc { code: tonic::Code::Unavailable | tonic::Code::DeadlineExceeded, .. })
    }
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Rpc { code: tonic::Code::DeadlineExceeded, .. })
    }
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Rpc { code: tonic::Code::NotFound, .. })
    }
    pub fn message(&self) -> &str {
        match self {
            Self::Endpoint { message, .. } | Self::Rpc { message, .. } => message,
        }
    }

    /// The error of one call of `rpc` on `endpoint` that the runtime (or the channel) refused.
    pub fn from_status(rpc: &'static str, endpoint: &str, status: &tonic::Status) -> Self {
        Self::Rpc { rpc, endpoint: endpoint.to_owned(), code: status.code(), message: status.message().to_owned() }
    }
}

/// A handle on the runtime's RuntimeService and ImageService. Cheap to clone; the channel is lazy
/// and reconnects by itself, so a restarted containerd needs nothing from us but retries.
#[derive(Clone)]
pub struct Runtime {
    endpoint: String,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    timeout: Duration,
    /// The cgroup driver, once the runtime has answered (`cgroup_driver`).
    cgroup_driver: std::sync::Arc<tokio::sync::OnceCell<Option<CgroupDriver>>>,
    /// kubelet's runtime operation metrics, recorded for every call.
    operations: Option<RuntimeOperations>,
}

macro_rules! call {
    ($self:ident, $client:ident, $method:ident, $rpc:literal, $req:expr) => {
        call!($self, $client, $method, $rpc, $req, $self.timeout)
    };
    ($self:ident, $client:ident, $method:ident, $rpc:literal, $req:expr, $timeout:expr) => {{
        let mut request = tonic::Request::new($req);
        request.set_timeout($timeout);
        let began = std::time::Instant::now();
        let result = $self.$client.clone().$method(request).await;
        let seconds = began.elapsed().as_secs_f64();
        if let Some(operations) = &$self.operations {
            operations.record($rpc, seconds, result.is_err());
        }
        // Off by default; STATICLET_LOG=info,staticlet::cri=trace shows where a pod start's time goes.
        tracing::trace!(rpc = $rpc, ms = seconds * 1e3, ok = result.is_ok(), "runtime call");
        result.map(|r| r.into_inner()).map_err(|status| CriError::from_status($rpc, &$self.endpoint, &status))
    }};
}

impl Runtime {
    pub fn connect(endpoint: &str, timeout: Duration) -> Result<Self, CriError> {
        let invalid = |message: String| CriError::Endpoint { endpoint: endpoint.to_owned(), message };
        if !endpoint.starts_with("unix://") {
            return Err(invalid("only unix:// endpoints are supported".into()));
        }
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| invalid(e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        Ok(Self {
            endpoint: endpoint.to_owned(),
            runtime: RuntimeServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20),
            images: ImageServiceClient::new(channel),
            timeout,
            cgroup_driver: Default::default(),
            operations: None,
        })
    }

    /// Records every call in `operations` (kubelet_runtime_operations_*).
    pub fn instrumented(mut self, operations: RuntimeOperations) -> Self {
        self.operations = Some(operations);
        self
    }
}

#[async_trait::async_trait]
impl Cri for Runtime {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn container_events(&self) -> super::events::EventStream {
        use futures::{StreamExt as _, TryStreamExt as _};
        const RPC: &str = "GetContainerEvents";
        let (mut client, endpoint) = (self.runtime.clone(), self.endpoint.clone());
        let error = move |status: tonic::Status| CriError::from_status(RPC, &endpoint, &status);
        let opened = {
            let error = error.clone();
            // No timeout: the stream is meant to stay open; a dead runtime ends it anyway.
            async move { client.get_container_events(api::GetEventsRequest {}).await.map_err(error) }
        };
        futures::stream::once(opened)
            .map_ok(move |response| {
                response.into_inner().map_ok(super::events::RuntimeEvent::from).map_err(error.clone())
            })
            .try_flatten()
            .boxed()
    }

    /// `(runtime name, runtime version)`, e.g. `("containerd", "1.6.20~ds1")`.
    async fn version(&self) -> Result<(String, String), CriError> {
        let r = call!(self, runtime, version, "Version", api::VersionRequest { version: "v1".into() })?;
        Ok((r.runtime_name, r.runtime_version))
    }

    async fn run_sandbox(&self, config: api::PodSandboxConfig, handler: &str) -> Result<String, CriError> {
        let req = api::RunPodSandboxRequest { config: Some(config), runtime_handler: handler.into() };
        Ok(call!(self, runtime, run_pod_sandbox, "RunPodSandbox", req)?.pod_sandbox_id)
    }

    async fn stop_sandbox(&self, id: &str) -> Result<(), CriError> {
        call!(
            self,
            runtime,
            stop_pod_sandbox,
            "StopPodSandbox",
            api::StopPodSandboxRequest { pod_sandbox_id: id.into() }
        )
        .map(drop)
    }

    async fn remove_sandbox(&self, id: &str) -> Result<(), CriError> {
        let req = api::RemovePodSandboxRequest { pod_sandbox_id: id.into() };
        call!(self, runtime, remove_pod_sandbox, "RemovePodSandbox", req).map(drop)
    }

    /// The sandbox's IP address ("" for host-network pods).
    async fn sandbox_ip(&self, id: &str) -> Result<String, CriError> {
        let req = api::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: false };
        let r = call!(self, runtime, pod_sandbox_status, "PodSandboxStatus", req)?;
        Ok(r.status.and_then(|s| s.network).map(|n| n.ip).unwrap_or_default())
    }

    async fn list_sandboxes(&self, labels: &[(&str, &str)]) -> Result<Vec<api::PodSandbox>, CriError> {
        let filter = api::PodSandboxFilter { label_selector: selector(labels), ..Default::default() };
        let req = api::ListPodSandboxRequest { filter: Some(filter) };
        Ok(call!(self, runtime, list_pod_sandbox, "ListPodSandbox", req)?.items)
    }

    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<api::Container>, CriError> {
        let filter = api::ContainerFilter { label_selector: selector(labels), ..Default::default() };
        let req = api::ListContainersRequest { filter: Some(filter) };
        Ok(call!(self, runtime, list_containers, "ListContainers", req)?.containers)
    }

    /// Always sends the sandbox config: containerd 1.6 panics without it.
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let req = api::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        Ok(call!(self, runtime, create_container, "CreateContainer", req)?.container_id)
    }

    async fn start_container(&self, id: &str) -> Result<(), CriError> {
        call!(self, runtime, start_container, "StartContainer", api::StartContainerRequest { container_id: id.into() })
            .map(drop)
    }

    /// Stops with SIGTERM, then SIGKILL after `grace`.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), CriError> {
        let req = api::StopContainerRequest { container_id: id.into(), timeout: grace.as_secs() as i64 };
        call!(self, runtime, stop_container, "StopContainer", req, self.timeout + grace).map(drop)
    }

    async fn remove_container(&self, id: &str) -> Result<(), CriError> {
        let req = api::RemoveContainerRequest { container_id: id.into() };
        call!(self, runtime, remove_container, "RemoveContainer", req).map(drop)
    }

    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus, CriError> {
        let req = api::ContainerStatusRequest { container_id: id.into(), verbose: false };
        let r = call!(self, runtime, container_status, "ContainerStatus", req)?;
        r.status.ok_or_else(|| CriError::Rpc {
            rpc: "ContainerStatus",
            endpoint: self.endpoint.clone(),
            code: tonic::Code::NotFound,
            message: format!("no status for container {id}"),
        })
    }

    async fn reopen_container_log(&self, id: &str) -> Result<(), CriError> {
        let req = api::ReopenContainerLogRequest { container_id: id.into() };
        call!(self, runtime, reopen_container_log, "ReopenContainerLog", req).map(drop)
    }

    /// The host PID of the container's init process, from the verbose status (None if the runtime
    /// does not say).
    async fn container_pid(&self, id: &str) -> Result<Option<i32>, CriError> {
        let req = api::ContainerStatusRequest { container_id: id.into(), verbose: true };
        let r = call!(self, runtime, container_status, "ContainerStatus", req)?;
        let pid = r
            .info
            .get("info")
            .and_then(|info| serde_json::from_str::<serde_json::Value>(info).ok())
            .and_then(|info| info.get("pid").and_then(serde_json::Value::as_i64))
            .filter(|pid| *pid > 0)
            .map(|pid| pid as i32);
        Ok(pid)
    }

    /// The image's ID if the runtime has it.
    async fn exec_sync(&self, id: &str, cmd: Vec<String>, timeout: Duration) -> Result<ExecResult, CriError> {
        let secs = timeout.as_secs().max(1);
        let req = api::ExecSyncRequest { container_id: id.into(), cmd, timeout: secs as i64 };
        // The runtime enforces `timeout`; the call itself gets a little more so its answer arrives.
        let r = call!(
            self,
            runtime,
            exec_sync,
            "ExecSync",
            req,
            Duration::from_secs(secs) + self.timeout.min(Duration::from_secs(10))
        )?;
        let mut output = String::from_utf8_lossy(&r.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&r.stderr));
        Ok(ExecResult { exit_code: r.exit_code, output })
    }

    async fn streaming_url(&self, request: StreamRequest) -> Result<String, CriError> {
        Ok(match request {
            StreamRequest::Exec { container_id, command, streams } => {
                let req = api::ExecRequest {
                    container_id,
                    cmd: command,
                    tty: streams.tty,
                    stdin: streams.stdin,
                    stdout: streams.stdout,
                    stderr: streams.stderr,
                };
                call!(self, runtime, exec, "Exec", req)?.url
            }
            StreamRequest::Attach { container_id, streams } => {
                let req = api::AttachRequest {
                    container_id,
                    stdin: streams.stdin,
                    tty: streams.tty,
                    stdout: streams.stdout,
                    stderr: streams.stderr,
                };
                call!(self, runtime, attach, "Attach", req)?.url
            }
            StreamRequest::PortForward { sandbox_id, ports } => {
                let req = api::PortForwardRequest { pod_sandbox_id: sandbox_id, port: ports };
                call!(self, runtime, port_forward, "PortForward", req)?.url
            }
        })
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, CriError> {
        let req = api::ImageStatusRequest { image: Some(image_spec(image)), verbose: false };
        Ok(call!(self, images, image_status, "ImageStatus", req)?.image.map(|i| i.id))
    }

    async fn pull_image(&self, image: &str, sandbox: api::PodSandboxConfig) -> Result<String, CriError> {
        let req = api::PullImageRequest { image: Some(image_spec(image)), auth: None, sandbox_config: Some(sandbox) };
        Ok(call!(self, images, pull_image, "PullImage", req)?.image_ref)
    }

    /// The image as ImageStatus describes it, None if absent.
    async fn image_status(&self, image: &str) -> Result<Option<api::Image>, CriError> {
        let req = api::ImageStatusRequest { image: Some(image_spec(image)), verbose: false };
        Ok(call!(self, images, image_status, "ImageStatus", req)?.image)
    }

    /// `RuntimeConfig` (containerd 2.x), else containerd's config from verbose `Status`; asked
    /// once, remembered once answered.
    async fn cgroup_driver(&self) -> Result<Option<CgroupDriver>, CriError> {
        let driver = self
            .cgroup_driver
            .get_or_try_init(|| async {
                match call!(self, runtime, runtime_config, "RuntimeConfig", api::RuntimeConfigRequest {}) {
                    Ok(r) => Ok(r.linux.map(|l| match api::CgroupDriver::try_from(l.cgroup_driver) {
                        Ok(api::CgroupDriver::Cgroupfs) => CgroupDriver::Cgroupfs,
                        _ => CgroupDriver::Systemd,
                    })),
                    Err(CriError::Rpc { code: tonic::Code::Unimplemented, .. }) => {
                        let r = call!(self, runtime, status, "Status", api::StatusRequest { verbose: true })?;
                        let config = r.info.get("config").and_then(|c| serde_json::from_str(c).ok());
                        Ok(config.and_then(|c| super::resources::cgroup_driver_of_containerd_config(&c)))
                    }
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(*driver)
    }

    async fn list_container_stats(&self, labels: &[(&str, &str)]) -> Result<Vec<api::ContainerStats>, CriError> {
        let filter = api::ContainerStatsFilter { label_selector: selector(labels), ..Default::default() };
        let req = api::ListContainerStatsRequest { filter: Some(filter) };
        Ok(call!(self, runtime, list_container_stats, "ListContainerStats", req)?.stats)
    }

    async fn list_pod_sandbox_stats(&self, labels: &[(&str, &str)]) -> Result<Vec<api::PodSandboxStats>, CriError> {
        let filter = api::PodSandboxStatsFilter { label_selector: selector(labels), ..Default::default() };
        let req = api::ListPodSandboxStatsRequest { filter: Some(filter) };
        Ok(call!(self, runtime, list_pod_sandbox_stats, "ListPodSandboxStats", req)?.stats)
    }
}

pub(crate) fn image_spec(image: &str) -> api::ImageSpec {
    api::ImageSpec { image: image.into(), user_specified_image: image.into(), ..Default::default() }
}

fn selector(labels: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
