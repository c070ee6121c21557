//! Stopping pods: a static pod whose manifest went away or changed (with its own grace period and
//! Killing events), and a runtime pod that no manifest defines any more (with the grace period
//! recorded on its sandbox). Both retry while the runtime is unreachable: a pod that should be
//! gone must go, whenever the runtime lets us.
//!
//! Every container staticlet stops of a pod it has the manifest of goes through
//! `stop_container`: its preStop hook first, within the grace period, then the stop signal with
//! the grace that is left (`hook::grace_left`), as kubelet's killContainer.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    Context,
    worker::{RETRY_MAX, RETRY_MIN},
};
use crate::{
    cri::{
        ContainerState, Cri, CriError, RuntimePod,
        host::Host,
        labels, pod_cgroup,
        resources::{PodCgroups, pod_cgroups},
    },
    hook,
    manifest::{StaticPod, is_sidecar},
    retry::{Doubling, LogOnce},
};

/// The preStop hooks of a pod's containers, and what running them needs.
pub(super) struct PreStops<'a> {
    pod: &'a StaticPod,
    /// By container name.
    hooks: &'a HashMap<String, hook::Handler>,
    /// httpGet's default host.
    pod_ip: &'a str,
    /// When each container's hook started, so a stop retried (the runtime was away) neither runs
    /// the hook twice nor forgets the time it took.
    started: Mutex<HashMap<String, tokio::time::Instant>>,
}

impl<'a> PreStops<'a> {
    pub(super) fn new(pod: &'a StaticPod, hooks: &'a HashMap<String, hook::Handler>, pod_ip: &'a str) -> Self {
        Self { pod, hooks, pod_ip, started: Mutex::default() }
    }

    /// Runs the container's hook, bounded by `grace`; returns how long ago it started.
    async fn run(&self, ctx: &Context, id: &str, name: &str, handler: &hook::Handler, grace: Duration) -> Duration {
        let start = {
            let mut started = self.started.lock().expect("preStop lock");
            if let Some(start) = started.get(id) {
                return start.elapsed();
            }
            *started.entry(id.to_owned()).or_insert_with(tokio::time::Instant::now)
        };
        let pod = self.pod.full_name();
        let target = hook::Target { container_id: id, container: name, pod: &pod, pod_ip: self.pod_ip };
        match tokio::time::timeout(grace, hook::run(ctx.runtime.as_ref(), handler, &target, grace)).await {
            Ok(Ok(())) => {
                tracing::info!(container = %name, took_ms = start.elapsed().as_millis() as u64, "preStop hook done")
            }
            Ok(Err(message)) => {
                tracing::warn!(container = %name, %message, "preStop hook failed; stopping the container anyway");
                ctx.events.warning(self.pod, "FailedPreStopHook", hook::PRE_STOP_FAILED.into());
            }
            Err(_) => {
                tracing::info!(container = %name, grace_seconds = grace.as_secs(), "preStop hook not done within the grace period")
            }
        }
        start.elapsed()
    }
}

/// Stops one container: a running container's preStop hook first (if `pre_stops` has one for
/// it), then SIGTERM, and SIGKILL after the grace left.
pub(super) async fn stop_container(
    ctx: &Context,
    id: &str,
    name: &str,
    running: bool,
    grace: Duration,
    pre_stops: Option<&PreStops<'_>>,
) -> Result<(), CriError> {
    let grace = match pre_stops.and_then(|p| Some((p, p.hooks.get(name)?))) {
        Some((pre_stops, handler)) if running => {
            hook::grace_left(grace, pre_stops.run(ctx, id, name, handler, grace).await)
        }
        _ => grace,
    };
    ignore_not_found(ctx.runtime.stop_container(id, grace).await)
}

/// Stops a supervised pod that is no longer wanted (in the caller's span), running its
/// containers' preStop hooks (`hooks`, by container name; `pod_ip` for httpGet's default host).
pub(super) async fn stop_pod(
    ctx: &Context,
    pod: &StaticPod,
    hooks: &HashMap<String, hook::Handler>,
    pod_ip: &str,
    shutdown: &CancellationToken,
) {
    tracing::info!(grace_seconds = pod.grace_period().as_secs(), "stopping pod");
    for c in pod.spec().containers.iter().chain(pod.init_containers().iter().filter(|c| is_sidecar(c))) {
        ctx.events.normal(pod, "Killing", format!("Stopping container {}", c.name));
    }
    // Sidecars go last, in reverse order, so the main containers keep them while they stop.
    let sidecars: Vec<String> =
        pod.init_containers().iter().filter(|c| is_sidecar(c)).rev().map(|c| c.name.clone()).collect();
    let pre_stops = PreStops::new(pod, hooks, pod_ip);
    kill_until_gone(ctx, &pod.uid, pod.grace_period(), &sidecars, shutdown, Some(&pre_stops)).await;
    if !shutdown.is_cancelled() {
        crate::cri::volumes::unmount_memory_volumes(&ctx.root_dir, &pod.uid);
        let _ = std::fs::remove_dir_all(ctx.root_dir.join("pods").join(&pod.uid));
        remove_pod_cgroup(ctx, &pod.uid).await;
        tracing::info!("pod stopped");
    }
}

/// Stops a runtime pod that no manifest wants any more (removed while staticlet was down, or
/// left by an older version), with the grace period recorded on its sandbox.
pub async fn stop_orphan(ctx: Arc<Context>, rt: RuntimePod, shutdown: CancellationToken) {
    let span =
        tracing::info_span!("pod", pod = %rt.full_name(), namespace = %rt.namespace, uid = %rt.uid, source = "runtime");
    async move {
        let grace = rt
            .latest_sandbox()
            .and_then(|s| s.annotations.get(labels::GRACE_PERIOD))
            .and_then(|g| g.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(30));
        tracing::info!(grace_seconds = grace.as_secs(), "stopping pod that no manifest defines");
        kill_until_gone(&ctx, &rt.uid, grace, &[], &shutdown, None).await;
        if !shutdown.is_cancelled() {
            remove_pod_cgroup(&ctx, &rt.uid).await;
        }
    }
    .instrument(span)
    .await
}

/// The pod cgroup staticlet created (kubelet's cgroupfs layout only), once the pod is gone.
async fn remove_pod_cgroup(ctx: &Context, uid: &str) {
    let driver = ctx.runtime.cgroup_driver().await.ok().flatten();
    if pod_cgroups(driver, Host::current().cgroup_v2) == PodCgroups::Cgroupfs {
        pod_cgroup::remove(std::path::Path::new(pod_cgroup::CGROUP_ROOT), uid);
    }
}

/// Stops every container (preStop, SIGTERM, SIGKILL after `grace`; those named in `last` after
/// the others, one by one) and sandbox of the pod, retrying while the runtime is unreachable.
async fn kill_until_gone(
    ctx: &Context,
    uid: &str,
    grace: Duration,
    last: &[String],
    shutdown: &CancellationToken,
    pre_stops: Option<&PreStops<'_>>,
) {
    let mut retry = Doubling::new(RETRY_MIN, RETRY_MAX);
    let mut failure = LogOnce::default();
    loop {
        let snapshot = ctx.observer.fresh().await;
        let result = match (&snapshot.error, snapshot.pod(uid)) {
            (Some(e), _) => Err(e.clone()),
            (None, None) => return,
            (None, Some(rt)) => kill(ctx, rt, grace, last, pre_stops).await.map_err(|e| e.to_string()),
        };
        let Err(e) = result else { return };
        let wait = retry.next_wait();
        if failure.failed(e.as_str()) {
            tracing::warn!(error = %e, retry_in = ?wait, "stopping pod failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn kill(
    ctx: &Context,
    rt: &RuntimePod,
    grace: Duration,
    last: &[String],
    pre_stops: Option<&PreStops<'_>>,
) -> Result<(), CriError> {
    let live: Vec<_> = rt.containers.iter().filter(|c| c.state != ContainerState::Exited).collect();
    let running = |c: &crate::cri::ContainerInfo| c.state == ContainerState::Running;
    let first = live.iter().filter(|c| !last.contains(&c.name));
    let stops = first.map(|c| stop_container(ctx, &c.id, &c.name, running(c), grace, pre_stops));
    for result in futures::future::join_all(stops).await {
        result?;
    }
    for name in last {
        for c in live.iter().filter(|c| &c.name == name) {
            stop_container(ctx, &c.id, &c.name, running(c), grace, pre_stops).await?;
        }
    }
    for sandbox in &rt.sandboxes {
        remove_sandbox(ctx.runtime.as_ref(), &sandbox.id).await?;
    }
    Ok(())
}

pub(super) async fn remove_sandbox(runtime: &dyn Cri, id: &str) -> Result<(), CriError> {
    ignore_not_found(runtime.stop_sandbox(id).await)?;
    ignore_not_found(runtime.remove_sandbox(id).await)
}

pub(super) fn ignore_not_found(result: Result<(), CriError>) -> Result<(), CriError> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}
