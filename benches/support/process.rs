//! A process's footprint, read from /proc.

#![allow(dead_code)]

use std::time::Duration;

/// Resident memory, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    status_mib(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// Of the resident memory, what is the process's own (heap, stacks: `RssAnon`) rather than
/// pages of its binary and libraries (`RssFile`), in MiB.
pub fn rss_anon_mib(pid: u32) -> f64 {
    status_mib(&format!("/proc/{pid}/status"), "RssAnon:")
}

/// The machine's available memory (`MemAvailable`), in MiB.
pub fn available_mib() -> f64 {
    status_mib("/proc/meminfo", "MemAvailable:")
}

fn status_mib(file: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(file).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    kib as f64 / 1024.0
}

/// User plus system CPU time so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // In clock ticks of USER_HZ, which Linux fixes at 100.
    Duration::from_millis(ticks * 10)
}

/// CPU used over `window`, as a percentage of one core.
pub fn cpu_percent(pid: u32, window: Duration) -> f64 {
    let before = cpu_time(pid);
    std::thread::sleep(window);
    (cpu_time(pid) - before).as_secs_f64() / window.as_secs_f64() * 100.0
}
