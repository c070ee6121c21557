//! The kubelet API as `kubectl` uses it through the API server, for staticlet and for the real
//! kubelet (v1.35.8), each the agent of a kubeadm node made afresh (`hack/testenv kubeadm-node`:
//! kubeadm's control plane and configuration, so both authenticate callers by the cluster CA and
//! TokenReview and authorize them by SubjectAccessReview):
//! - `kubectl logs --tail 100` of a pod that wrote 5,000 lines, `BENCH_RUNS` times;
//! - `kubectl exec -- true`, `BENCH_RUNS` times;
//! - `kubectl cp` of a 100 MiB file out of a pod, 3 times;
//! - the agent's TokenReviews and SubjectAccessReviews over all of it, per kubelet API call
//!   (the API server's apiserver_request_total for those resources: nobody else sends them);
//! - the agent's RSS with 100 `kubectl logs -f` open, its growth over idle, and its CPU then.
//!
//! Each loop runs inside the node (kubectl reaches the API server only there), timed there, so
//! entering the node's namespaces is not counted. kubeadm's API server does not check the
//! node's serving certificate, so both serve their self-signed one.
//!
//! `cargo bench --bench node_api` after `hack/testenv up` and `hack/testenv kubeadm-node up`.
//! BENCH_RUNS (default 20). It prints and records; nothing here asserts.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/process.rs"]
mod process;
#[path = "support/report.rs"]
mod report;

use std::time::Duration;

use common::kubeadm_node::{Agent, KUBELET_EXTRA, KubeadmNode};
use report::{KUBELET, Report, STATICLET};

const FOLLOWERS: usize = 100;
const BIG: u64 = 100 << 20;
const CALLS_PER_RUN: usize = 2; // logs and exec loops
const CP_RUNS: usize = 3;

/// Runs `script` in the node with `K` set to kubectl as the admin; its stdout.
fn sh(node: &KubeadmNode, script: &str) -> String {
    let kubectl = format!("{} --kubeconfig=/etc/kubernetes/admin.conf", node.env["STATICLET_KADM_KUBECTL"]);
    let out = node.exec(&["bash", "-c", &format!("K='{kubectl}'; {script}")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `command` (using $K) run `runs` times in the node, each timed there; failures are left out.
fn timed(node: &KubeadmNode, runs: usize, command: &str) -> Vec<Duration> {
    let script = format!(
        "for i in $(seq {runs}); do t0=$(date +%s%N); if {command} >/dev/null 2>&1; then echo $(( $(date +%s%N) - t0 )); fi; done"
    );
    sh(node, &script).lines().filter_map(|l| l.trim().parse().ok()).map(Duration::from_nanos).collect()
}

fn reviews(node: &KubeadmNode) -> f64 {
    sh(node, "$K get --raw /metrics")
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| l.contains("resource=\"subjectaccessreviews\"") || l.contains("resource=\"tokenreviews\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn pods(image: &str) -> [(&'static str, String); 2] {
    let pod = |name: &str, script: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  hostNetwork: true\n  \
             containers:\n  - name: main\n    image: {image}\n    command: [sh, -c, {script:?}]\n"
        )
    };
    [
        (
            "talker",
            pod(
                "talker",
                "i=0; while [ $i -lt 5000 ]; do i=$((i+1)); echo line $i of the talker, with some text to make it a line; done; \
                 while true; do echo tick; sleep 1; done",
            ),
        ),
        ("big", pod("big", &format!("head -c {BIG} /dev/urandom >/tmp/big; sleep 3600"))),
    ]
}

fn measure(report: &mut Report, system: &str, agent: Agent, runs: usize) -> Result<(), String> {
    let mut node = KubeadmNode::fresh();
    node.start_agent(agent);
    let (ok, out, _) = node.init_with_kubelet_config(if agent == Agent::Kubelet { KUBELET_EXTRA } else { "" });
    if !ok {
        return Err(format!("kubeadm init failed: {out}"));
    }
    for (name, manifest) in pods(&common::image()) {
        node.write_manifest(&format!("/etc/kubernetes/manifests/{name}.yaml"), &manifest);
    }
    let (talker, big) = (format!("talker-{}", node.name), format!("big-{}", node.name));
    let ready = format!(
        "$K logs --tail 1 {talker} 2>/dev/null | grep -q tick && [ \"$($K exec {big} -- sh -c 'wc -c </tmp/big' 2>/dev/null)\" = {BIG} ]"
    );
    node.wait_until("the talker has talked and the big file is written", Duration::from_secs(180), |n| {
        sh(n, &format!("{ready} && echo ready")).contains("ready")
    });
    let before = reviews(&node);
    let logs = timed(&node, runs, &format!("[ $($K logs --tail 100 {talker} | wc -l) -eq 100 ]"));
    report.latency("kubectl logs --tail 100", system, &logs);
    let exec = timed(&node, runs, &format!("$K exec {big} -- true"));
    report.latency("kubectl exec -- true", system, &exec);
    let cp = timed(
        &node,
        CP_RUNS,
        &format!(
            "{{ rm -f /tmp/big-copy; $K cp default/{big}:/tmp/big /tmp/big-copy && [ $(stat -c %s /tmp/big-copy) = {BIG} ]; }}"
        ),
    );
    sh(&node, "rm -f /tmp/big-copy");
    report.latency("kubectl cp 100 MiB out of a pod", system, &cp);
    let calls = runs * CALLS_PER_RUN + CP_RUNS;
    let per_call = (reviews(&node) - before) / calls as f64;
    report.record("token + access reviews per kubelet API call", system, "requests", vec![per_call]);

    let pid = node.agent_pid().ok_or("no agent process")?;
    let idle = process::rss_mib(pid);
    sh(
        &node,
        &format!(
            "for i in $(seq {FOLLOWERS}); do setsid $K logs -f {talker} --tail 1 >/dev/null 2>&1 </dev/null & echo $! >>/tmp/followers; done"
        ),
    );
    std::thread::sleep(Duration::from_secs(10));
    let cpu = process::cpu_percent(pid, Duration::from_secs(10));
    let following = process::rss_mib(pid);
    sh(&node, "kill $(cat /tmp/followers) 2>/dev/null; rm -f /tmp/followers");
    report.record("agent RSS with 100 kubectl logs -f", system, "MiB", vec![following]);
    report.record("agent RSS growth for 100 follows", system, "MiB", vec![following - idle]);
    report.record("agent CPU with 100 follows (1 line/s)", system, "% of a core", vec![cpu]);
    node.stop_agent();
    Ok(())
}

fn main() {
    let runs = std::env::var("BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(20);
    let mut report = Report::new("node_api");
    report.context("kubernetes", "v1.35.8");
    report.context("runs", runs);
    let _serial = common::serial();
    for (system, agent) in [(STATICLET, Agent::Staticlet), (KUBELET, Agent::Kubelet)] {
        if let Err(e) = measure(&mut report, system, agent, runs) {
            eprintln!("{system}: {e}");
        }
    }
    report.finish();
}
