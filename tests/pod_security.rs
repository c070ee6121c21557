//! Requests, limits and securityContext against the real private containerd (`hack/testenv up`):
//! what the container's process and its cgroups actually get, read from /proc and /sys/fs/cgroup
//! on the host (cgroup v1 here; the runtime's cgroup driver is cgroupfs).

mod common;

use std::{path::PathBuf, time::Duration};

use common::*;

/// The host PID of the pod's running container named `name`.
fn container_pid(uid: &str, name: &str) -> i32 {
    let container = runtime_containers(uid)
        .into_iter()
        .find(|c| {
            c.state == staticlet::cri::api::ContainerState::ContainerRunning as i32
                && c.metadata.as_ref().is_some_and(|m| m.name == name)
        })
        .unwrap_or_else(|| panic!("no running container {name}"));
    block_on(async { runtime().container_pid(&container.id).await.unwrap() }).expect("the runtime names the PID")
}

/// The cgroup v1 directory of `pid` in `controller`'s hierarchy, from /proc/<pid>/cgroup.
fn cgroup_dir(pid: i32, controller: &str) -> (String, PathBuf) {
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let (controllers, path) = table
        .lines()
        .find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            controllers.split(',').any(|c| c == controller).then(|| (controllers.to_owned(), path.to_owned()))
        })
        .unwrap_or_else(|| panic!("{controller} not in /proc/{pid}/cgroup:\n{table}"));
    let mount = [controllers.as_str(), controller]
        .iter()
        .map(|dir| PathBuf::from("/sys/fs/cgroup").join(dir))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| panic!("no mount for {controllers}"));
    (path.clone(), mount.join(path.trim_start_matches('/')))
}

fn read(path: impl AsRef<std::path::Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_owned()
}

fn status_field(pid: i32, field: &str) -> String {
    let status = read(format!("/proc/{pid}/status"));
    let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap_or_else(|| panic!("{field}"));
    line.split_once(':').unwrap().1.trim().to_owned()
}

/// A pod spec fragment: one busybox container `name` with `extra` container fields.
fn container(name: &str, script: &str, extra: &str) -> String {
    format!("  - name: {name}\n    image: {}\n    command: [sh, -c, {script:?}]\n{extra}", image())
}

fn pod(name: &str, spec: &str, containers: &[String]) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  hostNetwork: true\n  terminationGracePeriodSeconds: 1\n{spec}  containers:\n{}",
        containers.concat()
    )
}

#[test]
fn requests_and_limits_become_kubelets_cgroup_values_and_the_pod_cgroup_goes_with_the_pod() {
    let _serial = serial();
    let mut d = Daemon::new("cgroups");
    d.start();
    let resources = "    resources:\n      requests: {cpu: 250m}\n      limits: {cpu: 500m, memory: 64Mi}\n";
    let path = d.write_manifest("burst.yaml", &pod("burst", "", &[container("main", "exec sleep 3600", resources)]));
    let running = d.wait_for_running("burst");
    let pid = container_pid(&running.uid, "main");

    let (cpu_path, cpu) = cgroup_dir(pid, "cpu");
    let (memory_path, memory) = cgroup_dir(pid, "memory");
    let pod_cgroup = format!("/kubepods/burstable/pod{}", running.uid);
    assert!(cpu_path.starts_with(&format!("{pod_cgroup}/")), "Burstable pod cgroup (cgroupfs driver): {cpu_path}");
    assert_eq!(memory_path, cpu_path);
    let shares = read(cpu.join("cpu.shares"));
    let quota = read(cpu.join("cpu.cfs_quota_us"));
    let period = read(cpu.join("cpu.cfs_period_us"));
    let memory_limit = read(memory.join("memory.limit_in_bytes"));
    eprintln!(
        "container {cpu_path}: cpu.shares {shares}, cfs_quota_us {quota}, cfs_period_us {period}, memory.limit_in_bytes {memory_limit}"
    );
    assert_eq!((shares.as_str(), quota.as_str(), period.as_str()), ("256", "50000", "100000"));
    assert_eq!(memory_limit, "67108864");

    // The pod's own cgroup carries kubelet's pod-level values.
    let pod_cpu = PathBuf::from("/sys/fs/cgroup/cpu").join(pod_cgroup.trim_start_matches('/'));
    let pod_memory = PathBuf::from("/sys/fs/cgroup/memory").join(pod_cgroup.trim_start_matches('/'));
    let pod_values = [
        read(pod_cpu.join("cpu.shares")),
        read(pod_cpu.join("cpu.cfs_quota_us")),
        read(pod_memory.join("memory.limit_in_bytes")),
    ];
    eprintln!("pod {pod_cgroup}: cpu.shares, cfs_quota_us, memory.limit_in_bytes = {pod_values:?}");
    assert_eq!(pod_values, ["256", "50000", "67108864"]);
    let tier: i64 = read("/sys/fs/cgroup/cpu/kubepods/burstable/cpu.shares").parse().unwrap();
    assert!(tier >= 256, "the burstable tier weighs at least this pod: {tier}");
    let cpus = staticlet::cri::host::Host::current().cpus;
    assert_eq!(read("/sys/fs/cgroup/cpu/kubepods/cpu.shares"), (cpus * 1024).to_string(), "kubepods: the node's CPUs");

    // Burstable: 1000 - 1000 * 64Mi (the request, defaulted from the limit) / node memory.
    let capacity = staticlet::cri::host::Host::current().memory_capacity;
    let expected = (1000 - 1000 * (64i64 << 20) / capacity).clamp(3, 999);
    let got: i64 = read(format!("/proc/{pid}/oom_score_adj")).parse().unwrap();
    eprintln!("oom_score_adj: asked {expected}, got {got}");
    assert_eq!(got, expected);

    std::fs::remove_file(path).unwrap();
    d.wait_until("the pod is gone from the runtime", Duration::from_secs(30), |_| {
        runtime_sandboxes(&running.uid).is_empty()
    });
    d.wait_until("its pod cgroup is removed", Duration::from_secs(10), |_| !pod_cpu.exists() && !pod_memory.exists());
}

#[test]
fn security_context_reaches_the_process_seccomp_user_read_only_root_capabilities_and_masked_paths() {
    let _serial = serial();
    let mut d = Daemon::new("secctx");
    d.start();
    let probe = "if touch /probe 2>/dev/null; then echo rootfs=writable; else echo rootfs=readonly; fi; \
                 if touch /scratch/f; then echo scratch=writable group=$(stat -c %g /scratch/f); fi; exec sleep 3600";
    let nonroot = "    securityContext: {runAsUser: 1000, readOnlyRootFilesystem: true}\n    volumeMounts: [{name: scratch, mountPath: /scratch}]\n";
    let root = "    securityContext: {capabilities: {drop: [NET_RAW, CHOWN]}}\n";
    let spec = "  securityContext: {seccompProfile: {type: RuntimeDefault}, fsGroup: 2000}\n  volumes: [{name: scratch, emptyDir: {}}]\n";
    let manifest =
        pod("secure", spec, &[container("nonroot", probe, nonroot), container("root", "exec sleep 3600", root)]);
    d.write_manifest("secure.yaml", &manifest);
    let running = d.wait_for_running("secure");
    let nonroot_pid = container_pid(&running.uid, "nonroot");
    let root_pid = container_pid(&running.uid, "root");

    for pid in [nonroot_pid, root_pid] {
        assert_eq!(status_field(pid, "Seccomp"), "2", "RuntimeDefault is a seccomp filter (mode 2)");
        assert_eq!(status_field(pid, "NoNewPrivs"), "0", "allowPrivilegeEscalation unset: no no_new_privs");
    }
    let uid = status_field(nonroot_pid, "Uid");
    let groups = status_field(nonroot_pid, "Groups");
    eprintln!("nonroot: Seccomp 2, Uid {uid}, Groups {groups}");
    assert_eq!(uid.split_whitespace().collect::<Vec<_>>(), ["1000"; 4]);
    assert!(groups.split_whitespace().any(|g| g == "2000"), "fsGroup is a supplemental group: {groups}");

    let cap_eff = u64::from_str_radix(&status_field(root_pid, "CapEff"), 16).unwrap();
    eprintln!("root: CapEff {cap_eff:016x}");
    const CAP_CHOWN: u32 = 0;
    const CAP_NET_BIND_SERVICE: u32 = 10;
    const CAP_NET_RAW: u32 = 13;
    assert_eq!(cap_eff & (1 << CAP_NET_RAW), 0, "NET_RAW dropped");
    assert_eq!(cap_eff & (1 << CAP_CHOWN), 0, "CHOWN dropped");
    assert_ne!(cap_eff & (1 << CAP_NET_BIND_SERVICE), 0, "the runtime's other defaults stay");

    let log = d.logs.join(format!("default_secure-{}_{}", d.node, running.uid)).join("nonroot/0.log");
    d.wait_until("the probe has written its two lines", Duration::from_secs(10), |_| {
        std::fs::read_to_string(&log).unwrap_or_default().lines().count() >= 2
    });
    let lines = read(&log);
    eprintln!("nonroot says: {lines}");
    assert!(lines.contains("rootfs=readonly"), "{lines}");
    assert!(
        lines.contains("scratch=writable group=2000"),
        "an emptyDir is writable by uid 1000 and setgid to fsGroup: {lines}"
    );

    // procMount Default: kubelet's masked paths (bind-mounted over) and read-only paths.
    let mounts = read(format!("/proc/{root_pid}/mountinfo"));
    let mount_of = |target: &str| mounts.lines().find(|l| l.split(' ').nth(4) == Some(target)).map(str::to_owned);
    for masked in ["/proc/keys", "/proc/timer_list", "/proc/interrupts"] {
        assert!(mount_of(masked).is_some(), "{masked} is masked:\n{mounts}");
    }
    let proc_sys = mount_of("/proc/sys").unwrap_or_else(|| panic!("/proc/sys is not mounted apart:\n{mounts}"));
    assert!(proc_sys.split(' ').nth(5).is_some_and(|o| o.split(',').any(|o| o == "ro")), "{proc_sys}");
}

#[test]
fn a_node_critical_pod_asks_for_minus_997_and_the_runtime_clamp_is_said_once() {
    let _serial = serial();
    let mut d = Daemon::new("oomcrit");
    d.start();
    let spec = "  priorityClassName: system-node-critical\n";
    let resources = "    resources: {requests: {cpu: 100m, memory: 16Mi}}\n";
    d.write_manifest("crit.yaml", &pod("crit", spec, &[container("main", "exec sleep 3600", resources)]));
    let running = d.wait_for_running("crit");
    let pid = container_pid(&running.uid, "main");
    let got: i64 = read(format!("/proc/{pid}/oom_score_adj")).parse().unwrap();
    eprintln!("oom_score_adj: asked -997, got {got}");
    if got != -997 {
        // containerd's restrict_oom_score_adj: no container below containerd's own score.
        d.wait_until("the clamp is logged", Duration::from_secs(10), |d| {
            d.log().contains("the runtime clamps oom_score_adj")
        });
        let log = d.log();
        assert_eq!(log.matches("the runtime clamps oom_score_adj").count(), 1, "once");
        assert!(log.contains("asked=-997") && log.contains(&format!("got={got}")), "{log}");
    }
}

#[test]
fn run_as_non_root_with_an_image_that_runs_as_root_never_starts() {
    let _serial = serial();
    let mut d = Daemon::new("nonroot");
    d.start();
    // The test image names no user: it runs as root.
    d.write_manifest(
        "strict.yaml",
        &pod("strict", "  securityContext: {runAsNonRoot: true}\n", &[container("main", "exec sleep 3600", "")]),
    );
    let waiting = d.wait_for_pod("strict", "refused", |p| p.status == "CreateContainerConfigError");
    let error = waiting.last_error.clone().unwrap_or_default();
    eprintln!("last_error: {error}");
    assert!(error.contains("container has runAsNonRoot and image will run as root"), "{error}");
    assert!(error.contains("container: main"), "{error}");
    assert_eq!(waiting.containers[0].reason, "CreateContainerConfigError");
    assert!(runtime_containers(&waiting.uid).is_empty(), "no container was ever created");

    // With a runAsUser the same image runs.
    d.write_manifest(
        "strict.yaml",
        &pod(
            "strict",
            "  securityContext: {runAsNonRoot: true, runAsUser: 1000}\n",
            &[container("main", "exec sleep 3600", "")],
        ),
    );
    d.wait_for_pod("strict", "running as 1000", |p| p.uid != waiting.uid && p.status == "Running");
}

#[test]
fn an_apparmor_profile_is_refused_by_name_where_the_host_has_no_apparmor() {
    if staticlet::cri::host::Host::current().apparmor {
        eprintln!("this host has AppArmor: nothing to refuse");
        return;
    }
    let _serial = serial();
    let mut d = Daemon::new("apparmor");
    d.start();
    let spec = "  securityContext: {appArmorProfile: {type: RuntimeDefault}}\n";
    d.write_manifest("aa.yaml", &pod("aa", spec, &[container("main", "exec sleep 3600", "")]));
    let waiting = d.wait_for_pod("aa", "refused", |p| p.status == "CreateContainerConfigError");
    let error = waiting.last_error.clone().unwrap_or_default();
    eprintln!("last_error: {error}");
    assert!(error.contains("Cannot enforce AppArmor: AppArmor is not enabled on the host"), "{error}");
    assert!(runtime_containers(&waiting.uid).is_empty());
}
