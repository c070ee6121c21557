//! One static pod's supervisor loop: observe, decide, act, repeat. On `terminate` it stops the pod
//! with its grace period (`stop`); on `shutdown` it just returns and leaves the pod running.
//! What an action does is in `act`; what to do next is `decide::next_action`'s call.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    Context,
    backoff::CrashBackoff,
    deadline::{self, AfterDeadline, Deadline},
    decide::{Action, Exit, IDLE_RECHECK, Inputs, next_action},
    status::{self, Waiting},
    stop,
};
use crate::{
    cri::{ContainerState, RuntimePod, RuntimeSnapshot},
    hook::{self, Hooks},
    manifest::StaticPod,
    manifest::is_sidecar,
    probe::{ProbeSpec, Prober, container_probes, prober::Running},
    retry::{Doubling, LogOnce},
};

/// Retry delay after a failed runtime action (pull, create, start): 1 s doubling to 30 s.
pub(super) const RETRY_MIN: Duration = Duration::from_secs(1);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(30);

pub async fn supervise(
    ctx: Arc<Context>,
    pod: StaticPod,
    seen: String,
    terminate: CancellationToken,
    shutdown: CancellationToken,
) {
    // The namespace besides the full name, so the journal can be filtered by it (NAMESPACE=).
    let span = tracing::info_span!(
        "pod",
        pod = %pod.full_name(),
        namespace = pod.namespace(),
        uid = %pod.uid,
        source = %pod.origin
    );
    // Boxed: a worker's state is large, and its future lives as long as the pod.
    Box::pin(async move { Worker::new(ctx, pod, seen).run(terminate, shutdown).await }.instrument(span)).await
}

pub(super) struct Worker {
    pub(super) ctx: Arc<Context>,
    pub(super) pod: StaticPod,
    seen: String,
    pub(super) backoff: CrashBackoff,
    /// Exit details of finished containers, by container ID (they never change).
    pub(super) exits: HashMap<String, Exit>,
    pub(super) waiting: Waiting,
    /// Pod IP by sandbox ID.
    pub(super) ips: HashMap<String, String>,
    failure: LogOnce,
    /// One task per running container, waiting for its exit; aborted when the worker ends.
    exit_watches: tokio::task::JoinSet<()>,
    watched: HashSet<String>,
    /// The back-off deadline last reported as a BackOff event, so each wait is reported once.
    announced_backoff: Option<Instant>,
    /// Each container's probes (checked when the manifest was read), by container name.
    probe_specs: HashMap<String, Vec<ProbeSpec>>,
    pub(super) prober: Prober,
    /// Each container's lifecycle hooks (checked when the manifest was read), by container name,
    /// and the preStop ones alone, for the stop path.
    pub(super) hooks: HashMap<String, Hooks>,
    pub(super) pre_stops: HashMap<String, hook::Handler>,
    /// When the pod started (its first sandbox), for activeDeadlineSeconds; and whether it has
    /// passed its deadline (it is then stopped, Failed, and never started again).
    started: Option<SystemTime>,
    pub(super) past_deadline: bool,
    /// When this worker first saw the pod, until its STATUS first reads Running
    /// (kubelet_pod_start_duration_seconds); None for a pod adopted running.
    first_seen: Option<Instant>,
    /// The worker's tokens, so a long postStart hook gives way to the pod being stopped.
    pub(super) terminate: CancellationToken,
    pub(super) shutdown: CancellationToken,
}

/// One step of the loop: an action as `decide` chose it, or stopping a pod past its deadline.
enum Step {
    Act(Action),
    StopPastDeadline { containers: Vec<(String, String, bool)>, sandboxes: Vec<String> },
}

impl Worker {
    pub(super) fn new(ctx: Arc<Context>, pod: StaticPod, seen: String) -> Self {
        // Sidecars are probed like main containers; regular init containers may not have probes.
        let probed = pod.init_containers().iter().filter(|c| is_sidecar(c)).chain(&pod.spec().containers);
        let probe_specs = probed
            .map(|c| (c.name.clone(), container_probes(c).unwrap_or_default()))
            .filter(|(_, specs)| !specs.is_empty())
            .collect();
        let prober = Prober::new(ctx.runtime.clone(), ctx.events.clone(), ctx.metrics.clone(), pod.clone());
        let grace = pod.spec().termination_grace_period_seconds.unwrap_or(30);
        let hooks: HashMap<String, Hooks> = pod
            .spec()
            .containers
            .iter()
            .map(|c| (c.name.clone(), hook::container_hooks(c, grace).unwrap_or_default()))
            .filter(|(_, hooks)| *hooks != Hooks::default())
            .collect();
        let pre_stops = hooks.iter().filter_map(|(name, h)| Some((name.clone(), h.pre_stop.clone()?))).collect();
        Self {
            probe_specs,
            prober,
            hooks,
            pre_stops,
            started: None,
            past_deadline: false,
            first_seen: Some(Instant::now()),
            terminate: CancellationToken::new(),
            shutdown: CancellationToken::new(),
            ctx,
            pod,
            seen,
            backoff: CrashBackoff::default(),
            exits: HashMap::new(),
            waiting: Waiting::new(),
            ips: HashMap::new(),
            failure: LogOnce::default(),
            exit_watches: tokio::task::JoinSet::new(),
            watched: HashSet::new(),
            announced_backoff: None,
        }
    }

    async fn run(&mut self, terminate: CancellationToken, shutdown: CancellationToken) {
        (self.terminate, self.shutdown) = (terminate.clone(), shutdown.clone());
        let mut snapshots = self.ctx.observer.subscribe();
        let mut snapshot = self.ctx.observer.latest();
        let mut probes_changed = self.prober.subscribe();
        let mut retry = Doubling::new(RETRY_MIN, RETRY_MAX);
        let mut announced = false;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            if terminate.is_cancelled() {
                self.publish(&snapshot, &[], true);
                // Readiness keeps being probed, and shown, while the pod stops (kubelet stops
                // probing at once: kubernetes#114994).
                let ctx = self.ctx.clone();
                let pod_ip = self.pod_ip(snapshot.pod(&self.pod.uid));
                // Boxed, as the actions below: each lives only while it runs, so the future a
                // pod keeps for its lifetime stays small.
                let mut stopping = Box::pin(stop::stop_pod(&ctx, &self.pod, &self.pre_stops, &pod_ip, &shutdown));
                loop {
                    tokio::select! {
                        _ = &mut stopping => break,
                        _ = probes_changed.changed() => self.publish(&ctx.observer.latest(), &[], true),
                    }
                }
                self.ctx.views.remove(&self.pod.uid);
                return;
            }
            let mut sleep_for = IDLE_RECHECK;
            let mut act = None;
            if snapshot.listed && snapshot.error.is_none() {
                let rt = snapshot.pod(&self.pod.uid);
                self.watch_exits(rt);
                self.sync_probes(rt);
                if !announced {
                    announced = true;
                    match rt {
                        Some(rt) if rt.ready_sandbox().is_some() => {
                            self.first_seen = None;
                            tracing::info!("adopted running pod");
                        }
                        _ => tracing::info!("starting pod"),
                    }
                }
                let now = SystemTime::now();
                self.started = deadline::started(self.started, rt);
                let deadline = deadline::check(self.pod.spec().active_deadline_seconds, self.started, now);
                if deadline == Deadline::Exceeded {
                    if !self.past_deadline {
                        self.past_deadline = true;
                        tracing::info!(active_deadline_seconds = ?self.pod.spec().active_deadline_seconds, "{}; stopping the pod", deadline::MESSAGE);
                        self.ctx.events.normal(&self.pod, deadline::REASON, deadline::MESSAGE.into());
                    }
                    self.publish(&snapshot, &[], false);
                    act = match deadline::after(rt, &self.exits) {
                        AfterDeadline::Stop { containers, sandboxes } => {
                            Some(Step::StopPastDeadline { containers, sandboxes })
                        }
                        AfterDeadline::Inspect(id) => Some(Step::Act(Action::InspectExit { id })),
                        AfterDeadline::Done => None,
                    };
                } else {
                    let health = self.prober.healths();
                    let action = next_action(&Inputs {
                        pod: &self.pod,
                        runtime: rt,
                        exits: &self.exits,
                        health: &health,
                        backoff: &self.backoff,
                        now: Instant::now(),
                    });
                    match action {
                        Action::Wait { until, containers } => {
                            sleep_for = until.saturating_duration_since(Instant::now());
                            self.announce_backoff(until, &containers);
                            self.publish(&snapshot, &containers, false);
                        }
                        Action::Idle => self.publish(&snapshot, &[], false),
                        action => {
                            self.publish(&snapshot, &[], false);
                            act = Some(Step::Act(action));
                        }
                    }
                }
                if let Deadline::At(at) = deadline {
                    sleep_for = sleep_for.min(at.duration_since(now).unwrap_or_default());
                }
            } else {
                self.publish(&snapshot, &[], false);
            }
            self.note_first_run();

            if let Some(step) = act {
                // Not held across the action: a hundred pods starting at once would otherwise
                // keep as many listings of the whole node alive.
                drop(snapshot);
                let result = match step {
                    Step::Act(action) => Box::pin(self.execute(action)).await,
                    Step::StopPastDeadline { containers, sandboxes } => {
                        Box::pin(self.stop_past_deadline(containers, sandboxes)).await
                    }
                };
                match result {
                    Ok(()) => {
                        retry.reset();
                        self.failure.recovered();
                    }
                    Err(error) => {
                        let wait = retry.next_wait();
                        if self.failure.failed(error.to_string()) {
                            tracing::warn!(error = %error, retry_in = ?wait, "pod action failed");
                        }
                        self.publish(&self.ctx.observer.latest(), &[], false);
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            _ = terminate.cancelled() => {}
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                }
                snapshot = self.ctx.observer.fresh().await;
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = terminate.cancelled() => {}
                changed = snapshots.changed() => if changed.is_err() { return },
                _ = probes_changed.changed() => {}
                _ = tokio::time::sleep(sleep_for) => {}
            }
            snapshot = snapshots.borrow_and_update().clone();
        }
    }

    /// kubelet_pod_start_duration_seconds, once per worker: the first time the pod reads Running.
    fn note_first_run(&mut self) {
        let Some(seen) = self.first_seen else { return };
        if self.ctx.views.get(&self.pod.uid).is_some_and(|v| v.status() == "Running") {
            self.first_seen = None;
            self.ctx.metrics.pod_start_duration.observe(seen.elapsed().as_secs_f64());
        }
    }

    /// One BackOff event per container for each new back-off deadline.
    fn announce_backoff(&mut self, until: Instant, containers: &[String]) {
        if self.announced_backoff == Some(until) {
            return;
        }
        self.announced_backoff = Some(until);
        for name in containers {
            let message = format!("Back-off restarting failed container {name} in pod {}", self.pod.name());
            self.ctx.events.warning(&self.pod, "BackOff", message);
        }
    }

    /// Starts an exit watch for each running container not yet watched, so an exit triggers a
    /// relist at once (see `cri::exit_watch`).
    fn watch_exits(&mut self, rt: Option<&RuntimePod>) {
        let Some(rt) = rt else { return };
        for container in rt.containers.iter().filter(|c| c.state == ContainerState::Running) {
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
                        .any(|c| c.id == id && c.state == ContainerState::Running);
                    if !running {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
        let live: HashSet<&str> = rt.containers.iter().map(|c| c.id.as_str()).collect();
        self.watched.retain(|id| live.contains(id.as_str()));
        while self.exit_watches.try_join_next().is_some() {}
    }

    /// Probes the containers of the ready sandbox that run, and stops probing the others.
    fn sync_probes(&mut self, rt: Option<&RuntimePod>) {
        if self.probe_specs.is_empty() {
            return;
        }
        let sandbox = rt.and_then(RuntimePod::ready_sandbox);
        let running: Vec<Running> = rt
            .into_iter()
            .flat_map(|rt| &rt.containers)
            .filter(|c| c.state == ContainerState::Running && sandbox.is_some_and(|s| s.id == c.sandbox_id))
            .map(|c| Running {
                id: &c.id,
                name: &c.name,
                started_at: SystemTime::UNIX_EPOCH + Duration::from_nanos(c.created_at.max(0) as u64),
            })
            .collect();
        let pod_ip = self.pod_ip(rt);
        self.prober.sync(&running, &self.probe_specs, &pod_ip);
    }

    /// The pod's IP: its sandbox's, or the node's on the host network.
    pub(super) fn pod_ip(&self, rt: Option<&RuntimePod>) -> String {
        if self.pod.host_network() {
            return self.ctx.node_ip.clone();
        }
        rt.and_then(|r| r.ready_sandbox()).and_then(|s| self.ips.get(&s.id)).cloned().unwrap_or_default()
    }

    fn publish(&self, snapshot: &RuntimeSnapshot, backing_off: &[String], terminating: bool) {
        let rt = snapshot.pod(&self.pod.uid);
        let ip = rt.and_then(|r| r.ready_sandbox()).and_then(|s| self.ips.get(&s.id)).cloned().unwrap_or_default();
        let health = self.prober.healths();
        let mut state = status::observe(&status::Inputs {
            pod: &self.pod,
            runtime: rt,
            exits: &self.exits,
            backing_off,
            waiting: &self.waiting,
            health: &health,
            terminating,
            ip: &ip,
            seen: &self.seen,
        });
        state.last_error = match &snapshot.error {
            Some(e) => Some(format!("container runtime unavailable: {e}")),
            None => self.failure.last().map(str::to_owned),
        };
        // Failed for good once nothing of it runs any more (never a terminal phase before).
        if self.past_deadline && rt.is_none_or(|r| r.containers.iter().all(|c| c.state == ContainerState::Exited)) {
            state.reason = Some((deadline::REASON.into(), deadline::MESSAGE.into()));
        }
        self.ctx.views.set(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cri::fake::{FakeCri, rpc_error},
        manifest::{Origin, parse_manifest},
    };

    #[tokio::test(start_paused = true)]
    async fn a_failing_start_is_retried_after_1_2_and_4_seconds_then_runs() {
        let fake = Arc::new(FakeCri::with_images(&["i:1"]));
        for _ in 0..3 {
            fake.fail_next("StartContainer", rpc_error("StartContainer", tonic::Code::Unknown, "exec format error"));
        }
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {hostNetwork: true, containers: [{name: c, image: i:1}]}\n";
        let pod = parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "n").unwrap().remove(0);
        let dir = tempfile::tempdir().unwrap();
        let ctx = Arc::new(Context::for_tests(fake.clone(), dir.path()));
        let observer = ctx.observer.clone();
        let (terminate, shutdown) = (CancellationToken::new(), CancellationToken::new());
        tokio::spawn(observer.run(fake.clone(), "n".into(), Duration::from_secs(1), shutdown.clone()));
        let worker = tokio::spawn(supervise(ctx.clone(), pod.clone(), String::new(), terminate, shutdown.clone()));

        let running = async {
            while ctx.views.get(&pod.uid).is_none_or(|v| v.status() != "Running") {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), running).await.expect("the pod runs after three failed starts");

        let starts = fake.call_times("StartContainer");
        assert_eq!(starts.len(), 4, "three failures, then success");
        let waits: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(waits, [1, 2, 4].map(Duration::from_secs));
        assert_eq!(ctx.views.get(&pod.uid).unwrap().last_error, None, "the error clears once the action succeeds");
        shutdown.cancel();
        worker.await.unwrap();
        assert!(fake.sandbox_ids().len() == 1, "shutdown leaves the pod running");
    }
}
