//! The worker's side of lifecycle hooks and activeDeadlineSeconds: a container's postStart hook
//! right after its start, a kill with its preStop hook (liveness, failed postStart), and the
//! stop of a pod past its deadline. The rules are pure elsewhere (`hook`, `deadline`); the stop
//! itself is `stop::stop_container`.

use std::time::Duration;

use super::{
    stop::{self, PreStops, ignore_not_found},
    worker::Worker,
};
use crate::{cri::CriError, hook};

/// kubelet gives a postStart hook no timeout; the runtime needs one for ExecSync. A day is
/// "none" for a hook, and the pod stopping cancels it anyway.
const POST_START_LIMIT: Duration = Duration::from_secs(24 * 3600);

impl Worker {
    /// Runs the container's postStart hook, if it has one (kubelet runs it synchronously: the
    /// container shows Running only once it returns). If it fails: a FailedPostStartHook event,
    /// and the container is killed (preStop included) so the restart path runs it again. A pod
    /// told to stop meanwhile cancels the hook.
    pub(super) async fn post_start(&mut self, id: &str, name: &str, sandbox_id: &str) -> Result<(), CriError> {
        let Some(handler) = self.hooks.get(name).and_then(|h| h.post_start.clone()) else { return Ok(()) };
        let pod_ip = if self.pod.host_network() {
            self.ctx.node_ip.clone()
        } else {
            self.ips.get(sandbox_id).cloned().unwrap_or_default()
        };
        let pod = self.pod.full_name();
        let target = hook::Target { container_id: id, container: name, pod: &pod, pod_ip: &pod_ip };
        let (terminate, shutdown) = (self.terminate.clone(), self.shutdown.clone());
        let result = tokio::select! {
            result = hook::run(self.ctx.runtime.as_ref(), &handler, &target, POST_START_LIMIT) => result,
            _ = terminate.cancelled() => return Ok(()),
            _ = shutdown.cancelled() => return Ok(()),
        };
        let Err(message) = result else {
            tracing::info!(container = %name, "postStart hook done");
            return Ok(());
        };
        tracing::warn!(container = %name, %message, "postStart hook failed; killing the container");
        self.ctx.events.warning(&self.pod, "FailedPostStartHook", hook::POST_START_FAILED.into());
        self.ctx.events.normal(&self.pod, "Killing", "FailedPostStartHook".into());
        self.kill_container(id, name, self.pod.grace_period()).await
    }

    /// Stops one running container of this pod, its preStop hook first.
    pub(super) async fn kill_container(&self, id: &str, name: &str, grace: Duration) -> Result<(), CriError> {
        let pod_ip = self.current_pod_ip();
        let pre_stops = PreStops::new(&self.pod, &self.pre_stops, &pod_ip);
        stop::stop_container(&self.ctx, id, name, true, grace, Some(&pre_stops)).await
    }

    /// Stops what still runs of a pod past its activeDeadlineSeconds: its containers (preStop
    /// hooks, the pod's grace period) and then its sandboxes, which are kept (stopped) so the
    /// containers' terminated states stay visible.
    pub(super) async fn stop_past_deadline(
        &mut self,
        containers: Vec<(String, String, bool)>,
        sandboxes: Vec<String>,
    ) -> Result<(), CriError> {
        let pod_ip = self.current_pod_ip();
        let pre_stops = PreStops::new(&self.pod, &self.pre_stops, &pod_ip);
        let grace = self.pod.grace_period();
        for (_, name, _) in &containers {
            self.ctx.events.normal(&self.pod, "Killing", format!("Stopping container {name}"));
        }
        let stops = containers
            .iter()
            .map(|(id, name, running)| stop::stop_container(&self.ctx, id, name, *running, grace, Some(&pre_stops)));
        for result in futures::future::join_all(stops).await {
            result?;
        }
        for id in sandboxes {
            ignore_not_found(self.ctx.runtime.stop_sandbox(&id).await)?;
        }
        Ok(())
    }

    fn current_pod_ip(&self) -> String {
        self.pod_ip(self.ctx.observer.latest().pod(&self.pod.uid))
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use tokio::sync::mpsc::UnboundedReceiver;
    use tokio_util::sync::CancellationToken;

    use crate::{
        cri::{SharedCri, fake::FakeCri},
        manifest::{Origin, StaticPod, parse_manifest},
        supervisor::{
            Context, PodState,
            events::{Events, PodEvent},
            status::ContainerPhase,
            worker::supervise,
        },
    };

    /// One pod supervised against the fake runtime, relisted every second (tokio time).
    struct Harness {
        fake: Arc<FakeCri>,
        ctx: Arc<Context>,
        pod: StaticPod,
        events: UnboundedReceiver<PodEvent>,
        terminate: CancellationToken,
        shutdown: CancellationToken,
        worker: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    fn pod(spec: &str) -> StaticPod {
        let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  hostNetwork: true\n{spec}");
        parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "n").unwrap().remove(0)
    }

    fn start(fake: Arc<FakeCri>, pod: StaticPod) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = Context::for_tests(fake.clone() as SharedCri, dir.path());
        let (events, rx) = Events::channel();
        ctx.events = events;
        let ctx = Arc::new(ctx);
        let (terminate, shutdown) = (CancellationToken::new(), CancellationToken::new());
        tokio::spawn(ctx.observer.clone().run(fake.clone(), "n".into(), Duration::from_secs(1), shutdown.clone()));
        let worker =
            tokio::spawn(supervise(ctx.clone(), pod.clone(), String::new(), terminate.clone(), shutdown.clone()));
        Harness { fake, ctx, pod, events: rx, terminate, shutdown, worker, _dir: dir }
    }

    impl Harness {
        fn state(&self) -> Option<PodState> {
            self.ctx.views.get(&self.pod.uid)
        }

        /// Waits (tokio time, 10 ms steps) until the pod's state satisfies `check`.
        async fn wait_for(&self, what: &str, check: impl Fn(&PodState) -> bool) -> PodState {
            let wait = async {
                loop {
                    if let Some(state) = self.state().filter(|s| check(s)) {
                        return state;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(120), wait)
                .await
                .unwrap_or_else(|_| panic!("{what}: {:#?}\ncalls: {:?}", self.state(), self.fake.calls()))
        }

        /// (warning, reason, message) of the events so far.
        fn events(&mut self) -> Vec<(bool, &'static str, String)> {
            let mut out = Vec::new();
            while let Ok(e) = self.events.try_recv() {
                out.push((e.warning, e.reason, e.message));
            }
            out
        }

        async fn stop(self) {
            self.terminate.cancel();
            self.worker.await.unwrap();
            self.shutdown.cancel();
        }
    }

    fn running(state: &PodState) -> bool {
        state.status() == "Running"
    }

    const IMAGE: &str = "i:1";

    fn container(extra: &str) -> String {
        format!("  containers:\n  - name: c\n    image: {IMAGE}\n{extra}")
    }

    #[tokio::test(start_paused = true)]
    async fn the_container_is_running_only_once_its_post_start_hook_returned() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        let h = start(fake.clone(), pod(&container("    lifecycle: {postStart: {sleep: {seconds: 5}}}\n")));
        h.wait_for("started in the runtime", |_| !fake.call_times("StartContainer").is_empty()).await;
        let started = fake.call_times("StartContainer")[0];
        let state = h.wait_for("running", running).await;
        assert!(started.elapsed() >= Duration::from_secs(5), "Running {:?} after the start", started.elapsed());
        assert_eq!(state.containers[0].restart_count, 0);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_post_start_hook_kills_the_container_with_kubelets_events_and_it_is_restarted() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        // The first container's hook fails; the second's passes (the fake's default).
        fake.set_exec_result("container-2", 1, "not yet\n");
        let spec = container("    lifecycle: {postStart: {exec: {command: [warm-up]}}}\n");
        let mut h = start(fake.clone(), pod(&format!("  terminationGracePeriodSeconds: 7\n{spec}")));
        let state = h.wait_for("running again after one restart", |s| running(s) && s.restarts() == 1).await;
        assert_eq!(state.containers[0].id, "container-3");
        assert_eq!(
            fake.stop_graces(),
            [("container-2".to_owned(), Duration::from_secs(7))],
            "killed with the pod's grace"
        );
        let events = h.events();
        let failed = events.iter().position(|e| *e == (true, "FailedPostStartHook", "PostStartHook failed".into()));
        let killing = events.iter().position(|e| *e == (false, "Killing", "FailedPostStartHook".into()));
        assert!(failed.is_some() && killing > failed, "{events:?}");
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn pre_stop_runs_before_the_stop_signal_and_counts_against_the_grace_period() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        let spec = container("    lifecycle: {preStop: {sleep: {seconds: 3}}}\n");
        let h = start(fake.clone(), pod(&format!("  terminationGracePeriodSeconds: 10\n{spec}")));
        h.wait_for("running", running).await;
        let t0 = tokio::time::Instant::now();
        let fake2 = fake.clone();
        h.stop().await;
        let stops = fake2.call_times("StopContainer");
        assert_eq!(stops.len(), 1);
        assert_eq!(stops[0] - t0, Duration::from_secs(3), "SIGTERM once the hook is done");
        assert_eq!(fake2.stop_graces(), [("container-2".to_owned(), Duration::from_secs(7))], "10 s less the 3 s hook");
        assert!(fake2.sandbox_ids().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_pre_stop_hook_is_reported_and_the_stop_goes_on_with_the_whole_grace() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        fake.set_exec_result("container-2", 2, "drain failed");
        let spec = container("    lifecycle: {preStop: {exec: {command: [drain]}}}\n");
        let mut h = start(fake.clone(), pod(&format!("  terminationGracePeriodSeconds: 10\n{spec}")));
        h.wait_for("running", running).await;
        h.terminate.cancel();
        (&mut h.worker).await.unwrap();
        assert!(fake.calls().contains(&"ExecSync container-2".to_owned()));
        assert_eq!(fake.stop_graces(), [("container-2".to_owned(), Duration::from_secs(10))]);
        let events = h.events();
        assert!(events.contains(&(true, "FailedPreStopHook", "PreStopHook failed".into())), "{events:?}");
        h.shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_liveness_kill_runs_pre_stop_within_the_probes_grace() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        fake.set_exec_result("container-2", 1, "dead");
        let spec = container(
            "    lifecycle: {preStop: {sleep: {seconds: 1}}}\n    \
             livenessProbe: {exec: {command: [live]}, periodSeconds: 1, failureThreshold: 1, terminationGracePeriodSeconds: 4}\n",
        );
        let h = start(fake.clone(), pod(&spec));
        h.wait_for("restarted after the liveness kill", |s| running(s) && s.restarts() == 1).await;
        assert_eq!(fake.stop_graces()[0], ("container-2".to_owned(), Duration::from_secs(3)), "4 s less the 1 s hook");
        h.stop().await;
    }

    #[tokio::test]
    async fn a_pod_past_its_active_deadline_is_stopped_failed_and_never_restarted() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        fake.use_wall_clock();
        let spec = container("    lifecycle: {preStop: {exec: {command: [bye]}}}\n");
        let mut h = start(fake.clone(), pod(&format!("  activeDeadlineSeconds: 1\n  restartPolicy: Always\n{spec}")));
        h.wait_for("running", running).await;
        let state = h.wait_for("failed past its deadline", |s| s.reason.is_some()).await;
        assert_eq!(state.status(), "DeadlineExceeded");
        assert_eq!(state.reason.as_ref().unwrap().1, "Pod was active on the node longer than the specified deadline");
        assert!(matches!(state.containers[0].phase, ContainerPhase::Terminated { exit_code: 143, .. }), "{state:?}");
        let calls = fake.calls();
        assert!(calls.contains(&"ExecSync container-2".to_owned()), "the preStop hook ran: {calls:?}");
        assert!(calls.contains(&"StopPodSandbox sandbox-1".to_owned()), "{calls:?}");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(fake.call_times("StartContainer").len(), 1, "never started again");
        assert_eq!(fake.call_times("RunPodSandbox").len(), 1, "no new sandbox either");
        let events = h.events();
        let deadline =
            (false, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline".into());
        assert!(events.contains(&deadline), "{events:?}");
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_exited_containers_message_is_its_termination_file_or_with_fallback_its_log_tail() {
        let fake = Arc::new(FakeCri::with_images(&[IMAGE]));
        let spec = format!(
            "  restartPolicy: Never\n  containers:\n  - {{name: a, image: {IMAGE}}}\n  \
             - {{name: b, image: {IMAGE}, terminationMessagePolicy: FallbackToLogsOnError}}\n"
        );
        let h = start(fake.clone(), pod(&spec));
        h.wait_for("running", |s| s.containers.iter().all(|c| c.phase.is_running())).await;
        let (a, b) = ("container-2", "container-3");
        let file = |id: &str| {
            let mounts = fake.mounts(id);
            let mount = mounts.iter().find(|m| m.container_path == "/dev/termination-log").expect("mounted");
            std::path::PathBuf::from(&mount.host_path)
        };
        assert_eq!(std::fs::read(file(a)).unwrap(), b"", "a fresh, empty file");
        std::fs::write(file(a), "config is invalid").unwrap();
        let status = crate::cri::Cri::container_status(fake.as_ref(), b).await.unwrap();
        std::fs::write(
            &status.log_path,
            "2026-01-01T00:00:00Z stderr F starting\n2026-01-01T00:00:01Z stderr F panic: no disk\n",
        )
        .unwrap();
        fake.exit(a, 1);
        fake.exit(b, 2);
        let state = h.wait_for("both terminated", |s| s.containers.iter().all(|c| c.phase.exit_code().is_some())).await;
        let messages: Vec<&str> = state
            .containers
            .iter()
            .map(|c| match &c.phase {
                ContainerPhase::Terminated { message, .. } => message.as_str(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(messages, ["config is invalid", "starting\npanic: no disk\n"]);
        let view = crate::ops::view::PodView::of(&state);
        assert_eq!(view.containers[0].message.as_deref(), Some("config is invalid"));
        h.stop().await;
    }
}
