//! Harness for tests against the real private containerd of `hack/testenv up`.
//!
//! Each test runs its own staticlet process with its own node name, manifest directory, log and
//! state directories and status port, so nothing it does can touch another test's pods; `Drop`
//! stops the daemon and removes every pod of its node from the runtime.

#![allow(dead_code)]

pub mod api_relay;
pub mod cri_proxy;
pub mod kubeadm_node;

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

/// The runtime calls are methods of the `Cri` trait; every test that uses `runtime()` needs it.
pub use staticlet::cri::Cri;
use staticlet::{
    cri::Runtime,
    ops::{server::LocalStatus, view::PodView},
};

/// Tests share one containerd and two cores; running them one at a time keeps them honest.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The staticlet binary the tests and benches run: cargo's, unless STATICLET_TEST_BIN names
/// another (hack/bench measures the release build that ships, not the bench profile's).
pub fn staticlet_bin() -> String {
    std::env::var("STATICLET_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_staticlet").to_owned())
}

pub fn endpoint() -> String {
    std::env::var("CONTAINER_RUNTIME_ENDPOINT")
        .expect("CONTAINER_RUNTIME_ENDPOINT is not set: run `hack/testenv up` and `eval \"$(hack/testenv env)\"` first")
}

pub fn image() -> String {
    std::env::var("STATICLET_TEST_IMAGE").unwrap_or_else(|_| "localhost/staticlet/busybox:1.0".into())
}

/// The first three octets (with the dot) of the test CNI network's addresses: each runtime of
/// `hack/testenv` has its own /24 (`STATICLET_TEST_POD_SUBNET`, printed by `hack/testenv env`).
pub fn pod_subnet_prefix() -> String {
    let subnet = std::env::var("STATICLET_TEST_POD_SUBNET").unwrap_or_else(|_| "10.233.0.0/24".into());
    let network = subnet.split('/').next().unwrap_or_default();
    network.rsplit_once('.').map(|(head, _)| format!("{head}.")).expect("STATICLET_TEST_POD_SUBNET is a /24")
}

/// Whether the test runtime serves CRI container events (containerd 1.7 and later; Debian's 1.6
/// does not), read from its Version answer.
pub fn runtime_has_events() -> bool {
    let (_, version) = block_on(async { runtime().version().await.unwrap() });
    let mut parts = version.trim_start_matches('v').split(['.', '~', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (1, 7)
}

pub fn runtime() -> Runtime {
    Runtime::connect(&endpoint(), Duration::from_secs(30)).unwrap()
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A unique node name per test, so the harness can find and clean exactly this test's pods.
pub fn node_name(test: &str) -> String {
    format!("t-{}-{}", test.replace('_', "-"), std::process::id())
}

pub struct Daemon {
    pub node: String,
    pub dir: tempfile::TempDir,
    pub manifests: PathBuf,
    pub logs: PathBuf,
    pub status_port: u16,
    /// kubelet's health port (healthzPort), free per test as the status port is.
    pub healthz_port: u16,
    /// The kubelet API's port (kubelet's --port), free per test too.
    pub kubelet_port: u16,
    pub extra: Vec<String>,
    pub endpoint: String,
    /// 2 s, so tests of the periodic rescan are quick; benchmarks use the default (20 s).
    pub file_check_frequency: String,
    /// Environment given to the process besides STATICLET_LOG (e.g. libfaketime's).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Daemon {
    /// A stopped daemon with fresh directories; `start()` runs it.
    pub fn new(test: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        let logs = dir.path().join("logs");
        Self {
            node: node_name(test),
            manifests,
            logs,
            status_port: free_port(),
            healthz_port: free_port(),
            kubelet_port: free_port(),
            extra: vec![],
            endpoint: endpoint(),
            file_check_frequency: "2s".into(),
            env: vec![],
            child: None,
            dir,
        }
    }

    /// The flags `start` gives (besides the status address, which `start_with` adds).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--node-name={}", self.node),
            format!("--pod-manifest-path={}", self.manifests.display()),
            format!("--container-runtime-endpoint={}", self.endpoint),
            format!("--pod-logs-dir={}", self.logs.display()),
            format!("--root-dir={}", self.dir.path().join("root").display()),
            format!("--healthz-port={}", self.healthz_port),
            format!("--port={}", self.kubelet_port),
            format!("--file-check-frequency={}", self.file_check_frequency),
        ];
        args.extend(self.extra.iter().cloned());
        args
    }

    pub fn start(&mut self) -> &mut Self {
        self.start_with(self.args())
    }

    /// Starts with exactly `args` (kubelet's flags, a --config file) and the harness's status
    /// address, which it watches; `start` adds the harness's directories and ports as flags.
    pub fn start_with(&mut self, mut args: Vec<String>) -> &mut Self {
        assert!(self.child.is_none(), "already running");
        args.push(format!("--status-address=127.0.0.1:{}", self.status_port));
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("staticlet.log")).unwrap();
        let child = Command::new(staticlet_bin())
            .args(args)
            .env("STATICLET_LOG", "info")
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_until("the status API answers", Duration::from_secs(20), |d| d.try_status().is_ok());
        self
    }

    /// SIGTERM, as systemd stops it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe_kill(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("staticlet did not exit within 15 s of SIGTERM\n{}", self.log());
        }
    }

    /// SIGKILL, as a crash or the OOM killer ends it: no shutdown path runs.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("staticlet.log")).unwrap_or_default()
    }

    pub fn write_manifest(&self, file: &str, content: &str) -> PathBuf {
        // Write then rename, as careful tools do; tests of in-place writes write directly.
        let path = self.manifests.join(file);
        let tmp = self.dir.path().join(format!(".{file}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    pub fn try_status(&self) -> Result<LocalStatus, String> {
        let body = http_get(self.status_port, "/pods")?;
        serde_json::from_str(&body).map_err(|e| e.to_string())
    }

    pub fn status(&self) -> LocalStatus {
        self.try_status().unwrap_or_else(|e| panic!("status API: {e}\n{}", self.log()))
    }

    pub fn pod(&self, name: &str) -> Option<PodView> {
        let full = format!("{name}-{}", self.node);
        self.status().pods.into_iter().find(|p| p.name == full)
    }

    /// One series of this daemon's /metrics, named as Prometheus prints it (`name_total`,
    /// `name_count` or `name_total{label="value"}`); 0 for a series of a registered family not printed yet (a
    /// family prints a label value only once it has been counted). Panics if the family itself is
    /// not registered, so a misspelt name cannot read as a counter that never moves.
    pub fn metric(&self, series: &str) -> f64 {
        let body = http_get(self.status_port, "/metrics").unwrap_or_else(|e| panic!("/metrics: {e}\n{}", self.log()));
        let name = series.split('{').next().unwrap();
        let family = ["_total", "_count", "_sum", "_bucket"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(body.contains(&format!("# TYPE {family} ")), "no metric {family} in /metrics:\n{body}");
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |value| value.trim().parse().unwrap_or_else(|e| panic!("{series} {value}: {e}")))
    }

    /// Polls `check` until it holds; panics with the daemon's log after `limit`. The limit bounds
    /// a failing test; it is not a performance assertion.
    pub fn wait_until(&self, what: &str, limit: Duration, mut check: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if check(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out after {limit:?} waiting until {what}\nstatus: {:#?}\n--- staticlet log ---\n{}",
            self.try_status(),
            self.log()
        );
    }

    pub fn wait_for_pod(&self, name: &str, what: &str, mut check: impl FnMut(&PodView) -> bool) -> PodView {
        self.wait_until(&format!("pod {name} is {what}"), Duration::from_secs(60), |d| {
            d.pod(name).is_some_and(|p| check(&p))
        });
        self.pod(name).unwrap()
    }

    pub fn wait_for_running(&self, name: &str) -> PodView {
        self.wait_for_pod(name, "Running with all containers ready", |p| {
            p.status == "Running" && p.containers.iter().all(|c| c.ready)
        })
    }

    /// Runs `staticlet <args>` against this daemon's directories and status API.
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(staticlet_bin())
            .args(args)
            .arg(format!("--status-address=127.0.0.1:{}", self.status_port))
            .arg(format!("--pod-logs-dir={}", self.logs.display()))
            .arg(format!("--node-name={}", self.node))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_node_pods(&self.node);
    }
}

/// Removes every sandbox this node left in the runtime, and the (then empty) pod cgroups
/// staticlet made for them, which removing pods behind its back leaves.
pub fn remove_node_pods(node: &str) {
    let node = node.to_owned();
    let cleanup = async move {
        let rt = runtime();
        if let Ok(sandboxes) = rt.list_sandboxes(&[("staticlet.io/node", node.as_str())]).await {
            for s in sandboxes {
                let _ = rt.stop_sandbox(&s.id).await;
                let _ = rt.remove_sandbox(&s.id).await;
                if let Some(uid) = s.metadata.as_ref().map(|m| m.uid.as_str()) {
                    staticlet::cri::pod_cgroup::remove(Path::new(staticlet::cri::pod_cgroup::CGROUP_ROOT), uid);
                }
            }
        }
    };
    block_on(cleanup);
}

pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
}

pub fn http_get(port: u16, path: &str) -> Result<String, String> {
    http_get_addr(&format!("127.0.0.1:{port}"), path)
        .and_then(|(code, body)| if code == 200 { Ok(body) } else { Err(format!("HTTP {code}: {body}")) })
}

/// One bounded HTTP/1.0 GET; returns (status code, body).
pub fn http_get_addr(address: &str, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&address.parse().map_err(|e| format!("{e}"))?, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("malformed response")?;
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or("no status code")?;
    Ok((code, body.to_owned()))
}

/// The IDs of this pod's containers as the runtime lists them, with their CRI state.
pub fn runtime_containers(uid: &str) -> Vec<staticlet::cri::api::Container> {
    block_on(async { runtime().list_containers(&[("io.kubernetes.pod.uid", uid)]).await.unwrap() })
}

pub fn runtime_sandboxes(uid: &str) -> Vec<staticlet::cri::api::PodSandbox> {
    block_on(async { runtime().list_sandboxes(&[("io.kubernetes.pod.uid", uid)]).await.unwrap() })
}

pub fn running_container_ids(uid: &str) -> Vec<String> {
    runtime_containers(uid)
        .into_iter()
        .filter(|c| c.state == staticlet::cri::api::ContainerState::ContainerRunning as i32)
        .map(|c| c.id)
        .collect()
}

/// A pod manifest running busybox with the given shell script.
pub fn shell_pod(name: &str, script: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{role: test}}\nspec:\n  hostNetwork: true\n  terminationGracePeriodSeconds: 2\n{extra_spec}  containers:\n  - name: main\n    image: {image}\n    command: [sh, -c, {script:?}]\n",
        image = image()
    )
}

pub fn path_str(path: &Path) -> String {
    path.display().to_string()
}

/// static-web: busybox httpd on a host port, label role=myrole, 1 s grace.
pub fn web_pod(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{role: myrole}}\nspec:\n  hostNetwork: true\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: {image}\n    command: [httpd, -f, -p, \"127.0.0.1:{port}\", -h, /etc]\n    ports: [{{containerPort: {port}}}]\n",
        image = image()
    )
}

/// The test cluster's PKI directory (`hack/testenv up --cluster`).
pub fn cluster_pki() -> PathBuf {
    Path::new(&std::env::var("STATICLET_TESTENV_DIR").expect("eval \"$(hack/testenv env)\" first")).join("cluster/pki")
}

/// A certificate signed by the cluster CA, with openssl (`extension` is an openssl extension
/// section's body): a serving certificate the API server trusts, a user's client certificate.
pub fn issue_cert(dir: &Path, name: &str, subject: &str, extension: &str) -> (PathBuf, PathBuf) {
    let (key, crt, ext) =
        (dir.join(format!("{name}.key")), dir.join(format!("{name}.crt")), dir.join(format!("{name}.ext")));
    std::fs::write(&ext, format!("[ext]\n{extension}\n")).unwrap();
    let ca = cluster_pki();
    let script = format!(
        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {key} -subj '{subject}' 2>/dev/null | \
         openssl x509 -req -CA {ca}/ca.crt -CAkey {ca}/ca.key -days 1 -extfile {ext} -extensions ext -out {crt} 2>/dev/null",
        key = key.display(),
        crt = crt.display(),
        ext = ext.display(),
        ca = ca.display()
    );
    assert!(Command::new("sh").args(["-c", &script]).status().unwrap().success(), "openssl: {subject}");
    (crt, key)
}

/// A serving certificate of the cluster CA for a node on 127.0.0.1.
pub fn serving_cert(dir: &Path, node: &str) -> (PathBuf, PathBuf) {
    issue_cert(
        dir,
        "serving",
        &format!("/O=system:nodes/CN=system:node:{node}"),
        &format!("subjectAltName=IP:127.0.0.1,DNS:{node}\nextendedKeyUsage=serverAuth"),
    )
}

/// kubectl of the test cluster (KUBECONFIG is its admin), stdin closed: success, stdout, stderr.
pub fn kubectl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("kubectl from hack/testenv (STATICLET_KUBE_BIN on PATH)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The path of a kubeconfig for system:node:<node>, minted by hack/testenv.
pub fn node_kubeconfig(node: &str) -> String {
    assert!(
        std::env::var("KUBECONFIG").is_ok(),
        "KUBECONFIG is not set: run `hack/testenv up --cluster` and eval its env"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/testenv");
    let out = Command::new("bash").arg(script).args(["node-kubeconfig", node]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `hack/testenv ARGS` (for the instance of the test's environment), which must succeed;
/// its standard output, trimmed.
pub fn testenv(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/testenv");
    let out = Command::new("bash").arg(script).args(args).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "hack/testenv {args:?}: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// containerd's PID (the instance of the test's environment).
pub fn runtime_pid() -> u32 {
    testenv(&["runtime-pid"]).parse().expect("a PID")
}

/// Deletes the test's Node when the test ends, however it ends.
pub struct NodeCleanup(pub String);

impl Drop for NodeCleanup {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "node", &self.0, "--wait=false"]);
    }
}

/// Polls `check` every 100 ms until it gives a value or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(value) = check() {
            return Some(value);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// A finished command's stdout and stderr, as one text for an assertion's message.
pub fn output_text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}
