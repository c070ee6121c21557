//! A kubeadm node for tests and benchmarks: `hack/testenv kubeadm-node` (network, mount and UTS
//! namespaces of our own, with a containerd of their own and every image kubeadm deploys), the
//! node agent run inside as systemd runs a kubelet on a kubeadm node (the flags of kubeadm's
//! drop-in, started again a second after it exits), and kubeadm and kubectl run inside too.
//!
//! Only one node exists at a time (its name and address are fixed), so users hold `serial()`.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Command, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

fn testenv() -> Command {
    let mut command = Command::new("bash");
    command.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/testenv")).arg("kubeadm-node");
    command
}

fn text(out: &Output) -> (bool, String, String) {
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// What kubelet needs on this machine besides kubeadm's configuration (swap accounting off, no
/// local storage isolation), as the probes benchmark found. staticlet is given kubeadm's
/// configuration unchanged.
pub const KUBELET_EXTRA: &str = "failSwapOn: false\nlocalStorageCapacityIsolation: false\n";

/// The node agent under test: staticlet, or kubelet of the same release (for the benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    Staticlet,
    Kubelet,
}

/// The flags kubeadm's systemd drop-in (10-kubeadm.conf) gives the kubelet; kubeadm-flags.env
/// adds none on this node (v1.35 puts the CRI endpoint into config.yaml).
pub const DROP_IN_FLAGS: &[&str] = &[
    "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
    "--kubeconfig=/etc/kubernetes/kubelet.conf",
    "--config=/var/lib/kubelet/config.yaml",
];

/// Preflight checks that cannot pass here, and why: SystemVerification runs `kubelet --version`
/// and refuses this machine's cgroup v1 even with failCgroupV1: false; KubeletVersion runs the
/// kubelet binary. Everything else (ports, images, swap, hostname, CRI) is checked.
pub const IGNORED_PREFLIGHT: &str = "--ignore-preflight-errors=SystemVerification,KubeletVersion";

/// The agent, run as systemd's Restart=always would (RestartSec 1 s rather than kubeadm's 10 s,
/// to keep tests short): a thread that starts it again whenever it exits, until stopped.
struct AgentLoop {
    stop: Arc<AtomicBool>,
    pid: Arc<Mutex<Option<u32>>>,
    starts: Arc<AtomicU32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub struct KubeadmNode {
    pub env: HashMap<String, String>,
    pub name: String,
    pub address: String,
    /// The node's own directories on the host (bind-mounted inside at /etc/kubernetes, ...).
    pub root: PathBuf,
    pub log: PathBuf,
    agent: Option<AgentLoop>,
    _dir: tempfile::TempDir,
}

impl KubeadmNode {
    /// A node made from scratch (any earlier one is removed first): nothing from a previous
    /// test's control plane can leak into this one.
    pub fn fresh() -> Self {
        let _ = testenv().arg("down").output();
        let (ok, out, err) = text(&testenv().arg("up").stdin(Stdio::null()).output().unwrap());
        assert!(ok, "hack/testenv kubeadm-node up failed:\n{out}\n{err}");
        let (ok, out, err) = text(&testenv().arg("env").output().unwrap());
        assert!(ok, "{err}");
        let env: HashMap<String, String> = out
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').replace("\\ ", " ")))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        Self {
            name: env["STATICLET_KADM_NODE"].clone(),
            address: env["STATICLET_KADM_ADDRESS"].clone(),
            root: PathBuf::from(&env["STATICLET_KADM_ROOT"]),
            log: dir.path().join("agent.log"),
            env,
            agent: None,
            _dir: dir,
        }
    }

    /// Runs a command inside the node's namespaces.
    pub fn exec(&self, args: &[&str]) -> Output {
        testenv().arg("exec").args(args).stdin(Stdio::null()).output().unwrap()
    }

    pub fn kubeadm(&self, args: &[&str]) -> (bool, String, String) {
        let kubeadm = self.env["STATICLET_KADM_KUBEADM"].clone();
        text(&self.exec(&[&[kubeadm.as_str()], args].concat()))
    }

    /// `hack/testenv kubeadm-node metrics-server ARGS` (after `kubeadm init`).
    pub fn metrics_server(&self, args: &[&str]) -> (bool, String, String) {
        text(&testenv().arg("metrics-server").args(args).stdin(Stdio::null()).output().unwrap())
    }

    /// Approves the node's pending kubelet-serving CSRs as the admin, as an operator would;
    /// returns how many it approved.
    pub fn approve_serving_csrs(&self) -> usize {
        let Some(list) = self.kubectl_json(&["get", "csr"]) else { return 0 };
        let pending: Vec<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["spec"]["signerName"] == "kubernetes.io/kubelet-serving")
            .filter(|c| c["status"]["conditions"].as_array().is_none_or(|c| c.is_empty()))
            .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        for name in &pending {
            let (ok, _, err) = self.kubectl(&["certificate", "approve", name]);
            assert!(ok, "approving {name}: {err}");
        }
        pending.len()
    }

    /// kubectl inside the node, as the cluster admin kubeadm made.
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let kubectl = self.env["STATICLET_KADM_KUBECTL"].clone();
        text(&self.exec(&[&[kubectl.as_str(), "--kubeconfig=/etc/kubernetes/admin.conf"], args].concat()))
    }

    pub fn kubectl_json(&self, args: &[&str]) -> Option<Value> {
        let (ok, out, _) = self.kubectl(&[args, &["-o", "json"]].concat());
        ok.then(|| serde_json::from_str(&out).ok()).flatten()
    }

    /// `kubeadm init` with the node's configuration; returns its success, output and duration.
    pub fn init(&self) -> (bool, String, Duration) {
        self.init_with_kubelet_config("")
    }

    /// `kubeadm init`, with `extra` (YAML lines) added to the configuration's
    /// KubeletConfiguration, its last document.
    pub fn init_with_kubelet_config(&self, extra: &str) -> (bool, String, Duration) {
        let mut config = std::fs::read_to_string(&self.env["STATICLET_KADM_CONFIG"]).unwrap();
        let last_kind = config.lines().rfind(|l| l.starts_with("kind: "));
        assert_eq!(last_kind, Some("kind: KubeletConfiguration"), "the template ends with the kubelet's document");
        config.push_str(extra);
        let path = self.host_path("/etc/kubernetes/staticlet-test-kubeadm.yaml");
        std::fs::write(&path, config).unwrap();
        let t0 = Instant::now();
        let (ok, out, err) =
            self.kubeadm(&["init", "--config", "/etc/kubernetes/staticlet-test-kubeadm.yaml", IGNORED_PREFLIGHT]);
        (ok, format!("{out}{err}"), t0.elapsed())
    }

    /// Where a path of the node (under one of its bind mounts) is on the host.
    pub fn host_path(&self, node_path: &str) -> PathBuf {
        for (inside, source) in [
            ("/etc/kubernetes/", "etc-kubernetes"),
            ("/var/lib/kubelet/", "var-lib-kubelet"),
            ("/var/lib/etcd/", "var-lib-etcd"),
            ("/var/log/pods/", "var-log-pods"),
        ] {
            if let Some(rest) = node_path.strip_prefix(inside) {
                return self.root.join(source).join(rest);
            }
        }
        panic!("{node_path} is under none of the node's bind mounts");
    }

    /// Starts the agent with kubeadm's drop-in flags and a clean environment (systemd's), so
    /// nothing of the test's environment (the host runtime's endpoint) reaches it.
    pub fn start_agent(&mut self, agent: Agent) {
        assert!(self.agent.is_none(), "the agent already runs");
        let binary = match agent {
            Agent::Staticlet => super::staticlet_bin(),
            Agent::Kubelet => format!("{}/kubelet", self.env["STATICLET_KADM_KUBE_BIN"]),
        };
        let (stop, pid) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(None)));
        let starts = Arc::new(AtomicU32::new(0));
        let (stop_, pid_, starts_, log) = (stop.clone(), pid.clone(), Arc::clone(&starts), self.log.clone());
        let thread = std::thread::spawn(move || {
            while !stop_.load(Ordering::SeqCst) {
                let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
                let mut child = testenv()
                    .arg("exec")
                    .arg(&binary)
                    .args(DROP_IN_FLAGS)
                    .env_clear()
                    .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                    .env("STATICLET_LOG", "info")
                    .stdin(Stdio::null())
                    .stdout(file.try_clone().unwrap())
                    .stderr(file)
                    .spawn()
                    .unwrap();
                *pid_.lock().unwrap() = Some(child.id());
                starts_.fetch_add(1, Ordering::SeqCst);
                let status = child.wait().unwrap();
                *pid_.lock().unwrap() = None;
                let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
                let _ = std::io::Write::write_all(&mut file, format!("=== agent exited: {status}\n").as_bytes());
                let deadline = Instant::now() + Duration::from_secs(1);
                while Instant::now() < deadline && !stop_.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        self.agent = Some(AgentLoop { stop, pid, starts, thread: Some(thread) });
    }

    /// The running agent's pid (the exec'd process is the agent itself).
    pub fn agent_pid(&self) -> Option<u32> {
        *self.agent.as_ref()?.pid.lock().unwrap()
    }

    /// How many times the agent was started.
    pub fn agent_starts(&self) -> u32 {
        self.agent.as_ref().map_or(0, |a| a.starts.load(Ordering::SeqCst))
    }

    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as `systemctl stop`; the loop is not restarted.
    pub fn stop_agent(&mut self) {
        let Some(mut agent) = self.agent.take() else { return };
        agent.stop.store(true, Ordering::SeqCst);
        if let Some(pid) = *agent.pid.lock().unwrap() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        }
        if let Some(thread) = agent.thread.take() {
            let _ = thread.join();
        }
    }

    /// SIGTERM to the agent, which the loop then starts again, as `systemctl restart`.
    pub fn restart_agent(&self) {
        let pid = self.agent_pid().expect("the agent runs");
        let starts = self.agent_starts();
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        self.wait_until("the agent is started again", Duration::from_secs(30), |n| n.agent_starts() > starts);
    }

    /// The pid of the process named `comm` that runs in this node's network namespace (the host
    /// may run processes of the same name: the other test cluster's). The kernel keeps the first
    /// 15 bytes of a name ("kube-controller").
    pub fn process(&self, comm: &str) -> Option<u32> {
        let comm = &comm[..comm.len().min(15)];
        let netns = std::fs::metadata(&self.env["STATICLET_KADM_NETNS"]).ok()?;
        let inode = std::os::unix::fs::MetadataExt::ino(&netns);
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            let ns = std::fs::metadata(entry.path().join("ns/net")).ok()?;
            (name.trim() == comm && std::os::unix::fs::MetadataExt::ino(&ns) == inode).then_some(pid)
        })
    }

    /// The mirror pod of a kubeadm component (`etcd`, `kube-apiserver`, ...).
    pub fn mirror(&self, component: &str) -> Option<Value> {
        self.kubectl_json(&["get", "pod", "-n", "kube-system", &format!("{component}-{}", self.name)])
    }

    pub fn wait_until(&self, what: &str, limit: Duration, mut check: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if check(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let log = self.agent_log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!("timed out after {limit:?} waiting until {what}\n--- agent log (last lines) ---\n{}", tail.join("\n"));
    }

    /// Writes a manifest as `kubeadm upgrade` does: a file outside the manifest directory,
    /// renamed over the old one.
    pub fn write_manifest(&self, node_path: &str, content: &str) {
        let path = self.host_path(node_path);
        let tmp = self.host_path("/etc/kubernetes/staticlet-test-manifest.tmp");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// Adds `flag` after the component's command in its manifest, as an upgrade edits a flag.
    pub fn add_flag(&self, component: &str, flag: &str) {
        let path = format!("/etc/kubernetes/manifests/{component}.yaml");
        let old = self.read(&path);
        let command = format!("    - {component}\n");
        assert!(old.contains(&command), "{path} starts its command with {component}:\n{old}");
        self.write_manifest(&path, &old.replacen(&command, &format!("{command}    - {flag}\n"), 1));
    }

    pub fn read(&self, node_path: &str) -> String {
        std::fs::read_to_string(self.host_path(node_path)).unwrap()
    }
}

/// A process's command line, its arguments separated by spaces.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

impl Drop for KubeadmNode {
    fn drop(&mut self) {
        self.stop_agent();
        let _ = testenv().arg("down").output();
    }
}
