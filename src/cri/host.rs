//! What the pod translation needs to know about this machine, read once: memory capacity (the
//! Burstable OOM score formula), huge page sizes (every size gets a limit), CPU count (the
//! `/kubepods` cgroup's weight), AppArmor (profiles are refused where it is off), the
//! `thermal_throttle` paths kubelet masks, and the cgroup version. The formulas take a `Host`, so
//! table tests pass one in; the daemon uses `Host::current()`.

use std::{path::Path, sync::OnceLock};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Bytes, as cAdvisor reports it to kubelet (`MemTotal` of /proc/meminfo).
    pub memory_capacity: i64,
    /// CRI page sizes (`2MB`, `1GB`), as runc's `HugePageSizes()` names the host's sizes.
    pub hugepage_sizes: Vec<String>,
    /// Online CPUs (kubelet's node capacity).
    pub cpus: u32,
    /// `/sys/module/apparmor/parameters/enabled` says `Y` (and securityfs shows AppArmor).
    pub apparmor: bool,
    /// `/sys/devices/system/cpu/cpu<N>/thermal_throttle` directories that exist (kubelet masks them).
    pub thermal_throttle_paths: Vec<String>,
    /// cgroup v2 only (`/sys/fs/cgroup/cgroup.controllers` exists).
    pub cgroup_v2: bool,
}

impl Host {
    /// This machine, read on first use.
    pub fn current() -> &'static Host {
        static HOST: OnceLock<Host> = OnceLock::new();
        HOST.get_or_init(|| Host::read(Path::new("/")))
    }

    /// Reads the facts under `root` (`/` for this machine); what cannot be read is left empty or
    /// zero (a memory capacity of 0 gives every Burstable container 999).
    pub fn read(root: &Path) -> Host {
        let text = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_default();
        let memory_capacity = text("proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            .map_or(0, |kib| kib * 1024);
        let mut sizes: Vec<u64> = std::fs::read_dir(root.join("sys/kernel/mm/hugepages"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok())
            .collect();
        sizes.sort_unstable();
        let possible = cpu_list(text("sys/devices/system/cpu/possible").trim());
        let cpus = cpu_list(text("sys/devices/system/cpu/online").trim()).len().max(1) as u32;
        let thermal_throttle_paths = possible
            .iter()
            .map(|cpu| format!("/sys/devices/system/cpu/cpu{cpu}/thermal_throttle"))
            .filter(|p| root.join(p.trim_start_matches('/')).exists())
            .collect();
        Host {
            memory_capacity,
            hugepage_sizes: sizes.into_iter().map(|kib| hugepage_size_name(kib * 1024)).collect(),
            cpus,
            apparmor: root.join("sys/kernel/security/apparmor").exists()
                && text("sys/module/apparmor/parameters/enabled").starts_with('Y'),
            thermal_throttle_paths,
            cgroup_v2: root.join("sys/fs/cgroup/cgroup.controllers").exists(),
        }
    }
}

/// runc's `HugePageSizeToString` (and kubelet's `HugePageUnitSizeFromByteSize`): 2097152 ->
/// `2MB`, 1073741824 -> `1GB`, in 1024 steps.
pub fn hugepage_size_name(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let (mut size, mut unit) = (bytes, 0);
    while size >= 1024 && size % 1024 == 0 && unit < units.len() - 1 {
        size /= 1024;
        unit += 1;
    }
    format!("{size}{}", units[unit])
}

/// `0-3,5` -> [0, 1, 2, 3, 5].
fn cpu_list(text: &str) -> Vec<u32> {
    let mut cpus = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    cpus.extend(a..=b);
                }
            }
            None => cpus.extend(part.parse::<u32>().ok()),
        }
    }
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_host_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |p: &str, s: &str| {
            std::fs::create_dir_all(root.join(p).parent().unwrap()).unwrap();
            std::fs::write(root.join(p), s).unwrap();
        };
        write("proc/meminfo", "MemTotal:       24731184 kB\nMemFree:  1 kB\n");
        write("sys/devices/system/cpu/possible", "0-3\n");
        write("sys/devices/system/cpu/online", "0-1\n");
        std::fs::create_dir_all(root.join("sys/devices/system/cpu/cpu2/thermal_throttle")).unwrap();
        std::fs::create_dir_all(root.join("sys/kernel/mm/hugepages/hugepages-1048576kB")).unwrap();
        std::fs::create_dir_all(root.join("sys/kernel/mm/hugepages/hugepages-2048kB")).unwrap();
        write("sys/module/apparmor/parameters/enabled", "N\n");
        let host = Host::read(root);
        assert_eq!(host.memory_capacity, 24731184 * 1024);
        assert_eq!(host.hugepage_sizes, ["2MB", "1GB"]);
        assert_eq!(host.cpus, 2);
        assert_eq!(host.thermal_throttle_paths, ["/sys/devices/system/cpu/cpu2/thermal_throttle"]);
        assert!(!host.apparmor, "AppArmor says N");
        assert!(!host.cgroup_v2);
        write("sys/module/apparmor/parameters/enabled", "Y\n");
        std::fs::create_dir_all(root.join("sys/kernel/security/apparmor")).unwrap();
        assert!(Host::read(root).apparmor);
    }

    #[test]
    fn hugepage_sizes_are_named_as_runc_names_them() {
        for (bytes, name) in [(2 << 20, "2MB"), (1 << 30, "1GB"), (64 << 10, "64KB"), (512, "512B"), (3 << 40, "3TB")] {
            assert_eq!(hugepage_size_name(bytes), name);
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list("0-1"), [0, 1]);
        assert_eq!(cpu_list("0,2-3,7"), [0, 2, 3, 7]);
        assert_eq!(cpu_list(""), Vec::<u32>::new());
    }
}
