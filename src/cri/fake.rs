//! A recording, in-memory CRI runtime for unit tests (youki's `Syscall` fake, for CRI): it keeps
//! sandboxes and containers the way containerd would, records every call by RPC name, and fails
//! the next call of any RPC with an error the test scripts. Error paths that are hard to cause
//! on a real containerd (a reserved sandbox name, a pull that fails while the image is present,
//! a start that fails after a create) are reached through it.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use futures::StreamExt as _;

use super::{
    Cri, CriError, ExecResult, StreamRequest, api,
    events::{EventStream, RuntimeEvent},
    resources::CgroupDriver,
};

#[derive(Default)]
struct State {
    sandboxes: Vec<api::PodSandbox>,
    containers: Vec<api::Container>,
    exit_codes: HashMap<String, i32>,
    /// What ExecSync answers, by container ID (default: exit 0, no output).
    exec_results: HashMap<String, ExecResult>,
    images: BTreeSet<String>,
    /// The user each image runs as (`uid`, `username`), for ImageStatus.
    image_users: HashMap<String, (Option<i64>, String)>,
    /// Each sandbox's log directory, and each container's mounts and full log path, as
    /// ContainerStatus reports them.
    log_dirs: HashMap<String, String>,
    mounts: HashMap<String, (Vec<api::Mount>, String)>,
    /// The grace of every StopContainer, by container ID.
    stop_graces: Vec<(String, Duration)>,
    calls: Vec<(String, tokio::time::Instant)>,
    failures: HashMap<&'static str, VecDeque<CriError>>,
    next_id: u64,
    clock: i64,
    /// Added to `clock` for creation times (0: times near the epoch; see `use_wall_clock`).
    clock_base: i64,
    /// The config of the last CreateContainer that succeeded.
    last_container_config: Option<api::ContainerConfig>,
    /// What ListContainerStats and ListPodSandboxStats report, by container or sandbox ID
    /// (default: attributes only, as containerd reports a container that is not running).
    container_stats: HashMap<String, api::ContainerStats>,
    sandbox_stats: HashMap<String, api::LinuxPodSandboxStats>,
    /// GetContainerEvents: answered Unimplemented (containerd 1.6) until `enable_events`; then
    /// each call takes the next stream a test made, or one that never yields.
    events_enabled: bool,
    event_streams: VecDeque<EventReceiver>,
}

type EventReceiver = tokio::sync::mpsc::UnboundedReceiver<Result<RuntimeEvent, CriError>>;

#[derive(Default)]
pub struct FakeCri {
    state: Mutex<State>,
}

pub const ENDPOINT: &str = "unix:///fake/cri.sock";

/// An error as the runtime would return it for `rpc`.
pub fn rpc_error(rpc: &'static str, code: tonic::Code, message: &str) -> CriError {
    CriError::Rpc { rpc, endpoint: ENDPOINT.into(), code, message: message.into() }
}

impl FakeCri {
    pub fn with_images(images: &[&str]) -> Self {
        let fake = Self::default();
        fake.state().images.extend(images.iter().map(|i| i.to_string()));
        fake
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake state")
    }

    /// `image` (added if missing) runs as `uid` or `username`, as its config's User says.
    pub fn set_image_user(&self, image: &str, uid: Option<i64>, username: &str) {
        let mut state = self.state();
        state.images.insert(image.into());
        state.image_users.insert(image.into(), (uid, username.into()));
    }

    /// The next call of `rpc` fails with `error` (errors queue up per RPC).
    pub fn fail_next(&self, rpc: &'static str, error: CriError) {
        self.state().failures.entry(rpc).or_default().push_back(error);
    }

    /// Every call so far, as `RPC` or `RPC id`.
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.iter().map(|(call, _)| call.clone()).collect()
    }

    /// When each call of `rpc` was made (tokio time, so paused-time tests see exact waits).
    pub fn call_times(&self, rpc: &str) -> Vec<tokio::time::Instant> {
        let calls = &self.state().calls;
        calls.iter().filter(|(call, _)| call.split(' ').next() == Some(rpc)).map(|(_, at)| *at).collect()
    }

    /// Adds a ready sandbox that does not carry our labels, as a crashed run leaves one behind.
    pub fn add_foreign_sandbox(&self, id: &str) {
        let sandbox =
            api::PodSandbox { id: id.into(), state: api::PodSandboxState::SandboxReady as i32, ..Default::default() };
        self.state().sandboxes.push(sandbox);
    }

    /// The runtime handler each sandbox was run with, by ID.
    pub fn sandbox_handlers(&self) -> Vec<(String, String)> {
        self.state().sandboxes.iter().map(|s| (s.id.clone(), s.runtime_handler.clone())).collect()
    }

    pub fn sandbox_ids(&self) -> Vec<String> {
        self.state().sandboxes.iter().map(|s| s.id.clone()).collect()
    }

    /// Container IDs with their CRI state.
    /// The config the last container was created with.
    pub fn last_container_config(&self) -> Option<api::ContainerConfig> {
        self.state.lock().unwrap().last_container_config.clone()
    }

    pub fn containers(&self) -> Vec<(String, api::ContainerState)> {
        let state = self.state();
        state.containers.iter().map(|c| (c.id.clone(), api::ContainerState::try_from(c.state).unwrap())).collect()
    }

    /// Creation times from now on are the wall clock's (plus a nanosecond per call), for tests of
    /// rules that compare them with `SystemTime::now()` (activeDeadlineSeconds).
    pub fn use_wall_clock(&self) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
        self.state().clock_base = now.as_nanos() as i64;
    }

    /// Every StopContainer so far: the container and the grace (SIGKILL timeout) it was given.
    pub fn stop_graces(&self) -> Vec<(String, Duration)> {
        self.state().stop_graces.clone()
    }

    /// The config's mounts of container `id`, as it was created.
    pub fn mounts(&self, id: &str) -> Vec<api::Mount> {
        self.state().mounts.get(id).map(|(m, _)| m.clone()).unwrap_or_default()
    }

    /// ExecSync in container `id` answers this from now on.
    pub fn set_exec_result(&self, id: &str, exit_code: i32, output: &str) {
        self.state().exec_results.insert(id.into(), ExecResult { exit_code, output: output.into() });
    }

    /// The container's process exits with `code`.
    pub fn exit(&self, id: &str, code: i32) {
        let mut state = self.state();
        state.exit_codes.insert(id.into(), code);
        if let Some(c) = state.containers.iter_mut().find(|c| c.id == id) {
            c.state = api::ContainerState::ContainerExited as i32;
        }
    }

    /// ListContainerStats reports `stats` (its attributes filled in) for container `id`.
    pub fn set_container_stats(&self, id: &str, stats: api::ContainerStats) {
        self.state().container_stats.insert(id.into(), stats);
    }

    /// ListPodSandboxStats reports `stats` for sandbox `id`.
    pub fn set_sandbox_stats(&self, id: &str, stats: api::LinuxPodSandboxStats) {
        self.state().sandbox_stats.insert(id.into(), stats);
    }

    /// The runtime has container events from now on: the next GetContainerEvents streams what
    /// is sent here (an error sent ends that stream, as a broken connection would).
    pub fn enable_events(&self) -> tokio::sync::mpsc::UnboundedSender<Result<RuntimeEvent, CriError>> {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut state = self.state();
        state.events_enabled = true;
        state.event_streams.push_back(receiver);
        sender
    }

    fn call(&self, rpc: &'static str, id: &str) -> Result<std::sync::MutexGuard<'_, State>, CriError> {
        let mut state = self.state();
        let call = if id.is_empty() { rpc.to_owned() } else { format!("{rpc} {id}") };
        state.calls.push((call, tokio::time::Instant::now()));
        if let Some(error) = state.failures.get_mut(rpc).and_then(VecDeque::pop_front) {
            return Err(error);
        }
        state.clock += 1;
        Ok(state)
    }
}

impl State {
    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }
}

fn not_found(rpc: &'static str, id: &str) -> CriError {
    rpc_error(rpc, tonic::Code::NotFound, &format!("{id} not found"))
}

fn matches(labels: &HashMap<String, String>, selector: &[(&str, &str)]) -> bool {
    selector.iter().all(|(k, v)| labels.get(*k).is_some_and(|l| l == v))
}

#[async_trait::async_trait]
impl Cri for FakeCri {
    fn endpoint(&self) -> &str {
        ENDPOINT
    }

    fn container_events(&self) -> EventStream {
        const RPC: &str = "GetContainerEvents";
        let mut state = match self.call(RPC, "") {
            Ok(state) => state,
            Err(e) => return futures::stream::iter([Err(e)]).boxed(),
        };
        if !state.events_enabled {
            return futures::stream::iter([Err(rpc_error(RPC, tonic::Code::Unimplemented, "unknown method"))]).boxed();
        }
        let Some(mut receiver) = state.event_streams.pop_front() else {
            return futures::stream::pending().boxed();
        };
        // An error is the stream's last item, as on a real connection.
        futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
            .scan(false, |ended, item| {
                let item = (!*ended).then(|| {
                    *ended = item.is_err();
                    item
                });
                futures::future::ready(item)
            })
            .boxed()
    }

    async fn version(&self) -> Result<(String, String), CriError> {
        drop(self.call("Version", "")?);
        Ok(("fake".into(), "0.0.0".into()))
    }

    async fn run_sandbox(&self, config: api::PodSandboxConfig, handler: &str) -> Result<String, CriError> {
        let mut state = self.call("RunPodSandbox", "")?;
        let id = state.new_id("sandbox-");
        let sandbox = api::PodSandbox {
            id: id.clone(),
            state: api::PodSandboxState::SandboxReady as i32,
            created_at: state.clock_base + state.clock,
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            metadata: config.metadata.clone(),
            runtime_handler: handler.into(),
        };
        state.log_dirs.insert(id.clone(), config.log_directory.clone());
        state.sandboxes.push(sandbox);
        Ok(id)
    }

    async fn stop_sandbox(&self, id: &str) -> Result<(), CriError> {
        let mut state = self.call("StopPodSandbox", id)?;
        let sandbox = state.sandboxes.iter_mut().find(|s| s.id == id).ok_or_else(|| not_found("StopPodSandbox", id))?;
        sandbox.state = api::PodSandboxState::SandboxNotready as i32;
        for c in state.containers.iter_mut().filter(|c| c.pod_sandbox_id == id) {
            c.state = api::ContainerState::ContainerExited as i32;
        }
        Ok(())
    }

    async fn remove_sandbox(&self, id: &str) -> Result<(), CriError> {
        let mut state = self.call("RemovePodSandbox", id)?;
        state.sandboxes.retain(|s| s.id != id);
        state.containers.retain(|c| c.pod_sandbox_id != id);
        Ok(())
    }

    async fn sandbox_ip(&self, id: &str) -> Result<String, CriError> {
        drop(self.call("PodSandboxStatus", id)?);
        Ok("10.0.0.2".into())
    }

    async fn list_sandboxes(&self, labels: &[(&str, &str)]) -> Result<Vec<api::PodSandbox>, CriError> {
        let state = self.call("ListPodSandbox", "")?;
        Ok(state.sandboxes.iter().filter(|s| matches(&s.labels, labels)).cloned().collect())
    }

    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<api::Container>, CriError> {
        let state = self.call("ListContainers", "")?;
        Ok(state.containers.iter().filter(|c| matches(&c.labels, labels)).cloned().collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        _sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let mut state = self.call("CreateContainer", sandbox_id)?;
        if !state.sandboxes.iter().any(|s| s.id == sandbox_id) {
            return Err(not_found("CreateContainer", sandbox_id));
        }
        let id = state.new_id("container-");
        let log_dir = state.log_dirs.get(sandbox_id).cloned().unwrap_or_default();
        let log_path =
            if config.log_path.is_empty() { String::new() } else { format!("{log_dir}/{}", config.log_path) };
        state.mounts.insert(id.clone(), (config.mounts.clone(), log_path));
        state.last_container_config = Some(config.clone());
        let container = api::Container {
            id: id.clone(),
            pod_sandbox_id: sandbox_id.into(),
            state: api::ContainerState::ContainerCreated as i32,
            created_at: state.clock_base + state.clock,
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            metadata: config.metadata.clone(),
            image: config.image.clone(),
            ..Default::default()
        };
        state.containers.push(container);
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<(), CriError> {
        let mut state = self.call("StartContainer", id)?;
        let c = state.containers.iter_mut().find(|c| c.id == id).ok_or_else(|| not_found("StartContainer", id))?;
        c.state = api::ContainerState::ContainerRunning as i32;
        Ok(())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), CriError> {
        let mut state = self.call("StopContainer", id)?;
        state.stop_graces.push((id.into(), grace));
        let c = state.containers.iter_mut().find(|c| c.id == id).ok_or_else(|| not_found("StopContainer", id))?;
        c.state = api::ContainerState::ContainerExited as i32;
        state.exit_codes.entry(id.into()).or_insert(143);
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), CriError> {
        let mut state = self.call("RemoveContainer", id)?;
        state.containers.retain(|c| c.id != id);
        Ok(())
    }

    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus, CriError> {
        let state = self.call("ContainerStatus", id)?;
        let c = state.containers.iter().find(|c| c.id == id).ok_or_else(|| not_found("ContainerStatus", id))?;
        let code = state.exit_codes.get(id).copied().unwrap_or(0);
        let (mounts, log_path) = state.mounts.get(id).cloned().unwrap_or_default();
        Ok(api::ContainerStatus {
            mounts,
            log_path,
            id: id.into(),
            metadata: c.metadata.clone(),
            state: c.state,
            exit_code: code,
            finished_at: if code != 0 || c.state == api::ContainerState::ContainerExited as i32 { 1 } else { 0 },
            reason: if code == 0 { "Completed".into() } else { "Error".into() },
            ..Default::default()
        })
    }

    /// Like containerd: a container that is not running has no log to reopen.
    async fn reopen_container_log(&self, id: &str) -> Result<(), CriError> {
        let state = self.call("ReopenContainerLog", id)?;
        let c = state.containers.iter().find(|c| c.id == id).ok_or_else(|| not_found("ReopenContainerLog", id))?;
        if c.state != api::ContainerState::ContainerRunning as i32 {
            return Err(rpc_error("ReopenContainerLog", tonic::Code::FailedPrecondition, "container is not running"));
        }
        Ok(())
    }

    async fn container_pid(&self, id: &str) -> Result<Option<i32>, CriError> {
        drop(self.call("ContainerStatus", id)?);
        Ok(None)
    }

    async fn exec_sync(&self, id: &str, _cmd: Vec<String>, _timeout: Duration) -> Result<ExecResult, CriError> {
        let state = self.call("ExecSync", id)?;
        if !state.containers.iter().any(|c| c.id == id) {
            return Err(not_found("ExecSync", id));
        }
        Ok(state.exec_results.get(id).cloned().unwrap_or(ExecResult { exit_code: 0, output: String::new() }))
    }

    async fn streaming_url(&self, request: StreamRequest) -> Result<String, CriError> {
        let (rpc, id) = match &request {
            StreamRequest::Exec { container_id, .. } => ("Exec", container_id),
            StreamRequest::Attach { container_id, .. } => ("Attach", container_id),
            StreamRequest::PortForward { sandbox_id, .. } => ("PortForward", sandbox_id),
        };
        let _state = self.call(rpc, id)?;
        Ok(format!("http://127.0.0.1:1/{}/{id}", rpc.to_lowercase()))
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, CriError> {
        let state = self.call("ImageStatus", image)?;
        Ok(state.images.contains(image).then(|| format!("sha256:{image}")))
    }

    async fn pull_image(&self, image: &str, _sandbox: api::PodSandboxConfig) -> Result<String, CriError> {
        let mut state = self.call("PullImage", image)?;
        state.images.insert(image.into());
        Ok(format!("sha256:{image}"))
    }

    async fn image_status(&self, image: &str) -> Result<Option<api::Image>, CriError> {
        let state = self.call("ImageStatus", image)?;
        if !state.images.contains(image) {
            return Ok(None);
        }
        let (uid, username) = state.image_users.get(image).cloned().unwrap_or_default();
        Ok(Some(api::Image {
            id: format!("sha256:{image}"),
            uid: uid.map(|value| api::Int64Value { value }),
            username,
            ..Default::default()
        }))
    }

    /// Unknown, so unit tests never write cgroups; not recorded (the real client asks once per
    /// daemon, so it is no step of an action).
    async fn cgroup_driver(&self) -> Result<Option<CgroupDriver>, CriError> {
        Ok(None)
    }

    async fn list_container_stats(&self, labels: &[(&str, &str)]) -> Result<Vec<api::ContainerStats>, CriError> {
        let state = self.call("ListContainerStats", "")?;
        let stats = state.containers.iter().filter(|c| matches(&c.labels, labels)).map(|c| api::ContainerStats {
            attributes: Some(api::ContainerAttributes {
                id: c.id.clone(),
                metadata: c.metadata.clone(),
                labels: c.labels.clone(),
                annotations: c.annotations.clone(),
            }),
            ..state.container_stats.get(&c.id).cloned().unwrap_or_default()
        });
        Ok(stats.collect())
    }

    async fn list_pod_sandbox_stats(&self, labels: &[(&str, &str)]) -> Result<Vec<api::PodSandboxStats>, CriError> {
        let state = self.call("ListPodSandboxStats", "")?;
        let stats = state.sandboxes.iter().filter(|s| matches(&s.labels, labels)).map(|s| api::PodSandboxStats {
            attributes: Some(api::PodSandboxAttributes {
                id: s.id.clone(),
                metadata: s.metadata.clone(),
                labels: s.labels.clone(),
                annotations: s.annotations.clone(),
            }),
            linux: state.sandbox_stats.get(&s.id).cloned(),
            windows: None,
        });
        Ok(stats.collect())
    }
}
