//! What a supervised pod is doing, as a typed model: each container Waiting (with kubelet's
//! reason), Running or Terminated, ready or not, with its restart count. The supervisor derives it
//! from the runtime (pure `observe`); the local view (`ops::view`) and the mirror's v1 status
//! (`mirror::pod::status_of`) are both rendered from it, so they cannot disagree.

use std::{collections::HashMap, time::SystemTime};

use jiff::Timestamp;

use super::decide::Exit;
use k8s_openapi::api::core::v1::Container;

use crate::{
    cri::{ContainerState, RuntimePod},
    manifest::{RestartPolicy, StaticPod, is_sidecar},
    probe::Health,
};

#[derive(Debug, Clone, PartialEq)]
pub struct PodState {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `file:<path>` or `http:<url>`.
    pub source: String,
    /// config.seen: when this version of the pod was first seen.
    pub seen: String,
    /// The sandbox IP ("" on the host network).
    pub ip: String,
    /// When the current sandbox was created: the pod's startTime.
    pub started: Option<Timestamp>,
    pub terminating: bool,
    /// Every init container finished (and every sidecar started), or there are none.
    pub initialized: bool,
    /// Init containers and sidecars, in order.
    pub init_containers: Vec<ContainerStatus>,
    pub containers: Vec<ContainerStatus>,
    /// The last error carrying out an action (image pull, container start, runtime down).
    pub last_error: Option<String>,
    /// Why the pod failed as a whole (`DeadlineExceeded`), with kubelet's message: the pod's
    /// phase is then Failed, and this is its STATUS.
    pub reason: Option<(String, String)>,
    /// The condition types of `spec.readinessGates`. Only the API server could set them (on the
    /// mirror), so locally none is ever met: a pod with readiness gates is never Ready here.
    pub readiness_gates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStatus {
    pub name: String,
    /// The runtime's ID of the newest container of this name ("" before the first create).
    pub id: String,
    pub phase: ContainerPhase,
    pub ready: bool,
    /// Running, and its startup probe (if any) has passed.
    pub started: bool,
    /// An init container with restartPolicy Always.
    pub sidecar: bool,
    pub restart_count: u32,
    pub image: String,
    /// The runtime's image reference (imageID).
    pub image_ref: String,
    /// When the newest container was created.
    pub started_at: Option<Timestamp>,
}

/// v1 ContainerState, with kubelet's reasons.
#[derive(Debug, Clone, PartialEq)]
pub enum ContainerPhase {
    Waiting {
        reason: String,
    },
    Running,
    /// `message`: the termination message ("" if none).
    Terminated {
        exit_code: i32,
        reason: String,
        message: String,
        finished_at: Option<Timestamp>,
    },
}

impl ContainerPhase {
    fn waiting(reason: &str) -> Self {
        Self::Waiting { reason: reason.into() }
    }
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Running)
    }
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Self::Terminated { exit_code, .. } => Some(*exit_code),
            _ => None,
        }
    }
    /// The Waiting or Terminated reason ("" when running).
    pub fn reason(&self) -> &str {
        match self {
            Self::Waiting { reason } | Self::Terminated { reason, .. } => reason,
            Self::Running => "",
        }
    }
}

/// Per-container problems the worker met, by container name (e.g. `ErrImagePull`).
pub type Waiting = HashMap<String, String>;

pub struct Inputs<'a> {
    pub pod: &'a StaticPod,
    pub runtime: Option<&'a RuntimePod>,
    pub exits: &'a HashMap<String, Exit>,
    /// Containers in crash-loop back-off.
    pub backing_off: &'a [String],
    pub waiting: &'a Waiting,
    /// What the probes say, by container ID (containers with probes only).
    pub health: &'a HashMap<String, Health>,
    pub terminating: bool,
    pub ip: &'a str,
    pub seen: &'a str,
}

pub fn observe(inputs: &Inputs) -> PodState {
    let pod = inputs.pod;
    let policy = pod.restart_policy();
    let init_policy = if policy == RestartPolicy::Never { RestartPolicy::Never } else { RestartPolicy::OnFailure };
    let sandbox = inputs.runtime.and_then(RuntimePod::ready_sandbox).map(|s| s.id.as_str());
    let init_containers: Vec<ContainerStatus> = pod
        .init_containers()
        .iter()
        .map(|spec| {
            let kind = if is_sidecar(spec) { Kind::Sidecar } else { Kind::Init };
            let policy = if kind == Kind::Sidecar { RestartPolicy::Always } else { init_policy };
            container_status(inputs, spec, kind, policy, sandbox, "PodInitializing")
        })
        .collect();
    // Initialized: every regular init container finished with exit 0 in this sandbox and every
    // sidecar has started.
    let initialized = sandbox.is_some()
        && init_containers.iter().all(|c| if c.sidecar { c.started } else { c.phase.exit_code() == Some(0) });
    let not_yet = if initialized || init_containers.is_empty() { "ContainerCreating" } else { "PodInitializing" };
    let containers = pod
        .spec()
        .containers
        .iter()
        .map(|spec| container_status(inputs, spec, Kind::Main, policy, sandbox, not_yet))
        .collect();
    PodState {
        namespace: pod.namespace().into(),
        name: pod.name().into(),
        uid: pod.uid.clone(),
        source: pod.origin.to_string(),
        seen: inputs.seen.into(),
        ip: inputs.ip.into(),
        started: inputs.runtime.and_then(RuntimePod::ready_sandbox).and_then(|s| nanos(s.created_at)),
        terminating: inputs.terminating,
        initialized: initialized || pod.init_containers().is_empty(),
        init_containers,
        containers,
        last_error: None,
        reason: None,
        readiness_gates: pod.spec().readiness_gates.iter().flatten().map(|g| g.condition_type.clone()).collect(),
    }
}

/// kubelet's Ready condition past ContainersReady (status.GeneratePodReadyCondition): every
/// readiness gate's condition must be True in `conditions`. None when all are; otherwise the
/// message of the `ReadinessGatesNotReady` reason, naming each gate that is not met.
pub fn readiness_gates_not_ready(gates: &[String], conditions: &[(String, String)]) -> Option<String> {
    let unmet: Vec<String> = gates
        .iter()
        .filter_map(|gate| match conditions.iter().find(|(kind, _)| kind == gate) {
            None => Some(format!("corresponding condition of pod readiness gate {gate:?} does not exist.")),
            Some((_, status)) if status != "True" => {
                Some(format!("the status of pod readiness gate {gate:?} is not \"True\", but {status}"))
            }
            Some(_) => None,
        })
        .collect();
    (!unmet.is_empty()).then(|| unmet.join(", "))
}

/// kubelet's reason for a Ready condition held False by readiness gates.
pub const READINESS_GATES_NOT_READY: &str = "ReadinessGatesNotReady";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Init,
    Sidecar,
    Main,
}

/// One container's status from its newest runtime container. `not_yet` is the waiting reason
/// before it first runs (ContainerCreating, or PodInitializing while init containers run).
fn container_status(
    inputs: &Inputs,
    spec: &Container,
    kind: Kind,
    policy: RestartPolicy,
    sandbox: Option<&str>,
    not_yet: &str,
) -> ContainerStatus {
    let latest = inputs.runtime.and_then(|rt| rt.containers.iter().rev().find(|c| c.name == spec.name));
    let mut phase = ContainerPhase::waiting(not_yet);
    match latest.map(|c| (c, c.state)) {
        Some((c, ContainerState::Running)) if sandbox == Some(c.sandbox_id.as_str()) => {
            phase = ContainerPhase::Running;
        }
        Some((c, ContainerState::Exited)) => {
            if let Some(exit) = inputs.exits.get(&c.id) {
                phase = if inputs.backing_off.contains(&spec.name) {
                    ContainerPhase::waiting("CrashLoopBackOff")
                } else if policy.restarts_after(exit.code) && sandbox.is_some() {
                    ContainerPhase::waiting(not_yet)
                } else {
                    ContainerPhase::Terminated {
                        exit_code: exit.code,
                        reason: if exit.code == 0 { "Completed" } else { "Error" }.into(),
                        message: exit.message.clone(),
                        finished_at: Timestamp::try_from(exit.finished).ok(),
                    }
                };
            }
        }
        _ => {}
    }
    if let (Some(reason), ContainerPhase::Waiting { .. }) = (inputs.waiting.get(&spec.name), &phase) {
        phase = ContainerPhase::waiting(reason);
    }
    // Probes decide readiness; a container with a readiness or startup probe that has no
    // result yet is not ready (nor started) until its probe says so. A regular init container
    // counts as ready once it has finished with exit 0, as kubelet reports it.
    let (started, ready) = match latest.and_then(|c| inputs.health.get(&c.id)) {
        _ if kind == Kind::Init => (phase.is_running(), phase.exit_code() == Some(0)),
        _ if !phase.is_running() => (false, false),
        Some(health) => (health.started, health.ready),
        None => {
            let started = spec.startup_probe.is_none();
            (started, started && spec.readiness_probe.is_none())
        }
    };
    ContainerStatus {
        name: spec.name.clone(),
        id: latest.map(|c| c.id.clone()).unwrap_or_default(),
        ready,
        started,
        sidecar: kind == Kind::Sidecar,
        phase,
        restart_count: latest.map(|c| c.restart_count).unwrap_or(0),
        image: spec.image.clone().unwrap_or_default(),
        image_ref: latest.map(|c| c.image_ref.clone()).unwrap_or_default(),
        started_at: latest.and_then(|c| nanos(c.created_at)),
    }
}

impl PodState {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The containers kubectl counts in READY: the main ones and the sidecars.
    fn counted(&self) -> impl Iterator<Item = &ContainerStatus> {
        self.init_containers.iter().filter(|c| c.sidecar).chain(&self.containers)
    }

    /// The pod's Ready condition as kubelet computes it: every counted container ready and every
    /// readiness gate met (none can be, locally: see `readiness_gates`).
    pub fn pod_ready(&self) -> bool {
        self.counted().next().is_some()
            && self.counted().all(|c| c.ready)
            && readiness_gates_not_ready(&self.readiness_gates, &[]).is_none()
    }

    /// kubectl's READY: `ready/total`.
    pub fn ready(&self) -> String {
        format!("{}/{}", self.counted().filter(|c| c.ready).count(), self.counted().count())
    }

    pub fn restarts(&self) -> u32 {
        self.init_containers.iter().chain(&self.containers).map(|c| c.restart_count).sum()
    }

    /// kubectl's STATUS column (its printPod): while initializing, the first unfinished init
    /// container names it (`Init:1/3`, `Init:CrashLoopBackOff`, `Init:Error`); then the first
    /// container with a waiting or terminated reason names it; "Completed" next to a running
    /// container reads "Running".
    pub fn status(&self) -> String {
        if self.terminating {
            return "Terminating".into();
        }
        if let Some((reason, _)) = &self.reason {
            return reason.clone();
        }
        let total = self.init_containers.len();
        for (i, c) in self.init_containers.iter().enumerate() {
            if c.phase.exit_code() == Some(0) || (c.sidecar && c.started) {
                continue;
            }
            return match &c.phase {
                ContainerPhase::Terminated { reason, .. } => format!("Init:{reason}"),
                ContainerPhase::Waiting { reason } if reason != "PodInitializing" => format!("Init:{reason}"),
                _ => format!("Init:{i}/{total}"),
            };
        }
        let containers = &self.containers;
        let all_terminated = containers.iter().all(|c| c.phase.exit_code().is_some());
        let mut reason = if all_terminated {
            if containers.iter().all(|c| c.phase.exit_code() == Some(0)) { "Completed" } else { "Error" }.to_owned()
        } else {
            "Running".to_owned()
        };
        let mut running = false;
        for c in containers.iter().rev() {
            match &c.phase {
                ContainerPhase::Running => running = true,
                phase if !phase.reason().is_empty() => reason = phase.reason().to_owned(),
                _ => {}
            }
        }
        if reason == "Completed" && running { "Running".into() } else { reason }
    }
}

fn nanos(nanos: i64) -> Option<Timestamp> {
    Timestamp::from_nanosecond(nanos as i128).ok()
}

/// `2m10s`-style age, as kubectl prints it.
pub fn human_age(since: SystemTime, now: SystemTime) -> String {
    let secs = now.duration_since(since).map(|d| d.as_secs()).unwrap_or(0);
    match secs {
        0..120 => format!("{secs}s"),
        120..600 => format!("{}m{}s", secs / 60, secs % 60),
        600..10800 => format!("{}m", secs / 60),
        10800..172800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(phase: ContainerPhase) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            id: String::new(),
            ready: phase.is_running(),
            started: phase.is_running(),
            sidecar: false,
            phase,
            restart_count: 0,
            image: String::new(),
            image_ref: String::new(),
            started_at: None,
        }
    }

    fn waiting(reason: &str) -> ContainerPhase {
        ContainerPhase::waiting(reason)
    }

    fn terminated(code: i32, reason: &str) -> ContainerPhase {
        ContainerPhase::Terminated { exit_code: code, reason: reason.into(), message: String::new(), finished_at: None }
    }

    fn pod(containers: Vec<ContainerStatus>, terminating: bool) -> PodState {
        PodState {
            namespace: "default".into(),
            name: "p".into(),
            uid: "u".into(),
            source: String::new(),
            seen: String::new(),
            ip: String::new(),
            started: None,
            terminating,
            initialized: true,
            init_containers: vec![],
            containers,
            last_error: None,
            reason: None,
            readiness_gates: vec![],
        }
    }

    #[test]
    fn readiness_gates_hold_ready_false_until_their_conditions_are_true() {
        let gates = vec!["example.com/lb".to_owned(), "example.com/db".to_owned()];
        let conditions = |lb: &str| vec![("example.com/lb".to_owned(), lb.to_owned())];
        for (have, expected) in [
            (
                vec![],
                Some(
                    r#"corresponding condition of pod readiness gate "example.com/lb" does not exist., corresponding condition of pod readiness gate "example.com/db" does not exist."#,
                ),
            ),
            (
                conditions("False"),
                Some(
                    r#"the status of pod readiness gate "example.com/lb" is not "True", but False, corresponding condition of pod readiness gate "example.com/db" does not exist."#,
                ),
            ),
        ] {
            assert_eq!(readiness_gates_not_ready(&gates, &have).as_deref(), expected, "{have:?}");
        }
        let both = vec![("example.com/lb".to_owned(), "True".into()), ("example.com/db".to_owned(), "True".into())];
        assert_eq!(readiness_gates_not_ready(&gates, &both), None);
        assert_eq!(readiness_gates_not_ready(&[], &[]), None);

        let mut state = pod(vec![c(ContainerPhase::Running)], false);
        assert!(state.pod_ready());
        state.readiness_gates = vec!["example.com/lb".into()];
        assert!(!state.pod_ready(), "a static pod's gate conditions are never set locally");
        assert_eq!(state.ready(), "1/1", "kubectl's READY counts containers only");
    }

    #[test]
    fn status_reads_like_kubectl() {
        use ContainerPhase::Running;
        for (containers, expected) in [
            (vec![c(Running)], "Running"),
            (vec![c(waiting("ContainerCreating"))], "ContainerCreating"),
            (vec![c(Running), c(waiting("CrashLoopBackOff"))], "CrashLoopBackOff"),
            (vec![c(terminated(0, "Completed"))], "Completed"),
            (vec![c(terminated(2, "Error"))], "Error"),
            (vec![c(Running), c(terminated(0, "Completed"))], "Running"),
            (vec![c(waiting("ErrImagePull"))], "ErrImagePull"),
        ] {
            assert_eq!(pod(containers.clone(), false).status(), expected, "{containers:?}");
        }
        assert_eq!(pod(vec![c(Running)], true).status(), "Terminating");
        let mut failed = pod(vec![c(terminated(143, "Error"))], false);
        failed.reason = Some(("DeadlineExceeded".into(), "too long".into()));
        assert_eq!(failed.status(), "DeadlineExceeded", "the pod's reason names its status");
    }

    #[test]
    fn ready_and_restarts_sum_over_containers() {
        let mut restarted = c(waiting("CrashLoopBackOff"));
        restarted.restart_count = 3;
        let state = pod(vec![c(ContainerPhase::Running), restarted], false);
        assert_eq!(state.ready(), "1/2");
        assert_eq!(state.restarts(), 3);
    }

    #[test]
    fn ages_print_like_kubectl() {
        let t0 = SystemTime::UNIX_EPOCH;
        let after = |s| t0 + std::time::Duration::from_secs(s);
        assert_eq!(human_age(t0, after(5)), "5s");
        assert_eq!(human_age(t0, after(130)), "2m10s");
        assert_eq!(human_age(t0, after(3600)), "60m");
        assert_eq!(human_age(t0, after(4 * 3600)), "4h");
        assert_eq!(human_age(t0, after(3 * 86400)), "3d");
    }
}
