//! The node's certificates against the real control plane (`hack/testenv up --cluster`):
//! kube-controller-manager signs with the cluster CA; CSRs are approved here with kubectl as
//! the admin, as an admin approves serving CSRs (kubeadm's bindings would have the controller
//! approve client ones).

mod common;

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command, sync::Arc, time::Duration};

use common::*;
use serde_json::Value;
use staticlet::{
    certs::{self, Bootstrap, ClientCerts, Serving, bootstrap::Bootstrapped, identity::CertInfo, kubeconfig},
    node_api::tls::{ServingCert, self_signed},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The CSRs `system:node:<node>` made for `signer`.
fn csrs_of(node: &str, signer: &str) -> Vec<Value> {
    csrs_by(&format!("system:node:{node}"), signer)
}

fn csrs_by(user: &str, signer: &str) -> Vec<Value> {
    let (ok, out, err) = kubectl(&["get", "csr", "-o", "json"]);
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["spec"]["username"] == user && c["spec"]["signerName"] == signer)
        .cloned()
        .collect()
}

/// Waits for the one CSR of `node` for `signer` and approves it as the admin, unless
/// kube-controller-manager did already (kubeadm's bindings have it approve a node's own client
/// CSRs); returns it.
async fn approve_the_csr(node: &str, signer: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let csrs = csrs_of(node, signer);
        assert!(csrs.len() <= 1, "more than one CSR: {csrs:#?}");
        if let [csr] = csrs.as_slice() {
            let approved =
                csr["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Approved");
            if !approved {
                let (ok, _, err) = kubectl(&["certificate", "approve", csr["metadata"]["name"].as_str().unwrap()]);
                assert!(ok, "{err}");
            }
            return csr.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no {signer} CSR from {node} within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deletes the CSRs a node (or the user given) made when the test ends, however it ends.
struct CsrCleanup(String);

impl Drop for CsrCleanup {
    fn drop(&mut self) {
        let user = if self.0.starts_with("system:") { self.0.clone() } else { format!("system:node:{}", self.0) };
        for signer in ["kubernetes.io/kubelet-serving", "kubernetes.io/kube-apiserver-client-kubelet"] {
            for csr in csrs_by(&user, signer) {
                let _ = kubectl(&["delete", "csr", csr["metadata"]["name"].as_str().unwrap(), "--wait=false"]);
            }
        }
    }
}

fn request_of(csr: &Value) -> (String, Vec<String>) {
    use base64::Engine as _;
    let pem = base64::engine::general_purpose::STANDARD.decode(csr["spec"]["request"].as_str().unwrap()).unwrap();
    certs::csr::requested(&pem).expect("a PEM certificate request")
}

/// The library's log in the test's output, shown when a test fails.
fn log() {
    let _ = tracing_subscriber::fmt().with_env_filter("staticlet=debug").with_test_writer().try_init();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn usages(csr: &Value) -> Vec<&str> {
    csr["spec"]["usages"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_serving_csr_is_written_served_and_loaded_again_without_asking() {
    log();
    let node = node_name("serving-csr");
    let _cleanup = CsrCleanup(node.clone());
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let client = kubeconfig::client(Path::new(&node_kubeconfig(&node)), None).await.unwrap();
    let (_, clients) = watch::channel(client);
    let (self_signed, _, _) = self_signed(&node, &[]).unwrap();
    let self_signed_der = self_signed.cert[0].clone();
    let slot = Arc::new(ServingCert::new(self_signed));
    let addresses = ["127.0.0.1".to_string(), "host-x".to_string()];

    let serving = Serving::start(&pki, &node, &addresses, &slot).unwrap();
    assert!(serving.current().is_none());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serving.run(slot.clone(), clients.clone(), shutdown.clone()));

    let csr = approve_the_csr(&node, "kubernetes.io/kubelet-serving").await;
    assert_eq!(usages(&csr), ["digital signature", "server auth"]);
    assert_eq!(csr["metadata"]["generateName"], "csr-");
    let (subject, names) = request_of(&csr);
    assert_eq!(subject, format!("O=system:nodes, CN=system:node:{node}"));
    assert_eq!(names, [format!("DNSName({node})"), "DNSName(host-x)".into(), "IPAddress(7f:00:00:01)".into()]);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while slot.current().cert[0] == self_signed_der {
        assert!(tokio::time::Instant::now() < deadline, "the signed certificate never reached the slot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    task.await.unwrap();

    let current = pki.join("kubelet-server-current.pem");
    let target = std::fs::read_link(&current).unwrap();
    let file_name = target.file_name().unwrap().to_string_lossy().into_owned();
    assert!(file_name.starts_with("kubelet-server-20") && file_name.ends_with(".pem"), "{file_name}");
    assert_eq!(mode(&target), 0o600);
    let text = std::fs::read_to_string(&current).unwrap();
    let info = CertInfo::from_pem(text.as_bytes(), "current").unwrap();
    assert_eq!(info.common_name, format!("system:node:{node}"));
    assert_eq!(info.dns_names, [node.clone(), "host-x".into()]);
    assert_eq!(slot.current().cert[0].as_ref(), x509_der(&text));

    // The next start serves the file at once and has nothing to ask for.
    let (placeholder, _, _) = self_signed_pair(&node);
    let slot = ServingCert::new(placeholder);
    let again = Serving::start(&pki, &node, &addresses, &slot).unwrap();
    assert_eq!(slot.current().cert[0].as_ref(), x509_der(&text));
    let plan = certs::deadline::plan(
        again.current().map(|p| &p.info),
        &certs::identity::Template::serving(&node, &addresses),
        jiff::Timestamp::now(),
        0.0,
    );
    assert!(plan.use_current && !plan.renew_now(jiff::Timestamp::now()), "{plan:?}");
    assert_eq!(csrs_of(&node, "kubernetes.io/kubelet-serving").len(), 1);
}

fn self_signed_pair(node: &str) -> (rustls::sign::CertifiedKey, String, String) {
    self_signed(node, &[]).unwrap()
}

fn x509_der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap().1.contents
}

/// `kubectl auth whoami` with `kubeconfig`: the user name and groups the API server sees.
fn whoami(kubeconfig: &Path) -> (String, Vec<String>) {
    let (ok, out, err) = kubectl(&["--kubeconfig", &path_str(kubeconfig), "auth", "whoami", "-o", "json"]);
    assert!(ok, "{err}");
    let review: Value = serde_json::from_str(&out).unwrap();
    let info = &review["status"]["userInfo"];
    let groups = info["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().to_owned()).collect();
    (info["username"].as_str().unwrap().to_owned(), groups)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrapped_client_certificate_is_issued_written_and_its_kubeconfig_says_who_the_node_is() {
    log();
    let node = node_name("client-csr");
    let _cleanup = CsrCleanup(node.clone());
    let dir = tempfile::tempdir().unwrap();
    let (pki, kubeconfig_path) = (dir.path().join("pki"), dir.path().join("etc/kubelet.conf"));
    // The node's own credentials stand in for a bootstrap token: both may create CSRs.
    let credentials = node_kubeconfig(&node);
    let bootstrap = Bootstrap::new(&kubeconfig_path, Path::new(&credentials), &pki, &node);

    let (outcome, csr) =
        tokio::join!(bootstrap.ensure(), approve_the_csr(&node, "kubernetes.io/kube-apiserver-client-kubelet"));
    let name = csr["metadata"]["name"].as_str().unwrap();
    assert_eq!(outcome.unwrap(), Bootstrapped::Issued { csr: name.into() });
    assert!(name.starts_with("node-csr-"), "kubelet's digest name: {name}");
    assert_eq!(usages(&csr), ["digital signature", "client auth"]);
    let (subject, names) = request_of(&csr);
    assert_eq!((subject.as_str(), names.len()), (format!("O=system:nodes, CN=system:node:{node}").as_str(), 0));

    let current = pki.join("kubelet-client-current.pem");
    assert_eq!(mode(&std::fs::read_link(&current).unwrap()), 0o600);
    assert!(!pki.join("kubelet-client.key.tmp").exists(), "the waiting key is gone once the pair is written");
    let written = std::fs::read_to_string(&kubeconfig_path).unwrap();
    assert!(written.contains(&format!("    client-certificate: {}\n", current.display())), "{written}");
    assert!(written.contains("current-context: default-context\n"), "{written}");
    assert_eq!(mode(&kubeconfig_path), 0o600);
    let (user, groups) = whoami(&kubeconfig_path);
    assert_eq!(user, format!("system:node:{node}"));
    assert!(groups.contains(&"system:nodes".to_string()), "{groups:?}");

    assert_eq!(bootstrap.ensure().await.unwrap(), Bootstrapped::StillValid);
    assert_eq!(csrs_of(&node, "kubernetes.io/kube-apiserver-client-kubelet").len(), 1, "no second CSR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_past_its_deadline_is_renewed_with_the_current_one_and_handed_out_as_a_new_client() {
    log();
    let node = node_name("client-rotation");
    let _cleanup = CsrCleanup(node.clone());
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let kubeconfig_path = node_kubeconfig(&node);
    let rotation = ClientCerts::new(Path::new(&kubeconfig_path), &pki, &node);
    let (client, in_use) = rotation.client().await.unwrap();
    let in_use = in_use.expect("the test node's kubeconfig has a client certificate");
    let (clients, mut new_clients) = watch::channel(client);
    new_clients.mark_unchanged();
    // As if its deadline had passed: the plan renews an expired certificate at once.
    let expired = CertInfo { not_after: jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1), ..in_use };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(rotation.run(Some(expired), clients, shutdown.clone()));

    let csr = approve_the_csr(&node, "kubernetes.io/kube-apiserver-client-kubelet").await;
    assert_eq!(csr["metadata"]["generateName"], "csr-");
    tokio::time::timeout(Duration::from_secs(30), new_clients.changed()).await.unwrap().unwrap();
    shutdown.cancel();
    task.await.unwrap();

    // The new client presents the new certificate, which says who the node is.
    let new_client = new_clients.borrow().clone();
    let review: k8s_openapi::api::authentication::v1::SelfSubjectReview =
        kube::Api::all(new_client).create(&Default::default(), &Default::default()).await.unwrap();
    let user = review.status.unwrap().user_info.unwrap().username.unwrap();
    assert_eq!(user, format!("system:node:{node}"));
    let current = pki.join("kubelet-client-current.pem");
    assert!(std::fs::read_link(&current).unwrap().starts_with(&pki));
    // And the next start takes the directory's pair over the kubeconfig's own.
    let again = ClientCerts::new(Path::new(&kubeconfig_path), &pki, &node);
    let (_, presented) = again.client().await.unwrap();
    let stored = CertInfo::from_pem(std::fs::read(&current).unwrap().as_slice(), "current").unwrap();
    assert_eq!(presented, Some(stored));
}

fn bootstrap_kubeconfig() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/testenv");
    let out = Command::new("bash").arg(script).args(["bootstrap-kubeconfig", "10m"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_daemon_with_only_a_bootstrap_kubeconfig_joins_registers_its_node_and_mirrors_its_pods() {
    let _serial = serial();
    assert!(
        std::env::var("KUBECONFIG").is_ok(),
        "KUBECONFIG is not set: run `hack/testenv up --cluster` and eval its env"
    );
    let mut d = Daemon::new("bootstrap");
    let bootstrap = bootstrap_kubeconfig();
    let token_id = bootstrap.rsplit_once("/bootstrap-").unwrap().1.trim_end_matches(".kubeconfig").to_owned();
    let token_user = format!("system:bootstrap:{token_id}");
    let _cleanup = (NodeCleanup(d.node.clone()), CsrCleanup(d.node.clone()), CsrCleanup(token_user.clone()));
    let kubeconfig = d.dir.path().join("etc/kubelet.conf");
    let pki = d.dir.path().join("pki");
    d.extra = vec![
        format!("--bootstrap-kubeconfig={bootstrap}"),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--cert-dir={}", pki.display()),
        "--node-ip=127.0.0.1".into(),
    ];
    d.write_manifest("web.yaml", &web_pod("static-web", free_port()));
    d.start();
    // The pod does not wait for the cluster.
    d.wait_for_running("static-web");
    let mirror = format!("static-web-{}", d.node);
    d.wait_until("the mirror pod is Running", Duration::from_secs(60), |_| {
        let (ok, out, _) = kubectl(&["get", "pod", "-n", "default", &mirror, "-o", "jsonpath={.status.phase}"]);
        ok && out == "Running"
    });
    let (ok, _, err) = kubectl(&["get", "node", &d.node]);
    assert!(ok, "{err}");
    let csrs = csrs_by(&token_user, "kubernetes.io/kube-apiserver-client-kubelet");
    let [csr] = csrs.as_slice() else { panic!("one CSR by the bootstrap token: {csrs:#?}") };
    assert!(csr["metadata"]["name"].as_str().unwrap().starts_with("node-csr-"), "{csr:#}");
    let (user, _) = whoami(&kubeconfig);
    assert_eq!(user, format!("system:node:{}", d.node));
    assert!(std::fs::read_link(pki.join("kubelet-client-current.pem")).is_ok());
    assert!(d.log().contains("TLS bootstrap done"), "{}", d.log());
}

/// A kubeconfig for system:node:<node> whose certificate, signed by the cluster CA, is 23 of its
/// 24 hours old: past kubelet's rotation deadline (70 to 90 % of its life), still valid.
fn kubeconfig_near_expiry(node: &str, dir: &Path) -> std::path::PathBuf {
    use base64::Engine as _;
    let pki = Path::new(&std::env::var("STATICLET_TESTENV_DIR").unwrap()).join("cluster/pki");
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(pki.join("ca.key")).unwrap()).unwrap();
    let ca_pem = std::fs::read_to_string(pki.join("ca.crt")).unwrap();
    let ca = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:nodes");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = std::time::SystemTime::now();
    params.not_before = (now - Duration::from_secs(23 * 3600)).into();
    params.not_after = (now + Duration::from_secs(3600)).into();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let server = std::fs::read_to_string(node_kubeconfig(node))
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: ").map(str::to_owned))
        .unwrap();
    let path = dir.join("kubelet.conf");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
             users:\n- name: u\n  user:\n    client-certificate-data: {crt}\n    client-key-data: {key}\n\
             contexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
            ca = b64(&ca_pem),
            crt = b64(&cert.pem()),
            key = b64(&key.serialize_pem()),
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_daemon_renews_a_client_certificate_past_its_deadline_and_keeps_mirroring_with_the_new_one() {
    let _serial = serial();
    let mut d = Daemon::new("client-renewal");
    let _cleanup = (NodeCleanup(d.node.clone()), CsrCleanup(d.node.clone()));
    let kubeconfig = kubeconfig_near_expiry(&d.node, d.dir.path());
    let pki = d.dir.path().join("pki");
    d.extra = vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--cert-dir={}", pki.display()),
        "--rotate-certificates".into(),
        "--node-ip=127.0.0.1".into(),
    ];
    d.start();
    // kubeadm's selfnodeclient binding has kube-controller-manager approve the renewal.
    d.wait_until("the renewed client certificate is in use", Duration::from_secs(60), |d| {
        d.log().contains("client certificate renewed")
    });
    let current = pki.join("kubelet-client-current.pem");
    let renewed = CertInfo::from_pem(std::fs::read(&current).unwrap().as_slice(), "current").unwrap();
    assert!(renewed.not_after > jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2), "a full new lifetime");
    let csrs = csrs_of(&d.node, "kubernetes.io/kube-apiserver-client-kubelet");
    assert_eq!(csrs.len(), 1, "one renewal CSR: {csrs:#?}");
    // The mirror sync goes on with the new client: a pod written now gets its mirror.
    d.write_manifest("web.yaml", &web_pod("after-renewal", free_port()));
    let mirror = format!("after-renewal-{}", d.node);
    d.wait_until("the new pod's mirror is Running", Duration::from_secs(60), |_| {
        let (ok, out, _) = kubectl(&["get", "pod", "-n", "default", &mirror, "-o", "jsonpath={.status.phase}"]);
        ok && out == "Running"
    });
}

#[test]
fn kubectl_logs_works_once_the_serving_csr_is_approved_with_no_restart() {
    let _serial = serial();
    let mut d = Daemon::new("serving-csr");
    let _cleanup = (NodeCleanup(d.node.clone()), CsrCleanup(d.node.clone()));
    let pki_dir = Path::new(&std::env::var("STATICLET_TESTENV_DIR").unwrap()).join("cluster/pki");
    d.extra = vec![
        format!("--kubeconfig={}", node_kubeconfig(&d.node)),
        format!("--cert-dir={}", d.dir.path().join("pki").display()),
        "--rotate-server-certificates".into(),
        format!("--client-ca-file={}", pki_dir.join("ca.crt").display()),
        "--node-ip=127.0.0.1".into(),
    ];
    d.write_manifest("talk.yaml", &shell_pod("talk", "echo said-once; sleep 3600", ""));
    d.start();
    let mirror = format!("talk-{}", d.node);
    d.wait_until("the mirror is Running", Duration::from_secs(60), |_| {
        kubectl(&["get", "pod", &mirror, "-o", "jsonpath={.status.phase}"]).1 == "Running"
    });
    // Self-signed until approved: the API server checks kubelet certificates against the CA.
    let (ok, _, err) = kubectl(&["logs", &mirror]);
    assert!(!ok && err.contains("x509"), "refused while self-signed: {err}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let csr = runtime.block_on(approve_the_csr(&d.node, "kubernetes.io/kubelet-serving"));
    let (_, names) = request_of(&csr);
    assert!(names.contains(&"IPAddress(7f:00:00:01)".to_owned()), "the node's address is a SAN: {names:?}");
    let pid = d.pid();
    d.wait_until("kubectl logs works through the signed certificate", Duration::from_secs(30), |_| {
        kubectl(&["logs", &mirror]).1 == "said-once\n"
    });
    assert_eq!(d.pid(), pid, "swapped in without a restart");
}
