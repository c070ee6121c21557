//! Standalone latency and footprint, measured from the outside on the private containerd.
//!
//! `cargo bench --bench standalone` (after `hack/testenv up` and `eval "$(hack/testenv env)"`)
//! prints, each over N runs (median, p90, max):
//! - floor: the CRI calls staticlet makes for a new pod (RunPodSandbox, ImageStatus,
//!   CreateContainer, StartContainer), issued directly, no daemon in between;
//! - staticlet: manifest renamed into the directory -> the runtime lists the container running;
//! - floor restart: CreateContainer + StartContainer in the existing sandbox;
//! - staticlet restart: container killed (StopContainer, timeout 0) -> a new one running;
//! - staticlet's RSS and CPU with 10 pods.
//! Observation polls ListContainers every 2 ms, which adds up to ~2 ms to staticlet's figures.
//! Nothing here asserts: it prints.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use staticlet::{
    cri::{api, translate},
    manifest::{Origin, parse_manifest},
};

const RUNS: usize = 10;

fn main() {
    let runs = std::env::var("BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(RUNS);
    let floor_start = floor_start(runs);
    let (staticlet_start, staticlet_restart, footprint) = staticlet(runs);
    let floor_restart = floor_restart(runs);

    println!("\nstandalone latency, {runs} runs each, containerd {}", runtime_version());
    println!("{:<44} {:>9} {:>9} {:>9}", "scenario", "median", "p90", "max");
    for (name, samples) in [
        ("floor: new pod (sandbox + container)", &floor_start),
        ("staticlet: manifest written -> running", &staticlet_start),
        ("floor: restart (create + start)", &floor_restart),
        ("staticlet: container killed -> running", &staticlet_restart),
    ] {
        let s = stats(samples);
        println!("{name:<44} {:>7.1}ms {:>7.1}ms {:>7.1}ms", s.0, s.1, s.2);
    }
    let (fs, ss) = (stats(&floor_start).0, stats(&staticlet_start).0);
    let (fr, sr) = (stats(&floor_restart).0, stats(&staticlet_restart).0);
    println!("ratio start (staticlet / floor): {:.2}x, +{:.1} ms", ss / fs, ss - fs);
    println!("ratio restart (staticlet / floor): {:.2}x, +{:.1} ms", sr / fr, sr - fr);
    println!("{footprint}");
}

fn stats(samples: &[Duration]) -> (f64, f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.9), ms[ms.len() - 1])
}

fn runtime_version() -> String {
    block_on(async { runtime().version().await.map(|(n, v)| format!("{n} {v}")).unwrap_or_default() })
}

fn bench_pod(name: &str, node: &str) -> staticlet::manifest::StaticPod {
    let yaml = shell_pod(name, "sleep 3600", "");
    parse_manifest(yaml.as_bytes(), &Origin::file(format!("/bench/{name}.yaml")), node).unwrap().remove(0)
}

fn floor_start(runs: usize) -> Vec<Duration> {
    let node = node_name("floor");
    let logs = tempfile::tempdir().unwrap();
    let mut samples = vec![];
    for i in 0..runs {
        let pod = bench_pod(&format!("floor{i}"), &node);
        let elapsed = block_on(async {
            let rt = runtime();
            let start = Instant::now();
            let config = translate::sandbox_config(&pod, &node, logs.path(), 0);
            let sandbox = rt.run_sandbox(config.clone()).await.unwrap();
            let container = &pod.spec().containers[0];
            rt.image_id(container.image.as_deref().unwrap()).await.unwrap();
            let ctx = translate::ContainerContext { restart_count: 0, pod_ip: "", volumes_dir: logs.path() };
            let cc = translate::container_config(&pod, &node, container, &ctx);
            let id = rt.create_container(&sandbox, cc, config).await.unwrap();
            rt.start_container(&id).await.unwrap();
            start.elapsed()
        });
        samples.push(elapsed);
        remove_node_pods(&node);
    }
    samples
}

fn floor_restart(runs: usize) -> Vec<Duration> {
    let node = node_name("floorrestart");
    let logs = tempfile::tempdir().unwrap();
    let pod = bench_pod("floorrestart", &node);
    let samples = block_on(async {
        let rt = runtime();
        let config = translate::sandbox_config(&pod, &node, logs.path(), 0);
        let sandbox = rt.run_sandbox(config.clone()).await.unwrap();
        let container = &pod.spec().containers[0];
        let mut samples = vec![];
        for attempt in 0..=runs as u32 {
            let ctx = translate::ContainerContext { restart_count: attempt, pod_ip: "", volumes_dir: logs.path() };
            let cc = translate::container_config(&pod, &node, container, &ctx);
            let start = Instant::now();
            let id = rt.create_container(&sandbox, cc, config.clone()).await.unwrap();
            rt.start_container(&id).await.unwrap();
            if attempt > 0 {
                samples.push(start.elapsed());
            }
            rt.stop_container(&id, Duration::ZERO).await.unwrap();
        }
        samples
    });
    remove_node_pods(&node);
    samples
}

/// Polls the runtime until a container of `uid` other than `except` is running.
fn until_running(uid_label: (&str, &str), except: &[String], limit: Duration) -> Option<String> {
    block_on(async {
        let rt = runtime();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let list = rt.list_containers(&[uid_label]).await.unwrap_or_default();
            if let Some(c) = list
                .iter()
                .find(|c| c.state == api::ContainerState::ContainerRunning as i32 && !except.contains(&c.id))
            {
                return Some(c.id.clone());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    })
}

fn staticlet(runs: usize) -> (Vec<Duration>, Vec<Duration>, String) {
    let mut d = Daemon::new("bench");
    d.start();
    let node = d.node.clone();
    let mut starts = vec![];
    for i in 0..runs {
        let name = format!("start{i}");
        let pod_name = format!("{name}-{node}");
        let yaml = shell_pod(&name, "sleep 3600", "");
        let tmp = d.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&tmp, yaml).unwrap();
        let start = Instant::now();
        std::fs::rename(&tmp, d.manifests.join(format!("{name}.yaml"))).unwrap();
        until_running(("io.kubernetes.pod.name", &pod_name), &[], Duration::from_secs(30)).expect("pod started");
        starts.push(start.elapsed());
        std::fs::remove_file(d.manifests.join(format!("{name}.yaml"))).unwrap();
        d.wait_until("the pod is gone", Duration::from_secs(30), |d| d.pod(&name).is_none());
    }

    // Restart latency: the first restart of a fresh pod each time (no back-off).
    let mut restarts = vec![];
    for i in 0..runs {
        let name = format!("kill{i}");
        let pod_name = format!("{name}-{node}");
        d.write_manifest(&format!("{name}.yaml"), &shell_pod(&name, "sleep 3600", ""));
        let first = until_running(("io.kubernetes.pod.name", &pod_name), &[], Duration::from_secs(30)).unwrap();
        block_on(async { runtime().stop_container(&first, Duration::ZERO).await.unwrap() });
        let start = Instant::now();
        until_running(("io.kubernetes.pod.name", &pod_name), &[first], Duration::from_secs(30)).expect("restarted");
        restarts.push(start.elapsed());
        std::fs::remove_file(d.manifests.join(format!("{name}.yaml"))).unwrap();
        d.wait_until("the pod is gone", Duration::from_secs(30), |d| d.pod(&name).is_none());
    }

    // Footprint with 10 pods.
    for i in 0..10 {
        d.write_manifest(&format!("idle{i}.yaml"), &shell_pod(&format!("idle{i}"), "sleep 3600", ""));
    }
    d.wait_until("10 pods run", Duration::from_secs(60), |d| d.status().pods.iter().filter(|p| p.status == "Running").count() == 10);
    std::thread::sleep(Duration::from_secs(3));
    let pid = d.pid();
    let cpu0 = cpu_ticks(pid);
    let window = Duration::from_secs(20);
    std::thread::sleep(window);
    let cpu1 = cpu_ticks(pid);
    let ticks_per_sec = 100.0;
    let cpu_pct = (cpu1 - cpu0) as f64 / ticks_per_sec / window.as_secs_f64() * 100.0;
    let rss = rss_kib(pid);
    let footprint = format!(
        "staticlet with 10 pods: RSS {:.1} MiB, CPU {:.2}% of a core over {}s idle",
        rss as f64 / 1024.0,
        cpu_pct,
        window.as_secs()
    );
    d.stop();
    (starts, restarts, footprint)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()).unwrap()
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}
