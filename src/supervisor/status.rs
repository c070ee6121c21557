//! What `staticlet get pods` shows: kubectl's READY, STATUS and RESTARTS, derived the way kubectl
//! derives them from a pod status, so the words mean what users already know.

use std::{collections::HashMap, time::SystemTime};

use serde::{Deserialize, Serialize};

use super::decide::Exit;
use crate::{
    cri::{ContainerState, RuntimePod},
    manifest::StaticPod,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub source: String,
    pub ready: String,
    pub status: String,
    pub restarts: u32,
    /// config.seen: when this version of the pod was first seen.
    pub since: String,
    pub ip: String,
    /// When the current sandbox was created (RFC 3339), the pod's startTime.
    pub started: Option<String>,
    pub terminating: bool,
    pub containers: Vec<ContainerView>,
    /// Set while the manifest is broken and this is the last good version.
    pub manifest_error: Option<String>,
    /// The last error carrying out an action (image pull, container start, runtime down).
    pub last_error: Option<String>,
    /// Why the API server has no mirror of this pod (admission refused it, ...).
    #[serde(default)]
    pub mirror_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerView {
    pub name: String,
    pub id: String,
    /// Running, Waiting or Terminated.
    pub state: String,
    pub reason: String,
    pub ready: bool,
    pub restart_count: u32,
    pub exit_code: Option<i32>,
    pub image: String,
    /// The runtime's image reference (imageID).
    pub image_ref: String,
    /// When the current container was created or started (RFC 3339).
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// Per-container problems the worker met, by container name (e.g. `ErrImagePull`).
pub type Waiting = HashMap<String, String>;

pub struct ViewInputs<'a> {
    pub pod: &'a StaticPod,
    pub runtime: Option<&'a RuntimePod>,
    pub exits: &'a HashMap<String, Exit>,
    /// Containers in crash-loop back-off.
    pub backing_off: &'a [String],
    pub waiting: &'a Waiting,
    pub terminating: bool,
    pub ip: &'a str,
    pub seen: &'a str,
}

pub fn view(inputs: &ViewInputs) -> PodView {
    let pod = inputs.pod;
    let policy = pod.restart_policy();
    let sandbox = inputs.runtime.and_then(RuntimePod::ready_sandbox);
    let mut containers = Vec::new();
    for spec in &pod.spec().containers {
        let latest = inputs.runtime.and_then(|rt| rt.containers.iter().rev().find(|c| c.name == spec.name));
        let mut view = ContainerView {
            name: spec.name.clone(),
            id: latest.map(|c| c.id.clone()).unwrap_or_default(),
            state: "Waiting".into(),
            reason: "ContainerCreating".into(),
            ready: false,
            restart_count: latest.map(|c| c.restart_count).unwrap_or(0),
            exit_code: None,
            image: spec.image.clone().unwrap_or_default(),
            image_ref: latest.map(|c| c.image_ref.clone()).unwrap_or_default(),
            started_at: latest.map(|c| rfc3339_nanos(c.created_at)),
            finished_at: None,
        };
        match latest.map(|c| (c, c.state)) {
            Some((c, ContainerState::Running)) if sandbox.is_some_and(|s| s.id == c.sandbox_id) => {
                view.state = "Running".into();
                view.reason = String::new();
                view.ready = true;
            }
            Some((c, ContainerState::Exited)) => {
                if let Some(exit) = inputs.exits.get(&c.id) {
                    view.state = "Terminated".into();
                    view.exit_code = Some(exit.code);
                    view.finished_at =
                        Some(jiff::Timestamp::try_from(exit.finished).map(|t| t.to_string()).unwrap_or_default());
                    view.reason = if exit.code == 0 { "Completed".into() } else { "Error".into() };
                    if inputs.backing_off.contains(&spec.name) {
                        view.state = "Waiting".into();
                        view.reason = "CrashLoopBackOff".into();
                    } else if policy.restarts_after(exit.code) && sandbox.is_some() {
                        view.state = "Waiting".into();
                        view.reason = "ContainerCreating".into();
                    }
                }
            }
            _ => {}
        }
        if let Some(reason) = inputs.waiting.get(&spec.name)
            && view.state == "Waiting"
        {
            view.reason = reason.clone();
        }
        containers.push(view);
    }

    let status = if inputs.terminating { "Terminating".to_owned() } else { kubectl_status(&containers) };
    PodView {
        namespace: pod.namespace().into(),
        name: pod.name().into(),
        uid: pod.uid.clone(),
        source: pod.origin.to_string(),
        ready: format!("{}/{}", containers.iter().filter(|c| c.ready).count(), containers.len()),
        restarts: containers.iter().map(|c| c.restart_count).sum(),
        status,
        since: inputs.seen.into(),
        ip: inputs.ip.into(),
        started: sandbox.map(|s| rfc3339_nanos(s.created_at)),
        terminating: inputs.terminating,
        containers,
        manifest_error: None,
        last_error: None,
        mirror_error: None,
    }
}

/// kubectl's printPod: the first container with a waiting or terminated reason names the status;
/// "Completed" next to a running container reads "Running".
fn kubectl_status(containers: &[ContainerView]) -> String {
    let all_terminated = containers.iter().all(|c| c.state == "Terminated");
    let mut reason = if all_terminated {
        if containers.iter().all(|c| c.exit_code == Some(0)) { "Completed" } else { "Error" }.to_owned()
    } else {
        "Running".to_owned()
    };
    let mut running = false;
    for c in containers.iter().rev() {
        match c.state.as_str() {
            "Waiting" | "Terminated" if !c.reason.is_empty() => reason = c.reason.clone(),
            "Running" => running = true,
            _ => {}
        }
    }
    if reason == "Completed" && running { "Running".into() } else { reason }
}

fn rfc3339_nanos(nanos: i64) -> String {
    jiff::Timestamp::from_nanosecond(nanos as i128).map(|t| t.to_string()).unwrap_or_default()
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

    fn c(state: &str, reason: &str, exit: Option<i32>) -> ContainerView {
        ContainerView {
            name: "c".into(),
            id: String::new(),
            state: state.into(),
            reason: reason.into(),
            ready: state == "Running",
            restart_count: 0,
            exit_code: exit,
            image: String::new(),
            image_ref: String::new(),
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn status_reads_like_kubectl() {
        for (containers, expected) in [
            (vec![c("Running", "", None)], "Running"),
            (vec![c("Waiting", "ContainerCreating", None)], "ContainerCreating"),
            (vec![c("Running", "", None), c("Waiting", "CrashLoopBackOff", Some(1))], "CrashLoopBackOff"),
            (vec![c("Terminated", "Completed", Some(0))], "Completed"),
            (vec![c("Terminated", "Error", Some(2))], "Error"),
            (vec![c("Running", "", None), c("Terminated", "Completed", Some(0))], "Running"),
            (vec![c("Waiting", "ErrImagePull", None)], "ErrImagePull"),
        ] {
            assert_eq!(kubectl_status(&containers), expected, "{containers:?}");
        }
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
