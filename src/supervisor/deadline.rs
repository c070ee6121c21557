//! activeDeadlineSeconds, as kubelet's active deadline handler applies it: a pod active longer
//! than that since it started is stopped (preStop hooks and grace period honoured, sandbox
//! stopped), marked Failed with reason DeadlineExceeded, and never started again, whatever its
//! restartPolicy. Pure: time is an input.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use super::decide::Exit;
use crate::cri::{ContainerState, RuntimePod};

pub const REASON: &str = "DeadlineExceeded";
pub const MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// No deadline, or the pod has not started yet.
    None,
    /// The pod must be stopped at this time.
    At(SystemTime),
    Exceeded,
}

/// Where the pod stands against its deadline (`seconds`: activeDeadlineSeconds; `started`: when
/// the pod started, i.e. its first sandbox was created).
pub fn check(seconds: Option<i64>, started: Option<SystemTime>, now: SystemTime) -> Deadline {
    let (Some(seconds), Some(started)) = (seconds, started) else { return Deadline::None };
    let at = started + Duration::from_secs(seconds.max(0) as u64);
    if now >= at { Deadline::Exceeded } else { Deadline::At(at) }
}

/// What a pod past its deadline still needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterDeadline {
    /// Stop these containers (ID, name, running: its preStop hook can run) that are not
    /// stopped yet, then these ready sandboxes.
    Stop { containers: Vec<(String, String, bool)>, sandboxes: Vec<String> },
    /// Ask the runtime how this exited container ended (for its terminated state).
    Inspect(String),
    /// Everything is stopped: nothing more to do, ever.
    Done,
}

pub fn after(runtime: Option<&RuntimePod>, exits: &HashMap<String, Exit>) -> AfterDeadline {
    let Some(rt) = runtime else { return AfterDeadline::Done };
    let containers: Vec<(String, String, bool)> = rt
        .containers
        .iter()
        .filter(|c| c.state != ContainerState::Exited)
        .map(|c| (c.id.clone(), c.name.clone(), c.state == ContainerState::Running))
        .collect();
    let sandboxes: Vec<String> = rt.sandboxes.iter().filter(|s| s.ready).map(|s| s.id.clone()).collect();
    if !containers.is_empty() || !sandboxes.is_empty() {
        return AfterDeadline::Stop { containers, sandboxes };
    }
    // The newest container of each name shows in the status: those need their exit details.
    let mut newest: Vec<&str> = Vec::new();
    for c in rt.containers.iter().rev() {
        if !newest.contains(&c.name.as_str()) {
            newest.push(&c.name);
            if !exits.contains_key(&c.id) {
                return AfterDeadline::Inspect(c.id.clone());
            }
        }
    }
    AfterDeadline::Done
}

/// When the pod started: its oldest sandbox's creation, or the earlier start already known (a
/// sandbox replaced since, or removed by a cleanup, does not move it).
pub fn started(known: Option<SystemTime>, runtime: Option<&RuntimePod>) -> Option<SystemTime> {
    let oldest = runtime
        .into_iter()
        .flat_map(|rt| &rt.sandboxes)
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_nanos(s.created_at.max(0) as u64))
        .min();
    match (known, oldest) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::{ContainerInfo, SandboxInfo};

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_deadline_counts_from_the_start() {
        for (seconds, started, now, expected) in [
            (None, Some(100), 1000, Deadline::None),
            (Some(10), None, 1000, Deadline::None),
            (Some(10), Some(100), 105, Deadline::At(at(110))),
            (Some(10), Some(100), 110, Deadline::Exceeded),
            (Some(10), Some(100), 500, Deadline::Exceeded),
        ] {
            assert_eq!(check(seconds, started.map(at), at(now)), expected, "{seconds:?} {started:?} {now}");
        }
    }

    fn sandbox(id: &str, ready: bool, created_secs: i64) -> SandboxInfo {
        SandboxInfo {
            id: id.into(),
            attempt: 0,
            ready,
            created_at: created_secs * 1_000_000_000,
            annotations: Default::default(),
        }
    }

    fn container(id: &str, name: &str, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            sandbox_id: "s1".into(),
            name: name.into(),
            state,
            created_at: 0,
            restart_count: 0,
            image_ref: String::new(),
        }
    }

    #[test]
    fn past_the_deadline_what_runs_is_stopped_then_exits_are_inspected_then_nothing() {
        use ContainerState::*;
        let mut rt = RuntimePod {
            sandboxes: vec![sandbox("s0", false, 1), sandbox("s1", true, 2)],
            containers: vec![
                container("a0", "a", Exited),
                container("a1", "a", Running),
                container("b1", "b", Created),
            ],
            ..Default::default()
        };
        let none = HashMap::new();
        assert_eq!(
            after(Some(&rt), &none),
            AfterDeadline::Stop {
                containers: vec![("a1".into(), "a".into(), true), ("b1".into(), "b".into(), false)],
                sandboxes: vec!["s1".into()]
            }
        );
        for c in &mut rt.containers {
            c.state = Exited;
        }
        rt.sandboxes[1].ready = false;
        assert_eq!(after(Some(&rt), &none), AfterDeadline::Inspect("b1".into()));
        let (finished, ended) = (at(9), std::time::Instant::now());
        let exit =
            Exit { code: 143, finished, ended, reason: "Error".into(), message: String::new(), abandoned: false };
        let exits = HashMap::from([("b1".to_owned(), exit.clone()), ("a1".to_owned(), exit)]);
        assert_eq!(after(Some(&rt), &exits), AfterDeadline::Done, "the older a0 needs no inspection");
        assert_eq!(after(None, &none), AfterDeadline::Done);
    }

    #[test]
    fn the_start_is_the_oldest_sandbox_and_never_moves_later() {
        let rt =
            RuntimePod { sandboxes: vec![sandbox("s1", false, 50), sandbox("s2", true, 70)], ..Default::default() };
        assert_eq!(started(None, Some(&rt)), Some(at(50)));
        assert_eq!(started(Some(at(20)), Some(&rt)), Some(at(20)));
        assert_eq!(started(Some(at(20)), None), Some(at(20)));
        assert_eq!(started(None, None), None);
    }
}
