//! The supervisor's one decision: given the pod we want and what the runtime has, what to do next.
//! Pure; the worker carries the action out and asks again.

use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime},
};

use super::backoff::CrashBackoff;
use k8s_openapi::api::core::v1::Container;

use crate::{
    cri::{ContainerState, RuntimePod},
    manifest::{RestartPolicy, StaticPod, is_sidecar},
    probe::{Health, ProbeKind},
};

/// How a finished container ended, from ContainerStatus (the listing does not carry it).
#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    pub code: i32,
    /// When it finished, as the runtime reports it (the terminated state's finishedAt).
    pub finished: SystemTime,
    /// The same moment on staticlet's monotonic clock, which the back-off runs on (`ended_at`).
    pub ended: Instant,
    pub reason: String,
    /// The terminated state's message (the termination message, `supervisor::termination`).
    pub message: String,
    /// Never ran: the start was cut off when the staticlet that asked for it died
    /// (`abandoned_start`). Not an attempt of the container's, so not a restart.
    pub abandoned: bool,
}

/// Whether a container's exit is a start that a killed staticlet left half done: containerd
/// cancels the StartContainer of a caller that disconnects and records the container as exited
/// with reason StartError, never started, "context canceled". Starting it again is finishing
/// that start, not restarting the container (kubelet counts it as a restart).
/// An exit the runtime timed at `finished`, on the monotonic clock: as long ago as the wall clock
/// says, and never in the future. Taken once, when the exit is inspected (promptly after it
/// happens), so a wall-clock step afterwards cannot move it; an exit that reads as later than now
/// (the clock stepped back since) ended just now.
pub fn ended_at(finished: SystemTime, wall_now: SystemTime, now: Instant) -> Instant {
    let ago = wall_now.duration_since(finished).unwrap_or_default();
    now.checked_sub(ago).unwrap_or(now)
}

pub fn abandoned_start(reason: &str, started_at: i64, runtime_message: &str) -> bool {
    reason == "StartError" && started_at == 0 && runtime_message.contains("context canceled")
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Stop the dead sandboxes listed (their containers with them; the records stay, for restart
    /// counts and logs), then run a new sandbox with this attempt number.
    CreateSandbox { attempt: u32, stop: Vec<String> },
    /// Pull if needed, create and start the container in the ready sandbox.
    StartContainer { sandbox_id: String, name: String, restart_count: u32 },
    /// A container was created but never started (e.g. staticlet stopped in between).
    StartCreated { id: String },
    /// A start a killed staticlet left half done (`abandoned_start`): remove that container, whose
    /// name holds the attempt number, and start the container again at the same restart count.
    FinishAbandonedStart { id: String, sandbox_id: String, name: String, restart_count: u32 },
    /// A liveness or startup probe failed for good: stop the container (`grace`: the probe's own
    /// terminationGracePeriodSeconds, else the pod's); the restart path then runs it again.
    KillUnhealthy { id: String, name: String, probe: ProbeKind, grace: Duration },
    /// Ask the runtime how this exited container ended.
    InspectExit { id: String },
    /// Remove containers and sandboxes that are no longer needed for status or logs.
    Cleanup { containers: Vec<String>, sandboxes: Vec<String> },
    /// Nothing to do before `until`: these containers are in crash-loop back-off.
    Wait { until: Instant, containers: Vec<String> },
    /// The pod is as wanted.
    Idle,
}

pub struct Inputs<'a> {
    pub pod: &'a StaticPod,
    pub runtime: Option<&'a RuntimePod>,
    pub exits: &'a HashMap<String, Exit>,
    /// What the probes say, by container ID (containers with probes only).
    pub health: &'a HashMap<String, Health>,
    pub backoff: &'a CrashBackoff,
    /// The back-off's clock (monotonic).
    pub now: Instant,
}

pub fn next_action(inputs: &Inputs) -> Action {
    let Inputs { pod, runtime, exits, health, backoff, now } = inputs;
    let policy = pod.restart_policy();
    let empty = RuntimePod::default();
    let rt = runtime.unwrap_or(&empty);

    let Some(sandbox) = rt.ready_sandbox() else {
        // A pod whose containers all finished for good stays finished, sandbox or not.
        let mut finished = !rt.containers.is_empty();
        for spec in &pod.spec().containers {
            let Some(last) = rt.containers.iter().rev().find(|c| c.name == spec.name) else {
                finished = false;
                continue;
            };
            if last.state != ContainerState::Exited {
                finished = false;
                continue;
            }
            match exits.get(&last.id) {
                None => return Action::InspectExit { id: last.id.clone() },
                Some(exit) if policy.restarts_after(exit.code) => finished = false,
                Some(_) => {}
            }
        }
        if finished {
            return Action::Idle;
        }
        let attempt = rt.sandboxes.iter().map(|s| s.attempt + 1).max().unwrap_or(0);
        return Action::CreateSandbox { attempt, stop: rt.sandboxes.iter().map(|s| s.id.clone()).collect() };
    };

    let here = Here { rt, sandbox: &sandbox.id, exits, health, backoff, now: *now, grace: pod.grace_period() };

    // Init containers, one at a time and in order: a regular one must finish with exit 0 before
    // the next starts; a sidecar (restartPolicy Always) must have started (its startup probe
    // passed) and then keeps running beside the rest.
    let init_policy = if policy == RestartPolicy::Never { RestartPolicy::Never } else { RestartPolicy::OnFailure };
    for spec in pod.init_containers() {
        let sidecar = is_sidecar(spec);
        match here.step(spec, if sidecar { RestartPolicy::Always } else { init_policy }) {
            Step::Act(action) => return action,
            Step::Wait(until) => return Action::Wait { until, containers: vec![spec.name.clone()] },
            Step::Running(id) if sidecar && here.started(spec, id) => {}
            // A regular init container still running, or a sidecar still starting.
            Step::Running(_) => return Action::Idle,
            Step::Done(0) => {}
            // Failed for good (restartPolicy Never): the pod has failed; nothing more starts.
            Step::Done(_) => return Action::Idle,
        }
    }

    // Initialized: the sidecars and the main containers, each per its restart policy.
    let sidecars = pod.init_containers().iter().filter(|c| is_sidecar(c)).map(|c| (c, RestartPolicy::Always));
    let main = pod.spec().containers.iter().map(|c| (c, policy));
    let mut wait: Option<Instant> = None;
    let mut backing_off = Vec::new();
    for (spec, policy) in sidecars.chain(main) {
        match here.step(spec, policy) {
            Step::Act(action) => return action,
            Step::Wait(until) => {
                wait = Some(wait.map_or(until, |w| w.min(until)));
                backing_off.push(spec.name.clone());
            }
            Step::Running(_) | Step::Done(_) => {}
        }
    }
    if let Some(until) = wait {
        return Action::Wait { until, containers: backing_off };
    }
    cleanup(rt, &sandbox.id).unwrap_or(Action::Idle)
}

/// Where one container stands in the ready sandbox.
enum Step<'a> {
    /// Something to do now.
    Act(Action),
    /// Exited, to be restarted once its back-off ends.
    Wait(Instant),
    /// Running (the container's ID).
    Running(&'a str),
    /// Exited for good with this code: its restart policy does not restart it.
    Done(i32),
}

/// What one container's next step is judged against: the ready sandbox and what is known.
struct Here<'a> {
    rt: &'a RuntimePod,
    sandbox: &'a str,
    exits: &'a HashMap<String, Exit>,
    health: &'a HashMap<String, Health>,
    backoff: &'a CrashBackoff,
    now: Instant,
    grace: Duration,
}

impl<'a> Here<'a> {
    fn step(&self, spec: &Container, policy: RestartPolicy) -> Step<'a> {
        let Some(latest) = self.rt.latest_container(self.sandbox, &spec.name) else {
            // Restart counts carry over from earlier sandboxes, as kubelet's do.
            let previous = self.rt.containers.iter().rev().find(|c| c.name == spec.name);
            let restart_count = previous.map(|c| c.restart_count + 1).unwrap_or(0);
            return Step::Act(self.start(spec, restart_count));
        };
        match latest.state {
            ContainerState::Running => match self.health.get(&latest.id).and_then(|h| h.failed.as_ref()) {
                Some(failed) => Step::Act(Action::KillUnhealthy {
                    id: latest.id.clone(),
                    name: spec.name.clone(),
                    probe: failed.kind,
                    grace: failed.grace.unwrap_or(self.grace),
                }),
                None => Step::Running(&latest.id),
            },
            ContainerState::Unknown => Step::Running(&latest.id),
            ContainerState::Created => Step::Act(Action::StartCreated { id: latest.id.clone() }),
            ContainerState::Exited => {
                let Some(exit) = self.exits.get(&latest.id) else {
                    return Step::Act(Action::InspectExit { id: latest.id.clone() });
                };
                if exit.abandoned {
                    return Step::Act(Action::FinishAbandonedStart {
                        id: latest.id.clone(),
                        sandbox_id: self.sandbox.to_owned(),
                        name: spec.name.clone(),
                        restart_count: latest.restart_count,
                    });
                }
                if !policy.restarts_after(exit.code) {
                    return Step::Done(exit.code);
                }
                match self.backoff.wait_until(&spec.name, exit.ended, self.now) {
                    Some(until) => Step::Wait(until),
                    None => Step::Act(self.start(spec, latest.restart_count + 1)),
                }
            }
        }
    }

    fn start(&self, spec: &Container, restart_count: u32) -> Action {
        Action::StartContainer { sandbox_id: self.sandbox.to_owned(), name: spec.name.clone(), restart_count }
    }

    /// Whether a running container has started: its startup probe passed, or it has none.
    fn started(&self, spec: &Container, id: &str) -> bool {
        self.health.get(id).map_or(spec.startup_probe.is_none(), |h| h.started)
    }
}

/// kubelet keeps the newest dead container of each name (for `logs --previous`) and nothing older;
/// sandboxes other than the ready one are dead weight.
fn cleanup(rt: &RuntimePod, ready_sandbox: &str) -> Option<Action> {
    let mut keep: HashMap<&str, &str> = HashMap::new();
    for c in rt.containers.iter().rev().filter(|c| c.state == ContainerState::Exited) {
        keep.entry(c.name.as_str()).or_insert(c.id.as_str());
    }
    let containers: Vec<String> = rt
        .containers
        .iter()
        .filter(|c| c.state == ContainerState::Exited && keep.get(c.name.as_str()) != Some(&c.id.as_str()))
        .map(|c| c.id.clone())
        .collect();
    let sandboxes: Vec<String> = rt
        .sandboxes
        .iter()
        .filter(|s| s.id != ready_sandbox && !s.ready)
        .filter(|s| !rt.containers.iter().any(|c| c.sandbox_id == s.id && keep.values().any(|k| *k == c.id)))
        .map(|s| s.id.clone())
        .collect();
    (!containers.is_empty() || !sandboxes.is_empty()).then_some(Action::Cleanup { containers, sandboxes })
}

/// How an image is made ready for a container start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagePlan {
    /// The image is on the node and the policy lets us use it as it is.
    UseLocal,
    /// Pull it; if the pull fails and `fallback` is set, use the local copy (with a warning).
    Pull { fallback: bool },
    /// `Never` and the image is missing: the container cannot start.
    Missing,
}

/// imagePullPolicy as kubelet applies it, with one difference for nodes without a registry:
/// when `Always` cannot pull but the image is present, the local copy is used rather than leaving
/// the pod down.
pub fn image_plan(policy: Option<&str>, present: bool) -> ImagePlan {
    match (policy.unwrap_or("IfNotPresent"), present) {
        ("IfNotPresent" | "Never", true) => ImagePlan::UseLocal,
        ("Never", false) => ImagePlan::Missing,
        (_, present) => ImagePlan::Pull { fallback: present },
    }
}

/// How long a supervisor sleeps when there is nothing to do and nothing wakes it. Snapshots wake
/// it every relist anyway; this only bounds the worst case.
pub const IDLE_RECHECK: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cri::{ContainerInfo, SandboxInfo},
        manifest::{Origin, parse_manifest},
    };

    fn pod(policy: &str) -> StaticPod {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  restartPolicy: {policy}\n  containers:\n  - {{name: a, image: i:1}}\n  - {{name: b, image: i:1}}\n"
        );
        parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "n").unwrap().remove(0)
    }

    fn sandbox(id: &str, ready: bool, attempt: u32) -> SandboxInfo {
        SandboxInfo { id: id.into(), attempt, ready, created_at: attempt as i64, annotations: Default::default() }
    }

    fn container(id: &str, sandbox: &str, name: &str, state: ContainerState, restarts: u32) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            sandbox_id: sandbox.into(),
            name: name.into(),
            state,
            created_at: restarts as i64,
            restart_count: restarts,
            image_ref: String::new(),
        }
    }

    fn at(secs: u64) -> Instant {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(Instant::now) + Duration::from_secs(secs)
    }

    fn exit(code: i32, secs: u64) -> Exit {
        let finished = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        Exit { code, finished, ended: at(secs), reason: String::new(), message: String::new(), abandoned: false }
    }

    #[test]
    fn an_exit_ends_as_long_ago_as_the_wall_clock_says_and_never_in_the_future() {
        let wall = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        for (finished, wall_now, ended) in [
            (100, 103, 7),  // 3 s ago
            (100, 100, 10), // just now
            // The clock stepped back an hour after the runtime timed the exit: just now, not
            // in an hour.
            (3700, 100, 10),
        ] {
            assert_eq!(
                ended_at(wall(finished), wall(wall_now), at(10)),
                at(ended),
                "finished {finished}, now {wall_now}"
            );
        }
    }

    fn decide(
        policy: &str,
        rt: Option<RuntimePod>,
        exits: &[(&str, Exit)],
        backoff: &CrashBackoff,
        now: u64,
    ) -> Action {
        decide_for(&pod(policy), rt, exits, &HashMap::new(), backoff, now)
    }

    fn decide_for(
        pod: &StaticPod,
        rt: Option<RuntimePod>,
        exits: &[(&str, Exit)],
        health: &HashMap<String, Health>,
        backoff: &CrashBackoff,
        now: u64,
    ) -> Action {
        let exits = exits.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        next_action(&Inputs { pod, runtime: rt.as_ref(), exits: &exits, health, backoff, now: at(now) })
    }

    /// A pod with a sidecar `s` (startup probe), init containers `i1`, `i2` and main container `a`.
    fn pod_with_init(policy: &str, sidecar: bool) -> StaticPod {
        let sidecar = if sidecar {
            "  - {name: s, image: i:1, restartPolicy: Always, startupProbe: {exec: {command: [ok]}}}\n"
        } else {
            ""
        };
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  restartPolicy: {policy}\n  initContainers:\n{sidecar}  - {{name: i1, image: i:1}}\n  - {{name: i2, image: i:1}}\n  containers:\n  - {{name: a, image: i:1}}\n"
        );
        parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "n").unwrap().remove(0)
    }

    fn in_sandbox(containers: Vec<ContainerInfo>) -> Option<RuntimePod> {
        Some(RuntimePod { sandboxes: vec![sandbox("s1", true, 0)], containers, ..Default::default() })
    }

    fn start(name: &str, restart_count: u32) -> Action {
        Action::StartContainer { sandbox_id: "s1".into(), name: name.into(), restart_count }
    }

    #[test]
    fn init_containers_run_one_at_a_time_each_to_exit_zero_before_the_main_containers() {
        let pod = pod_with_init("Always", false);
        let none = HashMap::new();
        let b = CrashBackoff::default();
        let i1 = |state| container("i1-1", "s1", "i1", state, 0);
        let i2 = |state| container("i2-1", "s1", "i2", state, 0);
        // (runtime containers, exits, expected)
        for (containers, exits, expected) in [
            (vec![], vec![], start("i1", 0)),
            (vec![i1(Running)], vec![], Action::Idle),
            (vec![i1(Exited)], vec![], Action::InspectExit { id: "i1-1".into() }),
            (vec![i1(Exited)], vec![("i1-1", exit(0, 5))], start("i2", 0)),
            (vec![i1(Exited), i2(Running)], vec![("i1-1", exit(0, 5))], Action::Idle),
            (vec![i1(Exited), i2(Exited)], vec![("i1-1", exit(0, 5)), ("i2-1", exit(0, 6))], start("a", 0)),
            // A failing init container is restarted (pod restartPolicy Always), not the next one started.
            (vec![i1(Exited)], vec![("i1-1", exit(1, 5))], start("i1", 1)),
        ] {
            let what = format!("{containers:?} {exits:?}");
            assert_eq!(decide_for(&pod, in_sandbox(containers), &exits, &none, &b, 7), expected, "{what}");
        }
    }

    #[test]
    fn a_failing_init_container_backs_off_and_under_never_fails_the_pod() {
        let failed = vec![container("i1-1", "s1", "i1", Exited, 0)];
        let exits = [("i1-1", exit(1, 5))];
        let mut backoff = CrashBackoff::default();
        backoff.record_restart("i1", at(0));
        let always = pod_with_init("Always", false);
        assert_eq!(
            decide_for(&always, in_sandbox(failed.clone()), &exits, &HashMap::new(), &backoff, 6),
            Action::Wait { until: at(15), containers: vec!["i1".into()] }
        );
        let never = pod_with_init("Never", false);
        assert_eq!(
            decide_for(&never, in_sandbox(failed), &exits, &HashMap::new(), &CrashBackoff::default(), 6),
            Action::Idle,
            "nothing more starts: the pod has failed"
        );
    }

    #[test]
    fn a_sidecar_gates_the_next_init_container_until_started_and_is_kept_running() {
        let pod = pod_with_init("Never", true);
        let b = CrashBackoff::default();
        let s = |state| container("s-1", "s1", "s", state, 0);
        let health = |started| HashMap::from([("s-1".to_owned(), Health { started, ready: started, failed: None })]);
        assert_eq!(decide_for(&pod, in_sandbox(vec![]), &[], &HashMap::new(), &b, 0), start("s", 0));
        assert_eq!(
            decide_for(&pod, in_sandbox(vec![s(Running)]), &[], &HashMap::new(), &b, 0),
            Action::Idle,
            "no startup result yet"
        );
        assert_eq!(decide_for(&pod, in_sandbox(vec![s(Running)]), &[], &health(false), &b, 0), Action::Idle);
        assert_eq!(decide_for(&pod, in_sandbox(vec![s(Running)]), &[], &health(true), &b, 0), start("i1", 0));

        // Initialized and running; the sidecar exits: it is restarted although the pod's policy is Never.
        let done = vec![
            s(Exited),
            container("i1-1", "s1", "i1", Exited, 0),
            container("i2-1", "s1", "i2", Exited, 0),
            container("a-1", "s1", "a", Running, 0),
        ];
        let exits = [("s-1", exit(1, 5)), ("i1-1", exit(0, 2)), ("i2-1", exit(0, 3))];
        assert_eq!(decide_for(&pod, in_sandbox(done), &exits, &health(true), &b, 6), start("s", 1));
    }

    use ContainerState::*;

    fn running_pod(b_state: ContainerState) -> RuntimePod {
        RuntimePod {
            sandboxes: vec![sandbox("s1", true, 0)],
            containers: vec![container("a1", "s1", "a", Running, 0), container("b1", "s1", "b", b_state, 0)],
            ..Default::default()
        }
    }

    #[test]
    fn new_pod_gets_a_sandbox() {
        assert_eq!(
            decide("Always", None, &[], &CrashBackoff::default(), 0),
            Action::CreateSandbox { attempt: 0, stop: vec![] }
        );
    }

    #[test]
    fn containers_start_in_order_in_the_ready_sandbox() {
        let rt = RuntimePod { sandboxes: vec![sandbox("s1", true, 0)], ..Default::default() };
        assert_eq!(
            decide("Always", Some(rt), &[], &CrashBackoff::default(), 0),
            Action::StartContainer { sandbox_id: "s1".into(), name: "a".into(), restart_count: 0 }
        );
    }

    #[test]
    fn running_pod_is_left_alone() {
        assert_eq!(decide("Always", Some(running_pod(Running)), &[], &CrashBackoff::default(), 0), Action::Idle);
    }

    #[test]
    fn exited_container_is_inspected_before_deciding() {
        assert_eq!(
            decide("Always", Some(running_pod(Exited)), &[], &CrashBackoff::default(), 0),
            Action::InspectExit { id: "b1".into() }
        );
    }

    #[test]
    fn restart_policy_table() {
        // (policy, exit code, restarted?)
        for (policy, code, restarted) in [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 137, true),
            ("Never", 0, false),
            ("Never", 1, false),
        ] {
            let action =
                decide(policy, Some(running_pod(Exited)), &[("b1", exit(code, 5))], &CrashBackoff::default(), 6);
            let expected = if restarted {
                Action::StartContainer { sandbox_id: "s1".into(), name: "b".into(), restart_count: 1 }
            } else {
                Action::Idle
            };
            assert_eq!(action, expected, "{policy} exit {code}");
        }
    }

    #[test]
    fn a_start_a_killed_staticlet_left_half_done_is_finished_not_counted_as_a_restart() {
        for (reason, started_at, message, abandoned) in [
            ("StartError", 0, "failed to start containerd task: context canceled", true),
            ("StartError", 0, "exec: \"nope\": executable file not found in $PATH", false),
            ("StartError", 5, "context canceled", false),
            ("Error", 0, "context canceled", false),
        ] {
            assert_eq!(abandoned_start(reason, started_at, message), abandoned, "{reason} {started_at} {message}");
        }
        let mut backoff = CrashBackoff::default();
        backoff.record_restart("b", at(0));
        let cut_off = Exit { abandoned: true, ..exit(128, 5) };
        // Never, back-off running: still started at once, with the same restart count.
        for policy in ["Always", "Never"] {
            let action = decide(policy, Some(running_pod(Exited)), &[("b1", cut_off.clone())], &backoff, 6);
            let want = Action::FinishAbandonedStart {
                id: "b1".into(),
                sandbox_id: "s1".into(),
                name: "b".into(),
                restart_count: 0,
            };
            assert_eq!(action, want, "{policy}");
        }
    }

    #[test]
    fn crashing_container_waits_out_its_backoff() {
        let mut backoff = CrashBackoff::default();
        backoff.record_restart("b", at(0));
        let action = decide("Always", Some(running_pod(Exited)), &[("b1", exit(1, 5))], &backoff, 6);
        assert_eq!(action, Action::Wait { until: at(15), containers: vec!["b".into()] });
        let action = decide("Always", Some(running_pod(Exited)), &[("b1", exit(1, 5))], &backoff, 15);
        assert!(matches!(action, Action::StartContainer { restart_count: 1, .. }), "{action:?}");
    }

    #[test]
    fn dead_sandbox_is_replaced_with_the_next_attempt_and_restart_counts_carry_over() {
        let rt = RuntimePod {
            sandboxes: vec![sandbox("s1", false, 0)],
            containers: vec![container("a1", "s1", "a", Exited, 3)],
            ..Default::default()
        };
        let action = decide("Always", Some(rt.clone()), &[("a1", exit(137, 5))], &CrashBackoff::default(), 6);
        assert_eq!(action, Action::CreateSandbox { attempt: 1, stop: vec!["s1".into()] });

        let mut rt = rt;
        rt.sandboxes.push(sandbox("s2", true, 1));
        let action = decide("Always", Some(rt), &[("a1", exit(137, 5))], &CrashBackoff::default(), 6);
        assert_eq!(action, Action::StartContainer { sandbox_id: "s2".into(), name: "a".into(), restart_count: 4 });
    }

    #[test]
    fn finished_never_pod_is_not_recreated_when_its_sandbox_is_gone() {
        let rt = RuntimePod {
            sandboxes: vec![sandbox("s1", false, 0)],
            containers: vec![container("a1", "s1", "a", Exited, 0), container("b1", "s1", "b", Exited, 0)],
            ..Default::default()
        };
        let exits = [("a1", exit(0, 5)), ("b1", exit(1, 5))];
        assert_eq!(decide("Never", Some(rt), &exits, &CrashBackoff::default(), 6), Action::Idle);
    }

    #[test]
    fn created_but_unstarted_container_is_started() {
        assert_eq!(
            decide("Always", Some(running_pod(Created)), &[], &CrashBackoff::default(), 0),
            Action::StartCreated { id: "b1".into() }
        );
    }

    #[test]
    fn a_container_whose_liveness_probe_failed_is_killed_with_the_probes_grace() {
        let pod = pod("Always");
        let rt = running_pod(Running);
        let failed = |grace| Health {
            started: true,
            ready: true,
            failed: Some(crate::probe::prober::Failed { kind: ProbeKind::Liveness, message: "dead".into(), grace }),
        };
        for (grace, expected) in [(Some(Duration::from_secs(2)), 2), (None, 30)] {
            let health = HashMap::from([("b1".to_owned(), failed(grace))]);
            let inputs = Inputs {
                pod: &pod,
                runtime: Some(&rt),
                exits: &HashMap::new(),
                health: &health,
                backoff: &CrashBackoff::default(),
                now: at(0),
            };
            assert_eq!(
                next_action(&inputs),
                Action::KillUnhealthy {
                    id: "b1".into(),
                    name: "b".into(),
                    probe: ProbeKind::Liveness,
                    grace: Duration::from_secs(expected)
                }
            );
        }
    }

    #[test]
    fn image_pull_policy_table() {
        use ImagePlan::*;
        for (policy, present, plan) in [
            (Some("IfNotPresent"), true, UseLocal),
            (Some("IfNotPresent"), false, Pull { fallback: false }),
            (None, true, UseLocal),
            (Some("Never"), true, UseLocal),
            (Some("Never"), false, Missing),
            (Some("Always"), true, Pull { fallback: true }),
            (Some("Always"), false, Pull { fallback: false }),
        ] {
            assert_eq!(image_plan(policy, present), plan, "{policy:?}, present: {present}");
        }
    }

    #[test]
    fn older_dead_containers_are_removed_and_the_newest_dead_one_kept_for_logs_previous() {
        let mut rt = running_pod(Running);
        rt.containers.insert(0, container("a0", "s1", "a", Exited, 0));
        rt.containers.insert(0, container("a00", "s1", "a", Exited, 0));
        rt.containers.retain(|c| c.id != "a1");
        rt.containers.push(container("a2", "s1", "a", Running, 2));
        assert_eq!(
            decide("Always", Some(rt), &[], &CrashBackoff::default(), 0),
            Action::Cleanup { containers: vec!["a00".into()], sandboxes: vec![] },
            "a0, the newest dead one, stays while a2 runs"
        );
    }
}
