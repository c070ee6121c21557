//! Standalone static pods against the real private containerd (`hack/testenv up`).
//! Each test is a behaviour from the README, named as the behaviour it pins.

mod common;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use common::*;

#[test]
fn manifest_written_runs_pod_with_kubelet_labels_and_serves_on_host_port() {
    let _serial = serial();
    let mut d = Daemon::new("written");
    d.start();
    let port = free_port();
    d.write_manifest("web.yaml", &web_pod("static-web", port));
    let pod = d.wait_for_running("static-web");
    assert_eq!(pod.ready, "1/1");
    assert_eq!(pod.restarts, 0);
    assert_eq!(pod.source, format!("file:{}/web.yaml", d.manifests.display()));

    let (code, body) = http_get_addr(&format!("127.0.0.1:{port}"), "/hostname").unwrap();
    assert_eq!(code, 200, "{body}");

    let sandboxes = runtime_sandboxes(&pod.uid);
    assert_eq!(sandboxes.len(), 1);
    let labels = &sandboxes[0].labels;
    assert_eq!(labels["io.kubernetes.pod.name"], format!("static-web-{}", d.node));
    assert_eq!(labels["io.kubernetes.pod.namespace"], "default");
    assert_eq!(labels["io.kubernetes.pod.uid"], pod.uid);
    assert_eq!(labels["role"], "myrole");
    let containers = runtime_containers(&pod.uid);
    assert_eq!(containers[0].labels["io.kubernetes.container.name"], "web");

    let (ok, out, err) = d.cli(&["get", "pods"]);
    assert!(ok, "{err}");
    let row = out.lines().find(|l| l.contains("static-web")).unwrap_or_else(|| panic!("{out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..5], ["default", &format!("static-web-{}", d.node), "1/1", "Running", "0"], "{out}");
}

#[test]
fn container_killed_from_outside_is_restarted_and_counted() {
    let _serial = serial();
    let mut d = Daemon::new("killed");
    d.start();
    d.write_manifest("web.yaml", &web_pod("static-web", free_port()));
    let pod = d.wait_for_running("static-web");
    let before = running_container_ids(&pod.uid);
    assert_eq!(before.len(), 1);
    block_on(async { runtime().stop_container(&before[0], Duration::ZERO).await.unwrap() });

    let after = d.wait_for_pod("static-web", "restarted once", |p| p.restarts == 1 && p.status == "Running");
    let now_running = running_container_ids(&after.uid);
    assert_eq!(now_running.len(), 1);
    assert_ne!(now_running, before);
    let restarted = runtime_containers(&after.uid).into_iter().find(|c| c.id == now_running[0]).unwrap();
    assert_eq!(restarted.metadata.unwrap().attempt, 1);

    // kubelet's metrics tell the same story: one sandbox, two container starts, one restart.
    assert_eq!(d.metric("kubelet_running_pods"), 1.0);
    assert_eq!(d.metric(r#"kubelet_running_containers{container_state="running"}"#), 1.0);
    assert_eq!(d.metric("kubelet_started_pods_total"), 1.0);
    assert_eq!(d.metric(r#"kubelet_started_containers_total{container_type="container"}"#), 2.0);
    assert_eq!(d.metric("staticlet_container_restarts_total"), 1.0);
    assert_eq!(d.metric("kubelet_pod_start_duration_seconds_count"), 1.0, "the restart is not a second pod start");
    assert_eq!(d.metric(r#"kubelet_runtime_operations_total{operation_type="run_podsandbox"}"#), 1.0);
    assert!(d.metric(r#"kubelet_runtime_operations_total{operation_type="list_containers"}"#) >= 2.0);
    assert_eq!(d.metric("kubelet_mirror_pods"), 0.0, "standalone: no mirrors");
}

#[test]
fn removed_manifest_stops_its_pod_and_restoring_it_runs_the_pod_again() {
    let _serial = serial();
    let mut d = Daemon::new("removed");
    d.start();
    let path = d.write_manifest("web.yaml", &web_pod("static-web", free_port()));
    let pod = d.wait_for_running("static-web");
    let aside = d.dir.path().join("web.yaml");
    std::fs::rename(&path, &aside).unwrap();
    d.wait_until("the pod is gone from the runtime", Duration::from_secs(30), |_| {
        runtime_sandboxes(&pod.uid).is_empty()
    });
    assert!(d.pod("static-web").is_none());
    std::fs::rename(&aside, &path).unwrap();
    let back = d.wait_for_running("static-web");
    assert_eq!(back.uid, pod.uid, "same manifest, same node, same path: same UID");
    assert_eq!(d.metric(r#"kubelet_restarted_pods_total{static="true"}"#), 1.0, "kubelet's meaning of a restarted pod");
    assert_eq!(d.metric("kubelet_started_pods_total"), 2.0);
}

#[test]
fn edited_manifest_stops_the_old_pod_gracefully_before_the_new_one_starts() {
    let _serial = serial();
    let mut d = Daemon::new("edited");
    d.start();
    let journal = d.dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    // Each version appends to a shared hostPath file when it starts and when it gets SIGTERM,
    // so the file's order shows whether the old version was stopped (gracefully) first.
    let version = |v: &str| {
        shell_pod(
            "edited",
            &format!(
                "trap 'echo {v} term >> /j/log; exit 0' TERM; echo {v} start >> /j/log; while true; do sleep 0.2; done"
            ),
            &format!("  volumes: [{{name: j, hostPath: {{path: {}}}}}]\n", journal.display()),
        )
        .replace("    command:", "    volumeMounts: [{name: j, mountPath: /j}]\n    command:")
    };
    d.write_manifest("p.yaml", &version("v1"));
    let v1 = d.wait_for_running("edited");
    d.write_manifest("p.yaml", &version("v2"));
    let v2 = d.wait_for_pod("edited", "running its second version", |p| p.status == "Running" && p.uid != v1.uid);
    d.wait_until("v2 has written its start line", Duration::from_secs(10), |_| {
        std::fs::read_to_string(journal.join("log")).unwrap_or_default().contains("v2 start")
    });
    let log = std::fs::read_to_string(journal.join("log")).unwrap();
    assert_eq!(log.lines().collect::<Vec<_>>(), ["v1 start", "v1 term", "v2 start"]);
    assert!(runtime_sandboxes(&v1.uid).is_empty(), "the old version's sandbox is removed");
    assert_eq!(runtime_sandboxes(&v2.uid).len(), 1);
}

#[test]
fn broken_manifest_keeps_the_last_good_pod_running_and_reports_the_error() {
    let _serial = serial();
    let mut d = Daemon::new("broken");
    d.start();
    let path = d.write_manifest("web.yaml", &web_pod("static-web", free_port()));
    let pod = d.wait_for_running("static-web");
    let containers = running_container_ids(&pod.uid);
    std::fs::write(&path, "apiVersion: v1\nkind: Pod\nmetadata:\n\tname: web\n").unwrap();
    d.wait_until("the error is reported", Duration::from_secs(20), |d| {
        d.status().manifest_errors.iter().any(|e| e.contains("web.yaml: line 4"))
    });
    let series = format!(r#"staticlet_manifest_errors{{location="{}"}}"#, path.display());
    assert_eq!(d.metric(&series), 1.0, "one error series, named by the file");
    // Two full rescans later (fileCheckFrequency is 2s), each reading the broken file again, the
    // pod is still the same pod.
    let rescans = r#"staticlet_manifest_dir_scans_total{trigger="period"}"#;
    let before = d.metric(rescans);
    d.wait_until("two full rescans have run", Duration::from_secs(20), |d| d.metric(rescans) >= before + 2.0);
    let still = d.pod("static-web").expect("the pod is still listed");
    assert_eq!(still.uid, pod.uid);
    assert_eq!(still.status, "Running");
    assert!(still.manifest_error.is_some());
    assert_eq!(running_container_ids(&pod.uid), containers, "no container was restarted");
    let (_, out, _) = d.cli(&["get", "pods"]);
    assert!(out.contains("PROBLEMS") && out.contains("line 4"), "{out}");
}

#[test]
fn restart_policies_decide_what_happens_after_exit() {
    let _serial = serial();
    let mut d = Daemon::new("policies");
    d.start();
    d.write_manifest("never.yaml", &shell_pod("never", "exit 0", "  restartPolicy: Never\n"));
    d.write_manifest("onfailure-ok.yaml", &shell_pod("onfailure-ok", "exit 0", "  restartPolicy: OnFailure\n"));
    d.write_manifest("onfailure-bad.yaml", &shell_pod("onfailure-bad", "exit 3", "  restartPolicy: OnFailure\n"));
    d.write_manifest("never-bad.yaml", &shell_pod("never-bad", "exit 1", "  restartPolicy: Never\n"));
    d.write_manifest("always.yaml", &shell_pod("always", "exit 0", ""));

    d.wait_for_pod("never", "Completed", |p| p.status == "Completed");
    d.wait_for_pod("onfailure-ok", "Completed", |p| p.status == "Completed");
    d.wait_for_pod("never-bad", "Error", |p| p.status == "Error");
    // Failing and always-restarting pods restart once at once, then back off (10 s).
    let failing = d.wait_for_pod("onfailure-bad", "in CrashLoopBackOff", |p| p.status == "CrashLoopBackOff");
    assert!(failing.restarts >= 1);
    let always = d.wait_for_pod("always", "in CrashLoopBackOff", |p| p.status == "CrashLoopBackOff");
    assert!(always.restarts >= 1);
    for name in ["never", "onfailure-ok", "never-bad"] {
        assert_eq!(d.pod(name).unwrap().restarts, 0, "{name} must not restart");
    }
    let exit = d.pod("never-bad").unwrap().containers[0].exit_code;
    assert_eq!(exit, Some(1));
}

#[test]
fn restarted_staticlet_adopts_running_pods_without_restarting_them() {
    let _serial = serial();
    let mut d = Daemon::new("adopt");
    d.start();
    d.write_manifest("web.yaml", &web_pod("static-web", free_port()));
    let pod = d.wait_for_running("static-web");
    let containers = running_container_ids(&pod.uid);
    let sandboxes: Vec<String> = runtime_sandboxes(&pod.uid).into_iter().map(|s| s.id).collect();

    d.stop();
    assert_eq!(running_container_ids(&pod.uid), containers, "SIGTERM to staticlet stops no pod");

    d.start();
    let adopted = d.wait_for_running("static-web");
    assert_eq!(adopted.uid, pod.uid);
    assert_eq!(adopted.restarts, 0);
    assert_eq!(running_container_ids(&pod.uid), containers, "the same container keeps running");
    let after: Vec<String> = runtime_sandboxes(&pod.uid).into_iter().map(|s| s.id).collect();
    assert_eq!(after, sandboxes);
    assert!(d.log().contains("adopted running pod"), "{}", d.log());
}

#[test]
fn manifests_removed_or_edited_while_staticlet_was_down_are_reconciled_at_start() {
    let _serial = serial();
    let mut d = Daemon::new("offline");
    d.start();
    let gone = d.write_manifest("gone.yaml", &web_pod("gone", free_port()));
    d.write_manifest("edit.yaml", &shell_pod("edit", "sleep 3600", ""));
    let gone_pod = d.wait_for_running("gone");
    let edit_pod = d.wait_for_running("edit");
    d.stop();

    std::fs::remove_file(gone).unwrap();
    d.write_manifest("edit.yaml", &shell_pod("edit", "sleep 3601", ""));
    d.start();
    let edited = d.wait_for_pod("edit", "running its new version", |p| p.status == "Running" && p.uid != edit_pod.uid);
    d.wait_until("the removed and the old pods are gone from the runtime", Duration::from_secs(30), |_| {
        runtime_sandboxes(&gone_pod.uid).is_empty() && runtime_sandboxes(&edit_pod.uid).is_empty()
    });
    assert_eq!(runtime_sandboxes(&edited.uid).len(), 1);
}

#[test]
fn container_logs_are_cri_files_that_staticlet_logs_reads() {
    let _serial = serial();
    let mut d = Daemon::new("logs");
    d.start();
    d.write_manifest("talk.yaml", &shell_pod("talk", "echo one; echo two >&2; sleep 0.5; echo three; sleep 3600", ""));
    let pod = d.wait_for_running("talk");
    let file = d.logs.join(format!("default_talk-{}_{}", d.node, pod.uid)).join("main/0.log");
    d.wait_until("three lines are logged", Duration::from_secs(10), |_| {
        std::fs::read_to_string(&file).unwrap_or_default().lines().count() == 3
    });
    let content = std::fs::read_to_string(&file).unwrap();
    // stdout and stderr are separate pipes: their lines interleave in no fixed order.
    let line = content.lines().find(|l| l.contains(" stderr ")).unwrap();
    let fields: Vec<&str> = line.splitn(4, ' ').collect();
    assert!(fields[0].parse::<jiff::Timestamp>().is_ok(), "RFC 3339 timestamp: {}", fields[0]);
    assert_eq!(&fields[1..], ["stderr", "F", "two"]);

    let (ok, out, err) = d.cli(&["logs", "talk"]);
    assert!(ok, "{err}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["one", "three", "two"]);
    let (_, out, _) = d.cli(&["logs", &format!("talk-{}", d.node), "--tail", "1", "-c", "main"]);
    assert_eq!(out, "three\n");
    let (ok, _, err) = d.cli(&["logs", "nope"]);
    assert!(!ok && err.contains("no pod named \"nope\""), "{err}");
}

/// The number at the start of a CRI log line's content (`line <n> ...`).
fn line_number(cri_line: &str) -> Option<u64> {
    cri_line.splitn(4, ' ').nth(3)?.strip_prefix("line ")?.split(' ').next()?.parse().ok()
}

#[test]
fn a_chatty_containers_log_is_rotated_kept_to_max_files_and_reopened() {
    let _serial = serial();
    let mut d = Daemon::new("rotate");
    d.extra = ["--container-log-max-size=16Ki", "--container-log-max-files=3", "--container-log-monitor-interval=1s"]
        .map(String::from)
        .to_vec();
    d.start();
    // About 20 KiB a second, in bursts, forking only for the sleep.
    let script = "pad=$(printf '%0200d' 0); i=0; while true; do for j in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 \
                  19 20; do i=$((i+1)); echo \"line $i $pad\"; done; sleep 0.2; done";
    d.write_manifest("chatty.yaml", &shell_pod("chatty", script, ""));
    let pod = d.wait_for_running("chatty");
    // `staticlet logs -f` from the start, read on a thread while the rotations below happen.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_staticlet"))
        .args(["logs", "-f", "chatty"])
        .arg(format!("--pod-logs-dir={}", d.logs.display()))
        .arg(format!("--node-name={}", d.node))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let followed = {
        let out = follow.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            std::io::BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("line ")?.split(' ').next()?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
    };
    let dir = d.logs.join(format!("default_chatty-{}_{}", d.node, pod.uid)).join("main");
    let current = dir.join("0.log");
    let rotated = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
            })
            .unwrap_or_default();
        names.retain(|n| n.starts_with("0.log."));
        names.sort();
        names
    };
    d.wait_until("a rotated file is gzipped (a second rotation)", Duration::from_secs(30), |_| {
        rotated().iter().any(|n| n.ends_with(".gz"))
    });
    for name in rotated() {
        let stamp = name.trim_start_matches("0.log.").trim_end_matches(".gz").trim_end_matches(".tmp");
        assert!(jiff::fmt::strtime::parse("%Y%m%d-%H%M%S", stamp).is_ok(), "{name}");
    }

    // Rotations go on; the rotated files never number more than maxFiles - 1 (a file and its
    // `.gz` are one while it is being compressed), and the file at the log path keeps growing.
    let start = std::time::Instant::now();
    let mut last = 0;
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 5 {
        assert!(start.elapsed() < Duration::from_secs(60), "rotations go on: {seen:?}");
        let names = rotated();
        let stamps: std::collections::BTreeSet<&str> =
            names.iter().map(|n| n.trim_end_matches(".tmp").trim_end_matches(".gz")).collect();
        assert!(stamps.len() <= 2, "at most 2 rotated files with --container-log-max-files=3: {names:?}");
        seen.extend(stamps.into_iter().map(String::from));
        if let Some(n) = std::fs::read_to_string(&current).unwrap_or_default().lines().last().and_then(line_number) {
            last = last.max(n);
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // The current file is the runtime's fresh one: it starts where the last rotated one ended,
    // and it still receives the container's new lines.
    let first = || std::fs::read_to_string(&current).unwrap_or_default().lines().next().and_then(line_number);
    d.wait_until("0.log (just reopened, perhaps) has lines after line 1", Duration::from_secs(10), |_| {
        first().is_some_and(|n| n > 1)
    });
    d.wait_until("the current log receives new lines", Duration::from_secs(10), |_| {
        std::fs::read_to_string(&current).unwrap_or_default().lines().last().and_then(line_number) > Some(last)
    });
    // The follower went through every rotation above without losing or repeating a line.
    let _ = follow.kill();
    let _ = follow.wait();
    let numbers = followed.join().unwrap();
    assert!(numbers.len() > 200 && numbers[0] == 1, "followed {} lines from line {:?}", numbers.len(), numbers.first());
    let broken: Vec<_> = numbers.windows(2).filter(|w| w[1] != w[0] + 1).collect();
    assert!(broken.is_empty(), "`logs -f` across rotations skipped or repeated lines: {broken:?}");
    // Between a rename and its reopen there is no 0.log for a moment: `logs` may miss it then.
    d.wait_until("staticlet logs reads the current file", Duration::from_secs(10), |d| {
        let (ok, out, _) = d.cli(&["logs", "chatty", "--tail", "1"]);
        ok && out.starts_with("line ") && out.lines().count() == 1
    });
}

#[test]
fn directory_skips_leftovers_and_refuses_bad_files_with_named_errors() {
    let _serial = serial();
    let mut d = Daemon::new("baddir");
    d.start();
    let port = free_port();
    d.write_manifest("web.yaml", &web_pod("static-web", port));
    // A backup that would win under kubelet, a swap file, a dotfile: all skipped.
    std::fs::write(d.manifests.join("web.yaml.bak"), web_pod("static-web-bak", port)).unwrap();
    std::fs::write(d.manifests.join(".web.yaml.swp"), [0u8, 1, 2]).unwrap();
    std::fs::write(d.manifests.join("web.yaml~"), web_pod("tilde", port)).unwrap();
    std::fs::create_dir(d.manifests.join("sub.yaml")).unwrap();
    // Bad ones, each reported by name.
    std::fs::write(d.manifests.join("deploy.yaml"), "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
        .unwrap();
    std::fs::write(
        d.manifests.join("noname.yaml"),
        "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: c, image: i:1}]}\n",
    )
    .unwrap();
    std::fs::write(d.manifests.join("big.yaml"), vec![b'#'; 11 * 1024 * 1024]).unwrap();
    std::fs::write(d.manifests.join("binary.json"), [0x7f, b'E', b'L', b'F', 0, 1]).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target.yaml", d.manifests.join("dangling.yaml")).unwrap();
    std::fs::write(d.manifests.join("zz-dup.yaml"), web_pod("static-web", port + 1)).unwrap();

    d.wait_for_running("static-web");
    let m = d.manifests.display().to_string();
    let expected = [
        format!("{m}/deploy.yaml: document 1: a apps/v1 Deployment is not a static pod"),
        format!("{m}/noname.yaml: document 1: metadata.name: required"),
        format!("{m}/big.yaml: 11534336 bytes is over the 10485760-byte limit"),
        format!("{m}/binary.json: not a text file"),
        format!("{m}/dangling.yaml: cannot read: dangling symlink"),
        format!("{m}/zz-dup.yaml: pod default/static-web-{} is already defined by {m}/web.yaml", d.node),
    ];
    d.wait_until("every bad file is reported", Duration::from_secs(20), |d| {
        let errors = d.status().manifest_errors;
        expected.iter().all(|e| errors.iter().any(|x| x.starts_with(e.as_str())))
    });
    // Two full rescans more, so "logged once" below means once over several scans.
    let rescans = r#"staticlet_manifest_dir_scans_total{trigger="period"}"#;
    let before = d.metric(rescans);
    d.wait_until("two full rescans have run", Duration::from_secs(20), |d| d.metric(rescans) >= before + 2.0);
    let status = d.status();
    assert_eq!(status.pods.len(), 1, "only web.yaml defines a pod: {:#?}", status.pods);
    assert_eq!(status.pods[0].source, format!("file:{m}/web.yaml"));
    let log = d.log();
    for skipped in ["web.yaml.bak", ".web.yaml.swp", "web.yaml~", "sub.yaml"] {
        assert_eq!(log.matches(&format!("{m}/{skipped}")).count(), 1, "{skipped} is logged once:\n{log}");
    }
}

#[test]
fn pod_network_volumes_and_env_reach_the_container() {
    let _serial = serial();
    let mut d = Daemon::new("network");
    d.start();
    let host_dir = d.dir.path().join("host");
    std::fs::create_dir(&host_dir).unwrap();
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: net}}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {{name: host, hostPath: {{path: {host}}}}}
  - {{name: scratch, emptyDir: {{}}}}
  containers:
  - name: web
    image: {image}
    workingDir: /scratch
    env:
    - {{name: GREETING, value: hello}}
    - name: MY_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    - name: MY_IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
    - name: MY_MEMORY_MI
      valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}
    resources: {{limits: {{memory: 48Mi}}}}
    command: [sh, -c]
    args: ["echo $(GREETING) $MY_NAME $MY_IP $MY_MEMORY_MI > /host/env; pwd > /host/pwd; echo ok > index.html; httpd -f -p 8080 -h /scratch"]
    ports: [{{containerPort: 8080}}]
    volumeMounts:
    - {{name: host, mountPath: /host}}
    - {{name: scratch, mountPath: /scratch}}
"#,
        host = host_dir.display(),
        image = image()
    );
    d.write_manifest("net.yaml", &manifest);
    let pod = d.wait_for_running("net");
    assert!(pod.ip.starts_with(&pod_subnet_prefix()), "pod IP from the test CNI bridge: {:?}", pod.ip);
    d.wait_until("the container wrote its environment", Duration::from_secs(10), |_| host_dir.join("pwd").exists());
    let env = std::fs::read_to_string(host_dir.join("env")).unwrap();
    assert_eq!(env.trim(), format!("hello net-{} {} 48", d.node, pod.ip));
    assert_eq!(std::fs::read_to_string(host_dir.join("pwd")).unwrap().trim(), "/scratch");
    // The pod is our own, on the test bridge: one bounded request to its IP.
    d.wait_until("httpd answers on the pod IP", Duration::from_secs(10), |_| {
        http_get_addr(&format!("{}:8080", pod.ip), "/index.html")
            .is_ok_and(|(code, body)| code == 200 && body == "ok\n")
    });
}

#[test]
fn dead_runtime_is_reported_and_staticlet_converges_when_it_returns() {
    let _serial = serial();
    let mut d = Daemon::new("deadruntime");
    let socket = d.dir.path().join("cri.sock");
    d.endpoint = format!("unix://{}", socket.display());
    d.start();
    d.write_manifest("web.yaml", &web_pod("static-web", free_port()));
    d.wait_until("the missing runtime is reported", Duration::from_secs(20), |d| {
        d.status()
            .runtime_error
            .is_some_and(|e| e.contains(&socket.display().to_string()) || e.contains("ListPodSandbox"))
    });
    assert_eq!(http_get_addr(&format!("127.0.0.1:{}", d.status_port), "/readyz").unwrap().0, 503);
    assert!(d.exit_status().is_none(), "staticlet keeps running without a runtime");
    // The runtime appears at that path: a symlink to the real socket.
    let real = endpoint().trim_start_matches("unix://").to_owned();
    std::os::unix::fs::symlink(real, &socket).unwrap();
    d.wait_for_running("static-web");
    d.wait_until("ready", Duration::from_secs(20), |d| {
        http_get_addr(&format!("127.0.0.1:{}", d.status_port), "/readyz").unwrap().0 == 200
    });
    assert!(d.status().runtime_error.is_none());
}

#[test]
fn containers_survive_a_containerd_restart_and_are_not_restarted() {
    let _serial = serial();
    let mut d = Daemon::new("crirestart");
    d.start();
    d.write_manifest("web.yaml", &web_pod("static-web", free_port()));
    let pod = d.wait_for_running("static-web");
    let containers = running_container_ids(&pod.uid);

    testenv(&["stop-runtime"]);
    d.wait_until("the dead runtime is reported", Duration::from_secs(20), |d| d.status().runtime_error.is_some());
    let (_, out, _) = d.cli(&["get", "pods"]);
    assert!(out.contains("container runtime:"), "{out}");
    testenv(&["restart-runtime"]);

    d.wait_until("the runtime is back", Duration::from_secs(30), |d| d.status().runtime_error.is_none());
    let after = d.wait_for_running("static-web");
    assert_eq!(after.restarts, 0);
    assert_eq!(running_container_ids(&pod.uid), containers, "the same container runs on");
    if runtime_has_events() {
        // The event stream died with containerd: relisting every second meanwhile, followed
        // again once it is back, with one line for the loss.
        d.wait_until("container events are followed again", Duration::from_secs(60), |d| {
            d.metric("staticlet_container_events_followed") == 1.0
        });
        let log = d.log();
        assert_eq!(log.matches("container event stream lost").count(), 1, "{log}");
        assert!(log.contains("following the runtime's container events again"), "{log}");
    }
}

#[test]
fn bad_config_is_refused_naming_the_field_and_stops_nothing() {
    let _serial = serial();
    let d = Daemon::new("badconfig");
    let config = d.dir.path().join("config.yaml");
    std::fs::write(&config, "staticPodPth: /etc/kubernetes/manifests\n").unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_staticlet")).arg(format!("--config={}", config.display())).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("staticPodPth") && stderr.contains("config.yaml"), "{stderr}");
}

#[test]
fn manifest_written_in_place_in_pieces_is_not_reported_broken() {
    let _serial = serial();
    let mut d = Daemon::new("inplace");
    d.start();
    let manifest = web_pod("static-web", free_port());
    let (head, tail) = manifest.split_at(manifest.len() / 2);
    let path = d.manifests.join("web.yaml");
    let mut file = std::fs::File::create(&path).unwrap();
    std::io::Write::write_all(&mut file, head.as_bytes()).unwrap();
    file.sync_all().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::io::Write::write_all(&mut file, tail.as_bytes()).unwrap();
    drop(file);
    d.wait_for_running("static-web");
    assert!(!d.log().contains("ERROR"), "a half-written file must not be reported:\n{}", d.log());
}

#[test]
fn daemon_run_in_process_stops_when_its_token_is_cancelled_and_leaves_its_pods_running() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let node = node_name("inprocess");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("web.yaml"), web_pod("static-web", free_port())).unwrap();
    let port = free_port();
    let yaml = format!(
        "staticPodPath: {}\nnodeName: {node}\ncontainerRuntimeEndpoint: {}\npodLogsDir: {}\nrootDir: {}\nstatusAddress: 127.0.0.1:{port}\n",
        manifests.display(),
        endpoint(),
        dir.path().join("logs").display(),
        dir.path().join("root").display(),
    );
    let file = staticlet::config::ConfigFile::parse("inprocess.yaml", &yaml).unwrap().file;
    let config = staticlet::config::Config::resolve(file, Default::default(), || "unused".into()).unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let daemon = tokio.spawn(staticlet::daemon::run(config, shutdown.clone()));

    let uid = wait_for(Duration::from_secs(30), || {
        let body = http_get(port, "/pods").ok()?;
        let status: staticlet::ops::server::LocalStatus = serde_json::from_str(&body).ok()?;
        let pod = status.pods.into_iter().find(|p| p.name == format!("static-web-{node}"))?;
        (pod.status == "Running").then_some(pod.uid)
    })
    .expect("the in-process daemon runs the pod");
    let containers = running_container_ids(&uid);

    shutdown.cancel();
    let result = tokio.block_on(async { tokio::time::timeout(Duration::from_secs(15), daemon).await });
    let returned = result.expect("daemon::run returns within 15 s of its token being cancelled");
    returned.unwrap().unwrap();
    assert!(http_get(port, "/healthz").is_err(), "the status API is closed");
    assert_eq!(running_container_ids(&uid), containers, "stopping staticlet stops no pod");
    remove_node_pods(&node);
}
