//! The node's own usage, read as cAdvisor reads the root cgroup for kubelet:
//!
//! | | cgroup v1 | cgroup v2 |
//! |---|---|---|
//! | CPU | `cpuacct/cpuacct.usage` | `cpu.stat` usage_usec × 1000 |
//! | memory usage | `memory/memory.usage_in_bytes` | `memory.current`; the root has none, so /proc/meminfo's MemTotal − MemFree (runc's rule) |
//! | working set | usage − `total_inactive_file` | usage − `inactive_file` (0 if that is more) |
//! | RSS | `total_rss` | `anon` |
//! | page faults | `pgfault`, `pgmajfault` (cAdvisor takes the cgroup's own, not `total_`) | `pgfault`, `pgmajfault` |
//! | swap | `total_swap` (0 without swap accounting) | `memory.swap.current`, at the root SwapTotal − SwapFree |
//!
//! availableBytes is the machine's memory minus the working set, and swap's SwapTotal minus the
//! swap used (cAdvisor gives the root cgroup the machine's memory and swap as its limits); the
//! start time is the boot time (/proc/stat `btime`); the filesystem is statvfs of the root
//! directory.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use super::{Cpu, Fs, Memory, NodeSample, StatsError, Swap, UnixNanos};

/// Where the node's readings come from; `host` for this machine, a directory tree in tests.
#[derive(Debug, Clone)]
pub struct NodeFiles {
    /// Where cgroup hierarchies are mounted (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    pub proc_root: PathBuf,
    /// The directory whose filesystem is the node's (staticlet's --root-dir).
    pub root_dir: PathBuf,
}

impl NodeFiles {
    pub fn host(root_dir: &Path) -> Self {
        Self {
            cgroup_root: PathBuf::from(crate::cri::pod_cgroup::CGROUP_ROOT),
            proc_root: PathBuf::from("/proc"),
            root_dir: root_dir.to_owned(),
        }
    }
}

/// One reading of the node at `now`.
pub(super) fn read(files: &NodeFiles, now: UnixNanos) -> Result<NodeSample, StatsError> {
    let meminfo = key_values(&text(&files.proc_root.join("meminfo"))?, 1024);
    let boot_time =
        key_values(&text(&files.proc_root.join("stat"))?, 1).get("btime").map_or(0, |s| *s as i64 * 1_000_000_000);
    let root = &files.cgroup_root;
    let raw = if root.join("cgroup.controllers").exists() { v2(root, &meminfo)? } else { v1(root)? };
    let working_set = raw.usage.saturating_sub(raw.inactive_file);
    let capacity = meminfo.get("MemTotal").copied();
    Ok(NodeSample {
        boot_time,
        cpu: Some(Cpu { time: now, usage_core_nano_seconds: Some(raw.cpu_ns), usage_nano_cores: None }),
        memory: Some(Memory {
            time: now,
            available_bytes: capacity.map(|c| c.saturating_sub(working_set)),
            usage_bytes: Some(raw.usage),
            working_set_bytes: Some(working_set),
            rss_bytes: Some(raw.rss),
            page_faults: Some(raw.page_faults),
            major_page_faults: Some(raw.major_page_faults),
        }),
        swap: Some(Swap {
            time: now,
            usage_bytes: Some(raw.swap),
            available_bytes: meminfo.get("SwapTotal").map(|total| total.saturating_sub(raw.swap)),
        }),
        fs: statvfs(&files.root_dir, now),
    })
}

/// The root cgroup's counters, before the working set is derived.
#[derive(Debug, Default, PartialEq)]
struct Raw {
    cpu_ns: u64,
    usage: u64,
    inactive_file: u64,
    rss: u64,
    page_faults: u64,
    major_page_faults: u64,
    swap: u64,
}

fn v1(root: &Path) -> Result<Raw, StatsError> {
    let memory = root.join("memory");
    let stat = key_values(&text(&memory.join("memory.stat"))?, 1);
    let usage = number(&memory.join("memory.usage_in_bytes"))?;
    let field = |key: &str| stat.get(key).copied().unwrap_or(0);
    Ok(Raw {
        cpu_ns: number(&root.join("cpuacct/cpuacct.usage"))?,
        usage,
        inactive_file: field("total_inactive_file"),
        rss: field("total_rss"),
        page_faults: field("pgfault"),
        major_page_faults: field("pgmajfault"),
        swap: field("total_swap"),
    })
}

fn v2(root: &Path, meminfo: &HashMap<String, u64>) -> Result<Raw, StatsError> {
    let cpu = key_values(&text(&root.join("cpu.stat"))?, 1);
    let stat = key_values(&text(&root.join("memory.stat"))?, 1);
    let info = |key: &str| meminfo.get(key).copied().unwrap_or(0);
    let usage =
        number(&root.join("memory.current")).unwrap_or_else(|_| info("MemTotal").saturating_sub(info("MemFree")));
    let swap = number(&root.join("memory.swap.current"))
        .unwrap_or_else(|_| info("SwapTotal").saturating_sub(info("SwapFree")));
    let field = |key: &str| stat.get(key).copied().unwrap_or(0);
    Ok(Raw {
        cpu_ns: cpu.get("usage_usec").copied().unwrap_or(0) * 1000,
        usage,
        inactive_file: field("inactive_file"),
        rss: field("anon"),
        page_faults: field("pgfault"),
        major_page_faults: field("pgmajfault"),
        swap,
    })
}

/// The size of the filesystem holding `path`, as cAdvisor reports one (used = blocks − free,
/// available = what an unprivileged user may still write); None where statvfs fails.
pub(super) fn statvfs(path: &Path, time: UnixNanos) -> Option<Fs> {
    let s = rustix::fs::statvfs(path).ok()?;
    let block = s.f_frsize;
    Some(Fs {
        time,
        available_bytes: Some(s.f_bavail * block),
        capacity_bytes: Some(s.f_blocks * block),
        used_bytes: Some(s.f_blocks.saturating_sub(s.f_bfree) * block),
        inodes_free: Some(s.f_ffree),
        inodes: Some(s.f_files),
        inodes_used: Some(s.f_files.saturating_sub(s.f_ffree)),
    })
}

fn text(path: &Path) -> Result<String, StatsError> {
    std::fs::read_to_string(path)
        .map_err(|e| StatsError::Node { path: path.display().to_string(), message: e.to_string() })
}

fn number(path: &Path) -> Result<u64, StatsError> {
    let text = text(path)?;
    text.trim()
        .parse()
        .map_err(|e| StatsError::Node { path: path.display().to_string(), message: format!("{:?}: {e}", text.trim()) })
}

/// `key value [kB]` lines (memory.stat, cpu.stat, /proc/stat, /proc/meminfo), values in kB
/// multiplied by `kb`; lines whose value is not a number are skipped.
fn key_values(text: &str, kb: u64) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let key = words.next()?.trim_end_matches(':');
            let value: u64 = words.next()?.parse().ok()?;
            let scale = if words.next() == Some("kB") { kb } else { 1 };
            Some((key.to_owned(), value * scale))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, NodeFiles) {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        let files = NodeFiles {
            cgroup_root: dir.path().join("sys/fs/cgroup"),
            proc_root: dir.path().join("proc"),
            root_dir: dir.path().to_owned(),
        };
        (dir, files)
    }

    const MEMINFO: &str =
        "MemTotal:       16000000 kB\nMemFree:         2000000 kB\nSwapTotal:       1000 kB\nSwapFree:        600 kB\n";
    const STAT: &str = "cpu  1 2 3\nbtime 1764650000\nprocesses 42\n";

    #[test]
    fn cgroup_v1_root_reads_as_cadvisor_reads_it() {
        let (_dir, files) = tree(&[
            ("proc/meminfo", MEMINFO),
            ("proc/stat", STAT),
            ("sys/fs/cgroup/cpuacct/cpuacct.usage", "32910498296491\n"),
            ("sys/fs/cgroup/memory/memory.usage_in_bytes", "15561502720\n"),
            (
                "sys/fs/cgroup/memory/memory.stat",
                "rss 1\npgfault 104525\npgmajfault 3\ninactive_file 2\ntotal_rss 6754304\ntotal_pgfault 769748966\n\
                 total_pgmajfault 45048\ntotal_inactive_file 2454564864\ntotal_swap 4096\n",
            ),
        ]);
        let node = read(&files, 7).unwrap();
        assert_eq!(node.boot_time, 1764650000 * 1_000_000_000);
        assert_eq!(
            node.cpu,
            Some(Cpu { time: 7, usage_core_nano_seconds: Some(32910498296491), usage_nano_cores: None })
        );
        let memory = node.memory.unwrap();
        assert_eq!(memory.usage_bytes, Some(15561502720));
        assert_eq!(memory.working_set_bytes, Some(15561502720 - 2454564864), "usage minus total_inactive_file");
        assert_eq!(memory.available_bytes, Some(16000000 * 1024 - (15561502720 - 2454564864)));
        assert_eq!(
            (memory.rss_bytes, memory.page_faults, memory.major_page_faults),
            (Some(6754304), Some(104525), Some(3)),
            "total_rss, but the cgroup's own page faults"
        );
        let swap = node.swap.unwrap();
        assert_eq!((swap.usage_bytes, swap.available_bytes), (Some(4096), Some(1000 * 1024 - 4096)), "total_swap");
        assert!(node.fs.unwrap().capacity_bytes.unwrap() > 0, "statvfs of the root directory");
    }

    #[test]
    fn cgroup_v2_root_takes_usage_and_swap_from_meminfo() {
        let (_dir, files) = tree(&[
            ("proc/meminfo", MEMINFO),
            ("proc/stat", STAT),
            ("sys/fs/cgroup/cgroup.controllers", "cpu memory\n"),
            ("sys/fs/cgroup/cpu.stat", "usage_usec 1500\nuser_usec 1000\n"),
            ("sys/fs/cgroup/memory.stat", "anon 300\nfile 900\ninactive_file 1000\npgfault 5\npgmajfault 1\n"),
        ]);
        let node = read(&files, 7).unwrap();
        assert_eq!(node.cpu.unwrap().usage_core_nano_seconds, Some(1_500_000));
        let memory = node.memory.unwrap();
        assert_eq!(memory.usage_bytes, Some(14000000 * 1024), "MemTotal - MemFree");
        assert_eq!(memory.working_set_bytes, Some(14000000 * 1024 - 1000));
        assert_eq!((memory.rss_bytes, memory.page_faults, memory.major_page_faults), (Some(300), Some(5), Some(1)));
        let swap = node.swap.unwrap();
        assert_eq!(
            (swap.usage_bytes, swap.available_bytes),
            (Some(400 * 1024), Some(600 * 1024)),
            "SwapTotal - SwapFree"
        );
    }

    #[test]
    fn cgroup_v2_working_set_never_goes_below_zero() {
        let (_dir, files) = tree(&[
            ("proc/meminfo", MEMINFO),
            ("proc/stat", STAT),
            ("sys/fs/cgroup/cgroup.controllers", ""),
            ("sys/fs/cgroup/cpu.stat", "usage_usec 1\n"),
            ("sys/fs/cgroup/memory.current", "100\n"),
            ("sys/fs/cgroup/memory.swap.current", "0\n"),
            ("sys/fs/cgroup/memory.stat", "inactive_file 250\n"),
        ]);
        let memory = read(&files, 0).unwrap().memory.unwrap();
        assert_eq!((memory.usage_bytes, memory.working_set_bytes), (Some(100), Some(0)));
    }

    #[test]
    fn a_missing_cgroup_file_is_an_error_naming_it() {
        let (_dir, files) = tree(&[("proc/meminfo", MEMINFO), ("proc/stat", STAT)]);
        let error = read(&files, 0).unwrap_err().to_string();
        assert!(error.contains("memory/memory.stat"), "{error}");
    }
}
