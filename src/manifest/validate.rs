//! The checks a pod must pass before it runs: a subset of the API server's pod validation, plus
//! kubelet's rule that a static pod may not reference API objects (KUBELET.md section 2), since
//! there may be no API server to resolve them and its mirror would be refused.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, Pod, Volume};

use super::FieldError;

/// Downward-API fields a static pod can be given without an API server.
pub const SUPPORTED_FIELD_REFS: &[&str] =
    &["metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "status.podIP", "status.hostIP"];

pub fn validate_pod(pod: &Pod) -> Result<(), Vec<FieldError>> {
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
        return Err(errors);
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
    if spec.init_containers.as_ref().is_some_and(|s| !s.is_empty()) {
        err("spec.initContainers".into(), "not supported by staticlet yet".into());
    }
    if let Some(policy) = spec.restart_policy.as_deref()
        && !["Always", "OnFailure", "Never"].contains(&policy)
    {
        err("spec.restartPolicy".into(), format!("{policy:?} is not one of Always, OnFailure, Never"));
    }

    let mut volume_names = HashSet::new();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        let field = format!("spec.volumes[{i}]");
        if let Some(problem) = dns_label_problem(&volume.name) {
            err(format!("{field}.name"), format!("{:?} {problem}", volume.name));
        }
        if !volume_names.insert(volume.name.as_str()) {
            err(format!("{field}.name"), format!("duplicate volume name {:?}", volume.name));
        }
        if let Err(message) = volume_source(volume) {
            err(field, message);
        }
    }

    if spec.containers.is_empty() {
        err("spec.containers".into(), "at least one container is required".into());
    }
    let mut container_names = HashSet::new();
    for (i, container) in spec.containers.iter().enumerate() {
        let field = format!("spec.containers[{i}]");
        if !container_names.insert(container.name.as_str()) {
            err(format!("{field}.name"), format!("duplicate container name {:?}", container.name));
        }
        for (f, m) in container_problems(container, &volume_names) {
            err(format!("{field}.{f}"), m);
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// hostPath and emptyDir are what a node can provide on its own; the rest need an API server or a
/// volume plugin staticlet does not have.
fn volume_source(volume: &Volume) -> Result<(), String> {
    let api_reference =
        |kind: &str| Err(format!("references the API object kind {kind}, which a static pod cannot use"));
    if volume.host_path.is_some() || volume.empty_dir.is_some() {
        return Ok(());
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
    if volume.projected.is_some() {
        return api_reference("ServiceAccount token, Secret or ConfigMap (projected)");
    }
    if volume.csi.is_some() {
        return api_reference("CSIDriver");
    }
    Err("volume type not supported by staticlet (use hostPath or emptyDir)".into())
}

fn container_problems(container: &Container, volumes: &HashSet<&str>) -> Vec<(String, String)> {
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
        } else {
            out.push((field, "only fieldRef is supported".into()));
        }
    }
    for (j, env_from) in container.env_from.iter().flatten().enumerate() {
        let kind = if env_from.secret_ref.is_some() { "Secret" } else { "ConfigMap" };
        out.push((
            format!("envFrom[{j}]"),
            format!("references the API object kind {kind}, which a static pod cannot use"),
        ));
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
