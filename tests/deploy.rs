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
        "WatchdogSec=30s",
        "RestartPreventExitStatus=78",
        "EnvironmentFile=-/etc/default/staticlet",
        "ExecStart=/usr/bin/staticlet --config=/etc/staticlet/config.yaml $STATICLET_ARGS",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit needs {line}");
    }
    // verify checks that ExecStart's binary exists: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("staticlet.service");
    std::fs::write(&path, unit.replace("/usr/bin/staticlet", env!("CARGO_BIN_EXE_staticlet"))).unwrap();
    // --man=no: Documentation= names man:staticlet(1), which only the package installs.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
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

fn staticlet(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_staticlet")).args(args).output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn version_names_the_release_and_the_commit_it_was_built_from() {
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git");
    let head = String::from_utf8(head.stdout).unwrap();
    let (code, stdout, _) = staticlet(&["--version"]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout, format!("staticlet {} (git {})\n", env!("CARGO_PKG_VERSION"), head.trim()));
}

#[test]
fn config_validate_says_valid_for_the_shipped_config() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/config.yaml");
    let (code, stdout, stderr) = staticlet(&["config", "validate", path]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, format!("{path}: valid\n"));
}

#[test]
fn config_validate_names_the_file_and_field_and_exits_78_as_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.yaml");
    std::fs::write(&typo, "staticPodPaht: /etc/kubernetes/manifests\n").unwrap();
    let bad_value = dir.path().join("value.yaml");
    std::fs::write(&bad_value, "fileCheckFrequency: often\n").unwrap();
    for (file, field) in [(&typo, "staticPodPaht"), (&bad_value, "fileCheckFrequency")] {
        let file = file.to_str().unwrap();
        let (code, stdout, stderr) = staticlet(&["config", "validate", file]);
        assert_eq!(code, Some(78), "{file}: {stdout}{stderr}");
        assert!(stderr.contains(file) && stderr.contains(field), "{file}: {stderr}");
        assert!(!stdout.contains("valid"), "{stdout}");
        // The daemon reads it the same way, and stops with the same code.
        let (daemon, _, log) = staticlet(&[&format!("--config={file}")]);
        assert_eq!(daemon, Some(78), "{log}");
    }
    // A file that is not there yet is not a bad file: 1, as the daemon (systemd retries it).
    let missing = dir.path().join("missing.yaml");
    let (code, _, stderr) = staticlet(&["config", "validate", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
}

#[test]
fn generate_makes_completions_and_man_pages_and_is_hidden_from_help() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    assert_eq!(staticlet(&["generate", "completions", path]).0, Some(0));
    assert_eq!(staticlet(&["generate", "man", path]).0, Some(0));
    for (file, needle) in [
        ("staticlet.bash", "--pod-manifest-path"),
        ("_staticlet", "--pod-manifest-path"),
        ("staticlet.fish", "pod-manifest-path"),
        ("staticlet.1", "pod\\-manifest\\-path"),
        ("staticlet-config.1", "validate"),
    ] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(text.contains(needle), "{file} lacks {needle}:\n{text}");
    }
    let (_, help, _) = staticlet(&["--help"]);
    assert!(help.contains("config") && !help.contains("generate"), "{help}");
}
