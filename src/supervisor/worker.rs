//! One static pod's supervisor: observe, decide, act, repeat; on `terminate`, stop the pod with
//! its grace period; on `shutdown`, just return and leave the pod running.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    Context,
    backoff::CrashBackoff,
    decide::{Action, Exit, IDLE_RECHECK, Inputs, next_action},
    status::{ViewInputs, Waiting, view},
};
use crate::{
    cri::{CriError, RuntimePod, RuntimeSnapshot, labels, translate},
    manifest::StaticPod,
};

/// Retry delay after a failed runtime action (pull, create, start): 1 s doubling to 30 s.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

pub async fn supervise(
    ctx: Arc<Context>,
    pod: StaticPod,
    seen: String,
    terminate: CancellationToken,
    shutdown: CancellationToken,
) {
    let span = tracing::info_span!("pod", pod = %pod.full_name(), uid = %pod.uid, source = %pod.origin);
    async move {
        let mut worker = Worker {
            ctx,
            pod,
            seen,
            backoff: CrashBackoff::default(),
            exits: HashMap::new(),
            waiting: Waiting::new(),
            ips: HashMap::new(),
            last_error: None,
            exit_watches: tokio::task::JoinSet::new(),
            watched: std::collections::HashSet::new(),
            announced_backoff: None,
        };
        worker.run(terminate, shutdown).await
    }
    .instrument(span)
    .await
}

/// Stops a runtime pod that no manifest wants any more (removed while staticlet was down, or
/// left by an older version), with the grace period recorded on its sandbox.
pub async fn stop_orphan(ctx: Arc<Context>, rt: RuntimePod, shutdown: CancellationToken) {
    let span = tracing::info_span!("pod", pod = %rt.full_name(), uid = %rt.uid, source = "runtime");
    async move {
        let grace = rt
            .latest_sandbox()
            .and_then(|s| s.annotations.get(labels::GRACE_PERIOD))
            .and_then(|g| g.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(30));
        tracing::info!(grace_seconds = grace.as_secs(), "stopping pod that no manifest defines");
        kill_until_gone(&ctx, &rt.uid, grace, &shutdown).await;
    }
    .instrument(span)
    .await
}

struct Worker {
    ctx: Arc<Context>,
    pod: StaticPod,
    seen: String,
    backoff: CrashBackoff,
    /// Exit details of finished containers, by container ID (they never change).
    exits: HashMap<String, Exit>,
    waiting: Waiting,
    /// Pod IP by sandbox ID.
    ips: HashMap<String, String>,
    last_error: Option<String>,
    /// One task per running container, waiting for its exit; aborted when the worker ends.
    exit_watches: tokio::task::JoinSet<()>,
    watched: std::collections::HashSet<String>,
    /// The back-off deadline last reported as a BackOff event, so each wait is reported once.
    announced_backoff: Option<SystemTime>,
}

impl Worker {
    async fn run(&mut self, terminate: CancellationToken, shutdown: CancellationToken) {
        let mut snapshots = self.ctx.observer.subscribe();
        let mut snapshot = self.ctx.observer.latest();
        let mut retry = RETRY_MIN;
        let mut announced = false;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            if terminate.is_cancelled() {
                self.publish(&snapshot, &[], true);
                tracing::info!(grace_seconds = self.pod.grace_period().as_secs(), "stopping pod");
                for c in &self.pod.spec().containers {
                    self.ctx.events.normal(&self.pod, "Killing", format!("Stopping container {}", c.name));
                }
                kill_until_gone(&self.ctx, &self.pod.uid, self.pod.grace_period(), &shutdown).await;
                if !shutdown.is_cancelled() {
                    let _ = std::fs::remove_dir_all(self.ctx.root_dir.join("pods").join(&self.pod.uid));
                    tracing::info!("pod stopped");
                }
                self.ctx.views.remove(&self.pod.uid);
                return;
            }
            let mut sleep_for = IDLE_RECHECK;
            let mut act = None;
            if snapshot.listed && snapshot.error.is_none() {
                let rt = snapshot.pod(&self.pod.uid);
                self.watch_exits(rt);
                if !announced {
                    announced = true;
                    match rt {
                        Some(rt) if rt.ready_sandbox().is_some() => tracing::info!("adopted running pod"),
                        _ => tracing::info!("starting pod"),
                    }
                }
                let now = SystemTime::now();
                let action = next_action(&Inputs {
                    pod: &self.pod,
                    runtime: rt,
                    exits: &self.exits,
                    backoff: &self.backoff,
                    now,
                });
                let backing_off: Vec<String> = match &action {
                    Action::Wait { until } => {
                        sleep_for = until.duration_since(now).unwrap_or_default();
                        let names = self.backing_off_containers(rt, now);
                        if self.announced_backoff != Some(*until) {
                            self.announced_backoff = Some(*until);
                            for name in &names {
                                let message =
                                    format!("Back-off restarting failed container {name} in pod {}", self.pod.name());
                                self.ctx.events.warning(&self.pod, "BackOff", message);
                            }
                        }
                        names
                    }
                    _ => vec![],
                };
                self.publish(&snapshot, &backing_off, false);
                if !matches!(action, Action::Idle | Action::Wait { .. }) {
                    act = Some(action);
                }
            } else {
                self.publish(&snapshot, &[], false);
            }

            if let Some(action) = act {
                match self.execute(action).await {
                    Ok(()) => {
                        retry = RETRY_MIN;
                        self.last_error = None;
                        snapshot = self.ctx.observer.fresh().await;
                        continue;
                    }
                    Err(error) => {
                        let message = error.to_string();
                        if self.last_error.as_deref() != Some(message.as_str()) {
                            tracing::warn!(error = %message, retry_in = ?retry, "pod action failed");
                        }
                        self.last_error = Some(message);
                        self.publish(&snapshot, &[], false);
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            _ = terminate.cancelled() => {}
                            _ = tokio::time::sleep(retry) => {}
                        }
                        retry = (retry * 2).min(RETRY_MAX);
                        snapshot = self.ctx.observer.fresh().await;
                        continue;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = terminate.cancelled() => {}
                changed = snapshots.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(sleep_for) => {}
            }
            snapshot = snapshots.borrow_and_update().clone();
        }
    }

    /// Starts an exit watch for each running container not yet watched, so an exit triggers a
    /// relist at once (see `cri::exit_watch`).
    fn watch_exits(&mut self, rt: Option<&RuntimePod>) {
        let Some(rt) = rt else { return };
        let running = rt.containers.iter().filter(|c| c.state == crate::cri::ContainerState::Running);
        for container in running {
            if !self.watched.insert(container.id.clone()) {
                continue;
            }
            let (runtime, observer, id) = (self.ctx.runtime.clone(), self.ctx.observer.clone(), container.id.clone());
            self.exit_watches.spawn(async move {
                let Ok(Some(pid)) = runtime.container_pid(&id).await else { return };
                if let Err(e) = crate::cri::exit_watch::process_exit(pid).await {
                    tracing::debug!(container = %id, error = %e, "no exit watch; the relist will notice");
                    return;
                }
                // The runtime records the exit a few milliseconds after the process is gone:
                // relist until it shows (bounded; the periodic relist remains the backstop).
                for _ in 0..50 {
                    let snapshot = observer.fresh().await;
                    let running = snapshot
                        .pods
                        .values()
                        .flat_map(|p| &p.containers)
                        .any(|c| c.id == id && c.state == crate::cri::ContainerState::Running);
                    if !running {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
        let live: std::collections::HashSet<&str> = rt.containers.iter().map(|c| c.id.as_str()).collect();
        self.watched.retain(|id| live.contains(id.as_str()));
        while self.exit_watches.try_join_next().is_some() {}
    }

    fn backing_off_containers(&self, rt: Option<&RuntimePod>, now: SystemTime) -> Vec<String> {
        let Some(rt) = rt else { return vec![] };
        self.pod
            .spec()
            .containers
            .iter()
            .filter(|c| {
                let latest = rt.containers.iter().rev().find(|x| x.name == c.name);
                latest
                    .and_then(|x| self.exits.get(&x.id))
                    .is_some_and(|e| self.backoff.wait_until(&c.name, e.finished, now).is_some())
            })
            .map(|c| c.name.clone())
            .collect()
    }

    fn publish(&self, snapshot: &RuntimeSnapshot, backing_off: &[String], terminating: bool) {
        let rt = snapshot.pod(&self.pod.uid);
        let ip = rt.and_then(|r| r.ready_sandbox()).and_then(|s| self.ips.get(&s.id)).cloned().unwrap_or_default();
        let mut v = view(&ViewInputs {
            pod: &self.pod,
            runtime: rt,
            exits: &self.exits,
            backing_off,
            waiting: &self.waiting,
            terminating,
            ip: &ip,
            seen: &self.seen,
        });
        v.last_error = match &snapshot.error {
            Some(e) => Some(format!("container runtime unavailable: {e}")),
            None => self.last_error.clone(),
        };
        self.ctx.views.set(v);
    }

    async fn execute(&mut self, action: Action) -> Result<(), CriError> {
        let runtime = &self.ctx.runtime;
        match action {
            Action::CreateSandbox { attempt, stop } => {
                for id in stop {
                    ignore_not_found(runtime.stop_sandbox(&id).await)?;
                }
                let log_dir = translate::pod_log_dir(&self.ctx.pod_logs_dir, &self.pod);
                let _ = std::fs::create_dir_all(&log_dir);
                let config = translate::sandbox_config(&self.pod, &self.ctx.node, &self.ctx.pod_logs_dir, attempt);
                let id = match runtime.run_sandbox(config.clone()).await {
                    // After a crash the runtime may still hold the name for a sandbox we no longer
                    // list; remove the holder and try once more (ENVIRONMENT.md).
                    Err(e) if e.message().contains("is reserved for") => {
                        if let Some(holder) = reserved_holder(e.message()) {
                            remove_sandbox(runtime, holder).await?;
                        }
                        runtime.run_sandbox(config).await?
                    }
                    other => other?,
                };
                tracing::info!(sandbox = %id, attempt, "sandbox running");
                self.ctx.metrics.sandboxes_started.inc();
                if !self.pod.host_network() {
                    let ip = runtime.sandbox_ip(&id).await.unwrap_or_default();
                    self.ips.insert(id, ip);
                }
                Ok(())
            }
            Action::StartContainer { sandbox_id, name, restart_count } => {
                self.start_container(&sandbox_id, &name, restart_count).await
            }
            Action::StartCreated { id } => {
                if let Err(e) = runtime.start_container(&id).await {
                    // A container that cannot start is replaced by a fresh one on the next pass.
                    let _ = runtime.remove_container(&id).await;
                    return Err(e);
                }
                Ok(())
            }
            Action::InspectExit { id } => {
                let status = runtime.container_status(&id).await?;
                let finished = if status.finished_at > 0 {
                    SystemTime::UNIX_EPOCH + Duration::from_nanos(status.finished_at as u64)
                } else {
                    SystemTime::now()
                };
                let name = status.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
                tracing::info!(container = %name, exit_code = status.exit_code, reason = %status.reason, "container exited");
                self.exits.insert(id, Exit { code: status.exit_code, finished, reason: status.reason });
                Ok(())
            }
            Action::Cleanup { containers, sandboxes } => {
                for id in containers {
                    ignore_not_found(runtime.remove_container(&id).await)?;
                    self.exits.remove(&id);
                }
                for id in sandboxes {
                    remove_sandbox(runtime, &id).await?;
                }
                Ok(())
            }
            Action::Wait { .. } | Action::Idle => Ok(()),
        }
    }

    async fn start_container(&mut self, sandbox_id: &str, name: &str, restart_count: u32) -> Result<(), CriError> {
        let runtime = &self.ctx.runtime;
        let container =
            self.pod.spec().containers.iter().find(|c| c.name == name).expect("decide names spec containers").clone();
        let image = container.image.clone().unwrap_or_default();
        let sandbox_config = translate::sandbox_config(&self.pod, &self.ctx.node, &self.ctx.pod_logs_dir, 0);

        if let Err(e) = self.ensure_image(&image, container.image_pull_policy.as_deref(), &sandbox_config).await {
            self.waiting.insert(name.to_owned(), "ErrImagePull".into());
            self.ctx.events.warning(&self.pod, "Failed", format!("Failed to pull image \"{image}\": {e}"));
            return Err(e);
        }
        let volumes_dir = translate::empty_dir_root(&self.ctx.root_dir, &self.pod);
        for volume in self.pod.spec().volumes.iter().flatten().filter(|v| v.empty_dir.is_some()) {
            let _ = std::fs::create_dir_all(volumes_dir.join(&volume.name));
        }
        let _ = std::fs::create_dir_all(translate::pod_log_dir(&self.ctx.pod_logs_dir, &self.pod).join(name));
        if !self.pod.host_network() && !self.ips.contains_key(sandbox_id) {
            let ip = runtime.sandbox_ip(sandbox_id).await.unwrap_or_default();
            self.ips.insert(sandbox_id.to_owned(), ip);
        }
        let pod_ip = self.ips.get(sandbox_id).cloned().unwrap_or_default();
        let ctx = translate::ContainerContext { restart_count, pod_ip: &pod_ip, volumes_dir: &volumes_dir };
        let config = translate::container_config(&self.pod, &self.ctx.node, &container, &ctx);
        let id = match runtime.create_container(sandbox_id, config, sandbox_config).await {
            Ok(id) => id,
            Err(e) => {
                self.waiting.insert(name.to_owned(), "CreateContainerError".into());
                self.ctx.events.warning(&self.pod, "Failed", format!("Error: {e}"));
                return Err(e);
            }
        };
        self.ctx.events.normal(&self.pod, "Created", format!("Created container {name}"));
        if let Err(e) = runtime.start_container(&id).await {
            self.waiting.insert(name.to_owned(), "RunContainerError".into());
            self.ctx.events.warning(&self.pod, "Failed", format!("Error: {e}"));
            let _ = runtime.remove_container(&id).await;
            return Err(e);
        }
        self.ctx.events.normal(&self.pod, "Started", format!("Started container {name}"));
        self.waiting.remove(name);
        if restart_count > 0 {
            self.backoff.record_restart(name, SystemTime::now());
            self.ctx.metrics.container_restarts.inc();
        }
        self.ctx.metrics.containers_started.inc();
        tracing::info!(container = %name, id = %id, restart_count, "container started");
        Ok(())
    }

    /// imagePullPolicy as kubelet applies it, with one difference for nodes without a registry:
    /// when `Always` cannot pull but the image is present, the local copy is used and a warning
    /// logged, rather than leaving the pod down.
    async fn ensure_image(
        &self,
        image: &str,
        policy: Option<&str>,
        sandbox: &crate::cri::api::PodSandboxConfig,
    ) -> Result<(), CriError> {
        let runtime = &self.ctx.runtime;
        let present = runtime.image_id(image).await?.is_some();
        match (policy.unwrap_or("IfNotPresent"), present) {
            ("IfNotPresent" | "Never", true) => {
                let message = format!("Container image \"{image}\" already present on machine");
                self.ctx.events.normal(&self.pod, "Pulled", message);
                Ok(())
            }
            ("Never", false) => Err(CriError::Rpc {
                rpc: "ImageStatus",
                endpoint: runtime.endpoint().into(),
                code: tonic::Code::NotFound,
                message: format!("image {image} is not present and imagePullPolicy is Never"),
            }),
            (_, present) => match runtime.pull_image(image, sandbox.clone()).await {
                Ok(_) => {
                    self.ctx.events.normal(&self.pod, "Pulled", format!("Successfully pulled image \"{image}\""));
                    Ok(())
                }
                Err(e) if present => {
                    tracing::warn!(image, error = %e, "pull failed; using the image already on the node");
                    Ok(())
                }
                Err(e) => Err(e),
            },
        }
    }
}

/// Stops every container (SIGTERM, SIGKILL after `grace`) and sandbox of the pod, retrying while
/// the runtime is unreachable: a pod that should be gone must go, whenever the runtime lets us.
async fn kill_until_gone(ctx: &Context, uid: &str, grace: Duration, shutdown: &CancellationToken) {
    let mut retry = RETRY_MIN;
    loop {
        let snapshot = ctx.observer.fresh().await;
        let result = match (&snapshot.error, snapshot.pod(uid)) {
            (Some(e), _) => Err(e.clone()),
            (None, None) => return,
            (None, Some(rt)) => kill(ctx, rt, grace).await.map_err(|e| e.to_string()),
        };
        match result {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, retry_in = ?retry, "stopping pod failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

async fn kill(ctx: &Context, rt: &RuntimePod, grace: Duration) -> Result<(), CriError> {
    let runtime = &ctx.runtime;
    let live = rt.containers.iter().filter(|c| c.state != crate::cri::ContainerState::Exited);
    let stops = live.map(|c| async move { ignore_not_found(runtime.stop_container(&c.id, grace).await) });
    for result in futures::future::join_all(stops).await {
        result?;
    }
    for sandbox in &rt.sandboxes {
        remove_sandbox(runtime, &sandbox.id).await?;
    }
    Ok(())
}

async fn remove_sandbox(runtime: &crate::cri::Runtime, id: &str) -> Result<(), CriError> {
    ignore_not_found(runtime.stop_sandbox(id).await)?;
    ignore_not_found(runtime.remove_sandbox(id).await)
}

fn ignore_not_found(result: Result<(), CriError>) -> Result<(), CriError> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
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
    use super::reserved_holder;

    #[test]
    fn reserved_name_error_names_the_holder() {
        let message =
            r#"failed to reserve sandbox name "web_default_abc_0": name "web_default_abc_0" is reserved for "4f2a9c""#;
        assert_eq!(reserved_holder(message), Some("4f2a9c"));
        assert_eq!(reserved_holder("something else"), None);
    }
}
