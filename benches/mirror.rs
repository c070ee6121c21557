//! Mirror pods on the real control plane, measured from the outside through the API server.
//!
//! `cargo bench --bench mirror` (after `hack/testenv up --cluster` and `eval "$(hack/testenv env)"`)
//! runs staticlet with 10 static pods and prints:
//! - mirror deleted through the API (`kubectl delete` semantics: grace 30 s) -> a new mirror
//!   exists, 20 times, seen by an admin watch;
//! - container killed -> the mirror's restartCount shows it, 10 times, seen by the same watch;
//! - the node's API requests per minute at rest, counted in the API server's audit log by user.
//!
//! Nothing here asserts: it prints.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::DeleteParams,
    runtime::{WatchStreamExt, watcher},
};

const PODS: usize = 10;

fn main() {
    let mut d = Daemon::new("mirrorbench");
    let kubeconfig = String::from_utf8(
        std::process::Command::new("bash")
            .args([concat!(env!("CARGO_MANIFEST_DIR"), "/hack/testenv"), "node-kubeconfig", &d.node])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    d.extra = vec![format!("--kubeconfig={}", kubeconfig.trim()), "--node-ip=127.0.0.1".into()];
    d.start();
    for i in 0..PODS {
        d.write_manifest(&format!("p{i}.yaml"), &shell_pod(&format!("p{i}"), "sleep 3600", ""));
    }
    let node = d.node.clone();
    let runs = std::env::var("BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(20);
    let (recreate, restarts) = block_on(async {
        let client = Client::try_default().await.expect("KUBECONFIG (admin)");
        let pods: Api<Pod> = Api::namespaced(client, "default");
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let mut events = std::pin::pin!(watcher(pods.clone(), config).default_backoff().applied_objects());
        // Wait for all mirrors to run.
        let mut running = std::collections::HashSet::new();
        while running.len() < PODS {
            let pod = events.next().await.unwrap().unwrap();
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
                let pod = events.next().await.unwrap().unwrap();
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
                let pod = events.next().await.unwrap().unwrap();
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

    // API requests at rest: let everything settle, then count a full minute of audit records.
    std::thread::sleep(Duration::from_secs(15));
    let audit = format!(
        "{}/cluster/audit.log",
        std::env::var("STATICLET_TESTENV_DIR").unwrap_or("/var/lib/staticlet-testenv".into())
    );
    let user = format!("\"username\":\"system:node:{}\"", d.node);
    let count = || std::fs::read_to_string(&audit).unwrap_or_default().lines().filter(|l| l.contains(&user)).count();
    let before = count();
    std::thread::sleep(Duration::from_secs(60));
    let per_minute = count() - before;
    d.stop();
    let _ = std::process::Command::new("kubectl").args(["delete", "node", &d.node, "--wait=false"]).output();

    println!("\nmirror pods, {PODS} static pods on one node");
    println!("{:<48} {:>9} {:>9} {:>9}", "scenario", "median", "p90", "max");
    for (name, samples) in
        [("mirror deleted -> recreated", &recreate), ("container killed -> restartCount in the API", &restarts)]
    {
        let s = stats(samples);
        println!("{name:<48} {:>7.1}ms {:>7.1}ms {:>7.1}ms   ({} runs)", s.0, s.1, s.2, samples.len());
    }
    println!("API requests per minute at rest (audit log, user system:node:{}): {per_minute}", d.node);
}

fn stats(samples: &[Duration]) -> (f64, f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.9), ms[ms.len() - 1])
}
