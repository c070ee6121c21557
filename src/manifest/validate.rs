//! The checks a pod must pass before it runs: a subset of the API server's pod validation, plus
//! kubelet's rule that a static pod may not reference API objects (KUBELET.md section 2), since
//! there may be no API server to resolve them and its mirror would be refused.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::{
    api::core::v1::{Container, Pod, PodSecurityContext, PodSpec, SecurityContext, Volume},
    apimachinery::pkg::api::resource::Quantity as Written,
};

use super::FieldError;
use crate::cri::resources::Quantity;

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

#[cfg(test)]
mod tests {
    use crate::manifest::{Origin, parse_manifest};

    /// The one error a pod with `spec` (YAML flow mapping contents) gets.
    fn problems(spec: &str) -> String {
        let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec: {{{spec}}}\n");
        match parse_manifest(yaml.as_bytes(), &Origin::file("/m/web.yaml"), "n") {
            Ok(_) => String::new(),
            Err(e) => e.to_string().trim_start_matches("/m/web.yaml: document 1: ").to_owned(),
        }
    }

    fn with_resources(resources: &str) -> String {
        problems(&format!("containers: [{{name: c, image: i:1, resources: {{{resources}}}}}]"))
    }

    #[test]
    fn resource_quantities_are_checked_by_name() {
        for (resources, error) in [
            ("requests: {cpu: 250m}, limits: {cpu: '1', memory: 64Mi}", ""),
            ("requests: {cpu: '1'}, limits: {cpu: 1000m}", ""),
            (
                "limits: {memory: -64Mi}",
                "spec.containers[0].resources.limits.memory: \"-64Mi\" must be greater than or equal to 0",
            ),
            (
                "requests: {cpu: 600m}, limits: {cpu: '0.5'}",
                "spec.containers[0].resources.requests.cpu: \"600m\" must be less than or equal to cpu limit of 0.5",
            ),
            (
                "requests: {memory: 1Gi}, limits: {memory: 512Mi}",
                "spec.containers[0].resources.requests.memory: \"1Gi\" must be less than or equal to memory limit of 512Mi",
            ),
            (
                "requests: {cpu: lots}",
                "spec.containers[0].resources.requests.cpu: \"lots\": quantities must match the regular expression",
            ),
            (
                "limits: {memory: 1ki}",
                "spec.containers[0].resources.limits.memory: \"1ki\": unable to parse quantity's suffix",
            ),
            ("limits: {hugepages-2Mi: 4Mi}", "spec.containers[0].resources: HugePages require cpu or memory"),
            (
                "requests: {hugepages-2Mi: 2Mi, memory: 1Gi}, limits: {hugepages-2Mi: 4Mi, memory: 1Gi}",
                "spec.containers[0].resources.requests.hugepages-2Mi: \"2Mi\" must be equal to hugepages-2Mi limit of 4Mi",
            ),
            ("limits: {hugepages-2Mi: 4Mi, memory: 1Gi}", ""),
        ] {
            let got = with_resources(resources);
            assert!(
                if error.is_empty() { got.is_empty() } else { got.starts_with(error) },
                "{resources}\n  gave: {got}\n  want: {error}"
            );
        }
        assert!(
            problems("resources: {limits: {cpu: '1'}}, containers: [{name: c, image: i:1}]")
                .contains("spec.resources: pod-level resources are not supported")
        );
        assert!(
            problems("overhead: {cpu: -1}, containers: [{name: c, image: i:1}]")
                .contains("spec.overhead.cpu: \"-1\" must be greater")
        );
    }

    #[test]
    fn security_contexts_are_checked_by_name() {
        let container =
            |sc: &str| problems(&format!("containers: [{{name: c, image: i:1, securityContext: {{{sc}}}}}]"));
        let pod = |sc: &str| problems(&format!("securityContext: {{{sc}}}, containers: [{{name: c, image: i:1}}]"));
        for (got, want) in [
            (container("seccompProfile: {type: RuntimeDefault}"), ""),
            (container("seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}"), ""),
            (
                container("seccompProfile: {type: Localhost}"),
                "spec.containers[0].securityContext.seccompProfile.localhostProfile: must be set when seccomp type is Localhost",
            ),
            (
                container("seccompProfile: {type: Localhost, localhostProfile: ../../etc/x}"),
                "spec.containers[0].securityContext.seccompProfile.localhostProfile: \"../../etc/x\" must be a relative path without '..'",
            ),
            (
                container("seccompProfile: {type: Unconfined, localhostProfile: x}"),
                "spec.containers[0].securityContext.seccompProfile.localhostProfile: can only be set when seccomp type is Localhost",
            ),
            (
                container("seccompProfile: {type: Strict}"),
                "spec.containers[0].securityContext.seccompProfile.type: \"Strict\" is not one of",
            ),
            (
                container("appArmorProfile: {type: Localhost}"),
                "spec.containers[0].securityContext.appArmorProfile.localhostProfile: must be set when AppArmor type is Localhost",
            ),
            (
                container("procMount: Masked"),
                "spec.containers[0].securityContext.procMount: \"Masked\" is not one of Default, Unmasked",
            ),
            (
                container("allowPrivilegeEscalation: false, privileged: true"),
                "spec.containers[0].securityContext: cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ),
            (
                container("allowPrivilegeEscalation: false, capabilities: {add: [SYS_ADMIN]}"),
                "spec.containers[0].securityContext: cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ),
            (
                pod("seccompProfile: {type: Localhost}"),
                "spec.securityContext.seccompProfile.localhostProfile: must be set",
            ),
            (
                pod("supplementalGroupsPolicy: Strict"),
                "spec.securityContext.supplementalGroupsPolicy: \"Strict\" is not supported by staticlet yet",
            ),
            (
                pod("supplementalGroupsPolicy: Merge, fsGroup: 2000, fsGroupChangePolicy: Sometimes"),
                "spec.securityContext.fsGroupChangePolicy: \"Sometimes\" is not one of",
            ),
            (pod("sysctls: [{name: net.ipv4.ip_local_port_range, value: '1024 65000'}]"), ""),
            (
                problems(
                    "hostNetwork: true, securityContext: {sysctls: [{name: net.ipv4.tcp_syncookies, value: '1'}]}, containers: [{name: c, image: i:1}]",
                ),
                "spec.securityContext.sysctls[0].name: \"net.ipv4.tcp_syncookies\" may not be specified when 'hostNetwork' is true",
            ),
            (
                problems(
                    "hostIPC: true, securityContext: {sysctls: [{name: kernel.shm_rmid_forced, value: '1'}]}, containers: [{name: c, image: i:1}]",
                ),
                "spec.securityContext.sysctls[0].name: \"kernel.shm_rmid_forced\" may not be specified when 'hostIPC' is true",
            ),
        ] {
            assert!(
                if want.is_empty() { got.is_empty() } else { got.starts_with(want) },
                "\n  gave: {got}\n  want: {want}"
            );
        }
    }
}
