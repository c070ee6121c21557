//! Probes on the real runtime: exec through CRI ExecSync, httpGet and tcpSocket to the pod's IP
//! (the node's on the host network, the sandbox's on the CNI bridge), readiness driving READY,
//! liveness restarting through the normal restart path, and bad probes refused by field.

mod common;

use std::time::Duration;

use common::*;

fn probed_daemon(test: &str) -> Daemon {
    let mut d = Daemon::new(test);
    // Probes of host-network pods go to the node's IP: keep it on loopback.
    d.extra = vec!["--node-ip=127.0.0.1".into()];
    d
}

fn ready(p: &staticlet::ops::view::PodView) -> bool {
    p.containers.first().is_some_and(|c| c.ready)
}

#[test]
fn readiness_exec_probe_drives_ready_both_ways_while_the_container_keeps_running() {
    let _serial = serial();
    let mut d = probed_daemon("readiness");
    d.start();
    let script = "sleep 2; touch /tmp/ready; sleep 4; rm /tmp/ready; sleep 3600";
    let manifest = shell_pod("gated", script, "")
        + "    readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 1, failureThreshold: 2}\n";
    d.write_manifest("gated.yaml", &manifest);

    let first = d.wait_for_pod("gated", "running but not ready", |p| p.status == "Running" && p.ready == "0/1");
    let id = first.containers[0].id.clone();
    d.wait_for_pod("gated", "ready once /tmp/ready exists", |p| p.ready == "1/1" && ready(p));
    d.wait_for_pod("gated", "not ready again once it is gone", |p| p.ready == "0/1" && !ready(p));
    let last = d.pod("gated").unwrap();
    assert_eq!(last.containers[0].id, id, "readiness never restarts a container");
    assert_eq!(last.restarts, 0);
    let (_, table, _) = d.cli(&["get", "pods"]);
    assert!(table.lines().any(|l| l.contains("gated") && l.contains("0/1") && l.contains("Running")), "{table}");
}

#[test]
fn failed_liveness_probe_restarts_the_container_and_counts_it() {
    let _serial = serial();
    let mut d = probed_daemon("liveness");
    d.start();
    // Alive for 3 s after each start, then the probe fails twice and the container is restarted.
    let script = "touch /tmp/alive; sleep 3; rm /tmp/alive; sleep 3600";
    let manifest = shell_pod("mortal", script, "")
        + "    livenessProbe: {exec: {command: [test, -f, /tmp/alive]}, periodSeconds: 1, failureThreshold: 2, terminationGracePeriodSeconds: 1}\n";
    d.write_manifest("mortal.yaml", &manifest);
    let first = d.wait_for_running("mortal");
    let restarted = d.wait_for_pod("mortal", "restarted after its liveness probe failed", |p| p.restarts >= 1);
    assert_ne!(restarted.containers[0].id, first.containers[0].id, "a new container runs");
    assert!(d.log().contains("killing unhealthy container"), "{}", d.log());
    assert_eq!(runtime_sandboxes(&first.uid).len(), 1, "the pod keeps its sandbox: only the container restarts");
}

#[test]
fn http_and_tcp_probes_reach_a_host_network_pod_on_the_node_ip_by_port_name() {
    let _serial = serial();
    let mut d = probed_daemon("netprobes");
    d.start();
    let port = free_port();
    let manifest = web_pod("web", port).replace(
        &format!("    ports: [{{containerPort: {port}}}]\n"),
        &format!(
            "    ports: [{{name: probe-port, containerPort: {port}}}]\n    \
             readinessProbe: {{httpGet: {{path: /passwd, port: probe-port}}, periodSeconds: 1}}\n    \
             livenessProbe: {{tcpSocket: {{port: probe-port}}, periodSeconds: 1}}\n    \
             startupProbe: {{httpGet: {{path: /passwd, port: {port}, httpHeaders: [{{name: X-Probe, value: probed}}]}}, periodSeconds: 1}}\n"
        ),
    );
    d.write_manifest("web.yaml", &manifest);
    let pod = d.wait_for_running("web");
    assert!(ready(&pod));
    // A probe to a path the server does not have fails, and the pod is not ready.
    d.write_manifest(
        "web.yaml",
        &manifest.replace("path: /passwd, port: probe-port", "path: /nothing-here, port: probe-port"),
    );
    d.wait_for_pod("web", "edited, running, and not ready (404)", |p| {
        p.uid != pod.uid && p.status == "Running" && !ready(p)
    });
}

#[test]
fn http_probe_without_a_host_goes_to_the_pod_ip_on_the_pod_network() {
    let _serial = serial();
    let mut d = probed_daemon("podnet");
    d.start();
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: bridged}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: {}\n    command: [httpd, -f, -p, '8080', -h, /etc]\n    readinessProbe: {{httpGet: {{path: /passwd, port: 8080}}, periodSeconds: 1}}\n",
        image()
    );
    d.write_manifest("bridged.yaml", &manifest);
    let pod = d.wait_for_running("bridged");
    assert!(pod.ip.starts_with(&pod_subnet_prefix()), "on the test's CNI bridge: {}", pod.ip);
    assert!(ready(&pod));
}

#[test]
fn a_broken_probe_is_refused_naming_its_field_and_nothing_runs() {
    let _serial = serial();
    let mut d = probed_daemon("badprobe");
    d.start();
    let manifest = shell_pod("broken", "sleep 3600", "")
        + "    livenessProbe: {httpGet: {port: probe-port}}\n    readinessProbe: {exec: {command: [\"true\"]}, tcpSocket: {port: 80}}\n";
    d.write_manifest("broken.yaml", &manifest);
    d.wait_until("the errors are reported", Duration::from_secs(20), |d| {
        let errors = d.status().manifest_errors.join("\n");
        errors.contains("spec.containers[0].livenessProbe.httpGet.port")
            && errors.contains("spec.containers[0].readinessProbe")
    });
    let errors = d.status().manifest_errors.join("\n");
    assert!(errors.contains("no port named \"probe-port\""), "{errors}");
    assert!(errors.contains("exactly one handler"), "{errors}");
    assert!(d.pod("broken").is_none(), "a pod with a broken probe is not run");
}
