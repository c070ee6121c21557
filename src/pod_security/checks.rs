//! The Pod Security Standards' checks, at their latest version (Kubernetes 1.35), each with the
//! reason and detail the API server's PodSecurity admission gives, so a node refuses a manifest
//! in the words the cluster would use.
//!
//! Each check is a function of the pod that returns `Some(Violation)` when the pod breaks it. The
//! order of `BASELINE` and `RESTRICTED` is the API server's: baseline checks first, then the
//! restricted ones, each group sorted by check ID; restricted replaces four baseline checks with
//! stricter ones of its own. Ephemeral containers are not visited: a static pod cannot have them
//! (validation refuses the field).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe, SecurityContext};

use super::Violation;

/// A check: the pod's annotations and spec in, a violation out.
type Check = fn(&Annotations, &PodSpec) -> Option<Violation>;
type Annotations = std::collections::BTreeMap<String, String>;

/// Baseline, by check ID: appArmorProfile, capabilities_baseline, hostNamespaces,
/// hostPathVolumes, hostPorts, hostProbesAndHostLifecycle, privileged, procMount, seLinuxOptions,
/// seccompProfile_baseline, sysctls, windowsHostProcess.
pub(super) const BASELINE: &[Check] = &[
    app_armor_profile,
    capabilities_baseline,
    host_namespaces,
    host_path_volumes,
    host_ports,
    host_probes_and_host_lifecycle,
    privileged,
    proc_mount,
    se_linux_options,
    seccomp_profile_baseline,
    sysctls,
    windows_host_process,
];

/// Restricted: the baseline checks that no restricted check overrides, then allowPrivilegeEscalation,
/// capabilities_restricted, procMount_restricted, restrictedVolumes, runAsNonRoot, runAsUser,
/// seccompProfile_restricted. Overridden: capabilities_baseline, hostPathVolumes, procMount,
/// seccompProfile_baseline.
pub(super) const RESTRICTED: &[Check] = &[
    app_armor_profile,
    host_namespaces,
    host_ports,
    host_probes_and_host_lifecycle,
    privileged,
    se_linux_options,
    sysctls,
    windows_host_process,
    allow_privilege_escalation,
    capabilities_restricted,
    proc_mount_restricted,
    restricted_volumes,
    run_as_non_root,
    run_as_user,
    seccomp_profile_restricted,
];

fn violation(reason: impl Into<String>, detail: impl Into<String>) -> Option<Violation> {
    Some(Violation { reason: reason.into(), detail: detail.into() })
}

/// Init containers, then containers: the API server's order.
fn containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers.iter().flatten().chain(&spec.containers)
}

fn security(container: &Container) -> Option<&SecurityContext> {
    container.security_context.as_ref()
}

fn pluralize<'a>(singular: &'a str, plural: &'a str, count: usize) -> &'a str {
    if count == 1 { singular } else { plural }
}

fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let quoted: Vec<String> = items.into_iter().map(|s| format!("\"{}\"", s.as_ref())).collect();
    quoted.join(", ")
}

/// `containers "a", "b"`, or `container "a"`.
fn named_containers(names: &[&str]) -> String {
    format!("{} {}", pluralize("container", "containers", names.len()), join_quote(names))
}

/// `volumes "a", "b" use restricted volume type "hostPath"`: who uses what (the things already
/// joined, quoted or not, as each check writes them).
fn uses(who: [&str; 2], names: &[&str], what: [&str; 2], count: usize, things: String) -> String {
    format!(
        "{} {} {} {} {things}",
        pluralize(who[0], who[1], names.len()),
        join_quote(names),
        pluralize("uses", "use", names.len()),
        pluralize(what[0], what[1], count)
    )
}

/// The containers for which `bad` holds, by name.
fn containers_where(spec: &PodSpec, bad: impl Fn(&Container) -> bool) -> Vec<&str> {
    containers(spec).filter(|c| bad(c)).map(|c| c.name.as_str()).collect()
}

/// "pod and containers "a", "b"": who set a forbidden value, the pod first.
fn setters(pod: bool, containers: &[&str]) -> Vec<String> {
    let mut setters = Vec::new();
    if pod {
        setters.push("pod".to_owned());
    }
    if !containers.is_empty() {
        setters.push(named_containers(containers));
    }
    setters
}

fn is_windows(spec: &PodSpec) -> bool {
    spec.os.as_ref().is_some_and(|os| os.name == "windows")
}

/// A pod in its own user namespace (hostUsers: false) is let off the checks about root.
fn in_user_namespace(spec: &PodSpec) -> bool {
    spec.host_users == Some(false)
}

fn app_armor_profile(annotations: &Annotations, spec: &PodSpec) -> Option<Violation> {
    let allowed = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    let mut bad_values = BTreeSet::new();
    let pod_type = spec.security_context.as_ref().and_then(|s| s.app_armor_profile.as_ref()).map(|p| p.type_.as_str());
    let pod_bad = pod_type.is_some_and(|t| !allowed(t));
    bad_values.extend(pod_type.filter(|t| !allowed(t)).map(str::to_owned));
    let bad = containers_where(spec, |c| {
        security(c).and_then(|s| s.app_armor_profile.as_ref()).is_some_and(|p| !allowed(&p.type_))
    });
    for c in containers(spec) {
        if let Some(p) = security(c).and_then(|s| s.app_armor_profile.as_ref())
            && !allowed(&p.type_)
        {
            bad_values.insert(p.type_.clone());
        }
    }
    let mut setters = setters(pod_bad, &bad);
    let mut values: Vec<String> = bad_values.into_iter().collect();
    let annotation_allowed = |v: &str| v.is_empty() || v == "runtime/default" || v.starts_with("localhost/");
    let forbidden: Vec<String> = annotations
        .iter()
        .filter(|(k, v)| k.starts_with("container.apparmor.security.beta.kubernetes.io/") && !annotation_allowed(v))
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect();
    if !forbidden.is_empty() {
        setters.push(pluralize("annotation", "annotations", forbidden.len()).to_owned());
        values.extend(forbidden);
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", values.len()),
        format!("{} must not set AppArmor profile type to {}", setters.join(" and "), join_quote(&values)),
    )
}

const DEFAULT_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_capabilities(c: &Container) -> &[String] {
    security(c).and_then(|s| s.capabilities.as_ref()).and_then(|caps| caps.add.as_deref()).unwrap_or_default()
}

fn capabilities_baseline(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    let non_default = |cap: &String| !DEFAULT_CAPABILITIES.contains(&cap.as_str());
    let bad = containers_where(spec, |c| added_capabilities(c).iter().any(non_default));
    if bad.is_empty() {
        return None;
    }
    let caps: BTreeSet<&String> = containers(spec).flat_map(added_capabilities).filter(|c| non_default(c)).collect();
    violation(
        "non-default capabilities",
        format!("{} must not include {} in securityContext.capabilities.add", named_containers(&bad), join_quote(caps)),
    )
}

fn host_namespaces(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    let shared: Vec<&str> =
        [(spec.host_network, "hostNetwork=true"), (spec.host_pid, "hostPID=true"), (spec.host_ipc, "hostIPC=true")]
            .into_iter()
            .filter(|(on, _)| *on == Some(true))
            .map(|(_, name)| name)
            .collect();
    if shared.is_empty() { None } else { violation("host namespaces", shared.join(", ")) }
}

fn host_path_volumes(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    let host: Vec<&str> =
        spec.volumes.iter().flatten().filter(|v| v.host_path.is_some()).map(|v| v.name.as_str()).collect();
    if host.is_empty() {
        return None;
    }
    violation("hostPath volumes", format!("{} {}", pluralize("volume", "volumes", host.len()), join_quote(&host)))
}

fn host_ports(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    let ports_of = |c: &Container| -> Vec<i32> {
        c.ports.iter().flatten().filter_map(|p| p.host_port).filter(|p| *p != 0).collect()
    };
    let bad = containers_where(spec, |c| !ports_of(c).is_empty());
    if bad.is_empty() {
        return None;
    }
    // Go sorts them as strings.
    let ports: BTreeSet<String> = containers(spec).flat_map(ports_of).map(|p| p.to_string()).collect();
    let count = ports.len();
    let ports = ports.into_iter().collect::<Vec<_>>().join(", ");
    violation("hostPort", uses(["container", "containers"], &bad, ["hostPort", "hostPorts"], count, ports))
}

fn host_probes_and_host_lifecycle(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    fn probe_hosts(probe: Option<&Probe>) -> Vec<String> {
        let Some(probe) = probe else { return Vec::new() };
        let http = probe.http_get.as_ref().and_then(|h| h.host.clone());
        let tcp = probe.tcp_socket.as_ref().and_then(|t| t.host.clone());
        [http, tcp].into_iter().flatten().filter(|h| !h.is_empty()).collect()
    }
    let hosts_of = |c: &Container| -> Vec<String> {
        let mut hosts = Vec::new();
        for probe in [&c.liveness_probe, &c.readiness_probe, &c.startup_probe] {
            hosts.extend(probe_hosts(probe.as_ref()));
        }
        let handlers = c.lifecycle.as_ref().map(|l| [l.post_start.as_ref(), l.pre_stop.as_ref()]).unwrap_or_default();
        for handler in handlers.into_iter().flatten() {
            let http = handler.http_get.as_ref().and_then(|h| h.host.clone());
            let tcp = handler.tcp_socket.as_ref().and_then(|t| t.host.clone());
            hosts.extend([http, tcp].into_iter().flatten().filter(|h| !h.is_empty()));
        }
        hosts
    };
    // A set, sorted, as the API server's.
    let bad: BTreeSet<&str> = containers_where(spec, |c| !hosts_of(c).is_empty()).into_iter().collect();
    if bad.is_empty() {
        return None;
    }
    let bad: Vec<&str> = bad.into_iter().collect();
    let hosts: BTreeSet<String> = containers(spec).flat_map(hosts_of).collect();
    let what = ["probe or lifecycle host", "probe or lifecycle hosts"];
    violation("probe or lifecycle host", uses(["container", "containers"], &bad, what, hosts.len(), join_quote(&hosts)))
}

fn privileged(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    let bad = containers_where(spec, |c| security(c).and_then(|s| s.privileged) == Some(true));
    if bad.is_empty() {
        return None;
    }
    violation("privileged", format!("{} must not set securityContext.privileged=true", named_containers(&bad)))
}

fn proc_mount_any(spec: &PodSpec) -> Option<Violation> {
    let unmasked = |c: &Container| security(c).and_then(|s| s.proc_mount.clone()).filter(|m| m != "Default");
    let bad = containers_where(spec, |c| unmasked(c).is_some());
    if bad.is_empty() {
        return None;
    }
    let types: BTreeSet<String> = containers(spec).filter_map(unmasked).collect();
    violation(
        "procMount",
        format!("{} must not set securityContext.procMount to {}", named_containers(&bad), join_quote(&types)),
    )
}

fn proc_mount(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    if in_user_namespace(spec) { None } else { proc_mount_any(spec) }
}

fn proc_mount_restricted(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    proc_mount_any(spec)
}

fn se_linux_options(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    use k8s_openapi::api::core::v1::SELinuxOptions;
    const ALLOWED: &[&str] = &["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"];
    let (mut types, mut user, mut role) = (BTreeSet::new(), false, false);
    let mut invalid = |o: &SELinuxOptions| {
        let t = o.type_.clone().unwrap_or_default();
        let bad_type = !ALLOWED.contains(&t.as_str());
        if bad_type {
            types.insert(t);
        }
        let (set_user, set_role) =
            (o.user.as_ref().is_some_and(|u| !u.is_empty()), o.role.as_ref().is_some_and(|r| !r.is_empty()));
        user |= set_user;
        role |= set_role;
        bad_type || set_user || set_role
    };
    let pod_bad = spec.security_context.as_ref().and_then(|s| s.se_linux_options.as_ref()).is_some_and(&mut invalid);
    let mut bad = Vec::new();
    for c in containers(spec) {
        if security(c).and_then(|s| s.se_linux_options.as_ref()).is_some_and(&mut invalid) {
            bad.push(c.name.as_str());
        }
    }
    let setters = setters(pod_bad, &bad);
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !types.is_empty() {
        data.push(format!("{} {}", pluralize("type", "types", types.len()), join_quote(&types)));
    }
    if user {
        data.push("user may not be set".to_owned());
    }
    if role {
        data.push("role may not be set".to_owned());
    }
    violation(
        "seLinuxOptions",
        format!("{} set forbidden securityContext.seLinuxOptions: {}", setters.join(" and "), data.join("; ")),
    )
}

fn seccomp_type(profile: Option<&k8s_openapi::api::core::v1::SeccompProfile>) -> Option<&str> {
    profile.map(|p| p.type_.as_str())
}

fn valid_seccomp(t: &str) -> bool {
    matches!(t, "RuntimeDefault" | "Localhost")
}

/// Who set seccompProfile.type to something else than RuntimeDefault or Localhost, and to what;
/// and which containers set none while the pod sets no valid one either.
fn seccomp_setters(spec: &PodSpec) -> (Vec<String>, BTreeSet<String>, Vec<&str>) {
    let mut values = BTreeSet::new();
    let pod = seccomp_type(spec.security_context.as_ref().and_then(|s| s.seccomp_profile.as_ref()));
    let pod_bad = pod.is_some_and(|t| !valid_seccomp(t));
    values.extend(pod.filter(|t| !valid_seccomp(t)).map(str::to_owned));
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in containers(spec) {
        match seccomp_type(security(c).and_then(|s| s.seccomp_profile.as_ref())) {
            Some(t) if !valid_seccomp(t) => {
                explicit.push(c.name.as_str());
                values.insert(t.to_owned());
            }
            Some(_) => {}
            None if pod.is_none_or(|t| !valid_seccomp(t)) => implicit.push(c.name.as_str()),
            None => {}
        }
    }
    (setters(pod_bad, &explicit), values, implicit)
}

fn seccomp_explicit(setters: &[String], values: &BTreeSet<String>) -> Option<Violation> {
    violation(
        "seccompProfile",
        format!("{} must not set securityContext.seccompProfile.type to {}", setters.join(" and "), join_quote(values)),
    )
}

fn seccomp_profile_baseline(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    let (setters, values, _) = seccomp_setters(spec);
    if setters.is_empty() { None } else { seccomp_explicit(&setters, &values) }
}

fn seccomp_profile_restricted(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) {
        return None;
    }
    let (setters, values, implicit) = seccomp_setters(spec);
    if !setters.is_empty() {
        return seccomp_explicit(&setters, &values);
    }
    if implicit.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            named_containers(&implicit)
        ),
    )
}

fn sysctls(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    const ALLOWED: &[&str] = &[
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    ];
    let forbidden: Vec<&str> = spec
        .security_context
        .iter()
        .flat_map(|s| s.sysctls.iter().flatten())
        .map(|s| s.name.as_str())
        .filter(|name| !ALLOWED.contains(name))
        .collect();
    if forbidden.is_empty() { None } else { violation("forbidden sysctls", forbidden.join(", ")) }
}

fn windows_host_process(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    let host_process = |s: Option<&k8s_openapi::api::core::v1::WindowsSecurityContextOptions>| {
        s.and_then(|w| w.host_process) == Some(true)
    };
    let pod = host_process(spec.security_context.as_ref().and_then(|s| s.windows_options.as_ref()));
    let bad = containers_where(spec, |c| host_process(security(c).and_then(|s| s.windows_options.as_ref())));
    let setters = setters(pod, &bad);
    if setters.is_empty() {
        return None;
    }
    violation(
        "hostProcess",
        format!("{} must not set securityContext.windowsOptions.hostProcess=true", setters.join(" and ")),
    )
}

fn allow_privilege_escalation(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) {
        return None;
    }
    let bad = containers_where(spec, |c| security(c).and_then(|s| s.allow_privilege_escalation) != Some(false));
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!("{} must set securityContext.allowPrivilegeEscalation=false", named_containers(&bad)),
    )
}

fn capabilities_restricted(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) {
        return None;
    }
    let drops_all = |c: &Container| {
        security(c)
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|caps| caps.drop.as_ref())
            .is_some_and(|d| d.iter().any(|c| c == "ALL"))
    };
    let forbidden = |cap: &String| cap != "NET_BIND_SERVICE";
    let missing_drop = containers_where(spec, |c| !drops_all(c));
    let adding = containers_where(spec, |c| added_capabilities(c).iter().any(forbidden));
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details
            .push(format!("{} must set securityContext.capabilities.drop=[\"ALL\"]", named_containers(&missing_drop)));
    }
    if !adding.is_empty() {
        let caps: BTreeSet<&String> = containers(spec).flat_map(added_capabilities).filter(|c| forbidden(c)).collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            named_containers(&adding),
            join_quote(caps)
        ));
    }
    if details.is_empty() { None } else { violation("unrestricted capabilities", details.join("; ")) }
}

fn restricted_volumes(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    const ALLOWED: &[&str] = &[
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for volume in spec.volumes.iter().flatten() {
        // The volume's source is its one field besides the name, under the API's own name
        // (hostPath, nfs, ...), which is the word the API server reports.
        let value = serde_json::to_value(volume).unwrap_or_default();
        let source = value.as_object().and_then(|fields| fields.keys().find(|k| *k != "name").cloned());
        let source = source.unwrap_or_else(|| "unknown".to_owned());
        if !ALLOWED.contains(&source.as_str()) {
            bad.push(volume.name.as_str());
            types.insert(source);
        }
    }
    if bad.is_empty() {
        return None;
    }
    let what = ["restricted volume type", "restricted volume types"];
    violation("restricted volume types", uses(["volume", "volumes"], &bad, what, types.len(), join_quote(&types)))
}

fn run_as_non_root(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    if in_user_namespace(spec) {
        return None;
    }
    let pod = spec.security_context.as_ref().and_then(|s| s.run_as_non_root);
    let explicit = containers_where(spec, |c| security(c).and_then(|s| s.run_as_non_root) == Some(false));
    let setters = setters(pod == Some(false), &explicit);
    if !setters.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!("{} must not set securityContext.runAsNonRoot=false", setters.join(" and ")),
        );
    }
    let implicit =
        containers_where(spec, |c| security(c).and_then(|s| s.run_as_non_root).is_none() && pod != Some(true));
    if implicit.is_empty() {
        return None;
    }
    violation(
        "runAsNonRoot != true",
        format!("pod or {} must set securityContext.runAsNonRoot=true", named_containers(&implicit)),
    )
}

fn run_as_user(_: &Annotations, spec: &PodSpec) -> Option<Violation> {
    if in_user_namespace(spec) {
        return None;
    }
    let pod = spec.security_context.as_ref().and_then(|s| s.run_as_user) == Some(0);
    let bad = containers_where(spec, |c| security(c).and_then(|s| s.run_as_user) == Some(0));
    let setters = setters(pod, &bad);
    if setters.is_empty() {
        return None;
    }
    violation("runAsUser=0", format!("{} must not set runAsUser=0", setters.join(" and ")))
}
