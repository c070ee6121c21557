//! The checks a pod must pass before it runs: a subset of the API server's pod validation, plus
//! kubelet's rule that a static pod may not reference API objects (KUBELET.md section 2), since
//! there may be no API server to resolve them and its mirror would be refused; then the field
//! contract (`fields`), so that no field is silently ignored.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::{
    api::core::v1::{
        Container, DownwardAPIVolumeFile, Pod, PodSecurityContext, PodSpec, ResourceFieldSelector, SecurityContext,
        Volume, VolumeMount,
    },
    apimachinery::pkg::api::resource::Quantity as Written,
};
use serde_json::Value;

use super::{FieldError, fields};
use crate::cri::{resources::Quantity, volumes};

/// Downward-API fields a static pod can be given without an API server.
pub const SUPPORTED_FIELD_REFS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "status.podIP",
    "status.podIPs",
    "status.hostIP",
    "status.hostIPs",
];

/// `document` is the pod as written, `pod` the same decoded and defaulted.
pub fn validate_pod(document: &Value, pod: &Pod) -> Result<(), Vec<FieldError>> {
    let mut errors = pod_problems(pod);
    let refused = fields::refusals(document);
    // The checks above say more (which API object, which value); the field contract only adds
    // what they do not already report, at the same place or around it.
    let new: Vec<FieldError> =
        refused.into_iter().filter(|r| !errors.iter().any(|e| same_place(&e.field, &r.field))).collect();
    errors.extend(new);
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Whether one path is the other or lies under it (`spec.volumes[0]`, `spec.volumes[0].secret`).
fn same_place(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long.strip_prefix(short).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

fn pod_problems(pod: &Pod) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut err = |field: String, message: String| errors.push(FieldError::new(field, message));

    match pod.metadata.name.as_deref() {
        None | Some("") => err("metadata.name".into(), "required".into()),
        Some(name) => {
            if let Some(problem) = dns_subdomain_problem(name) {
                err("metadata.name".into(), format!("{name:?} (with the node name appended) {problem}"));
            }
        }
    }
    if let Some(ns) = pod.metadata.namespace.as_deref()
        && let Some(problem) = dns_label_problem(ns)
    {
        err("metadata.namespace".into(), format!("{ns:?} {problem}"));
    }
    let Some(spec) = &pod.spec else {
        err("spec".into(), "required".into());
        return errors;
    };

    let api_reference = |what: &str| format!("references the API object kind {what}, which a static pod cannot use");
    if spec.service_account_name.as_deref().is_some_and(|s| !s.is_empty())
        || spec.service_account.as_deref().is_some_and(|s| !s.is_empty())
    {
        err("spec.serviceAccountName".into(), api_reference("ServiceAccount"));
    }
    if spec.image_pull_secrets.as_ref().is_some_and(|s| !s.is_empty()) {
        err("spec.imagePullSecrets".into(), api_reference("Secret"));
    }
    if spec.resource_claims.as_ref().is_some_and(|s| !s.is_empty()) {
        err("spec.resourceClaims".into(), api_reference("ResourceClaim"));
    }
    if spec.ephemeral_containers.as_ref().is_some_and(|s| !s.is_empty()) {
        err("spec.ephemeralContainers".into(), "forbidden in a static pod".into());
    }
    if let Some(policy) = spec.restart_policy.as_deref()
        && !["Always", "OnFailure", "Never"].contains(&policy)
    {
        err("spec.restartPolicy".into(), format!("{policy:?} is not one of Always, OnFailure, Never"));
    }
    for (field, value) in [("spec.hostname", &spec.hostname), ("spec.subdomain", &spec.subdomain)] {
        if let Some(problem) = value.as_deref().filter(|v| !v.is_empty()).and_then(dns_label_problem) {
            err(field.into(), problem);
        }
    }
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        if alias.ip.parse::<std::net::IpAddr>().is_err() {
            err(format!("spec.hostAliases[{i}].ip"), format!("{:?} is not a valid IP address", alias.ip));
        }
        for (j, name) in alias.hostnames.iter().flatten().enumerate() {
            if let Some(problem) = dns_subdomain_problem(name) {
                err(format!("spec.hostAliases[{i}].hostnames[{j}]"), problem);
            }
        }
    }
    if spec.set_hostname_as_fqdn == Some(true)
        && spec.host_network != Some(true)
        && let (Some(hostname), Some(subdomain)) =
            (spec.hostname.as_deref().or(pod.metadata.name.as_deref()), spec.subdomain.as_deref())
    {
        // kubelet fails the sandbox: "FQDN ... is too long (64 characters is the max ...)".
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let fqdn = format!("{hostname}.{subdomain}.{namespace}.svc.{}", crate::cri::hosts::CLUSTER_DOMAIN);
        if fqdn.len() > crate::cri::hosts::MAX_FQDN {
            err(
                "spec.setHostnameAsFQDN".into(),
                format!("the FQDN {fqdn} is too long (64 characters is the max, {} requested)", fqdn.len()),
            );
        }
    }
    if let Some(problem) = spec.dns_policy.as_deref().and_then(dns_policy_problem) {
        err("spec.dnsPolicy".into(), problem);
    }
    if let Some(seconds) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&seconds)
    {
        err("spec.activeDeadlineSeconds".into(), format!("{seconds} is not between 1 and {}", i32::MAX));
    }
    for (field, problem) in dns_config_problems(spec) {
        err(field, problem);
    }
    // kubelet's admission refuses a pod for another OS (it would not run here anyway).
    if let Some(os) = spec.os.as_ref().map(|os| os.name.as_str())
        && os != "linux"
    {
        err("spec.os.name".into(), format!("{os:?} is not this node's operating system, linux"));
    }

    if spec.resources.is_some() {
        err("spec.resources".into(), "pod-level resources are not supported by staticlet yet".into());
    }
    for (name, q) in spec.overhead.iter().flatten() {
        if let Err(message) = non_negative(q) {
            err(format!("spec.overhead.{name}"), message);
        }
    }
    if let Some(sc) = &spec.security_context {
        for (f, m) in pod_security_problems(sc, spec) {
            err(format!("spec.securityContext.{f}"), m);
        }
    }

    let all_containers: HashSet<&str> =
        spec.containers.iter().chain(spec.init_containers.iter().flatten()).map(|c| c.name.as_str()).collect();
    let mut volume_names = HashSet::new();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        let field = format!("spec.volumes[{i}]");
        if let Some(problem) = dns_label_problem(&volume.name) {
            err(format!("{field}.name"), format!("{:?} {problem}", volume.name));
        }
        if !volume_names.insert(volume.name.as_str()) {
            err(format!("{field}.name"), format!("duplicate volume name {:?}", volume.name));
        }
        if let Err(problems) = volume_source(volume, &all_containers) {
            for (f, message) in problems {
                err(format!("{field}{f}"), message);
            }
        }
    }

    if spec.containers.is_empty() {
        err("spec.containers".into(), "at least one container is required".into());
    }
    // Init and main containers share one namespace of names, as in the API server's validation.
    let mut container_names = HashSet::new();
    let init =
        spec.init_containers.iter().flatten().enumerate().map(|(i, c)| (format!("spec.initContainers[{i}]"), c, true));
    let main = spec.containers.iter().enumerate().map(|(i, c)| (format!("spec.containers[{i}]"), c, false));
    for (field, container, is_init) in init.chain(main) {
        if !container_names.insert(container.name.as_str()) {
            err(format!("{field}.name"), format!("duplicate container name {:?}", container.name));
        }
        let problems = container_problems(container, &volume_names, &all_containers);
        let init_problems = if is_init { init_container_problems(container) } else { vec![] };
        for (f, m) in problems.into_iter().chain(init_problems) {
            err(format!("{field}.{f}"), m);
        }
        let grace = spec.termination_grace_period_seconds.unwrap_or(30);
        for (f, m) in crate::hook::container_hooks(container, grace).err().into_iter().flatten() {
            err(format!("{field}.{f}"), m);
        }
    }
    errors
}

/// With no cluster DNS, ClusterFirst (and ClusterFirstWithHostNet) fall back to Default, the
/// node's resolv.conf, as kubelet's do without clusterDNS; None takes dnsConfig alone.
fn dns_policy_problem(policy: &str) -> Option<String> {
    match policy {
        "ClusterFirst" | "ClusterFirstWithHostNet" | "Default" | "None" => None,
        _ => Some(format!("{policy:?} is not one of ClusterFirst, ClusterFirstWithHostNet, Default, None")),
    }
}

/// The API server's dnsConfig rules (validateDNSConfig): at most 3 nameservers, each an IP, and
/// at least one with dnsPolicy None; at most 32 searches of 2048 characters in all; named options.
fn dns_config_problems(spec: &PodSpec) -> Vec<(String, String)> {
    use crate::cri::dns::{MAX_NAMESERVERS, MAX_SEARCHES};
    let mut problems = Vec::new();
    let config = spec.dns_config.as_ref();
    let servers = config.and_then(|c| c.nameservers.as_deref()).unwrap_or_default();
    let searches = config.and_then(|c| c.searches.as_deref()).unwrap_or_default();
    let field = "spec.dnsConfig.nameservers".to_owned();
    if spec.dns_policy.as_deref() == Some("None") && servers.is_empty() {
        problems.push((field.clone(), "must provide at least one DNS nameserver when dnsPolicy is None".into()));
    }
    if servers.len() > MAX_NAMESERVERS {
        problems.push((field, format!("must not have more than {MAX_NAMESERVERS} nameservers: {servers:?}")));
    }
    for (i, server) in servers.iter().enumerate() {
        if server.parse::<std::net::IpAddr>().is_err() {
            problems
                .push((format!("spec.dnsConfig.nameservers[{i}]"), format!("{server:?} must be a valid IP address")));
        }
    }
    if searches.len() > MAX_SEARCHES {
        problems
            .push(("spec.dnsConfig.searches".into(), format!("must not have more than {MAX_SEARCHES} search paths")));
    }
    let chars = searches.iter().map(String::len).sum::<usize>() + searches.len().saturating_sub(1);
    if chars > 2048 {
        problems.push((
            "spec.dnsConfig.searches".into(),
            format!("must not have more than 2048 characters (including spaces), {chars} given"),
        ));
    }
    for (i, search) in searches.iter().enumerate() {
        if let Some(problem) = dns_subdomain_problem(search.trim_end_matches('.')) {
            problems.push((format!("spec.dnsConfig.searches[{i}]"), format!("{search:?} {problem}")));
        }
    }
    for (i, option) in config.and_then(|c| c.options.as_deref()).unwrap_or_default().iter().enumerate() {
        if option.name.as_deref().is_none_or(str::is_empty) {
            problems.push((format!("spec.dnsConfig.options[{i}].name"), "required".into()));
        }
    }
    problems
}

/// hostPath, emptyDir and downwardAPI (also as the only sources of a projected volume) are what
/// a node can provide on its own; the rest need an API server or a volume plugin staticlet does
/// not have. Problems are (field under the volume, message).
fn volume_source(volume: &Volume, containers: &HashSet<&str>) -> Result<(), Vec<(String, String)>> {
    let api_reference = |kind: &str| {
        Err(vec![(String::new(), format!("references the API object kind {kind}, which a static pod cannot use"))])
    };
    if let Some(host) = &volume.host_path {
        let kind = host.type_.as_deref().unwrap_or_default();
        if !volumes::HOST_PATH_TYPES.contains(&kind) {
            let known = volumes::HOST_PATH_TYPES.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ");
            return Err(vec![(
                ".hostPath.type".into(),
                format!("Unsupported value: {kind:?}: supported values: {known}"),
            )]);
        }
        return Ok(());
    }
    if let Some(empty_dir) = &volume.empty_dir {
        return match empty_dir.medium.as_deref() {
            None | Some("") | Some("Memory") => Ok(()),
            Some(other) => Err(vec![(
                ".emptyDir.medium".into(),
                format!("{other:?} is not supported by staticlet (supported: \"\" and \"Memory\")"),
            )]),
        };
    }
    if let Some(downward) = &volume.downward_api {
        let problems = downward_problems(".downwardAPI", downward.items.iter().flatten(), containers);
        return if problems.is_empty() { Ok(()) } else { Err(problems) };
    }
    if let Some(projected) = &volume.projected {
        let mut problems = Vec::new();
        for (i, source) in projected.sources.iter().flatten().enumerate() {
            let field = format!(".projected.sources[{i}]");
            match &source.downward_api {
                Some(d) if source.config_map.is_none() && source.secret.is_none() && source.service_account_token.is_none() => {
                    problems.extend(downward_problems(&format!("{field}.downwardAPI"), d.items.iter().flatten(), containers));
                }
                _ => problems.push((
                    field,
                    "references the API object kind ServiceAccount token, Secret or ConfigMap (projected), which a static pod cannot use: only downwardAPI sources are supported".into(),
                )),
            }
        }
        return if problems.is_empty() { Ok(()) } else { Err(problems) };
    }
    if volume.secret.is_some() {
        return api_reference("Secret");
    }
    if volume.config_map.is_some() {
        return api_reference("ConfigMap");
    }
    if volume.persistent_volume_claim.is_some() || volume.ephemeral.is_some() {
        return api_reference("PersistentVolumeClaim");
    }
    if volume.csi.is_some() {
        return api_reference("CSIDriver");
    }
    Err(vec![(String::new(), "volume type not supported by staticlet (use hostPath, emptyDir or downwardAPI)".into())])
}

/// A downwardAPI volume's items: safe relative paths, one of the fields staticlet fills in, or a
/// resource of a container of the pod.
fn downward_problems<'a>(
    field: &str,
    items: impl Iterator<Item = &'a DownwardAPIVolumeFile>,
    containers: &HashSet<&str>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (j, item) in items.enumerate() {
        let at = format!("{field}.items[{j}]");
        if let Some(problem) = volumes::local_path_problem(&item.path) {
            out.push((format!("{at}.path"), problem));
        }
        if let Some(mode) = item.mode.filter(|m| !(0..=0o777).contains(m)) {
            out.push((format!("{at}.mode"), format!("{mode} must be a number between 0 and 0777 (octal)")));
        }
        match (&item.field_ref, &item.resource_field_ref) {
            (Some(f), None) => {
                if !volumes::VOLUME_FIELD_REFS.contains(&f.field_path.as_str()) {
                    out.push((
                        format!("{at}.fieldRef.fieldPath"),
                        format!(
                            "{:?} is not supported (supported: {})",
                            f.field_path,
                            volumes::VOLUME_FIELD_REFS.join(", ")
                        ),
                    ));
                }
            }
            (None, Some(r)) => {
                out.extend(resource_field_problems(r, &format!("{at}.resourceFieldRef"), containers, true))
            }
            _ => out.push((at, "exactly one of fieldRef and resourceFieldRef is required".into())),
        }
    }
    out
}

/// A resourceFieldRef, in a downwardAPI volume (which must name its container) or in an env
/// var (which defaults to its own).
fn resource_field_problems(
    r: &ResourceFieldSelector,
    at: &str,
    containers: &HashSet<&str>,
    name_required: bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if !volumes::RESOURCE_FIELDS.contains(&r.resource.as_str()) {
        out.push((
            format!("{at}.resource"),
            format!("{:?} is not supported (supported: {})", r.resource, volumes::RESOURCE_FIELDS.join(", ")),
        ));
    }
    match r.container_name.as_deref() {
        None | Some("") if name_required => out.push((format!("{at}.containerName"), "required".into())),
        Some(name) if !name.is_empty() && !containers.contains(name) => {
            out.push((format!("{at}.containerName"), format!("no container named {name:?}")))
        }
        _ => {}
    }
    if let Some(d) = &r.divisor
        && Quantity::parse(&d.0).map_or(true, |q| !q.is_positive())
    {
        out.push((format!("{at}.divisor"), format!("{:?} must be a positive quantity", d.0)));
    }
    out
}

fn container_problems(
    container: &Container,
    volumes: &HashSet<&str>,
    containers: &HashSet<&str>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(problem) = dns_label_problem(&container.name) {
        out.push(("name".into(), format!("{:?} {problem}", container.name)));
    }
    if container.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        out.push(("image".into(), "required".into()));
    }
    if let Some(policy) = container.image_pull_policy.as_deref()
        && !["Always", "IfNotPresent", "Never"].contains(&policy)
    {
        out.push(("imagePullPolicy".into(), format!("{policy:?} is not one of Always, IfNotPresent, Never")));
    }
    for (j, port) in container.ports.iter().flatten().enumerate() {
        if !(1..=65535).contains(&port.container_port) {
            out.push((
                format!("ports[{j}].containerPort"),
                format!("{} is not between 1 and 65535", port.container_port),
            ));
        }
        if let Some(host_port) = port.host_port
            && !(0..=65535).contains(&host_port)
        {
            out.push((format!("ports[{j}].hostPort"), format!("{host_port} is not between 0 and 65535")));
        }
        if let Some(protocol) = port.protocol.as_deref()
            && !["TCP", "UDP", "SCTP"].contains(&protocol)
        {
            out.push((format!("ports[{j}].protocol"), format!("{protocol:?} is not one of TCP, UDP, SCTP")));
        }
    }
    if let Err(problems) = crate::probe::container_probes(container) {
        out.extend(problems);
    }
    for (j, env) in container.env.iter().flatten().enumerate() {
        let Some(from) = &env.value_from else { continue };
        let field = format!("env[{j}].valueFrom");
        if from.secret_key_ref.is_some() {
            out.push((field, "references the API object kind Secret, which a static pod cannot use".into()));
        } else if from.config_map_key_ref.is_some() {
            out.push((field, "references the API object kind ConfigMap, which a static pod cannot use".into()));
        } else if let Some(field_ref) = &from.field_ref {
            if !SUPPORTED_FIELD_REFS.contains(&field_ref.field_path.as_str()) {
                out.push((
                    format!("{field}.fieldRef.fieldPath"),
                    format!(
                        "{:?} is not supported (supported: {})",
                        field_ref.field_path,
                        SUPPORTED_FIELD_REFS.join(", ")
                    ),
                ));
            }
        } else if let Some(r) = &from.resource_field_ref {
            out.extend(resource_field_problems(r, &format!("{field}.resourceFieldRef"), containers, false));
        } else {
            out.push((field, "one of value, fieldRef and resourceFieldRef is required".into()));
        }
    }
    for (j, env_from) in container.env_from.iter().flatten().enumerate() {
        let kind = if env_from.secret_ref.is_some() { "Secret" } else { "ConfigMap" };
        out.push((
            format!("envFrom[{j}]"),
            format!("references the API object kind {kind}, which a static pod cannot use"),
        ));
    }
    out.extend(resources_problems(container));
    if let Some(sc) = &container.security_context {
        out.extend(security_problems(sc).into_iter().map(|(f, m)| (format!("securityContext{f}"), m)));
    }
    for (j, mount) in container.volume_mounts.iter().flatten().enumerate() {
        if !volumes.contains(mount.name.as_str()) {
            out.push((format!("volumeMounts[{j}].name"), format!("no volume named {:?}", mount.name)));
        }
        if !mount.mount_path.starts_with('/') {
            out.push((
                format!("volumeMounts[{j}].mountPath"),
                format!("{:?} must be an absolute path", mount.mount_path),
            ));
        }
        out.extend(mount_problems(container, mount).into_iter().map(|(f, m)| (format!("volumeMounts[{j}].{f}"), m)));
    }
    out
}

/// subPath / subPathExpr, mountPropagation and recursiveReadOnly of one mount (the API server's
/// `ValidateVolumeMounts` and `validateMountPropagation`), fields relative to the mount.
fn mount_problems(container: &Container, mount: &VolumeMount) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    if set(&mount.sub_path) && set(&mount.sub_path_expr) {
        out.push(("subPathExpr".into(), "subPathExpr and subPath are mutually exclusive".into()));
    }
    for (field, value) in [("subPath", &mount.sub_path), ("subPathExpr", &mount.sub_path_expr)] {
        if let Some(problem) = value.as_deref().and_then(volumes::sub_path_problem) {
            out.push((field.into(), problem));
        }
    }
    let privileged = container.security_context.as_ref().and_then(|s| s.privileged).unwrap_or(false);
    match mount.mount_propagation.as_deref() {
        None | Some("None") | Some("HostToContainer") => {}
        Some("Bidirectional") if privileged => {}
        Some("Bidirectional") => out.push((
            "mountPropagation".into(),
            "Bidirectional mount propagation is available only to privileged containers".into(),
        )),
        Some(other) => out.push((
            "mountPropagation".into(),
            format!("Unsupported value: {other:?}: supported values: \"Bidirectional\", \"HostToContainer\", \"None\""),
        )),
    }
    match mount.recursive_read_only.as_deref() {
        None | Some("Disabled") => {}
        Some("IfPossible") | Some("Enabled") if mount.read_only != Some(true) => {
            out.push(("recursiveReadOnly".into(), "may only be specified when readOnly is true".into()));
        }
        Some("IfPossible") => {}
        Some("Enabled") => out.push(("recursiveReadOnly".into(), RECURSIVE_READ_ONLY.into())),
        Some(other) => out.push((
            "recursiveReadOnly".into(),
            format!("Unsupported value: {other:?}: supported values: \"Disabled\", \"Enabled\", \"IfPossible\""),
        )),
    }
    out
}

/// Why `recursiveReadOnly: Enabled` is refused: CRI's `Mount.recursive_read_only` needs a runtime
/// that reports the `recursive_read_only_mounts` feature for its handler, and containerd 1.6
/// (the runtime staticlet is built against) reports no handler features at all.
pub const RECURSIVE_READ_ONLY: &str = "\"Enabled\" is not supported: the runtime does not support recursive read-only mounts (containerd 1.6 reports no recursive_read_only_mounts feature); use IfPossible, which falls back to a non-recursive read-only mount";

/// What only a sidecar may have: a regular init container runs to completion, so probes and
/// lifecycle hooks mean nothing for it (the API server refuses them too).
fn init_container_problems(container: &Container) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match container.restart_policy.as_deref() {
        None | Some("Always") => {}
        Some(other) => out.push(("restartPolicy".into(), format!("{other:?}: only Always is allowed (a sidecar)"))),
    }
    if container.restart_policy.as_deref() == Some("Always") {
        return out;
    }
    let only_sidecars = "may not be set on an init container unless restartPolicy is Always (a sidecar)";
    for (field, set) in [
        ("livenessProbe", container.liveness_probe.is_some()),
        ("readinessProbe", container.readiness_probe.is_some()),
        ("startupProbe", container.startup_probe.is_some()),
        ("lifecycle", container.lifecycle.is_some()),
    ] {
        if set {
            out.push((field.into(), only_sidecars.into()));
        }
    }
    out
}

/// A quantity that parses and is not negative (`ValidateResourceQuantityValue`).
fn non_negative(q: &Written) -> Result<Quantity, String> {
    match Quantity::parse(&q.0) {
        Err(e) => Err(format!("{:?}: {e}", q.0)),
        Ok(v) if v.is_negative() => Err(format!("{:?} must be greater than or equal to 0", q.0)),
        Ok(v) => Ok(v),
    }
}

/// The API server's resource checks (`validateResourceRequirements`): quantities parse and are
/// not negative, a request is at most its limit (hugepages: equal to it), and hugepages come
/// with cpu or memory.
fn resources_problems(container: &Container) -> Vec<(String, String)> {
    let Some(resources) = &container.resources else { return vec![] };
    let mut out = Vec::new();
    let mut parsed = |kind: &str, list: &Option<BTreeMap<String, Written>>| {
        let mut good = BTreeMap::new();
        for (name, q) in list.iter().flatten() {
            match non_negative(q) {
                Ok(value) => {
                    good.insert(name.clone(), (value, q.0.clone()));
                }
                Err(message) => out.push((format!("resources.{kind}.{name}"), message)),
            }
        }
        good
    };
    let limits = parsed("limits", &resources.limits);
    let requests = parsed("requests", &resources.requests);
    for (name, (request, written)) in &requests {
        let field = format!("resources.requests.{name}");
        let hugepages = name.starts_with("hugepages-");
        match limits.get(name) {
            Some((limit, limit_written)) if hugepages && request != limit => {
                out.push((field, format!("{written:?} must be equal to {name} limit of {limit_written}")));
            }
            Some((limit, limit_written)) if request > limit => {
                out.push((field, format!("{written:?} must be less than or equal to {name} limit of {limit_written}")));
            }
            None if hugepages => out.push((
                "resources.limits".into(),
                format!("{name}: Limit must be set for non overcommitable resources"),
            )),
            _ => {}
        }
    }
    let named = |f: &dyn Fn(&str) -> bool| limits.keys().chain(requests.keys()).any(|n| f(n));
    if named(&|n| n.starts_with("hugepages-")) && !named(&|n| n == "cpu" || n == "memory") {
        out.push(("resources".into(), "HugePages require cpu or memory".into()));
    }
    out
}

/// seccompProfile / appArmorProfile: a known type, and a localhostProfile exactly for Localhost
/// (a seccomp one relative and without `..`: it is a file under kubelet's seccomp root).
fn profile_problems(field: &str, kind: &str, localhost: Option<&str>, what: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if !["RuntimeDefault", "Unconfined", "Localhost"].contains(&kind) {
        out.push((format!("{field}.type"), format!("{kind:?} is not one of RuntimeDefault, Unconfined, Localhost")));
    }
    match (kind, localhost) {
        ("Localhost", None) | ("Localhost", Some("")) => {
            out.push((format!("{field}.localhostProfile"), format!("must be set when {what} type is Localhost")));
        }
        ("Localhost", Some(path))
            if what == "seccomp" && (path.starts_with('/') || path.split('/').any(|p| p == "..")) =>
        {
            out.push((format!("{field}.localhostProfile"), format!("{path:?} must be a relative path without '..'")));
        }
        ("Localhost", _) | (_, None) => {}
        (_, Some(_)) => {
            out.push((format!("{field}.localhostProfile"), format!("can only be set when {what} type is Localhost")));
        }
    }
    out
}

/// A container's securityContext, field paths relative to it (`.procMount`).
fn security_problems(sc: &SecurityContext) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(p) = &sc.seccomp_profile {
        out.extend(profile_problems(".seccompProfile", &p.type_, p.localhost_profile.as_deref(), "seccomp"));
    }
    if let Some(p) = &sc.app_armor_profile {
        out.extend(profile_problems(".appArmorProfile", &p.type_, p.localhost_profile.as_deref(), "AppArmor"));
    }
    if let Some(mount) = sc.proc_mount.as_deref().filter(|m| !["Default", "Unmasked"].contains(m)) {
        out.push((".procMount".into(), format!("{mount:?} is not one of Default, Unmasked")));
    }
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            out.push((String::new(), "cannot set `allowPrivilegeEscalation` to false and `privileged` to true".into()));
        }
        let added = sc.capabilities.as_ref().and_then(|c| c.add.as_ref());
        if added.into_iter().flatten().any(|c| c == "SYS_ADMIN" || c == "CAP_SYS_ADMIN") {
            out.push((
                String::new(),
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN".into(),
            ));
        }
    }
    out
}

/// The pod's securityContext, field paths relative to it.
fn pod_security_problems(sc: &PodSecurityContext, spec: &PodSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(p) = &sc.seccomp_profile {
        out.extend(profile_problems("seccompProfile", &p.type_, p.localhost_profile.as_deref(), "seccomp"));
    }
    if let Some(p) = &sc.app_armor_profile {
        out.extend(profile_problems("appArmorProfile", &p.type_, p.localhost_profile.as_deref(), "AppArmor"));
    }
    match sc.supplemental_groups_policy.as_deref() {
        None | Some("Merge") => {}
        Some("Strict") => out.push((
            "supplementalGroupsPolicy".into(),
            "\"Strict\" is not supported by staticlet yet: it cannot tell whether the runtime enforces it (containerd 1.6 ignores it), where kubelet refuses it on runtimes that do not".into(),
        )),
        Some(other) => out.push(("supplementalGroupsPolicy".into(), format!("{other:?} is not one of Merge, Strict"))),
    }
    if let Some(policy) = sc.fs_group_change_policy.as_deref().filter(|p| !["OnRootMismatch", "Always"].contains(p)) {
        out.push(("fsGroupChangePolicy".into(), format!("{policy:?} is not one of OnRootMismatch, Always")));
    }
    for (i, sysctl) in sc.sysctls.iter().flatten().enumerate() {
        let name = sysctl.name.replace('/', ".");
        let field = format!("sysctls[{i}].name");
        let ipc = name.starts_with("kernel.shm")
            || name.starts_with("kernel.msg")
            || name == "kernel.sem"
            || name.starts_with("fs.mqueue.");
        if name.is_empty() {
            out.push((field, "required".into()));
        } else if spec.host_network == Some(true) && name.starts_with("net.") {
            out.push((field, format!("{:?} may not be specified when 'hostNetwork' is true", sysctl.name)));
        } else if spec.host_ipc == Some(true) && ipc {
            out.push((field, format!("{:?} may not be specified when 'hostIPC' is true", sysctl.name)));
        }
    }
    out
}

fn dns_label_problem(value: &str) -> Option<String> {
    if value.is_empty() || value.len() > 63 {
        return Some("must be 1 to 63 characters".into());
    }
    dns_chars_problem(value, false)
}

fn dns_subdomain_problem(value: &str) -> Option<String> {
    if value.is_empty() || value.len() > 253 {
        return Some("must be 1 to 253 characters".into());
    }
    dns_chars_problem(value, true)
}

fn dns_chars_problem(value: &str, dots: bool) -> Option<String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.');
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !value.chars().all(ok_char) || !alnum(value.chars().next()) || !alnum(value.chars().last()) {
        let allowed = if dots { "lowercase letters, digits, '-' and '.'" } else { "lowercase letters, digits and '-'" };
        return Some(format!("must consist of {allowed}, and start and end with a letter or digit"));
    }
    None
}
