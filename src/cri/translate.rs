//! Static pod -> CRI configs. Pure: every field mapping is unit-tested without a runtime.
//! Resources (requests, limits, QoS, OOM score, cgroup parent) are `resources`' formulas and the
//! securityContext mapping is `security`'s; the machine facts they need are a `Host`.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use k8s_cri::v1::{
    self as api, ContainerMetadata, KeyValue, LinuxContainerConfig, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxMetadata,
    PortMapping, Protocol,
};
use k8s_openapi::api::core::v1::{self as api_mount, Container};

use super::{
    client::image_spec,
    dns,
    host::Host,
    hosts, labels,
    resources::{self, PodCgroups},
    security, volumes,
};
use crate::manifest::StaticPod;

/// What a container's config depends on beyond the pod itself.
pub struct ContainerContext<'a> {
    pub restart_count: u32,
    /// The sandbox's IP ("" on the host network).
    pub pod_ip: &'a str,
    /// The node's IP: status.hostIP, and status.podIP on the host network.
    pub node_ip: &'a str,
    /// Where this pod's volumes live on the host (`volumes::pod_volumes_dir`).
    pub volumes_dir: &'a Path,
    /// The host paths of the container's subPath mounts (by index in `volumeMounts`), resolved
    /// inside their volumes before the container is created (`volumes::resolve_sub_path`).
    pub sub_paths: &'a BTreeMap<usize, PathBuf>,
}

/// `<podLogsDir>/<namespace>_<name>_<uid>`, kubelet's layout, which `kubectl logs` users and log
/// shippers already know.
pub fn pod_log_dir(pod_logs_dir: &Path, pod: &StaticPod) -> PathBuf {
    pod_logs_dir.join(format!("{}_{}_{}", pod.namespace(), pod.name(), pod.uid))
}

/// `<container>/<restartCount>.log`, relative to the pod log directory.
pub fn container_log_path(container: &str, restart_count: u32) -> String {
    format!("{container}/{restart_count}.log")
}

/// `<rootDir>/pods/<uid>/volumes/kubernetes.io~empty-dir`, kubelet's layout.
pub fn empty_dir_root(root_dir: &Path, pod: &StaticPod) -> PathBuf {
    volumes::pod_volumes_dir(root_dir, pod).join("kubernetes.io~empty-dir")
}

/// The sandbox config with the runtime's default cgroup placement (see `sandbox_config_in`).
pub fn sandbox_config(pod: &StaticPod, node: &str, pod_logs_dir: &Path, attempt: u32) -> api::PodSandboxConfig {
    sandbox_config_in(pod, node, pod_logs_dir, attempt, PodCgroups::RuntimeDefault)
}

/// The sandbox config, its cgroup parent placed as `cgroups` says. CreateContainer must be sent
/// the same config as RunPodSandbox was: the runtime takes the container's cgroup parent from it.
pub fn sandbox_config_in(
    pod: &StaticPod,
    node: &str,
    pod_logs_dir: &Path,
    attempt: u32,
    cgroups: PodCgroups,
) -> api::PodSandboxConfig {
    let spec = pod.spec();
    let mut sandbox_labels: HashMap<String, String> = pod.labels().into_iter().collect();
    sandbox_labels.extend(pod_identity_labels(pod, node));
    let mut annotations: HashMap<String, String> = pod.annotations().into_iter().collect();
    annotations.insert(labels::ORIGIN.into(), pod.origin.to_string());
    annotations.insert(labels::GRACE_PERIOD.into(), pod.grace_period().as_secs().to_string());
    annotations.insert(labels::CONFIG_HASH.into(), pod.config_hash.clone());

    let hostname = hosts::sandbox_hostname(pod);
    let port_mappings = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| PortMapping {
            protocol: protocol(p.protocol.as_deref()) as i32,
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    let (resources, overhead) = resources::sandbox_resources(spec);
    api::PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: pod.name().into(),
            uid: pod.uid.clone(),
            namespace: pod.namespace().into(),
            attempt,
        }),
        hostname,
        log_directory: pod_log_dir(pod_logs_dir, pod).to_string_lossy().into_owned(),
        dns_config: dns::sandbox_dns(spec, dns::node_resolv_conf),
        port_mappings,
        labels: sandbox_labels,
        annotations,
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroups.parent(spec, &pod.uid),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                ..security::sandbox_security(spec)
            }),
            sysctls: security::sysctls(spec),
            resources: Some(resources),
            overhead: Some(overhead),
        }),
        windows: None,
    }
}

/// The container config on this machine (`Host::current()`).
pub fn container_config(
    pod: &StaticPod,
    node: &str,
    container: &Container,
    ctx: &ContainerContext,
) -> api::ContainerConfig {
    container_config_on(Host::current(), pod, node, container, ctx)
}

pub fn container_config_on(
    host: &Host,
    pod: &StaticPod,
    node: &str,
    container: &Container,
    ctx: &ContainerContext,
) -> api::ContainerConfig {
    let env = environment(pod, node, container, ctx);
    let lookup: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand_all = |items: &Option<Vec<String>>| items.iter().flatten().map(|s| expand(s, &lookup)).collect();

    let mounts = mounts(pod, container, ctx, &lookup);
    let mut container_labels: HashMap<String, String> = pod_identity_labels(pod, node).into_iter().collect();
    container_labels.insert(labels::CONTAINER_NAME.into(), container.name.clone());
    let mut annotations = HashMap::new();
    annotations.insert(labels::RESTART_COUNT.into(), ctx.restart_count.to_string());
    annotations.insert(labels::GRACE_PERIOD.into(), pod.grace_period().as_secs().to_string());

    let spec = pod.spec();
    api::ContainerConfig {
        metadata: Some(ContainerMetadata { name: container.name.clone(), attempt: ctx.restart_count }),
        image: Some(image_spec(container.image.as_deref().unwrap_or_default())),
        command: expand_all(&container.command),
        args: expand_all(&container.args),
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: env.into_iter().map(|(key, value)| KeyValue { key, value }).collect(),
        mounts,
        labels: container_labels,
        annotations,
        log_path: container_log_path(&container.name, ctx.restart_count),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(LinuxContainerConfig {
            resources: Some(resources::container_resources(spec, container, host)),
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                ..security::container_security(&pod.annotations(), spec, container, host)
            }),
        }),
        ..Default::default()
    }
}

fn pod_identity_labels(pod: &StaticPod, node: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::POD_NAME.into(), pod.name().into()),
        (labels::POD_NAMESPACE.into(), pod.namespace().into()),
        (labels::POD_UID.into(), pod.uid.clone()),
        (labels::NODE.into(), node.into()),
    ])
}

fn namespace_options(pod: &StaticPod) -> NamespaceOption {
    let spec = pod.spec();
    let mode = |host: Option<bool>, otherwise: NamespaceMode| {
        if host.unwrap_or(false) { NamespaceMode::Node } else { otherwise }
    };
    let pid_default =
        if spec.share_process_namespace.unwrap_or(false) { NamespaceMode::Pod } else { NamespaceMode::Container };
    NamespaceOption {
        network: mode(spec.host_network, NamespaceMode::Pod) as i32,
        pid: mode(spec.host_pid, pid_default) as i32,
        ipc: mode(spec.host_ipc, NamespaceMode::Pod) as i32,
        ..Default::default()
    }
}

fn protocol(name: Option<&str>) -> Protocol {
    match name {
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        _ => Protocol::Tcp,
    }
}

/// The container's environment in order, with `$(VAR)` references to earlier variables expanded
/// and the supported downward-API fields filled in.
fn environment(pod: &StaticPod, node: &str, container: &Container, ctx: &ContainerContext) -> Vec<(String, String)> {
    environment_of(pod, node, container, ctx.pod_ip, ctx.node_ip)
}

/// The container's environment as the runtime gets it (also what `$(VAR)` in subPathExpr
/// expands from).
pub fn environment_of(
    pod: &StaticPod,
    node: &str,
    container: &Container,
    pod_ip: &str,
    node_ip: &str,
) -> Vec<(String, String)> {
    // A host-network pod's IP is the node's, as kubelet reports it.
    let pod_ip = if pod.host_network() { node_ip } else { pod_ip };
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container.env.iter().flatten() {
        let from = var.value_from.as_ref();
        let value = match from.and_then(|f| f.field_ref.as_ref()) {
            None if let Some(selector) = from.and_then(|f| f.resource_field_ref.as_ref()) => {
                // The container itself when the selector names none, as kubelet defaults it.
                let mut selector = selector.clone();
                if selector.container_name.as_deref().is_none_or(str::is_empty) {
                    selector.container_name = Some(container.name.clone());
                }
                // Validation checked the selector; a value it cannot compute stays empty.
                volumes::resource_value(pod.spec(), &selector, Host::current()).unwrap_or_default()
            }
            Some(field) => match field.field_path.as_str() {
                "metadata.name" => pod.name().to_owned(),
                "metadata.namespace" => pod.namespace().to_owned(),
                "metadata.uid" => pod.uid.clone(),
                "spec.nodeName" => node.to_owned(),
                // One IP each (no dual stack): the lists are that IP.
                "status.podIP" | "status.podIPs" => pod_ip.to_owned(),
                "status.hostIP" | "status.hostIPs" => node_ip.to_owned(),
                _ => String::new(),
            },
            None => {
                let lookup: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expand(var.value.as_deref().unwrap_or_default(), &lookup)
            }
        };
        env.retain(|(k, _)| k != &var.name);
        env.push((var.name.clone(), value));
    }
    env
}

/// Kubernetes' `$(VAR)` expansion: known names are replaced, unknown references stay as written,
/// and `$$` is a literal `$`.
pub fn expand(input: &str, vars: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(close) = rest.strip_prefix("$(").and_then(|r| r.find(')')) {
            let name = &rest[2..2 + close];
            match vars.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&rest[..3 + close]),
            }
            rest = &rest[3 + close..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// A mount's subPath, or its subPathExpr with `$(VAR)` expanded from the container's environment
/// (kubelet's `subpath.ExpandSubPathExpr`), if either is set.
pub fn sub_path(mount: &api_mount::VolumeMount, env: &HashMap<&str, &str>) -> Option<String> {
    let written = mount.sub_path.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    written.or_else(|| mount.sub_path_expr.as_deref().filter(|s| !s.is_empty()).map(|e| expand(e, env)))
}

/// CRI's propagation for a mount's `mountPropagation` (None, or unset, is private).
pub fn propagation(mount: &api_mount::VolumeMount) -> api::MountPropagation {
    match mount.mount_propagation.as_deref() {
        Some("HostToContainer") => api::MountPropagation::PropagationHostToContainer,
        Some("Bidirectional") => api::MountPropagation::PropagationBidirectional,
        _ => api::MountPropagation::PropagationPrivate,
    }
}

fn mounts(
    pod: &StaticPod,
    container: &Container,
    ctx: &ContainerContext,
    env: &HashMap<&str, &str>,
) -> Vec<api::Mount> {
    let volumes = pod.spec().volumes.clone().unwrap_or_default();
    container
        .volume_mounts
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, mount)| {
            let volume = volumes.iter().find(|v| v.name == mount.name)?;
            let mut host_path = volumes::volume_host_path(volume, ctx.volumes_dir)?;
            if let Some(resolved) = ctx.sub_paths.get(&i) {
                host_path = resolved.clone();
            } else if let Some(sub_path) = sub_path(mount, env) {
                host_path = host_path.join(sub_path);
            }
            // kubelet mounts generated volumes (downwardAPI, projected) read-only.
            let readonly = mount.read_only.unwrap_or(false) || volumes::is_generated(volume);
            Some(api::Mount {
                container_path: mount.mount_path.clone(),
                host_path: host_path.to_string_lossy().into_owned(),
                readonly,
                propagation: propagation(mount) as i32,
                // recursiveReadOnly: Enabled is refused by validation (containerd 1.6 cannot);
                // IfPossible falls back to a non-recursive read-only mount, as kubelet does.
                recursive_read_only: false,
                ..Default::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Origin, parse_manifest};

    fn pod(yaml: &str) -> StaticPod {
        parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "Node-A").unwrap().remove(0)
    }

    const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {role: myrole}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 3
  volumes:
  - {name: data, hostPath: {path: /srv/data}}
  - {name: scratch, emptyDir: {}}
  containers:
  - name: httpd
    image: busybox:1.0
    command: [httpd, -f, -p, "$(PORT)"]
    env:
    - {name: PORT, value: "8080"}
    - {name: URL, value: "http://$(HOST):$(PORT)/"}
    - name: POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    ports: [{containerPort: 8080, hostPort: 8080}]
    volumeMounts:
    - {name: data, mountPath: /data, readOnly: true}
    - {name: scratch, mountPath: /scratch}
"#;

    #[test]
    fn sandbox_carries_kubelet_labels_and_our_annotations() {
        let pod = pod(WEB);
        let config = sandbox_config(&pod, "Node-A", Path::new("/var/log/pods"), 2);
        let meta = config.metadata.as_ref().unwrap();
        assert_eq!((meta.name.as_str(), meta.namespace.as_str(), meta.attempt), ("web-node-a", "default", 2));
        assert_eq!(config.labels["io.kubernetes.pod.uid"], pod.uid);
        assert_eq!(config.labels["io.kubernetes.pod.name"], "web-node-a");
        assert_eq!(config.labels["role"], "myrole");
        assert_eq!(config.labels["staticlet.io/node"], "Node-A");
        assert_eq!(config.annotations["io.kubernetes.pod.terminationGracePeriod"], "3");
        assert_eq!(config.annotations["staticlet.io/origin"], "file:/m/p.yaml");
        assert_eq!(config.log_directory, format!("/var/log/pods/default_web-node-a_{}", pod.uid));
        let ns = config.linux.unwrap().security_context.unwrap().namespace_options.unwrap();
        assert_eq!(ns.network, NamespaceMode::Node as i32);
        assert_eq!(ns.pid, NamespaceMode::Container as i32);
        assert_eq!(config.port_mappings.len(), 1);
    }

    #[test]
    fn container_gets_expanded_command_env_mounts_and_log_path() {
        let pod = pod(WEB);
        let container = &pod.spec().containers[0];
        let ctx = ContainerContext {
            restart_count: 4,
            node_ip: "192.0.2.7",
            pod_ip: "10.0.0.9",
            volumes_dir: Path::new("/v"),
            sub_paths: &BTreeMap::new(),
        };
        let config = container_config(&pod, "Node-A", container, &ctx);
        assert_eq!(config.command, ["httpd", "-f", "-p", "8080"]);
        let env: Vec<(&str, &str)> = config.envs.iter().map(|kv| (kv.key.as_str(), kv.value.as_str())).collect();
        assert_eq!(env, [("PORT", "8080"), ("URL", "http://$(HOST):8080/"), ("POD", "web-node-a")]);
        assert_eq!(config.log_path, "httpd/4.log");
        assert_eq!(config.metadata.unwrap().attempt, 4);
        assert_eq!(config.annotations["io.kubernetes.container.restartCount"], "4");
        assert_eq!(config.labels["io.kubernetes.container.name"], "httpd");
        let mounts: Vec<(&str, &str, bool)> =
            config.mounts.iter().map(|m| (m.container_path.as_str(), m.host_path.as_str(), m.readonly)).collect();
        assert_eq!(mounts, [("/data", "/srv/data", true), ("/scratch", "/v/kubernetes.io~empty-dir/scratch", false)]);
    }

    const SECURED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: api}
spec:
  priorityClassName: system-node-critical
  securityContext:
    runAsUser: 1000
    fsGroup: 2000
    sysctls: [{name: kernel.shm_rmid_forced, value: "1"}]
  containers:
  - name: app
    image: busybox:1.0
    resources:
      requests: {cpu: 250m}
      limits: {cpu: 500m, memory: 64Mi}
    securityContext:
      runAsUser: 1001
      readOnlyRootFilesystem: true
      capabilities: {drop: [NET_RAW]}
      seccompProfile: {type: RuntimeDefault}
"#;

    fn host() -> Host {
        Host {
            memory_capacity: 1 << 34,
            hugepage_sizes: vec!["2MB".into()],
            cpus: 2,
            apparmor: false,
            thermal_throttle_paths: vec![],
            cgroup_v2: false,
        }
    }

    #[test]
    fn sandbox_gets_cgroup_parent_sysctls_resources_and_pod_security() {
        let pod = pod(SECURED);
        let config = sandbox_config_in(&pod, "n", Path::new("/l"), 0, PodCgroups::Cgroupfs);
        let linux = config.linux.unwrap();
        assert_eq!(linux.cgroup_parent, format!("/kubepods/burstable/pod{}", pod.uid));
        assert_eq!(linux.sysctls["kernel.shm_rmid_forced"], "1");
        let resources = linux.resources.unwrap();
        assert_eq!(
            (resources.cpu_shares, resources.cpu_quota, resources.memory_limit_in_bytes),
            (256, 50_000, 64 << 20)
        );
        let sc = linux.security_context.unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
        assert_eq!(sc.supplemental_groups, [2000]);
        assert!(sc.namespace_options.is_some());
        let default = sandbox_config(&pod, "n", Path::new("/l"), 0);
        assert_eq!(default.linux.unwrap().cgroup_parent, "", "the runtime's default place");
    }

    #[test]
    fn container_gets_kubelets_resources_and_effective_security_context() {
        let pod = pod(SECURED);
        let ctx = ContainerContext {
            restart_count: 0,
            pod_ip: "",
            node_ip: "10.0.0.1",
            volumes_dir: Path::new("/v"),
            sub_paths: &BTreeMap::new(),
        };
        let config = container_config_on(&host(), &pod, "n", &pod.spec().containers[0], &ctx);
        let linux = config.linux.unwrap();
        let r = linux.resources.unwrap();
        assert_eq!(
            (r.cpu_shares, r.cpu_period, r.cpu_quota, r.memory_limit_in_bytes),
            (256, 100_000, 50_000, 64 << 20)
        );
        assert_eq!(r.oom_score_adj, -997, "system-node-critical");
        assert_eq!(r.hugepage_limits.len(), 1);
        let sc = linux.security_context.unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 1001, "the container's runAsUser wins");
        assert!(sc.readonly_rootfs);
        assert_eq!(sc.capabilities.unwrap().drop_capabilities, ["NET_RAW"]);
        assert_eq!(sc.seccomp.unwrap().profile_type, api::security_profile::ProfileType::RuntimeDefault as i32);
        assert_eq!(sc.supplemental_groups, [2000]);
        assert_eq!(sc.masked_paths.first().map(String::as_str), Some("/proc/asound"));
        assert_eq!(sc.namespace_options.unwrap().pid, NamespaceMode::Container as i32);
    }

    #[test]
    fn resource_field_refs_in_env_give_the_containers_own_resources_by_default() {
        let p = pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: i\n    \
             resources: {limits: {cpu: 500m, memory: 64Mi}}\n    env:\n    \
             - {name: CPU_M, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}\n    \
             - {name: CPU, valueFrom: {resourceFieldRef: {resource: requests.cpu}}}\n    \
             - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1Mi}}}\n    \
             - {name: SIDE_MEM, valueFrom: {resourceFieldRef: {containerName: side, resource: requests.memory}}}\n  \
             - name: side\n    image: i\n    resources: {requests: {memory: 1Ki}}\n",
        );
        let env = environment_of(&p, "n", &p.spec().containers[0], "", "192.0.2.7");
        let value = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(value("CPU_M"), Some("500"));
        assert_eq!(value("CPU"), Some("1"), "requests default to limits; 0.5 cores rounds up to 1");
        assert_eq!(value("MEM_MI"), Some("64"));
        assert_eq!(value("SIDE_MEM"), Some("1024"), "another container's, when named");
    }

    #[test]
    fn ip_field_refs_give_the_node_ip_as_host_ip_and_on_the_host_network_as_pod_ip() {
        let env_of = |host_network: bool, pod_ip: &str| {
            let fields = ["status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs"];
            let vars: String = fields
                .iter()
                .enumerate()
                .map(|(i, f)| format!("    - {{name: V{i}, valueFrom: {{fieldRef: {{fieldPath: {f}}}}}}}\n"))
                .collect();
            let p = pod(&format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  hostNetwork: {host_network}\n  containers:\n  - name: c\n    image: i\n    env:\n{vars}"
            ));
            let ctx = ContainerContext {
                restart_count: 0,
                pod_ip,
                node_ip: "192.0.2.7",
                volumes_dir: Path::new("/v"),
                sub_paths: &BTreeMap::new(),
            };
            let config = container_config(&p, "Node-A", &p.spec().containers[0], &ctx);
            config.envs.iter().map(|kv| kv.value.clone()).collect::<Vec<_>>()
        };
        assert_eq!(env_of(true, ""), ["192.0.2.7", "192.0.2.7", "192.0.2.7", "192.0.2.7"]);
        assert_eq!(env_of(false, "10.233.0.5"), ["10.233.0.5", "10.233.0.5", "192.0.2.7", "192.0.2.7"]);
    }

    #[test]
    fn stdin_stdin_once_and_tty_reach_the_container_config() {
        let pod = pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: t}\nspec:\n  containers:\n  - {name: a, image: i, stdin: true, stdinOnce: true, tty: true}\n  - {name: b, image: i}\n",
        );
        let ctx = ContainerContext {
            restart_count: 0,
            pod_ip: "",
            node_ip: "10.0.0.1",
            volumes_dir: Path::new("/v"),
            sub_paths: &BTreeMap::new(),
        };
        let flags = |c: &Container| {
            let config = container_config_on(&host(), &pod, "n", c, &ctx);
            (config.stdin, config.stdin_once, config.tty)
        };
        assert_eq!(flags(&pod.spec().containers[0]), (true, true, true));
        assert_eq!(flags(&pod.spec().containers[1]), (false, false, false));
    }

    #[test]
    fn dns_policy_none_puts_dns_config_in_the_sandbox() {
        let pod = pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: d}\nspec:\n  dnsPolicy: None\n  dnsConfig: {nameservers: [10.0.0.10], searches: [svc.example], options: [{name: ndots, value: '5'}]}\n  containers: [{name: a, image: i}]\n",
        );
        let dns = sandbox_config(&pod, "n", Path::new("/l"), 0).dns_config.unwrap();
        assert_eq!(
            (dns.servers, dns.searches, dns.options),
            (vec!["10.0.0.10".to_owned()], vec!["svc.example".to_owned()], vec!["ndots:5".to_owned()])
        );
        assert_eq!(
            sandbox_config(&self::pod(WEB), "n", Path::new("/l"), 0).dns_config,
            None,
            "the runtime copies the node's"
        );
    }

    #[test]
    fn mount_propagation_and_read_only_map_to_cri() {
        let pod = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: m}
spec:
  volumes: [{name: h, hostPath: {path: /h}}, {name: i, downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}}]
  containers:
  - name: c
    image: busybox
    securityContext: {privileged: true}
    volumeMounts:
    - {name: h, mountPath: /a, mountPropagation: None}
    - {name: h, mountPath: /b, mountPropagation: HostToContainer, readOnly: true, recursiveReadOnly: IfPossible}
    - {name: h, mountPath: /c, mountPropagation: Bidirectional}
    - {name: i, mountPath: /i}
"#);
        let ctx = ContainerContext {
            restart_count: 0,
            pod_ip: "",
            node_ip: "10.0.0.1",
            volumes_dir: Path::new("/v"),
            sub_paths: &BTreeMap::new(),
        };
        let config = container_config_on(&host(), &pod, "n", &pod.spec().containers[0], &ctx);
        let got: Vec<(&str, i32, bool, bool)> = config
            .mounts
            .iter()
            .map(|m| (m.container_path.as_str(), m.propagation, m.readonly, m.recursive_read_only))
            .collect();
        use api::MountPropagation::*;
        assert_eq!(
            got,
            [
                ("/a", PropagationPrivate as i32, false, false),
                ("/b", PropagationHostToContainer as i32, true, false),
                ("/c", PropagationBidirectional as i32, false, false),
                ("/i", PropagationPrivate as i32, true, false),
            ]
        );
        assert_eq!(config.mounts[3].host_path, "/v/kubernetes.io~downward-api/i");
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vars = HashMap::from([("A", "1")]);
        for (input, out) in
            [("$(A)", "1"), ("$$(A)", "$(A)"), ("$(B)", "$(B)"), ("x$", "x$"), ("$(A", "$(A"), ("a$(A)b", "a1b")]
        {
            assert_eq!(expand(input, &vars), out, "{input}");
        }
    }
}
