//! Probes, for staticlet and for the real kubelet, each registered as its own Node on the real
//! control plane, one after the other on the same containerd, measured from the outside:
//! - a readiness probe starts failing (its file removed through CRI ExecSync) -> the mirror's
//!   Ready condition is False in the API (period 1 s, failureThreshold 1; 10 runs);
//! - a liveness probe starts failing -> a new container is running (period 1 s, failureThreshold 1;
//!   seen through CRI; a fresh pod per run, so no back-off is in the figure; 5 runs);
//! - a pod with a startup and a readiness probe (kubeadm's shape: httpGet on a named port, periods
//!   1 s) written -> Ready True in the API (5 runs);
//! - CPU and RSS at rest with 100 pods, each with an exec liveness probe (period 10 s) and an
//!   httpGet readiness probe (period 1 s): the agent's, and containerd's (where exec probes cost).
//!
//! `cargo bench --bench probes` after `hack/testenv up --cluster` and `eval "$(hack/testenv env)"`.
//! BENCH_RUNS (readiness runs, default 10), BENCH_WINDOW_S (default 60), BENCH_PODS (default 100),
//! BENCH_SYSTEMS (default "staticlet,kubelet"). It prints and records; nothing here asserts.

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
    time::{Duration, Instant},
};

use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use report::{KUBELET, Report, STATICLET};
use staticlet::cri::api::ContainerState;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 10);
    let window: u64 = env_or("BENCH_WINDOW_S", 60);
    let pods: usize = env_or("BENCH_PODS", 100);
    let systems: String = env_or("BENCH_SYSTEMS", "staticlet,kubelet".to_owned());
    let mut report = Report::new("probes");
    report.context("kubernetes", std::env::var("STATICLET_K8S_VERSION").unwrap_or_default());
    report.context("footprint_pods", pods);
    report.context("window_s", window);

    if systems.contains("staticlet") {
        let mut staticlet = Daemon::new("probebench");
        staticlet.file_check_frequency = "20s".into();
        let kubeconfig = cluster::node_kubeconfig(&staticlet.node);
        staticlet.extra = vec![format!("--kubeconfig={}", kubeconfig.display()), "--node-ip=127.0.0.1".into()];
        staticlet.start();
        let node = staticlet.node.clone();
        measure(&mut report, STATICLET, &node, &staticlet.manifests, staticlet.pid(), runs, pods, window);
        drop(staticlet);
        let _ = std::process::Command::new("kubectl").args(["delete", "node", &node, "--wait=false"]).output();
    }
    if systems.contains("kubelet") {
        let node = node_name("probekubelet");
        match kubelet::Kubelet::start(&node, &endpoint(), Some(&cluster::node_kubeconfig(&node))) {
            Some(k) => {
                measure(&mut report, KUBELET, &k.node, &k.manifests, k.pid(), runs, pods, window);
                drop(k);
                let _ = std::process::Command::new("kubectl").args(["delete", "node", &node, "--wait=false"]).output();
            }
            None => println!("kubelet: not built or not healthy (run `hack/testenv up --cluster`), skipped"),
        }
    }
    report.finish();
}

fn write(manifests: &Path, file: &str, content: &str) {
    let tmp = manifests.with_file_name(".tmp.yaml");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, manifests.join(file)).unwrap();
}

fn pod(name: &str, script: &str, probes: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{bench: probes}}}}\nspec:\n  hostNetwork: true\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    command: [sh, -c, {script:?}]\n{probes}",
        image = image()
    )
}

fn ready_condition(pod: &Pod) -> Option<bool> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status == "True")
}

async fn running_container(pod_name: &str) -> Option<String> {
    let containers = runtime().list_containers(&[("io.kubernetes.pod.name", pod_name)]).await.ok()?;
    containers.into_iter().find(|c| c.state == ContainerState::ContainerRunning as i32).map(|c| c.id)
}

async fn exec(id: &str, cmd: &[&str]) {
    let cmd = cmd.iter().map(|c| c.to_string()).collect();
    runtime().exec_sync(id, cmd, Duration::from_secs(5)).await.unwrap();
}

#[allow(clippy::too_many_arguments)]
fn measure(
    report: &mut Report,
    system: &str,
    node: &str,
    manifests: &Path,
    agent: u32,
    runs: usize,
    pods: usize,
    window: u64,
) {
    let ready_probe =
        "    readinessProbe: {exec: {command: [test, -f, /tmp/ready]}, periodSeconds: 1, failureThreshold: 1}\n";
    write(manifests, "r.yaml", &pod("r", "touch /tmp/ready; trap 'exit 0' TERM; sleep 3600 & wait", ready_probe));
    let (not_ready, restarted, startup) = block_on(async {
        let client = Client::try_default().await.expect("KUBECONFIG (admin)");
        let api: Api<Pod> = Api::namespaced(client, "default");
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let mut events = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
        let mut until = async |name: &str, ready: bool| loop {
            let pod = tokio::time::timeout(Duration::from_secs(120), events.next())
                .await
                .unwrap_or_else(|_| panic!("{system}: mirror of {name} not Ready={ready} within 120 s"))
                .unwrap()
                .unwrap();
            if pod.metadata.name.as_deref() == Some(name) && ready_condition(&pod) == Some(ready) {
                return;
            }
        };

        let mirror = format!("r-{node}");
        let mut not_ready = vec![];
        until(&mirror, true).await;
        let id = running_container(&mirror).await.expect("pod r runs");
        for _ in 0..runs {
            let start = Instant::now();
            exec(&id, &["rm", "/tmp/ready"]).await;
            until(&mirror, false).await;
            not_ready.push(start.elapsed());
            exec(&id, &["touch", "/tmp/ready"]).await;
            until(&mirror, true).await;
        }

        let live_probe =
            "    livenessProbe: {exec: {command: [test, -f, /tmp/alive]}, periodSeconds: 1, failureThreshold: 1}\n";
        let mut restarted = vec![];
        for i in 0..5 {
            let name = format!("l{i}");
            let script = "touch /tmp/alive; trap 'exit 0' TERM; sleep 3600 & wait";
            write(manifests, &format!("{name}.yaml"), &pod(&name, script, live_probe));
            let full = format!("{name}-{node}");
            let first = loop {
                if let Some(id) = running_container(&full).await {
                    break id;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            tokio::time::sleep(Duration::from_secs(2)).await; // a few passing probes first
            let start = Instant::now();
            exec(&first, &["rm", "/tmp/alive"]).await;
            loop {
                if running_container(&full).await.is_some_and(|id| id != first) {
                    restarted.push(start.elapsed());
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(120), "{system}: {full} never restarted");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            std::fs::remove_file(manifests.join(format!("{name}.yaml"))).unwrap();
        }

        let mut startup = vec![];
        for i in 0..5 {
            let port = free_port();
            let name = format!("s{i}");
            let probes = format!(
                "    ports: [{{name: probe-port, containerPort: {port}}}]\n    \
                 startupProbe: {{httpGet: {{host: 127.0.0.1, path: /passwd, port: probe-port}}, periodSeconds: 1, failureThreshold: 24}}\n    \
                 readinessProbe: {{httpGet: {{host: 127.0.0.1, path: /passwd, port: probe-port}}, periodSeconds: 1}}\n"
            );
            let script = format!("exec httpd -f -p 127.0.0.1:{port} -h /etc");
            let start = Instant::now();
            write(manifests, &format!("{name}.yaml"), &pod(&name, &script, &probes));
            until(&format!("{name}-{node}"), true).await;
            startup.push(start.elapsed());
            std::fs::remove_file(manifests.join(format!("{name}.yaml"))).unwrap();
        }
        (not_ready, restarted, startup)
    });
    report.latency("readiness fails -> Ready False in the API", system, &not_ready);
    report.latency("liveness fails -> container running again", system, &restarted);
    report.latency("startup-probed pod written -> Ready in the API", system, &startup);
    std::fs::remove_file(manifests.join("r.yaml")).unwrap();

    // At rest with many probed pods: each serves HTTP on its own port for its readiness probe.
    for i in 0..pods {
        let port = free_port();
        let probes = format!(
            "    livenessProbe: {{exec: {{command: [test, -d, /etc]}}, periodSeconds: 10}}\n    \
             readinessProbe: {{httpGet: {{host: 127.0.0.1, path: /passwd, port: {port}}}, periodSeconds: 1}}\n"
        );
        let script = format!("exec httpd -f -p 127.0.0.1:{port} -h /etc");
        write(manifests, &format!("f{i}.yaml"), &pod(&format!("f{i}"), &script, &probes));
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let running = block_on(async {
            let containers = runtime().list_containers(&[]).await.unwrap();
            containers
                .iter()
                .filter(|c| c.state == ContainerState::ContainerRunning as i32)
                .filter(|c| c.labels.get("io.kubernetes.pod.name").is_some_and(|n| n.ends_with(&format!("-{node}"))))
                .count()
        });
        if running >= pods || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(20)); // let start-up work settle
    let containerd = containerd_pid();
    let before = containerd.map(process::cpu_time);
    let agent_cpu = process::cpu_percent(agent, Duration::from_secs(window));
    let containerd_cpu =
        containerd.zip(before).map(|(pid, t0)| (process::cpu_time(pid) - t0).as_secs_f64() * 100.0 / window as f64);
    let label = format!("{pods} pods with 2 probes each");
    report.record(&format!("agent CPU at rest, {label}"), system, "% of a core", vec![agent_cpu]);
    report.record(&format!("agent RSS at rest, {label}"), system, "MiB", vec![process::rss_mib(agent)]);
    if let Some(cpu) = containerd_cpu {
        report.record(&format!("containerd CPU meanwhile, {label}"), system, "% of a core", vec![cpu]);
    }
    for i in 0..pods {
        let _ = std::fs::remove_file(manifests.join(format!("f{i}.yaml")));
    }
    std::thread::sleep(Duration::from_secs(10));
}

/// The private containerd's PID (hack/testenv writes it beside its socket).
fn containerd_pid() -> Option<u32> {
    let socket = endpoint();
    let dir = Path::new(socket.trim_start_matches("unix://")).parent()?.to_owned();
    std::fs::read_to_string(dir.join("containerd.pid")).ok()?.trim().parse().ok()
}
