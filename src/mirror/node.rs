//! The Node object and its Lease: registered at start, re-registered if deleted, kept fresh the
//! way kubelet does (Lease renewed every 10 s, status posted every 5 minutes).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        coordination::v1::{Lease, LeaseSpec},
        core::v1::{
            DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
            NodeSystemInfo, Taint,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time},
    },
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};

use super::MirrorError;
use crate::config::NodeTaint;

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// Keeps ordinary workloads off a node that runs static pods only: a scheduler would otherwise
/// bind pods here that nothing would ever run.
pub const TAINT_KEY: &str = "staticlet.io/static-pods-only";

/// The Kubernetes release whose kubelet staticlet stands in for, and is tested against: the
/// Node's kubeletVersion is this, with staticlet's own version as semver build metadata
/// (`v1.35.8+staticlet.0.1.0`), so version-skew checks (kubeadm's, kubectl's) parse it as
/// the release and people still see what runs.
pub const KUBERNETES_VERSION: &str = "v1.35.8";

pub fn kubelet_version() -> String {
    format!("{KUBERNETES_VERSION}+staticlet.{}", env!("CARGO_PKG_VERSION"))
}

/// Facts about this host that go into the Node object.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFacts {
    pub name: String,
    /// --node-labels and --register-with-taints: set at registration only, as kubelet does, so
    /// what kubeadm or an admin changes later is kept.
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<NodeTaint>,
    pub ip: String,
    pub hostname: String,
    pub cpus: u32,
    pub memory_kib: u64,
    pub runtime: String,
    pub kernel: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    /// The kubelet API's port, advertised in daemonEndpoints (the API server dials it).
    pub kubelet_port: u16,
}

impl NodeFacts {
    pub fn gather(name: &str, ip: &str, runtime: &str) -> Self {
        let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default();
        let memory_kib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| "Linux".into());
        Self {
            name: name.into(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            ip: ip.into(),
            hostname: read("/proc/sys/kernel/hostname"),
            cpus: std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
            memory_kib,
            runtime: runtime.into(),
            kernel: read("/proc/sys/kernel/osrelease"),
            os_image,
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            kubelet_port: 10250,
        }
    }
}

/// The node's IP: the source address the kernel would use towards a routable address (a UDP
/// "connect" sends nothing), else loopback.
pub fn default_node_ip() -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("10.255.255.255:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into())
}

/// The Node as registered: the given labels under kubelet's own (which win), staticlet's taint
/// and the given ones.
pub fn node_object(facts: &NodeFacts, now: jiff::Timestamp) -> Node {
    let mut labels = facts.labels.clone();
    labels.extend([
        ("kubernetes.io/hostname".into(), facts.name.clone()),
        ("kubernetes.io/os".into(), "linux".into()),
        ("kubernetes.io/arch".into(), std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")),
    ]);
    let mut taints = vec![Taint { key: TAINT_KEY.into(), effect: "NoSchedule".into(), ..Default::default() }];
    for t in &facts.taints {
        if !taints.iter().any(|have| have.key == t.key && have.effect == t.effect) {
            taints.push(Taint {
                key: t.key.clone(),
                value: t.value.clone(),
                effect: t.effect.clone(),
                time_added: None,
            });
        }
    }
    Node {
        metadata: ObjectMeta { name: Some(facts.name.clone()), labels: Some(labels), ..Default::default() },
        spec: Some(NodeSpec { taints: Some(taints), ..Default::default() }),
        status: Some(node_status(facts, now)),
    }
}

/// The Node's status; `now` is the heartbeat and transition time of its conditions.
pub fn node_status(facts: &NodeFacts, now: jiff::Timestamp) -> NodeStatus {
    let now = Time(now);
    let condition = |kind: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: kind.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    };
    let resources = BTreeMap::from([
        ("cpu".into(), Quantity(facts.cpus.to_string())),
        ("memory".into(), Quantity(format!("{}Ki", facts.memory_kib))),
        ("pods".into(), Quantity("110".into())),
    ]);
    NodeStatus {
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: facts.ip.clone() },
            NodeAddress { type_: "Hostname".into(), address: facts.hostname.clone() },
        ]),
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(vec![
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "staticlet does not evict static pods"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "staticlet does not evict static pods"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "staticlet does not evict static pods"),
            condition("Ready", "True", "KubeletReady", "staticlet is posting ready status"),
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: facts.kubelet_port.into() }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            boot_id: facts.boot_id.clone(),
            container_runtime_version: facts.runtime.clone(),
            kernel_version: facts.kernel.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: kubelet_version(),
            machine_id: facts.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: facts.os_image.clone(),
            system_uuid: facts.machine_id.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Gets the Node, creating it if it is missing; returns its UID.
pub async fn ensure_node(client: &Client, facts: &NodeFacts) -> Result<String, MirrorError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let name = &facts.name;
    let existing = nodes.get_opt(name).await.map_err(|e| MirrorError::api("get", format!("node {name}"), e))?;
    let node = match existing {
        Some(node) => node,
        None => {
            tracing::info!(node = %name, "registering node");
            match nodes.create(&PostParams::default(), &node_object(facts, jiff::Timestamp::now())).await {
                Ok(node) => node,
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    nodes.get(name).await.map_err(|e| MirrorError::api("get", format!("node {name}"), e))?
                }
                Err(e) => return Err(MirrorError::api("create", format!("node {name}"), e)),
            }
        }
    };
    node.metadata.uid.ok_or_else(|| MirrorError::Invalid(format!("node {name} has no uid")))
}

pub async fn post_status(client: &Client, facts: &NodeFacts, now: jiff::Timestamp) -> Result<(), MirrorError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({ "status": node_status(facts, now) });
    nodes
        .patch_status(&facts.name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map(drop)
        .map_err(|e| MirrorError::api("patch", format!("node {} status", facts.name), e))
}

/// Renews the node's Lease in kube-node-lease; false when there is none to renew.
pub async fn renew_lease(client: &Client, node: &str, now: jiff::Timestamp) -> Result<bool, MirrorError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = MicroTime(now);
    let patch = serde_json::json!({ "spec": { "holderIdentity": node, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": now } });
    match leases.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(MirrorError::api("patch", format!("lease {LEASE_NAMESPACE}/{node}"), e)),
    }
}

/// Creates the node's Lease, owned by the Node so that it goes when the Node does.
pub async fn create_lease(
    client: &Client,
    node: &str,
    node_uid: &str,
    now: jiff::Timestamp,
) -> Result<(), MirrorError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(node.into()),
            namespace: Some(LEASE_NAMESPACE.into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.into(),
                uid: node_uid.into(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.into()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    };
    match leases.create(&PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        // Another pass (or a previous run) created it meanwhile: it is renewed next time.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(MirrorError::api("create", format!("lease {LEASE_NAMESPACE}/{node}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts::gather("node-a", "10.0.0.1", "containerd://1.6.20")
    }

    #[test]
    fn the_node_registers_with_the_given_labels_and_taints_besides_its_own() {
        let facts = NodeFacts {
            labels: BTreeMap::from([
                ("example.com/rack".into(), "r1".into()),
                ("kubernetes.io/hostname".into(), "spoofed".into()),
            ]),
            taints: vec![
                NodeTaint { key: "example.com/dedicated".into(), value: Some("cp".into()), effect: "NoExecute".into() },
                NodeTaint { key: TAINT_KEY.into(), value: None, effect: "NoSchedule".into() },
            ],
            ..facts()
        };
        let node = node_object(&facts, jiff::Timestamp::UNIX_EPOCH);
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels["example.com/rack"], "r1");
        assert_eq!(labels["kubernetes.io/hostname"], "node-a", "kubelet's own labels win");
        let taints: Vec<(String, Option<String>, String)> =
            node.spec.unwrap().taints.unwrap().into_iter().map(|t| (t.key, t.value, t.effect)).collect();
        assert_eq!(
            taints,
            [
                (TAINT_KEY.to_owned(), None, "NoSchedule".to_owned()),
                ("example.com/dedicated".to_owned(), Some("cp".to_owned()), "NoExecute".to_owned()),
            ]
        );
    }

    #[test]
    fn kubelet_version_is_semver_of_the_release_with_staticlets_version_as_build_metadata() {
        let version = node_status(&facts(), jiff::Timestamp::UNIX_EPOCH).node_info.unwrap().kubelet_version;
        let (release, build) = version.split_once('+').unwrap();
        assert_eq!(release, KUBERNETES_VERSION);
        assert_eq!(build, format!("staticlet.{}", env!("CARGO_PKG_VERSION")));
        let parts: Vec<&str> = release.trim_start_matches('v').split('.').collect();
        assert!(parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()), "{version}");
        assert!(build.split('.').all(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')));
    }
}
