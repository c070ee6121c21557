//! What a mirror pod must look like, and what its status says. Pure.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Pod,
        PodCondition, PodIP, PodStatus,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time},
};

use jiff::Timestamp;

use crate::{
    manifest::StaticPod,
    supervisor::status::{self, ContainerPhase, PodState, READINESS_GATES_NOT_READY, readiness_gates_not_ready},
};

pub const ANNOTATION_MIRROR: &str = "kubernetes.io/config.mirror";

/// The mirror of a static pod: same name, namespace, labels, annotations and spec, plus
/// `config.mirror` and exactly one controller reference to the Node (what NodeRestriction admits).
pub fn mirror_of(pod: &StaticPod, node: &str, node_uid: &str) -> Pod {
    let mut annotations = pod.annotations();
    annotations.insert(ANNOTATION_MIRROR.into(), pod.config_hash.clone());
    Pod {
        metadata: ObjectMeta {
            name: Some(pod.name().into()),
            namespace: Some(pod.namespace().into()),
            labels: pod.pod.metadata.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.into(),
                uid: node_uid.into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..Default::default()
        },
        spec: pod.pod.spec.clone(),
        status: None,
    }
}

/// What to do about the mirror that exists (or not) for a static pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Create,
    /// Delete (grace 0, UID precondition) and create again.
    Replace(&'static str),
    Keep,
}

/// kubelet matches a mirror by name and `config.mirror == config.hash` and replaces one that is
/// terminating. We also replace one whose labels, annotations or owner were edited through the
/// API: a mirror is read-only, and a node may not update pods, only delete and create them.
pub fn verdict(wanted: &Pod, existing: Option<&Pod>) -> Verdict {
    let Some(existing) = existing else { return Verdict::Create };
    let (want, have) = (&wanted.metadata, &existing.metadata);
    if have.deletion_timestamp.is_some() {
        return Verdict::Replace("terminating");
    }
    let hash = |m: &ObjectMeta| m.annotations.as_ref().and_then(|a| a.get(ANNOTATION_MIRROR)).cloned();
    if hash(have) != hash(want) {
        return Verdict::Replace("outdated");
    }
    let empty = BTreeMap::new();
    if have.labels.as_ref().unwrap_or(&empty) != want.labels.as_ref().unwrap_or(&empty) {
        return Verdict::Replace("labels edited");
    }
    if have.annotations.as_ref().unwrap_or(&empty) != want.annotations.as_ref().unwrap_or(&empty) {
        return Verdict::Replace("annotations edited");
    }
    let owner = |m: &ObjectMeta| m.owner_references.clone().unwrap_or_default();
    if owner(have) != owner(want) {
        return Verdict::Replace("owner changed");
    }
    Verdict::Keep
}

/// The mirror's status from the supervisor's typed model (KUBELET.md 3.3): phase, the five
/// conditions, container statuses, IPs, start time, QoS class. `now` stamps new conditions.
pub fn status_of(pod: &StaticPod, state: Option<&PodState>, host_ip: &str, now: Timestamp) -> PodStatus {
    let policy = pod.restart_policy();
    let containers = state.map(|v| v.containers.as_slice()).unwrap_or_default();
    let sidecars = state.into_iter().flat_map(|v| &v.init_containers).filter(|c| c.sidecar);
    let initialized = state.is_some_and(|v| v.initialized) || pod.init_containers().is_empty();
    let all_ready = initialized
        && !containers.is_empty()
        && containers.iter().all(|c| c.ready)
        && sidecars.clone().all(|c| c.ready);
    let exit_codes: Vec<i32> = containers.iter().filter_map(|c| c.phase.exit_code()).collect();
    // A pod that failed as a whole (DeadlineExceeded) is reported so only once it is stopped.
    let failed = state.and_then(|v| v.reason.clone());
    let finished = failed.is_some()
        || (!containers.is_empty()
            && exit_codes.len() == containers.len()
            && exit_codes.iter().all(|code| !policy.restarts_after(*code)));
    let sandbox = state.is_some_and(|v| v.started.is_some());
    let running_or_restarting = containers.iter().any(|c| c.phase.is_running() || c.restart_count > 0);
    let phase = if failed.is_some() {
        "Failed"
    } else if finished {
        if exit_codes.iter().all(|code| *code == 0) { "Succeeded" } else { "Failed" }
    } else if running_or_restarting && sandbox {
        "Running"
    } else {
        "Pending"
    };
    let condition = |kind: &str, ok: bool, reason: Option<&str>| PodCondition {
        type_: kind.into(),
        status: if ok { "True" } else { "False" }.into(),
        last_transition_time: Some(Time(now)),
        reason: if ok { None } else { reason.map(Into::into) },
        ..Default::default()
    };
    let not_ready = if finished { "PodCompleted" } else { "ContainersNotReady" };
    let containers_ready = all_ready && !finished;
    // The gates' conditions could only be set through the API server; none is read back, so a
    // static pod with readiness gates is held not Ready, as kubelet would hold it with no gate
    // condition in the pod's status.
    let gates: Vec<String> = pod.spec().readiness_gates.iter().flatten().map(|g| g.condition_type.clone()).collect();
    let gates_unmet = readiness_gates_not_ready(&gates, &[]).filter(|_| containers_ready);
    let mut ready = condition("Ready", containers_ready && gates_unmet.is_none(), Some(not_ready));
    if let Some(message) = gates_unmet {
        ready.reason = Some(READINESS_GATES_NOT_READY.into());
        ready.message = Some(message);
    }
    let conditions = vec![
        condition("PodReadyToStartContainers", sandbox, None),
        condition("Initialized", initialized, Some("ContainersNotInitialized")),
        ready,
        condition("ContainersReady", containers_ready, Some(not_ready)),
        condition("PodScheduled", true, None),
    ];
    let init_reported = state.map(|v| v.init_containers.as_slice()).unwrap_or_default();
    let init_container_statuses: Vec<ContainerStatus> = pod
        .init_containers()
        .iter()
        .map(|spec| match init_reported.iter().find(|c| c.name == spec.name) {
            Some(c) => container_status(c),
            None => ContainerStatus {
                name: spec.name.clone(),
                image: spec.image.clone().unwrap_or_default(),
                started: Some(false),
                state: Some(waiting("PodInitializing")),
                ..Default::default()
            },
        })
        .collect();
    let container_statuses = pod
        .spec()
        .containers
        .iter()
        .map(|spec| match containers.iter().find(|c| c.name == spec.name) {
            Some(c) => container_status(c),
            None => ContainerStatus {
                name: spec.name.clone(),
                image: spec.image.clone().unwrap_or_default(),
                started: Some(false),
                state: Some(waiting("ContainerCreating")),
                ..Default::default()
            },
        })
        .collect();
    let pod_ip = state.map(|v| if v.ip.is_empty() && pod.host_network() { host_ip.to_owned() } else { v.ip.clone() });
    let pod_ip = pod_ip.filter(|ip| !ip.is_empty());
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        container_statuses: Some(container_statuses),
        init_container_statuses: (!init_container_statuses.is_empty()).then_some(init_container_statuses),
        host_ip: Some(host_ip.into()),
        host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP { ip: host_ip.into() }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: state.and_then(|v| v.started).map(Time),
        qos_class: Some(crate::cri::resources::qos(pod.spec()).as_str().into()),
        reason: failed.as_ref().map(|(reason, _)| reason.clone()),
        message: failed.map(|(_, message)| message),
        ..Default::default()
    }
}

fn waiting(reason: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting { reason: Some(reason.into()), message: None }),
        ..Default::default()
    }
}

fn container_status(c: &status::ContainerStatus) -> ContainerStatus {
    let container_id = (!c.id.is_empty()).then(|| format!("containerd://{}", c.id));
    let state = match &c.phase {
        ContainerPhase::Running => ContainerState {
            running: Some(ContainerStateRunning { started_at: c.started_at.map(Time) }),
            ..Default::default()
        },
        ContainerPhase::Terminated { exit_code, reason, message, finished_at } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                reason: Some(reason.clone()),
                message: (!message.is_empty()).then(|| message.clone()),
                started_at: c.started_at.map(Time),
                finished_at: finished_at.map(Time),
                container_id: container_id.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        ContainerPhase::Waiting { reason } => waiting(reason),
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_ref.clone(),
        container_id,
        ready: c.ready,
        started: Some(c.started),
        restart_count: c.restart_count as i32,
        state: Some(state),
        ..Default::default()
    }
}

/// Whether the status on the API server says something different from `wanted`, ignoring the
/// condition timestamps (which are ours to keep while nothing changes) and sub-second digits
/// (the API server stores times to the second, so they would differ on every pass).
pub fn status_differs(current: Option<&PodStatus>, wanted: &PodStatus) -> bool {
    fn second(t: &mut Option<Time>) {
        if let Some(Time(ts)) = t {
            *ts = Timestamp::from_second(ts.as_second()).unwrap_or(*ts);
        }
    }
    let strip = |s: &PodStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = None;
            c.last_probe_time = None;
        }
        if let Some(c) = s.conditions.as_mut() {
            c.sort_by(|a, b| a.type_.cmp(&b.type_))
        }
        second(&mut s.start_time);
        let statuses = s.container_statuses.iter_mut().flatten();
        for c in statuses.chain(s.init_container_statuses.iter_mut().flatten()) {
            // The API server turns an absent lastState into an empty one.
            if c.last_state
                .as_ref()
                .is_some_and(|l| l.running.is_none() && l.terminated.is_none() && l.waiting.is_none())
            {
                c.last_state = None;
            }
            for state in [c.state.as_mut(), c.last_state.as_mut()].into_iter().flatten() {
                if let Some(r) = state.running.as_mut() {
                    second(&mut r.started_at);
                }
                if let Some(t) = state.terminated.as_mut() {
                    second(&mut t.started_at);
                    second(&mut t.finished_at);
                }
            }
        }
        s
    };
    current.is_none_or(|c| strip(c) != strip(wanted))
}

/// The status as a strategic-merge patch body. A merge keeps fields the patch leaves out, so a
/// condition that is True again must say `reason: null` to drop its old reason.
pub fn status_patch(mirror_uid: Option<&str>, status: &PodStatus) -> serde_json::Value {
    let mut body = serde_json::json!({ "metadata": { "uid": mirror_uid }, "status": status });
    for condition in body["status"]["conditions"].as_array_mut().into_iter().flatten() {
        for field in ["reason", "message"] {
            condition
                .as_object_mut()
                .expect("a condition is an object")
                .entry(field)
                .or_insert(serde_json::Value::Null);
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Origin, parse_manifest};

    #[test]
    fn status_patch_clears_reasons_of_conditions_that_recovered() {
        let status = status_of(&static_pod(), None, "10.0.0.1", Timestamp::UNIX_EPOCH);
        let body = status_patch(Some("u1"), &status);
        assert_eq!(body["metadata"]["uid"], "u1");
        let ready =
            body["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "PodScheduled").unwrap();
        assert!(ready.get("reason").is_some_and(|r| r.is_null()));
    }

    fn static_pod() -> StaticPod {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {role: myrole}}\nspec: {containers: [{name: c, image: i:1}]}\n";
        parse_manifest(yaml.as_bytes(), &Origin::file("/m/web.yaml"), "n1").unwrap().remove(0)
    }

    #[test]
    fn mirror_is_owned_by_the_node_and_carries_the_mirror_annotation() {
        let pod = static_pod();
        let mirror = mirror_of(&pod, "n1", "node-uid");
        let meta = &mirror.metadata;
        assert_eq!(meta.name.as_deref(), Some("web-n1"));
        assert_eq!(meta.annotations.as_ref().unwrap()[ANNOTATION_MIRROR], pod.config_hash);
        assert_eq!(meta.labels.as_ref().unwrap()["role"], "myrole");
        let owners = meta.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(
            (owners[0].kind.as_str(), owners[0].name.as_str(), owners[0].uid.as_str()),
            ("Node", "n1", "node-uid")
        );
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(owners[0].block_owner_deletion, None);
        assert!(meta.uid.is_none(), "the API server assigns the mirror's UID");
    }

    #[test]
    fn verdicts() {
        let pod = static_pod();
        let wanted = mirror_of(&pod, "n1", "u");
        let edit = |f: &dyn Fn(&mut Pod)| {
            let mut p = wanted.clone();
            f(&mut p);
            p
        };
        assert_eq!(verdict(&wanted, None), Verdict::Create);
        assert_eq!(verdict(&wanted, Some(&wanted)), Verdict::Keep);
        let terminating = edit(&|p| p.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH)));
        assert_eq!(verdict(&wanted, Some(&terminating)), Verdict::Replace("terminating"));
        let outdated = edit(&|p| {
            p.metadata.annotations.as_mut().unwrap().insert(ANNOTATION_MIRROR.into(), "old".into());
        });
        assert_eq!(verdict(&wanted, Some(&outdated)), Verdict::Replace("outdated"));
        let labelled = edit(&|p| {
            p.metadata.labels.as_mut().unwrap().insert("extra".into(), "x".into());
        });
        assert_eq!(verdict(&wanted, Some(&labelled)), Verdict::Replace("labels edited"));
        let annotated = edit(&|p| {
            p.metadata.annotations.as_mut().unwrap().insert("note".into(), "x".into());
        });
        assert_eq!(verdict(&wanted, Some(&annotated)), Verdict::Replace("annotations edited"));
        let reowned = edit(&|p| p.metadata.owner_references.as_mut().unwrap()[0].uid = "other".into());
        assert_eq!(verdict(&wanted, Some(&reowned)), Verdict::Replace("owner changed"));
    }

    const GATED: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  priority: 2000001000\n  priorityClassName: system-node-critical\n  readinessGates: [{conditionType: example.com/lb}]\n  containers: [{name: c, image: i:1}]\n";

    fn running(pod: &StaticPod) -> PodState {
        let c = status::ContainerStatus {
            name: "c".into(),
            id: "c1".into(),
            phase: ContainerPhase::Running,
            ready: true,
            started: true,
            sidecar: false,
            restart_count: 0,
            image: "i:1".into(),
            image_ref: String::new(),
            started_at: None,
        };
        PodState {
            namespace: pod.namespace().into(),
            name: pod.name().into(),
            uid: pod.uid.clone(),
            source: String::new(),
            seen: String::new(),
            ip: "10.0.0.5".into(),
            started: Some(Timestamp::UNIX_EPOCH),
            terminating: false,
            initialized: true,
            init_containers: vec![],
            containers: vec![c],
            last_error: None,
            reason: None,
            readiness_gates: pod.spec().readiness_gates.iter().flatten().map(|g| g.condition_type.clone()).collect(),
        }
    }

    fn condition<'a>(status: &'a PodStatus, kind: &str) -> &'a PodCondition {
        status.conditions.iter().flatten().find(|c| c.type_ == kind).unwrap()
    }

    #[test]
    fn readiness_gates_hold_ready_false_with_containers_ready() {
        let gated = parse_manifest(GATED.as_bytes(), &Origin::file("/m/web.yaml"), "n1").unwrap().remove(0);
        let status = status_of(&gated, Some(&running(&gated)), "10.0.0.1", Timestamp::UNIX_EPOCH);
        let ready = condition(&status, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ReadinessGatesNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some(r#"corresponding condition of pod readiness gate "example.com/lb" does not exist."#)
        );
        assert_eq!(condition(&status, "ContainersReady").status, "True");

        let plain = static_pod();
        let status = status_of(&plain, Some(&running(&plain)), "10.0.0.1", Timestamp::UNIX_EPOCH);
        assert_eq!(condition(&status, "Ready").status, "True", "without gates, ready containers make a Ready pod");
    }

    #[test]
    fn priority_and_priority_class_are_kept_on_the_mirror() {
        let gated = parse_manifest(GATED.as_bytes(), &Origin::file("/m/web.yaml"), "n1").unwrap().remove(0);
        let spec = mirror_of(&gated, "n1", "u").spec.unwrap();
        assert_eq!(spec.priority, Some(2000001000));
        assert_eq!(spec.priority_class_name.as_deref(), Some("system-node-critical"));
        assert_eq!(spec.readiness_gates.unwrap()[0].condition_type, "example.com/lb");
    }

    #[test]
    fn status_without_a_view_is_pending_and_creating() {
        let status = status_of(&static_pod(), None, "10.0.0.1", Timestamp::UNIX_EPOCH);
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        let c = &status.container_statuses.unwrap()[0];
        assert_eq!(c.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(), Some("ContainerCreating"));
        assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    }

    #[test]
    fn qos_class_compares_quantities_by_value() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: i:1, resources: {requests: {cpu: '1', memory: 1Gi}, limits: {cpu: 1000m, memory: 1024Mi}}}]}\n";
        let pod = parse_manifest(yaml.as_bytes(), &Origin::file("/m/web.yaml"), "n1").unwrap().remove(0);
        let status = status_of(&pod, None, "10.0.0.1", Timestamp::UNIX_EPOCH);
        assert_eq!(status.qos_class.as_deref(), Some("Guaranteed"), "1 == 1000m and 1Gi == 1024Mi");
        let limits_only = yaml.replace("requests: {cpu: '1', memory: 1Gi}, ", "");
        let pod = parse_manifest(limits_only.as_bytes(), &Origin::file("/m/web.yaml"), "n1").unwrap().remove(0);
        let status = status_of(&pod, None, "10.0.0.1", Timestamp::UNIX_EPOCH);
        assert_eq!(status.qos_class.as_deref(), Some("Guaranteed"), "requests default to limits");
    }

    #[test]
    fn a_pod_failed_past_its_deadline_is_failed_with_its_reason_and_terminated_messages_show() {
        let pod = static_pod();
        let container = status::ContainerStatus {
            name: "c".into(),
            id: "abc".into(),
            phase: ContainerPhase::Terminated {
                exit_code: 143,
                reason: "Error".into(),
                message: "drained".into(),
                finished_at: None,
            },
            ready: false,
            started: false,
            sidecar: false,
            restart_count: 0,
            image: "i:1".into(),
            image_ref: String::new(),
            started_at: None,
        };
        let state = PodState {
            namespace: "default".into(),
            name: "web-n1".into(),
            uid: pod.uid.clone(),
            source: String::new(),
            seen: String::new(),
            ip: String::new(),
            started: Some(Timestamp::UNIX_EPOCH),
            terminating: false,
            initialized: true,
            init_containers: vec![],
            containers: vec![container],
            last_error: None,
            reason: Some(("DeadlineExceeded".into(), "too long".into())),
            readiness_gates: vec![],
        };
        let status = status_of(&pod, Some(&state), "10.0.0.1", Timestamp::UNIX_EPOCH);
        assert_eq!(
            (status.phase.as_deref(), status.reason.as_deref(), status.message.as_deref()),
            (Some("Failed"), Some("DeadlineExceeded"), Some("too long"))
        );
        let c = &status.container_statuses.unwrap()[0];
        let terminated = c.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!((terminated.exit_code, terminated.message.as_deref()), (143, Some("drained")));
        let mut plain = state;
        plain.reason = None;
        let status = status_of(&pod, Some(&plain), "10.0.0.1", Timestamp::UNIX_EPOCH);
        assert_eq!(
            (status.phase.as_deref(), status.reason),
            (Some("Pending"), None),
            "restartPolicy Always: not finished"
        );
    }

    #[test]
    fn condition_timestamps_alone_are_no_change() {
        let a = status_of(&static_pod(), None, "10.0.0.1", Timestamp::UNIX_EPOCH);
        let mut b = a.clone();
        for c in b.conditions.iter_mut().flatten() {
            c.last_transition_time = None;
        }
        assert!(!status_differs(Some(&a), &b));
        assert!(status_differs(None, &b));
        b.phase = Some("Running".into());
        assert!(status_differs(Some(&a), &b));
    }

    #[test]
    fn sub_second_digits_alone_are_no_change() {
        let at = |nanos: i64| Some(Time(Timestamp::from_nanosecond(nanos as i128).unwrap()));
        let mut a = status_of(&static_pod(), None, "10.0.0.1", Timestamp::UNIX_EPOCH);
        a.start_time = at(1_700_000_000_123_456_789);
        let mut b = a.clone();
        b.start_time = at(1_700_000_000_000_000_000);
        assert!(!status_differs(Some(&b), &a));
        b.start_time = at(1_700_000_001_000_000_000);
        assert!(status_differs(Some(&b), &a));
    }
}
