//! What a node pays for staticlet at rest, with container events and with the 1 s relist, on the
//! runtime the environment names (run it once per runtime; `hack/bench` does both). For 0, 10,
//! 100 and 1000 pods (`BENCH_IDLE_PODS`), on one set of pods kept running throughout: staticlet
//! is started with `--container-events=true`, measured, stopped (its pods keep running),
//! started again with `--container-events=false` and measured on the same pods, after a settle
//! of 10 s each time. Figures: staticlet's CPU (% of one core) and RSS (and of it, its own
//! memory, RssAnon, as against pages of its binary), and the runtime's CPU over the same window,
//! since a relist costs containerd as much as it costs staticlet. On a runtime without events
//! (containerd 1.6) only the relist is measured. A count whose pods would not fit in the
//! machine's memory (judged by what the previous count cost) is skipped, with a line saying so.
//!
//! `cargo bench --bench idle` after `hack/testenv up` and `eval "$(hack/testenv env)"` (add
//! `--runtime containerd2` to both for containerd 2). It prints and records; nothing asserts.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/process.rs"]
mod process;
#[path = "support/report.rs"]
mod report;
#[path = "support/workload.rs"]
mod workload;

use std::{path::Path, time::Duration};

use report::Report;
use staticlet::cri::Cri as _;

const SETTLE: Duration = Duration::from_secs(10);

fn main() {
    let window = std::env::var("BENCH_WINDOW_S").ok().and_then(|s| s.parse().ok()).map(Duration::from_secs);
    let window = window.unwrap_or(Duration::from_secs(60));
    let counts: Vec<usize> = std::env::var("BENCH_IDLE_PODS")
        .unwrap_or_else(|_| "0,10,100,1000".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let runtime_pid = runtime_pid(&common::endpoint());
    let version = common::block_on(async { common::runtime().version().await.map(|(n, v)| format!("{n} {v}")) });
    let evented = common::runtime_has_events();
    let mut report = Report::new("idle");
    report.context("runtime_has_events", evented);
    report.context("runtime", version.ok());
    report.context("window_s", window.as_secs());
    report.context("cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));

    let mut daemon = common::Daemon::new("idle");
    daemon.file_check_frequency = "20s".into(); // the default
    let modes: &[&str] = if evented { &["events", "relist"] } else { &["relist"] };
    let (mut running, mut per_pod_mib) = (0, 0.0);
    for count in counts {
        // Pods cost the machine their shim and processes; a count that would not fit is skipped.
        let added = count.saturating_sub(running);
        let needed = added as f64 * per_pod_mib;
        if needed > process::available_mib() * 0.7 {
            println!(
                "idle: {count} pods skipped: about {needed:.0} MiB more needed, {:.0} available",
                process::available_mib()
            );
            break;
        }
        let available_before = process::available_mib();
        for mode in modes {
            let mode = *mode;
            daemon.start_with([daemon.args(), vec![format!("--container-events={}", mode == "events")]].concat());
            if running < count {
                for i in running..count {
                    daemon
                        .write_manifest(&format!("idle{i}.yaml"), &workload::manifest(&format!("idle{i}"), "idle", 0));
                }
                running = count;
            }
            let running_now = || daemon.status().pods.iter().filter(|p| p.status == "Running").count();
            if common::wait_for(Duration::from_secs(900), || (running_now() == count).then_some(())).is_none() {
                // Seen at 1000 pods on containerd 2.4 here: RunPodSandbox outlasting the 2 m
                // request timeout for the last few dozen. The counts measured so far stand.
                println!("idle: only {} of {count} pods running after 15 min; stopping here", running_now());
                report.finish();
                return;
            }
            let followed = daemon.metric("staticlet_container_events_followed") == 1.0;
            let system = match (mode, followed) {
                ("events", true) => "events",
                ("events", false) => "no events", // asked for, but the runtime has none
                _ => "relist 1 s",
            };
            std::thread::sleep(SETTLE);
            let pid = daemon.pid();
            let (before, runtime_before) = (process::cpu_time(pid), runtime_pid.map(process::cpu_time));
            std::thread::sleep(window);
            let percent = |d: Duration| d.as_secs_f64() / window.as_secs_f64() * 100.0;
            report.record(
                &format!("CPU at rest, {count} pods"),
                system,
                "%",
                vec![percent(process::cpu_time(pid) - before)],
            );
            report.record(&format!("RSS, {count} pods"), system, "MiB", vec![process::rss_mib(pid)]);
            report.record(&format!("RSS anon, {count} pods"), system, "MiB", vec![process::rss_anon_mib(pid)]);
            if let (Some(runtime), Some(before)) = (runtime_pid, runtime_before) {
                let used = percent(process::cpu_time(runtime) - before);
                report.record(&format!("containerd CPU, {count} pods"), system, "%", vec![used]);
            }
            daemon.stop();
        }
        if added > 0 {
            per_pod_mib = per_pod_mib.max((available_before - process::available_mib()).max(0.0) / added as f64);
        }
    }
    report.finish();
    // Dropping the daemon removes this node's pods.
}

/// The runtime's PID: the containerd whose `--config` sits beside its socket (hack/testenv's
/// layout), None if there is no such process.
fn runtime_pid(endpoint: &str) -> Option<u32> {
    let socket = Path::new(endpoint.trim_start_matches("unix://"));
    let config = socket.parent()?.join("config.toml");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let named = args.first().is_some_and(|a| a.ends_with(b"containerd"));
        let configured = args.iter().any(|a| *a == config.as_os_str().as_encoded_bytes());
        (named && configured).then_some(pid)
    })
}
