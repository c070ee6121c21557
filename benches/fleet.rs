//! A fleet of staticlet nodes against one API server: as the node count grows (BENCH_FLEET,
//! default 0,1,10,50,100; 0 is the control plane alone), what a node costs the control plane and
//! how fast mirrors appear.
//!
//! Each node is its own staticlet process with its own node name, credentials
//! (system:node:<name>), manifest directory and one static pod, on the shared private containerd;
//! pods use the host network so no CNI limit interferes. Per step it records:
//! - mirror creation: a manifest written into every node's directory at once -> that node's mirror
//!   seen by an admin watch (at least 10 samples: several waves for small fleets);
//! - at rest, over BENCH_WINDOW_S (default 60 s): the nodes' requests per minute (audit log, by
//!   user), the API server's own request rate (apiserver_request_total, every client), and the API
//!   server's CPU and RSS.
//!
//! `cargo bench --bench fleet` after `hack/testenv up --cluster` and `eval "$(hack/testenv env)"`.
//! It prints and records; nothing here asserts. docs/SCALING.md reads these figures.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/process.rs"]
mod process;
#[path = "support/report.rs"]
mod report;
#[path = "support/workload.rs"]
mod workload;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::Daemon;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use report::{Report, STATICLET};

/// When each mirror pod (by name) was first seen, alive, by the admin watch.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

fn main() {
    let steps: Vec<usize> = std::env::var("BENCH_FLEET")
        .unwrap_or("0,1,10,50,100".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let window = std::env::var("BENCH_WINDOW_S").ok().and_then(|s| s.parse().ok()).unwrap_or(60u64);
    let mut report = Report::new("fleet");
    report.context("kubernetes", std::env::var("STATICLET_K8S_VERSION").unwrap_or_default());
    report.context("steps", steps.clone());
    report.context("window_s", window);

    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let seen: Seen = Arc::default();
    let _watch = tokio.spawn(watch_mirrors(seen.clone()));

    let mut nodes: Vec<Daemon> = vec![];
    for &count in &steps {
        while nodes.len() < count {
            let mut d = Daemon::new(&format!("fleet{}", nodes.len()));
            d.file_check_frequency = "20s".into();
            let kubeconfig = cluster::node_kubeconfig(&d.node);
            d.extra = vec![format!("--kubeconfig={}", kubeconfig.display()), "--node-ip=127.0.0.1".into()];
            d.start();
            d.write_manifest("base.yaml", &workload::manifest("base", "fleet", 0));
            nodes.push(d);
        }
        let bases: Vec<String> = nodes.iter().map(|d| format!("base-{}", d.node)).collect();
        wait_seen(&seen, &bases, "every node's first mirror");
        std::thread::sleep(Duration::from_secs(5));

        let waves = if count == 0 { 0 } else { 10usize.div_ceil(count).max(2) };
        let mut samples = vec![];
        for wave in 0..waves {
            let pod = format!("wave{count}x{wave}");
            let written: Vec<(String, Instant)> = nodes
                .iter()
                .map(|d| {
                    d.write_manifest(&format!("{pod}.yaml"), &workload::manifest(&pod, "fleet", 0));
                    (format!("{pod}-{}", d.node), Instant::now())
                })
                .collect();
            let names: Vec<String> = written.iter().map(|(n, _)| n.clone()).collect();
            wait_seen(&seen, &names, &pod);
            let seen = seen.lock().unwrap();
            samples.extend(written.iter().map(|(name, at)| seen[name].saturating_duration_since(*at)));
            drop(seen);
            for d in &nodes {
                std::fs::remove_file(d.manifests.join(format!("{pod}.yaml"))).unwrap();
            }
            std::thread::sleep(Duration::from_secs(3));
        }
        report.latency(&format!("mirror created, {count} nodes at once"), STATICLET, &samples);

        // At rest.
        std::thread::sleep(Duration::from_secs(10));
        let (pid, before) = (cluster::apiserver_pid(), cluster::requests_by("system:node:t-fleet"));
        let total0 = cluster::apiserver_requests_total();
        let cpu = process::cpu_percent(pid, Duration::from_secs(window));
        let total1 = cluster::apiserver_requests_total();
        let kinds = cluster::new_requests(&before, cluster::requests_by("system:node:t-fleet"));
        let minutes = window as f64 / 60.0;
        let node_requests = kinds.values().sum::<usize>() as f64 / minutes;
        report.record(&format!("node requests/min, {count} nodes"), STATICLET, "req/min", vec![node_requests]);
        report.record(
            &format!("API server requests/min, {count} nodes"),
            STATICLET,
            "req/min",
            vec![(total1 - total0) / minutes],
        );
        report.record(&format!("API server CPU, {count} nodes"), STATICLET, "%", vec![cpu]);
        report.record(&format!("API server RSS, {count} nodes"), STATICLET, "MiB", vec![process::rss_mib(pid)]);
        report.context(&format!("node_requests_{count}"), serde_json::to_value(kinds).unwrap());
    }

    let names: Vec<String> = nodes.iter().map(|d| d.node.clone()).collect();
    drop(nodes);
    let _ = std::process::Command::new("kubectl").args(["delete", "node", "--wait=false"]).args(&names).output();
    report.finish();
}

async fn watch_mirrors(seen: Seen) {
    let client = Client::try_default().await.expect("KUBECONFIG (admin)");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let config = watcher::Config::default().labels("bench=fleet");
    let mut events = std::pin::pin!(watcher(pods, config).default_backoff().applied_objects());
    while let Some(event) = events.next().await {
        let Ok(pod) = event else { continue };
        if pod.metadata.deletion_timestamp.is_none() {
            let name = pod.metadata.name.unwrap_or_default();
            seen.lock().unwrap().entry(name).or_insert_with(Instant::now);
        }
    }
}

fn wait_seen(seen: &Seen, names: &[String], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !names.iter().all(|n| seen.lock().unwrap().contains_key(n)) {
        assert!(Instant::now() < deadline, "{what}: mirrors not all seen after 300 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}
