//! Mirror pods on the real control plane, for staticlet and for the real kubelet, each registered
//! as its own Node (system:node:<name> credentials, Node,RBAC authorization, NodeRestriction) with
//! 10 static pods, one after the other, measured from the outside through the API server:
//! - mirror deleted through the API (`kubectl delete` semantics: grace 30 s) -> a new mirror
//!   exists, 20 times, seen by an admin watch;
//! - container killed through CRI -> the mirror's restartCount shows it, 10 times;
//! - the node's API requests per minute at rest, counted in the API server's audit log by user
//!   (the API server's metrics have no user label; its audit log is its own per-user record).
//!
//! `cargo bench --bench mirror` after `hack/testenv up --cluster` and `eval "$(hack/testenv env)"`.
//! It prints and records; nothing here asserts.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/kubelet.rs"]
mod kubelet;
#[path = "support/report.rs"]
mod report;
#[path = "support/workload.rs"]
mod workload;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::DeleteParams,
    runtime::{WatchStreamExt, watcher},
};
use report::{KUBELET, Report, STATICLET};

const PODS: usize = 10;

fn main() {
    let runs = std::env::var("BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(20);
    let window = std::env::var("BENCH_WINDOW_S").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let mut report = Report::new("mirror");
    report.context("kubernetes", std::env::var("STATICLET_K8S_VERSION").unwrap_or_default());
    report.context("static_pods", PODS);
    report.context("requests_window_s", window);

    let mut staticlet = Daemon::new("mirrorbench");
    staticlet.file_check_frequency = "20s".into(); // the default, as kubelet runs with its own
    let kubeconfig = cluster::node_kubeconfig(&staticlet.node);
    staticlet.extra = vec![format!("--kubeconfig={}", kubeconfig.display()), "--node-ip=127.0.0.1".into()];
    staticlet.start();
    measure(&mut report, STATICLET, &staticlet.node, &staticlet.manifests, runs, window);
    drop(staticlet);

    let node = node_name("mirrorkubelet");
    match kubelet::Kubelet::start(&node, &endpoint(), Some(&cluster::node_kubeconfig(&node))) {
        Some(k) => measure(&mut report, KUBELET, &k.node, &k.manifests, runs, window),
        None => println!("kubelet: not built or not healthy (run `hack/testenv up --cluster`), skipped"),
    }
    report.finish();
}

fn measure(report: &mut Report, system: &str, node: &str, manifests: &Path, runs: usize, window: u64) {
    for i in 0..PODS {
        std::fs::write(manifests.with_file_name(".tmp.yaml"), workload::manifest(&format!("p{i}"), "mirror", 0))
            .unwrap();
        std::fs::rename(manifests.with_file_name(".tmp.yaml"), manifests.join(format!("p{i}.yaml"))).unwrap();
    }
    let (recreate, restarts) = block_on(async {
        let client = Client::try_default().await.expect("KUBECONFIG (admin)");
        let pods: Api<Pod> = Api::namespaced(client, "default");
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let mut events = std::pin::pin!(watcher(pods.clone(), config).default_backoff().applied_objects());
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(120), events.next())
                .await
                .unwrap_or_else(|_| panic!("{system}: no mirror pod event for 120 s"))
                .unwrap()
                .unwrap()
        };
        let mut running = std::collections::HashSet::new();
        while running.len() < PODS {
            let pod = next().await;
            if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                running.insert(pod.metadata.name.clone().unwrap());
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;

        let mut recreate = vec![];
        for i in 0..runs {
            let name = format!("p{}-{node}", i % PODS);
            let old = pods.get(&name).await.unwrap().metadata.uid;
            let start = Instant::now();
            pods.delete(&name, &DeleteParams::default()).await.unwrap();
            loop {
                let pod = next().await;
                if pod.metadata.name.as_deref() == Some(name.as_str())
                    && pod.metadata.uid != old
                    && pod.metadata.deletion_timestamp.is_none()
                {
                    recreate.push(start.elapsed());
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }

        let mut restarts = vec![];
        for i in 0..PODS {
            let name = format!("p{i}-{node}");
            let containers = runtime().list_containers(&[("io.kubernetes.pod.name", name.as_str())]).await.unwrap();
            let running = containers
                .iter()
                .find(|c| c.state == staticlet::cri::api::ContainerState::ContainerRunning as i32)
                .unwrap();
            runtime().stop_container(&running.id, Duration::ZERO).await.unwrap();
            let start = Instant::now();
            loop {
                let pod = next().await;
                let count = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|c| c.first())
                    .map(|c| c.restart_count);
                if pod.metadata.name.as_deref() == Some(name.as_str()) && count == Some(1) {
                    restarts.push(start.elapsed());
                    break;
                }
            }
        }
        (recreate, restarts)
    });
    report.latency("mirror deleted -> recreated", system, &recreate);
    report.latency("kill -> restartCount in the API", system, &restarts);

    // At rest: let restarts and status updates settle, then count a full window of requests.
    std::thread::sleep(Duration::from_secs(15));
    let user = format!("system:node:{node}\"");
    let before = cluster::requests_by(&user);
    std::thread::sleep(Duration::from_secs(window));
    let kinds = cluster::new_requests(&before, cluster::requests_by(&user));
    let per_minute = kinds.values().sum::<usize>() as f64 * 60.0 / window as f64;
    report.record("API requests/min at rest, 10 pods", system, "req/min", vec![per_minute]);
    report.context(&format!("{system}_requests_in_window"), serde_json::to_value(kinds).unwrap());
    let _ = std::process::Command::new("kubectl").args(["delete", "node", node, "--wait=false"]).output();
}
