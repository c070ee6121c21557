//! Lifecycle hooks, termination messages, activeDeadlineSeconds and the downward API's IPs on
//! the real runtime. Hooks write to a hostPath journal (or call an HTTP server the test runs), so
//! their order against the container's own start and SIGTERM is read off the journal.

mod common;

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use common::*;

fn daemon(test: &str) -> Daemon {
    let mut d = Daemon::new(test);
    // httpGet hooks of host-network pods go to the node's IP: keep it on loopback.
    d.extra = vec!["--node-ip=127.0.0.1".into()];
    d
}

/// A journal directory on the host, mounted at /j in the pod.
fn journal(d: &Daemon) -> PathBuf {
    let dir = d.dir.path().join("journal");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn journal_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("log")).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// `shell_pod` with the journal mounted at /j and `container` added to the container.
fn journal_pod(name: &str, script: &str, spec: &str, container: &str, dir: &Path) -> String {
    shell_pod(name, script, &format!("{spec}  volumes: [{{name: j, hostPath: {{path: {}}}}}]\n", dir.display()))
        .replace("    command:", "    volumeMounts: [{name: j, mountPath: /j}]\n    command:")
        + container
}

/// An HTTP server on loopback answering 200 to every request; the requests it got, in order.
fn http_server() -> (u16, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx.send(String::from_utf8_lossy(&buf[..n]).into_owned()).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

#[test]
fn post_start_exec_hook_finishes_before_the_container_counts_as_running() {
    let _serial = serial();
    let mut d = daemon("poststart");
    d.start();
    let j = journal(&d);
    let hook = "    lifecycle: {postStart: {exec: {command: [sh, -c, 'sleep 2; echo hooked >> /j/log']}}}\n";
    d.write_manifest("p.yaml", &journal_pod("hooked", "echo main >> /j/log; sleep 3600", "", hook, &j));
    let mut seen_creating = false;
    d.wait_until("the pod runs", Duration::from_secs(60), |d| match d.pod("hooked") {
        Some(p) if p.status == "Running" => true,
        Some(p) => {
            seen_creating |= p.status == "ContainerCreating" && journal_lines(&j) == ["main"];
            false
        }
        None => false,
    });
    assert_eq!(journal_lines(&j), ["main", "hooked"], "Running only once the hook has returned");
    assert!(seen_creating, "while the hook ran the container was still ContainerCreating");
}

#[test]
fn failed_post_start_hook_kills_the_container_and_the_restart_path_runs_it_again() {
    let _serial = serial();
    let mut d = daemon("poststartfail");
    d.start();
    let j = journal(&d);
    // The first start's hook fails; the second's passes.
    let hook =
        "    lifecycle: {postStart: {exec: {command: [sh, -c, 'test -f /j/seen && exit 0; touch /j/seen; exit 1']}}}\n";
    d.write_manifest("p.yaml", &journal_pod("flaky", "sleep 3600", "", hook, &j));
    let pod = d.wait_for_pod("flaky", "running after one restart", |p| p.status == "Running" && p.restarts == 1);
    assert_eq!(pod.containers[0].restart_count, 1);
    assert!(d.log().contains("postStart hook failed; killing the container"), "{}", d.log());
    assert_eq!(runtime_sandboxes(&pod.uid).len(), 1, "only the container restarts");
}

#[test]
fn http_post_start_and_pre_stop_hooks_reach_the_node_ip_with_kubelets_user_agent() {
    let _serial = serial();
    let mut d = daemon("httphooks");
    d.start();
    let (port, requests) = http_server();
    let hooks = format!(
        "    lifecycle:\n      postStart: {{httpGet: {{path: /started, port: {port}}}}}\n      \
         preStop: {{httpGet: {{path: /stopping, port: {port}, httpHeaders: [{{name: X-Hook, value: pre}}]}}}}\n"
    );
    let path = d.write_manifest("p.yaml", &(shell_pod("web", "sleep 3600", "") + &hooks));
    let pod = d.wait_for_running("web");
    let first = requests.recv_timeout(Duration::from_secs(5)).expect("the postStart hook's request");
    assert!(first.starts_with("GET /started HTTP/1.1"), "{first}");
    assert!(first.to_lowercase().contains("user-agent: kube-lifecycle/1.35"), "{first}");
    std::fs::remove_file(path).unwrap();
    let second = requests.recv_timeout(Duration::from_secs(20)).expect("the preStop hook's request");
    assert!(second.starts_with("GET /stopping HTTP/1.1"), "{second}");
    assert!(second.to_lowercase().contains("x-hook: pre"), "{second}");
    d.wait_until("the pod is gone", Duration::from_secs(30), |_| runtime_sandboxes(&pod.uid).is_empty());
}

#[test]
fn pre_stop_runs_before_sigterm_and_the_stop_signal_gets_the_grace_that_is_left() {
    let _serial = serial();
    let mut d = daemon("prestop");
    d.start();
    let j = journal(&d);
    // The hook takes 2 s of the 4 s grace; the container ignores SIGTERM, so SIGKILL comes when
    // the grace left (2 s) is over, not after the whole 4 s.
    let hook = "    lifecycle: {preStop: {exec: {command: [sh, -c, 'echo prestop >> /j/log; sleep 2']}}}\n";
    let script = "trap 'echo term >> /j/log' TERM; echo start >> /j/log; while true; do sleep 0.1; done";
    let manifest = journal_pod("graceful", script, "", hook, &j)
        .replace("terminationGracePeriodSeconds: 2", "terminationGracePeriodSeconds: 4");
    let path = d.write_manifest("p.yaml", &manifest);
    let pod = d.wait_for_running("graceful");
    d.wait_until("the container has started", Duration::from_secs(10), |_| journal_lines(&j) == ["start"]);

    let removed = Instant::now();
    std::fs::remove_file(path).unwrap();
    d.wait_until("SIGTERM arrived", Duration::from_secs(20), |_| journal_lines(&j).contains(&"term".to_owned()));
    let term = Instant::now();
    d.wait_until("the pod is gone", Duration::from_secs(30), |_| runtime_sandboxes(&pod.uid).is_empty());
    let gone = Instant::now();

    eprintln!("removal to SIGTERM {:?}, SIGTERM to gone {:?}", term - removed, gone - term);
    assert_eq!(journal_lines(&j), ["start", "prestop", "term"]);
    assert!(term - removed >= Duration::from_secs(2), "SIGTERM only after the 2 s hook: {:?}", term - removed);
    let after_term = gone - term;
    assert!(after_term < Duration::from_millis(3500), "SIGKILL 2 s after SIGTERM, not 4 s: {after_term:?}");
}

#[test]
fn termination_messages_come_from_the_file_or_with_fallback_from_the_logs() {
    let _serial = serial();
    let mut d = daemon("termmsg");
    d.start();
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: ends}}\nspec:\n  hostNetwork: true\n  restartPolicy: Never\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  \
         - name: file\n    image: {image}\n    terminationMessagePath: /tmp/why\n    \
         command: [sh, -c, 'echo noise; printf \"bad config: %s\" x.yaml > /tmp/why; exit 3']\n  \
         - name: logs\n    image: {image}\n    terminationMessagePolicy: FallbackToLogsOnError\n    \
         command: [sh, -c, 'for i in $(seq 1 100); do echo line $i; done; echo boom; exit 4']\n  \
         - name: clean\n    image: {image}\n    terminationMessagePolicy: FallbackToLogsOnError\n    \
         command: [sh, -c, 'echo fine; exit 0']\n",
        image = image()
    );
    d.write_manifest("ends.yaml", &manifest);
    let pod = d.wait_for_pod("ends", "finished", |p| p.containers.iter().all(|c| c.exit_code.is_some()));
    let message = |name: &str| pod.containers.iter().find(|c| c.name == name).unwrap().message.clone();
    assert_eq!(message("file").as_deref(), Some("bad config: x.yaml"));
    let logs = message("logs").expect("the log tail");
    assert!(logs.ends_with("line 100\nboom\n"), "{logs:?}");
    assert_eq!(logs.lines().count(), 80, "the last 80 lines: {logs:?}");
    assert!(logs.starts_with("line 22\n"), "{logs:?}");
    assert_eq!(message("clean"), None, "a clean exit does not fall back to the logs");
    assert_eq!(pod.status, "Error");
}

#[test]
fn a_pod_past_its_active_deadline_is_stopped_and_shows_deadline_exceeded() {
    let _serial = serial();
    let mut d = daemon("deadline");
    d.start();
    d.write_manifest("p.yaml", &shell_pod("bounded", "sleep 3600", "  activeDeadlineSeconds: 3\n"));
    let pod = d.wait_for_running("bounded");
    let failed = d.wait_for_pod("bounded", "DeadlineExceeded", |p| p.status == "DeadlineExceeded");
    assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
    assert!(running_container_ids(&pod.uid).is_empty(), "nothing of it runs");
    let (_, table, _) = d.cli(&["get", "pods"]);
    assert!(table.lines().any(|l| l.contains("bounded") && l.contains("DeadlineExceeded")), "{table}");
    // restartPolicy Always, yet nothing starts again.
    std::thread::sleep(Duration::from_secs(3));
    let later = d.pod("bounded").unwrap();
    assert_eq!((later.status.as_str(), later.restarts), ("DeadlineExceeded", 0));
    assert!(running_container_ids(&pod.uid).is_empty());
    assert_eq!(runtime_sandboxes(&pod.uid).iter().filter(|s| s.state == 0).count(), 0, "no sandbox is ready");
}

#[test]
fn host_ip_and_a_host_network_pods_ip_are_the_node_ip() {
    let _serial = serial();
    let mut d = daemon("fieldrefs");
    d.start();
    let env = "    env:\n    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}\n    \
               - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n    \
               - {name: POD_IPS, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}\n";
    d.write_manifest("p.yaml", &(shell_pod("ips", "echo ips $HOST_IP $POD_IP $POD_IPS; sleep 3600", "") + env));
    d.wait_for_running("ips");
    d.wait_until("the container has logged", Duration::from_secs(10), |d| d.cli(&["logs", "ips"]).1.contains("ips "));
    let (_, out, _) = d.cli(&["logs", "ips"]);
    assert_eq!(out.trim(), "ips 127.0.0.1 127.0.0.1 127.0.0.1");
}

#[test]
fn bad_hooks_and_a_stop_signal_are_refused_naming_the_field_and_nothing_runs() {
    let _serial = serial();
    let mut d = daemon("badhooks");
    d.start();
    let manifest = shell_pod("refused", "sleep 3600", "")
        + "    lifecycle: {preStop: {sleep: {seconds: -1}}, postStart: {exec: {command: [a]}, sleep: {seconds: 1}}, stopSignal: SIGUSR1}\n";
    d.write_manifest("refused.yaml", &manifest);
    d.wait_until("the errors are reported", Duration::from_secs(20), |d| !d.status().manifest_errors.is_empty());
    let errors = d.status().manifest_errors.join("\n");
    assert!(errors.contains("spec.containers[0].lifecycle.preStop.sleep.seconds: -1 must be non-negative"), "{errors}");
    assert!(errors.contains("spec.containers[0].lifecycle.postStart: must have exactly one handler"), "{errors}");
    assert!(errors.contains("spec.containers[0].lifecycle.stopSignal: the runtime cannot take it"), "{errors}");
    assert!(d.pod("refused").is_none());
}
