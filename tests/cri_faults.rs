//! Runtime faults, through a CRI proxy in front of the real runtime (common::cri_proxy): every
//! gRPC error code, reset streams, cut-off answers and slow answers on the relist; the runtime
//! refusing everything for a while; and staticlet killed right after the runtime carried out one
//! CRI call of an action, before it heard the answer; and containerd itself killed the same way,
//! after it made a container and after it stopped one. A healthy pod is never restarted, and each
//! fault ends in the state the manifests ask for.

mod common;

use std::time::{Duration, Instant};

use common::{
    cri_proxy::{CriProxy, Fault},
    *,
};
use staticlet::ops::view::PodView;
use tonic::Code;

/// A proxy in front of the real runtime, and a daemon behind it running one pod, `steady`.
/// Container events, where the runtime has them, are refused, so the relister lists every second
/// (as on containerd 1.6) and meets the faults.
fn steady_pod_behind_proxy(test: &str) -> (CriProxy, Daemon, PodView) {
    let proxy = CriProxy::start(&endpoint());
    proxy.inject("GetContainerEvents", Fault::Fail(Code::Unavailable), u32::MAX);
    let mut d = Daemon::new(test);
    d.endpoint = proxy.endpoint.clone();
    d.start();
    d.write_manifest("steady.yaml", &sleeper("steady", "v1"));
    let steady = d.wait_for_running("steady");
    (proxy, d, steady)
}

fn sleeper(name: &str, version: &str) -> String {
    shell_pod(name, &format!("echo {version}; exec sleep 3600"), "")
}

/// The pod's container id and restart count, as staticlet reports them.
fn container_of(d: &Daemon, name: &str) -> (String, u32) {
    let pod = d.pod(name).unwrap();
    (pod.containers[0].id.clone(), pod.restarts)
}

/// Whether the runtime holds exactly one ready sandbox and one running container for `uid`, and
/// nothing else of it.
fn exactly_one_running(uid: &str) -> bool {
    let sandboxes = runtime_sandboxes(uid);
    let containers = runtime_containers(uid);
    sandboxes.len() == 1
        && sandboxes[0].state == staticlet::cri::api::PodSandboxState::SandboxReady as i32
        && containers.len() == 1
        && running_container_ids(uid).len() == 1
}

const EVERY_ERROR_CODE: [Code; 16] = [
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

#[test]
fn a_relist_failing_every_way_there_is_never_restarts_a_healthy_pod() {
    let _serial = serial();
    let (proxy, d, steady) = steady_pod_behind_proxy("relist-faults");
    let before = container_of(&d, "steady");
    let mut faults = EVERY_ERROR_CODE.map(Fault::Fail).to_vec();
    faults.extend([Fault::Reset, Fault::Reset, Fault::Truncate, Fault::Truncate, Fault::Delay(Duration::from_secs(3))]);
    for method in ["ListPodSandbox", "ListContainers"] {
        for fault in &faults {
            proxy.inject(method, *fault, 1);
        }
    }
    d.wait_until("every fault met a relist", Duration::from_secs(180), |_| {
        proxy.pending("ListPodSandbox") + proxy.pending("ListContainers") == 0
    });
    d.wait_until("the runtime is reachable again", Duration::from_secs(30), |d| d.status().runtime_error.is_none());
    // Two more listings after that: whatever staticlet concluded from the faults has been acted on.
    let listings = |d: &Daemon| d.metric(r#"kubelet_runtime_operations_total{operation_type="list_containers"}"#);
    let seen = listings(&d);
    d.wait_until("two more listings", Duration::from_secs(30), |d| listings(d) >= seen + 2.0);
    assert_eq!(container_of(&d, "steady"), before, "the healthy pod's container was not replaced or restarted");
    assert!(exactly_one_running(&steady.uid));
    let errors = d.metric(r#"kubelet_runtime_operations_errors_total{operation_type="list_containers"}"#)
        + d.metric(r#"kubelet_runtime_operations_errors_total{operation_type="list_podsandbox"}"#);
    // A relist's two listings run together and meet one fault each; its first error fails it.
    assert!(errors >= (faults.len() - 1) as f64, "each failed relist is counted: {errors}");
    let log = d.log();
    assert!(log.contains("container runtime unavailable; pods keep running"), "{log}");
    assert!(log.contains("injected by the CRI proxy"), "the runtime's own words are reported\n{log}");
    assert!(log.contains("container runtime is reachable again"), "{log}");
}

#[test]
fn a_runtime_refusing_everything_costs_no_pod_and_is_not_stormed() {
    let _serial = serial();
    let (proxy, d, _) = steady_pod_behind_proxy("runtime-refuses");
    let before = container_of(&d, "steady");
    const DOWN: Duration = Duration::from_secs(10);
    let start = Instant::now();
    proxy.inject("*", Fault::Fail(Code::Unavailable), u32::MAX);
    d.write_manifest("late.yaml", &sleeper("late", "v1"));
    d.wait_until("the outage is reported", Duration::from_secs(10), |d| d.status().runtime_error.is_some());
    std::thread::sleep(DOWN.saturating_sub(start.elapsed()));
    let calls = proxy.calls_since(start);
    proxy.clear();
    let mut by_method = std::collections::BTreeMap::<&str, usize>::new();
    for method in &calls {
        *by_method.entry(method.as_str()).or_default() += 1;
    }
    let rate = calls.len() as f64 / DOWN.as_secs_f64();
    println!("runtime refusing every call for {DOWN:?}: {} CRI calls, {rate:.1}/s: {by_method:?}", calls.len());
    // The relister's two listings a second, the late pod's back-off, the health check: a handful.
    assert!(rate <= 10.0, "no retry storm: {rate:.1} calls/s {by_method:?}");
    d.wait_for_running("late");
    assert_eq!(container_of(&d, "steady"), before, "the outage cost the running pod nothing");
    assert!(d.status().runtime_error.is_none());
}

/// Waits for the proxy's kill, then starts staticlet again.
fn restart_after_kill(d: &mut Daemon, proxy: &CriProxy, kills_before: u32, what: &str) {
    d.wait_until(&format!("the proxy killed staticlet after {what}"), Duration::from_secs(60), |_| {
        proxy.kills() == kills_before + 1
    });
    d.crash(); // reaps the killed process
    d.start();
}

#[test]
fn staticlet_killed_between_the_cri_calls_of_an_action_converges_without_a_restart_or_a_leftover() {
    let _serial = serial();
    let (proxy, mut d, _) = steady_pod_behind_proxy("killed-mid-action");
    let before = container_of(&d, "steady");
    // A new pod, cut off after each step of its start.
    for method in ["RunPodSandbox", "CreateContainer", "StartContainer"] {
        let name = format!("cut-{}", method.to_lowercase());
        let kills = proxy.kills();
        proxy.inject(method, Fault::KillOnAnswer(d.pid()), 1);
        d.write_manifest(&format!("{name}.yaml"), &sleeper(&name, "v1"));
        restart_after_kill(&mut d, &proxy, kills, method);
        let pod = d.wait_for_running(&name);
        d.wait_until(&format!("{name} is one sandbox and one container"), Duration::from_secs(30), |_| {
            exactly_one_running(&pod.uid)
        });
        assert_eq!(d.pod(&name).unwrap().restarts, 0, "{name}: a start cut off is not a restart");
    }
    // An edit, cut off after the old container was stopped and before the new pod exists.
    let old = d.pod("cut-runpodsandbox").unwrap();
    let kills = proxy.kills();
    proxy.inject("StopContainer", Fault::KillOnAnswer(d.pid()), 1);
    d.write_manifest("cut-runpodsandbox.yaml", &sleeper("cut-runpodsandbox", "v2"));
    restart_after_kill(&mut d, &proxy, kills, "StopContainer");
    let new = d.wait_for_pod("cut-runpodsandbox", "its v2", |p| p.uid != old.uid && p.status == "Running");
    d.wait_until("the old version is gone and the new one is whole", Duration::from_secs(30), |_| {
        runtime_sandboxes(&old.uid).is_empty() && exactly_one_running(&new.uid)
    });
    assert_eq!(container_of(&d, "steady"), before, "four crashes cost the untouched pod nothing");
}

/// Waits for the proxy's kill of containerd, checks that staticlet says the runtime is gone, and
/// starts containerd again.
fn restart_runtime_after_kill(d: &Daemon, proxy: &CriProxy, kills_before: u32, what: &str) {
    d.wait_until(&format!("the proxy killed containerd after {what}"), Duration::from_secs(60), |_| {
        proxy.kills() == kills_before + 1
    });
    d.wait_until("the dead runtime is reported", Duration::from_secs(20), |d| d.status().runtime_error.is_some());
    testenv(&["restart-runtime"]);
}

#[test]
fn containerd_killed_as_it_creates_and_as_it_stops_converges_once_it_is_back() {
    let _serial = serial();
    let (proxy, d, _) = steady_pod_behind_proxy("containerd-killed");
    let before = container_of(&d, "steady");
    // containerd made the container and died before staticlet heard of it.
    let kills = proxy.kills();
    proxy.inject("CreateContainer", Fault::KillOnAnswer(runtime_pid()), 1);
    d.write_manifest("made.yaml", &sleeper("made", "v1"));
    restart_runtime_after_kill(&d, &proxy, kills, "CreateContainer");
    let pod = d.wait_for_running("made");
    d.wait_until("made is one sandbox and one container", Duration::from_secs(60), |_| exactly_one_running(&pod.uid));
    assert_eq!(d.pod("made").unwrap().restarts, 0, "a create whose answer was lost is not a restart");

    // containerd stopped the old version's container and died before staticlet heard of it.
    let kills = proxy.kills();
    proxy.inject("StopContainer", Fault::KillOnAnswer(runtime_pid()), 1);
    d.write_manifest("made.yaml", &sleeper("made", "v2"));
    restart_runtime_after_kill(&d, &proxy, kills, "StopContainer");
    let new = d.wait_for_pod("made", "its v2", |p| p.uid != pod.uid && p.status == "Running");
    d.wait_until("the old version is gone and the new one is whole", Duration::from_secs(60), |_| {
        runtime_sandboxes(&pod.uid).is_empty() && exactly_one_running(&new.uid)
    });
    assert_eq!(container_of(&d, "steady"), before, "two runtime crashes cost the untouched pod nothing");
    assert!(d.status().runtime_error.is_none(), "the runtime is back: {:?}", d.status().runtime_error);
}
