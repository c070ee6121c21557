//! Standalone latency and footprint of three systems on the same private containerd, one after
//! another in the same run, each from a clean runtime, all timed by the same code from the outside
//! (ListContainers through CRI), never from a system's own logs:
//! - floor: the CRI calls staticlet makes, issued directly by this program with no daemon between
//!   (RunPodSandbox, ImageStatus, CreateContainer, StartContainer; StopContainer, StopPodSandbox,
//!   RemovePodSandbox to remove; stop-then-start to replace);
//! - staticlet (release build), fed through its manifest directory;
//! - kubelet (see support/kubelet.rs for its settings), fed through the same kind of directory.
//!
//! Scenarios, each `BENCH_RUNS` times (default 10): a manifest written -> its container running,
//! for 1, 10 and 100 pods at once; the manifest edited (args changed) -> the new version running;
//! a container killed from outside -> running again (first restart, no back-off); manifests removed
//! -> no container of theirs running (grace 1 s, a process that exits on SIGTERM). Footprint: RSS
//! and CPU over a 60 s idle window with 0, 10 and 100 pods, on a fresh process.
//!
//! `cargo bench --bench standalone` after `hack/testenv up --cluster` and
//! `eval "$(hack/testenv env)"`; `hack/bench` runs it with everything else. It prints and records;
//! nothing here asserts.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/kubelet.rs"]
mod kubelet;
#[path = "support/process.rs"]
mod process;
#[path = "support/report.rs"]
mod report;
#[path = "support/workload.rs"]
mod workload;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use report::{FLOOR, KUBELET, Report, STATICLET};
use staticlet::{
    cri::{Cri, Runtime, api, translate},
    manifest::{Origin, StaticPod, parse_manifest},
};

const FOOTPRINT_WINDOW: Duration = Duration::from_secs(60);
const BATCHES: [usize; 2] = [10, 100];

fn main() {
    let runs = std::env::var("BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(10);
    let window = std::env::var("BENCH_WINDOW_S").ok().and_then(|s| s.parse().ok()).map(Duration::from_secs);
    let window = window.unwrap_or(FOOTPRINT_WINDOW);
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cri = tokio.block_on(async { common::runtime() });
    let outside = Outside { tokio: &tokio, cri: &cri };

    let mut report = Report::new("standalone");
    report.context("runtime", tokio.block_on(async { cri.version().await.map(|(n, v)| format!("{n} {v}")) }).ok());
    report.context("runs", runs);
    report.context("footprint_window_s", window.as_secs());
    report.context("cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));

    // BENCH_SYSTEMS=floor,staticlet runs only those (for working on the bench itself).
    let systems = std::env::var("BENCH_SYSTEMS").unwrap_or_else(|_| format!("{FLOOR},{STATICLET},{KUBELET}"));
    let wanted = |system: &str| systems.split(',').any(|s| s == system);

    if wanted(FLOOR) {
        latency(&mut report, &outside, &mut Floor::new(), runs);
    }
    if wanted(STATICLET) {
        let mut staticlet = common::Daemon::new("bench");
        staticlet.file_check_frequency = "20s".into(); // the default, as kubelet runs with its own
        staticlet.start();
        let mut agent = Agent { name: STATICLET, node: staticlet.node.clone(), manifests: staticlet.manifests.clone() };
        footprint(&mut report, &outside, &mut agent, staticlet.pid(), window);
        latency(&mut report, &outside, &mut agent, runs);
    }
    let node = common::node_name("kubelet");
    match wanted(KUBELET).then(|| kubelet::Kubelet::start(&node, &common::endpoint(), None)) {
        None => {}
        Some(Some(k)) => {
            report.context("kubelet", k8s_version());
            let mut agent = Agent { name: KUBELET, node: k.node.clone(), manifests: k.manifests.clone() };
            footprint(&mut report, &outside, &mut agent, k.pid(), window);
            latency(&mut report, &outside, &mut agent, runs);
        }
        Some(None) => println!("kubelet: not built (run `hack/testenv up --cluster`), skipped"),
    }
    report.finish();
}

fn k8s_version() -> String {
    std::env::var("STATICLET_K8S_VERSION").unwrap_or_default()
}

/// A system under test: it is told what the node should run and does it, its own way.
trait System {
    fn name(&self) -> &'static str;
    fn node(&self) -> &str;
    /// Makes `pods` run at `version` (a new manifest, or an edited one).
    fn put(&mut self, pods: &[String], version: u32);
    fn delete(&mut self, pods: &[String]);
    /// What the system does about a container killed from outside; agents notice by themselves.
    fn after_kill(&mut self, _pod: &str) {}
    /// Waits, untimed, for work left over from the previous change.
    fn quiesce(&mut self) {}
}

/// The runtime as seen from outside: which containers run, by pod name.
struct Outside<'a> {
    tokio: &'a tokio::runtime::Runtime,
    cri: &'a Runtime,
}

impl Outside<'_> {
    fn running(&self) -> HashMap<String, Vec<String>> {
        let list = self.tokio.block_on(self.cri.list_containers(&[])).unwrap_or_default();
        let mut by_pod: HashMap<String, Vec<String>> = HashMap::new();
        for c in list.into_iter().filter(|c| c.state == api::ContainerState::ContainerRunning as i32) {
            if let Some(pod) = c.labels.get("io.kubernetes.pod.name") {
                by_pod.entry(pod.clone()).or_default().push(c.id);
            }
        }
        by_pod
    }

    /// Time from `act` until `done` holds for the runtime's listing. Polls every 2 ms for one pod
    /// and more slowly for many, so the listing itself (which grows with the pod count) does not
    /// crowd the runtime; the poll interval bounds the figures' resolution.
    fn time(
        &self,
        system: &mut dyn System,
        pods: usize,
        what: &str,
        act: impl FnOnce(&mut dyn System),
        mut done: impl FnMut(&HashMap<String, Vec<String>>) -> bool,
    ) -> Duration {
        system.quiesce();
        let interval = Duration::from_millis(match pods {
            0..=1 => 2,
            2..=10 => 5,
            _ => 20,
        });
        let start = Instant::now();
        act(system);
        let deadline = start + Duration::from_secs(180);
        loop {
            if done(&self.running()) {
                return start.elapsed();
            }
            assert!(Instant::now() < deadline, "{what}: not done after 180 s");
            std::thread::sleep(interval);
        }
    }

    fn kill(&self, container: &str) {
        self.tokio.block_on(self.cri.stop_container(container, Duration::ZERO)).unwrap();
    }
}

fn full_names(system: &dyn System, pods: &[String]) -> Vec<String> {
    pods.iter().map(|p| format!("{p}-{}", system.node())).collect()
}

/// Every scenario but the footprint, for one system.
fn latency(report: &mut Report, outside: &Outside, system: &mut dyn System, runs: usize) {
    let name = system.name();
    let (mut start, mut edit, mut restart, mut remove) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        let pods = vec![format!("single{run}")];
        let full = full_names(system, &pods);
        let what = format!("{name}: {}", full[0]);
        start.push(outside.time(system, 1, &what, |s| s.put(&pods, 0), |r| r.contains_key(&full[0])));
        std::thread::sleep(Duration::from_millis(500));

        let old = outside.running().remove(&full[0]).unwrap_or_default();
        edit.push(outside.time(
            system,
            1,
            &what,
            |s| s.put(&pods, 1),
            |r| r.get(&full[0]).is_some_and(|ids| ids.iter().any(|id| !old.contains(id))),
        ));
        std::thread::sleep(Duration::from_millis(500));

        let victim = outside.running().remove(&full[0]).and_then(|ids| ids.into_iter().next()).unwrap();
        outside.kill(&victim);
        restart.push(outside.time(
            system,
            1,
            &what,
            |s| s.after_kill(&full[0]),
            |r| r.get(&full[0]).is_some_and(|ids| ids.iter().any(|id| *id != victim)),
        ));
        std::thread::sleep(Duration::from_millis(300));

        remove.push(outside.time(system, 1, &what, |s| s.delete(&pods), |r| !r.contains_key(&full[0])));
        std::thread::sleep(Duration::from_millis(500));
    }
    report.latency("start 1 pod", name, &start);
    report.latency("edit -> new version running", name, &edit);
    report.latency("kill -> running again", name, &restart);
    report.latency("remove 1 pod -> gone", name, &remove);

    for batch in BATCHES {
        let (mut starts, mut removes) = (vec![], vec![]);
        for run in 0..runs {
            let pods: Vec<String> = (0..batch).map(|i| format!("b{batch}r{run}p{i}")).collect();
            let full = full_names(system, &pods);
            let what = format!("{name}: {batch} pods, run {run}");
            starts.push(outside.time(
                system,
                batch,
                &what,
                |s| s.put(&pods, 0),
                |r| full.iter().all(|p| r.contains_key(p)),
            ));
            std::thread::sleep(Duration::from_millis(500));
            removes.push(outside.time(
                system,
                batch,
                &what,
                |s| s.delete(&pods),
                |r| !full.iter().any(|p| r.contains_key(p)),
            ));
            std::thread::sleep(Duration::from_millis(500));
        }
        report.latency(&format!("start {batch} pods"), name, &starts);
        report.latency(&format!("remove {batch} pods -> gone"), name, &removes);
    }
}

/// RSS and CPU at rest with 0, 10 and 100 pods, on a process that has not run anything else yet.
fn footprint(report: &mut Report, outside: &Outside, system: &mut dyn System, pid: u32, window: Duration) {
    let name = system.name();
    let mut pods = vec![];
    for count in [0, 10, 100] {
        let more: Vec<String> = (pods.len()..count).map(|i| format!("idle{i}")).collect();
        let full = full_names(system, &more);
        outside.time(
            system,
            more.len(),
            "footprint pods",
            |s| s.put(&more, 0),
            |r| full.iter().all(|p| r.contains_key(p)),
        );
        pods.extend(more);
        std::thread::sleep(Duration::from_secs(10));
        let cpu = process::cpu_percent(pid, window);
        report.record(&format!("RSS, {count} pods"), name, "MiB", vec![process::rss_mib(pid)]);
        report.record(&format!("CPU at rest, {count} pods"), name, "%", vec![cpu]);
    }
    let full = full_names(system, &pods);
    outside.time(
        system,
        pods.len(),
        "footprint pods",
        |s| s.delete(&pods),
        |r| !full.iter().any(|p| r.contains_key(p)),
    );
    // Let the runtime finish removing 100 sandboxes before anything is timed.
    std::thread::sleep(Duration::from_secs(10));
}

/// staticlet or kubelet: each change is a manifest file renamed into (or removed from) its directory.
struct Agent {
    name: &'static str,
    node: String,
    manifests: PathBuf,
}

impl System for Agent {
    fn name(&self) -> &'static str {
        self.name
    }

    fn node(&self) -> &str {
        &self.node
    }

    fn put(&mut self, pods: &[String], version: u32) {
        for pod in pods {
            let tmp = self.manifests.with_file_name(format!(".{pod}.yaml"));
            std::fs::write(&tmp, manifest(pod, version)).unwrap();
            std::fs::rename(&tmp, self.manifests.join(format!("{pod}.yaml"))).unwrap();
        }
    }

    fn delete(&mut self, pods: &[String]) {
        for pod in pods {
            std::fs::remove_file(self.manifests.join(format!("{pod}.yaml"))).unwrap();
        }
    }
}

fn manifest(name: &str, version: u32) -> String {
    workload::manifest(name, "standalone", version)
}

/// The floor: staticlet's CRI calls for each change, made directly and concurrently across pods, on
/// a thread of their own so that the same outside observation times them as it times the agents.
struct Floor {
    tokio: tokio::runtime::Runtime,
    shared: Arc<FloorShared>,
    pods: Arc<Mutex<HashMap<String, FloorPod>>>,
    pending: Vec<tokio::task::JoinHandle<()>>,
}

struct FloorShared {
    cri: Runtime,
    node: String,
    logs: tempfile::TempDir,
}

struct FloorPod {
    spec: StaticPod,
    sandbox: String,
    config: api::PodSandboxConfig,
    container: String,
    restarts: u32,
}

impl Floor {
    fn new() -> Self {
        let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let cri = tokio.block_on(async { common::runtime() });
        let logs = tempfile::tempdir().unwrap();
        let shared = Arc::new(FloorShared { cri, node: common::node_name("floor"), logs });
        Self { tokio, shared, pods: Default::default(), pending: vec![] }
    }

    /// Waits for the previous change's calls (a removal's sandbox clean-up may still run).
    fn settle(&mut self) {
        for task in self.pending.drain(..) {
            self.tokio.block_on(task).unwrap();
        }
    }

    fn spec(&self, pod: &str, version: u32) -> StaticPod {
        let origin = Origin::file(format!("/bench/{pod}.yaml"));
        parse_manifest(manifest(pod, version).as_bytes(), &origin, &self.shared.node).unwrap().remove(0)
    }
}

impl FloorShared {
    async fn start(&self, spec: StaticPod) -> FloorPod {
        let config = translate::sandbox_config(&spec, &self.node, self.logs.path(), 0);
        let sandbox = self.cri.run_sandbox(config.clone(), "").await.unwrap();
        let mut pod = FloorPod { spec, sandbox, config, container: String::new(), restarts: 0 };
        self.start_container(&mut pod).await;
        pod
    }

    async fn start_container(&self, pod: &mut FloorPod) {
        let container = &pod.spec.spec().containers[0];
        self.cri.image_id(container.image.as_deref().unwrap()).await.unwrap();
        let sub_paths = Default::default();
        let ctx = translate::ContainerContext {
            restart_count: pod.restarts,
            pod_ip: "",
            node_ip: "",
            volumes_dir: self.logs.path(),
            sub_paths: &sub_paths,
        };
        let config = translate::container_config(&pod.spec, &self.node, container, &ctx);
        pod.container = self.cri.create_container(&pod.sandbox, config, pod.config.clone()).await.unwrap();
        self.cri.start_container(&pod.container).await.unwrap();
    }

    async fn stop(&self, pod: FloorPod) {
        let grace = pod.spec.spec().termination_grace_period_seconds.unwrap_or(30) as u64;
        // containerd 1.6 sometimes fails a kill with "ttrpc: closed" when the process exits on the
        // SIGTERM at the same moment; StopPodSandbox stops whatever still runs, as staticlet's
        // retry would.
        if let Err(e) = self.cri.stop_container(&pod.container, Duration::from_secs(grace)).await {
            eprintln!("floor: {e}; stopping the sandbox anyway");
        }
        self.cri.stop_sandbox(&pod.sandbox).await.unwrap();
        self.cri.remove_sandbox(&pod.sandbox).await.unwrap();
    }
}

impl System for Floor {
    fn name(&self) -> &'static str {
        FLOOR
    }

    fn quiesce(&mut self) {
        self.settle();
    }

    fn node(&self) -> &str {
        &self.shared.node
    }

    fn put(&mut self, pods: &[String], version: u32) {
        self.settle();
        for name in pods {
            let (shared, all) = (self.shared.clone(), self.pods.clone());
            let (old, spec) = (all.lock().unwrap().remove(name), self.spec(name, version));
            let name = name.clone();
            self.pending.push(self.tokio.spawn(async move {
                if let Some(old) = old {
                    shared.stop(old).await;
                }
                let new = shared.start(spec).await;
                all.lock().unwrap().insert(name, new);
            }));
        }
    }

    fn delete(&mut self, pods: &[String]) {
        self.settle();
        for name in pods {
            let Some(old) = self.pods.lock().unwrap().remove(name) else { continue };
            let shared = self.shared.clone();
            self.pending.push(self.tokio.spawn(async move { shared.stop(old).await }));
        }
    }

    fn after_kill(&mut self, full_name: &str) {
        self.settle();
        let name = full_name.strip_suffix(&format!("-{}", self.shared.node)).unwrap().to_owned();
        let mut pod = self.pods.lock().unwrap().remove(&name).unwrap();
        let (shared, all) = (self.shared.clone(), self.pods.clone());
        self.pending.push(self.tokio.spawn(async move {
            pod.restarts += 1;
            shared.start_container(&mut pod).await;
            all.lock().unwrap().insert(name, pod);
        }));
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let pods: Vec<String> = self.pods.lock().unwrap().keys().cloned().collect();
        self.delete(&pods);
        self.settle();
    }
}
