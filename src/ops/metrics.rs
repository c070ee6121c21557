//! Prometheus metrics. Where kubelet has a metric for the same thing, the name, labels and
//! buckets are kubelet's, so existing dashboards and alerts work unchanged; the rest are
//! `staticlet_*`. docs/METRICS.md lists them all (a test keeps it in step with this file).

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::{
    cri::{ContainerState, RuntimeSnapshot},
    desired::Desired,
};

pub type Labels = Vec<(String, String)>;

type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// kubelet's `kubelet_pod_start_duration_seconds` buckets (pkg/kubelet/metrics).
const POD_START_BUCKETS: [f64; 25] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 480.0,
    600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

fn runtime_operation_histogram() -> Histogram {
    // kubelet's buckets for kubelet_runtime_operations_duration_seconds: 5 ms, x2.5, 14 of them.
    Histogram::new(exponential_buckets(0.005, 2.5, 14))
}

pub struct Metrics {
    registry: Registry,
    /// The names registered (a counter's without `_total`), for docs/METRICS.md's test.
    names: Vec<&'static str>,
    pub desired_pods: Gauge,
    pub running_pods: Gauge,
    pub container_events_followed: Gauge,
    /// Free bytes of the pod log directory's filesystem (`logs::space`).
    pub pod_logs_dir_free_bytes: Gauge,
    /// The process's live tokio tasks, read at each scrape: a leak shows here before it shows in RSS.
    pub tasks: Gauge,
    pub running_containers: Family<Labels, Gauge>,
    /// Static pods that should have a mirror (kubelet's meaning): the desired pods, with a cluster.
    pub mirror_pods: Gauge,
    /// Sandboxes created, and sandboxes the runtime failed to create.
    pub started_pods: Counter,
    pub started_pods_errors: Counter,
    /// By container_type (`container`, `init_container`); the errors also by gRPC `code`.
    pub started_containers: Family<Labels, Counter>,
    pub started_containers_errors: Family<Labels, Counter>,
    /// A pod started again with a UID this process had stopped (kubelet's meaning: for static
    /// pods, a manifest removed and put back unchanged).
    pub restarted_pods: Counter,
    /// From a supervisor seeing the pod to its STATUS first reading Running. Pods adopted
    /// running at start are not counted: they were started by an earlier process.
    pub pod_start_duration: Histogram,
    pub container_restarts: Counter,
    /// One series per manifest (file or URL) that currently fails to load, by `location`.
    pub manifest_errors: Family<Labels, Gauge>,
    /// Full scans of the manifest directory, by `trigger`: `start`, `event` (a change settled),
    /// `period` (fileCheckFrequency went by).
    pub manifest_dir_scans: Family<Labels, Counter>,
    /// Polls of the manifest URL, by `result` (see `source::url::PollResult`).
    pub manifest_url_polls: Family<Labels, Counter>,
    /// The API server refused a mirror pod (admission, validation, RBAC), by HTTP `code`.
    pub mirror_refusals: Family<Labels, Counter>,
    /// kubelet's `prober_probe_total`: probe attempts by probe_type (Liveness, Readiness,
    /// Startup), result (successful, failed), container, pod, namespace and pod_uid.
    pub probes: Family<Labels, Counter>,
    /// Every CRI call by kubelet's operation_type (`run_podsandbox`, `list_containers`, ...).
    pub runtime_operations: RuntimeOperations,
}

/// kubelet's three runtime operation metrics, shared with the CRI client that records them.
#[derive(Clone)]
pub struct RuntimeOperations {
    calls: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    durations: Histograms,
}

impl RuntimeOperations {
    /// Records one finished call of the CRI method `rpc` (`RunPodSandbox`).
    pub fn record(&self, rpc: &str, seconds: f64, failed: bool) {
        let labels = label("operation_type", &operation_type(rpc));
        self.calls.get_or_create(&labels).inc();
        self.durations.get_or_create(&labels).observe(seconds);
        if failed {
            self.errors.get_or_create(&labels).inc();
        }
    }
}

impl Default for RuntimeOperations {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            errors: Family::default(),
            durations: Family::new_with_constructor(runtime_operation_histogram),
        }
    }
}

/// kubelet's operation_type of a CRI method: snake case, with "PodSandbox" as one word
/// (`RunPodSandbox` -> `run_podsandbox`, `ListContainerStats` -> `list_container_stats`).
pub fn operation_type(rpc: &str) -> String {
    let mut out = String::with_capacity(rpc.len() + 4);
    for (i, c) in rpc.replace("PodSandbox", "Podsandbox").chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::default();
        let desired_pods_family = Family::<Labels, Gauge>::default();
        let desired_pods = desired_pods_family.get_or_create(&label("static", "true")).clone();
        let restarted_pods_family = Family::<Labels, Counter>::default();
        let restarted_pods = restarted_pods_family.get_or_create(&label("static", "true")).clone();
        let mut names = Vec::new();
        let mut m = Self {
            registry: Registry::default(),
            names: Vec::new(),
            desired_pods,
            running_pods: Gauge::default(),
            container_events_followed: Gauge::default(),
            pod_logs_dir_free_bytes: Gauge::default(),
            tasks: Gauge::default(),
            running_containers: Family::default(),
            mirror_pods: Gauge::default(),
            started_pods: Counter::default(),
            started_pods_errors: Counter::default(),
            started_containers: Family::default(),
            started_containers_errors: Family::default(),
            restarted_pods,
            pod_start_duration: Histogram::new(POD_START_BUCKETS),
            container_restarts: Counter::default(),
            manifest_errors: Family::default(),
            manifest_dir_scans: Family::default(),
            manifest_url_polls: Family::default(),
            mirror_refusals: Family::default(),
            probes: Family::default(),
            runtime_operations: RuntimeOperations::default(),
        };
        // kubelet's names (a counter's `_total` is added on the way out).
        register(
            &mut r,
            &mut names,
            "kubelet_desired_pods",
            "The number of pods the kubelet is being instructed to run",
            desired_pods_family,
        );
        register(
            &mut r,
            &mut names,
            "kubelet_running_pods",
            "Number of pods that have a running pod sandbox",
            m.running_pods.clone(),
        );
        register(
            &mut r,
            &mut names,
            "kubelet_running_containers",
            "Number of containers currently running, by container_state",
            m.running_containers.clone(),
        );
        register(
            &mut r,
            &mut names,
            "kubelet_mirror_pods",
            "The number of mirror pods the kubelet will try to create (one per static pod)",
            m.mirror_pods.clone(),
        );
        register(
            &mut r,
            &mut names,
            "kubelet_started_pods",
            "Cumulative number of pods started",
            m.started_pods.clone(),
        );
        register(
            &mut r,
            &mut names,
            "kubelet_started_pods_errors",
            "Cumulative number of errors when starting pods",
            m.started_pods_errors.clone(),
        );
        register(
            &mut r,
            &mut names,
            "kubelet_started_containers",
            "Cumulative number of containers started, by container_type",
            m.started_containers.clone(),
        );
        register(
            &mut r,
            &mut names,
            "kubelet_started_containers_errors",
            "Cumulative number of errors when starting containers, by code and container_type",
            m.started_containers_errors.clone(),
        );
        register(
            &mut r,
            &mut names,
            "kubelet_restarted_pods",
            "Pods started again with a UID this process had stopped (for static pods: a manifest removed and \
             restored unchanged)",
            restarted_pods_family,
        );
        register(
            &mut r,
            &mut names,
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from the kubelet seeing a pod for the first time to the pod starting to run",
            m.pod_start_duration.clone(),
        );
        register(
            &mut r,
            &mut names,
            "kubelet_runtime_operations",
            "Cumulative number of runtime operations by operation type",
            m.runtime_operations.calls.clone(),
        );
        register(
            &mut r,
            &mut names,
            "kubelet_runtime_operations_errors",
            "Cumulative number of runtime operation errors by operation type",
            m.runtime_operations.errors.clone(),
        );
        register(
            &mut r,
            &mut names,
            "kubelet_runtime_operations_duration_seconds",
            "Duration in seconds of runtime operations, by operation type",
            m.runtime_operations.durations.clone(),
        );
        register(
            &mut r,
            &mut names,
            "prober_probe",
            "Cumulative number of a liveness, readiness or startup probe for a container by result",
            m.probes.clone(),
        );
        // staticlet's own.
        register(
            &mut r,
            &mut names,
            "staticlet_container_restarts",
            "Containers restarted after they exited",
            m.container_restarts.clone(),
        );
        register(
            &mut r,
            &mut names,
            "staticlet_container_events_followed",
            "1 while the runtime's container events are followed (the relist then waits for them), 0 while relisting \
             every second",
            m.container_events_followed.clone(),
        );
        register(
            &mut r,
            &mut names,
            "staticlet_pod_logs_dir_free_bytes",
            "Free bytes of the pod log directory's filesystem (below 1 MiB it counts as full: containers' output is lost)",
            m.pod_logs_dir_free_bytes.clone(),
        );
        register(
            &mut r,
            &mut names,
            "staticlet_tasks",
            "Tokio tasks alive in the process (a few per pod: its worker, probes and log followers)",
            m.tasks.clone(),
        );
        register(
            &mut r,
            &mut names,
            "staticlet_manifest_errors",
            "Manifests (files or the URL) that currently fail to load, by location",
            m.manifest_errors.clone(),
        );
        register(
            &mut r,
            &mut names,
            "staticlet_manifest_dir_scans",
            "Full scans of the manifest directory, by trigger (start, event, period)",
            m.manifest_dir_scans.clone(),
        );
        register(
            &mut r,
            &mut names,
            "staticlet_manifest_url_polls",
            "Polls of the manifest URL, by result (ok, empty, invalid, unchanged, http_error, unreachable, timeout, \
             too_large)",
            m.manifest_url_polls.clone(),
        );
        register(
            &mut r,
            &mut names,
            "staticlet_mirror_refusals",
            "Mirror pods the API server refused, by HTTP code",
            m.mirror_refusals.clone(),
        );
        m.names = names;
        Self { registry: r, ..m }
    }

    /// The gauges that are read off the relist and the desired set, brought up to date and
    /// encoded: what a scrape of either `/metrics` returns.
    pub fn scrape(&self, snapshot: &RuntimeSnapshot, desired: &Desired) -> String {
        self.running_pods.set(snapshot.pods.values().filter(|p| p.ready_sandbox().is_some()).count() as i64);
        self.container_events_followed.set(i64::from(snapshot.evented));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.tasks.set(runtime.metrics().num_alive_tasks() as i64);
        }
        for (state, wanted) in [
            ("running", ContainerState::Running),
            ("exited", ContainerState::Exited),
            ("created", ContainerState::Created),
        ] {
            let count = snapshot.pods.values().flat_map(|p| &p.containers).filter(|c| c.state == wanted).count();
            self.running_containers.get_or_create(&label("container_state", state)).set(count as i64);
        }
        // A file that loads again must lose its series, not keep reading 1.
        self.manifest_errors.clear();
        for error in &desired.errors {
            self.manifest_errors.get_or_create(&label("location", error.location())).set(1);
        }
        self.encode()
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

fn register(
    registry: &mut Registry,
    names: &mut Vec<&'static str>,
    name: &'static str,
    help: &str,
    metric: impl prometheus_client::registry::Metric,
) {
    names.push(name);
    registry.register(name, help, metric);
}

/// The one label of a family's series, as the families above take it.
pub fn label(name: &str, value: &str) -> Labels {
    vec![(name.into(), value.into())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_counters_are_exposed_under_their_names_and_labels() {
        let metrics = Metrics::new();
        metrics.manifest_dir_scans.get_or_create(&label("trigger", "period")).inc();
        metrics.manifest_url_polls.get_or_create(&label("result", "timeout")).inc_by(2);
        let text = metrics.encode();
        assert!(text.contains("# TYPE staticlet_manifest_dir_scans counter\n"), "{text}");
        assert!(text.contains("\nstaticlet_manifest_dir_scans_total{trigger=\"period\"} 1\n"), "{text}");
        assert!(text.contains("\nstaticlet_manifest_url_polls_total{result=\"timeout\"} 2\n"), "{text}");
    }

    #[test]
    fn cri_methods_become_kubelets_operation_types() {
        for (rpc, expected) in [
            ("Version", "version"),
            ("RunPodSandbox", "run_podsandbox"),
            ("StopPodSandbox", "stop_podsandbox"),
            ("PodSandboxStatus", "podsandbox_status"),
            ("ListPodSandbox", "list_podsandbox"),
            ("ListPodSandboxStats", "list_podsandbox_stats"),
            ("CreateContainer", "create_container"),
            ("ListContainerStats", "list_container_stats"),
            ("ExecSync", "exec_sync"),
            ("PortForward", "port_forward"),
            ("ReopenContainerLog", "reopen_container_log"),
            ("PullImage", "pull_image"),
        ] {
            assert_eq!(operation_type(rpc), expected, "{rpc}");
        }
    }

    #[test]
    fn a_runtime_call_counts_times_and_fails_under_its_operation_type() {
        let metrics = Metrics::new();
        metrics.runtime_operations.record("RunPodSandbox", 0.3, false);
        metrics.runtime_operations.record("RunPodSandbox", 0.01, true);
        let text = metrics.encode();
        assert!(text.contains("\nkubelet_runtime_operations_total{operation_type=\"run_podsandbox\"} 2\n"), "{text}");
        assert!(
            text.contains("\nkubelet_runtime_operations_errors_total{operation_type=\"run_podsandbox\"} 1\n"),
            "{text}"
        );
        // 0.3 s falls in kubelet's 0.48828125 bucket (0.005 * 2.5^5), not in 0.1953125.
        assert!(
            text.contains(
                "kubelet_runtime_operations_duration_seconds_bucket{le=\"0.1953125\",operation_type=\"run_podsandbox\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "kubelet_runtime_operations_duration_seconds_bucket{le=\"0.48828125\",operation_type=\"run_podsandbox\"} 2\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_manifest_that_loads_again_loses_its_error_series() {
        let metrics = Metrics::new();
        let broken = Desired {
            errors: vec![crate::manifest::ManifestError::Empty { location: "/m/bad.yaml".into() }],
            ..Default::default()
        };
        let text = metrics.scrape(&RuntimeSnapshot::default(), &broken);
        assert!(text.contains("\nstaticlet_manifest_errors{location=\"/m/bad.yaml\"} 1\n"), "{text}");
        let text = metrics.scrape(&RuntimeSnapshot::default(), &Desired::default());
        assert!(!text.contains("/m/bad.yaml"), "{text}");
    }

    #[tokio::test]
    async fn a_scrape_counts_the_tasks_alive() {
        let metrics = Metrics::new();
        let before = metrics.scrape(&RuntimeSnapshot::default(), &Desired::default());
        let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = stopped.await;
        });
        let during = metrics.scrape(&RuntimeSnapshot::default(), &Desired::default());
        let count = |text: &str| -> i64 {
            let line = text.lines().find(|l| l.starts_with("staticlet_tasks ")).expect("staticlet_tasks is served");
            line["staticlet_tasks ".len()..].parse().unwrap()
        };
        assert_eq!(count(&during), count(&before) + 1, "{during}");
        task.abort();
    }

    /// docs/METRICS.md names every metric this file registers, and no other.
    #[test]
    fn the_metrics_table_lists_exactly_the_metrics_served() {
        let mut served = Metrics::new().names;
        served.sort();
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/METRICS.md")).unwrap();
        let mut documented: Vec<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`'))
            .map(|(name, _)| name.strip_suffix("_total").unwrap_or(name))
            .collect();
        documented.sort();
        assert_eq!(documented, served, "docs/METRICS.md's table and the registry differ");
    }
}
