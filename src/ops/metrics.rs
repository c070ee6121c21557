//! Prometheus metrics. Where kubelet has a metric for the same thing, the name is kubelet's, so
//! existing dashboards and alerts work unchanged.

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

pub type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    pub desired_pods: Gauge,
    pub running_pods: Gauge,
    pub running_containers: Family<Labels, Gauge>,
    pub containers_started: Counter,
    pub container_restarts: Counter,
    pub sandboxes_started: Counter,
    pub manifest_errors: Gauge,
    /// Full scans of the manifest directory, by `trigger`: `start`, `event` (a change settled),
    /// `period` (fileCheckFrequency went by).
    pub manifest_dir_scans: Family<Labels, Counter>,
    /// Polls of the manifest URL, by `result` (see `source::url::PollResult`).
    pub manifest_url_polls: Family<Labels, Counter>,
    /// kubelet's `prober_probe_total`: probe attempts by probe_type (Liveness, Readiness,
    /// Startup), result (successful, failed), container, pod, namespace and pod_uid.
    pub probes: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let desired_pods_family = Family::<Labels, Gauge>::default();
        let desired_pods = desired_pods_family.get_or_create(&vec![("static".into(), "true".into())]).clone();
        let running_pods = Gauge::default();
        let running_containers = Family::<Labels, Gauge>::default();
        let containers_started = Counter::default();
        let container_restarts = Counter::default();
        let sandboxes_started = Counter::default();
        let manifest_errors = Gauge::default();
        let manifest_dir_scans = Family::<Labels, Counter>::default();
        let probes = Family::<Labels, Counter>::default();
        let manifest_url_polls = Family::<Labels, Counter>::default();
        registry.register("kubelet_desired_pods", "Pods the node wants to run", desired_pods_family.clone());
        registry.register("kubelet_running_pods", "Pods with a running sandbox", running_pods.clone());
        registry.register("kubelet_running_containers", "Containers by state", running_containers.clone());
        registry.register("staticlet_containers_started", "Containers started", containers_started.clone());
        registry.register(
            "staticlet_container_restarts",
            "Containers restarted after they exited",
            container_restarts.clone(),
        );
        registry.register("staticlet_sandboxes_started", "Pod sandboxes started", sandboxes_started.clone());
        registry.register(
            "staticlet_manifest_errors",
            "Manifests that currently fail to load",
            manifest_errors.clone(),
        );
        registry.register(
            "staticlet_manifest_dir_scans",
            "Full scans of the manifest directory, by trigger (start, event, period)",
            manifest_dir_scans.clone(),
        );
        registry.register(
            "staticlet_manifest_url_polls",
            "Polls of the manifest URL, by result (ok, empty, invalid, unchanged, http_error, unreachable, timeout, \
             too_large)",
            manifest_url_polls.clone(),
        );
        registry.register(
            "prober_probe",
            "Probe attempts, by probe_type, result, container, pod, namespace and pod_uid (kubelet's name)",
            probes.clone(),
        );
        Self {
            registry,
            desired_pods,
            running_pods,
            running_containers,
            containers_started,
            container_restarts,
            sandboxes_started,
            manifest_errors,
            manifest_dir_scans,
            manifest_url_polls,
            probes,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
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
}
