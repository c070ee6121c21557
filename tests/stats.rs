//! The kubelet API's resource usage against the real private containerd (`hack/testenv up`):
//! what metrics-server would read for a static pod that burns CPU.

mod common;

use std::time::{Duration, Instant};

use common::*;
use staticlet::node_api::stats::{self, NodeFiles, Rates, Sample};

fn sample(d: &Daemon) -> Sample {
    let files = NodeFiles::host(d.dir.path());
    block_on(async {
        let runtime = runtime();
        let pods = staticlet::cri::list_pods(&runtime, &d.node).await.map_err(stats::StatsError::from)?;
        stats::collect(&runtime, &d.node, &pods, &files).await
    })
    .unwrap_or_else(|e| panic!("collect: {e}"))
}

/// Samples until `check` holds; the limit bounds a failing test, it measures nothing.
fn sample_until(d: &Daemon, what: &str, check: impl Fn(&Sample) -> bool) -> Sample {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = sample(d);
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: never so within 20 s; last sample {s:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn container_cpu(s: &Sample) -> u64 {
    s.pods[0].containers[0].cpu.and_then(|c| c.usage_core_nano_seconds).unwrap_or(0)
}

#[test]
fn a_busy_static_pod_shows_growing_cpu_and_its_memory_under_its_mirror_name() {
    let _serial = serial();
    let mut d = Daemon::new("stats");
    d.start();
    d.write_manifest("burner.yaml", &shell_pod("burner", "while :; do :; done", ""));
    let view = d.wait_for_running("burner");
    let mirror_name = format!("burner-{}", d.node);

    let mut rates = Rates::default();
    let mut first = sample_until(&d, "the pod has a running container with stats", |s| {
        s.pods.len() == 1 && s.pods[0].containers.len() == 1
    });
    rates.fill(&mut first);
    let pod = &first.pods[0];
    assert_eq!(
        (pod.name.as_str(), pod.namespace.as_str(), pod.uid.as_str()),
        (mirror_name.as_str(), "default", view.uid.as_str())
    );
    let container = &pod.containers[0];
    assert_eq!(container.name, "main");
    assert!(container.memory.and_then(|m| m.working_set_bytes).unwrap_or(0) > 0, "{container:#?}");
    assert!(container.start_time > 0 && pod.start_time > 0 && pod.start_time <= container.start_time, "{pod:#?}");
    assert!(container.rootfs.and_then(|f| f.capacity_bytes).unwrap_or(0) > 0, "{container:#?}");
    assert!(first.node.memory.and_then(|m| m.working_set_bytes).unwrap_or(0) > 0, "{:#?}", first.node);

    let mut second = sample_until(&d, "the container's CPU counter grows", |s| {
        s.pods.len() == 1 && container_cpu(s) > container_cpu(&first) + 100_000_000
    });
    rates.fill(&mut second);
    let pod = &second.pods[0];
    let cores = pod.containers[0].cpu.and_then(|c| c.usage_nano_cores).expect("a rate on the second sample");
    assert!(cores > 100_000_000, "a busy loop uses more than a tenth of a core: {cores}");
    assert!(
        pod.cpu.and_then(|c| c.usage_core_nano_seconds)
            >= pod.containers[0].cpu.and_then(|c| c.usage_core_nano_seconds),
        "the pod cgroup holds the container: {pod:#?}"
    );
    let node_cpu = |s: &Sample| s.node.cpu.and_then(|c| c.usage_core_nano_seconds).unwrap_or(0);
    assert!(node_cpu(&second) > node_cpu(&first));

    let metrics = stats::resource_metrics(&second);
    eprintln!("{metrics}");
    let series =
        format!("container_cpu_usage_seconds_total{{container=\"main\",namespace=\"default\",pod=\"{mirror_name}\"}} ");
    assert!(metrics.contains(&format!("\n{series}")), "{metrics}");
    assert!(
        metrics.contains(&format!("\npod_memory_working_set_bytes{{namespace=\"default\",pod=\"{mirror_name}\"}} ")),
        "{metrics}"
    );

    let summary = serde_json::to_value(stats::summary(&second, &d.node)).unwrap();
    assert_eq!(summary["pods"][0]["podRef"]["name"], mirror_name.as_str());
    assert!(summary["pods"][0]["containers"][0]["cpu"]["usageNanoCores"].as_u64().unwrap() > 0, "{summary:#}");
    assert_eq!(summary["node"]["nodeName"], d.node.as_str());
}
