//! The kubelet API through the real API server, for staticlet and for the real kubelet, each
//! registered as its own Node (system:node:<name>, Node,RBAC, NodeRestriction), serving a
//! certificate of the cluster CA, with webhook authentication and authorization (kubeadm's
//! settings), on the same containerd, one after the other:
//! - `kubectl logs --tail 100` of a pod that wrote 5,000 lines, `BENCH_RUNS` times;
//! - `kubectl exec -- true`, `BENCH_RUNS` times;
//! - `kubectl cp` of a 100 MiB file out of a pod, 3 times;
//! - the node's own API requests (TokenReviews, SubjectAccessReviews) per `kubectl logs`, from
//!   the API server's audit log;
//! - the agent's RSS with 100 `kubectl logs -f` open, and the growth over its idle RSS.
//!
//! `cargo bench --bench node_api` after `hack/testenv up --cluster` and `eval "$(hack/testenv env)"`.
//! It prints and records; nothing here asserts.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/kubelet.rs"]
mod kubelet;
#[path = "support/process.rs"]
mod process;
#[path = "support/report.rs"]
mod report;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;
use report::{KUBELET, Report, STATICLET};

const FOLLOWERS: usize = 100;
const BIG_MIB: u64 = 100;

fn kubectl(args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl").args(args).stdin(Stdio::null()).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into())
}

/// The two pods: one that has written 5,000 lines and then one a second; one with a 100 MiB file.
fn write_pods(manifests: &Path) {
    let talker = shell_pod(
        "talker",
        "i=0; while [ $i -lt 5000 ]; do i=$((i+1)); echo line $i of the talker, some text to make it a line; done; \
         while true; do echo tick; sleep 1; done",
        "",
    );
    std::fs::write(manifests.join("talker.yaml"), talker).unwrap();
    let big =
        shell_pod("big", &format!("dd if=/dev/urandom of=/tmp/big bs=1M count={BIG_MIB} 2>/dev/null; sleep 3600"), "");
    std::fs::write(manifests.join("big.yaml"), big).unwrap();
}

fn wait_ready(node: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    for pod in ["talker", "big"] {
        let mirror = format!("{pod}-{node}");
        while kubectl(&["get", "pod", &mirror, "-o", "jsonpath={.status.phase}"]).1 != "Running" {
            assert!(Instant::now() < deadline, "{mirror} not Running within 120 s");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // The talker's 5,000 lines and the big file are written.
    while !kubectl(&["logs", &format!("talker-{node}"), "--tail", "1"]).1.contains("tick")
        || !kubectl(&["exec", &format!("big-{node}"), "--", "sh", "-c", "[ $(wc -c </tmp/big) -eq 104857600 ]"]).0
    {
        assert!(Instant::now() < deadline, "pods of {node} not done writing within 120 s");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn timed(runs: usize, mut f: impl FnMut() -> bool) -> Vec<Duration> {
    (0..runs)
        .filter_map(|_| {
            let t0 = Instant::now();
            f().then(|| t0.elapsed())
        })
        .collect()
}

fn measure(report: &mut Report, system: &str, node: &str, pid: u32, runs: usize, scratch: &Path) {
    let (talker, big) = (format!("talker-{node}"), format!("big-{node}"));
    let user = format!("system:node:{node}");
    let before = cluster::requests_by(&user);
    let logs = timed(runs, || kubectl(&["logs", &talker, "--tail", "100"]).1.lines().count() == 100);
    std::thread::sleep(Duration::from_secs(2)); // the audit log is written in batches
    let reviews = cluster::new_requests(&before, cluster::requests_by(&user));
    let review_count: usize = reviews
        .iter()
        .filter(|(kind, _)| kind.contains("tokenreviews") || kind.contains("subjectaccessreviews"))
        .map(|(_, n)| n)
        .sum();
    println!("{system}: API requests during {} kubectl logs: {reviews:?}", logs.len());
    report.latency("kubectl logs --tail 100", system, &logs);
    report.record(
        "node API reviews per kubectl logs",
        system,
        "requests",
        vec![review_count as f64 / logs.len().max(1) as f64],
    );

    let exec = timed(runs, || kubectl(&["exec", &talker, "--", "true"]).0);
    report.latency("kubectl exec -- true", system, &exec);

    let copy = scratch.join(format!("big-{system}"));
    let cp = timed(3, || {
        let _ = std::fs::remove_file(&copy);
        kubectl(&["cp", &format!("default/{big}:/tmp/big"), &copy.display().to_string()]).0
            && std::fs::metadata(&copy).is_ok_and(|m| m.len() == BIG_MIB << 20)
    });
    report.latency("kubectl cp 100 MiB out", system, &cp);

    let idle = process::rss_mib(pid);
    let mut followers: Vec<std::process::Child> = (0..FOLLOWERS)
        .map(|_| {
            Command::new("kubectl")
                .args(["logs", "-f", &talker, "--tail", "1"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(10));
    let following = process::rss_mib(pid);
    let cpu = process::cpu_percent(pid, Duration::from_secs(10));
    for f in &mut followers {
        let _ = f.kill();
        let _ = f.wait();
    }
    report.record("RSS with 100 kubectl logs -f", system, "MiB", vec![following]);
    report.record("RSS growth for 100 follows", system, "MiB", vec![following - idle]);
    report.record("CPU with 100 follows (1 line/s)", system, "%", vec![cpu]);
}

fn main() {
    let runs = std::env::var("BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(20);
    let mut report = Report::new("node_api");
    report.context("kubernetes", std::env::var("STATICLET_K8S_VERSION").unwrap_or_default());
    report.context("runs", runs);
    let scratch = tempfile::tempdir().unwrap();
    let ca = cluster_pki().join("ca.crt");

    let mut staticlet = Daemon::new("nodeapibench");
    let (crt, key) = serving_cert(staticlet.dir.path(), &staticlet.node);
    staticlet.extra = vec![
        format!("--kubeconfig={}", cluster::node_kubeconfig(&staticlet.node).display()),
        "--node-ip=127.0.0.1".into(),
        format!("--tls-cert-file={}", crt.display()),
        format!("--tls-private-key-file={}", key.display()),
        format!("--client-ca-file={}", ca.display()),
    ];
    write_pods(&staticlet.manifests);
    staticlet.start();
    wait_ready(&staticlet.node);
    measure(&mut report, STATICLET, &staticlet.node.clone(), staticlet.pid(), runs, scratch.path());
    drop(staticlet);

    let node = node_name("nodeapikubelet");
    let certs = tempfile::tempdir().unwrap();
    let (crt, key) = serving_cert(certs.path(), &node);
    let port = free_port();
    let server = format!(
        "authentication: {{x509: {{clientCAFile: {ca}}}, webhook: {{enabled: true}}, anonymous: {{enabled: false}}}}
authorization: {{mode: Webhook}}
port: {port}
tlsCertFile: {crt}
tlsPrivateKeyFile: {key}
",
        ca = ca.display(),
        crt = crt.display(),
        key = key.display()
    );
    match kubelet::Kubelet::start_with(&node, &endpoint(), Some(&cluster::node_kubeconfig(&node)), &server) {
        Some(k) => {
            write_pods(&k.manifests);
            wait_ready(&k.node);
            measure(&mut report, KUBELET, &k.node.clone(), k.pid(), runs, scratch.path());
            let _ = kubectl(&["delete", "node", &k.node, "--wait=false"]);
        }
        None => println!("kubelet: not built or not healthy (run `hack/testenv up --cluster`), skipped"),
    }
    report.finish();
}
