//! staticlet in the kubelet's place on a kubeadm node, on the real containerd: kubelet's own
//! configuration file (the KubeletConfiguration kubeadm writes), the flags of kubeadm's systemd
//! drop-in, and the health endpoint kubeadm's `[kubelet-check]` polls.

mod common;

use std::process::Command;

use common::*;

/// /var/lib/kubelet/config.yaml as `kubeadm init` v1.35.8 writes it (tests/fixtures; with
/// cgroupfs, as the kubeadm configuration asks: kubeadm's default is systemd), with this test's
/// manifest directory, health port and log directory.
fn kubeadm_kubelet_config(manifests: &str, healthz_port: u16, logs: &str) -> String {
    let kubeadm = include_str!("fixtures/kubeadm-kubelet-config.yaml");
    let ours = kubeadm
        .replace("staticPodPath: /etc/kubernetes/manifests\n", &format!("staticPodPath: {manifests}\n"))
        .replace("healthzPort: 10248\n", &format!("healthzPort: {healthz_port}\n"));
    assert!(ours != kubeadm, "the fixture has kubeadm's staticPodPath and healthzPort");
    format!("{ours}podLogsDir: {logs}\n")
}

/// The flags kubeadm's drop-in (10-kubeadm.conf) and kubeadm-flags.env give a kubelet, with
/// this test's config file, runtime and node name.
fn drop_in_flags(d: &Daemon, config: &std::path::Path) -> Vec<String> {
    vec![
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf".into(),
        format!("--config={}", config.display()),
        format!("--container-runtime-endpoint={}", d.endpoint),
        format!("--hostname-override={}", d.node),
        "--pod-infra-container-image=registry.k8s.io/pause:3.10.1".into(),
        format!("--root-dir={}", d.dir.path().join("root").display()),
    ]
}

#[test]
fn kubeadms_kubelet_config_and_drop_in_flags_run_static_pods_and_serve_kubelets_healthz() {
    let _serial = serial();
    let mut d = Daemon::new("kubeadm-flags");
    let config = d.dir.path().join("config.yaml");
    std::fs::write(&config, kubeadm_kubelet_config(&path_str(&d.manifests), d.healthz_port, &path_str(&d.logs)))
        .unwrap();
    d.write_manifest("web.yaml", &web_pod("web", free_port()));
    let flags = drop_in_flags(&d, &config);
    d.start_with(flags);

    d.wait_for_running("web");
    assert_eq!(d.status().node, d.node, "--hostname-override names the node");
    assert_eq!(http_get(d.healthz_port, "/healthz").as_deref(), Ok("ok"), "kubelet's health endpoint");
    let log = d.log();
    let unused = log.lines().find(|l| l.contains("accepted without effect")).unwrap_or_else(|| panic!("{log}"));
    for field in ["clusterDNS", "clusterDomain", "streamingConnectionIdleTimeout"] {
        assert!(unused.contains(field), "{field} is listed as without effect: {unused}");
    }
    for honoured in ["staticPodPath", "healthzPort", "authentication", "authorization", "rotateCertificates"] {
        assert!(!unused.contains(honoured), "{honoured} is honoured: {unused}");
    }
}

#[test]
fn a_kubelet_config_with_an_unknown_field_or_the_systemd_driver_is_refused_by_name() {
    let _serial = serial();
    let d = Daemon::new("kubeadm-bad");
    let config = d.dir.path().join("config.yaml");
    let good = kubeadm_kubelet_config(&path_str(&d.manifests), d.healthz_port, &path_str(&d.logs));
    for (content, named) in [
        (format!("{good}staticPodPth: /etc/kubernetes/manifests\n"), "staticPodPth"),
        (good.replace("cgroupDriver: cgroupfs", "cgroupDriver: systemd"), "cgroupDriver"),
    ] {
        std::fs::write(&config, content).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_staticlet")).args(drop_in_flags(&d, &config)).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{stderr}");
        assert!(stderr.contains(named) && stderr.contains("config.yaml"), "{named}: {stderr}");
    }
    // A kubelet flag staticlet does not take is refused by name, not ignored.
    let out = Command::new(env!("CARGO_BIN_EXE_staticlet")).arg("--cgroups-per-qos=false").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--cgroups-per-qos"), "{stderr}");
}

#[test]
fn before_kubeadm_wrote_its_files_staticlet_exits_naming_them_so_systemd_restarts_it() {
    let _serial = serial();
    let d = Daemon::new("kubeadm-early");
    let config = d.dir.path().join("config.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_staticlet")).args(drop_in_flags(&d, &config)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 1, not 78: the unit's RestartPreventExitStatus=78 must not keep it down until kubeadm writes it.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&path_str(&config)) && stderr.contains("does not exist"), "{stderr}");

    // The config written, but neither the kubeconfig nor the bootstrap kubeconfig yet (kubeadm
    // join writes the latter): nothing to bootstrap from, so it exits naming both, as kubelet does.
    std::fs::write(&config, kubeadm_kubelet_config(&path_str(&d.manifests), 0, &path_str(&d.logs))).unwrap();
    let bootstrap = d.dir.path().join("bootstrap-kubelet.conf");
    let kubeconfig = d.dir.path().join("kubelet.conf");
    let out = Command::new(env!("CARGO_BIN_EXE_staticlet"))
        .args(drop_in_flags(&d, &config))
        .arg(format!("--bootstrap-kubeconfig={}", bootstrap.display()))
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--cert-dir={}", d.dir.path().join("pki").display()))
        .arg(format!("--status-address=127.0.0.1:{}", d.status_port))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&path_str(&kubeconfig)) && stderr.contains(&path_str(&bootstrap)), "{stderr}");
}
