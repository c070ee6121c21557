//! Volumes against the real private containerd (`hack/testenv up`): hostPath types, emptyDir
//! `medium: Memory` as a tmpfs, downwardAPI files, subPath(Expr) and their refusals, read back
//! from the container's log and from the host.

mod common;

use std::{path::Path, time::Duration};

use common::*;

fn log_of(d: &Daemon, name: &str, uid: &str) -> std::path::PathBuf {
    d.logs.join(format!("default_{name}-{}_{uid}", d.node)).join("main/0.log")
}

/// Whether something is mounted at `dir` (by /proc/self/mountinfo).
fn mounted(dir: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.display().to_string();
    table.lines().any(|l| l.split(' ').nth(4) == Some(dir.as_str()))
}

/// Unmounts a tmpfs the daemon mounted under the test's directory if the test fails before the
/// pod is removed (the daemon unmounts it when it removes the pod).
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        if mounted(&self.0) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[test]
fn a_regular_file_mounted_as_socket_never_starts_and_names_volume_path_and_type() {
    let _serial = serial();
    let mut d = Daemon::new("vol-socket");
    d.start();
    let file = d.dir.path().join("not-a-socket");
    std::fs::write(&file, "").unwrap();
    let spec = format!("  volumes: [{{name: sock, hostPath: {{path: {}, type: Socket}}}}]\n", file.display());
    let manifest =
        shell_pod("sock", "exec sleep 3600", &spec) + "    volumeMounts: [{name: sock, mountPath: /run/app.sock}]\n";
    d.write_manifest("sock.yaml", &manifest);
    let waiting = d.wait_for_pod("sock", "refused", |p| p.status == "CreateContainerConfigError");
    let error = waiting.last_error.clone().unwrap_or_default();
    eprintln!("last_error: {error}");
    assert!(error.contains("volume \"sock\""), "{error}");
    assert!(error.contains(&format!("hostPath type check failed: {} is not a socket file", file.display())), "{error}");
    assert_eq!(waiting.containers[0].reason, "CreateContainerConfigError");
    assert!(runtime_containers(&waiting.uid).is_empty(), "no container was ever created");
}

#[test]
fn host_paths_tmpfs_downward_api_and_sub_path_expr_reach_the_container() {
    let _serial = serial();
    let mut d = Daemon::new("vol-all");
    d.start();
    let made = d.dir.path().join("made");
    let file = d.dir.path().join("created-file");
    let spec = format!(
        "  volumes:\n  - {{name: d, hostPath: {{path: {}, type: DirectoryOrCreate}}}}\n  - {{name: f, hostPath: {{path: {}, type: FileOrCreate}}}}\n  - {{name: mem, emptyDir: {{medium: Memory, sizeLimit: 8Mi}}}}\n  - {{name: disk, emptyDir: {{sizeLimit: 1Gi}}}}\n  - name: info\n    downwardAPI:\n      items:\n      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}\n      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}\n      - {{path: mem, resourceFieldRef: {{containerName: main, resource: limits.memory, divisor: 1Mi}}}}\n  - name: proj\n    projected: {{sources: [{{downwardAPI: {{items: [{{path: uid, fieldRef: {{fieldPath: metadata.uid}}}}]}}}}]}}\n",
        made.display(),
        file.display()
    );
    let script = "echo hello > /d/out; echo labels=$(cat /info/labels); echo name=$(cat /info/name); \
                  echo mem=$(cat /info/mem); echo uid=$(cat /proj/uid); \
                  if touch /info/x 2>/dev/null; then echo info=writable; else echo info=readonly; fi; \
                  grep ' /mem ' /proc/mounts; echo done; exec sleep 3600";
    let manifest = shell_pod("all", script, &spec)
        + "    env: [{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]\n    resources: {limits: {memory: 32Mi}}\n    volumeMounts:\n    - {name: d, mountPath: /d, subPathExpr: $(POD)/sub}\n    - {name: f, mountPath: /f}\n    - {name: mem, mountPath: /mem}\n    - {name: disk, mountPath: /disk}\n    - {name: info, mountPath: /info}\n    - {name: proj, mountPath: /proj}\n";
    let path = d.write_manifest("all.yaml", &manifest);
    let running = d.wait_for_pod("all", "created", |p| !p.uid.is_empty());
    let mem = d.dir.path().join("root/pods").join(&running.uid).join("volumes/kubernetes.io~empty-dir/mem");
    let _unmount = Unmount(mem.clone());
    let running = d.wait_for_running("all");
    let log = log_of(&d, "all", &running.uid);
    d.wait_until("the script has said done", Duration::from_secs(10), |_| {
        std::fs::read_to_string(&log).unwrap_or_default().contains("done")
    });
    let said = std::fs::read_to_string(&log).unwrap();
    eprintln!("container says:\n{said}");
    let full = format!("all-{}", d.node);
    assert!(said.contains("labels=role=\"test\""), "{said}");
    assert!(said.contains(&format!("name={full}")), "{said}");
    assert!(said.contains("mem=32"), "limits.memory in Mi: {said}");
    assert!(said.contains(&format!("uid={}", running.uid)), "{said}");
    assert!(said.contains("info=readonly"), "{said}");
    assert!(said.contains("tmpfs /mem tmpfs") && said.contains("size=8192k"), "a tmpfs of sizeLimit: {said}");

    let out = made.join(&full).join("sub/out");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello\n", "subPathExpr expanded inside the created directory");
    assert!(std::fs::metadata(&file).unwrap().is_file(), "FileOrCreate made a file");
    assert!(mounted(&mem), "the tmpfs is mounted on the host at {}", mem.display());

    std::fs::remove_file(path).unwrap();
    d.wait_until("the pod is gone from the runtime", Duration::from_secs(30), |_| {
        runtime_sandboxes(&running.uid).is_empty()
    });
    d.wait_until("the tmpfs is unmounted and the pod dir removed", Duration::from_secs(10), |_| {
        !mounted(&mem) && !mem.exists()
    });
}

#[test]
fn a_sub_path_that_escapes_its_volume_through_a_symlink_never_starts() {
    let _serial = serial();
    let mut d = Daemon::new("vol-escape");
    d.start();
    let volume = d.dir.path().join("vol");
    std::fs::create_dir(&volume).unwrap();
    std::os::unix::fs::symlink("/etc", volume.join("escape")).unwrap();
    let spec = format!("  volumes: [{{name: v, hostPath: {{path: {}}}}}]\n", volume.display());
    let manifest = shell_pod("escape", "exec sleep 3600", &spec)
        + "    volumeMounts: [{name: v, mountPath: /v, subPath: escape}]\n";
    d.write_manifest("escape.yaml", &manifest);
    let waiting = d.wait_for_pod("escape", "refused", |p| p.status == "CreateContainerConfigError");
    let error = waiting.last_error.clone().unwrap_or_default();
    eprintln!("last_error: {error}");
    assert!(error.contains("resolves to /etc, outside the volume"), "{error}");
    assert!(runtime_containers(&waiting.uid).is_empty());
}

#[test]
fn a_sub_path_with_dot_dot_is_refused_by_field() {
    let _serial = serial();
    let mut d = Daemon::new("vol-dotdot");
    d.start();
    let manifest = shell_pod("dotdot", "exec sleep 3600", "  volumes: [{name: v, emptyDir: {}}]\n")
        + "    volumeMounts: [{name: v, mountPath: /v, subPath: ../../etc}]\n";
    d.write_manifest("dotdot.yaml", &manifest);
    let expected = "spec.containers[0].volumeMounts[0].subPath: \"../../etc\" must not contain '..'";
    d.wait_until("the manifest is refused", Duration::from_secs(20), |d| {
        d.status().manifest_errors.iter().any(|e| e.contains(expected))
    });
    eprintln!("manifest_errors: {:?}", d.status().manifest_errors);
    assert!(d.pod("dotdot").is_none(), "never started");
}
