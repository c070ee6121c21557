//! Prometheus metrics. Where kubelet has a metric for the same thing, the name is kubelet's, so
//! existing dashboards and alerts work unchanged.

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    pub desired_pods: Gauge,
    pub running_pods: Gauge,
    pub running_containers: Family<Labels, Gauge>,
    pub containers_started: Counter,
    pub container_restarts: Counter,
    pub sandboxes_started: Counter,
    pub manifest_errors: Gauge,
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
        Self {
            registry,
            desired_pods,
            running_pods,
            running_containers,
            containers_started,
            container_restarts,
            sandboxes_started,
            manifest_errors,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
