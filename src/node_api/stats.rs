//! The resource usage kubelet serves on :10250, for this node's static pods: one `Sample` of the
//! node, its pods and their containers (`collect`), rendered as kubelet's `/metrics/resource`
//! (`resource_metrics`, what metrics-server scrapes) and `/stats/summary` (`summary`).
//!
//! Containers and pods come from CRI (ListContainerStats, ListPodSandboxStats: the runtime reads
//! their cgroups), the node from its root cgroup (`node`), by cAdvisor's rules, as kubelet's
//! cAdvisor reads it. Which sandbox and containers count is kubelet's choice: the ready sandbox
//! of a pod and its running containers (`sample`). Pods are named as their mirror pods are
//! (`<name>-<node>`, the manifest's namespace) and carry the static pod's UID, which is what the
//! sandbox's metadata says.
//!
//! usageNanoCores is a rate, so it needs two samples: `Rates` keeps the previous one.

mod node;
mod rates;
mod resource;
mod sample;
mod summary;

use std::{
    collections::BTreeMap,
    time::{SystemTime, UNIX_EPOCH},
};

pub use node::NodeFiles;
pub use rates::Rates;
pub use resource::{CONTENT_TYPE, resource_metrics, resource_metrics_failed};
pub use summary::{
    ContainerStats, CpuStats, FsStats, InterfaceStats, MemoryStats, NetworkStats, NodeStats, PodReference, PodStats,
    ProcessStats, Summary, SwapStats, Time, summary,
};

use crate::cri::{Cri, CriError, RuntimePod, labels};

/// Nanoseconds since the Unix epoch, as CRI stamps its readings.
pub type UnixNanos = i64;

/// One reading of the node and its pods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub node: NodeSample,
    /// By namespace, then name.
    pub pods: Vec<PodSample>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSample {
    /// When the machine booted: kubelet's node startTime.
    pub boot_time: UnixNanos,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    pub swap: Option<Swap>,
    /// The filesystem of staticlet's root directory (kubelet's: its --root-dir's).
    pub fs: Option<Fs>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodSample {
    /// The mirror pod's name and namespace, the static pod's UID.
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub sandbox_id: String,
    /// The sandbox's creation, as kubelet reports a pod's startTime.
    pub start_time: UnixNanos,
    /// By name.
    pub containers: Vec<ContainerSample>,
    /// The pod cgroup's, or the sum of the containers' where the runtime has no sandbox stats.
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    pub swap: Option<Swap>,
    pub network: Option<Network>,
    pub process_count: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSample {
    pub id: String,
    pub name: String,
    /// The container's creation, as kubelet reports its startTime.
    pub start_time: UnixNanos,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    pub swap: Option<Swap>,
    /// The writable layer, with its filesystem's size.
    pub rootfs: Option<Fs>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cpu {
    pub time: UnixNanos,
    /// Cumulative CPU time, in core-nanoseconds.
    pub usage_core_nano_seconds: Option<u64>,
    /// Filled in by `Rates` from the previous sample; never the runtime's.
    pub usage_nano_cores: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Memory {
    pub time: UnixNanos,
    /// Up to the limit (the machine's memory for the node); absent when unlimited.
    pub available_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    /// Usage minus inactive file cache: what the OOM killer and eviction look at.
    pub working_set_bytes: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub page_faults: Option<u64>,
    pub major_page_faults: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Swap {
    pub time: UnixNanos,
    pub usage_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Fs {
    pub time: UnixNanos,
    pub available_bytes: Option<u64>,
    pub capacity_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub inodes_free: Option<u64>,
    pub inodes: Option<u64>,
    pub inodes_used: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Network {
    pub time: UnixNanos,
    /// The pod's `eth0`.
    pub default: Option<Interface>,
    pub interfaces: Vec<Interface>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interface {
    pub name: String,
    pub rx_bytes: Option<u64>,
    pub rx_errors: Option<u64>,
    pub tx_bytes: Option<u64>,
    pub tx_errors: Option<u64>,
}

/// Why no sample could be taken; kubelet then serves `resource_scrape_error 1`.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Cri(#[from] CriError),
    #[error("reading the node's usage from {path}: {message}")]
    Node { path: String, message: String },
}

/// One sample of this node's static pods and of the node itself: `pods` is what the relist
/// last saw (`Observer::latest`), so a scrape costs only the two stats calls, filtered by the
/// node label. usageNanoCores is left empty: `Rates::fill` computes it.
pub async fn collect(
    cri: &dyn Cri,
    node: &str,
    pods: &BTreeMap<String, RuntimePod>,
    files: &NodeFiles,
) -> Result<Sample, StatsError> {
    let ours = [(labels::NODE, node)];
    let (container_stats, sandbox_stats) =
        tokio::try_join!(cri.list_container_stats(&ours), sandbox_stats(cri, &ours))?;
    let mut fs = sample::FsCache::default();
    let pods = sample::pods(pods, container_stats, sandbox_stats, &mut |mountpoint, time| fs.get(mountpoint, time));
    let node = node::read(files, now())?;
    Ok(Sample { node, pods })
}

/// A runtime without ListPodSandboxStats (Unimplemented) gets its pods summed from their
/// containers, as kubelet does.
async fn sandbox_stats(
    cri: &dyn Cri,
    labels: &[(&str, &str)],
) -> Result<Vec<crate::cri::api::PodSandboxStats>, CriError> {
    match cri.list_pod_sandbox_stats(labels).await {
        Err(CriError::Rpc { code: tonic::Code::Unimplemented, .. }) => Ok(Vec::new()),
        other => other,
    }
}

fn now() -> UnixNanos {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::{api, fake::FakeCri};

    /// A cgroup v2 machine in a directory.
    fn machine() -> (tempfile::TempDir, NodeFiles) {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("proc/meminfo", "MemTotal: 1000 kB\nMemFree: 500 kB\n");
        write("proc/stat", "btime 1764650000\n");
        write("cgroup/cgroup.controllers", "cpu memory\n");
        write("cgroup/cpu.stat", "usage_usec 10\n");
        write("cgroup/memory.stat", "inactive_file 0\n");
        let files = NodeFiles {
            cgroup_root: dir.path().join("cgroup"),
            proc_root: dir.path().join("proc"),
            root_dir: dir.path().to_owned(),
        };
        (dir, files)
    }

    /// Runs a pod of one running container on `node`, as staticlet labels them.
    async fn run_pod(cri: &FakeCri, node: &str, name: &str) -> String {
        let labels: std::collections::HashMap<String, String> = [
            (labels::POD_NAME, format!("{name}-{node}")),
            (labels::POD_NAMESPACE, "kube-system".to_owned()),
            (labels::POD_UID, format!("uid-{name}")),
            (labels::NODE, node.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let config = api::PodSandboxConfig { labels: labels.clone(), ..Default::default() };
        let sandbox = cri.run_sandbox(config.clone(), "").await.unwrap();
        let mut container_labels = labels;
        container_labels.insert(labels::CONTAINER_NAME.into(), "main".into());
        let container = api::ContainerConfig { labels: container_labels, ..Default::default() };
        let id = cri.create_container(&sandbox, container, config).await.unwrap();
        cri.start_container(&id).await.unwrap();
        let v = |value| Some(api::UInt64Value { value });
        let stats = api::ContainerStats {
            cpu: Some(api::CpuUsage { timestamp: 5, usage_core_nano_seconds: v(42), usage_nano_cores: None }),
            memory: Some(api::MemoryUsage { timestamp: 5, working_set_bytes: v(4096), ..Default::default() }),
            ..Default::default()
        };
        cri.set_container_stats(&id, stats);
        id
    }

    #[tokio::test]
    async fn collect_takes_this_nodes_pods_and_sums_them_where_the_runtime_lacks_sandbox_stats() {
        let cri = FakeCri::default();
        let (_dir, files) = machine();
        run_pod(&cri, "node-a", "etcd").await;
        run_pod(&cri, "node-b", "theirs").await;
        cri.fail_next(
            "ListPodSandboxStats",
            crate::cri::fake::rpc_error("ListPodSandboxStats", tonic::Code::Unimplemented, "no"),
        );

        let pods = crate::cri::list_pods(&cri, "node-a").await.unwrap();
        let sample = collect(&cri, "node-a", &pods, &files).await.unwrap();
        let names: Vec<&str> = sample.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["etcd-node-a"]);
        let pod = &sample.pods[0];
        assert_eq!((pod.namespace.as_str(), pod.uid.as_str()), ("kube-system", "uid-etcd"));
        assert_eq!(pod.containers[0].memory.unwrap().working_set_bytes, Some(4096));
        assert_eq!(pod.cpu.unwrap().usage_core_nano_seconds, Some(42), "the container's, summed");
        assert_eq!(sample.node.cpu.unwrap().usage_core_nano_seconds, Some(10_000));
        assert_eq!(sample.node.boot_time, 1_764_650_000_000_000_000);
    }

    #[tokio::test]
    async fn collect_fails_naming_the_rpc_when_the_runtime_fails() {
        let cri = FakeCri::default();
        let (_dir, files) = machine();
        cri.fail_next(
            "ListContainerStats",
            crate::cri::fake::rpc_error("ListContainerStats", tonic::Code::Unavailable, "down"),
        );
        let error = collect(&cri, "node-a", &Default::default(), &files).await.unwrap_err();
        assert!(error.to_string().starts_with("ListContainerStats on unix:///fake/cri.sock: down"), "{error}");
    }
}
