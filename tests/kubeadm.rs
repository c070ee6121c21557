//! `kubeadm init` with staticlet in the kubelet's place, and the control plane's life under it:
//! the real kubeadm v1.35.8 on a node of our own (`hack/testenv kubeadm-node`: network, mount
//! and UTS namespaces with their own containerd), staticlet run with exactly the flags kubeadm's
//! systemd drop-in gives a kubelet, restarted as systemd restarts it, and real kubectl.

mod common;

use std::time::{Duration, Instant};

use common::{
    kubeadm_node::{Agent, KubeadmNode, cmdline},
    serial,
};
use serde_json::Value;

const COMPONENTS: [&str; 4] = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"];
const MANIFESTS: &str = "/etc/kubernetes/manifests";

fn manifest(component: &str) -> String {
    format!("{MANIFESTS}/{component}.yaml")
}

/// A node with kubeadm's control plane up under staticlet, its four mirrors Running and ready.
fn control_plane() -> (KubeadmNode, String) {
    let mut node = KubeadmNode::fresh();
    node.start_agent(Agent::Staticlet);
    // Before `kubeadm init` writes its files, staticlet exits naming the missing one, and the
    // loop starts it again, as systemd does a kubelet's.
    node.wait_until("staticlet exited for lack of config.yaml and was started again", Duration::from_secs(30), |n| {
        n.agent_starts() >= 2 && n.agent_log().contains("/var/lib/kubelet/config.yaml")
    });
    let (ok, out, took) = node.init();
    assert!(ok, "kubeadm init failed after {took:?}:\n{out}\n--- staticlet ---\n{}", node.agent_log());
    eprintln!("kubeadm init with staticlet took {took:?}");
    wait_all_ready(&node);
    (node, out)
}

fn ready(mirror: &Value) -> bool {
    mirror["status"]["phase"] == "Running" && mirror["status"]["containerStatuses"][0]["ready"] == true
}

fn wait_all_ready(node: &KubeadmNode) {
    node.wait_until("the four control-plane mirrors are Running and ready", Duration::from_secs(120), |n| {
        COMPONENTS.iter().all(|c| n.mirror(c).is_some_and(|m| ready(&m)))
    });
}

fn readyz(node: &KubeadmNode) -> bool {
    node.kubectl(&["get", "--raw", "/readyz"]).1.trim() == "ok"
}

/// staticlet's metrics, from inside the node (its status API is on the node's loopback).
fn metrics(node: &KubeadmNode) -> String {
    String::from_utf8_lossy(&node.exec(&["curl", "-sf", "--max-time", "5", "http://127.0.0.1:10251/metrics"]).stdout)
        .into()
}

/// The value of the one series of `prober_probe_total` with these label values.
fn probe_count(metrics: &str, component: &str, node: &str, probe_type: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("prober_probe_total{"))
        .filter(|l| {
            l.contains(&format!("pod=\"{component}-{node}\"")) && l.contains(&format!("probe_type=\"{probe_type}\""))
        })
        .filter(|l| l.contains("result=\"successful\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The cgroup v1 cpu.shares of a process (its container's cgroup).
fn cpu_shares(pid: u32) -> Option<u64> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = cgroups.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers.split(',').any(|c| c == "cpu").then(|| (controllers.to_owned(), path.to_owned()))
    })?;
    std::fs::read_to_string(format!("/sys/fs/cgroup/{}{}/cpu.shares", path.0, path.1)).ok()?.trim().parse().ok()
}

/// kubelet's cpu.shares for a request: milli-CPU * 1024 / 1000, at least 2.
fn shares_for(request: &str) -> u64 {
    let millis: u64 = match request.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => (request.parse::<f64>().unwrap() * 1000.0) as u64,
    };
    (millis * 1024 / 1000).max(2)
}

#[test]
fn kubeadm_init_completes_with_staticlet_in_the_kubelets_place() {
    let _serial = serial();
    let (node, out) = control_plane();
    for line in [
        "[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"",
        "[kubelet-check] The kubelet is healthy",
        "[control-plane-check] kube-apiserver is healthy",
        "[mark-control-plane] Marking the node",
        "Your Kubernetes control-plane has initialized successfully!",
    ] {
        assert!(out.contains(line), "kubeadm init printed no {line:?}:\n{out}");
    }

    // The Node: Ready, with kubeadm's role and taint, and a version kubeadm and kubectl parse.
    let n = node.kubectl_json(&["get", "node", &node.name]).unwrap();
    assert!(n["metadata"]["labels"].get("node-role.kubernetes.io/control-plane").is_some(), "{n}");
    let taints = n["spec"]["taints"].as_array().unwrap();
    assert!(taints.iter().any(|t| t["key"] == "node-role.kubernetes.io/control-plane"), "{n}");
    let (_, nodes, _) = node.kubectl(&["get", "nodes"]);
    let line = nodes.lines().find(|l| l.starts_with(&node.name)).unwrap_or_else(|| panic!("{nodes}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((columns[1], columns[2]), ("Ready", "control-plane"), "{nodes}");
    assert!(columns[4].starts_with("v1.35.8+staticlet."), "{nodes}");

    // The four mirrors, as kubeadm's users look at them.
    let (_, pods, _) = node.kubectl(&["get", "pods", "-n", "kube-system", "-l", "tier=control-plane"]);
    for component in COMPONENTS {
        let line = pods.lines().find(|l| l.starts_with(&format!("{component}-"))).unwrap_or_else(|| panic!("{pods}"));
        let columns: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((columns[1], columns[2]), ("1/1", "Running"), "{pods}");
    }

    // kube-proxy's DaemonSet binds a pod here; staticlet rejects it, as kubelet rejects a pod it
    // cannot admit, rather than leave it Pending without a word.
    node.wait_until("a kube-proxy pod is rejected", Duration::from_secs(60), |n| {
        n.kubectl_json(&["get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-proxy"])
            .is_some_and(|l| l["items"].as_array().unwrap().iter().any(|p| p["status"]["reason"] == "StaticPodsOnly"))
    });
    assert!(node.process("kube-proxy").is_none(), "kube-proxy never runs here");

    // kubeadm's manifests run as rendered, with their seccomp profile, CPU requests and probes
    // in effect.
    for component in COMPONENTS {
        let pid = node.process(component).unwrap_or_else(|| panic!("{component} runs"));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(status.contains("Seccomp:\t2"), "{component} runs with seccomp RuntimeDefault:\n{status}");
        let rendered: Value = serde_saphyr::from_str(&node.read(&manifest(component))).unwrap();
        let container = &rendered["spec"]["containers"][0];
        assert_eq!(rendered["spec"]["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
        let request = container["resources"]["requests"]["cpu"].as_str().unwrap();
        assert_eq!(cpu_shares(pid), Some(shares_for(request)), "{component}'s cpu.shares for {request}");
    }
    node.wait_until("every rendered probe has passed at least once", Duration::from_secs(60), |n| {
        let m = metrics(n);
        COMPONENTS.iter().all(|c| {
            let rendered: Value = serde_saphyr::from_str(&n.read(&manifest(c))).unwrap();
            let container = &rendered["spec"]["containers"][0];
            [("livenessProbe", "Liveness"), ("readinessProbe", "Readiness"), ("startupProbe", "Startup")]
                .iter()
                .filter(|(field, _)| container.get(*field).is_some())
                .all(|(_, kind)| probe_count(&m, c, &n.name, kind) >= 1.0)
        })
    });

    // A gRPC probe, end to end: etcd (kubeadm's image) serves grpc.health.v1 on its client port.
    node.write_manifest(&format!("{MANIFESTS}/grpc-probed.yaml"), GRPC_PROBED);
    node.wait_until("the gRPC-probed pod is ready by its probe", Duration::from_secs(90), |n| {
        n.mirror("grpc-probed").is_some_and(|m| ready(&m))
            && probe_count(&metrics(n), "grpc-probed", &n.name, "Readiness") >= 1.0
    });
}

/// etcd alone, as a gRPC health server the probes reach on the pod IP (the node's, on the host
/// network).
const GRPC_PROBED: &str = "apiVersion: v1
kind: Pod
metadata: {name: grpc-probed, namespace: kube-system}
spec:
  hostNetwork: true
  containers:
  - name: etcd
    image: registry.k8s.io/etcd:3.6.6-0
    command: [etcd, --name=probed, --data-dir=/data, --listen-client-urls=http://0.0.0.0:12379,
      --advertise-client-urls=http://127.0.0.1:12379, --listen-peer-urls=http://127.0.0.1:12380,
      --initial-advertise-peer-urls=http://127.0.0.1:12380, --initial-cluster=probed=http://127.0.0.1:12380,
      --listen-metrics-urls=http://127.0.0.1:12381]
    readinessProbe: {grpc: {port: 12379}, periodSeconds: 1}
    livenessProbe: {grpc: {port: 12379, service: ''}, periodSeconds: 5}
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
";

#[test]
fn the_control_plane_lives_under_staticlet() {
    let _serial = serial();
    let (mut node, _) = control_plane();
    let pid = |n: &KubeadmNode, c: &str| n.process(c);

    // staticlet restarted (systemctl restart): no component is restarted.
    let before: Vec<Option<u32>> = COMPONENTS.iter().map(|c| pid(&node, c)).collect();
    node.restart_agent();
    node.wait_until("the restarted staticlet serves metrics", Duration::from_secs(30), |n| !metrics(n).is_empty());
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<Option<u32>> = COMPONENTS.iter().map(|c| pid(&node, c)).collect();
    assert_eq!(before, after, "the same processes run on");
    for component in COMPONENTS {
        assert_eq!(node.mirror(component).unwrap()["status"]["containerStatuses"][0]["restartCount"], 0);
    }

    // kill -9 kube-apiserver: back and serving, the restart counted.
    let old = pid(&node, "kube-apiserver").unwrap();
    let _ = std::process::Command::new("kill").args(["-KILL", &old.to_string()]).status();
    node.wait_until("kube-apiserver is back and ready", Duration::from_secs(90), |n| {
        pid(n, "kube-apiserver").is_some_and(|p| p != old) && readyz(n)
    });
    node.wait_until("its mirror counts the restart", Duration::from_secs(30), |n| {
        n.mirror("kube-apiserver").is_some_and(|m| m["status"]["containerStatuses"][0]["restartCount"] == 1)
    });

    // A flag of kube-apiserver edited, as an upgrade would: the new version serves, the mirror shows it.
    let old = pid(&node, "kube-apiserver").unwrap();
    node.add_flag("kube-apiserver", "--event-ttl=2h0m0s");
    node.wait_until("the edited kube-apiserver serves", Duration::from_secs(120), |n| {
        pid(n, "kube-apiserver").is_some_and(|p| p != old && cmdline(p).contains("--event-ttl=2h0m0s")) && readyz(n)
    });
    node.wait_until("the mirror shows the new spec", Duration::from_secs(60), |n| {
        n.mirror("kube-apiserver")
            .is_some_and(|m| m["spec"]["containers"][0]["command"].to_string().contains("--event-ttl"))
    });

    // etcd's manifest edited: etcd serves again, with no wait on the API server it backs
    // (kubelet stalls ~30 s here on a synchronous mirror delete, kubernetes#139502).
    let old = pid(&node, "etcd").unwrap();
    let t0 = Instant::now();
    node.add_flag("etcd", "--log-level=info");
    node.wait_until("the edited etcd runs and the API server is ready on it", Duration::from_secs(120), |n| {
        pid(n, "etcd").is_some_and(|p| p != old && cmdline(p).contains("--log-level=info")) && readyz(n)
    });
    eprintln!("etcd manifest edited -> API server ready on the new etcd: {:?}", t0.elapsed());
    wait_all_ready(&node);

    // The API server down (its manifest moved away, as during a broken upgrade): nothing local
    // waits for it. A manifest edit and a crash are handled meanwhile; all converges after.
    let parked = node.host_path("/etc/kubernetes/kube-apiserver.yaml.parked");
    std::fs::rename(node.host_path(&manifest("kube-apiserver")), &parked).unwrap();
    node.wait_until("kube-apiserver is stopped", Duration::from_secs(60), |n| pid(n, "kube-apiserver").is_none());
    let old_cm = pid(&node, "kube-controller-manager").unwrap();
    node.add_flag("kube-controller-manager", "--concurrent-gc-syncs=21");
    node.wait_until("the edited controller manager runs without an API server", Duration::from_secs(60), |n| {
        pid(n, "kube-controller-manager")
            .is_some_and(|p| p != old_cm && cmdline(p).contains("--concurrent-gc-syncs=21"))
    });
    let old_etcd = pid(&node, "etcd").unwrap();
    let _ = std::process::Command::new("kill").args(["-KILL", &old_etcd.to_string()]).status();
    node.wait_until("etcd is restarted without an API server", Duration::from_secs(60), |n| {
        pid(n, "etcd").is_some_and(|p| p != old_etcd)
    });
    std::thread::sleep(Duration::from_secs(20));
    std::fs::rename(&parked, node.host_path(&manifest("kube-apiserver"))).unwrap();
    node.wait_until("kube-apiserver serves again", Duration::from_secs(120), readyz);
    wait_all_ready(&node);
    node.wait_until("the mirrors show what happened meanwhile", Duration::from_secs(60), |n| {
        let cm = n.mirror("kube-controller-manager").unwrap_or_default();
        let etcd = n.mirror("etcd").unwrap_or_default();
        cm["spec"]["containers"][0]["command"].to_string().contains("--concurrent-gc-syncs=21")
            && etcd["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1)
    });

    // kube-scheduler frozen (SIGSTOP): NotReady by its readiness probe, then restarted by its
    // liveness probe (kubeadm's: period 10 s, timeout 15 s, 8 failures).
    let frozen = pid(&node, "kube-scheduler").unwrap();
    let _ = std::process::Command::new("kill").args(["-STOP", &frozen.to_string()]).status();
    node.wait_until("the scheduler's mirror is not ready", Duration::from_secs(120), |n| {
        n.mirror("kube-scheduler").is_some_and(|m| m["status"]["containerStatuses"][0]["ready"] == false)
    });
    node.wait_until("liveness restarted the scheduler", Duration::from_secs(300), |n| {
        pid(n, "kube-scheduler").is_some_and(|p| p != frozen)
    });
    node.wait_until("the restarted scheduler is ready", Duration::from_secs(120), |n| {
        n.mirror("kube-scheduler")
            .is_some_and(|m| ready(&m) && m["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1))
    });
    let (_, events, _) = node.kubectl(&["get", "events", "-n", "kube-system", "--field-selector", "reason=Unhealthy"]);
    assert!(events.contains("kube-scheduler") && events.contains("Liveness probe failed"), "{events}");
    node.stop_agent();
}

#[test]
fn metrics_server_scrapes_staticlet_and_kubectl_top_and_logs_work_on_the_control_plane() {
    let _serial = serial();
    let mut node = KubeadmNode::fresh();
    node.start_agent(Agent::Staticlet);
    node.wait_until("staticlet waits for kubeadm's files", Duration::from_secs(30), |n| n.agent_starts() >= 2);
    let (ok, out, _) = node.init_with_kubelet_config("serverTLSBootstrap: true\n");
    assert!(ok, "kubeadm init failed:\n{out}\n--- staticlet ---\n{}", node.agent_log());
    wait_all_ready(&node);

    // The serving certificate: asked for by CSR, approved here as an operator approves it.
    node.wait_until("staticlet's kubelet-serving CSR is approved", Duration::from_secs(60), |n| {
        n.approve_serving_csrs() > 0
    });
    let etcd = format!("etcd-{}", node.name);
    let (ok, logs, err) = node.kubectl(&["logs", "-n", "kube-system", &etcd, "--tail", "5"]);
    assert!(ok && logs.lines().count() == 5, "kubectl logs of etcd: {logs}{err}");
    let (ok, out, err) = node.kubectl(&["exec", "-n", "kube-system", &etcd, "--", "etcd", "--version"]);
    assert!(ok && out.contains("etcd Version"), "kubectl exec in etcd: {out}{err}");

    // metrics-server checks the serving certificate against the cluster CA (no insecure TLS).
    let (ok, out, err) = node.metrics_server(&["up"]);
    assert!(ok, "metrics-server up: {out}{err}");
    node.wait_until("kubectl top node shows the node", Duration::from_secs(120), |n| {
        let (ok, out, _) = n.kubectl(&["top", "node", "--no-headers"]);
        ok && out.starts_with(&n.name)
    });
    node.wait_until("kubectl top pod shows the control plane", Duration::from_secs(60), |n| {
        let (ok, out, _) = n.kubectl(&["top", "pod", "-n", "kube-system", "--no-headers"]);
        ok && COMPONENTS.iter().all(|c| out.contains(&format!("{c}-{}", n.name)))
    });
    let (_, top, _) =
        node.kubectl(&["top", "pod", "-n", "kube-system", &format!("kube-apiserver-{}", node.name), "--no-headers"]);
    let memory = top.split_whitespace().nth(2).unwrap_or_default();
    assert!(memory.ends_with("Mi") && memory != "0Mi", "kube-apiserver's memory as metrics-server read it: {top}");
    let _ = node.metrics_server(&["down"]);
}
