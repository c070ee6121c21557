//! Carrying out one `Action` through CRI, with the events and waiting reasons kubelet gives each
//! step (Pulled, Created, Started; ErrImagePull, CreateContainerConfigError, CreateContainerError,
//! RunContainerError). An error is returned to the loop, which logs it once and retries with a
//! doubling wait.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant, SystemTime},
};

use super::{
    decide::{self, Action, Exit, ImagePlan, image_plan},
    stop::{ignore_not_found, remove_sandbox},
    termination,
    worker::Worker,
};
use crate::cri::{
    CriError, SharedCri, api,
    host::Host,
    hosts, pod_cgroup,
    resources::{self, PodCgroups},
    security, translate, volumes,
};
use crate::ops::metrics::label;

impl Worker {
    pub(super) async fn execute(&mut self, action: Action) -> Result<(), CriError> {
        let runtime = self.ctx.runtime.clone();
        match action {
            Action::CreateSandbox { attempt, stop } => {
                for id in stop {
                    ignore_not_found(runtime.stop_sandbox(&id).await)?;
                }
                let log_dir = translate::pod_log_dir(&self.ctx.pod_logs_dir, &self.pod);
                let _ = std::fs::create_dir_all(&log_dir);
                let cgroups = self.pod_cgroups().await?;
                let config =
                    translate::sandbox_config_in(&self.pod, &self.ctx.node, &self.ctx.pod_logs_dir, attempt, cgroups);
                let handler = self.pod.spec().runtime_class_name.clone().unwrap_or_default();
                let run = match runtime.run_sandbox(config.clone(), &handler).await {
                    // After a crash the runtime may still hold the name for a sandbox we no longer
                    // list; remove the holder and try once more (ENVIRONMENT.md).
                    Err(e) if e.message().contains("is reserved for") => {
                        if let Some(holder) = reserved_holder(e.message()) {
                            remove_sandbox(runtime.as_ref(), holder).await?;
                        }
                        runtime.run_sandbox(config, &handler).await
                    }
                    other => other,
                };
                let id = run.map_err(|e| {
                    self.ctx.metrics.started_pods_errors.inc();
                    self.sandbox_failed(e, &handler)
                })?;
                tracing::info!(sandbox = %id, attempt, "sandbox running");
                self.ctx.metrics.started_pods.inc();
                if !self.pod.host_network() {
                    let ip = runtime.sandbox_ip(&id).await.unwrap_or_default();
                    self.ips.insert(id, ip);
                }
                Ok(())
            }
            Action::StartContainer { sandbox_id, name, restart_count } => {
                self.start_container(&sandbox_id, &name, restart_count).await
            }
            Action::FinishAbandonedStart { id, sandbox_id, name, restart_count } => {
                runtime.remove_container(&id).await?;
                self.start_container(&sandbox_id, &name, restart_count).await
            }
            Action::StartCreated { id } => {
                if let Err(e) = runtime.start_container(&id).await {
                    // A container that cannot start is replaced by a fresh one on the next pass.
                    let _ = runtime.remove_container(&id).await;
                    return Err(e);
                }
                let snapshot = self.ctx.observer.latest();
                let created = snapshot.pod(&self.pod.uid).and_then(|p| p.containers.iter().find(|c| c.id == id));
                match created.map(|c| (c.name.clone(), c.sandbox_id.clone())) {
                    Some((name, sandbox_id)) => self.post_start(&id, &name, &sandbox_id).await,
                    None => Ok(()),
                }
            }
            Action::KillUnhealthy { id, name, probe, grace } => {
                let message =
                    format!("Container {name} failed {} probe, will be restarted", probe.word().to_lowercase());
                tracing::info!(container = %name, probe = probe.word(), grace_seconds = grace.as_secs(), "killing unhealthy container");
                self.ctx.events.normal(&self.pod, "Killing", message);
                self.kill_container(&id, &name, grace).await
            }
            Action::InspectExit { id } => {
                let status = runtime.container_status(&id).await?;
                let now = SystemTime::now();
                let finished = if status.finished_at > 0 {
                    SystemTime::UNIX_EPOCH + Duration::from_nanos(status.finished_at as u64)
                } else {
                    now
                };
                let ended = decide::ended_at(finished, now, Instant::now());
                let name = status.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
                let abandoned = decide::abandoned_start(&status.reason, status.started_at, &status.message);
                if abandoned {
                    tracing::info!(container = %name, runtime_message = %status.message, "finishing a start that a killed staticlet left half done; not a restart");
                } else {
                    tracing::info!(container = %name, exit_code = status.exit_code, reason = %status.reason, "container exited");
                }
                let message = termination::read(&status, self.pod.spec().containers.iter().find(|c| c.name == name));
                self.exits.insert(
                    id,
                    Exit { code: status.exit_code, finished, ended, reason: status.reason, message, abandoned },
                );
                Ok(())
            }
            Action::Cleanup { containers, sandboxes } => {
                for id in containers {
                    ignore_not_found(runtime.remove_container(&id).await)?;
                    self.exits.remove(&id);
                }
                for id in sandboxes {
                    remove_sandbox(runtime.as_ref(), &id).await?;
                }
                Ok(())
            }
            Action::Wait { .. } | Action::Idle => Ok(()),
        }
    }

    async fn start_container(&mut self, sandbox_id: &str, name: &str, restart_count: u32) -> Result<(), CriError> {
        let runtime = self.ctx.runtime.clone();
        let container = self.pod.container(name).expect("decide names the pod's containers").clone();
        let image = container.image.clone().unwrap_or_default();
        let cgroups = self.pod_cgroups().await?;
        let sandbox_config =
            translate::sandbox_config_in(&self.pod, &self.ctx.node, &self.ctx.pod_logs_dir, 0, cgroups);

        if let Err(e) = self.ensure_image(&image, container.image_pull_policy.as_deref(), &sandbox_config).await {
            self.waiting.insert(name.to_owned(), "ErrImagePull".into());
            self.ctx.events.warning(&self.pod, "Failed", format!("Failed to pull image \"{image}\": {e}"));
            return Err(e);
        }
        if let Some(problem) = self.config_problem(&container, &image).await? {
            self.waiting.insert(name.to_owned(), "CreateContainerConfigError".into());
            self.ctx.events.warning(&self.pod, "Failed", format!("Error: {problem}"));
            return Err(CriError::Rpc {
                rpc: "CreateContainer",
                endpoint: runtime.endpoint().into(),
                code: tonic::Code::FailedPrecondition,
                message: problem,
            });
        }
        let volumes_dir = volumes::pod_volumes_dir(&self.ctx.root_dir, &self.pod);
        let sub_paths = match self.prepare_volumes(&container, &volumes_dir) {
            Ok(sub_paths) => sub_paths,
            Err((reason, problem)) => {
                self.waiting.insert(name.to_owned(), "CreateContainerConfigError".into());
                self.ctx.events.warning(&self.pod, reason, problem.clone());
                return Err(CriError::Rpc {
                    rpc: "CreateContainer",
                    endpoint: runtime.endpoint().into(),
                    code: tonic::Code::FailedPrecondition,
                    message: problem,
                });
            }
        };
        let _ = std::fs::create_dir_all(translate::pod_log_dir(&self.ctx.pod_logs_dir, &self.pod).join(name));
        if !self.pod.host_network() && !self.ips.contains_key(sandbox_id) {
            let ip = runtime.sandbox_ip(sandbox_id).await.unwrap_or_default();
            self.ips.insert(sandbox_id.to_owned(), ip);
        }
        let pod_ip = self.ips.get(sandbox_id).cloned().unwrap_or_default();
        let node_ip = &self.ctx.node_ip;
        let ctx = translate::ContainerContext {
            restart_count,
            pod_ip: &pod_ip,
            node_ip,
            volumes_dir: &volumes_dir,
            sub_paths: &sub_paths,
        };
        let mut config = translate::container_config(&self.pod, &self.ctx.node, &container, &ctx);
        config.mounts.extend(termination::prepare(&self.ctx.root_dir, &self.pod, &container, restart_count));
        hosts::prepare(&self.ctx.root_dir, &self.pod, &pod_ip, &mut config);
        let oom_score_adj = config.linux.as_ref().and_then(|l| l.resources.as_ref()).map_or(0, |r| r.oom_score_adj);
        let container_type =
            if self.pod.spec().containers.iter().any(|c| c.name == name) { "container" } else { "init_container" };
        let id = match runtime.create_container(sandbox_id, config, sandbox_config).await {
            Ok(id) => id,
            Err(e) => {
                self.count_start_error(container_type, &e);
                self.waiting.insert(name.to_owned(), "CreateContainerError".into());
                self.ctx.events.warning(&self.pod, "Failed", format!("Error: {e}"));
                return Err(e);
            }
        };
        self.ctx.events.normal(&self.pod, "Created", format!("Created container {name}"));
        if let Err(e) = runtime.start_container(&id).await {
            self.count_start_error(container_type, &e);
            self.waiting.insert(name.to_owned(), "RunContainerError".into());
            self.ctx.events.warning(&self.pod, "Failed", format!("Error: {e}"));
            let _ = runtime.remove_container(&id).await;
            return Err(e);
        }
        self.ctx.events.normal(&self.pod, "Started", format!("Started container {name}"));
        report_oom_score_clamp(runtime.clone(), id.clone(), oom_score_adj);
        self.waiting.remove(name);
        if restart_count > 0 {
            self.backoff.record_restart(name, Instant::now());
            self.ctx.metrics.container_restarts.inc();
        }
        self.ctx.metrics.started_containers.get_or_create(&label("container_type", container_type)).inc();
        tracing::info!(container = %name, id = %id, restart_count, "container started");
        self.post_start(&id, name, sandbox_id).await
    }

    /// kubelet_started_containers_errors_total, by gRPC code as kubelet labels it.
    fn count_start_error(&self, container_type: &str, error: &CriError) {
        let code = match error {
            CriError::Rpc { code, .. } => format!("{code:?}"),
            CriError::Endpoint { .. } => "Unavailable".to_owned(),
        };
        let labels = vec![("code".to_owned(), code), ("container_type".to_owned(), container_type.to_owned())];
        self.ctx.metrics.started_containers_errors.get_or_create(&labels).inc();
    }

    /// kubelet's FailedCreatePodSandBox event; with a runtime handler asked for, the error names
    /// `spec.runtimeClassName`, the likeliest cause (containerd refuses an unknown handler).
    fn sandbox_failed(&self, error: CriError, handler: &str) -> CriError {
        let error = match error {
            CriError::Rpc { rpc, endpoint, code, message } if !handler.is_empty() && !code_is_transient(code) => {
                let message = format!("spec.runtimeClassName {handler:?} (used as the runtime handler): {message}");
                CriError::Rpc { rpc, endpoint, code, message }
            }
            other => other,
        };
        if !error.is_unavailable() {
            let message = format!("Failed to create pod sandbox: {error}");
            self.ctx.events.warning(&self.pod, "FailedCreatePodSandBox", message);
        }
        error
    }

    /// The pod's volumes made ready on the host before a container is created, as kubelet's
    /// volume manager does: hostPath types checked (and the `OrCreate` ones created), emptyDirs
    /// made (a tmpfs for `medium: Memory`), downwardAPI files written; then this container's
    /// subPaths resolved inside their volumes. An error is (event reason, message).
    fn prepare_volumes(
        &self,
        container: &k8s_openapi::api::core::v1::Container,
        volumes_dir: &Path,
    ) -> Result<BTreeMap<usize, PathBuf>, (&'static str, String)> {
        let spec = self.pod.spec();
        let fs_group = spec.security_context.as_ref().and_then(|s| s.fs_group);
        let failed_mount =
            |volume: &str, e: String| ("FailedMount", format!("MountVolume.SetUp failed for volume {volume:?} : {e}"));
        for volume in spec.volumes.iter().flatten() {
            let Some(dir) = volumes::volume_host_path(volume, volumes_dir) else { continue };
            if let Some(host) = &volume.host_path {
                volumes::prepare_host_path(&host.path, host.type_.as_deref().unwrap_or_default())
                    .map_err(|e| failed_mount(&volume.name, e))?;
            } else if let Some(empty_dir) = &volume.empty_dir {
                if let Some(size) = volumes::memory_medium(empty_dir) {
                    volumes::mount_tmpfs(&dir, size).map_err(|e| {
                        failed_mount(&volume.name, format!("cannot mount a tmpfs at {}: {e}", dir.display()))
                    })?;
                }
                if let Err(e) = security::prepare_empty_dir(&dir, fs_group) {
                    tracing::warn!(volume = %volume.name, error = %e, "cannot set up emptyDir");
                }
            } else if volumes::is_generated(volume) {
                let files = volumes::downward_files(&self.pod, volume, Host::current())
                    .map_err(|e| failed_mount(&volume.name, e))?;
                volumes::write_files(&dir, &files)
                    .map_err(|e| failed_mount(&volume.name, format!("cannot write {}: {e}", dir.display())))?;
            }
        }
        let env = translate::environment_of(&self.pod, &self.ctx.node, container, "", &self.ctx.node_ip);
        let lookup: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut sub_paths = BTreeMap::new();
        for (i, mount) in container.volume_mounts.iter().flatten().enumerate() {
            let Some(sub_path) = translate::sub_path(mount, &lookup) else { continue };
            let volume = spec.volumes.iter().flatten().find(|v| v.name == mount.name);
            let Some(root) = volume.and_then(|v| volumes::volume_host_path(v, volumes_dir)) else { continue };
            let resolved = volumes::resolve_sub_path(&root, &sub_path).map_err(|e| {
                (
                    "Failed",
                    format!(
                        "Error: failed to prepare subPath for volumeMount {:?} of container {:?}: {e}",
                        mount.name, container.name
                    ),
                )
            })?;
            sub_paths.insert(i, resolved);
        }
        Ok(sub_paths)
    }

    /// Where this pod's cgroup goes (the runtime's driver is asked once per daemon); with kubelet's
    /// cgroupfs layout, the pod cgroup is created and its values written first.
    async fn pod_cgroups(&self) -> Result<PodCgroups, CriError> {
        static ANNOUNCED: AtomicBool = AtomicBool::new(false);
        let host = Host::current();
        let driver = self.ctx.runtime.cgroup_driver().await?;
        let cgroups = resources::pod_cgroups(driver, host.cgroup_v2);
        if !ANNOUNCED.swap(true, Ordering::Relaxed) {
            tracing::info!(?driver, cgroup_v2 = host.cgroup_v2, layout = ?cgroups, "pod cgroups");
        }
        if cgroups == PodCgroups::Cgroupfs {
            let spec = self.pod.spec();
            let parent = cgroups.parent(spec, &self.pod.uid);
            let values = resources::pod_cgroup(spec);
            if let Err(e) = pod_cgroup::ensure(Path::new(pod_cgroup::CGROUP_ROOT), &parent, &values, host.cpus) {
                tracing::warn!(cgroup = %parent, error = %e, "cannot write the pod's cgroup values");
            }
        }
        Ok(cgroups)
    }

    /// kubelet's checks before a container is created (`security::config_problem`): AppArmor
    /// asked for where the host has none, runAsNonRoot with a root user. The image's user is
    /// asked of the runtime only when runAsNonRoot needs it.
    async fn config_problem(
        &self,
        container: &k8s_openapi::api::core::v1::Container,
        image: &str,
    ) -> Result<Option<String>, CriError> {
        let spec = self.pod.spec();
        let image_status = if security::needs_image_user(spec, container) {
            self.ctx.runtime.image_status(image).await?
        } else {
            None
        };
        let image_user = image_status.as_ref().map(|i| (i.uid.as_ref().map(|u| u.value), i.username.as_str()));
        // kubelet's format.Pod: name_namespace(uid).
        let pod = format!("{}_{}({})", self.pod.name(), self.pod.namespace(), self.pod.uid);
        Ok(security::config_problem(&pod, &self.pod.annotations(), spec, container, Host::current(), image_user))
    }

    /// Makes the image ready as `decide::image_plan` says.
    async fn ensure_image(
        &self,
        image: &str,
        policy: Option<&str>,
        sandbox: &api::PodSandboxConfig,
    ) -> Result<(), CriError> {
        let runtime = &self.ctx.runtime;
        let present = runtime.image_id(image).await?.is_some();
        match image_plan(policy, present) {
            ImagePlan::UseLocal => {
                let message = format!("Container image \"{image}\" already present on machine");
                self.ctx.events.normal(&self.pod, "Pulled", message);
                Ok(())
            }
            ImagePlan::Missing => Err(CriError::Rpc {
                rpc: "ImageStatus",
                endpoint: runtime.endpoint().into(),
                code: tonic::Code::NotFound,
                message: format!("image {image} is not present and imagePullPolicy is Never"),
            }),
            ImagePlan::Pull { fallback } => match runtime.pull_image(image, sandbox.clone()).await {
                Ok(_) => {
                    self.ctx.events.normal(&self.pod, "Pulled", format!("Successfully pulled image \"{image}\""));
                    Ok(())
                }
                Err(e) if fallback => {
                    tracing::warn!(image, error = %e, "pull failed; using the image already on the node");
                    Ok(())
                }
                Err(e) => Err(e),
            },
        }
    }
}

/// Once per daemon, after the first container that asked for a negative oom_score_adj
/// (Guaranteed or node-critical pods: -997) started: if its process got another score, say so.
/// containerd's `restrict_oom_score_adj` (needed where nothing may lower a score, as without
/// CAP_SYS_RESOURCE) raises every container to containerd's own score.
fn report_oom_score_clamp(runtime: SharedCri, id: String, asked: i64) {
    static CHECKED: AtomicBool = AtomicBool::new(false);
    if asked >= 0 || CHECKED.swap(true, Ordering::Relaxed) {
        return;
    }
    tokio::spawn(async move {
        let pid = runtime.container_pid(&id).await.ok().flatten();
        let path = pid.map(|pid| format!("/proc/{pid}/oom_score_adj"));
        let got = path.and_then(|p| std::fs::read_to_string(p).ok()).and_then(|s| s.trim().parse::<i64>().ok());
        match got {
            Some(got) if got != asked => tracing::warn!(
                container = %id,
                asked,
                got,
                "the runtime clamps oom_score_adj (containerd's restrict_oom_score_adj keeps containers at or above its own score); said once"
            ),
            Some(_) => {}
            None => CHECKED.store(false, Ordering::Relaxed), // not seen: the next such container tells
        }
    });
}

fn code_is_transient(code: tonic::Code) -> bool {
    matches!(code, tonic::Code::Unavailable | tonic::Code::DeadlineExceeded)
}

/// The sandbox ID in containerd's `name "..." is reserved for "<id>"` error.
fn reserved_holder(message: &str) -> Option<&str> {
    let rest = &message[message.find("is reserved for")? + "is reserved for".len()..];
    let id = rest.trim().trim_matches(|c| c == '"' || c == '\\');
    let id = id.split(['"', '\\', ' ']).next()?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        cri::{
            Cri,
            fake::{FakeCri, rpc_error},
        },
        manifest::{Origin, StaticPod, parse_manifest},
        supervisor::Context,
    };

    const IMAGE: &str = "localhost/app:1";

    fn pod(pull_policy: &str) -> StaticPod {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  hostNetwork: true\n  containers:\n  - {{name: app, image: \"{IMAGE}\", imagePullPolicy: {pull_policy}}}\n"
        );
        parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "n").unwrap().remove(0)
    }

    fn worker(fake: Arc<FakeCri>, pod: StaticPod) -> (Worker, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context::for_tests(fake, dir.path());
        (Worker::new(Arc::new(ctx), pod, String::new()), dir)
    }

    async fn sandbox(fake: &FakeCri, pod: &StaticPod) -> String {
        fake.run_sandbox(translate::sandbox_config(pod, "n", Path::new("/tmp"), 0), "").await.unwrap()
    }

    fn start(sandbox_id: &str) -> Action {
        Action::StartContainer { sandbox_id: sandbox_id.into(), name: "app".into(), restart_count: 0 }
    }

    #[tokio::test]
    async fn reserved_sandbox_name_removes_the_holder_and_retries_once() {
        let fake = Arc::new(FakeCri::default());
        fake.add_foreign_sandbox("old-holder");
        let message =
            r#"failed to reserve sandbox name "p-n_default_u_0": name "p-n_default_u_0" is reserved for "old-holder""#;
        fake.fail_next("RunPodSandbox", rpc_error("RunPodSandbox", tonic::Code::Unknown, message));
        let (mut w, _dir) = worker(fake.clone(), pod("IfNotPresent"));

        w.execute(Action::CreateSandbox { attempt: 0, stop: vec![] }).await.unwrap();

        assert_eq!(
            fake.calls(),
            ["RunPodSandbox", "StopPodSandbox old-holder", "RemovePodSandbox old-holder", "RunPodSandbox"]
        );
        assert_eq!(fake.sandbox_ids(), ["sandbox-1"], "the holder is gone and one new sandbox runs");
    }

    fn pod_with_handler(handler: &str) -> StaticPod {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  hostNetwork: true\n  runtimeClassName: {handler}\n  containers:\n  - {{name: app, image: \"{IMAGE}\"}}\n"
        );
        parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "n").unwrap().remove(0)
    }

    #[tokio::test]
    async fn runtime_class_name_is_the_runtime_handler() {
        let fake = Arc::new(FakeCri::default());
        let (mut w, _dir) = worker(fake.clone(), pod_with_handler("runc"));

        w.execute(Action::CreateSandbox { attempt: 0, stop: vec![] }).await.unwrap();

        assert_eq!(fake.sandbox_handlers(), [("sandbox-1".to_owned(), "runc".to_owned())]);
    }

    #[tokio::test]
    async fn an_unknown_runtime_handler_names_the_field_and_runs_nothing() {
        let fake = Arc::new(FakeCri::default());
        let message = r#"failed to get sandbox runtime: no runtime for "no-such-handler" is configured"#;
        fake.fail_next("RunPodSandbox", rpc_error("RunPodSandbox", tonic::Code::Unknown, message));
        let (mut w, _dir) = worker(fake.clone(), pod_with_handler("no-such-handler"));

        let error = w.execute(Action::CreateSandbox { attempt: 0, stop: vec![] }).await.unwrap_err();

        let text = error.to_string();
        assert!(text.contains(r#"spec.runtimeClassName "no-such-handler""#), "{text}");
        assert!(text.contains("no runtime for"), "the runtime's words are kept: {text}");
        assert!(fake.sandbox_ids().is_empty());
        assert_eq!(fake.calls(), ["RunPodSandbox"]);
    }

    #[tokio::test]
    async fn a_failed_pull_of_a_present_image_falls_back_to_the_local_copy() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        fake.fail_next("PullImage", rpc_error("PullImage", tonic::Code::Unavailable, "no registry"));
        let p = pod("Always");
        let sandbox_id = sandbox(&fake, &p).await;
        let (mut w, _dir) = worker(fake.clone(), p);

        w.execute(start(&sandbox_id)).await.unwrap();

        let calls = fake.calls();
        assert!(calls.contains(&format!("PullImage {IMAGE}")), "{calls:?}");
        assert_eq!(fake.containers(), [("container-2".into(), api::ContainerState::ContainerRunning)]);
        assert!(w.waiting.is_empty());
    }

    #[tokio::test]
    async fn a_failed_pull_of_a_missing_image_creates_nothing_and_says_err_image_pull() {
        let fake = Arc::new(FakeCri::default());
        fake.fail_next("PullImage", rpc_error("PullImage", tonic::Code::Unavailable, "no registry"));
        let p = pod("IfNotPresent");
        let sandbox_id = sandbox(&fake, &p).await;
        let (mut w, _dir) = worker(fake.clone(), p);

        let error = w.execute(start(&sandbox_id)).await.unwrap_err();

        assert!(error.to_string().contains("PullImage"), "{error}");
        assert!(!fake.calls().iter().any(|c| c.starts_with("CreateContainer")), "{:?}", fake.calls());
        assert_eq!(w.waiting["app"], "ErrImagePull");
    }

    #[tokio::test]
    async fn never_policy_with_a_missing_image_neither_pulls_nor_creates() {
        let fake = Arc::new(FakeCri::default());
        let p = pod("Never");
        let sandbox_id = sandbox(&fake, &p).await;
        let (mut w, _dir) = worker(fake.clone(), p);

        let error = w.execute(start(&sandbox_id)).await.unwrap_err();

        assert!(error.to_string().contains("imagePullPolicy is Never"), "{error}");
        assert!(!fake.calls().iter().any(|c| c.starts_with("PullImage") || c.starts_with("CreateContainer")));
    }

    #[tokio::test]
    async fn a_container_that_fails_to_start_is_removed_and_says_run_container_error() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        fake.fail_next("StartContainer", rpc_error("StartContainer", tonic::Code::Unknown, "exec format error"));
        let p = pod("IfNotPresent");
        let sandbox_id = sandbox(&fake, &p).await;
        let (mut w, _dir) = worker(fake.clone(), p);

        w.execute(start(&sandbox_id)).await.unwrap_err();

        let calls = fake.calls();
        assert_eq!(
            &calls[calls.len() - 3..],
            ["CreateContainer sandbox-1", "StartContainer container-2", "RemoveContainer container-2"]
        );
        assert!(fake.containers().is_empty(), "no half-started container is left behind");
        assert_eq!(w.waiting["app"], "RunContainerError");
    }

    #[tokio::test]
    async fn a_create_failure_says_create_container_error_and_starts_nothing() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        fake.fail_next("CreateContainer", rpc_error("CreateContainer", tonic::Code::Unknown, "no such mount"));
        let p = pod("IfNotPresent");
        let sandbox_id = sandbox(&fake, &p).await;
        let (mut w, _dir) = worker(fake.clone(), p);

        w.execute(start(&sandbox_id)).await.unwrap_err();

        assert!(!fake.calls().iter().any(|c| c.starts_with("StartContainer")));
        assert_eq!(w.waiting["app"], "CreateContainerError");
    }

    #[tokio::test]
    async fn a_created_container_that_fails_to_start_is_removed() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        let p = pod("IfNotPresent");
        let sandbox_id = sandbox(&fake, &p).await;
        let config = api::ContainerConfig::default();
        let id = fake.create_container(&sandbox_id, config, Default::default()).await.unwrap();
        fake.fail_next("StartContainer", rpc_error("StartContainer", tonic::Code::Unknown, "boom"));
        let (mut w, _dir) = worker(fake.clone(), p);

        w.execute(Action::StartCreated { id: id.clone() }).await.unwrap_err();

        assert!(fake.calls().contains(&format!("RemoveContainer {id}")));
        assert!(fake.containers().is_empty());
    }

    fn secured_pod(security: &str) -> StaticPod {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  hostNetwork: true\n  securityContext: {security}\n  containers:\n  - {{name: app, image: \"{IMAGE}\", imagePullPolicy: IfNotPresent}}\n"
        );
        parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "n").unwrap().remove(0)
    }

    #[tokio::test]
    async fn run_as_non_root_with_a_root_image_is_a_config_error_and_creates_nothing() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        let p = secured_pod("{runAsNonRoot: true}");
        let sandbox_id = sandbox(&fake, &p).await;
        let (mut w, _dir) = worker(fake.clone(), p.clone());

        let error = w.execute(start(&sandbox_id)).await.unwrap_err();

        let expected = format!(
            "container has runAsNonRoot and image will run as root (pod: \"p-n_default({})\", container: app)",
            p.uid
        );
        assert_eq!(error.message(), expected);
        assert_eq!(w.waiting["app"], "CreateContainerConfigError");
        let calls = fake.calls();
        assert!(calls.contains(&format!("ImageStatus {IMAGE}")), "the image's user is asked: {calls:?}");
        assert!(!calls.iter().any(|c| c.starts_with("CreateContainer")), "{calls:?}");
    }

    #[tokio::test]
    async fn run_as_non_root_runs_an_image_with_a_non_root_uid() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        fake.set_image_user(IMAGE, Some(65534), "");
        let p = secured_pod("{runAsNonRoot: true}");
        let sandbox_id = sandbox(&fake, &p).await;
        let (mut w, _dir) = worker(fake.clone(), p);

        w.execute(start(&sandbox_id)).await.unwrap();

        assert_eq!(fake.containers(), [("container-2".into(), api::ContainerState::ContainerRunning)]);
        assert!(w.waiting.is_empty());
    }

    #[tokio::test]
    async fn run_as_non_root_refuses_names_it_cannot_check_and_a_root_run_as_user() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        fake.set_image_user(IMAGE, None, "nobody");
        for (security, message, asks_image) in [
            ("{runAsNonRoot: true}", "image has non-numeric user (nobody), cannot verify user is non-root", true),
            ("{runAsNonRoot: true, runAsUser: 0}", "container's runAsUser breaks non-root policy", false),
        ] {
            let p = secured_pod(security);
            let sandbox_id = sandbox(&fake, &p).await;
            let before = fake.calls().len();
            let (mut w, _dir) = worker(fake.clone(), p);

            let error = w.execute(start(&sandbox_id)).await.unwrap_err();

            assert!(error.message().contains(message), "{security}: {error}");
            assert_eq!(w.waiting["app"], "CreateContainerConfigError");
            let calls = &fake.calls()[before..];
            assert_eq!(
                calls.iter().any(|c| c == &format!("ImageStatus {IMAGE}") && asks_image),
                asks_image,
                "{calls:?}"
            );
            assert!(!calls.iter().any(|c| c.starts_with("CreateContainer")), "{calls:?}");
        }
        // runAsUser 1000 needs no image user and passes.
        let p = secured_pod("{runAsNonRoot: true, runAsUser: 1000}");
        let sandbox_id = sandbox(&fake, &p).await;
        let (mut w, _dir) = worker(fake.clone(), p);
        w.execute(start(&sandbox_id)).await.unwrap();
    }

    #[tokio::test]
    async fn an_apparmor_profile_without_apparmor_on_the_host_is_a_config_error() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        let p = secured_pod("{appArmorProfile: {type: RuntimeDefault}}");
        let sandbox_id = sandbox(&fake, &p).await;
        let (mut w, _dir) = worker(fake.clone(), p);

        let result = w.execute(start(&sandbox_id)).await;

        if Host::current().apparmor {
            result.unwrap();
        } else {
            assert_eq!(result.unwrap_err().message(), security::APPARMOR_DISABLED);
            assert_eq!(w.waiting["app"], "CreateContainerConfigError");
            assert!(!fake.calls().iter().any(|c| c.starts_with("CreateContainer")));
        }
    }

    #[tokio::test]
    async fn empty_dirs_are_world_writable_and_owned_by_the_fs_group() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  hostNetwork: true\n  securityContext: {{fsGroup: 2000}}\n  volumes: [{{name: scratch, emptyDir: {{}}}}]\n  containers:\n  - {{name: app, image: \"{IMAGE}\", imagePullPolicy: IfNotPresent, volumeMounts: [{{name: scratch, mountPath: /s}}]}}\n"
        );
        let p = parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "n").unwrap().remove(0);
        let sandbox_id = sandbox(&fake, &p).await;
        let (mut w, dir) = worker(fake.clone(), p.clone());

        w.execute(start(&sandbox_id)).await.unwrap();

        let scratch = translate::empty_dir_root(&dir.path().join("root"), &p).join("scratch");
        let meta = std::fs::metadata(&scratch).unwrap();
        assert_eq!((meta.permissions().mode() & 0o7777, meta.gid()), (0o2777, 2000));
    }

    fn volume_pod(volumes: &str, mounts: &str) -> StaticPod {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, labels: {{app: x}}}}\nspec:\n  hostNetwork: true\n  volumes: {volumes}\n  containers:\n  - {{name: app, image: \"{IMAGE}\", imagePullPolicy: IfNotPresent, env: [{{name: SUB, value: deep}}], volumeMounts: {mounts}}}\n"
        );
        parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "n").unwrap().remove(0)
    }

    #[tokio::test]
    async fn a_host_path_of_the_wrong_type_is_a_config_error_naming_volume_path_and_type() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        let files = tempfile::tempdir().unwrap();
        let file = files.path().join("not-a-socket");
        std::fs::write(&file, "").unwrap();
        let p = volume_pod(
            &format!("[{{name: sock, hostPath: {{path: {}, type: Socket}}}}]", file.display()),
            "[{name: sock, mountPath: /run/x.sock}]",
        );
        let sandbox_id = sandbox(&fake, &p).await;
        let (mut w, _dir) = worker(fake.clone(), p);

        let error = w.execute(start(&sandbox_id)).await.unwrap_err();

        let expected = format!(
            "MountVolume.SetUp failed for volume \"sock\" : hostPath type check failed: {} is not a socket file",
            file.display()
        );
        assert_eq!(error.message(), expected);
        assert_eq!(w.waiting["app"], "CreateContainerConfigError");
        assert!(!fake.calls().iter().any(|c| c.starts_with("CreateContainer")), "{:?}", fake.calls());
    }

    #[tokio::test]
    async fn or_create_host_paths_are_made_and_sub_paths_resolve_inside_their_volume() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        let files = tempfile::tempdir().unwrap();
        let (dir, file) = (files.path().join("made/here"), files.path().join("f"));
        let p = volume_pod(
            &format!(
                "[{{name: d, hostPath: {{path: {}, type: DirectoryOrCreate}}}}, {{name: f, hostPath: {{path: {}, type: FileOrCreate}}}}, {{name: info, downwardAPI: {{items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}]}}}}]",
                dir.display(),
                file.display()
            ),
            "[{name: d, mountPath: /d, subPathExpr: \"$(SUB)/er\", mountPropagation: HostToContainer}, {name: f, mountPath: /f}, {name: info, mountPath: /info}]",
        );
        let sandbox_id = sandbox(&fake, &p).await;
        let (mut w, root) = worker(fake.clone(), p.clone());

        w.execute(start(&sandbox_id)).await.unwrap();

        assert!(dir.join("deep/er").is_dir(), "DirectoryOrCreate, then the subPath inside it");
        assert!(std::fs::metadata(&file).unwrap().is_file());
        let info = volumes::pod_volumes_dir(&root.path().join("root"), &p).join("kubernetes.io~downward-api/info");
        assert_eq!(std::fs::read_to_string(info.join("labels")).unwrap(), "app=\"x\"");
        let config = fake.last_container_config().expect("a container was created");
        let mounts: Vec<(&str, String, bool, i32)> = config
            .mounts
            .iter()
            .map(|m| (m.container_path.as_str(), m.host_path.clone(), m.readonly, m.propagation))
            .collect();
        // The volume mounts; the termination log and /etc/hosts follow them.
        assert_eq!(
            mounts[..3],
            [
                ("/d", dir.canonicalize().unwrap().join("deep/er").display().to_string(), false, 1),
                ("/f", file.display().to_string(), false, 0),
                ("/info", info.display().to_string(), true, 0),
            ]
        );
    }

    #[tokio::test]
    async fn a_sub_path_that_leaves_its_volume_through_a_symlink_is_a_config_error() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        let files = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", files.path().join("escape")).unwrap();
        let p = volume_pod(
            &format!("[{{name: d, hostPath: {{path: {}}}}}]", files.path().display()),
            "[{name: d, mountPath: /d, subPath: escape}]",
        );
        let sandbox_id = sandbox(&fake, &p).await;
        let (mut w, _dir) = worker(fake.clone(), p);

        let error = w.execute(start(&sandbox_id)).await.unwrap_err();

        assert!(error.message().contains("resolves to /etc, outside the volume"), "{error}");
        assert_eq!(w.waiting["app"], "CreateContainerConfigError");
        assert!(!fake.calls().iter().any(|c| c.starts_with("CreateContainer")));
    }

    #[test]
    fn reserved_name_error_names_the_holder() {
        let message =
            r#"failed to reserve sandbox name "web_default_abc_0": name "web_default_abc_0" is reserved for "4f2a9c""#;
        assert_eq!(reserved_holder(message), Some("4f2a9c"));
        assert_eq!(reserved_holder("something else"), None);
    }
}
