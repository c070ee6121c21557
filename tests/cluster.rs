//! Mirror pods on a real control plane (`hack/testenv up --cluster`: etcd, kube-apiserver with
//! Node,RBAC and NodeRestriction, kube-controller-manager), driven and checked with real kubectl.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn kubectl_json(args: &[&str]) -> Option<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let (ok, out, _) = kubectl(&all);
    ok.then(|| serde_json::from_str(&out).ok()).flatten()
}

/// A daemon with this node's own credentials, as a kubelet would have.
fn cluster_daemon(test: &str) -> Daemon {
    assert!(
        std::env::var("KUBECONFIG").is_ok(),
        "KUBECONFIG is not set: run `hack/testenv up --cluster` and eval its env"
    );
    let mut d = Daemon::new(test);
    let kubeconfig = node_kubeconfig(&d.node);
    d.extra = vec![format!("--kubeconfig={kubeconfig}"), "--node-ip=127.0.0.1".into()];
    d
}

/// `kubectl get events` about one object (a pod or the Node) in namespace default.
fn events_about(name: &str) -> String {
    kubectl(&["get", "events", "-n", "default", "--field-selector", &format!("involvedObject.name={name}")]).1
}

fn mirror(d: &Daemon, name: &str) -> Option<Value> {
    kubectl_json(&["get", "pod", &format!("{name}-{}", d.node), "-n", "default"])
}

fn wait_mirror(d: &Daemon, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    d.wait_until(&format!("mirror of {name} {what}"), Duration::from_secs(60), |d| {
        mirror(d, name).is_some_and(|m| check(&m))
    });
    mirror(d, name).unwrap()
}

fn running(m: &Value) -> bool {
    m["status"]["phase"] == "Running" && m["status"]["containerStatuses"][0]["ready"] == true
}

#[test]
fn node_registers_with_ready_condition_runtime_and_renewed_lease() {
    let _serial = serial();
    let mut d = cluster_daemon("node");
    let _cleanup = NodeCleanup(d.node.clone());
    d.start();
    d.wait_until("the node is Ready", Duration::from_secs(30), |d| {
        kubectl_json(&["get", "node", &d.node]).is_some_and(|n| {
            n["status"]["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    });
    let node = kubectl_json(&["get", "node", &d.node]).unwrap();
    assert!(node["status"]["nodeInfo"]["containerRuntimeVersion"].as_str().unwrap().starts_with("containerd://"));
    assert_eq!(node["status"]["addresses"][0]["address"], "127.0.0.1");
    assert!(node["status"]["capacity"]["cpu"].as_str().is_some());
    let lease = |d: &Daemon| kubectl_json(&["get", "lease", "-n", "kube-node-lease", &d.node]);
    d.wait_until("the lease exists", Duration::from_secs(30), |d| lease(d).is_some());
    let first = lease(&d).unwrap()["spec"]["renewTime"].clone();
    d.wait_until("the lease is renewed", Duration::from_secs(30), |d| lease(d).unwrap()["spec"]["renewTime"] != first);
}

#[test]
fn mirror_pod_shows_the_static_pod_with_labels_owner_and_true_status() {
    let _serial = serial();
    let mut d = cluster_daemon("mirror");
    let _cleanup = NodeCleanup(d.node.clone());
    d.start();
    d.write_manifest("web.yaml", &web_pod("static-web", free_port()));
    let local = d.wait_for_running("static-web");
    let m = wait_mirror(&d, "static-web", "is Running", running);
    let annotations = &m["metadata"]["annotations"];
    assert_eq!(annotations["kubernetes.io/config.mirror"], local.uid);
    assert_eq!(annotations["kubernetes.io/config.hash"], local.uid);
    assert_eq!(annotations["kubernetes.io/config.source"], "file");
    let node_uid = kubectl_json(&["get", "node", &d.node]).unwrap()["metadata"]["uid"].clone();
    let owners = m["metadata"]["ownerReferences"].as_array().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (&owners[0]["kind"], &owners[0]["name"], &owners[0]["uid"]),
        (&"Node".into(), &d.node.clone().into(), &node_uid)
    );
    assert_eq!(owners[0]["controller"], true);

    let (ok, out, err) = kubectl(&[
        "get",
        "pods",
        "-l",
        "role=myrole",
        "-n",
        "default",
        "--field-selector",
        &format!("spec.nodeName={}", d.node),
    ]);
    assert!(ok, "{err}");
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], [format!("static-web-{}", d.node).as_str(), "1/1", "Running", "0"], "{out}");
    let (_, out, _) = kubectl(&["describe", "pod", &format!("static-web-{}", d.node)]);
    assert!(out.contains(&format!("Controlled By:  Node/{}", d.node)), "{out}");
    let status = &m["status"];
    for condition in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(
            status["conditions"].as_array().unwrap().iter().any(|c| c["type"] == condition && c["status"] == "True"),
            "{condition}"
        );
    }
    assert!(status["containerStatuses"][0]["containerID"].as_str().unwrap().starts_with("containerd://"));
    assert_eq!(status["qosClass"], "BestEffort");
    assert!(status["startTime"].is_string());

    // Events reach kubectl.
    d.wait_until("Started is an event of the mirror", Duration::from_secs(30), |d| {
        let out = events_about(&format!("static-web-{}", d.node));
        out.contains("Started") && out.contains("Created") && out.contains("Pulled")
    });
}

#[test]
fn deleted_mirror_is_recreated_at_once_and_keeps_restarts_and_the_static_pod() {
    let _serial = serial();
    let mut d = cluster_daemon("recreate");
    let _cleanup = NodeCleanup(d.node.clone());
    d.start();
    d.write_manifest("web.yaml", &web_pod("static-web", free_port()));
    let local = d.wait_for_running("static-web");
    let container = running_container_ids(&local.uid);
    block_on(async { runtime().stop_container(&container[0], Duration::ZERO).await.unwrap() });
    let m = wait_mirror(&d, "static-web", "shows one restart", |m| {
        running(m) && m["status"]["containerStatuses"][0]["restartCount"] == 1
    });
    let first_uid = m["metadata"]["uid"].clone();
    let containers = running_container_ids(&local.uid);

    let (ok, _, err) = kubectl(&["delete", "pod", &format!("static-web-{}", d.node), "--wait=false"]);
    assert!(ok, "{err}");
    let back =
        wait_mirror(&d, "static-web", "is back with a new UID", |m| m["metadata"]["uid"] != first_uid && running(m));
    assert_eq!(back["status"]["containerStatuses"][0]["restartCount"], 1, "RESTARTS carries over");
    assert_eq!(running_container_ids(&local.uid), containers, "deleting a mirror never touches the static pod");
}

#[test]
fn edited_labels_on_a_mirror_are_reverted() {
    let _serial = serial();
    let mut d = cluster_daemon("labels");
    let _cleanup = NodeCleanup(d.node.clone());
    d.start();
    d.write_manifest("web.yaml", &web_pod("static-web", free_port()));
    wait_mirror(&d, "static-web", "is Running", running);
    let (ok, _, err) = kubectl(&["label", "pod", &format!("static-web-{}", d.node), "role=hijacked", "--overwrite"]);
    assert!(ok, "{err}");
    wait_mirror(&d, "static-web", "has its label back", |m| m["metadata"]["labels"]["role"] == "myrole" && running(m));
}

#[test]
fn crash_loop_and_removal_show_through_the_api() {
    let _serial = serial();
    let mut d = cluster_daemon("crash");
    let _cleanup = NodeCleanup(d.node.clone());
    d.start();
    d.write_manifest("crash.yaml", &shell_pod("crash", "exit 1", ""));
    let m = wait_mirror(&d, "crash", "is in CrashLoopBackOff", |m| {
        m["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    assert!(m["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap() >= 1);
    let (_, out, _) = kubectl(&["get", "pod", &format!("crash-{}", d.node)]);
    assert!(out.contains("CrashLoopBackOff"), "{out}");
    d.wait_until("a BackOff event is posted", Duration::from_secs(30), |d| {
        let out = events_about(&format!("crash-{}", d.node));
        out.contains("BackOff")
    });

    std::fs::remove_file(d.manifests.join("crash.yaml")).unwrap();
    d.wait_until("the mirror is deleted", Duration::from_secs(30), |d| mirror(d, "crash").is_none());
}

#[test]
fn stopping_static_pod_shows_terminating_in_kubectl_until_it_is_gone() {
    let _serial = serial();
    let mut d = cluster_daemon("terminating");
    let _cleanup = NodeCleanup(d.node.clone());
    d.start();
    // Ignores SIGTERM, so it takes its whole 5 s grace period to stop.
    let manifest = shell_pod("slow", "trap '' TERM; while true; do sleep 0.2; done", "")
        .replace("terminationGracePeriodSeconds: 2", "terminationGracePeriodSeconds: 5");
    d.write_manifest("slow.yaml", &manifest);
    wait_mirror(&d, "slow", "is Running", running);
    std::fs::remove_file(d.manifests.join("slow.yaml")).unwrap();
    d.wait_until("kubectl shows Terminating", Duration::from_secs(30), |d| {
        let (_, out, _) = kubectl(&["get", "pod", &format!("slow-{}", d.node)]);
        out.contains("Terminating")
    });
    d.wait_until("the mirror is gone", Duration::from_secs(30), |d| mirror(d, "slow").is_none());
}

#[test]
fn refused_mirror_keeps_the_static_pod_running_and_says_why() {
    let _serial = serial();
    let mut d = cluster_daemon("refused");
    let _cleanup = NodeCleanup(d.node.clone());
    let policy = format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: no-forbidden-{n}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {{apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["pods"]}}
  validations:
  - expression: "!has(object.metadata.labels) || !('forbidden-{n}' in object.metadata.labels)"
    message: "pods labelled forbidden-{n} are not allowed here"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: no-forbidden-{n}}}
spec:
  policyName: no-forbidden-{n}
  validationActions: [Deny]
"#,
        n = d.node
    );
    let file = d.dir.path().join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    let (ok, _, err) = kubectl(&["apply", "-f", &file.display().to_string()]);
    assert!(ok, "{err}");
    let manifest = shell_pod("denied", "sleep 3600", "")
        .replace("labels: {role: test}", &format!("labels: {{role: test, forbidden-{}: 'yes'}}", d.node));
    // The policy is enforced once it reaches the API server's admission cache: from then on a
    // server-side dry run of a pod with the forbidden label is refused with its message.
    let probe = d.dir.path().join("probe.yaml");
    std::fs::write(&probe, manifest.replace("name: denied", "name: probe")).unwrap();
    d.wait_until("the API server refuses a dry run of a forbidden pod", Duration::from_secs(30), |d| {
        let (ok, _, err) =
            kubectl(&["create", "--dry-run=server", "-n", "default", "-f", &probe.display().to_string()]);
        !ok && err.contains(&format!("pods labelled forbidden-{} are not allowed here", d.node))
    });
    d.start();
    d.write_manifest("denied.yaml", &manifest);
    d.wait_for_running("denied");
    d.wait_until("the refusal shows in staticlet get pods", Duration::from_secs(30), |d| {
        d.pod("denied")
            .and_then(|p| p.mirror_error)
            .is_some_and(|e| e.contains(&format!("forbidden-{} are not allowed", d.node)))
    });
    let (_, out, _) = d.cli(&["get", "pods"]);
    assert!(out.contains("no mirror pod"), "{out}");
    assert!(mirror(&d, "denied").is_none());
    d.wait_until("a Node event names the refusal", Duration::from_secs(30), |d| {
        let out = events_about(&d.node);
        out.contains("FailedMirrorPod")
    });
    assert!(d.log().contains("mirror pod sync failed"), "{}", d.log());
    // A policy's denial is 422 Invalid (its default reason); the pod still counts as one mirror
    // the node keeps trying to have.
    assert!(d.metric(r#"staticlet_mirror_refusals_total{code="422"}"#) >= 1.0);
    assert_eq!(d.metric("kubelet_mirror_pods"), 1.0);
    let _ = kubectl(&["delete", "-f", &file.display().to_string()]);
}

#[test]
fn node_credentials_cannot_touch_another_nodes_pods() {
    let _serial = serial();
    let d = cluster_daemon("rights");
    let _cleanup = NodeCleanup(d.node.clone());
    let kubeconfig = node_kubeconfig(&d.node);
    let pod = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"intruder","namespace":"default","annotations":{{"kubernetes.io/config.mirror":"x"}}}},"spec":{{"nodeName":"someone-else","containers":[{{"name":"c","image":"{}"}}]}}}}"#,
        image()
    );
    let file = d.dir.path().join("intruder.json");
    std::fs::write(&file, pod).unwrap();
    let (ok, _, err) = kubectl(&["--kubeconfig", &kubeconfig, "create", "-f", &file.display().to_string()]);
    assert!(!ok, "a node must not create pods bound to another node");
    assert!(err.contains("Forbidden") || err.contains("forbidden"), "{err}");
}

#[test]
fn deleted_node_is_registered_again_and_its_mirrors_come_back() {
    let _serial = serial();
    let mut d = cluster_daemon("nodegone");
    let _cleanup = NodeCleanup(d.node.clone());
    d.start();
    d.write_manifest("web.yaml", &web_pod("static-web", free_port()));
    let m = wait_mirror(&d, "static-web", "is Running", running);
    let node_uid = kubectl_json(&["get", "node", &d.node]).unwrap()["metadata"]["uid"].clone();
    let (ok, _, err) = kubectl(&["delete", "node", &d.node, "--wait=false"]);
    assert!(ok, "{err}");
    d.wait_until("the node is registered again", Duration::from_secs(60), |d| {
        kubectl_json(&["get", "node", &d.node]).is_some_and(|n| n["metadata"]["uid"] != node_uid)
    });
    let new_uid = kubectl_json(&["get", "node", &d.node]).unwrap()["metadata"]["uid"].clone();
    wait_mirror(&d, "static-web", "is owned by the new node", |n| {
        n["metadata"]["ownerReferences"][0]["uid"] == new_uid
            && n["metadata"]["uid"] != m["metadata"]["uid"]
            && running(n)
    });
}

/// A loopback TCP relay to the API server that the test can cut: the API server "goes away"
/// for staticlet (every connection is dropped and new ones are refused) without disturbing the
/// other tests' control plane.
struct Relay {
    port: u16,
    on: std::sync::Arc<std::sync::atomic::AtomicBool>,
    live: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    fn start(upstream: String) -> Self {
        use std::sync::{
            Arc, Mutex,
            atomic::{AtomicBool, Ordering},
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let on = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (on2, live2) = (on.clone(), live.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if !on2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&upstream) else { continue };
                live2.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { port, on, live }
    }

    fn set(&self, on: bool) {
        self.on.store(on, std::sync::atomic::Ordering::SeqCst);
        if !on {
            for stream in self.live.lock().unwrap().drain(..) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

#[test]
fn api_server_away_never_holds_up_static_pods_and_everything_converges_when_it_returns() {
    let _serial = serial();
    let mut d = Daemon::new("apiaway");
    let _cleanup = NodeCleanup(d.node.clone());
    let kubeconfig = std::fs::read_to_string(node_kubeconfig(&d.node)).unwrap();
    let server = kubeconfig.lines().find_map(|l| l.trim().strip_prefix("server: ")).unwrap().trim().to_owned();
    let upstream = server.trim_start_matches("https://").to_owned();
    let relay = Relay::start(upstream.clone());
    let relayed = d.dir.path().join("kubeconfig");
    std::fs::write(&relayed, kubeconfig.replace(&server, &format!("https://127.0.0.1:{}", relay.port))).unwrap();
    d.extra = vec![format!("--kubeconfig={}", relayed.display()), "--node-ip=127.0.0.1".into()];

    // Away from the start: the pod runs all the same.
    d.start();
    d.write_manifest("web.yaml", &web_pod("static-web", free_port()));
    let local = d.wait_for_running("static-web");
    assert!(kubectl_json(&["get", "node", &d.node]).is_none());

    relay.set(true);
    wait_mirror(&d, "static-web", "appears once the API server is back", running);
    let containers = running_container_ids(&local.uid);
    assert_eq!(containers.len(), 1, "the pod's container runs before the API server goes away");

    // Away mid-flight: a removed manifest still stops its pod at once...
    relay.set(false);
    std::fs::remove_file(d.manifests.join("web.yaml")).unwrap();
    d.wait_until("the pod is stopped locally", Duration::from_secs(30), |_| runtime_sandboxes(&local.uid).is_empty());
    let left: Vec<String> = runtime_containers(&local.uid).into_iter().map(|c| c.id).collect();
    assert!(!containers.iter().any(|c| left.contains(c)), "its container is gone from the runtime: {left:?}");
    assert!(mirror(&d, "static-web").is_some(), "the mirror is still there: staticlet could not reach the API server");
    // ...and the mirror goes when the API server is back.
    relay.set(true);
    d.wait_until("the orphan mirror is deleted", Duration::from_secs(60), |d| mirror(d, "static-web").is_none());
}

fn condition(m: &Value, kind: &str) -> Value {
    let conditions = m["status"]["conditions"].as_array().cloned().unwrap_or_default();
    conditions.into_iter().find(|c| c["type"] == kind).map(|c| c["status"].clone()).unwrap_or(Value::Null)
}

#[test]
fn readiness_and_liveness_probes_show_in_the_mirror_and_kubectl_with_unhealthy_events() {
    let _serial = serial();
    let mut d = cluster_daemon("probes");
    let _cleanup = NodeCleanup(d.node.clone());
    d.start();
    // Ready from 1 s to 4 s after each start, then not; alive until 7 s, then restarted.
    let script = "sleep 1; touch /tmp/ready /tmp/alive; sleep 3; rm /tmp/ready; sleep 3; rm /tmp/alive; sleep 3600";
    let manifest = shell_pod("probed", script, "")
        + "    readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 1, failureThreshold: 1}\n    \
           livenessProbe: {exec: {command: [cat, /tmp/alive]}, initialDelaySeconds: 2, periodSeconds: 1, failureThreshold: 2}\n";
    d.write_manifest("probed.yaml", &manifest);

    wait_mirror(&d, "probed", "is Ready", |m| condition(m, "Ready") == "True" && running(m));
    let m = wait_mirror(&d, "probed", "is running but not Ready", |m| {
        condition(m, "Ready") == "False" && m["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    assert_eq!(condition(&m, "ContainersReady"), "False");
    let (_, out, _) = kubectl(&["get", "pod", &format!("probed-{}", d.node)]);
    assert!(out.lines().any(|l| l.contains("0/1") && l.contains("Running")), "kubectl shows READY 0/1:\n{out}");

    wait_mirror(&d, "probed", "restarted by its liveness probe", |m| {
        m["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(1)
    });
    d.wait_until("Unhealthy and Killing events", Duration::from_secs(30), |d| {
        let out = events_about(&format!("probed-{}", d.node));
        out.contains("Unhealthy")
            && out.contains("Readiness probe failed")
            && out.contains("Liveness probe failed")
            && out.contains("failed liveness probe, will be restarted")
    });
}

#[test]
fn init_containers_show_as_init_status_and_init_container_statuses_in_the_mirror() {
    let _serial = serial();
    let mut d = cluster_daemon("initmirror");
    let _cleanup = NodeCleanup(d.node.clone());
    d.start();
    let init = format!(
        "  initContainers:\n  - {{name: wait, image: {image}, command: [sh, -c, 'sleep 4']}}\n",
        image = image()
    );
    let manifest = shell_pod("staged", "sleep 3600", &init);
    d.write_manifest("staged.yaml", &manifest);
    let m = wait_mirror(&d, "staged", "is initializing", |m| condition(m, "Initialized") == "False");
    assert_eq!(m["status"]["initContainerStatuses"][0]["name"], "wait");
    assert_eq!(m["status"]["containerStatuses"][0]["state"]["waiting"]["reason"], "PodInitializing");
    let (_, out, _) = kubectl(&["get", "pod", &format!("staged-{}", d.node)]);
    assert!(out.contains("Init:0/1"), "kubectl shows Init:0/1:\n{out}");

    let m = wait_mirror(&d, "staged", "is initialized and running", |m| {
        condition(m, "Initialized") == "True" && running(m)
    });
    let init_status = &m["status"]["initContainerStatuses"][0];
    assert_eq!(init_status["state"]["terminated"]["exitCode"], 0);
    assert_eq!(init_status["state"]["terminated"]["reason"], "Completed");
    assert_eq!(init_status["ready"], true);
}

#[test]
fn node_registers_with_its_labels_taints_and_a_semver_version_and_keeps_what_an_admin_adds() {
    let _serial = serial();
    let mut d = cluster_daemon("node-labels");
    let _cleanup = NodeCleanup(d.node.clone());
    d.extra.extend([
        "--node-labels=example.com/rack=r1,node.kubernetes.io/exclude-from-external-load-balancers=".into(),
        "--register-with-taints=example.com/dedicated=cp:NoExecute".into(),
    ]);
    d.start();
    let node = |d: &Daemon| kubectl_json(&["get", "node", &d.node]);
    d.wait_until("the node is registered", Duration::from_secs(30), |d| node(d).is_some());
    let n = node(&d).unwrap();
    assert_eq!(n["metadata"]["labels"]["example.com/rack"], "r1");
    let taints = n["spec"]["taints"].as_array().unwrap();
    assert!(
        taints.iter().any(|t| t["key"] == "example.com/dedicated" && t["value"] == "cp" && t["effect"] == "NoExecute")
    );
    assert!(taints.iter().any(|t| t["key"] == "staticlet.io/static-pods-only"));
    let version = n["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap().to_owned();
    assert!(version.starts_with("v1.35.8+staticlet."), "{version}");
    let (_, wide, _) = kubectl(&["get", "node", &d.node, "--no-headers"]);
    assert!(wide.contains(&version), "kubectl shows the version: {wide}");

    // As kubeadm's mark-control-plane phase does; then a restart, which registers again.
    assert!(kubectl(&["label", "node", &d.node, "node-role.kubernetes.io/control-plane="]).0);
    assert!(kubectl(&["taint", "node", &d.node, "node-role.kubernetes.io/control-plane:NoSchedule"]).0);
    d.stop();
    d.start();
    let lease = |d: &Daemon| kubectl_json(&["get", "lease", "-n", "kube-node-lease", &d.node]);
    let renewed = lease(&d).unwrap()["spec"]["renewTime"].clone();
    d.wait_until("the restarted daemon renews the lease", Duration::from_secs(30), |d| {
        lease(d).unwrap()["spec"]["renewTime"] != renewed
    });
    let n = node(&d).unwrap();
    assert_eq!(n["metadata"]["labels"]["node-role.kubernetes.io/control-plane"], "", "{n}");
    let taints = n["spec"]["taints"].as_array().unwrap();
    assert!(taints.iter().any(|t| t["key"] == "node-role.kubernetes.io/control-plane"), "{n}");
}

#[test]
fn a_pod_bound_to_the_node_through_the_api_is_rejected_with_a_reason_and_never_run() {
    let _serial = serial();
    let mut d = cluster_daemon("bound");
    let _cleanup = NodeCleanup(d.node.clone());
    d.start();
    d.wait_until("the node is registered", Duration::from_secs(30), |d| {
        kubectl_json(&["get", "node", &d.node]).is_some()
    });
    let pod = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"bound-{node}","namespace":"default"}},
        "spec":{{"nodeName":"{node}","containers":[{{"name":"c","image":"{image}"}}]}}}}"#,
        node = d.node,
        image = image()
    );
    let manifest = d.dir.path().join("bound.json");
    std::fs::write(&manifest, pod).unwrap();
    let (ok, _, err) = kubectl(&["create", "-f", &path_str(&manifest)]);
    assert!(ok, "{err}");
    let name = format!("bound-{}", d.node);
    let get = |_: &Daemon| kubectl_json(&["get", "pod", &name, "-n", "default"]);
    d.wait_until("the bound pod is Failed", Duration::from_secs(30), |d| {
        get(d).is_some_and(|p| p["status"]["phase"] == "Failed")
    });
    let p = get(&d).unwrap();
    assert_eq!(p["status"]["reason"], "StaticPodsOnly");
    assert!(p["status"]["message"].as_str().unwrap().contains("runs static pods only"), "{p}");
    d.wait_until("a StaticPodsOnly event is posted", Duration::from_secs(30), |_| {
        events_about(&name).contains("StaticPodsOnly")
    });
    assert!(d.status().pods.is_empty(), "nothing runs it locally");
    let sandboxes = runtime_sandboxes(p["metadata"]["uid"].as_str().unwrap());
    assert!(sandboxes.is_empty(), "no sandbox for it: {sandboxes:?}");
    let _ = kubectl(&["delete", "pod", &name, "-n", "default", "--wait=false"]);
}
