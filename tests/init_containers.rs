//! Init containers and native sidecars on the real runtime: order, completion before the main
//! containers, the Init:N/M and Init:<reason> statuses, a sidecar gating what follows it until
//! its startup probe passes, and sidecars kept running and stopped after the main containers.

mod common;

use std::time::Duration;

use common::*;

/// A pod whose containers append to a shared journal (a host directory of the test's), so the
/// order they ran and stopped in is on record after the pod is gone.
fn journal_pod(d: &Daemon, name: &str, init: &str, main_script: &str, policy: &str) -> String {
    let journal = d.dir.path().join(format!("journal-{name}"));
    std::fs::create_dir_all(&journal).unwrap();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  hostNetwork: true\n  restartPolicy: {policy}\n  \
         terminationGracePeriodSeconds: 2\n  volumes: [{{name: j, hostPath: {{path: {journal}}}}}]\n  initContainers:\n{init}  containers:\n  \
         - name: main\n    image: {image}\n    command: [sh, -c, {main_script:?}]\n    volumeMounts: [{{name: j, mountPath: /j}}]\n",
        journal = journal.display(),
        image = image()
    )
}

fn journal(d: &Daemon, name: &str) -> Vec<String> {
    let path = d.dir.path().join(format!("journal-{name}/log"));
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn init_container(name: &str, script: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    image: {image}\n    command: [sh, -c, {script:?}]\n    volumeMounts: [{{name: j, mountPath: /j}}]\n{extra}",
        image = image()
    )
}

#[test]
fn init_containers_run_in_order_to_completion_before_the_main_container() {
    let _serial = serial();
    let mut d = Daemon::new("initorder");
    d.start();
    let init = init_container("first", "sleep 1; echo first >> /j/log", "")
        + &init_container("second", "sleep 1; echo second >> /j/log", "");
    let manifest = journal_pod(&d, "ordered", &init, "echo main >> /j/log; sleep 3600", "Always");
    d.write_manifest("ordered.yaml", &manifest);

    let mut seen = Vec::new();
    d.wait_until("the pod runs", Duration::from_secs(60), |d| {
        if let Some(p) = d.pod("ordered") {
            if seen.last() != Some(&p.status) {
                seen.push(p.status.clone());
            }
            return p.status == "Running" && p.ready == "1/1";
        }
        false
    });
    assert!(seen.iter().any(|s| s == "Init:0/2" || s == "Init:1/2"), "kubectl's Init:N/M while initializing: {seen:?}");
    assert_eq!(journal(&d, "ordered"), ["first", "second", "main"]);
    let pod = d.pod("ordered").unwrap();
    assert_eq!(pod.init_containers.len(), 2);
    assert!(pod.init_containers.iter().all(|c| c.state == "Terminated" && c.exit_code == Some(0)), "{pod:?}");
}

#[test]
fn a_failing_init_container_is_retried_with_back_off_and_fails_the_pod_under_never() {
    let _serial = serial();
    let mut d = Daemon::new("initfail");
    d.start();
    let init = init_container("flaky", "exit 3", "");
    d.write_manifest("retried.yaml", &journal_pod(&d, "retried", &init, "sleep 3600", "Always"));
    d.write_manifest("failed.yaml", &journal_pod(&d, "failed", &init, "sleep 3600", "Never"));

    let retried = d.wait_for_pod("retried", "in Init:CrashLoopBackOff", |p| p.status == "Init:CrashLoopBackOff");
    assert!(retried.restarts >= 1, "{retried:?}");
    let failed = d.wait_for_pod("failed", "Init:Error", |p| p.status == "Init:Error");
    assert_eq!(failed.init_containers[0].exit_code, Some(3));
    assert_eq!(failed.restarts, 0, "restartPolicy Never: the init container is not run again");
    for name in ["retried", "failed"] {
        let pod = d.pod(name).unwrap();
        assert_eq!(pod.containers[0].reason, "PodInitializing", "{name}: the main container never starts");
        assert!(pod.containers[0].id.is_empty(), "{name}: the main container was never created");
    }
}

#[test]
fn a_sidecar_starts_first_gates_the_rest_on_its_startup_probe_and_stops_last() {
    let _serial = serial();
    let mut d = Daemon::new("sidecar");
    d.start();
    // The sidecar becomes "started" 2 s after it runs; it records its SIGTERM.
    let sidecar = init_container(
        "proxy",
        "trap 'echo proxy term >> /j/log; exit 0' TERM; echo proxy >> /j/log; date +%s > /j/proxy-at; sleep 2; touch /tmp/up; while true; do sleep 0.2; done",
        "    restartPolicy: Always\n    startupProbe: {exec: {command: [test, -f, /tmp/up]}, periodSeconds: 1, failureThreshold: 30}\n",
    );
    let init = sidecar + &init_container("setup", "echo setup >> /j/log; date +%s > /j/setup-at", "");
    let main = "trap 'echo main term >> /j/log; exit 0' TERM; echo main >> /j/log; while true; do sleep 0.2; done";
    let path = d.write_manifest("meshed.yaml", &journal_pod(&d, "meshed", &init, main, "Always"));

    let pod = d.wait_for_pod("meshed", "running with its sidecar", |p| p.status == "Running" && p.ready == "2/2");
    assert_eq!(pod.init_containers[0].state, "Running", "the sidecar keeps running: {pod:?}");
    assert_eq!(journal(&d, "meshed"), ["proxy", "setup", "main"], "the sidecar first, then the init container");
    let at = |file: &str| -> u64 {
        let path = d.dir.path().join("journal-meshed").join(file);
        std::fs::read_to_string(path).unwrap().trim().parse().unwrap()
    };
    assert!(at("setup-at") >= at("proxy-at") + 2, "setup waited for the sidecar's startup probe (2 s)");

    std::fs::remove_file(&path).unwrap();
    d.wait_until("the pod is gone", Duration::from_secs(30), |d| d.pod("meshed").is_none());
    assert_eq!(
        journal(&d, "meshed"),
        ["proxy", "setup", "main", "main term", "proxy term"],
        "the sidecar is stopped after the main container"
    );
}
