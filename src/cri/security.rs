//! securityContext, pod and container level, as kubelet v1.35 hands it to the runtime. Pure but
//! for `prepare_empty_dir`, which sets an emptyDir's mode and fsGroup ownership on disk.
//!
//! Sources, all in kubernetes v1.35.8:
//! - `pkg/securitycontext/util.go` (`DetermineEffectiveSecurityContext`: the pod's runAsUser,
//!   runAsGroup, runAsNonRoot and seLinuxOptions, overridden field by field by the container's;
//!   `AddNoNewPrivileges`; `ConvertToRuntimeMaskedPaths` / `ReadonlyPaths`);
//! - `pkg/kubelet/kuberuntime/security_context.go` (`determineEffectiveSecurityContext`: fsGroup
//!   and supplementalGroups become supplemental groups) and `security_context_others.go`
//!   (`verifyRunAsNonRoot`);
//! - `pkg/kubelet/kuberuntime/helpers.go` (`getSeccompProfile`: container over pod, Unconfined by
//!   default as kubelet's `seccompDefault: false`; `getAppArmorProfile`);
//! - `pkg/kubelet/kuberuntime/kuberuntime_sandbox.go` (`generatePodSandboxLinuxConfig`: the
//!   sandbox always RuntimeDefault seccomp, the pod's user, groups and sysctls);
//! - `pkg/security/apparmor` (`isRequired`, `GetProfile`, and the host check of its validator);
//! - `pkg/volume/volume_linux.go` and `emptydir/empty_dir.go` (emptyDir 0777; fsGroup: group
//!   ownership, g+rwx and setgid).

use std::{collections::BTreeMap, io, path::Path};

use k8s_cri::v1::{
    Capability, Int64Value, LinuxContainerSecurityContext, LinuxSandboxSecurityContext, SeLinuxOption, SecurityProfile,
    SupplementalGroupsPolicy, security_profile::ProfileType,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, SELinuxOptions, SecurityContext};

use super::host::Host;

/// kubelet's `--seccomp-profile-root` for its default root dir: `Localhost` profiles are looked
/// up where kubelet would look, so manifests and profiles written for kubelet work unchanged.
pub const SECCOMP_ROOT: &str = "/var/lib/kubelet/seccomp";
/// The deprecated per-container AppArmor annotation kubelet still reads for static pods.
pub const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
/// kubelet's admission message where AppArmor is off.
pub const APPARMOR_DISABLED: &str = "Cannot enforce AppArmor: AppArmor is not enabled on the host";

const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const DEFAULT_READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// `DetermineEffectiveSecurityContext`: what the container runs with. Of the pod's context only
/// runAsUser, runAsGroup, runAsNonRoot and seLinuxOptions apply to containers.
pub fn effective(spec: &PodSpec, container: &Container) -> SecurityContext {
    let pod = spec.security_context.as_ref();
    let mut sc = SecurityContext {
        run_as_user: pod.and_then(|p| p.run_as_user),
        run_as_group: pod.and_then(|p| p.run_as_group),
        run_as_non_root: pod.and_then(|p| p.run_as_non_root),
        se_linux_options: pod.and_then(|p| p.se_linux_options.clone()),
        ..Default::default()
    };
    let Some(c) = container.security_context.as_ref() else { return sc };
    sc.capabilities = c.capabilities.clone();
    sc.privileged = c.privileged;
    sc.read_only_root_filesystem = c.read_only_root_filesystem;
    sc.allow_privilege_escalation = c.allow_privilege_escalation;
    sc.proc_mount = c.proc_mount.clone();
    sc.seccomp_profile = c.seccomp_profile.clone();
    sc.app_armor_profile = c.app_armor_profile.clone();
    macro_rules! overrides {
        ($($field:ident),*) => { $(if c.$field.is_some() { sc.$field = c.$field.clone(); })* };
    }
    overrides!(run_as_user, run_as_group, run_as_non_root, se_linux_options);
    sc
}

/// The container's `LinuxContainerSecurityContext`, namespace options left to the caller.
#[allow(deprecated)] // `apparmor_profile`: kubelet still sends the string form for older runtimes
pub fn container_security(
    annotations: &BTreeMap<String, String>,
    spec: &PodSpec,
    container: &Container,
    host: &Host,
) -> LinuxContainerSecurityContext {
    let sc = effective(spec, container);
    let (apparmor, apparmor_profile) = apparmor_profile(annotations, spec, container)
        .map_or((None, String::new()), |(profile, deprecated)| (Some(profile), deprecated));
    LinuxContainerSecurityContext {
        capabilities: sc.capabilities.as_ref().map(|c| Capability {
            add_capabilities: c.add.clone().unwrap_or_default(),
            drop_capabilities: c.drop.clone().unwrap_or_default(),
            ..Default::default()
        }),
        privileged: sc.privileged.unwrap_or(false),
        run_as_user: sc.run_as_user.map(|value| Int64Value { value }),
        run_as_group: sc.run_as_group.map(|value| Int64Value { value }),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: supplemental_groups(spec),
        supplemental_groups_policy: supplemental_groups_policy(spec) as i32,
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        masked_paths: masked_paths(sc.proc_mount.as_deref(), host),
        readonly_paths: readonly_paths(sc.proc_mount.as_deref()),
        seccomp: Some(seccomp_profile(spec, container)),
        apparmor,
        apparmor_profile,
        selinux_options: sc.se_linux_options.as_ref().map(selinux),
        ..Default::default()
    }
}

/// The sandbox's `LinuxSandboxSecurityContext`, namespace options left to the caller: privileged
/// if any container is, RuntimeDefault seccomp always (kubernetes#84623), the pod's user, group,
/// supplemental groups and SELinux options.
pub fn sandbox_security(spec: &PodSpec) -> LinuxSandboxSecurityContext {
    let pod = spec.security_context.as_ref();
    LinuxSandboxSecurityContext {
        privileged: spec
            .containers
            .iter()
            .any(|c| c.security_context.as_ref().and_then(|s| s.privileged) == Some(true)),
        seccomp: Some(SecurityProfile {
            profile_type: ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        }),
        run_as_user: pod.and_then(|p| p.run_as_user).map(|value| Int64Value { value }),
        run_as_group: pod.and_then(|p| p.run_as_group).map(|value| Int64Value { value }),
        supplemental_groups: supplemental_groups(spec),
        supplemental_groups_policy: supplemental_groups_policy(spec) as i32,
        selinux_options: pod.and_then(|p| p.se_linux_options.as_ref()).map(selinux),
        ..Default::default()
    }
}

/// The pod's sysctls, set in the sandbox.
pub fn sysctls(spec: &PodSpec) -> std::collections::HashMap<String, String> {
    let pod = spec.security_context.as_ref();
    pod.and_then(|p| p.sysctls.as_ref()).into_iter().flatten().map(|s| (s.name.clone(), s.value.clone())).collect()
}

/// fsGroup first, then supplementalGroups, as kubelet appends them.
fn supplemental_groups(spec: &PodSpec) -> Vec<i64> {
    let pod = spec.security_context.as_ref();
    pod.and_then(|p| p.fs_group)
        .into_iter()
        .chain(pod.and_then(|p| p.supplemental_groups.clone()).into_iter().flatten())
        .collect()
}

fn supplemental_groups_policy(spec: &PodSpec) -> SupplementalGroupsPolicy {
    match spec.security_context.as_ref().and_then(|p| p.supplemental_groups_policy.as_deref()) {
        Some("Strict") => SupplementalGroupsPolicy::Strict,
        _ => SupplementalGroupsPolicy::Merge,
    }
}

fn selinux(o: &SELinuxOptions) -> SeLinuxOption {
    SeLinuxOption {
        user: o.user.clone().unwrap_or_default(),
        role: o.role.clone().unwrap_or_default(),
        r#type: o.type_.clone().unwrap_or_default(),
        level: o.level.clone().unwrap_or_default(),
    }
}

/// `ConvertToRuntimeMaskedPaths`: `Unmasked` masks nothing; anything else masks Docker's list
/// plus the host's `thermal_throttle` directories. (Sent even for privileged containers: the
/// runtime drops them there.)
pub fn masked_paths(proc_mount: Option<&str>, host: &Host) -> Vec<String> {
    if proc_mount == Some("Unmasked") {
        return vec![];
    }
    DEFAULT_MASKED_PATHS.iter().map(|p| p.to_string()).chain(host.thermal_throttle_paths.iter().cloned()).collect()
}

/// `ConvertToRuntimeReadonlyPaths`: none for `Unmasked`, Docker's list otherwise.
pub fn readonly_paths(proc_mount: Option<&str>) -> Vec<String> {
    if proc_mount == Some("Unmasked") {
        return vec![];
    }
    DEFAULT_READONLY_PATHS.iter().map(|p| p.to_string()).collect()
}

/// `getSeccompProfile`: the container's profile, else the pod's, else Unconfined.
/// Localhost profiles are files under `SECCOMP_ROOT`.
pub fn seccomp_profile(spec: &PodSpec, container: &Container) -> SecurityProfile {
    let profile = container
        .security_context
        .as_ref()
        .and_then(|c| c.seccomp_profile.as_ref())
        .or_else(|| spec.security_context.as_ref().and_then(|p| p.seccomp_profile.as_ref()));
    let (kind, reference) = match profile.map(|p| (p.type_.as_str(), p.localhost_profile.as_deref())) {
        Some(("RuntimeDefault", _)) => (ProfileType::RuntimeDefault, String::new()),
        Some(("Localhost", Some(file))) => {
            (ProfileType::Localhost, Path::new(SECCOMP_ROOT).join(file).display().to_string())
        }
        _ => (ProfileType::Unconfined, String::new()),
    };
    SecurityProfile { profile_type: kind as i32, localhost_ref: reference }
}

/// `apparmor.GetProfile` + `getAppArmorProfile`: the container's field, else the deprecated
/// annotation, else the pod's field; with the deprecated string form kubelet also sends.
/// None when nothing asks for a profile (the runtime then applies its default where AppArmor is on).
pub fn apparmor_profile(
    annotations: &BTreeMap<String, String>,
    spec: &PodSpec,
    container: &Container,
) -> Option<(SecurityProfile, String)> {
    let field = |p: &k8s_openapi::api::core::v1::AppArmorProfile| (p.type_.clone(), p.localhost_profile.clone());
    let from_annotation = || {
        let value = annotations.get(&format!("{APPARMOR_ANNOTATION_PREFIX}{}", container.name))?;
        Some(match value.as_str() {
            "runtime/default" => ("RuntimeDefault".to_owned(), None),
            "unconfined" => ("Unconfined".to_owned(), None),
            other => ("Localhost".to_owned(), Some(other.strip_prefix("localhost/").unwrap_or(other).to_owned())),
        })
    };
    let (kind, localhost) = container
        .security_context
        .as_ref()
        .and_then(|c| c.app_armor_profile.as_ref())
        .map(field)
        .or_else(from_annotation)
        .or_else(|| spec.security_context.as_ref().and_then(|p| p.app_armor_profile.as_ref()).map(field))?;
    let profile = |kind: ProfileType, reference: &str| SecurityProfile {
        profile_type: kind as i32,
        localhost_ref: reference.into(),
    };
    Some(match (kind.as_str(), localhost.as_deref()) {
        ("RuntimeDefault", _) => (profile(ProfileType::RuntimeDefault, ""), "runtime/default".into()),
        ("Localhost", Some(name)) => (profile(ProfileType::Localhost, name), format!("localhost/{name}")),
        _ => (profile(ProfileType::Unconfined, ""), "unconfined".into()),
    })
}

/// `apparmor.isRequired`: some container (by field or annotation) or the pod asks for a profile
/// other than Unconfined.
pub fn apparmor_required(annotations: &BTreeMap<String, String>, spec: &PodSpec) -> bool {
    let confined = |p: Option<&k8s_openapi::api::core::v1::AppArmorProfile>| p.is_some_and(|p| p.type_ != "Unconfined");
    confined(spec.security_context.as_ref().and_then(|p| p.app_armor_profile.as_ref()))
        || spec
            .containers
            .iter()
            .any(|c| confined(c.security_context.as_ref().and_then(|s| s.app_armor_profile.as_ref())))
        || annotations.iter().any(|(k, v)| k.starts_with(APPARMOR_ANNOTATION_PREFIX) && v != "unconfined")
}

/// Why the container must not be created (kubelet's `CreateContainerConfigError`, or its
/// AppArmor admission refusal), before any runtime call: a pod asks for AppArmor where the host
/// has none; or runAsNonRoot cannot hold (`verifyRunAsNonRoot`). `image_uid` / `image_user` are
/// the image's user as the runtime's ImageStatus gives it (only needed when
/// `needs_image_user` says so); `pod` names the pod as kubelet's `format.Pod` does.
pub fn config_problem(
    pod: &str,
    annotations: &BTreeMap<String, String>,
    spec: &PodSpec,
    container: &Container,
    host: &Host,
    image_user: Option<(Option<i64>, &str)>,
) -> Option<String> {
    if !host.apparmor && apparmor_required(annotations, spec) {
        return Some(APPARMOR_DISABLED.into());
    }
    let sc = effective(spec, container);
    if sc.run_as_non_root != Some(true) {
        return None;
    }
    let whose = format!("(pod: {pod:?}, container: {})", container.name);
    if let Some(uid) = sc.run_as_user {
        return (uid == 0).then(|| format!("container's runAsUser breaks non-root policy {whose}"));
    }
    // An image that says nothing is root (kubelet's getImageUser).
    match image_user.unwrap_or((Some(0), "")) {
        (None, name) if !name.is_empty() => Some(format!(
            "container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is non-root {whose}"
        )),
        (Some(0) | None, _) => Some(format!("container has runAsNonRoot and image will run as root {whose}")),
        (Some(uid), _) if !(1..=i64::from(i32::MAX)).contains(&uid) => Some(format!(
            "container has runAsNonRoot and image has an invalid user id ({uid}). (Must be 1-({})) {whose}",
            i32::MAX
        )),
        _ => None,
    }
}

/// Whether `config_problem` needs the image's user: runAsNonRoot without a runAsUser.
pub fn needs_image_user(spec: &PodSpec, container: &Container) -> bool {
    let sc = effective(spec, container);
    sc.run_as_non_root == Some(true) && sc.run_as_user.is_none()
}

/// An emptyDir as kubelet sets one up: mode 0777 whatever the umask; with an fsGroup, owned by
/// that group with g+rwx and setgid, so files created inside belong to the group too. Only the
/// directory itself: it is new, or was set up this way when it was.
pub fn prepare_empty_dir(dir: &Path, fs_group: Option<i64>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let mut mode = 0o777;
    if let Some(gid) = fs_group {
        let gid =
            u32::try_from(gid).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "fsGroup out of range"))?;
        std::os::unix::fs::lchown(dir, None, Some(gid))?;
        mode |= 0o2000 | 0o660 | 0o110;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{AppArmorProfile, Capabilities, PodSecurityContext, SeccompProfile, Sysctl};

    fn host() -> Host {
        Host {
            memory_capacity: 1 << 30,
            hugepage_sizes: vec![],
            cpus: 1,
            apparmor: false,
            thermal_throttle_paths: vec!["/sys/devices/system/cpu/cpu0/thermal_throttle".into()],
            cgroup_v2: false,
        }
    }

    fn pod_sc() -> PodSecurityContext {
        PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            run_as_non_root: Some(true),
            fs_group: Some(2000),
            supplemental_groups: Some(vec![4000, 5000]),
            sysctls: Some(vec![Sysctl { name: "net.ipv4.ip_local_port_range".into(), value: "1024 65000".into() }]),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
            se_linux_options: Some(SELinuxOptions { level: Some("s0:c1".into()), ..Default::default() }),
            ..Default::default()
        }
    }

    fn spec(pod: Option<PodSecurityContext>, container: Option<SecurityContext>) -> (PodSpec, Container) {
        let c = Container { name: "app".into(), security_context: container, ..Default::default() };
        (PodSpec { security_context: pod, containers: vec![c.clone()], ..Default::default() }, c)
    }

    #[test]
    fn container_values_override_the_pods_field_by_field() {
        let container = SecurityContext { run_as_user: Some(0), run_as_non_root: Some(false), ..Default::default() };
        let (spec, c) = spec(Some(pod_sc()), Some(container));
        let sc = effective(&spec, &c);
        assert_eq!((sc.run_as_user, sc.run_as_group, sc.run_as_non_root), (Some(0), Some(3000), Some(false)));
        assert_eq!(sc.se_linux_options.unwrap().level.as_deref(), Some("s0:c1"), "kept from the pod");

        let (spec, c) = self::spec(Some(pod_sc()), None);
        let cri = container_security(&BTreeMap::new(), &spec, &c, &host());
        assert_eq!((cri.run_as_user.unwrap().value, cri.run_as_group.unwrap().value), (1000, 3000));
        assert_eq!(cri.supplemental_groups, [2000, 4000, 5000], "fsGroup, then supplementalGroups");
        assert_eq!(cri.seccomp.unwrap().profile_type, ProfileType::RuntimeDefault as i32, "the pod's profile");
        assert_eq!(cri.selinux_options.unwrap().level, "s0:c1");
        assert!(!cri.no_new_privs && !cri.privileged && !cri.readonly_rootfs);
        assert_eq!(cri.apparmor, None);
    }

    #[test]
    fn container_only_fields() {
        let container = SecurityContext {
            capabilities: Some(Capabilities { add: Some(vec!["NET_ADMIN".into()]), drop: Some(vec!["ALL".into()]) }),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            seccomp_profile: Some(SeccompProfile {
                type_: "Localhost".into(),
                localhost_profile: Some("audit.json".into()),
            }),
            ..Default::default()
        };
        let (spec, c) = spec(Some(pod_sc()), Some(container));
        let cri = container_security(&BTreeMap::new(), &spec, &c, &host());
        let caps = cri.capabilities.unwrap();
        assert_eq!(
            (caps.add_capabilities, caps.drop_capabilities),
            (vec!["NET_ADMIN".to_owned()], vec!["ALL".to_owned()])
        );
        assert!(cri.readonly_rootfs);
        assert!(cri.no_new_privs, "allowPrivilegeEscalation: false");
        let seccomp = cri.seccomp.unwrap();
        assert_eq!(seccomp.profile_type, ProfileType::Localhost as i32, "the container's profile wins");
        assert_eq!(seccomp.localhost_ref, "/var/lib/kubelet/seccomp/audit.json");
    }

    #[test]
    fn no_new_privs_only_when_escalation_is_refused() {
        for (allow, no_new_privs) in [(None, false), (Some(true), false), (Some(false), true)] {
            let (spec, c) =
                spec(None, Some(SecurityContext { allow_privilege_escalation: allow, ..Default::default() }));
            assert_eq!(
                container_security(&BTreeMap::new(), &spec, &c, &host()).no_new_privs,
                no_new_privs,
                "{allow:?}"
            );
        }
    }

    #[test]
    fn seccomp_defaults_to_unconfined_like_kubelet_without_seccomp_default() {
        let (spec, c) = spec(None, None);
        assert_eq!(seccomp_profile(&spec, &c).profile_type, ProfileType::Unconfined as i32);
        let unconfined = SecurityContext {
            seccomp_profile: Some(SeccompProfile { type_: "Unconfined".into(), localhost_profile: None }),
            ..Default::default()
        };
        let (spec, c) = self::spec(Some(pod_sc()), Some(unconfined));
        assert_eq!(seccomp_profile(&spec, &c).profile_type, ProfileType::Unconfined as i32, "container over pod");
    }

    #[test]
    fn masked_and_readonly_paths_follow_proc_mount() {
        let masked = masked_paths(None, &host());
        assert_eq!(masked.len(), DEFAULT_MASKED_PATHS.len() + 1);
        assert_eq!(masked[0], "/proc/asound");
        assert_eq!(masked.last().unwrap(), "/sys/devices/system/cpu/cpu0/thermal_throttle");
        assert_eq!(masked_paths(Some("Default"), &host()), masked);
        assert_eq!(
            readonly_paths(Some("Default")),
            ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        );
        assert!(masked_paths(Some("Unmasked"), &host()).is_empty());
        assert!(readonly_paths(Some("Unmasked")).is_empty());
        let (spec, c) = spec(None, Some(SecurityContext { proc_mount: Some("Unmasked".into()), ..Default::default() }));
        let cri = container_security(&BTreeMap::new(), &spec, &c, &host());
        assert!(cri.masked_paths.is_empty() && cri.readonly_paths.is_empty());
    }

    #[test]
    fn sandbox_gets_pod_user_groups_sysctls_and_runtime_default_seccomp() {
        let privileged = SecurityContext { privileged: Some(true), ..Default::default() };
        let (spec, _) = spec(Some(pod_sc()), Some(privileged));
        let sandbox = sandbox_security(&spec);
        assert!(sandbox.privileged);
        assert_eq!(sandbox.seccomp.unwrap().profile_type, ProfileType::RuntimeDefault as i32);
        assert_eq!((sandbox.run_as_user.unwrap().value, sandbox.run_as_group.unwrap().value), (1000, 3000));
        assert_eq!(sandbox.supplemental_groups, [2000, 4000, 5000]);
        assert_eq!(sysctls(&spec)["net.ipv4.ip_local_port_range"], "1024 65000");
        let (plain, _) = self::spec(None, None);
        let sandbox = sandbox_security(&plain);
        assert!(!sandbox.privileged && sandbox.run_as_user.is_none() && sandbox.supplemental_groups.is_empty());
        assert_eq!(sandbox.seccomp.unwrap().profile_type, ProfileType::RuntimeDefault as i32, "always");
    }

    #[test]
    fn apparmor_profiles_from_fields_and_annotations() {
        let localhost =
            |name: &str| AppArmorProfile { type_: "Localhost".into(), localhost_profile: Some(name.into()) };
        let mut pod = pod_sc();
        pod.app_armor_profile = Some(localhost("pod-profile"));
        let (spec, c) = spec(Some(pod.clone()), None);
        let none = BTreeMap::new();
        let (profile, deprecated) = apparmor_profile(&none, &spec, &c).unwrap();
        assert_eq!(
            (profile.profile_type, profile.localhost_ref.as_str()),
            (ProfileType::Localhost as i32, "pod-profile")
        );
        assert_eq!(deprecated, "localhost/pod-profile");
        let annotated = BTreeMap::from([(format!("{APPARMOR_ANNOTATION_PREFIX}app"), "runtime/default".to_owned())]);
        let (profile, deprecated) = apparmor_profile(&annotated, &spec, &c).unwrap();
        assert_eq!(
            (profile.profile_type, deprecated.as_str()),
            (ProfileType::RuntimeDefault as i32, "runtime/default")
        );
        let container = SecurityContext {
            app_armor_profile: Some(AppArmorProfile { type_: "Unconfined".into(), localhost_profile: None }),
            ..Default::default()
        };
        let (spec2, c2) = self::spec(Some(pod), Some(container));
        assert_eq!(apparmor_profile(&annotated, &spec2, &c2).unwrap().0.profile_type, ProfileType::Unconfined as i32);
        let (plain, c) = self::spec(None, None);
        assert!(apparmor_profile(&none, &plain, &c).is_none());
        assert!(apparmor_required(&none, &spec) && apparmor_required(&annotated, &plain));
        assert!(!apparmor_required(&none, &plain));
    }

    #[test]
    fn config_problems_name_kubelets_reasons() {
        let pod = "p_default(u)";
        let none = BTreeMap::new();
        let non_root = |user: Option<i64>| {
            spec(
                Some(PodSecurityContext { run_as_non_root: Some(true), run_as_user: user, ..Default::default() }),
                None,
            )
        };
        let (s, c) = non_root(None);
        assert!(needs_image_user(&s, &c));
        let problem = |image: Option<(Option<i64>, &str)>| config_problem(pod, &none, &s, &c, &host(), image);
        assert_eq!(
            problem(Some((Some(0), ""))).unwrap(),
            "container has runAsNonRoot and image will run as root (pod: \"p_default(u)\", container: app)"
        );
        assert!(problem(Some((None, ""))).unwrap().contains("image will run as root"), "no user at all is root");
        assert!(problem(Some((None, "nobody"))).unwrap().contains("non-numeric user (nobody)"));
        assert!(problem(Some((Some(-1), ""))).unwrap().contains("invalid user id (-1)"));
        assert_eq!(problem(Some((Some(65534), ""))), None);
        let (s, c) = non_root(Some(0));
        assert!(!needs_image_user(&s, &c));
        assert!(
            config_problem(pod, &none, &s, &c, &host(), None).unwrap().contains("runAsUser breaks non-root policy")
        );
        let (s, c) = non_root(Some(1000));
        assert_eq!(config_problem(pod, &none, &s, &c, &host(), None), None);
        let (s, c) = spec(None, None);
        assert!(!needs_image_user(&s, &c));
        assert_eq!(config_problem(pod, &none, &s, &c, &host(), None), None);

        let mut apparmor = pod_sc();
        apparmor.app_armor_profile = Some(AppArmorProfile { type_: "RuntimeDefault".into(), localhost_profile: None });
        let (s, c) = spec(Some(apparmor), None);
        assert_eq!(config_problem(pod, &none, &s, &c, &host(), None).unwrap(), APPARMOR_DISABLED);
        let with_apparmor = Host { apparmor: true, ..host() };
        assert_eq!(config_problem(pod, &none, &s, &c, &with_apparmor, None), None, "uid 1000 from the pod");
    }

    #[test]
    fn empty_dirs_are_0777_and_fs_group_owned_with_setgid() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        prepare_empty_dir(&plain, None).unwrap();
        assert_eq!(std::fs::metadata(&plain).unwrap().permissions().mode() & 0o7777, 0o777);
        let shared = dir.path().join("shared");
        prepare_empty_dir(&shared, Some(2000)).unwrap();
        let meta = std::fs::metadata(&shared).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o2777);
        assert_eq!(meta.gid(), 2000);
    }
}
