//! Stopping pods: a static pod whose manifest went away or changed (with its own grace period and
//! Killing events), and a runtime pod that no manifest defines any more (with the grace period
//! recorded on its sandbox). Both retry while the runtime is unreachable: a pod that should be
//! gone must go, whenever the runtime lets us.

use std::{sync::Arc, time::Duration};

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
    manifest::{StaticPod, is_sidecar},
    retry::{Doubling, LogOnce},
};

/// Stops a supervised pod that is no longer wanted (in the caller's span).
pub(super) async fn stop_pod(ctx: &Context, pod: &StaticPod, shutdown: &CancellationToken) {
    tracing::info!(grace_seconds = pod.grace_period().as_secs(), "stopping pod");
    for c in pod.spec().containers.iter().chain(pod.init_containers().iter().filter(|c| is_sidecar(c))) {
        ctx.events.normal(pod, "Killing", format!("Stopping container {}", c.name));
    }
    // Sidecars go last, in reverse order, so the main containers keep them while they stop.
    let sidecars: Vec<String> =
        pod.init_containers().iter().filter(|c| is_sidecar(c)).rev().map(|c| c.name.clone()).collect();
    kill_until_gone(ctx, &pod.uid, pod.grace_period(), &sidecars, shutdown).await;
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
    let span = tracing::info_span!("pod", pod = %rt.full_name(), uid = %rt.uid, source = "runtime");
    async move {
        let grace = rt
            .latest_sandbox()
            .and_then(|s| s.annotations.get(labels::GRACE_PERIOD))
            .and_then(|g| g.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(30));
        tracing::info!(grace_seconds = grace.as_secs(), "stopping pod that no manifest defines");
        kill_until_gone(&ctx, &rt.uid, grace, &[], &shutdown).await;
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

/// Stops every container (SIGTERM, SIGKILL after `grace`) and sandbox of the pod, retrying while
/// the runtime is unreachable.
async fn kill_until_gone(ctx: &Context, uid: &str, grace: Duration, last: &[String], shutdown: &CancellationToken) {
    let mut retry = Doubling::new(RETRY_MIN, RETRY_MAX);
    let mut failure = LogOnce::default();
    loop {
        let snapshot = ctx.observer.fresh().await;
        let result = match (&snapshot.error, snapshot.pod(uid)) {
            (Some(e), _) => Err(e.clone()),
            (None, None) => return,
            (None, Some(rt)) => kill(ctx.runtime.as_ref(), rt, grace, last).await.map_err(|e| e.to_string()),
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

/// Stops the live containers (all at once, then those named in `last`, one by one in that
/// order), then the sandboxes.
async fn kill(runtime: &dyn Cri, rt: &RuntimePod, grace: Duration, last: &[String]) -> Result<(), CriError> {
    let live: Vec<_> = rt.containers.iter().filter(|c| c.state != ContainerState::Exited).collect();
    let first = live.iter().filter(|c| !last.contains(&c.name));
    let stops = first.map(|c| async move { ignore_not_found(runtime.stop_container(&c.id, grace).await) });
    for result in futures::future::join_all(stops).await {
        result?;
    }
    for name in last {
        for c in live.iter().filter(|c| &c.name == name) {
            ignore_not_found(runtime.stop_container(&c.id, grace).await)?;
        }
    }
    for sandbox in &rt.sandboxes {
        remove_sandbox(runtime, &sandbox.id).await?;
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
