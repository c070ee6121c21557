//! kubeadm's control plane under staticlet and under the real kubelet (v1.35.8), one after the
//! other on a node made afresh for each run (`hack/testenv kubeadm-node`: its own containerd,
//! the same images and kubeadm configuration), the agent run with kubeadm's drop-in flags:
//! - `kubeadm init` wall time;
//! - the agent started (its files in place, no pod running) -> kube-apiserver /readyz ok;
//! - etcd's manifest edited (a flag added) -> the new etcd answers its /readyz;
//! - kube-apiserver's manifest edited -> the new kube-apiserver answers /readyz;
//! - the agent's CPU and RSS while it runs the control plane (BENCH_WINDOW_S).
//!
//! `cargo bench --bench kubeadm` after `hack/testenv up` and `hack/testenv kubeadm-node up`.
//! BENCH_RUNS (runs per system, default 3), BENCH_WINDOW_S (default 60), BENCH_SYSTEMS (default
//! "staticlet,kubelet"). It prints and records; nothing here asserts.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/process.rs"]
mod process;
#[path = "support/report.rs"]
mod report;

use std::time::{Duration, Instant};

use common::kubeadm_node::{Agent, KUBELET_EXTRA, KubeadmNode, cmdline};
use report::{KUBELET, Report, STATICLET};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Default)]
struct Figures {
    init: Vec<Duration>,
    start_to_readyz: Vec<Duration>,
    etcd_edit: Vec<Duration>,
    apiserver_edit: Vec<Duration>,
    cpu: Vec<f64>,
    rss: Vec<f64>,
}

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 3);
    let window: u64 = env_or("BENCH_WINDOW_S", 60);
    let systems: String = env_or("BENCH_SYSTEMS", "staticlet,kubelet".to_owned());
    let mut report = Report::new("kubeadm");
    report.context("kubernetes", "v1.35.8");
    report.context("window_s", window);
    let _serial = common::serial();
    for (name, agent) in [(STATICLET, Agent::Staticlet), (KUBELET, Agent::Kubelet)] {
        if !systems.contains(name) {
            continue;
        }
        let mut figures = Figures::default();
        for run in 0..runs {
            if let Err(e) = measure(agent, &mut figures, Duration::from_secs(window), run == 0) {
                eprintln!("{name}, run {run}: {e}");
            }
        }
        report.latency("kubeadm init", name, &figures.init);
        report.latency("agent start -> kube-apiserver /readyz", name, &figures.start_to_readyz);
        report.latency("etcd manifest edited -> etcd ready", name, &figures.etcd_edit);
        report.latency("apiserver manifest edited -> /readyz", name, &figures.apiserver_edit);
        report.record("agent CPU running the control plane", name, "% of a core", figures.cpu);
        report.record("agent RSS running the control plane", name, "MiB", figures.rss);
    }
    report.finish();
}

fn curl_ok(node: &KubeadmNode, url: &str) -> bool {
    let out = node.exec(&["curl", "-skf", "--max-time", "2", url]);
    out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok"
}

/// Waits (bounded) for `check`, polling every 50 ms; the time it took.
fn time_until(limit: Duration, mut check: impl FnMut() -> bool) -> Result<Duration, String> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if check() {
            return Ok(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("not within {limit:?}"))
}

/// Adds `flag` to a component's command in its manifest; returns when the new process with it
/// answers `url` with ok.
fn edit(node: &KubeadmNode, component: &str, flag: &str, url: &str) -> Result<Duration, String> {
    let t0 = Instant::now();
    node.add_flag(component, flag);
    time_until(Duration::from_secs(180), || {
        node.process(component).is_some_and(|p| cmdline(p).contains(flag)) && curl_ok(node, url)
    })
    .map(|_| t0.elapsed())
    .map_err(|e| format!("{component} edited: {e}"))
}

fn measure(agent: Agent, figures: &mut Figures, window: Duration, footprint: bool) -> Result<(), String> {
    let mut node = KubeadmNode::fresh();
    let readyz = format!("https://{}:6443/readyz", node.address);
    node.start_agent(agent);
    let extra = if agent == Agent::Kubelet { KUBELET_EXTRA } else { "" };
    let (ok, out, took) = node.init_with_kubelet_config(extra);
    if !ok {
        return Err(format!("kubeadm init failed:\n{out}\n--- agent ---\n{}", node.agent_log()));
    }
    figures.init.push(took);
    time_until(Duration::from_secs(120), || curl_ok(&node, &readyz))?;

    // The agent started again with its files in place and no pod running: a node's reboot.
    node.stop_agent();
    let crictl = format!("{}/crictl", node.env["STATICLET_KADM_KUBE_BIN"].rsplit_once("/k8s-").unwrap().0);
    let endpoint = node.env["STATICLET_KADM_CRI_ENDPOINT"].clone();
    let out = node.exec(&[&crictl, "--runtime-endpoint", &endpoint, "rmp", "-af"]);
    if !out.status.success() {
        return Err(format!("crictl rmp: {}", String::from_utf8_lossy(&out.stderr)));
    }
    time_until(Duration::from_secs(30), || !curl_ok(&node, &readyz))?;
    let t0 = Instant::now();
    node.start_agent(agent);
    time_until(Duration::from_secs(180), || curl_ok(&node, &readyz)).map_err(|e| format!("restart: {e}"))?;
    figures.start_to_readyz.push(t0.elapsed());

    figures.etcd_edit.push(edit(&node, "etcd", "--log-level=info", "http://127.0.0.1:2381/readyz")?);
    figures.apiserver_edit.push(edit(&node, "kube-apiserver", "--event-ttl=2h0m0s", &readyz)?);

    if footprint {
        std::thread::sleep(Duration::from_secs(10));
        let pid = node.agent_pid().ok_or("the agent is not running")?;
        figures.cpu.push(process::cpu_percent(pid, window));
        figures.rss.push(process::rss_mib(pid));
    }
    node.stop_agent();
    Ok(())
}
