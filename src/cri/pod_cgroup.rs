//! The pod's own cgroup, laid out as kubelet lays it out with the cgroupfs driver on cgroup v1:
//! `/kubepods` weighted by the node's CPUs, `/kubepods/besteffort` at 2 shares,
//! `/kubepods/burstable` at the sum of its pods' shares, and each pod's cgroup with the values of
//! `resources::pod_cgroup` (what kubelet's pod container manager writes). Created before the
//! sandbox, so the runtime only adds the containers' leaves below it; removed (where empty) when
//! the pod has stopped.
//!
//! Without the pod-level values a pod cgroup would weigh 1024 whatever its requests, and requests
//! would only split CPU among one pod's own containers. The runtime does not write them: CRI's
//! `LinuxPodSandboxConfig.resources` is informational to containerd 1.6.
//!
//! Only the cpu and memory hierarchies are written; the runtime creates the others (runc fills
//! in cpuset parents itself). kubelet's node-allocatable memory limit on `/kubepods` is not set.

use std::{
    io,
    path::{Path, PathBuf},
};

use super::resources::{PodCgroup, milli_cpu_to_shares};

/// Where cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Creates `parent` (a cgroupfs pod cgroup, `/kubepods/...`) in the cpu and memory hierarchies
/// under `root` and writes the pod's values and the QoS tiers' weights.
pub fn ensure(root: &Path, parent: &str, values: &PodCgroup, cpus: u32) -> io::Result<()> {
    let relative = parent.trim_start_matches('/');
    let cpu = root.join("cpu");
    let memory = root.join("memory");
    for hierarchy in [&cpu, &memory] {
        std::fs::create_dir_all(hierarchy.join(relative))?;
    }
    let pod = cpu.join(relative);
    write(&cpu.join("kubepods/cpu.shares"), milli_cpu_to_shares(i64::from(cpus) * 1000))?;
    if cpu.join("kubepods/besteffort").is_dir() {
        write(&cpu.join("kubepods/besteffort/cpu.shares"), 2)?;
    }
    write(&pod.join("cpu.shares"), values.cpu_shares)?;
    let (quota, period) = values.cpu_quota.unwrap_or((-1, 100_000));
    write(&pod.join("cpu.cfs_period_us"), period)?;
    write(&pod.join("cpu.cfs_quota_us"), quota)?;
    if let Some(limit) = values.memory_limit {
        write(&memory.join(relative).join("memory.limit_in_bytes"), limit)?;
    }
    update_burstable(&cpu)
}

/// Removes the pod's cgroup (any QoS tier) from every hierarchy where it is empty, and updates
/// the burstable tier's weight. Best effort: a cgroup still in use stays.
pub fn remove(root: &Path, uid: &str) {
    let candidates =
        [format!("kubepods/pod{uid}"), format!("kubepods/burstable/pod{uid}"), format!("kubepods/besteffort/pod{uid}")];
    for hierarchy in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for candidate in &candidates {
            let _ = std::fs::remove_dir(hierarchy.path().join(candidate));
        }
    }
    let _ = update_burstable(&root.join("cpu"));
}

/// kubelet's QoS manager gives `/kubepods/burstable` the shares of its pods' summed cpu
/// requests; the sum of the pods' own shares is the same up to rounding.
fn update_burstable(cpu: &Path) -> io::Result<()> {
    let tier = cpu.join("kubepods/burstable");
    if !tier.is_dir() {
        return Ok(());
    }
    let pods: Vec<PathBuf> = std::fs::read_dir(&tier)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pod"))
        .map(|e| e.path())
        .collect();
    let sum: i64 = pods
        .iter()
        .filter_map(|p| std::fs::read_to_string(p.join("cpu.shares")).ok()?.trim().parse::<i64>().ok())
        .sum();
    write(&tier.join("cpu.shares"), sum.max(2))
}

fn write(path: &Path, value: i64) -> io::Result<()> {
    std::fs::write(path, value.to_string()).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(root: &Path, path: &str) -> String {
        std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A cgroup v1 tree imitated by plain directories (the kernel creates the files itself; here
    /// the first write creates them).
    #[test]
    fn pod_and_tier_values_are_written_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("cpu/kubepods/besteffort")).unwrap();
        std::fs::create_dir_all(root.join("pids")).unwrap();
        let burst = PodCgroup { cpu_shares: 256, cpu_quota: Some((50_000, 100_000)), memory_limit: Some(64 << 20) };
        ensure(root, "/kubepods/burstable/podaaa", &burst, 2).unwrap();
        let cpu_only = PodCgroup { cpu_shares: 102, cpu_quota: None, memory_limit: None };
        ensure(root, "/kubepods/burstable/podbbb", &cpu_only, 2).unwrap();

        assert_eq!(read(root, "cpu/kubepods/cpu.shares"), "2048");
        assert_eq!(read(root, "cpu/kubepods/besteffort/cpu.shares"), "2");
        assert_eq!(read(root, "cpu/kubepods/burstable/podaaa/cpu.shares"), "256");
        assert_eq!(read(root, "cpu/kubepods/burstable/podaaa/cpu.cfs_quota_us"), "50000");
        assert_eq!(read(root, "cpu/kubepods/burstable/podaaa/cpu.cfs_period_us"), "100000");
        assert_eq!(read(root, "memory/kubepods/burstable/podaaa/memory.limit_in_bytes"), "67108864");
        assert_eq!(read(root, "cpu/kubepods/burstable/podbbb/cpu.cfs_quota_us"), "-1");
        assert!(!root.join("memory/kubepods/burstable/podbbb/memory.limit_in_bytes").exists());
        assert_eq!(read(root, "cpu/kubepods/burstable/cpu.shares"), "358", "256 + 102");

        // Real cgroup directories hold only kernel files and rmdir works on them; here the files
        // must go first.
        for file in ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"] {
            std::fs::remove_file(root.join("cpu/kubepods/burstable/podbbb").join(file)).unwrap();
        }
        remove(root, "bbb");
        assert!(!root.join("cpu/kubepods/burstable/podbbb").exists());
        assert!(!root.join("memory/kubepods/burstable/podbbb").exists());
        assert!(root.join("cpu/kubepods/burstable/podaaa").exists(), "a non-empty cgroup stays");
        assert_eq!(read(root, "cpu/kubepods/burstable/cpu.shares"), "256");
    }
}
