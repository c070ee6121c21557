//! The node's own policy for static pods, against the real runtime and, for the words of a
//! refusal, the real API server (`hack/testenv up --cluster`): Pod Security Standards enforced
//! locally (podSecurity) and manifest trust (staticPodPathStrictModes).

mod common;

use std::{os::unix::fs::PermissionsExt as _, time::Duration};

use common::*;

/// Pods that break the restricted level in different ways, by name: the spec lines after
/// `spec:` (two-space indent), each with one busybox container named `main`.
fn hostile_pods() -> Vec<(&'static str, String)> {
    let image = image();
    let container = |security: &str| {
        format!("  containers:\n  - name: main\n    image: {image}\n    command: [sleep, '3600']\n{security}")
    };
    vec![
        (
            "host",
            format!(
                "  hostNetwork: true\n  hostPID: true\n  volumes:\n  - {{name: etc, hostPath: {{path: /etc}}}}\n{}",
                container(
                    "    securityContext: {privileged: true}\n    ports: [{containerPort: 8080, hostPort: 8080}]\n"
                )
            ),
        ),
        (
            "bare",
            format!("  initContainers:\n  - {{name: init, image: {image}, command: ['true']}}\n{}", container("")),
        ),
        (
            "root",
            format!(
                "  securityContext: {{runAsUser: 0, sysctls: [{{name: kernel.msgmax, value: '65536'}}]}}\n{}",
                container(
                    "    securityContext: {allowPrivilegeEscalation: false, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}, capabilities: {drop: [ALL], add: [NET_RAW, NET_BIND_SERVICE, NET_ADMIN]}}\n"
                )
            ),
        ),
        (
            "probe",
            container(
                "    securityContext: {allowPrivilegeEscalation: false, runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: Unconfined}, capabilities: {drop: [ALL]}}\n    livenessProbe: {tcpSocket: {host: 10.0.0.1, port: 80}}\n",
            ),
        ),
    ]
}

/// A pod the restricted level admits.
fn tight_pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  securityContext: {{runAsNonRoot: true, runAsUser: 1000, seccompProfile: {{type: RuntimeDefault}}}}\n  containers:\n  - name: main\n    image: {image}\n    command: [sleep, '3600']\n    securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}\n",
        image = image()
    )
}

fn manifest(name: &str, namespace: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n{spec}")
}

/// What follows `violates PodSecurity "<level>:latest": ` in a refusal, to the line's end.
fn violations(level: &str, text: &str) -> Option<String> {
    let (_, rest) = text.split_once(&format!("violates PodSecurity \"{level}:latest\": "))?;
    Some(rest.lines().next().unwrap_or_default().trim().to_owned())
}

#[test]
fn the_node_refuses_what_the_api_server_refuses_in_the_same_words() {
    let _serial = serial();
    let baseline_breakers = refuses_as_the_api_server("baseline");
    assert_eq!(baseline_breakers, ["host", "root", "probe"], "the bare pod passes baseline");
    let restricted_breakers = refuses_as_the_api_server("restricted");
    assert_eq!(restricted_breakers.len(), hostile_pods().len(), "every hostile pod breaks restricted");
}

/// Runs the hostile pods and a tight one under `level` on the node, and asks the API server about
/// the same pods in a namespace labelled with `level`: the same pods are refused, in the same
/// words, and the tight pod runs. Returns the names of the refused pods.
fn refuses_as_the_api_server(level: &str) -> Vec<&'static str> {
    let namespace = format!("pss-{level}-{}", std::process::id());
    let (created, _, err) = kubectl(&["create", "namespace", &namespace]);
    assert!(created, "{err}");
    let _cleanup = NamespaceCleanup(namespace.clone());
    let (labelled, _, err) =
        kubectl(&["label", "namespace", &namespace, &format!("pod-security.kubernetes.io/enforce={level}")]);
    assert!(labelled, "{err}");

    let mut daemon = Daemon::new(&format!("pss_{level}"));
    daemon.extra = vec![format!("--pod-security-enforce={level}")];
    for (name, spec) in hostile_pods() {
        daemon.write_manifest(&format!("{name}.yaml"), &manifest(name, &namespace, spec.as_str()));
    }
    daemon.write_manifest("tight.yaml", &tight_pod("tight"));
    daemon.start();
    daemon.wait_for_running("tight");
    // The API server's answer for each pod, in a namespace whose PodSecurity label says `level`.
    let theirs: Vec<(&str, bool, String)> = hostile_pods()
        .into_iter()
        .map(|(name, spec)| {
            let pod = std::env::temp_dir().join(format!("pss-{level}-{}-{name}.yaml", std::process::id()));
            std::fs::write(&pod, manifest(name, &namespace, &spec)).unwrap();
            let (accepted, _, err) = kubectl(&["create", "--dry-run=server", "-f", &path_str(&pod)]);
            std::fs::remove_file(&pod).unwrap();
            (name, accepted, err)
        })
        .collect();
    let refused: Vec<&str> = theirs.iter().filter(|(_, accepted, _)| !accepted).map(|(name, ..)| *name).collect();
    daemon.wait_until("the hostile manifests are judged", Duration::from_secs(30), |d| {
        d.status().manifest_errors.len() == refused.len()
            && theirs.iter().filter(|(_, accepted, _)| *accepted).all(|(name, ..)| d.pod(name).is_some())
    });
    let status = daemon.status();
    for (name, accepted, theirs) in &theirs {
        let path = path_str(&daemon.manifests.join(format!("{name}.yaml")));
        let ours = status.manifest_errors.iter().find(|e| e.starts_with(&path));
        if *accepted {
            assert!(ours.is_none(), "the API server admits {name}, the node refused it: {ours:?}");
            continue;
        }
        let ours = ours.unwrap_or_else(|| panic!("the API server refused {name}, the node did not: {theirs}"));
        assert_eq!(
            violations(level, ours),
            violations(level, theirs),
            "{name}\n  node: {ours}\n  API server: {theirs}"
        );
        assert!(violations(level, ours).is_some_and(|v| !v.is_empty()), "{ours}");
        assert!(daemon.pod(name).is_none(), "refused pod {name} is not run");
    }
    let (ok, table, _) = daemon.cli(&["get", "pods"]);
    assert!(ok && table.contains("violates PodSecurity"), "get pods shows the refusal:\n{table}");
    let tight = daemon.pod("tight").unwrap();
    assert_eq!(runtime_sandboxes(&tight.uid).len(), 1);
    let (accepted, _, err) = {
        let pod = std::env::temp_dir().join(format!("pss-{}-tight.yaml", std::process::id()));
        std::fs::write(
            &pod,
            tight_pod("tight").replace("name: tight", &format!("name: tight\n  namespace: {namespace}")),
        )
        .unwrap();
        let result = kubectl(&["create", "--dry-run=server", "-f", &path_str(&pod)]);
        std::fs::remove_file(&pod).unwrap();
        result
    };
    assert!(accepted, "the API server admits the pod the node runs: {err}");
    refused
}

#[test]
fn a_pod_already_running_survives_an_edit_the_policy_refuses_and_warn_only_logs() {
    let _serial = serial();
    let mut daemon = Daemon::new("pss_keep");
    daemon.extra = vec!["--pod-security-enforce=baseline".into(), "--pod-security-warn=restricted".into()];
    daemon.write_manifest("web.yaml", &shell_pod("web", "sleep 3600", "").replace("  hostNetwork: true\n", ""));
    daemon.start();
    let before = daemon.wait_for_running("web");
    daemon.wait_until("the restricted warning is logged", Duration::from_secs(10), |d| {
        d.log().contains("would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false")
    });
    // An edit that asks for the host's network: refused, the running version kept.
    daemon.write_manifest("web.yaml", &shell_pod("web", "sleep 3601", ""));
    daemon.wait_until("the edit is refused", Duration::from_secs(30), |d| {
        d.status().manifest_errors.iter().any(|e| e.contains("host namespaces (hostNetwork=true)"))
    });
    std::thread::sleep(Duration::from_secs(2));
    let after = daemon.pod("web").expect("the last good version still runs");
    assert_eq!(after.uid, before.uid);
    assert_eq!(running_container_ids(&after.uid), running_container_ids(&before.uid), "not restarted");
}

#[test]
fn a_manifest_others_can_change_is_refused_until_its_mode_is_fixed() {
    let _serial = serial();
    let mut daemon = Daemon::new("strict_modes");
    let chmod =
        |path: &std::path::Path, mode| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    let a = daemon.write_manifest("a.yaml", &shell_pod("a", "sleep 3600", ""));
    chmod(&a, 0o644);
    daemon.start();
    let running = daemon.wait_for_running("a");
    let b = daemon.manifests.join("b.yaml");
    std::fs::write(&b, shell_pod("b", "sleep 3600", "")).unwrap();
    chmod(&b, 0o666);
    chmod(&a, 0o664);
    daemon.wait_until("both files are refused", Duration::from_secs(30), |d| {
        d.status().manifest_errors.iter().filter(|e| e.contains("not trusted")).count() == 2
    });
    let (_, table, _) = daemon.cli(&["get", "pods"]);
    assert!(
        table.contains("b.yaml: not trusted: file") && table.contains("writable by group and others (mode 0666)"),
        "{table}"
    );
    assert!(daemon.pod("b").is_none(), "an untrusted manifest does not run");
    let kept = daemon.pod("a").expect("a pod that ran before keeps running");
    assert_eq!(running_container_ids(&kept.uid), running_container_ids(&running.uid));
    chmod(&a, 0o644);
    chmod(&b, 0o600);
    daemon.wait_for_running("b");
    daemon.wait_until("no refusal is left", Duration::from_secs(30), |d| d.status().manifest_errors.is_empty());
    assert_eq!(daemon.pod("a").unwrap().uid, running.uid);

    // With strict modes off, staticlet reads what kubelet would.
    daemon.stop();
    chmod(&b, 0o666);
    daemon.extra = vec!["--static-pod-path-strict-modes=false".into()];
    daemon.start();
    daemon.wait_for_running("b");
    assert!(daemon.status().manifest_errors.is_empty());
}

/// Deletes the test's namespace when the test ends.
struct NamespaceCleanup(String);

impl Drop for NamespaceCleanup {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}
