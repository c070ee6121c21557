//! The probe tasks of one pod: one task per probe of each running container, started when the
//! container is first seen running and aborted when it is not (a restarted container is a new
//! container, with new probes and fresh thresholds, as in kubelet). Each task records its results
//! in the container's trackers and publishes the container's `Health`; the pod's worker wakes on
//! every change.
//!
//! One difference from kubelet: liveness and readiness wait for the startup probe to pass by
//! waiting on it, not by skipping a period, so readiness is probed the moment startup passes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use tokio::{sync::watch, task::AbortHandle};

use super::{
    ProbeKind, ProbeSpec,
    attempt::{Target, attempt},
    verdict::{Outcome, Tracker, health, runs},
};
use crate::{cri::SharedCri, manifest::StaticPod, ops::metrics::Metrics, supervisor::events::Events};
use prometheus_client::metrics::counter::Counter;

/// What the probes say about one running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The startup probe passed (or there is none).
    pub started: bool,
    /// Started, and the readiness probe passes (or there is none).
    pub ready: bool,
    /// A liveness or startup probe failed for good: the container must be killed.
    pub failed: Option<Failed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub kind: ProbeKind,
    pub message: String,
    /// The probe's terminationGracePeriodSeconds, if it set one.
    pub grace: Option<Duration>,
}

/// One running container's probe state, shared by its probe tasks.
struct Container {
    trackers: HashMap<ProbeKind, Tracker>,
    failed: Option<Failed>,
    started: watch::Sender<bool>,
}

impl Container {
    fn health(&self) -> Health {
        let result = |kind| self.trackers.get(&kind).map(|t| t.result);
        let (started, ready) = health(result(ProbeKind::Startup), result(ProbeKind::Readiness));
        Health { started, ready, failed: self.failed.clone() }
    }
}

type Healths = Arc<Mutex<HashMap<String, Health>>>;

struct Probed {
    tasks: Vec<AbortHandle>,
}

/// The probes of one pod's running containers, owned by the pod's worker.
pub struct Prober {
    cri: SharedCri,
    events: Events,
    metrics: Arc<Metrics>,
    pod: StaticPod,
    probed: HashMap<String, Probed>,
    healths: Healths,
    changed: watch::Sender<u64>,
}

/// A running container to probe.
pub struct Running<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// When it started: initialDelaySeconds counts from here.
    pub started_at: SystemTime,
}

impl Prober {
    pub fn new(cri: SharedCri, events: Events, metrics: Arc<Metrics>, pod: StaticPod) -> Self {
        let (changed, _) = watch::channel(0);
        Self { cri, events, metrics, pod, probed: HashMap::new(), healths: Arc::default(), changed }
    }

    /// Wakes on every change of any container's health.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Health by container ID, for the containers that have probes.
    pub fn healths(&self) -> HashMap<String, Health> {
        self.healths.lock().expect("healths lock").clone()
    }

    /// Starts probing the running containers not probed yet, and stops probing the ones that no
    /// longer run. `pod_ip` is the probes' default host.
    pub fn sync(&mut self, running: &[Running], specs: &HashMap<String, Vec<ProbeSpec>>, pod_ip: &str) {
        self.probed.retain(|id, probed| {
            let keep = running.iter().any(|r| r.id == id);
            if !keep {
                probed.tasks.iter().for_each(AbortHandle::abort);
            }
            keep
        });
        self.healths.lock().expect("healths lock").retain(|id, _| running.iter().any(|r| r.id == id));
        for container in running {
            let Some(specs) = specs.get(container.name).filter(|s| !s.is_empty()) else { continue };
            if self.probed.contains_key(container.id) {
                continue;
            }
            let trackers = specs
                .iter()
                .map(|s| (s.kind, Tracker::new(s.kind, s.success_threshold, s.failure_threshold)))
                .collect();
            let state = Container { trackers, failed: None, started: watch::channel(false).0 };
            let initial = state.health();
            state.started.send_replace(initial.started);
            self.healths.lock().expect("healths lock").insert(container.id.to_owned(), initial);
            let state = Arc::new(Mutex::new(state));
            let tasks = specs
                .iter()
                .map(|spec| {
                    let task = ProbeTask {
                        counts: Counts::new(&self.metrics, &self.pod, container.name, spec.kind),
                        cri: self.cri.clone(),
                        events: self.events.clone(),
                        pod: self.pod.clone(),
                        spec: spec.clone(),
                        container_id: container.id.to_owned(),
                        pod_ip: pod_ip.to_owned(),
                        started_at: container.started_at,
                        state: state.clone(),
                        healths: self.healths.clone(),
                        changed: self.changed.clone(),
                    };
                    tokio::spawn(task.run()).abort_handle()
                })
                .collect();
            self.probed.insert(container.id.to_owned(), Probed { tasks });
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        for probed in self.probed.values() {
            probed.tasks.iter().for_each(AbortHandle::abort);
        }
    }
}

/// One probe's two series of `prober_probe_total`, made once so an attempt only counts.
struct Counts {
    successful: Counter,
    failed: Counter,
}

impl Counts {
    fn new(metrics: &Metrics, pod: &StaticPod, container: &str, kind: ProbeKind) -> Self {
        let series = |result: &str| {
            let labels = [
                ("probe_type", kind.word()),
                ("result", result),
                ("container", container),
                ("pod", pod.name()),
                ("namespace", pod.namespace()),
                ("pod_uid", &pod.uid),
            ];
            let labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            metrics.probes.get_or_create(&labels).clone()
        };
        Self { successful: series("successful"), failed: series("failed") }
    }
}

struct ProbeTask {
    counts: Counts,
    cri: SharedCri,
    events: Events,
    pod: StaticPod,
    spec: ProbeSpec,
    container_id: String,
    pod_ip: String,
    started_at: SystemTime,
    state: Arc<Mutex<Container>>,
    healths: Healths,
    changed: watch::Sender<u64>,
}

impl ProbeTask {
    async fn run(self) {
        let kind = self.spec.kind;
        let since_start = SystemTime::now().duration_since(self.started_at).unwrap_or_default();
        tokio::time::sleep(self.spec.initial_delay.saturating_sub(since_start)).await;
        let mut started = self.state.lock().expect("probe state").started.subscribe();
        // kubelet's ticker: an attempt every period, and one at once after an attempt that took
        // longer (a probe hanging for its timeout is retried right away, not a period later).
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + self.spec.period, self.spec.period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            if !runs(kind, *started.borrow_and_update()) {
                // Liveness and readiness run once the startup probe has passed.
                if started.wait_for(|s| *s).await.is_err() {
                    return;
                }
                continue;
            }
            let target = Target { container_id: &self.container_id, pod_ip: &self.pod_ip };
            let result = attempt(self.cri.as_ref(), &self.spec, &target).await;
            match &result {
                Ok(()) => self.counts.successful.inc(),
                Err(_) => self.counts.failed.inc(),
            };
            if let Err(message) = &result {
                tracing::debug!(container_id = %self.container_id, probe = kind.word(), %message, "probe failed");
                self.events.warning(&self.pod, "Unhealthy", format!("{} probe failed: {message}", kind.word()));
            }
            let outcome = self.record(result);
            match (kind, outcome) {
                // A failed liveness or startup probe ends with the container's kill; a passed
                // startup probe has done its job.
                (ProbeKind::Liveness | ProbeKind::Startup, Some(Outcome::Failure))
                | (ProbeKind::Startup, Some(Outcome::Success)) => return,
                _ => {}
            }
            ticker.tick().await;
        }
    }

    /// Records one result and publishes the container's health if it changed.
    fn record(&self, result: Result<(), String>) -> Option<Outcome> {
        let kind = self.spec.kind;
        let mut state = self.state.lock().expect("probe state");
        let before = state.health();
        let outcome = state.trackers.get_mut(&kind).and_then(|t| t.record(result.is_ok()));
        if outcome == Some(Outcome::Failure) && kind != ProbeKind::Readiness {
            let message = result.err().unwrap_or_default();
            state.failed = Some(Failed { kind, message, grace: self.spec.termination_grace });
        }
        let after = state.health();
        state.started.send_replace(after.started);
        if after != before {
            self.healths.lock().expect("healths lock").insert(self.container_id.clone(), after);
            self.changed.send_modify(|n| *n += 1);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cri::{Cri, api, fake::FakeCri},
        manifest::{Origin, parse_manifest},
        probe::container_probes,
    };

    async fn setup(probes: &str) -> (Arc<FakeCri>, Prober, HashMap<String, Vec<ProbeSpec>>, String) {
        let (fake, prober, specs, id, _) = setup_with_metrics(probes).await;
        (fake, prober, specs, id)
    }

    async fn setup_with_metrics(
        probes: &str,
    ) -> (Arc<FakeCri>, Prober, HashMap<String, Vec<ProbeSpec>>, String, Arc<Metrics>) {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: i\n{probes}"
        );
        let pod = parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "n").unwrap().remove(0);
        let specs = HashMap::from([("c".to_owned(), container_probes(&pod.spec().containers[0]).unwrap())]);
        let fake = Arc::new(FakeCri::default());
        let sandbox = fake.run_sandbox(api::PodSandboxConfig::default(), "").await.unwrap();
        let id = fake.create_container(&sandbox, Default::default(), Default::default()).await.unwrap();
        let metrics = Arc::new(Metrics::new());
        let prober = Prober::new(fake.clone(), Events::default(), metrics.clone(), pod);
        (fake, prober, specs, id, metrics)
    }

    async fn wait_health(prober: &Prober, id: &str, check: impl Fn(&Health) -> bool) -> Health {
        let mut changed = prober.subscribe();
        loop {
            if let Some(h) = prober.healths().get(id).filter(|h| check(h)) {
                return h.clone();
            }
            changed.changed().await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_follows_an_exec_probe_with_its_thresholds() {
        let (fake, mut prober, specs, id) =
            setup("    readinessProbe: {exec: {command: [check]}, periodSeconds: 1, failureThreshold: 2}\n").await;
        let t0 = tokio::time::Instant::now();
        prober.sync(&[Running { id: &id, name: "c", started_at: SystemTime::now() }], &specs, "10.0.0.2");
        assert_eq!(prober.healths()[&id], Health { started: true, ready: false, failed: None });

        wait_health(&prober, &id, |h| h.ready).await;
        assert_eq!(t0.elapsed(), Duration::ZERO, "the first probe runs at once (initialDelaySeconds 0)");
        fake.set_exec_result(&id, 1, "not ready");
        wait_health(&prober, &id, |h| !h.ready).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(2), "unready after two failures a period apart");
    }

    #[tokio::test(start_paused = true)]
    async fn every_attempt_is_counted_in_kubelets_prober_probe_total() {
        let (fake, mut prober, specs, id, metrics) =
            setup_with_metrics("    readinessProbe: {exec: {command: [check]}, periodSeconds: 1}\n").await;
        prober.sync(&[Running { id: &id, name: "c", started_at: SystemTime::now() }], &specs, "");
        wait_health(&prober, &id, |h| h.ready).await;
        fake.set_exec_result(&id, 1, "no");
        wait_health(&prober, &id, |h| !h.ready).await;
        let text = metrics.encode();
        let series = |result: &str| {
            text.lines()
                .find(|l| l.starts_with("prober_probe_total{") && l.contains(&format!("result=\"{result}\"")))
                .unwrap_or_else(|| panic!("no {result} series in:\n{text}"))
                .to_owned()
        };
        let ok = series("successful");
        assert!(
            ok.contains("probe_type=\"Readiness\"") && ok.contains("container=\"c\"") && ok.contains("pod=\"p-n\""),
            "{ok}"
        );
        assert!(ok.ends_with(" 1"), "{ok}");
        assert!(series("failed").ends_with(" 3"), "three failures make the default threshold: {text}");
    }

    #[tokio::test(start_paused = true)]
    async fn startup_gates_readiness_and_a_failed_liveness_probe_asks_for_the_kill() {
        let (fake, mut prober, specs, id) = setup(
            "    startupProbe: {exec: {command: [started]}, periodSeconds: 5, failureThreshold: 10}\n    \
             readinessProbe: {exec: {command: [ready]}, periodSeconds: 1}\n    \
             livenessProbe: {exec: {command: [live]}, periodSeconds: 1, failureThreshold: 3, terminationGracePeriodSeconds: 2}\n",
        )
        .await;
        fake.set_exec_result(&id, 1, "starting");
        prober.sync(&[Running { id: &id, name: "c", started_at: SystemTime::now() }], &specs, "");
        tokio::time::sleep(Duration::from_secs(12)).await;
        let h = prober.healths()[&id].clone();
        assert!(!h.started && !h.ready, "not started while the startup probe fails: {h:?}");
        let execs_before = fake.calls().iter().filter(|c| c.starts_with("ExecSync")).count();
        assert_eq!(execs_before, 3, "only the startup probe ran (at 0, 5 and 10 s)");

        fake.set_exec_result(&id, 0, "");
        let t_pass = tokio::time::Instant::now();
        wait_health(&prober, &id, |h| h.started && h.ready).await;
        assert!(t_pass.elapsed() <= Duration::from_secs(3), "ready right after the startup probe passes");

        fake.set_exec_result(&id, 1, "dead");
        let h = wait_health(&prober, &id, |h| h.failed.is_some()).await;
        let failed = h.failed.unwrap();
        assert_eq!((failed.kind, failed.grace), (ProbeKind::Liveness, Some(Duration::from_secs(2))));
        assert_eq!(failed.message, "dead");
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_that_stops_running_is_no_longer_probed() {
        let (fake, mut prober, specs, id) =
            setup("    livenessProbe: {exec: {command: [live]}, periodSeconds: 1}\n").await;
        prober.sync(&[Running { id: &id, name: "c", started_at: SystemTime::now() }], &specs, "");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        prober.sync(&[], &specs, "");
        let count = fake.calls().len();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(fake.calls().len(), count, "no probe runs after the container stopped");
        assert!(prober.healths().is_empty());
    }
}
