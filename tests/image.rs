//! staticlet's container image (the top-level Dockerfile, built offline by hack/image with
//! buildah), run on the private containerd of `hack/testenv up` as README.md's "In a container"
//! says to run it: privileged, in the host's network, PID and IPC namespaces, with the runtime's
//! socket, a manifest directory, the pod log and state directories (at the same paths as on the
//! host, since the runtime outside reads what staticlet names) and /sys/fs/cgroup mounted. It is
//! run the way any container runtime would run it, through CRI calls made here: the staticlet
//! inside then runs a static pod through the socket, which is checked from the host through CRI.
//!
//! The binary is a dev-profile static build (hack/image --profile dev): a release static build
//! from cold is about 8 more minutes on 2 cores, and the Dockerfile does not care which it gets.
//! A first run still compiles every crate once for the explicit --target (a few minutes).

mod common;

use std::{
    collections::HashMap,
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

use common::Cri as _;
use staticlet::cri::api;

/// The lines of a CRI log file (`<time> <stream> <tag> <line>`), without the prefix.
fn cri_log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.splitn(4, ' ').nth(3).map(str::to_owned))
        .collect()
}

/// One CRI call on the test runtime (the client must be made inside the tokio runtime).
fn cri<T>(call: impl AsyncFnOnce(staticlet::cri::Runtime) -> T) -> T {
    common::block_on(async { call(common::runtime()).await })
}

fn bind(host: &Path, inside: &str, readonly: bool) -> api::Mount {
    api::Mount {
        host_path: host.display().to_string(),
        container_path: inside.to_owned(),
        readonly,
        ..Default::default()
    }
}

/// The image in the runtime, removed when the test ends.
struct Imported(String);

impl Drop for Imported {
    fn drop(&mut self) {
        let _ = ctr(&["images", "rm", &self.0]);
    }
}

fn ctr(args: &[&str]) -> Output {
    let address = std::env::var("CONTAINERD_ADDRESS").expect("eval \"$(hack/testenv env)\" first");
    Command::new("ctr").args(["--address", &address, "--namespace", "k8s.io"]).args(args).output().expect("ctr")
}

/// The sandbox staticlet's own containers run in, as a node's container runtime would make it for
/// `--privileged --pid=host --network=host`. Stopped and removed on drop, before the harness
/// removes the pods the staticlet inside made (declared after the `Daemon`, so dropped first:
/// else it would start them again).
struct AgentSandbox {
    id: String,
    config: api::PodSandboxConfig,
}

impl AgentSandbox {
    fn run(name: &str, log_directory: &Path) -> Self {
        let host = || {
            Some(api::NamespaceOption {
                network: api::NamespaceMode::Node as i32,
                pid: api::NamespaceMode::Node as i32,
                ipc: api::NamespaceMode::Node as i32,
                ..Default::default()
            })
        };
        let config = api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: name.to_owned(),
                uid: name.to_owned(),
                namespace: "staticlet-image-test".into(),
                attempt: 0,
            }),
            log_directory: log_directory.display().to_string(),
            // No staticlet.io/* label: this is not a pod of any staticlet, and the one inside must
            // not take it for one of its own.
            labels: HashMap::from([("staticlet-image-test".to_owned(), name.to_owned())]),
            linux: Some(api::LinuxPodSandboxConfig {
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: host(),
                    privileged: true,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = cri(async |rt| rt.run_sandbox(config.clone(), "").await).expect("RunPodSandbox");
        Self { id, config }
    }

    /// Creates and starts a privileged container of `image` with `args` (the image's ENTRYPOINT
    /// is kept), logging to `<log_directory>/<name>.log`.
    fn start(&self, name: &str, image: &str, args: &[String], mounts: Vec<api::Mount>) -> String {
        let security = self.config.linux.as_ref().and_then(|l| l.security_context.as_ref());
        let config = api::ContainerConfig {
            metadata: Some(api::ContainerMetadata { name: name.to_owned(), attempt: 0 }),
            image: Some(api::ImageSpec { image: image.to_owned(), ..Default::default() }),
            args: args.to_vec(),
            envs: vec![api::KeyValue { key: "STATICLET_LOG".into(), value: "info".into() }],
            mounts,
            log_path: format!("{name}.log"),
            linux: Some(api::LinuxContainerConfig {
                security_context: Some(api::LinuxContainerSecurityContext {
                    privileged: true,
                    namespace_options: security.and_then(|s| s.namespace_options.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        common::block_on(async {
            let rt = common::runtime();
            let id = rt.create_container(&self.id, config, self.config.clone()).await.expect("CreateContainer");
            rt.start_container(&id).await.expect("StartContainer");
            id
        })
    }
}

impl Drop for AgentSandbox {
    fn drop(&mut self) {
        common::block_on(async {
            let rt = common::runtime();
            let _ = rt.stop_sandbox(&self.id).await;
            let _ = rt.remove_sandbox(&self.id).await;
        });
    }
}

#[test]
fn the_image_runs_staticlet_which_runs_a_static_pod_through_the_mounted_socket() {
    let _serial = common::serial();
    let t0 = Instant::now();
    let step = |what: &str| eprintln!("[{:6.1}s] {what}", t0.elapsed().as_secs_f64());
    let d = common::Daemon::new("image");
    let tag = format!("localhost/staticlet/image-test:{}", std::process::id());
    let archive = d.dir.path().join("staticlet.oci.tar");

    step("hack/image --profile dev");
    let built = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/image"))
        .args(["--profile", "dev", "--tag", &tag, "--out"])
        .arg(&archive)
        .output()
        .expect("hack/image");
    assert!(built.status.success(), "hack/image: {}", common::output_text(&built));
    assert_eq!(String::from_utf8_lossy(&built.stdout).trim(), archive.display().to_string());
    eprintln!("{}", String::from_utf8_lossy(&built.stderr).lines().last().unwrap_or_default());

    // What the archive says about itself: the binary as its entrypoint, the labels stamped from
    // Cargo.toml and git, and one layer (FROM scratch: the binary and nothing else).
    step("inspecting the archive");
    let inspect = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci-archive:{}", archive.display()))
        .output()
        .expect("skopeo (hack/testenv installs it)");
    assert!(inspect.status.success(), "skopeo inspect: {}", common::output_text(&inspect));
    let config: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/usr/bin/staticlet"]), "{config:#}");
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], env!("CARGO_PKG_VERSION"), "{config:#}");
    let head = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(env!("CARGO_MANIFEST_DIR")).output();
    let head = String::from_utf8(head.unwrap().stdout).unwrap();
    assert_eq!(labels["org.opencontainers.image.revision"], head.trim(), "{config:#}");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().map(Vec::len), Some(1), "{config:#}");

    step("importing it");
    let imported = ctr(&["images", "import", &archive.display().to_string()]);
    assert!(imported.status.success(), "ctr images import: {}", common::output_text(&imported));
    let _image = Imported(tag.clone());
    let image_id = cri(async |rt| rt.image_id(&tag).await).unwrap();
    assert!(image_id.is_some(), "the runtime does not list {tag} after the import: {}", common::output_text(&imported));

    // The directories the runtime outside uses exist before they are mounted (a bind mount
    // needs its source), at the same paths inside.
    let root = d.dir.path().join("root");
    for dir in [&d.logs, &root] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let agent = AgentSandbox::run(&format!("staticlet-image-{}", std::process::id()), d.dir.path());

    // (a) The image's staticlet is the one built here: same version, same commit.
    step("staticlet --version in the image");
    let version_id = agent.start("version", &tag, &["--version".to_owned()], vec![]);
    let exited = (0..100).find_map(|_| {
        let status = cri(async |rt| rt.container_status(&version_id).await).unwrap();
        if status.state == api::ContainerState::ContainerExited as i32 {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
        None
    });
    let exited = exited.expect("`staticlet --version` in the image did not exit within 10 s");
    let host = Command::new(env!("CARGO_BIN_EXE_staticlet")).arg("--version").output().unwrap();
    let in_image = cri_log_lines(&d.dir.path().join("version.log"));
    assert_eq!(exited.exit_code, 0, "{in_image:?}");
    assert_eq!(in_image, [String::from_utf8(host.stdout).unwrap().trim_end()]);

    // (b) The daemon, from the image, as documented: the runtime's socket at the default
    // endpoint's path (so no --container-runtime-endpoint), the manifests read-only at
    // /etc/kubernetes/manifests, logs and state at the host's own paths, the host's cgroups.
    step("staticlet from the image");
    let socket = common::endpoint().strip_prefix("unix://").expect("a unix:// endpoint").to_owned();
    let mounts = vec![
        bind(Path::new(&socket), "/run/containerd/containerd.sock", false),
        bind(&d.manifests, "/etc/kubernetes/manifests", true),
        bind(&d.logs, &d.logs.display().to_string(), false),
        bind(&root, &root.display().to_string(), false),
        bind(Path::new("/sys/fs/cgroup"), "/sys/fs/cgroup", false),
    ];
    let args = vec![
        "--pod-manifest-path=/etc/kubernetes/manifests".to_owned(),
        format!("--node-name={}", d.node),
        format!("--pod-logs-dir={}", d.logs.display()),
        format!("--root-dir={}", root.display()),
        // Host network: these are the host's loopback ports, free ones so as not to meet
        // another test's (or a real kubelet's) defaults.
        format!("--status-address=127.0.0.1:{}", d.status_port),
        format!("--healthz-port={}", d.healthz_port),
        format!("--port={}", d.kubelet_port),
        "--file-check-frequency=2s".to_owned(),
    ];
    agent.start("staticlet", &tag, &args, mounts);
    // The harness's status checks read the host's port 127.0.0.1:<status_port> (the container
    // shares the host's network) and its log is the container's (`staticlet.log`).
    d.wait_until("the containerized staticlet's status API answers", Duration::from_secs(30), |d| {
        d.try_status().is_ok()
    });

    // A pod that proves each mount: its emptyDir is made under the state directory and must be
    // the host's (the runtime mounts it from there), its log file is the host's, and its CPU
    // limit is written into the host's cgroup tree. Its readiness probe asks for `localhost` by
    // name, so it is Ready only if the static glibc resolves names in an image with no NSS
    // modules and no /etc/nsswitch.conf (the runtime gives the container the host's /etc/hosts).
    step("a static pod, through the mounted socket");
    let port = common::free_port();
    let script = format!(
        "echo from-the-pod > /scratch/proof; echo started; httpd -p 127.0.0.1:{port} -h /scratch; trap 'exit 0' TERM; while true; do sleep 1; done"
    );
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  hostNetwork: true\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: main\n    image: {image}\n    command: [sh, -c, {script:?}]\n    volumeMounts: [{{name: scratch, mountPath: /scratch}}]\n    resources: {{limits: {{cpu: 200m, memory: 64Mi}}}}\n    readinessProbe: {{httpGet: {{host: localhost, port: {port}, path: /proof}}, periodSeconds: 1}}\n  volumes: [{{name: scratch, emptyDir: {{}}}}]\n",
        image = common::image()
    );
    d.write_manifest("web.yaml", &manifest);
    let pod = d.wait_for_running("web");

    // From the host, through CRI: the pod is this node's, made by the staticlet in the image
    // (the only one with this node name), and runs.
    let sandboxes = cri(async |rt| rt.list_sandboxes(&[("staticlet.io/node", d.node.as_str())]).await).unwrap();
    assert_eq!(sandboxes.len(), 1, "{sandboxes:#?}");
    assert_eq!(sandboxes[0].metadata.as_ref().map(|m| m.uid.as_str()), Some(pod.uid.as_str()));
    assert_eq!(sandboxes[0].state, api::PodSandboxState::SandboxReady as i32);
    let running = common::running_container_ids(&pod.uid);
    assert_eq!(running.len(), 1, "{:#?}", common::runtime_containers(&pod.uid));
    let pid = cri(async |rt| rt.container_pid(&running[0]).await).unwrap().expect("the container's PID");

    let proof = root.join("pods").join(&pod.uid).join("volumes/kubernetes.io~empty-dir/scratch/proof");
    let written = (0..50).find_map(|_| {
        std::fs::read_to_string(&proof).ok().or_else(|| {
            std::thread::sleep(Duration::from_millis(100));
            None
        })
    });
    assert_eq!(written.as_deref(), Some("from-the-pod\n"), "the emptyDir's file on the host: {}", proof.display());

    let log = d.logs.join(format!("default_web-{}_{}/main/0.log", d.node, pod.uid));
    let logged = (0..50).any(|_| {
        cri_log_lines(&log).iter().any(|l| l == "started") || {
            std::thread::sleep(Duration::from_millis(100));
            false
        }
    });
    assert!(logged, "no `started` in the host's {}: {:?}", log.display(), cri_log_lines(&log));

    // The pod cgroup the staticlet in the container wrote is the host's, and holds the process.
    // (Limits alone: requests equal them, a Guaranteed pod, whose cgroup is /kubepods/pod<uid>.)
    let cgroup = Path::new("/sys/fs/cgroup/cpu/kubepods").join(format!("pod{}", pod.uid));
    let quota = std::fs::read_to_string(cgroup.join("cpu.cfs_quota_us")).ok();
    assert_eq!(quota.as_deref().map(str::trim), Some("20000"), "{}", cgroup.display());
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(own.lines().any(|l| l.contains(&format!("/kubepods/pod{}/", pod.uid))), "{own}");

    // Removing the manifest (on the host: the container sees it through its read-only mount)
    // removes the pod.
    step("removing the manifest");
    std::fs::remove_file(d.manifests.join("web.yaml")).unwrap();
    d.wait_until("the pod is gone from the runtime", Duration::from_secs(30), |_| {
        common::runtime_sandboxes(&pod.uid).is_empty()
    });
    assert!(d.log().contains("container started"), "{}", d.log());
    step("done");
    drop(agent);
}
