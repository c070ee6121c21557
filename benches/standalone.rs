//! Standalone latency and footprint, measured from the outside on the private containerd.
//!
//! `cargo bench --bench standalone` (after `hack/testenv up` and `eval "$(hack/testenv env)"`)
//! prints, each over N runs (median, p90, max):
//! - floor: the CRI calls staticlet makes for a new pod (RunPodSandbox, ImageStatus,
//!   CreateContainer, StartContainer), issued directly, no daemon in between;
//! - staticlet: manifest renamed into the directory -> the runtime lists the container running;
//! - floor restart: CreateContainer + StartContainer in the existing sandbox;
//! - staticlet restart: container killed (StopContainer, timeout 0) -> a new one running;
//! - staticlet's RSS and CPU with 10 pods;
//! - the same scenarios for the real kubelet (v1.35.8 from `hack/testenv up --cluster`, found
//!   through STATICLET_KUBE_BIN), standalone on the same containerd, when it is available.
//!   kubelet settings that differ from its defaults, and why: `failCgroupV1: false` (this machine
//!   has cgroup v1), `cgroupDriver: cgroupfs` (containerd's here), `cgroupsPerQOS: false` and
//!   `enforceNodeAllocatable: []` (no systemd to manage its cgroups), `failSwapOn: false`,
//!   anonymous/AlwaysAllow auth on a private port (no API server to check tokens).
//!
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
    let floor_restart = floor_restart(runs);
    let mut agents = vec![("staticlet", measure(Agent::staticlet(), runs))];
    if let Some(kubelet) = Agent::kubelet() {
        agents.push(("kubelet", measure(kubelet, runs)));
    }

    println!("\nstandalone latency, {runs} runs each, {}", runtime_version());
    println!("{:<44} {:>9} {:>9} {:>9} {:>10}", "scenario", "median", "p90", "max", "vs floor");
    let row = |name: &str, samples: &[Duration], floor: Option<f64>| {
        let s = stats(samples);
        let ratio = floor.map(|f| format!("{:.2}x", s.0 / f)).unwrap_or_default();
        println!("{name:<44} {:>7.1}ms {:>7.1}ms {:>7.1}ms {ratio:>10}", s.0, s.1, s.2);
    };
    let (fs, fr) = (stats(&floor_start).0, stats(&floor_restart).0);
    row("floor: new pod (sandbox + container)", &floor_start, None);
    for (name, m) in &agents {
        row(&format!("{name}: manifest written -> running"), &m.starts, Some(fs));
    }
    row("floor: restart (create + start)", &floor_restart, None);
    for (name, m) in &agents {
        row(&format!("{name}: container killed -> running"), &m.restarts, Some(fr));
    }
    for (name, m) in &agents {
        println!(
            "{name} with 10 pods: RSS {:.1} MiB, CPU {:.2}% of a core over {}s at rest",
            m.rss_mib,
            m.cpu_pct,
            FOOTPRINT_WINDOW.as_secs()
        );
    }
    if let [(_, s), (_, k)] = agents.as_slice() {
        println!(
            "staticlet / kubelet: start {:.2}x, restart {:.3}x, RSS {:.2}x",
            stats(&s.starts).0 / stats(&k.starts).0,
            stats(&s.restarts).0 / stats(&k.restarts).0,
            s.rss_mib / k.rss_mib
        );
    }
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
            if let Some(c) =
                list.iter().find(|c| c.state == api::ContainerState::ContainerRunning as i32 && !except.contains(&c.id))
            {
                return Some(c.id.clone());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    })
}

const FOOTPRINT_WINDOW: Duration = Duration::from_secs(20);

struct Measured {
    starts: Vec<Duration>,
    restarts: Vec<Duration>,
    rss_mib: f64,
    cpu_pct: f64,
}

/// A node agent under test, fed through its manifest directory and watched only through CRI.
struct Agent {
    node: String,
    manifests: std::path::PathBuf,
    /// kubelet's process; staticlet's lives in the test harness's Daemon.
    child: Option<std::process::Child>,
    daemon: Option<Daemon>,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn staticlet() -> Self {
        let mut d = Daemon::new("bench");
        d.start();
        Self {
            node: d.node.clone(),
            manifests: d.manifests.clone(),
            child: None,
            _dir: tempfile::tempdir().unwrap(),
            daemon: Some(d),
        }
    }

    fn kubelet() -> Option<Self> {
        let bin = std::path::PathBuf::from(std::env::var("STATICLET_KUBE_BIN").ok()?).join("kubelet");
        if !bin.exists() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        let config = dir.path().join("kubelet.yaml");
        std::fs::write(&config, format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: {m}\nfailCgroupV1: false\ncgroupDriver: cgroupfs\ncontainerRuntimeEndpoint: {e}\nauthentication: {{anonymous: {{enabled: true}}, webhook: {{enabled: false}}}}\nauthorization: {{mode: AlwaysAllow}}\nreadOnlyPort: 0\nport: 10350\nhealthzPort: 10348\npodLogsDir: {l}\ncgroupsPerQOS: false\nenforceNodeAllocatable: []\nfailSwapOn: false\nresolvConf: /etc/resolv.conf\nlocalStorageCapacityIsolation: false\n",
            m = manifests.display(), e = endpoint(), l = dir.path().join("logs").display()
        )).unwrap();
        let node = node_name("kubelet");
        let log = std::fs::File::create(dir.path().join("kubelet.log")).unwrap();
        let child = std::process::Command::new(bin)
            .arg(format!("--config={}", config.display()))
            .arg(format!("--root-dir={}", dir.path().join("root").display()))
            .arg(format!("--cert-dir={}", dir.path().join("pki").display()))
            .arg(format!("--hostname-override={node}"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(10348, "/healthz").is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Self { node, manifests, child: Some(child), daemon: None, _dir: dir })
    }

    fn pid(&self) -> u32 {
        match (&self.daemon, &self.child) {
            (Some(d), _) => d.pid(),
            (None, Some(c)) => c.id(),
            (None, None) => unreachable!("an agent has a process"),
        }
    }

    fn write(&self, name: &str) {
        let tmp = self._dir.path().join(format!(".{name}.yaml"));
        std::fs::write(&tmp, shell_pod(name, "sleep 3600", "")).unwrap();
        std::fs::rename(&tmp, self.manifests.join(format!("{name}.yaml"))).unwrap();
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.manifests.join(format!("{name}.yaml"))).unwrap();
        let pod = format!("{name}-{}", self.node);
        let deadline = Instant::now() + Duration::from_secs(60);
        while until_running(("io.kubernetes.pod.name", &pod), &[], Duration::from_millis(1)).is_some() {
            assert!(Instant::now() < deadline, "{pod} did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
            // kubelet leaves its pods running when it stops, as staticlet does: remove them.
            let suffix = format!("-{}", self.node);
            block_on(async {
                let rt = runtime();
                for s in rt.list_sandboxes(&[]).await.unwrap_or_default() {
                    if s.metadata.as_ref().is_some_and(|m| m.name.ends_with(&suffix)) {
                        let _ = rt.stop_sandbox(&s.id).await;
                        let _ = rt.remove_sandbox(&s.id).await;
                    }
                }
            });
        }
    }
}

fn measure(agent: Agent, runs: usize) -> Measured {
    let node = agent.node.clone();
    let mut starts = vec![];
    for i in 0..runs {
        let name = format!("start{i}");
        let pod = format!("{name}-{node}");
        let start = Instant::now();
        agent.write(&name);
        until_running(("io.kubernetes.pod.name", &pod), &[], Duration::from_secs(60)).expect("pod started");
        starts.push(start.elapsed());
        agent.remove(&name);
    }
    // The first restart of a fresh pod each time (no back-off yet).
    let mut restarts = vec![];
    for i in 0..runs {
        let name = format!("kill{i}");
        let pod = format!("{name}-{node}");
        agent.write(&name);
        let first = until_running(("io.kubernetes.pod.name", &pod), &[], Duration::from_secs(60)).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        block_on(async { runtime().stop_container(&first, Duration::ZERO).await.unwrap() });
        let start = Instant::now();
        until_running(("io.kubernetes.pod.name", &pod), &[first], Duration::from_secs(60)).expect("restarted");
        restarts.push(start.elapsed());
        agent.remove(&name);
    }
    for i in 0..10 {
        agent.write(&format!("idle{i}"));
    }
    for i in 0..10 {
        let pod = format!("idle{i}-{node}");
        until_running(("io.kubernetes.pod.name", &pod), &[], Duration::from_secs(60)).expect("10 pods run");
    }
    std::thread::sleep(Duration::from_secs(5));
    let pid = agent.pid();
    let cpu0 = cpu_ticks(pid);
    std::thread::sleep(FOOTPRINT_WINDOW);
    let cpu1 = cpu_ticks(pid);
    let cpu_pct = (cpu1 - cpu0) as f64 / 100.0 / FOOTPRINT_WINDOW.as_secs_f64() * 100.0;
    let rss_mib = rss_kib(pid) as f64 / 1024.0;
    Measured { starts, restarts, rss_mib, cpu_pct }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}
