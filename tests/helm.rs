//! The Helm chart in charts/staticlet, with helm v4 built from the Go module proxy (`hack/testenv
//! helm build`) against the test cluster (`hack/testenv up --cluster`): lint, a server-side dry
//! run of what it renders, and a real install after which a new node joins with nothing but the
//! bootstrap kubeconfig its NOTES print, then an upgrade (same token) and an uninstall (nothing
//! left). Every release, namespace, group and node name is this test run's own, and the mirror
//! pod policy is scoped to this test's node: the cluster is shared.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use common::*;
use serde_json::Value;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/staticlet");

/// helm, built once by hack/testenv (cached across runs).
fn helm_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/testenv");
        let out = Command::new("bash").arg(script).args(["helm", "build"]).output().unwrap();
        assert!(out.status.success(), "hack/testenv helm build: {}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// Helm's own directories (cache, config, data), under target/: nothing of a user's helm setup
/// is read or written.
fn helm_home() -> &'static Path {
    Path::new(concat!(env!("CARGO_TARGET_TMPDIR"), "/helm-home"))
}

fn helm(args: &[&str]) -> (bool, String, String) {
    let home = helm_home();
    let out = Command::new(helm_bin())
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn helm_ok(args: &[&str]) -> String {
    let (ok, out, err) = helm(args);
    assert!(ok, "helm {}:\n{out}\n{err}", args.join(" "));
    out
}

fn need_cluster() {
    assert!(
        std::env::var("KUBECONFIG").is_ok(),
        "KUBECONFIG is not set: run `hack/testenv up --cluster` and eval its env"
    );
}

/// The test API server's URL, from the admin kubeconfig.
fn api_server() -> String {
    std::fs::read_to_string(std::env::var("KUBECONFIG").unwrap())
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: ").map(str::to_owned))
        .expect("a server in KUBECONFIG")
}

/// The kubeconfig NOTES.txt prints for a node: the lines between its heredoc's first and last.
fn notes_kubeconfig(notes: &str) -> String {
    let start = "cat >/etc/kubernetes/bootstrap-kubelet.conf <<'EOF'\n";
    let (_, rest) = notes.split_once(start).unwrap_or_else(|| panic!("no bootstrap kubeconfig in:\n{notes}"));
    let (kubeconfig, _) = rest.split_once("\nEOF\n").unwrap_or_else(|| panic!("no end of the heredoc in:\n{notes}"));
    format!("{kubeconfig}\n")
}

/// The `kind/name` of each object of a YAML stream (kubectl's dry run prints the same).
fn kinds_and_names(yaml: &str) -> Vec<String> {
    let mut found = vec![];
    for doc in yaml.split("\n---") {
        let kind = doc.lines().find_map(|l| l.strip_prefix("kind: "));
        let name = doc.lines().skip_while(|l| *l != "metadata:").find_map(|l| l.strip_prefix("  name: "));
        if let (Some(kind), Some(name)) = (kind, name) {
            found.push(format!("{kind}/{name}"));
        }
    }
    found
}

#[test]
fn the_chart_lints_strict_and_its_schema_refuses_what_the_api_server_would() {
    let _serial = serial();
    let out = helm_ok(&["lint", "--strict", CHART]);
    assert!(out.contains("1 chart(s) linted, 0 chart(s) failed"), "{out}");
    // Every switch on, and the values that shape the policy's expressions.
    let out = helm_ok(&[
        "lint",
        "--strict",
        CHART,
        "--set",
        "mirrorPodPolicy.enabled=true,mirrorPodPolicy.nodeNamePattern=edge-.*,mirrorPodPolicy.namespaces={edge},bootstrapToken.ttl=24h",
    ]);
    assert!(out.contains("0 chart(s) failed"), "{out}");

    // The schema refuses, by name, what the API server would refuse later (or worse, accept).
    for (set, field) in [
        ("bootstrapToken.id=ABCDEF", "id"),
        ("bootstrapToken.secret=short", "secret"),
        ("bootstrapToken.ttl=1day", "ttl"),
        ("bootstrapGroup=system:nodes", "bootstrapGroup"),
        ("mirrorPodPolicy.validationActions={Deny,Warn}", "validationActions"),
        ("rbac.nodeBootstraper=true", "nodeBootstraper"),
    ] {
        let (ok, out, err) = helm(&["template", "x", CHART, "--set", set]);
        assert!(!ok, "{set} was accepted:\n{out}");
        assert!(err.contains("schema") && err.contains(field), "{set}: {err}");
    }

    // Where kubeadm made the bindings: all three off, no ClusterRoleBinding at all.
    let out = helm_ok(&[
        "template",
        "x",
        CHART,
        "--set",
        "rbac.nodeBootstrapper=false,rbac.autoApproveNodeClient=false,rbac.autoApproveRenewal=false",
    ]);
    let objects = kinds_and_names(&out);
    assert!(objects.iter().all(|o| !o.starts_with("ClusterRoleBinding/")), "{objects:?}");
    assert_eq!(objects.len(), 1, "only the token Secret: {objects:?}");
    // The defaults: three bindings and the token, a stable id (derived from the release), a
    // random secret, no policy.
    let out = helm_ok(&["template", "x", CHART, "--namespace", "ops"]);
    let objects = kinds_and_names(&out);
    assert_eq!(objects.len(), 4, "{objects:?}");
    let again = helm_ok(&["template", "x", CHART, "--namespace", "ops"]);
    assert_eq!(kinds_and_names(&again), objects, "the token's id is derived, not random");
    let secret_of = |yaml: &str| yaml.lines().find_map(|l| l.trim().strip_prefix("token-secret: ")).unwrap().to_owned();
    assert_ne!(secret_of(&out), secret_of(&again), "a new token's secret is random");
    assert_eq!(secret_of(&out).len(), 18, "16 characters, quoted: {}", secret_of(&out));
}

#[test]
fn everything_the_chart_renders_passes_a_server_side_dry_run() {
    let _serial = serial();
    need_cluster();
    let release = format!("t-helm-dry-{}", std::process::id());
    let group = format!("system:bootstrappers:staticlet:{release}");
    let set = format!(
        "bootstrapGroup={group},bootstrapToken.ttl=2h,mirrorPodPolicy.enabled=true,\
         mirrorPodPolicy.nodeNamePattern=nothing-{release}-.+,mirrorPodPolicy.namespaces={{default,kube-system}},\
         mirrorPodPolicy.validationActions={{Warn,Audit}},mirrorPodPolicy.allow.hostNetwork=false,\
         mirrorPodPolicy.allow.hostPathPrefixes={{/etc/kubernetes,/var/lib/etcd/}},\
         mirrorPodPolicy.allow.capabilities={{NET_BIND_SERVICE}}"
    );
    // The server's own version, so the chart's kubeVersion is checked against it.
    let rendered = helm_ok(&["template", &release, CHART, "--kube-version", "1.35.8", "--set", &set]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, &rendered).unwrap();
    let (ok, out, err) = kubectl(&["apply", "--dry-run=server", "-f", &path_str(&file)]);
    assert!(ok, "{err}\n--- rendered ---\n{rendered}");
    let objects = kinds_and_names(&rendered);
    assert_eq!(objects.len(), 6, "3 bindings, the token, the policy and its binding: {objects:?}");
    // kubectl names them `kind.group/name` (`secret/name` for the core group).
    for object in &objects {
        let (kind, name) = object.split_once('/').unwrap();
        let kind = kind.to_lowercase();
        let done = format!("/{name} created (server dry run)");
        assert!(
            out.lines()
                .any(|l| (l.starts_with(&format!("{kind}.")) || l.starts_with(&format!("{kind}/")))
                    && l.ends_with(&done)),
            "{object} not created by the dry run:\n{out}"
        );
    }
    // A dry run creates nothing.
    let (_, out, _) = kubectl(&["get", "clusterrolebinding", "-l", &format!("app.kubernetes.io/instance={release}")]);
    assert!(!out.contains(&release), "{out}");
}

/// Removes whatever the install test made, however it ends.
struct Cleanup {
    release: String,
    node: String,
    users: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = helm(&["uninstall", &self.release, "-n", &self.release]);
        let _ = kubectl(&["delete", "namespace", &self.release, "--ignore-not-found", "--wait=false"]);
        let _ = kubectl(&["delete", "node", &self.node, "--ignore-not-found", "--wait=false"]);
        if let Some(list) = kubectl_json(&["get", "csr"]) {
            for csr in list["items"].as_array().into_iter().flatten() {
                if self.users.iter().any(|u| csr["spec"]["username"] == u.as_str()) {
                    let _ = kubectl(&["delete", "csr", csr["metadata"]["name"].as_str().unwrap(), "--wait=false"]);
                }
            }
        }
    }
}

fn kubectl_json(args: &[&str]) -> Option<Value> {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    let (ok, out, _) = kubectl(&args);
    if ok { serde_json::from_str(&out).ok() } else { None }
}

/// A server-side dry run of creating a mirror pod as `node` itself (impersonated), owned by its
/// Node as NodeRestriction wants: `spec` adds lines to the pod's spec, `container` fields to its
/// one container. Returns whether it was admitted, and kubectl's error.
fn mirror_dry_run(dir: &Path, node: &str, uid: &str, namespace: &str, spec: &str, container: &str) -> (bool, String) {
    let probe = dir.join("probe.yaml");
    std::fs::write(
        &probe,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: probe-{node}\n  namespace: {namespace}\n  \
             annotations: {{kubernetes.io/config.mirror: probe}}\n  ownerReferences:\n  - {{apiVersion: v1, kind: Node, \
             name: {node}, uid: {uid}, controller: true}}\nspec:\n  nodeName: {node}\n{spec}  containers:\n  \
             - {{name: c, image: {image}{container}}}\n",
            image = image()
        ),
    )
    .unwrap();
    let as_node = format!("system:node:{node}");
    let (ok, _, err) = kubectl(&[
        "create",
        "--dry-run=server",
        "--as",
        &as_node,
        "--as-group",
        "system:nodes",
        "--as-group",
        "system:authenticated",
        "-f",
        &path_str(&probe),
    ]);
    (ok, err)
}

/// The release's objects outside its namespace, as `kind/name` sorted.
fn release_objects(release: &str) -> Vec<String> {
    let selector = format!("app.kubernetes.io/instance={release}");
    let (ok, out, err) = kubectl(&[
        "get",
        "clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings",
        "-l",
        &selector,
        "-o",
        "name",
    ]);
    assert!(ok, "{err}");
    let (ok, secrets, err) = kubectl(&["get", "secrets", "-n", "kube-system", "-l", &selector, "-o", "name"]);
    assert!(ok, "{err}");
    let mut all: Vec<String> = out.lines().chain(secrets.lines()).map(str::to_owned).collect();
    all.sort();
    all
}

#[test]
fn a_node_joins_with_the_bootstrap_kubeconfig_of_the_notes_and_upgrade_keeps_the_token() {
    let _serial = serial();
    need_cluster();
    let release = format!("t-helm-{}", std::process::id());
    // Before the daemon, so it is dropped after it: the daemon is stopped before its Node goes.
    let mut cleanup = Cleanup { release: release.clone(), node: node_name("helm-join"), users: vec![] };
    let mut d = Daemon::new("helm-join");
    assert_eq!(d.node, cleanup.node);
    // A group of this release's own: kubeadm's bindings (which the test cluster has, for
    // kubeadm's group) do nothing for it, so the join proves the chart's bindings. The renewal
    // binding is for system:nodes, which kubeadm's binding covers already: off, as on a kubeadm
    // cluster.
    let group = format!("system:bootstrappers:staticlet:{release}");
    let set = format!(
        "cluster.server={server},bootstrapGroup={group},rbac.autoApproveRenewal=false,bootstrapToken.ttl=1h,\
         mirrorPodPolicy.enabled=true,mirrorPodPolicy.nodeNamePattern={node},mirrorPodPolicy.namespaces={{default}}",
        server = api_server(),
        node = d.node
    );
    let install = helm_ok(&["install", &release, CHART, "-n", &release, "--create-namespace", "--set", &set]);
    let kubeconfig_text = notes_kubeconfig(&install);

    // What the install made: two bindings, the token, the policy and its binding.
    let fullname = format!("staticlet-{release}");
    let token_id = kubeconfig_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .and_then(|t| t.split_once('.'))
        .map(|(id, _)| id.to_owned())
        .expect("a token in the kubeconfig");
    let token_user = format!("system:bootstrap:{token_id}");
    cleanup.users = vec![token_user.clone(), format!("system:node:{}", d.node)];
    assert_eq!(
        release_objects(&release),
        [
            format!("clusterrolebinding.rbac.authorization.k8s.io/{fullname}:node-autoapprove-bootstrap"),
            format!("clusterrolebinding.rbac.authorization.k8s.io/{fullname}:node-bootstrapper"),
            format!("secret/bootstrap-token-{token_id}"),
            format!("validatingadmissionpolicy.admissionregistration.k8s.io/{fullname}-mirror-pods"),
            format!("validatingadmissionpolicybinding.admissionregistration.k8s.io/{fullname}-mirror-pods"),
        ]
    );
    let secret = kubectl_json(&["get", "secret", "-n", "kube-system", &format!("bootstrap-token-{token_id}")])
        .expect("the token Secret");
    let field = |s: &Value, k: &str| {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::STANDARD.decode(s["data"][k].as_str().unwrap_or_default()).unwrap();
        String::from_utf8(b).unwrap()
    };
    assert_eq!(field(&secret, "auth-extra-groups"), group);
    let expiration = field(&secret, "expiration");
    assert!(expiration.ends_with('Z') && expiration.len() == 20, "RFC 3339 in UTC: {expiration}");
    // The CA came from the API server's kube-root-ca.crt (no cluster.caData was given).
    let ca = std::fs::read_to_string(cluster_pki().join("ca.crt")).unwrap();
    let ca_b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&ca)
    };
    assert!(kubeconfig_text.contains(&format!("certificate-authority-data: {ca_b64}\n")), "{kubeconfig_text}");

    // A new node with nothing but that kubeconfig.
    let bootstrap = d.dir.path().join("bootstrap-kubelet.conf");
    std::fs::write(&bootstrap, &kubeconfig_text).unwrap();
    let kubeconfig = d.dir.path().join("etc/kubelet.conf");
    d.extra = vec![
        format!("--bootstrap-kubeconfig={}", bootstrap.display()),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--cert-dir={}", d.dir.path().join("pki").display()),
        "--node-ip=127.0.0.1".into(),
    ];
    d.write_manifest("web.yaml", &web_pod("static-web", free_port()));
    d.start();
    let mirror = format!("static-web-{}", d.node);
    d.wait_until("the mirror pod is Running", Duration::from_secs(60), |_| {
        let (ok, out, _) = kubectl(&["get", "pod", "-n", "default", &mirror, "-o", "jsonpath={.status.phase}"]);
        ok && out == "Running"
    });
    let node = kubectl_json(&["get", "node", &d.node]).expect("the Node is registered");
    let csrs: Vec<Value> = kubectl_json(&["get", "csr"]).unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["spec"]["username"] == token_user.as_str())
        .cloned()
        .collect();
    let [csr] = csrs.as_slice() else { panic!("one CSR by the bootstrap token: {csrs:#?}") };
    assert!(csr["spec"]["groups"].as_array().unwrap().iter().any(|g| g == group.as_str()), "{csr:#}");
    let approval = csr["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Approved");
    assert_eq!(approval.unwrap()["reason"], "AutoApproved", "kube-controller-manager approved it: {csr:#}");
    assert!(d.log().contains("TLS bootstrap done"), "{}", d.log());

    // The policy, for this node only. Once it is in the API server's admission cache, a mirror
    // pod with hostPID from this node is refused (a server-side dry run as the node).
    let uid = node["metadata"]["uid"].as_str().unwrap().to_owned();
    let try_mirror = |namespace: &str, spec: &str, container: &str| {
        mirror_dry_run(d.dir.path(), &d.node, &uid, namespace, spec, container)
    };
    let mut last = String::new();
    d.wait_until("the policy refuses a hostPID mirror from the node", Duration::from_secs(30), |_| {
        let (ok, err) = try_mirror("default", "  hostPID: true\n", "");
        last = err;
        !ok && last.contains("may not use hostPID")
    });
    assert!(last.contains(&format!("{fullname}-mirror-pods")), "the refusal names the policy: {last}");
    // The other defaults, and what the values said: a plain mirror in default passes.
    let (ok, err) = try_mirror("default", "", "");
    assert!(ok, "a plain mirror pod is admitted: {err}");
    let (ok, err) = try_mirror("default", "", ", securityContext: {privileged: true}");
    assert!(!ok && err.contains("may not have privileged containers (mirrorPodPolicy.allow.privileged): c"), "{err}");
    let (ok, err) = try_mirror("default", "", ", securityContext: {capabilities: {add: [NET_ADMIN]}}");
    assert!(!ok && err.contains("may add only these capabilities: none"), "{err}");
    let (ok, err) = try_mirror("kube-system", "", "");
    assert!(!ok && err.contains("may only be in namespaces default"), "{err}");
    // The node runs such a pod anyway; its mirror is refused, and says so.
    d.write_manifest("pid.yaml", &shell_pod("host-pid", "sleep 3600", "  hostPID: true\n"));
    d.wait_for_running("host-pid");
    d.wait_until("the refusal shows in the daemon's status", Duration::from_secs(30), |d| {
        d.pod("host-pid").and_then(|p| p.mirror_error).is_some_and(|e| e.contains("may not use hostPID"))
    });
    let (ok, _, _) = kubectl(&["get", "pod", "-n", "default", &format!("host-pid-{}", d.node)]);
    assert!(!ok, "no mirror of the hostPID pod");

    // helm upgrade keeps the token: the same Secret, and NOTES print the same kubeconfig.
    let upgrade = helm_ok(&["upgrade", &release, CHART, "-n", &release, "--set", &set]);
    assert_eq!(notes_kubeconfig(&upgrade), kubeconfig_text);
    let after = kubectl_json(&["get", "secret", "-n", "kube-system", &format!("bootstrap-token-{token_id}")]).unwrap();
    assert_eq!(field(&after, "token-secret"), field(&secret, "token-secret"));
    assert_eq!(field(&after, "expiration"), expiration);
    assert_eq!(notes_kubeconfig(&helm_ok(&["get", "notes", &release, "-n", &release])), kubeconfig_text);
    let (ok, out, err) = kubectl(&["--kubeconfig", &path_str(&bootstrap), "auth", "whoami", "-o", "json"]);
    assert!(ok, "the token still authenticates: {err}");
    let review: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(review["status"]["userInfo"]["username"], token_user.as_str());

    // helm uninstall leaves nothing of the release behind.
    let out = helm_ok(&["uninstall", &release, "-n", &release]);
    assert!(out.contains("uninstalled"), "{out}");
    assert_eq!(release_objects(&release), Vec::<String>::new());
    let (ok, _, _) = kubectl(&["get", "secret", "-n", "kube-system", &format!("bootstrap-token-{token_id}")]);
    assert!(!ok, "the token Secret is gone");
    // The token authenticator reads Secrets through an informer: bounded, it catches up.
    d.wait_until("the token no longer authenticates", Duration::from_secs(30), |_| {
        !kubectl(&["--kubeconfig", &path_str(&bootstrap), "auth", "whoami"]).0
    });
}
