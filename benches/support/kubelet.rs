//! The real kubelet (same release as the test cluster, built by `hack/testenv up --cluster` and found
//! through STATICLET_KUBE_BIN), on the same private containerd, fed through a manifest directory.
//!
//! Settings that differ from kubelet's defaults, and why:
//! - `failCgroupV1: false`: this machine runs cgroup v1, which kubelet 1.35 refuses by default;
//! - `cgroupDriver: cgroupfs`: containerd's driver here (PID 1 is not systemd);
//! - `cgroupsPerQOS: false`, `enforceNodeAllocatable: []`: no systemd to manage kubelet's cgroups;
//! - `failSwapOn: false`: the machine has swap;
//! - anonymous auth with AlwaysAllow on private ports 10350/10348: its API is not under test.
//!
//! With a kubeconfig it registers its own Node, as a cluster's kubelet does, and keeps mirror pods.

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct Kubelet {
    pub node: String,
    pub manifests: PathBuf,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Kubelet {
    /// Starts kubelet and waits for its healthz; None when no kubelet binary was built.
    pub fn start(node: &str, endpoint: &str, kubeconfig: Option<&Path>) -> Option<Self> {
        let bin = PathBuf::from(std::env::var("STATICLET_KUBE_BIN").ok()?).join("kubelet");
        if !bin.exists() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        let config = dir.path().join("kubelet.yaml");
        std::fs::write(
            &config,
            format!(
                "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: {manifests}
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: {endpoint}
authentication: {{anonymous: {{enabled: true}}, webhook: {{enabled: false}}}}
authorization: {{mode: AlwaysAllow}}
readOnlyPort: 0
port: 10350
healthzPort: 10348
podLogsDir: {logs}
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
resolvConf: /etc/resolv.conf
localStorageCapacityIsolation: false
",
                manifests = manifests.display(),
                logs = dir.path().join("logs").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("kubelet.log")).unwrap();
        let mut command = Command::new(bin);
        command
            .arg(format!("--config={}", config.display()))
            .arg(format!("--root-dir={}", dir.path().join("root").display()))
            .arg(format!("--cert-dir={}", dir.path().join("pki").display()))
            .arg(format!("--hostname-override={node}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(kubeconfig) = kubeconfig {
            command.arg(format!("--kubeconfig={}", kubeconfig.display())).arg("--node-ip=127.0.0.1");
        }
        let child = command.spawn().ok()?;
        let kubelet = Self { node: node.into(), manifests, dir, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while super::common::http_get(10348, "/healthz").is_err() {
            if Instant::now() > deadline {
                eprintln!("kubelet did not become healthy; its log is in {}", kubelet.dir.path().display());
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(kubelet)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // kubelet leaves its pods running when it stops, as staticlet does: remove them.
        let suffix = format!("-{}", self.node);
        super::common::block_on(async {
            use staticlet::cri::Cri as _;
            let rt = super::common::runtime();
            for s in rt.list_sandboxes(&[]).await.unwrap_or_default() {
                if s.metadata.as_ref().is_some_and(|m| m.name.ends_with(&suffix)) {
                    let _ = rt.stop_sandbox(&s.id).await;
                    let _ = rt.remove_sandbox(&s.id).await;
                }
            }
        });
    }
}
