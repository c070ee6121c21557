//! kubelet's own configuration file: a `KubeletConfiguration` (kubelet.config.k8s.io/v1beta1), as
//! kubeadm writes it to /var/lib/kubelet/config.yaml, is read by `--config` as it is.
//!
//! Every field of v1beta1 (Kubernetes v1.35) is in [`FIELDS`], in one of three classes:
//! - honoured: a setting of ours, read by the settings table under this very name;
//! - not applicable: it means nothing on a node that runs static pods only;
//! - not yet: a kubelet feature staticlet lacks.
//!
//! The last two are accepted, so that kubeadm's file works unchanged, and listed once at start,
//! so that nobody believes them in effect. A field in none of the classes (a typo, or a field of
//! a newer kubelet) is an error that names it, as for staticlet's own file. docs/KUBELET-CONFIG.md
//! is the table, generated from [`FIELDS`] by a test.

use serde_json::{Map, Value};

use super::{ConfigError, ConfigFile, Loaded, Unused};

pub const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
pub const KIND: &str = "KubeletConfiguration";

/// What staticlet does with a KubeletConfiguration field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Read by the settings table (config/mod.rs), with kubelet's meaning.
    Honoured,
    /// Checked against what staticlet does (the only value it accepts, and why).
    Checked(&'static str),
    /// Accepted; means nothing here (why).
    NotApplicable(&'static str),
    /// Accepted; kubelet has it, staticlet does not yet (what happens instead).
    NotYet(&'static str),
}

use Class::{Checked, Honoured, NotApplicable, NotYet};

const NODE_API: &str = "the kubelet API serves logs, exec, attach, port-forward, pods, stats and metrics only";
const NO_EVICTION: &str = "static pods are never evicted: kubelet does not evict them either";
const NO_IMAGE_GC: &str = "no image garbage collection: images are the runtime's and the admin's";
const ONE_SHOT: &str = "fixed at kubelet's default";
const NO_API_WORKLOADS: &str = "no pods come from the API server, so there is nothing to admit, schedule or size";
const RESOURCE_MANAGERS: &str = "no CPU, memory or topology manager: containers get the CFS shares and quota of \
                                 their requests and limits, as with kubelet's `none` policies";
const CONTROL_PLANE_CERTS: &str = "rustls's safe defaults: TLS 1.2 and 1.3 with its cipher suites";
const CGROUP_DRIVER: &str = "must be cgroupfs (or unset): staticlet lays pod cgroups out with it, so the runtime's \
                             runc must use it too (containerd: SystemdCgroup = false); systemd is not supported yet";
const NO_VOLUME_PLUGINS: &str = "no volume plugins: static pods use hostPath, emptyDir and downwardAPI volumes";

/// Every field of KubeletConfiguration v1beta1 at Kubernetes v1.35, in the Go type's order.
pub const FIELDS: &[(&str, Class)] = &[
    ("enableServer", NotYet("the kubelet API is served unless port is 0")),
    ("staticPodPath", Honoured),
    ("podLogsDir", Honoured),
    ("syncFrequency", NotApplicable("each pod's supervisor reacts to its own events; there is no periodic sync")),
    ("fileCheckFrequency", Honoured),
    ("httpCheckFrequency", Honoured),
    ("staticPodURL", Honoured),
    ("staticPodURLHeader", Honoured),
    ("address", Honoured),
    ("port", Honoured),
    ("readOnlyPort", NotYet("no read-only port: every kubelet API request is authenticated")),
    ("tlsCertFile", Honoured),
    ("tlsPrivateKeyFile", Honoured),
    ("tlsCipherSuites", NotYet(CONTROL_PLANE_CERTS)),
    ("tlsMinVersion", NotYet(CONTROL_PLANE_CERTS)),
    ("rotateCertificates", Honoured),
    ("serverTLSBootstrap", Honoured),
    ("authentication", Honoured),
    ("authorization", Honoured),
    ("registryPullQPS", NotApplicable("image pulls are the runtime's, one per missing image")),
    ("registryBurst", NotApplicable("image pulls are the runtime's, one per missing image")),
    ("imagePullCredentialsVerificationPolicy", NotApplicable("static pods have no image pull secrets")),
    ("preloadedImagesVerificationAllowlist", NotApplicable("static pods have no image pull secrets")),
    ("eventRecordQPS", NotApplicable("events are rate-limited per pod and reason, as kubelet's default does")),
    ("eventBurst", NotApplicable("events are rate-limited per pod and reason, as kubelet's default does")),
    ("enableDebuggingHandlers", NotYet(NODE_API)),
    ("enableContentionProfiling", NotApplicable("a Go profiler setting")),
    ("healthzPort", Honoured),
    ("healthzBindAddress", Honoured),
    ("oomScoreAdj", NotApplicable("staticlet's own OOM score is set by its systemd unit (OOMScoreAdjust)")),
    (
        "clusterDomain",
        NotApplicable(
            "no cluster DNS reaches a static-pods-only node (no kube-proxy): ClusterFirst pods get the node's resolv.conf",
        ),
    ),
    (
        "clusterDNS",
        NotApplicable(
            "no cluster DNS reaches a static-pods-only node (no kube-proxy): ClusterFirst pods get the node's resolv.conf",
        ),
    ),
    (
        "streamingConnectionIdleTimeout",
        NotYet("exec, attach and port-forward sessions are the runtime's: containerd's stream idle timeout applies"),
    ),
    ("nodeStatusUpdateFrequency", NotYet(ONE_SHOT)),
    ("nodeStatusReportFrequency", NotYet(ONE_SHOT)),
    ("nodeLeaseDurationSeconds", NotYet(ONE_SHOT)),
    ("imageMinimumGCAge", NotApplicable(NO_IMAGE_GC)),
    ("imageMaximumGCAge", NotApplicable(NO_IMAGE_GC)),
    ("imageGCHighThresholdPercent", NotApplicable(NO_IMAGE_GC)),
    ("imageGCLowThresholdPercent", NotApplicable(NO_IMAGE_GC)),
    ("volumeStatsAggPeriod", NotYet("no volume usage statistics")),
    ("kubeletCgroups", NotApplicable("staticlet's own cgroup is its systemd unit's")),
    ("systemCgroups", NotApplicable(NO_API_WORKLOADS)),
    ("cgroupRoot", NotYet("pod cgroups are laid out under /kubepods, kubelet's default root")),
    ("cgroupsPerQOS", NotYet("pod cgroups are always laid out per QoS class, kubelet's default")),
    ("cgroupDriver", Checked(CGROUP_DRIVER)),
    ("cpuManagerPolicy", NotApplicable(RESOURCE_MANAGERS)),
    ("singleProcessOOMKill", NotYet("cgroup v2 memory.oom.group is the runtime's default")),
    ("cpuManagerPolicyOptions", NotApplicable(RESOURCE_MANAGERS)),
    ("cpuManagerReconcilePeriod", NotApplicable(RESOURCE_MANAGERS)),
    ("memoryManagerPolicy", NotApplicable(RESOURCE_MANAGERS)),
    ("topologyManagerPolicy", NotApplicable(RESOURCE_MANAGERS)),
    ("topologyManagerScope", NotApplicable(RESOURCE_MANAGERS)),
    ("topologyManagerPolicyOptions", NotApplicable(RESOURCE_MANAGERS)),
    ("qosReserved", NotApplicable(RESOURCE_MANAGERS)),
    ("runtimeRequestTimeout", Honoured),
    ("hairpinMode", NotApplicable("the CNI configuration's, on a node without kube-proxy")),
    ("maxPods", NotApplicable(NO_API_WORKLOADS)),
    ("podCIDR", NotApplicable("the CNI configuration's")),
    ("podPidsLimit", NotYet("pod cgroups get no pids.max")),
    ("resolvConf", NotYet("the node's resolv.conf is /etc/resolv.conf")),
    ("runOnce", NotApplicable("staticlet always runs as a daemon")),
    ("cpuCFSQuota", NotYet("CPU limits always set a CFS quota, kubelet's default")),
    ("cpuCFSQuotaPeriod", NotYet("the CFS period is 100ms, kubelet's default")),
    ("nodeStatusMaxImages", NotApplicable("the Node lists no images")),
    ("maxOpenFiles", NotApplicable("staticlet's own limit is its systemd unit's (LimitNOFILE)")),
    ("contentType", NotApplicable("kube-rs speaks JSON to the API server")),
    ("kubeAPIQPS", NotApplicable("a handful of requests per pod change: no client-side throttling")),
    ("kubeAPIBurst", NotApplicable("a handful of requests per pod change: no client-side throttling")),
    ("serializeImagePulls", NotApplicable("image pulls are the runtime's, one per missing image")),
    ("maxParallelImagePulls", NotApplicable("image pulls are the runtime's, one per missing image")),
    ("evictionHard", NotApplicable(NO_EVICTION)),
    ("evictionSoft", NotApplicable(NO_EVICTION)),
    ("evictionSoftGracePeriod", NotApplicable(NO_EVICTION)),
    ("evictionPressureTransitionPeriod", NotApplicable(NO_EVICTION)),
    ("evictionMaxPodGracePeriod", NotApplicable(NO_EVICTION)),
    ("evictionMinimumReclaim", NotApplicable(NO_EVICTION)),
    ("mergeDefaultEvictionSettings", NotApplicable(NO_EVICTION)),
    ("podsPerCore", NotApplicable(NO_API_WORKLOADS)),
    ("enableControllerAttachDetach", NotApplicable(NO_VOLUME_PLUGINS)),
    ("protectKernelDefaults", NotYet("kernel tunables are neither checked nor set")),
    ("makeIPTablesUtilChains", NotApplicable("no iptables chains: the node runs no kube-proxy")),
    ("iptablesMasqueradeBit", NotApplicable("no iptables chains: the node runs no kube-proxy")),
    ("iptablesDropBit", NotApplicable("no iptables chains: the node runs no kube-proxy")),
    (
        "featureGates",
        NotApplicable(
            "kubelet's feature gates name kubelet's code; EventedPLEG's counterpart is staticlet's containerEvents (on by default)",
        ),
    ),
    ("failSwapOn", NotApplicable("staticlet runs on a node with swap; pods get no swap limit of their own")),
    ("memorySwap", NotYet("pods get no swap setting of their own")),
    ("containerLogMaxSize", Honoured),
    ("containerLogMaxFiles", Honoured),
    ("containerLogMaxWorkers", Honoured),
    ("containerLogMonitorInterval", Honoured),
    ("configMapAndSecretChangeDetectionStrategy", NotApplicable("static pods cannot use ConfigMaps or Secrets")),
    ("systemReserved", NotApplicable(NO_API_WORKLOADS)),
    ("kubeReserved", NotApplicable(NO_API_WORKLOADS)),
    ("reservedSystemCPUs", NotApplicable(RESOURCE_MANAGERS)),
    ("showHiddenMetricsForVersion", NotApplicable("staticlet's metrics are its own")),
    ("systemReservedCgroup", NotApplicable(NO_API_WORKLOADS)),
    ("kubeReservedCgroup", NotApplicable(NO_API_WORKLOADS)),
    ("enforceNodeAllocatable", NotApplicable(NO_API_WORKLOADS)),
    ("allowedUnsafeSysctls", NotYet("every namespaced sysctl a manifest sets is passed to the runtime")),
    ("volumePluginDir", NotApplicable(NO_VOLUME_PLUGINS)),
    ("providerID", NotYet("the Node gets no spec.providerID")),
    ("kernelMemcgNotification", NotApplicable(NO_EVICTION)),
    (
        "logging",
        NotYet(
            "log format and verbosity come from STATICLET_LOG, e.g. info,staticlet::cri=trace to time every runtime call",
        ),
    ),
    ("enableSystemLogHandler", NotYet(NODE_API)),
    ("enableSystemLogQuery", NotYet(NODE_API)),
    ("shutdownGracePeriod", NotYet("no graceful node shutdown: pods keep running when staticlet stops")),
    ("shutdownGracePeriodCriticalPods", NotYet("no graceful node shutdown: pods keep running when staticlet stops")),
    ("shutdownGracePeriodByPodPriority", NotYet("no graceful node shutdown: pods keep running when staticlet stops")),
    ("crashLoopBackOff", NotYet("restart back-off is kubelet's default: 10s doubling to 5m")),
    ("reservedMemory", NotApplicable(RESOURCE_MANAGERS)),
    ("enableProfilingHandler", NotYet(NODE_API)),
    ("enableDebugFlagsHandler", NotYet(NODE_API)),
    ("seccompDefault", NotYet("containers without a seccompProfile run Unconfined, kubelet's default")),
    ("memoryThrottlingFactor", NotApplicable("memory QoS (memory.high) is an alpha kubelet feature")),
    ("registerWithTaints", Honoured),
    ("registerNode", NotYet("with --kubeconfig the Node is always registered")),
    ("tracing", NotApplicable("staticlet exports no OpenTelemetry traces")),
    ("localStorageCapacityIsolation", NotApplicable(NO_EVICTION)),
    ("containerRuntimeEndpoint", Honoured),
    ("imageServiceEndpoint", NotYet("images are served by the runtime endpoint")),
    ("failCgroupV1", NotApplicable("staticlet runs on cgroup v1 and v2 alike")),
    ("userNamespaces", NotApplicable("hostUsers: false is refused by the pod field contract")),
];

/// Whether a document is a KubeletConfiguration (by its kind), and if so, of a version we read.
pub fn is_kubelet_configuration(path: &str, document: &Map<String, Value>) -> Result<bool, ConfigError> {
    if document.get("kind").and_then(Value::as_str) != Some(KIND) {
        return Ok(false);
    }
    match document.get("apiVersion").and_then(Value::as_str) {
        Some(API_VERSION) => Ok(true),
        other => Err(ConfigError::Parse {
            path: path.into(),
            message: format!("apiVersion: {other:?}: a {KIND} must be {API_VERSION}"),
        }),
    }
}

/// Splits a KubeletConfiguration into our settings and the fields that are accepted but unused.
pub fn read(path: &str, mut document: Map<String, Value>) -> Result<Loaded, ConfigError> {
    let mut unused = Vec::new();
    for &(field, class) in FIELDS {
        let why = match class {
            Honoured => continue,
            Checked(rule) => {
                check(path, field, rule, document.remove(field))?;
                continue;
            }
            NotApplicable(why) | NotYet(why) => why,
        };
        if document.remove(field).is_some() {
            unused.push(Unused { field, why });
        }
    }
    super::flatten_nested(&mut document);
    drop_zero_durations(&mut document);
    let file: ConfigFile = serde_json::from_value(Value::Object(document))
        .map_err(|e| ConfigError::Parse { path: path.into(), message: format!("{e} (a {KIND} field?)") })?;
    Ok(Loaded { file, unused })
}

/// The one checked field, cgroupDriver: only cgroupfs.
fn check(path: &str, field: &str, rule: &str, value: Option<Value>) -> Result<(), ConfigError> {
    match value.as_ref().map(|v| v.as_str()) {
        None | Some(Some("" | "cgroupfs")) => Ok(()),
        Some(_) => Err(ConfigError::Parse {
            path: path.into(),
            message: format!("{field}: {}: {rule}", value.unwrap_or_default()),
        }),
    }
}

/// kubelet's defaulting turns these zero durations into the default (kubeadm writes `0s`).
const ZERO_MEANS_DEFAULT: &[&str] = &[
    "fileCheckFrequency",
    "httpCheckFrequency",
    "runtimeRequestTimeout",
    "authentication.webhook.cacheTTL",
    "authorization.webhook.cacheAuthorizedTTL",
    "authorization.webhook.cacheUnauthorizedTTL",
];

fn drop_zero_durations(document: &mut Map<String, Value>) {
    for field in ZERO_MEANS_DEFAULT {
        let zero = document.get(*field).and_then(Value::as_str).and_then(super::parse_go_duration);
        if zero == Some(std::time::Duration::ZERO) {
            document.remove(*field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SETTINGS;

    const REGENERATE: &str = "STATICLET_REGENERATE=1 cargo test --lib config::kubelet";

    /// What `kubeadm init` v1.35.8 writes to /var/lib/kubelet/config.yaml (with cgroupDriver
    /// cgroupfs, as its configuration asked).
    const KUBEADM: &str = include_str!("../../tests/fixtures/kubeadm-kubelet-config.yaml");

    fn document(yaml: &str) -> Map<String, Value> {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn kubeadms_file_is_read_with_its_unused_fields_listed() {
        let loaded = read("config.yaml", document(KUBEADM)).unwrap();
        assert_eq!(loaded.file.static_pod_path.as_deref(), Some("/etc/kubernetes/manifests"));
        assert_eq!(loaded.file.healthz_port, Some(10248));
        assert_eq!(loaded.file.file_check_frequency, None, "0s is kubelet's default");
        let unused: Vec<&str> = loaded.unused.iter().map(|u| u.field).collect();
        assert!(unused.contains(&"clusterDNS") && unused.contains(&"clusterDomain"), "{unused:?}");
        assert!(!unused.contains(&"staticPodPath"), "{unused:?}");
        assert_eq!(loaded.file.client_ca_file.as_deref(), Some("/etc/kubernetes/pki/ca.crt"), "nested fields are read");
        assert_eq!(loaded.file.anonymous_auth, Some(false));
        assert_eq!(loaded.file.authorization_mode.as_deref(), Some("Webhook"));
    }

    #[test]
    fn a_field_kubelet_does_not_have_is_an_error_that_names_it() {
        let err = read("config.yaml", document(&format!("{KUBEADM}staticPodPth: /x\n"))).unwrap_err();
        assert!(err.to_string().contains("staticPodPth") && err.to_string().contains("config.yaml"), "{err}");
    }

    #[test]
    fn the_systemd_cgroup_driver_is_refused_by_name() {
        let err = read("c.yaml", document("cgroupDriver: systemd\n")).unwrap_err();
        assert!(err.to_string().contains("cgroupDriver") && err.to_string().contains("cgroupfs"), "{err}");
    }

    #[test]
    fn only_v1beta1_is_read() {
        let doc = document("apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\n");
        let err = is_kubelet_configuration("c.yaml", &doc).unwrap_err();
        assert!(err.to_string().contains("apiVersion"), "{err}");
        assert!(!is_kubelet_configuration("c.yaml", &document("kind: StaticletConfiguration\n")).unwrap());
    }

    #[test]
    fn honoured_fields_are_exactly_the_settings_with_a_kubelet_name() {
        for &(field, class) in FIELDS {
            let setting = SETTINGS.iter().any(|s| s.file == field || s.file.starts_with(&format!("{field}.")));
            assert_eq!(class == Honoured, setting, "{field}: Honoured iff the settings table reads it");
        }
    }

    #[test]
    fn no_field_is_listed_twice() {
        let mut seen = std::collections::HashSet::new();
        let twice: Vec<&str> = FIELDS.iter().map(|f| f.0).filter(|f| !seen.insert(*f)).collect();
        assert!(twice.is_empty(), "{twice:?}");
    }

    fn markdown() -> String {
        let count = |want: fn(&Class) -> bool| FIELDS.iter().filter(|f| want(&f.1)).count();
        let mut out = format!(
            "# kubelet's configuration file\n\n\
             <!-- Generated from FIELDS in src/config/kubelet.rs by `{REGENERATE}`; do not edit. -->\n\n\
             `staticlet --config FILE` reads a `{KIND}` ({API_VERSION}) as kubelet does, so the file kubeadm writes \
             to /var/lib/kubelet/config.yaml works unchanged. Every field of v1beta1 (Kubernetes v1.35) is in one \
             of three classes:\n\n\
             - **honoured**: staticlet acts on it with kubelet's meaning (`staticlet --help` has the flag);\n\
             - **not applicable**: it means nothing on a node that runs static pods only;\n\
             - **not yet**: kubelet has the feature, staticlet does not (the note says what happens instead).\n\n\
             The last two are accepted and listed once in the log at start, so nobody believes them in effect. \
             Any other field (a typo) is an error that names it.\n\n\
             {} fields: {} honoured, {} not applicable, {} not yet.\n\n\
             | field | class | note |\n|---|---|---|\n",
            FIELDS.len(),
            count(|c| matches!(c, Honoured | Checked(_))),
            count(|c| matches!(c, NotApplicable(_))),
            count(|c| matches!(c, NotYet(_))),
        );
        for &(field, class) in FIELDS {
            let (class, note) = match class {
                Honoured => ("honoured", ""),
                Checked(note) => ("honoured", note),
                NotApplicable(note) => ("not applicable", note),
                NotYet(note) => ("not yet", note),
            };
            out.push_str(&format!("| `{field}` | {class} | {note} |\n"));
        }
        out
    }

    #[test]
    fn committed_field_table_is_current() {
        crate::generated::assert_committed("KUBELET-CONFIG.md", &markdown(), REGENERATE);
    }
}
