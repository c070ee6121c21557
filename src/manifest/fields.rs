//! The field contract: every field of a v1 Pod is honoured, accepted or refused, and a manifest
//! that sets a refused or unknown field is refused with an error naming it.
//!
//! kubelet decodes a static pod leniently: an unknown field (a typo, or a field of a newer
//! Kubernetes) is dropped without a word. staticlet implements a subset of the fields, so the same
//! leniency would also hide every field it does not implement. Here one table, [`FIELDS`], classifies every field path of a Pod (`spec.containers[].name`;
//! `[]` stands for a list's items). A field of an honoured or accepted struct is classified one by
//! one; a refused field covers its whole subtree. The tests walk k8s-openapi's JSON Schema of
//! `Pod`, so a field added by a newer Kubernetes fails them until it is classified, and render the
//! table as docs/POD-FIELDS.md.
//!
//! [`refusals`] walks a pod *as written* (the document's JSON value, not the decoded struct), so a
//! refused field set to its default value, or to an empty list, still counts as set; only `null`
//! counts as unset, as it does for the API server.

use std::{collections::HashMap, sync::LazyLock};

use serde_json::Value;

use super::FieldError;

/// What staticlet does with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// staticlet acts on it; the note says how where that is not obvious (may be empty).
    Honoured(&'static str),
    /// It has no effect by design for a static pod; the note says why.
    Accepted(&'static str),
    /// A manifest that sets it is refused, with the note as the error message.
    Refused(&'static str),
}

/// One row of the table: a field path (`[]` for a list's items) and its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub path: &'static str,
    pub class: Class,
}

const fn field(path: &'static str, class: Class) -> Field {
    Field { path, class }
}

macro_rules! api_object {
    ($kind:literal) => {
        concat!("references the API object kind ", $kind, ", which a static pod cannot use")
    };
}

const NONE: &str = "";
const NOT_YET: &str = "not supported by staticlet yet";
const SCHEDULING: &str = "scheduling only: a static pod is already on its node, and staticlet does not check it against the node; kept on the mirror";
const TOLERATIONS: &str = "only the API server's taint eviction reads them, and deleting a mirror never stops a static pod; kept on the mirror (file pods get kubelet's NoExecute toleration)";
const SET_BY_API: &str = "written by the API server; a manifest's value is never read";
const OWNER: &str = "replaced: a mirror pod's only owner is its Node (NodeRestriction)";
const FINALIZERS: &str = "only API server controllers act on finalizers; not copied to the mirror";
const GENERATE_NAME: &str = "metadata.name is required, and the API server ignores generateName when a name is given";
const NO_TOKEN: &str = "no service account token is ever mounted into a static pod (kubelet mounts none either)";
const SERVICE_LINKS: &str = "no Service variables are injected: a static pod may run with no API server";
// kubeadm writes `status: {}`; the table does not descend into it (see the tests).
const STATUS: &str = "a pod's status is what staticlet observes; a manifest's is never read";
const WINDOWS: &str = "Windows only; staticlet runs Linux containers";
const UNSUPPORTED_VOLUME: &str = "volume type not supported by staticlet (use hostPath, emptyDir or downwardAPI)";
const ATTACH: &str = "passed to the runtime (CRI ContainerConfig); nothing attaches to a static pod's containers yet";
const INIT_CONTAINERS: &str = "run in order, each to exit 0, before the main containers; every field under spec.initContainers[] is classified as under spec.containers[], except restartPolicy, and probes and lifecycle are only for sidecars";
/// Init containers are Containers: their fields are classified as the main containers' are,
/// except where the table names a `spec.initContainers[]` field of its own.
const CONTAINERS: &str = "spec.containers[]";
const INIT: &str = "spec.initContainers[]";
const APPARMOR: &str = "where the host has AppArmor; elsewhere the container does not start (CreateContainerConfigError: AppArmor is not enabled on the host)";
const HOOK_TCP: &str = "deprecated, and not run by kubelet (the hook fails when it runs); use exec, httpGet or sleep";
const STOP_SIGNAL: &str = "the runtime cannot take it: the CRI v1 ContainerConfig staticlet speaks (containerd 1.6's) has no stop signal, so the image's STOPSIGNAL (or SIGTERM) is always sent";
const PRIORITY: &str = "kept on the mirror; drives the containers' oom_score_adj";
const RESOURCE_NAMES: &str = "cpu, memory and hugepages-<size>";
const FIELD_REFS: &str = "one of metadata.name, metadata.namespace, metadata.uid, spec.nodeName, status.podIP(s) (the node's IP on the host network) or status.hostIP(s) (the node's IP)";
const DNS_POLICY: &str = "there is no cluster DNS: ClusterFirst and ClusterFirstWithHostNet fall back to Default (the node's resolv.conf), as kubelet's do without clusterDNS; None uses dnsConfig alone";
const SUB_PATH: &str = "relative, without '..' (refused by field); resolved with symlinks followed before the container is created, created as a directory when missing, and a path that leaves its volume is a CreateContainerConfigError";
const VOLUME_FIELD_REFS: &str = "one of metadata.name, metadata.namespace, metadata.uid, metadata.labels or metadata.annotations (kubelet's sorted key=\"value\" lines)";
const RESOURCE_FIELD_REF: &str = "limits/requests of cpu, memory or ephemeral-storage, divided by divisor and rounded up; a limit not set is the node's capacity";

use Class::{Accepted, Honoured, Refused};

/// Every field of a v1 Pod (Kubernetes v1.35), in the schema's order. Pinned by the tests against
/// k8s-openapi's schema and rendered as docs/POD-FIELDS.md.
#[rustfmt::skip]
pub const FIELDS: &[Field] = &[
    field("apiVersion", Honoured("must be v1")),
    field("kind", Honoured("Pod (or a PodList or List of Pods)")),
    field("metadata", Honoured(NONE)),
    field("metadata.annotations", Honoured("on the sandbox and the mirror")),
    field("metadata.creationTimestamp", Accepted(SET_BY_API)),
    field("metadata.deletionGracePeriodSeconds", Accepted(SET_BY_API)),
    field("metadata.deletionTimestamp", Accepted(SET_BY_API)),
    field("metadata.finalizers", Accepted(FINALIZERS)),
    field("metadata.generateName", Accepted(GENERATE_NAME)),
    field("metadata.generation", Accepted(SET_BY_API)),
    field("metadata.labels", Honoured("on the sandbox and the mirror")),
    field("metadata.managedFields", Accepted(SET_BY_API)),
    field("metadata.managedFields[].apiVersion", Accepted(SET_BY_API)),
    field("metadata.managedFields[].fieldsType", Accepted(SET_BY_API)),
    field("metadata.managedFields[].fieldsV1", Accepted(SET_BY_API)),
    field("metadata.managedFields[].manager", Accepted(SET_BY_API)),
    field("metadata.managedFields[].operation", Accepted(SET_BY_API)),
    field("metadata.managedFields[].subresource", Accepted(SET_BY_API)),
    field("metadata.managedFields[].time", Accepted(SET_BY_API)),
    field("metadata.name", Honoured("the pod is named `<name>-<node>`")),
    field("metadata.namespace", Honoured("default when empty")),
    field("metadata.ownerReferences", Accepted(OWNER)),
    field("metadata.ownerReferences[].apiVersion", Accepted(OWNER)),
    field("metadata.ownerReferences[].blockOwnerDeletion", Accepted(OWNER)),
    field("metadata.ownerReferences[].controller", Accepted(OWNER)),
    field("metadata.ownerReferences[].kind", Accepted(OWNER)),
    field("metadata.ownerReferences[].name", Accepted(OWNER)),
    field("metadata.ownerReferences[].uid", Accepted(OWNER)),
    field("metadata.resourceVersion", Accepted(SET_BY_API)),
    field("metadata.selfLink", Accepted(SET_BY_API)),
    field("metadata.uid", Honoured("kept as the pod's UID; config.hash stays the content hash")),
    field("spec", Honoured(NONE)),
    field("spec.activeDeadlineSeconds", Honoured("counted from the pod's first sandbox; past it the pod is stopped (preStop hooks and grace honoured), Failed with reason DeadlineExceeded, and never restarted")),
    field("spec.affinity", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[].preference", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[].preference.matchExpressions", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[].preference.matchExpressions[].key", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[].preference.matchExpressions[].operator", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[].preference.matchExpressions[].values", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[].preference.matchFields", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[].preference.matchFields[].key", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[].preference.matchFields[].operator", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[].preference.matchFields[].values", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[].weight", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchExpressions", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchExpressions[].key", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchExpressions[].operator", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchExpressions[].values", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchFields", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchFields[].key", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchFields[].operator", Accepted(SCHEDULING)),
    field("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchFields[].values", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.labelSelector", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.labelSelector.matchExpressions", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.labelSelector.matchExpressions[].key", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.labelSelector.matchExpressions[].operator", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.labelSelector.matchExpressions[].values", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.labelSelector.matchLabels", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.matchLabelKeys", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.mismatchLabelKeys", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaceSelector", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaceSelector.matchExpressions", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaceSelector.matchExpressions[].key", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaceSelector.matchExpressions[].operator", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaceSelector.matchExpressions[].values", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaceSelector.matchLabels", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaces", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.topologyKey", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[].weight", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchExpressions", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchExpressions[].key", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchExpressions[].operator", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchExpressions[].values", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchLabels", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].matchLabelKeys", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].mismatchLabelKeys", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaceSelector", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaceSelector.matchExpressions", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaceSelector.matchExpressions[].key", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaceSelector.matchExpressions[].operator", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaceSelector.matchExpressions[].values", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaceSelector.matchLabels", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaces", Accepted(SCHEDULING)),
    field("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].topologyKey", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.labelSelector", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.labelSelector.matchExpressions", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.labelSelector.matchExpressions[].key", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.labelSelector.matchExpressions[].operator", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.labelSelector.matchExpressions[].values", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.labelSelector.matchLabels", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.matchLabelKeys", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.mismatchLabelKeys", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaceSelector", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaceSelector.matchExpressions", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaceSelector.matchExpressions[].key", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaceSelector.matchExpressions[].operator", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaceSelector.matchExpressions[].values", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaceSelector.matchLabels", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaces", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.topologyKey", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].weight", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchExpressions", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchExpressions[].key", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchExpressions[].operator", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchExpressions[].values", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchLabels", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].matchLabelKeys", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].mismatchLabelKeys", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaceSelector", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaceSelector.matchExpressions", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaceSelector.matchExpressions[].key", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaceSelector.matchExpressions[].operator", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaceSelector.matchExpressions[].values", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaceSelector.matchLabels", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaces", Accepted(SCHEDULING)),
    field("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].topologyKey", Accepted(SCHEDULING)),
    field("spec.automountServiceAccountToken", Accepted(NO_TOKEN)),
    field("spec.containers", Honoured(NONE)),
    field("spec.containers[].args", Honoured(NONE)),
    field("spec.containers[].command", Honoured(NONE)),
    field("spec.containers[].env", Honoured(NONE)),
    field("spec.containers[].env[].name", Honoured(NONE)),
    field("spec.containers[].env[].value", Honoured(NONE)),
    field("spec.containers[].env[].valueFrom", Honoured(NONE)),
    field("spec.containers[].env[].valueFrom.configMapKeyRef", Refused(api_object!("ConfigMap"))),
    field("spec.containers[].env[].valueFrom.fieldRef", Honoured(NONE)),
    field("spec.containers[].env[].valueFrom.fieldRef.apiVersion", Accepted("v1 is the only version of the fields fieldPath names")),
    field("spec.containers[].env[].valueFrom.fieldRef.fieldPath", Honoured(FIELD_REFS)),
    field("spec.containers[].env[].valueFrom.fileKeyRef", Refused(NOT_YET)),
    field("spec.containers[].env[].valueFrom.resourceFieldRef", Honoured(RESOURCE_FIELD_REF)),
    field("spec.containers[].env[].valueFrom.resourceFieldRef.containerName", Honoured("the container itself when unset")),
    field("spec.containers[].env[].valueFrom.resourceFieldRef.divisor", Honoured("1 when unset")),
    field("spec.containers[].env[].valueFrom.resourceFieldRef.resource", Honoured(NONE)),
    field("spec.containers[].env[].valueFrom.secretKeyRef", Refused(api_object!("Secret"))),
    field("spec.containers[].envFrom", Refused(api_object!("ConfigMap or Secret"))),
    field("spec.containers[].image", Honoured(NONE)),
    field("spec.containers[].imagePullPolicy", Honoured("Always with no registry reachable: the local image is used, with a warning")),
    field("spec.containers[].lifecycle", Accepted("holds the hooks below; an empty lifecycle has no effect")),
    field("spec.containers[].lifecycle.postStart", Honoured("run right after the container starts; until it returns the container is not Running; if it fails (FailedPostStartHook) the container is killed and restarted by its restartPolicy")),
    field("spec.containers[].lifecycle.postStart.exec", Honoured("through CRI ExecSync")),
    field("spec.containers[].lifecycle.postStart.exec.command", Honoured(NONE)),
    field("spec.containers[].lifecycle.postStart.httpGet", Honoured("any HTTP answer passes, as kubelet's; only a failed request fails the hook")),
    field("spec.containers[].lifecycle.postStart.httpGet.host", Honoured(NONE)),
    field("spec.containers[].lifecycle.postStart.httpGet.httpHeaders", Honoured(NONE)),
    field("spec.containers[].lifecycle.postStart.httpGet.httpHeaders[].name", Honoured(NONE)),
    field("spec.containers[].lifecycle.postStart.httpGet.httpHeaders[].value", Honoured(NONE)),
    field("spec.containers[].lifecycle.postStart.httpGet.path", Honoured(NONE)),
    field("spec.containers[].lifecycle.postStart.httpGet.port", Honoured(NONE)),
    field("spec.containers[].lifecycle.postStart.httpGet.scheme", Honoured(NONE)),
    field("spec.containers[].lifecycle.postStart.sleep", Honoured(NONE)),
    field("spec.containers[].lifecycle.postStart.sleep.seconds", Honoured("0 to terminationGracePeriodSeconds")),
    field("spec.containers[].lifecycle.postStart.tcpSocket", Refused(HOOK_TCP)),
    field("spec.containers[].lifecycle.preStop", Honoured("run before every stop staticlet makes (manifest removed or edited, liveness kill, failed postStart, activeDeadlineSeconds), within the grace period; the stop signal gets what is left (at least 2 s); a failure (FailedPreStopHook) does not stop the stop")),
    field("spec.containers[].lifecycle.preStop.exec", Honoured("through CRI ExecSync")),
    field("spec.containers[].lifecycle.preStop.exec.command", Honoured(NONE)),
    field("spec.containers[].lifecycle.preStop.httpGet", Honoured("any HTTP answer passes, as kubelet's; only a failed request fails the hook")),
    field("spec.containers[].lifecycle.preStop.httpGet.host", Honoured(NONE)),
    field("spec.containers[].lifecycle.preStop.httpGet.httpHeaders", Honoured(NONE)),
    field("spec.containers[].lifecycle.preStop.httpGet.httpHeaders[].name", Honoured(NONE)),
    field("spec.containers[].lifecycle.preStop.httpGet.httpHeaders[].value", Honoured(NONE)),
    field("spec.containers[].lifecycle.preStop.httpGet.path", Honoured(NONE)),
    field("spec.containers[].lifecycle.preStop.httpGet.port", Honoured(NONE)),
    field("spec.containers[].lifecycle.preStop.httpGet.scheme", Honoured(NONE)),
    field("spec.containers[].lifecycle.preStop.sleep", Honoured(NONE)),
    field("spec.containers[].lifecycle.preStop.sleep.seconds", Honoured("0 to terminationGracePeriodSeconds")),
    field("spec.containers[].lifecycle.preStop.tcpSocket", Refused(HOOK_TCP)),
    field("spec.containers[].lifecycle.stopSignal", Refused(STOP_SIGNAL)),
    field("spec.containers[].livenessProbe", Honoured(NONE)),
    field("spec.containers[].livenessProbe.exec", Honoured(NONE)),
    field("spec.containers[].livenessProbe.exec.command", Honoured(NONE)),
    field("spec.containers[].livenessProbe.failureThreshold", Honoured(NONE)),
    field("spec.containers[].livenessProbe.grpc", Honoured(NONE)),
    field("spec.containers[].livenessProbe.grpc.port", Honoured(NONE)),
    field("spec.containers[].livenessProbe.grpc.service", Honoured(NONE)),
    field("spec.containers[].livenessProbe.httpGet", Honoured(NONE)),
    field("spec.containers[].livenessProbe.httpGet.host", Honoured(NONE)),
    field("spec.containers[].livenessProbe.httpGet.httpHeaders", Honoured(NONE)),
    field("spec.containers[].livenessProbe.httpGet.httpHeaders[].name", Honoured(NONE)),
    field("spec.containers[].livenessProbe.httpGet.httpHeaders[].value", Honoured(NONE)),
    field("spec.containers[].livenessProbe.httpGet.path", Honoured(NONE)),
    field("spec.containers[].livenessProbe.httpGet.port", Honoured(NONE)),
    field("spec.containers[].livenessProbe.httpGet.scheme", Honoured(NONE)),
    field("spec.containers[].livenessProbe.initialDelaySeconds", Honoured(NONE)),
    field("spec.containers[].livenessProbe.periodSeconds", Honoured(NONE)),
    field("spec.containers[].livenessProbe.successThreshold", Honoured(NONE)),
    field("spec.containers[].livenessProbe.tcpSocket", Honoured(NONE)),
    field("spec.containers[].livenessProbe.tcpSocket.host", Honoured(NONE)),
    field("spec.containers[].livenessProbe.tcpSocket.port", Honoured(NONE)),
    field("spec.containers[].livenessProbe.terminationGracePeriodSeconds", Honoured(NONE)),
    field("spec.containers[].livenessProbe.timeoutSeconds", Honoured(NONE)),
    field("spec.containers[].name", Honoured(NONE)),
    field("spec.containers[].ports", Honoured(NONE)),
    field("spec.containers[].ports[].containerPort", Honoured(NONE)),
    field("spec.containers[].ports[].hostIP", Honoured(NONE)),
    field("spec.containers[].ports[].hostPort", Honoured(NONE)),
    field("spec.containers[].ports[].name", Honoured("probes may name the port")),
    field("spec.containers[].ports[].protocol", Honoured(NONE)),
    field("spec.containers[].readinessProbe", Honoured(NONE)),
    field("spec.containers[].readinessProbe.exec", Honoured(NONE)),
    field("spec.containers[].readinessProbe.exec.command", Honoured(NONE)),
    field("spec.containers[].readinessProbe.failureThreshold", Honoured(NONE)),
    field("spec.containers[].readinessProbe.grpc", Honoured(NONE)),
    field("spec.containers[].readinessProbe.grpc.port", Honoured(NONE)),
    field("spec.containers[].readinessProbe.grpc.service", Honoured(NONE)),
    field("spec.containers[].readinessProbe.httpGet", Honoured(NONE)),
    field("spec.containers[].readinessProbe.httpGet.host", Honoured(NONE)),
    field("spec.containers[].readinessProbe.httpGet.httpHeaders", Honoured(NONE)),
    field("spec.containers[].readinessProbe.httpGet.httpHeaders[].name", Honoured(NONE)),
    field("spec.containers[].readinessProbe.httpGet.httpHeaders[].value", Honoured(NONE)),
    field("spec.containers[].readinessProbe.httpGet.path", Honoured(NONE)),
    field("spec.containers[].readinessProbe.httpGet.port", Honoured(NONE)),
    field("spec.containers[].readinessProbe.httpGet.scheme", Honoured(NONE)),
    field("spec.containers[].readinessProbe.initialDelaySeconds", Honoured(NONE)),
    field("spec.containers[].readinessProbe.periodSeconds", Honoured(NONE)),
    field("spec.containers[].readinessProbe.successThreshold", Honoured(NONE)),
    field("spec.containers[].readinessProbe.tcpSocket", Honoured(NONE)),
    field("spec.containers[].readinessProbe.tcpSocket.host", Honoured(NONE)),
    field("spec.containers[].readinessProbe.tcpSocket.port", Honoured(NONE)),
    field("spec.containers[].readinessProbe.terminationGracePeriodSeconds", Honoured(NONE)),
    field("spec.containers[].readinessProbe.timeoutSeconds", Honoured(NONE)),
    field("spec.containers[].resizePolicy", Refused("in-place resize is not supported by staticlet")),
    field("spec.containers[].resources", Honoured(NONE)),
    field("spec.containers[].resources.claims", Refused(api_object!("ResourceClaim"))),
    field("spec.containers[].resources.limits", Honoured(RESOURCE_NAMES)),
    field("spec.containers[].resources.requests", Honoured(RESOURCE_NAMES)),
    field("spec.containers[].restartPolicy", Refused(NOT_YET)),
    field("spec.containers[].restartPolicyRules", Refused(NOT_YET)),
    field("spec.containers[].securityContext", Honoured(NONE)),
    field("spec.containers[].securityContext.allowPrivilegeEscalation", Honoured(NONE)),
    field("spec.containers[].securityContext.appArmorProfile", Honoured(APPARMOR)),
    field("spec.containers[].securityContext.appArmorProfile.localhostProfile", Honoured(NONE)),
    field("spec.containers[].securityContext.appArmorProfile.type", Honoured(NONE)),
    field("spec.containers[].securityContext.capabilities", Honoured(NONE)),
    field("spec.containers[].securityContext.capabilities.add", Honoured(NONE)),
    field("spec.containers[].securityContext.capabilities.drop", Honoured(NONE)),
    field("spec.containers[].securityContext.privileged", Honoured(NONE)),
    field("spec.containers[].securityContext.procMount", Honoured(NONE)),
    field("spec.containers[].securityContext.readOnlyRootFilesystem", Honoured(NONE)),
    field("spec.containers[].securityContext.runAsGroup", Honoured(NONE)),
    field("spec.containers[].securityContext.runAsNonRoot", Honoured(NONE)),
    field("spec.containers[].securityContext.runAsUser", Honoured(NONE)),
    field("spec.containers[].securityContext.seLinuxOptions", Refused(NOT_YET)),
    field("spec.containers[].securityContext.seccompProfile", Honoured(NONE)),
    field("spec.containers[].securityContext.seccompProfile.localhostProfile", Honoured(NONE)),
    field("spec.containers[].securityContext.seccompProfile.type", Honoured(NONE)),
    field("spec.containers[].securityContext.windowsOptions", Refused(WINDOWS)),
    field("spec.containers[].startupProbe", Honoured(NONE)),
    field("spec.containers[].startupProbe.exec", Honoured(NONE)),
    field("spec.containers[].startupProbe.exec.command", Honoured(NONE)),
    field("spec.containers[].startupProbe.failureThreshold", Honoured(NONE)),
    field("spec.containers[].startupProbe.grpc", Honoured(NONE)),
    field("spec.containers[].startupProbe.grpc.port", Honoured(NONE)),
    field("spec.containers[].startupProbe.grpc.service", Honoured(NONE)),
    field("spec.containers[].startupProbe.httpGet", Honoured(NONE)),
    field("spec.containers[].startupProbe.httpGet.host", Honoured(NONE)),
    field("spec.containers[].startupProbe.httpGet.httpHeaders", Honoured(NONE)),
    field("spec.containers[].startupProbe.httpGet.httpHeaders[].name", Honoured(NONE)),
    field("spec.containers[].startupProbe.httpGet.httpHeaders[].value", Honoured(NONE)),
    field("spec.containers[].startupProbe.httpGet.path", Honoured(NONE)),
    field("spec.containers[].startupProbe.httpGet.port", Honoured(NONE)),
    field("spec.containers[].startupProbe.httpGet.scheme", Honoured(NONE)),
    field("spec.containers[].startupProbe.initialDelaySeconds", Honoured(NONE)),
    field("spec.containers[].startupProbe.periodSeconds", Honoured(NONE)),
    field("spec.containers[].startupProbe.successThreshold", Honoured(NONE)),
    field("spec.containers[].startupProbe.tcpSocket", Honoured(NONE)),
    field("spec.containers[].startupProbe.tcpSocket.host", Honoured(NONE)),
    field("spec.containers[].startupProbe.tcpSocket.port", Honoured(NONE)),
    field("spec.containers[].startupProbe.terminationGracePeriodSeconds", Honoured(NONE)),
    field("spec.containers[].startupProbe.timeoutSeconds", Honoured(NONE)),
    field("spec.containers[].stdin", Honoured(ATTACH)),
    field("spec.containers[].stdinOnce", Honoured(ATTACH)),
    field("spec.containers[].terminationMessagePath", Honoured("/dev/termination-log when unset: a fresh host file under <rootDir>/pods/<uid>/containers/ is mounted there; its last 4096 bytes become the terminated state's message")),
    field("spec.containers[].terminationMessagePolicy", Honoured("File (the default) or FallbackToLogsOnError: an empty file and a non-zero exit give the last 80 lines (2048 bytes) of the log")),
    field("spec.containers[].tty", Honoured(ATTACH)),
    field("spec.containers[].volumeDevices", Refused("raw block devices need a PersistentVolumeClaim, which a static pod cannot use")),
    field("spec.containers[].volumeMounts", Honoured(NONE)),
    field("spec.containers[].volumeMounts[].mountPath", Honoured(NONE)),
    field("spec.containers[].volumeMounts[].mountPropagation", Honoured("None, HostToContainer and Bidirectional as CRI's PROPAGATION_PRIVATE, _HOST_TO_CONTAINER, _BIDIRECTIONAL; Bidirectional only for privileged containers")),
    field("spec.containers[].volumeMounts[].name", Honoured(NONE)),
    field("spec.containers[].volumeMounts[].readOnly", Honoured(NONE)),
    field("spec.containers[].volumeMounts[].recursiveReadOnly", Honoured("Disabled; IfPossible falls back to a non-recursive read-only mount; Enabled is refused (containerd 1.6 cannot make recursive read-only mounts)")),
    field("spec.containers[].volumeMounts[].subPath", Honoured(SUB_PATH)),
    field("spec.containers[].volumeMounts[].subPathExpr", Honoured("$(VAR) expanded from the container's environment, then resolved as subPath is")),
    field("spec.containers[].workingDir", Honoured(NONE)),
    field("spec.dnsConfig", Honoured("the sandbox's CRI DNSConfig: alone with dnsPolicy None, else merged onto the node's resolv.conf as kubelet merges it (servers and searches appended without duplicates, options by name; at most 3 nameservers and 32 searches)")),
    field("spec.dnsConfig.nameservers", Honoured(NONE)),
    field("spec.dnsConfig.searches", Honoured(NONE)),
    field("spec.dnsConfig.options", Honoured(NONE)),
    field("spec.dnsConfig.options[].name", Honoured(NONE)),
    field("spec.dnsConfig.options[].value", Honoured(NONE)),
    field("spec.dnsPolicy", Honoured(DNS_POLICY)),
    field("spec.enableServiceLinks", Accepted(SERVICE_LINKS)),
    field("spec.ephemeralContainers", Refused("forbidden in a static pod")),
    field("spec.hostAliases", Honoured("appended to the pod's managed /etc/hosts (on hostNetwork, to the node's), as kubelet writes it")),
    field("spec.hostAliases[].ip", Honoured(NONE)),
    field("spec.hostAliases[].hostnames", Honoured(NONE)),
    field("spec.hostIPC", Honoured(NONE)),
    field("spec.hostNetwork", Honoured(NONE)),
    field("spec.hostPID", Honoured(NONE)),
    field("spec.hostUsers", Refused("user namespaces are not supported by staticlet yet")),
    field("spec.hostname", Honoured("not with hostNetwork, which keeps the node's hostname, as kubelet")),
    field("spec.hostnameOverride", Refused(NOT_YET)),
    field("spec.imagePullSecrets", Refused(api_object!("Secret"))),
    field("spec.initContainers", Honoured(INIT_CONTAINERS)),
    field("spec.initContainers[].restartPolicy", Honoured("Always (the only value) makes it a native sidecar: started in order, kept running and restarted, stopped after the main containers")),
    field("spec.nodeName", Accepted("replaced by this node's name, as kubelet does")),
    field("spec.nodeSelector", Accepted(SCHEDULING)),
    field("spec.os", Honoured(NONE)),
    field("spec.os.name", Honoured("must be linux, as kubelet's admission requires")),
    field("spec.overhead", Refused(NOT_YET)),
    field("spec.preemptionPolicy", Accepted("scheduling only: only the scheduler preempts pods; kept on the mirror")),
    field("spec.priority", Honoured(PRIORITY)),
    field("spec.priorityClassName", Honoured(PRIORITY)),
    field("spec.readinessGates", Honoured("the Ready condition needs each gate's condition True; only the API server could set one, so a static pod with readiness gates stays not Ready (ReadinessGatesNotReady), as kubelet's would with no gate condition")),
    field("spec.readinessGates[].conditionType", Honoured(NONE)),
    field("spec.resourceClaims", Refused(api_object!("ResourceClaim"))),
    field("spec.resources", Refused("pod-level resources are not supported by staticlet yet")),
    field("spec.restartPolicy", Honoured(NONE)),
    field("spec.runtimeClassName", Honoured("used as the CRI runtime handler as written: with no API server there is no RuntimeClass object to resolve it through (nor its overhead or scheduling); a handler the runtime does not know fails the sandbox with an error naming this field")),
    field("spec.schedulerName", Accepted("scheduling only: no scheduler places a static pod; kept on the mirror")),
    field("spec.schedulingGates", Accepted(SCHEDULING)),
    field("spec.schedulingGates[].name", Accepted(SCHEDULING)),
    field("spec.securityContext", Honoured(NONE)),
    field("spec.securityContext.appArmorProfile", Honoured(APPARMOR)),
    field("spec.securityContext.appArmorProfile.localhostProfile", Honoured(NONE)),
    field("spec.securityContext.appArmorProfile.type", Honoured(NONE)),
    field("spec.securityContext.fsGroup", Honoured(NONE)),
    field("spec.securityContext.fsGroupChangePolicy", Refused(NOT_YET)),
    field("spec.securityContext.runAsGroup", Honoured(NONE)),
    field("spec.securityContext.runAsNonRoot", Honoured(NONE)),
    field("spec.securityContext.runAsUser", Honoured(NONE)),
    field("spec.securityContext.seLinuxChangePolicy", Refused(NOT_YET)),
    field("spec.securityContext.seLinuxOptions", Refused(NOT_YET)),
    field("spec.securityContext.seccompProfile", Honoured(NONE)),
    field("spec.securityContext.seccompProfile.localhostProfile", Honoured(NONE)),
    field("spec.securityContext.seccompProfile.type", Honoured(NONE)),
    field("spec.securityContext.supplementalGroups", Honoured(NONE)),
    field("spec.securityContext.supplementalGroupsPolicy", Refused(NOT_YET)),
    field("spec.securityContext.sysctls", Honoured(NONE)),
    field("spec.securityContext.sysctls[].name", Honoured(NONE)),
    field("spec.securityContext.sysctls[].value", Honoured(NONE)),
    field("spec.securityContext.windowsOptions", Refused(WINDOWS)),
    field("spec.serviceAccount", Refused(concat!("deprecated name of serviceAccountName; ", api_object!("ServiceAccount")))),
    field("spec.serviceAccountName", Refused(api_object!("ServiceAccount"))),
    field("spec.setHostnameAsFQDN", Honoured("with a subdomain, the sandbox hostname is the FQDN (at most 64 characters, else refused); ignored on hostNetwork, as kubelet")),
    field("spec.shareProcessNamespace", Honoured(NONE)),
    field("spec.subdomain", Honoured("the managed /etc/hosts names the pod IP <hostname>.<subdomain>.<namespace>.svc.cluster.local (no cluster-domain setting yet)")),
    field("spec.terminationGracePeriodSeconds", Honoured("30 s when unset, at least 1 s, as kubelet")),
    field("spec.tolerations", Accepted(TOLERATIONS)),
    field("spec.tolerations[].effect", Accepted(TOLERATIONS)),
    field("spec.tolerations[].key", Accepted(TOLERATIONS)),
    field("spec.tolerations[].operator", Accepted(TOLERATIONS)),
    field("spec.tolerations[].tolerationSeconds", Accepted(TOLERATIONS)),
    field("spec.tolerations[].value", Accepted(TOLERATIONS)),
    field("spec.topologySpreadConstraints", Accepted(SCHEDULING)),
    field("spec.topologySpreadConstraints[].labelSelector", Accepted(SCHEDULING)),
    field("spec.topologySpreadConstraints[].labelSelector.matchExpressions", Accepted(SCHEDULING)),
    field("spec.topologySpreadConstraints[].labelSelector.matchExpressions[].key", Accepted(SCHEDULING)),
    field("spec.topologySpreadConstraints[].labelSelector.matchExpressions[].operator", Accepted(SCHEDULING)),
    field("spec.topologySpreadConstraints[].labelSelector.matchExpressions[].values", Accepted(SCHEDULING)),
    field("spec.topologySpreadConstraints[].labelSelector.matchLabels", Accepted(SCHEDULING)),
    field("spec.topologySpreadConstraints[].matchLabelKeys", Accepted(SCHEDULING)),
    field("spec.topologySpreadConstraints[].maxSkew", Accepted(SCHEDULING)),
    field("spec.topologySpreadConstraints[].minDomains", Accepted(SCHEDULING)),
    field("spec.topologySpreadConstraints[].nodeAffinityPolicy", Accepted(SCHEDULING)),
    field("spec.topologySpreadConstraints[].nodeTaintsPolicy", Accepted(SCHEDULING)),
    field("spec.topologySpreadConstraints[].topologyKey", Accepted(SCHEDULING)),
    field("spec.topologySpreadConstraints[].whenUnsatisfiable", Accepted(SCHEDULING)),
    field("spec.volumes", Honoured(NONE)),
    field("spec.volumes[].awsElasticBlockStore", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].azureDisk", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].azureFile", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].cephfs", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].cinder", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].configMap", Refused(api_object!("ConfigMap"))),
    field("spec.volumes[].csi", Refused(api_object!("CSIDriver"))),
    field("spec.volumes[].downwardAPI", Honoured("files written under `<rootDir>/pods/<uid>/volumes/kubernetes.io~downward-api` before the container starts, mounted read-only")),
    field("spec.volumes[].downwardAPI.defaultMode", Honoured("0644 when unset")),
    field("spec.volumes[].downwardAPI.items", Honoured(NONE)),
    field("spec.volumes[].downwardAPI.items[].fieldRef", Honoured(NONE)),
    field("spec.volumes[].downwardAPI.items[].fieldRef.apiVersion", Accepted("v1 is the only version of the fields fieldPath names")),
    field("spec.volumes[].downwardAPI.items[].fieldRef.fieldPath", Honoured(VOLUME_FIELD_REFS)),
    field("spec.volumes[].downwardAPI.items[].mode", Honoured(NONE)),
    field("spec.volumes[].downwardAPI.items[].path", Honoured("relative, without '..'")),
    field("spec.volumes[].downwardAPI.items[].resourceFieldRef", Honoured(RESOURCE_FIELD_REF)),
    field("spec.volumes[].downwardAPI.items[].resourceFieldRef.containerName", Honoured("required")),
    field("spec.volumes[].downwardAPI.items[].resourceFieldRef.divisor", Honoured("1 when unset")),
    field("spec.volumes[].downwardAPI.items[].resourceFieldRef.resource", Honoured(NONE)),
    field("spec.volumes[].emptyDir", Honoured("a directory under `<rootDir>/pods/<uid>/volumes`")),
    field("spec.volumes[].emptyDir.medium", Honoured("\"\" (the node's disk) or Memory: a tmpfs mounted before the container starts and unmounted when the pod is removed; HugePages is refused")),
    field("spec.volumes[].emptyDir.sizeLimit", Honoured("medium Memory: the tmpfs's size=; on disk it is not enforced (kubelet enforces it by eviction, which staticlet does not do)")),
    field("spec.volumes[].ephemeral", Refused(api_object!("PersistentVolumeClaim"))),
    field("spec.volumes[].fc", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].flexVolume", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].flocker", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].gcePersistentDisk", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].gitRepo", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].glusterfs", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].hostPath", Honoured(NONE)),
    field("spec.volumes[].hostPath.path", Honoured("mounted as it is")),
    field("spec.volumes[].hostPath.type", Honoured("kubelet's checks before the container is created: DirectoryOrCreate makes a missing directory (0755), FileOrCreate an empty file (0644); Directory, File, Socket, CharDevice and BlockDevice are checked; a mismatch is a FailedMount event and CreateContainerConfigError")),
    field("spec.volumes[].image", Refused(NOT_YET)),
    field("spec.volumes[].iscsi", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].name", Honoured(NONE)),
    field("spec.volumes[].nfs", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].persistentVolumeClaim", Refused(api_object!("PersistentVolumeClaim"))),
    field("spec.volumes[].photonPersistentDisk", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].portworxVolume", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].projected", Honoured("downwardAPI sources only, written and mounted as a downwardAPI volume is")),
    field("spec.volumes[].projected.defaultMode", Honoured("0644 when unset")),
    field("spec.volumes[].projected.sources", Honoured(NONE)),
    field("spec.volumes[].projected.sources[].clusterTrustBundle", Refused(api_object!("ClusterTrustBundle"))),
    field("spec.volumes[].projected.sources[].configMap", Refused(api_object!("ConfigMap"))),
    field("spec.volumes[].projected.sources[].downwardAPI", Honoured(NONE)),
    field("spec.volumes[].projected.sources[].downwardAPI.items", Honoured(NONE)),
    field("spec.volumes[].projected.sources[].downwardAPI.items[].fieldRef", Honoured(NONE)),
    field("spec.volumes[].projected.sources[].downwardAPI.items[].fieldRef.apiVersion", Accepted("v1 is the only version of the fields fieldPath names")),
    field("spec.volumes[].projected.sources[].downwardAPI.items[].fieldRef.fieldPath", Honoured(VOLUME_FIELD_REFS)),
    field("spec.volumes[].projected.sources[].downwardAPI.items[].mode", Honoured(NONE)),
    field("spec.volumes[].projected.sources[].downwardAPI.items[].path", Honoured("relative, without '..'")),
    field("spec.volumes[].projected.sources[].downwardAPI.items[].resourceFieldRef", Honoured(RESOURCE_FIELD_REF)),
    field("spec.volumes[].projected.sources[].downwardAPI.items[].resourceFieldRef.containerName", Honoured("required")),
    field("spec.volumes[].projected.sources[].downwardAPI.items[].resourceFieldRef.divisor", Honoured("1 when unset")),
    field("spec.volumes[].projected.sources[].downwardAPI.items[].resourceFieldRef.resource", Honoured(NONE)),
    field("spec.volumes[].projected.sources[].podCertificate", Refused(api_object!("PodCertificateRequest"))),
    field("spec.volumes[].projected.sources[].secret", Refused(api_object!("Secret"))),
    field("spec.volumes[].projected.sources[].serviceAccountToken", Refused(api_object!("ServiceAccount"))),
    field("spec.volumes[].quobyte", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].rbd", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].scaleIO", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].secret", Refused(api_object!("Secret"))),
    field("spec.volumes[].storageos", Refused(UNSUPPORTED_VOLUME)),
    field("spec.volumes[].vsphereVolume", Refused(UNSUPPORTED_VOLUME)),
    field("spec.workloadRef", Refused(api_object!("Workload"))),
    field("status", Accepted(STATUS)),
];

/// The table indexed for the walk: each path's class, and the field names each object holds
/// (keyed by the object's path, `spec.containers[]` for a container). An object with no entry in
/// `children` is a leaf: a map (labels, resources.limits), a scalar, or the unread `status`.
struct Index {
    classes: HashMap<&'static str, Class>,
    children: HashMap<&'static str, Vec<&'static str>>,
}

static INDEX: LazyLock<Index> = LazyLock::new(|| Index::of(FIELDS));

impl Index {
    fn of(fields: &'static [Field]) -> Self {
        let mut index = Self { classes: HashMap::new(), children: HashMap::new() };
        for field in fields {
            index.add(field.path, field.class);
        }
        for field in fields {
            if let Some(rest) = field.path.strip_prefix(CONTAINERS) {
                let alias: &'static str = format!("{INIT}{rest}").leak();
                if !index.classes.contains_key(alias) {
                    index.add(alias, field.class);
                }
            }
        }
        index
    }

    fn add(&mut self, path: &'static str, class: Class) {
        self.classes.insert(path, class);
        let (parent, name) = split(path);
        self.children.entry(parent).or_default().push(name);
    }
}

/// `spec.containers[].name` -> (`spec.containers[]`, `name`); `spec` -> (``, `spec`).
fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('.') {
        Some((parent, name)) => (parent, name),
        None => ("", path),
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_owned() } else { format!("{parent}.{name}") }
}

/// Every refused or unknown field the document sets, named by its path with real indices
/// (`spec.containers[1].lifecycle.stopSignal`).
pub fn refusals(document: &Value) -> Vec<FieldError> {
    let mut walk = Walk { index: &INDEX, found: Vec::new() };
    walk.value(document, "", "");
    walk.found
}

struct Walk<'a> {
    index: &'a Index,
    found: Vec<FieldError>,
}

impl Walk<'_> {
    /// A value at `path` (the table's spelling) shown to the user as `shown`.
    fn value(&mut self, value: &Value, path: &str, shown: &str) {
        match value {
            Value::Array(items) => {
                let path = format!("{path}[]");
                for (i, item) in items.iter().enumerate() {
                    self.value(item, &path, &format!("{shown}[{i}]"));
                }
            }
            Value::Object(map) if self.index.children.contains_key(path) => {
                for (name, value) in map {
                    self.field(name, value, path, shown);
                }
            }
            _ => {}
        }
    }

    fn field(&mut self, name: &str, value: &Value, parent: &str, parent_shown: &str) {
        let path = join(parent, name);
        let shown = join(parent_shown, name);
        match self.index.classes.get(path.as_str()) {
            None => self.found.push(FieldError::new(shown, self.unknown(parent, name))),
            // null is how YAML and JSON say "unset" (kubeadm writes `creationTimestamp: null`).
            Some(_) if value.is_null() => {}
            Some(Refused(reason)) => self.found.push(FieldError::new(shown, *reason)),
            Some(Honoured(_) | Accepted(_)) => self.value(value, &path, &shown),
        }
    }

    /// "unknown field", with the field meant when only the letter case differs (`hostnetwork`).
    fn unknown(&self, parent: &str, name: &str) -> String {
        let mut siblings = self.index.children.get(parent).into_iter().flatten();
        match siblings.find(|s| s.eq_ignore_ascii_case(name)) {
            Some(meant) => format!("unknown field; did you mean {meant}?"),
            None => "unknown field".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{Map, json};

    use super::*;

    /// Fields whose contents are left unread on purpose: a pod's status is what the node reports,
    /// so whatever a manifest writes there (kubeadm writes `status: {}`) is never read, and its
    /// 200-odd fields are not the manifest's contract.
    const UNREAD: &[&str] = &["status"];

    const REGENERATE: &str = "STATICLET_REGENERATE=1 cargo test --lib manifest::fields";

    fn pod_schema() -> Value {
        serde_json::to_value(schemars::schema_for!(Pod)).expect("a schema is JSON")
    }

    /// The field paths of k8s-openapi's JSON Schema of `Pod`, down to leaves, refused fields and
    /// UNREAD ones (a table entry covers those), and the recursive types met on the way.
    struct SchemaFields<'a> {
        defs: &'a Map<String, Value>,
        paths: Vec<String>,
        recursive: Vec<String>,
        open: Vec<&'a str>,
    }

    impl<'a> SchemaFields<'a> {
        fn of_pod(schema: &'a Value) -> Self {
            let defs = schema["$defs"].as_object().expect("the schema has $defs");
            let mut found = Self { defs, paths: Vec::new(), recursive: Vec::new(), open: Vec::new() };
            found.fields(schema, "");
            found
        }

        fn resolve(&self, schema: &'a Value) -> (&'a Value, Option<&'a str>) {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let name = reference.trim_start_matches("#/$defs/");
                    (&self.defs[name], Some(name))
                }
                None => (schema, None),
            }
        }

        /// The fields of the object `schema` describes, under `parent` (`spec.containers[]`).
        fn fields(&mut self, schema: &'a Value, parent: &str) {
            let (schema, name) = self.resolve(schema);
            if let Some(name) = name {
                if self.open.contains(&name) {
                    self.recursive.push(format!("{parent} ({name})"));
                    return;
                }
                self.open.push(name);
            }
            for (field, property) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
                let path = join(parent, field);
                self.paths.push(path.clone());
                if descends(&path) {
                    let (items, items_path) = self.items(property, path);
                    self.fields(items, &items_path);
                }
            }
            if name.is_some() {
                self.open.pop();
            }
        }

        /// A list's items (of a list's items...), spelled `path[]`.
        fn items(&self, mut schema: &'a Value, mut path: String) -> (&'a Value, String) {
            while let Some(items) = self.resolve(schema).0.get("items") {
                schema = items;
                path.push_str("[]");
            }
            (schema, path)
        }
    }

    fn descends(path: &str) -> bool {
        !UNREAD.contains(&path) && !matches!(INDEX.classes.get(path), Some(Refused(_)))
    }

    fn lines(paths: &[&str]) -> String {
        paths.iter().map(|p| format!("  {p}\n")).collect()
    }

    #[test]
    fn every_field_of_a_v1_pod_is_classified() {
        let schema = pod_schema();
        let found = SchemaFields::of_pod(&schema);
        assert!(found.recursive.is_empty(), "recursive types; classify them as Refused: {:?}", found.recursive);
        let unclassified: Vec<&str> =
            found.paths.iter().map(String::as_str).filter(|p| !INDEX.classes.contains_key(p)).collect();
        assert!(
            unclassified.is_empty(),
            "fields of a v1 Pod that FIELDS (src/manifest/fields.rs) does not classify; add them, then run \
             `{REGENERATE}`:\n{}",
            lines(&unclassified)
        );
    }

    #[test]
    fn every_table_entry_is_a_field_of_a_v1_pod() {
        let schema = pod_schema();
        let found = SchemaFields::of_pod(&schema);
        let stale: Vec<&str> = FIELDS.iter().map(|f| f.path).filter(|p| !found.paths.iter().any(|x| x == p)).collect();
        assert!(
            stale.is_empty(),
            "entries that name no field of a v1 Pod, or lie under a refused one:\n{}",
            lines(&stale)
        );
    }

    #[test]
    fn no_field_is_classified_twice() {
        let mut seen = std::collections::HashSet::new();
        let twice: Vec<&str> = FIELDS.iter().map(|f| f.path).filter(|p| !seen.insert(*p)).collect();
        assert!(twice.is_empty(), "classified twice:\n{}", lines(&twice));
    }

    #[test]
    fn accepted_and_refused_fields_say_why() {
        let silent: Vec<&str> =
            FIELDS.iter().filter(|f| matches!(f.class, Accepted("") | Refused(""))).map(|f| f.path).collect();
        assert!(silent.is_empty(), "no reason given:\n{}", lines(&silent));
    }

    /// docs/POD-FIELDS.md: the table, one row per field.
    fn markdown() -> String {
        let count = |class: fn(&Class) -> bool| FIELDS.iter().filter(|f| class(&f.class)).count();
        let mut out = format!(
            "# The fields of a static pod\n\n\
             <!-- Generated from FIELDS in src/manifest/fields.rs by `{REGENERATE}`; do not edit. -->\n\n\
             Every field of a v1 Pod (Kubernetes v1.35) is in one of three classes:\n\n\
             - **honoured**: staticlet acts on it (the note says how, where that is not obvious);\n\
             - **accepted**: it has no effect on a static pod, by design (the note says why);\n\
             - **refused**: a manifest that sets it, even to its default value or an empty list, is refused with \
             the note as the error, naming the field: `spec.containers[1].stdin: not supported by \
             staticlet yet`. The fields under a refused one are not listed.\n\n\
             Only `null` counts as unset. A field in no row (a typo, or a field of a newer Kubernetes) is refused \
             as an unknown field. `[]` stands for the items of a list; a map (`metadata.labels`, \
             `resources.limits`) is one field, whatever its keys. A test walks k8s-openapi's schema of `Pod`, so \
             the table cannot miss a field or name one that does not exist.\n\n\
             {} fields: {} honoured, {} accepted, {} refused.\n\n\
             | field | class | note |\n|---|---|---|\n",
            FIELDS.len(),
            count(|c| matches!(c, Honoured(_))),
            count(|c| matches!(c, Accepted(_))),
            count(|c| matches!(c, Refused(_))),
        );
        for field in FIELDS {
            let (class, note) = match field.class {
                Honoured(note) => ("honoured", note),
                Accepted(note) => ("accepted", note),
                Refused(note) => ("refused", note),
            };
            out.push_str(&format!("| `{}` | {class} | {} |\n", field.path, note.replace('|', "\\|")));
        }
        out
    }

    #[test]
    fn committed_field_table_is_current() {
        crate::generated::assert_committed("POD-FIELDS.md", &markdown(), REGENERATE);
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": spec})
    }

    fn container() -> Value {
        json!({"name": "c", "image": "busybox:1.36"})
    }

    fn errors(document: &Value) -> Vec<String> {
        refusals(document).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_refused_field_is_named_with_its_real_indices() {
        let mut second = container();
        second["lifecycle"] =
            json!({"preStop": {"exec": {"command": ["true"]}}, "postStart": {"tcpSocket": {"port": 80}}});
        let document = pod(json!({"containers": [container(), second]}));
        assert_eq!(errors(&document), [format!("spec.containers[1].lifecycle.postStart.tcpSocket: {HOOK_TCP}")]);
    }

    #[test]
    fn a_refused_field_counts_as_set_even_at_its_default_or_empty() {
        let mut quiet = container();
        quiet["resizePolicy"] = json!([]);
        let mut init = container();
        init["resizePolicy"] = json!([]);
        let document = pod(json!({"hostUsers": true, "initContainers": [init], "containers": [quiet]}));
        let found = errors(&document);
        assert_eq!(found.len(), 3, "{found:?}");
        for field in ["spec.hostUsers: ", "spec.initContainers[0].resizePolicy: ", "spec.containers[0].resizePolicy: "]
        {
            assert!(found.iter().any(|e| e.starts_with(field)), "{field} in {found:?}");
        }
    }

    #[test]
    fn null_counts_as_unset() {
        let mut document = pod(json!({"hostUsers": null, "containers": [container()]}));
        document["metadata"]["creationTimestamp"] = Value::Null;
        assert_eq!(errors(&document), Vec::<String>::new());
    }

    #[test]
    fn an_unknown_field_is_refused_and_a_letter_case_slip_is_pointed_out() {
        let mut typo = container();
        typo["imagePolicy"] = json!("Always");
        let document = pod(json!({"hostnetwork": true, "containers": [typo]}));
        let mut found = errors(&document);
        found.sort();
        assert_eq!(
            found,
            [
                "spec.containers[0].imagePolicy: unknown field",
                "spec.hostnetwork: unknown field; did you mean hostNetwork?"
            ]
        );
    }

    #[test]
    fn honoured_and_accepted_fields_pass_and_maps_are_one_field() {
        let web = json!({
            "name": "web", "image": "busybox:1.36", "command": ["httpd"], "args": ["-f"], "workingDir": "/srv",
            "imagePullPolicy": "IfNotPresent",
            "env": [{"name": "A", "value": "1"}, {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "ports": [{"name": "http", "containerPort": 80, "hostPort": 8080, "protocol": "TCP"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true, "subPath": "x"}],
            "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi", "hugepages-2Mi": "2Mi"}},
            "livenessProbe": {"httpGet": {"host": "127.0.0.1", "path": "/livez", "port": "http", "scheme": "HTTPS",
                              "httpHeaders": [{"name": "X", "value": "y"}]},
                              "initialDelaySeconds": 10, "timeoutSeconds": 15, "failureThreshold": 8},
            "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1, "successThreshold": 1},
            "startupProbe": {"grpc": {"port": 9090, "service": "s"}, "terminationGracePeriodSeconds": 5},
            "securityContext": {"runAsUser": 1000, "runAsNonRoot": true, "privileged": false,
                                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"}, "procMount": "Default"},
            "lifecycle": {"postStart": {"httpGet": {"path": "/up", "port": 80, "httpHeaders": [{"name": "X", "value": "y"}]}},
                          "preStop": {"sleep": {"seconds": 2}}},
            "terminationMessagePath": "/tmp/msg", "terminationMessagePolicy": "FallbackToLogsOnError",
        });
        let mut document = pod(json!({
            "containers": [web], "hostNetwork": true, "restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 3,
            "activeDeadlineSeconds": 600, "priority": 2000001000, "priorityClassName": "system-node-critical", "preemptionPolicy": "Never",
            "schedulerName": "default-scheduler", "nodeName": "elsewhere",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms":
                [{"matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}]}}},
            "securityContext": {"fsGroup": 2000, "supplementalGroups": [3000], "sysctls": [{"name": "a.b", "value": "1"}]},
            "volumes": [{"name": "data", "hostPath": {"path": "/srv/data", "type": "DirectoryOrCreate"}}],
        }));
        document["metadata"]["labels"] = json!({"any/key": "v"});
        document["status"] = json!({"phase": "Running", "anything": {"at": "all"}});
        assert_eq!(errors(&document), Vec::<String>::new());
    }
}
