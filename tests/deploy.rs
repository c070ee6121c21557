//! What deploy/ ships: the systemd unit and the default config.

use std::process::Command;

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/staticlet.service")).unwrap();
    for line in [
        "KillMode=process",
        "Restart=always",
        "After=containerd.service network-online.target",
        "Wants=containerd.service network-online.target",
        "Type=notify",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit needs {line}");
    }
    // verify checks that ExecStart's binary exists: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("staticlet.service");
    std::fs::write(&path, unit.replace("/usr/bin/staticlet", env!("CARGO_BIN_EXE_staticlet"))).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("staticlet.service"), "warnings about the unit: {stderr}");
}

#[test]
fn shipped_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/config.yaml");
    let file = staticlet::config::ConfigFile::load(path).unwrap().file;
    let config = staticlet::config::Config::resolve(file, Default::default(), || "node".into()).unwrap();
    assert_eq!(config.static_pod_path.as_deref(), Some(std::path::Path::new("/etc/kubernetes/manifests")));
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let out = Command::new(env!("CARGO_BIN_EXE_staticlet")).args(["config", "schema"]).output().unwrap();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/staticlet.schema.json")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
}
