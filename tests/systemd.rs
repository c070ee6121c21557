//! staticlet as a user runs it: the .deb of hack/package, installed with dpkg, under a real
//! systemd. PID 1 here is not systemd, so systemd-nspawn boots the host's own systemd as PID 1 of
//! a container whose root is an overlay of the host's tree with a tmpfs on top (so dpkg sees the
//! host's package database and can write /usr, and nothing it does reaches the host), with the
//! private containerd's socket of `hack/testenv up` bind-mounted in. Pods run on the host's containerd, so everything about them is checked
//! from the host through CRI: container IDs and creation times show that nothing restarted.
//!
//! One machine, booted once (about 3 s), and one test walking through the life of a node agent in
//! order: install, READY, SIGKILL, stop, journal fields, watchdog, bad config, upgrade, removal.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use common::Cri as _;

/// Where the runtime's socket is bound inside; /run/containerd/containerd.sock (the packaged
/// config's endpoint) is made a link to it only when the test says so, so staticlet first starts
/// with no runtime to answer it.
const CRI_INSIDE: &str = "/mnt/cri/containerd.sock";
/// Where the test hands the machine its files (packages, config).
const SHARE_INSIDE: &str = "/mnt/staticlet-test";

/// A booted systemd-nspawn machine: the nspawn process and the container's PID 1, as the host sees it.
struct Machine {
    nspawn: Child,
    leader: u32,
    log: PathBuf,
}

impl Machine {
    /// Boots the host's systemd in a container: `units` is bound over /etc/systemd/system (so
    /// none of the host's enabled units start in it), `binds` are (host, inside) pairs, and
    /// `scratch` (an empty directory) holds the overlay's mount points.
    fn boot(name: &str, units: &Path, binds: &[(PathBuf, String)], scratch: &Path, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).unwrap();
        let root = scratch.join("root");
        let mut argv = vec![
            "systemd-nspawn".to_owned(),
            "--quiet".into(),
            format!("--directory={}", root.display()),
            "--boot".into(),
            // No machined and no scope on a host whose PID 1 is not systemd; without
            // --keep-unit nspawn fails with "Failed to open system bus".
            "--register=no".into(),
            "--keep-unit".into(),
            // Its own loopback: the status API's port cannot collide with the host's.
            "--private-network".into(),
            format!("--machine={name}"),
            format!("--bind={}:/etc/systemd/system", units.display()),
        ];
        argv.extend(binds.iter().map(|(host, inside)| format!("--bind={}:{inside}", host.display())));
        // systemd.firstboot=off, on PID 1's command line: else first boot waits for a keypress.
        argv.extend(["--".into(), "systemd.firstboot=off".into()]);
        // In a private mount namespace (its mounts go when the machine does): an empty
        // /run/systemd, since nspawn takes the host's /run/systemd/system to mean a systemd host
        // and would try to talk to it; and the root, an overlay of / under a tmpfs. nspawn
        // refuses / itself, and its --volatile modes for / leave /usr read-only (`yes`) or no
        // package database (`state`), neither of which dpkg can install into. The tmpfs
        // is its own filesystem, so the overlay's upper layer is not inside its lower one.
        let script = r#"set -e
            mount -t tmpfs tmpfs /run/systemd
            mount -t tmpfs tmpfs "$0"
            mkdir "$0/upper" "$0/work" "$0/root"
            mount -t overlay overlay -o "lowerdir=/,upperdir=$0/upper,workdir=$0/work" "$0/root"
            exec "$@""#;
        let mut nspawn = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c", script])
            .arg(scratch)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("unshare");
        // `unshare` and `sh` exec, so the child is nspawn itself; the container's init is its
        // child (nspawn is a subreaper).
        let nspawn_pid = nspawn.id();
        let leader = common::wait_for(Duration::from_secs(20), || {
            if let Ok(Some(status)) = nspawn.try_wait() {
                panic!("systemd-nspawn exited {status}:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            children_named(nspawn_pid, "systemd").into_iter().next()
        });
        // Made before any check, so whatever fails from here on, Drop ends the machine.
        let machine = Self { nspawn, leader: leader.unwrap_or(0), log };
        assert!(leader.is_some(), "no container systemd under nspawn {nspawn_pid}:\n{}", machine.log());
        let booted = common::wait_for(Duration::from_secs(60), || {
            let state = machine.run("systemctl is-system-running 2>/dev/null; true");
            let state = String::from_utf8_lossy(&state.stdout).trim().to_owned();
            matches!(state.as_str(), "running" | "degraded").then_some(state)
        });
        if booted.is_none() {
            let units = machine.run("systemctl list-jobs --no-pager; systemctl --failed --no-pager");
            panic!("the machine did not finish booting:\n{}\n{}", common::output_text(&units), machine.log());
        }
        machine
    }

    /// Runs a shell script in the machine's namespaces, with a clean environment.
    fn run(&self, script: &str) -> Output {
        Command::new("nsenter")
            .arg(format!("--target={}", self.leader))
            .args(["--mount", "--uts", "--ipc", "--net", "--pid", "--root", "--wd"])
            .args(["--", "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive"])
            .args(["/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// As `run`, and it must succeed; its stdout.
    fn sh(&self, script: &str) -> String {
        let out = self.run(script);
        assert!(
            out.status.success(),
            "in the machine: {script}\n{}\n--- journal ---\n{}",
            common::output_text(&out),
            self.journal()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// One property of staticlet.service (`systemctl show`).
    fn unit(&self, property: &str) -> String {
        self.sh(&format!("systemctl show --property={property} --value staticlet.service")).trim().to_owned()
    }

    fn journal(&self) -> String {
        common::output_text(&self.run("journalctl --no-pager -n 60 -u staticlet.service"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until staticlet.service is active with a main PID other than `not`; returns it.
    fn wait_active(&self, what: &str, not: &str) -> String {
        common::wait_for(Duration::from_secs(60), || {
            let (state, pid) = (self.unit("ActiveState"), self.unit("MainPID"));
            (state == "active" && pid != "0" && pid != not).then_some(pid)
        })
        .unwrap_or_else(|| panic!("timed out: {what}\n{}", self.journal()))
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        // SIGKILL to a PID namespace's init ends every process in it; nspawn then exits.
        if self.leader != 0 {
            let _ = Command::new("kill").args(["-KILL", &self.leader.to_string()]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && matches!(self.nspawn.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        remove_nspawn_cgroups();
    }
}

/// nspawn (with --keep-unit on a host without systemd) makes `payload/` (the container's tree)
/// and `supervisor/` under this process's cgroup in every hierarchy, and leaves them behind.
fn remove_nspawn_cgroups() {
    let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else { return };
    for line in own.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next(), fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        let hierarchy = match controllers {
            "" => "unified".to_owned(),
            named => named.strip_prefix("name=").unwrap_or(named).to_owned(),
        };
        let base = Path::new("/sys/fs/cgroup").join(hierarchy).join(path.trim_start_matches('/'));
        for leftover in ["payload", "supervisor"] {
            remove_cgroup_tree(&base.join(leftover));
        }
    }
}

/// rmdir, deepest first: a cgroup's files cannot be unlinked, only its empty directory removed.
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&entry.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
}

/// PIDs whose parent is `parent` and whose command is `name`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut found = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so split after its closing paren.
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        let comm = head.split_once(" (").map_or("", |(_, c)| c);
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if comm == name && ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

/// Says where the walk-through is (with --nocapture, and in a failure's output).
fn step(start: Instant, what: &str) {
    eprintln!("[{:6.1}s] {what}", start.elapsed().as_secs_f64());
}

/// The node's containers as the host's runtime lists them: (ID, created at, running), by ID. A
/// restarted container would be a new ID, a restarted pod a new sandbox and new IDs.
fn containers(node: &str) -> Vec<(String, i64, bool)> {
    let mut listed: Vec<_> =
        common::block_on(async { common::runtime().list_containers(&[("staticlet.io/node", node)]).await.unwrap() })
            .into_iter()
            .map(|c| (c.id, c.created_at, c.state == staticlet::cri::api::ContainerState::ContainerRunning as i32))
            .collect();
    listed.sort();
    listed
}

/// hack/package around the binary under test, at `version`.
fn package(out: &Path, version: &str) -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/package");
    let built = Command::new(script)
        // Uncompressed: xz takes a minute over a debug binary, and this package goes nowhere.
        .args(["--binary", env!("CARGO_BIN_EXE_staticlet"), "--version", version, "--compression", "none", "--out"])
        .arg(out)
        .output()
        .expect("hack/package");
    assert!(built.status.success(), "hack/package: {}", common::output_text(&built));
    let deb = PathBuf::from(String::from_utf8(built.stdout).unwrap().trim());
    assert!(deb.is_file(), "{}", deb.display());
    deb
}

#[test]
fn the_deb_under_a_real_systemd_keeps_every_pod_through_kill_stop_watchdog_upgrade_and_removal() {
    let _serial = common::serial();
    let t0 = Instant::now();
    assert!(
        Command::new("systemd-nspawn").arg("--version").output().is_ok_and(|o| o.status.success()),
        "systemd-nspawn not found: apt-get install systemd-container (hack/test does)"
    );
    let node = common::node_name("systemd");
    let work = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let path = work.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    };
    let (share, units, manifests, logs, root) =
        (dir("share"), dir("units"), dir("manifests"), dir("logs"), dir("root"));

    step(t0, "packaging");
    let old = package(&share, "0.1.0+systemd.1");
    let new = package(&share, "0.1.0+systemd.2");
    let listing = Command::new("dpkg-deb").arg("-c").arg(&old).output().unwrap();
    for file in [
        "./usr/bin/staticlet",
        "./usr/lib/systemd/system/staticlet.service",
        "./etc/staticlet/config.yaml",
        "./etc/default/staticlet",
        "./etc/kubernetes/manifests/",
        "./usr/share/bash-completion/completions/staticlet",
        "./usr/share/zsh/vendor-completions/_staticlet",
        "./usr/share/fish/vendor_completions.d/staticlet.fish",
        "./usr/share/man/man1/staticlet.1.gz",
    ] {
        assert!(
            common::output_text(&listing).lines().any(|l| l.ends_with(file)),
            "the package lacks {file}:\n{}",
            common::output_text(&listing)
        );
    }
    let conffiles = Command::new("dpkg-deb").arg("-I").arg(&old).arg("conffiles").output().unwrap();
    assert_eq!(common::output_text(&conffiles), "/etc/default/staticlet\n/etc/staticlet/config.yaml\n");

    // The machine's own units: firstboot masked (it would wait for a keypress), and containerd
    // (the unit Wants= it: the host's package would start a second containerd on the very
    // socket path the host's is linked at); the watchdog shortened to 5 s so provoking it
    // takes seconds, not the shipped 30.
    for masked in ["systemd-firstboot.service", "containerd.service"] {
        std::os::unix::fs::symlink("/dev/null", units.join(masked)).unwrap();
    }
    std::fs::create_dir_all(units.join("staticlet.service.d")).unwrap();
    std::fs::write(units.join("staticlet.service.d/watchdog.conf"), "[Service]\nWatchdogSec=5s\n").unwrap();
    // The admin's flags, in place before the package comes (a conffile dpkg must keep): this
    // test's node name, and log and volume directories at the same path on both sides, since
    // containerd (on the host) writes the logs and mounts the volumes staticlet names.
    let flags = format!(
        "STATICLET_ARGS=\"--node-name={node} --pod-logs-dir={} --root-dir={} --file-check-frequency=2s --healthz-port=0\"\n",
        logs.display(),
        root.display()
    );
    std::fs::write(share.join("default"), &flags).unwrap();
    let pod = common::shell_pod("web", "trap 'exit 0' TERM; while true; do sleep 1; done", "");
    std::fs::write(manifests.join("web.yaml"), &pod).unwrap();

    let socket = common::endpoint().strip_prefix("unix://").expect("a unix:// endpoint").to_owned();
    let binds = vec![
        (share.clone(), SHARE_INSIDE.to_owned()),
        (PathBuf::from(&socket), CRI_INSIDE.to_owned()),
        (manifests.clone(), "/etc/kubernetes/manifests".to_owned()),
        (logs.clone(), logs.display().to_string()),
        (root.clone(), root.display().to_string()),
    ];
    // Declared before the machine, so dropped after it: pods are removed once no staticlet
    // is left to start them again, however the test ends.
    let cleanup = Cleanup(node.clone());
    let name = format!("stl-{}", std::process::id());
    step(t0, "booting the machine");
    let machine = Machine::boot(&name, &units, &binds, &dir("scratch"), work.path().join("nspawn.log"));

    step(t0, "booted; installing the package");
    // Install. postinst enables and starts it (--no-block); with no runtime to answer, it must
    // stay `activating`: READY=1 only comes once the runtime answered.
    machine.sh(&format!("mkdir -p /etc/default && cp {SHARE_INSIDE}/default /etc/default/staticlet"));
    machine.sh(&format!("dpkg -i --force-confold {SHARE_INSIDE}/{}", old.file_name().unwrap().to_string_lossy()));
    assert_eq!(machine.sh("cat /etc/default/staticlet"), flags, "dpkg replaced the admin's /etc/default/staticlet");
    assert_eq!(machine.unit("UnitFileState"), "enabled");
    let started = common::wait_for(Duration::from_secs(20), || (machine.unit("MainPID") != "0").then_some(()));
    assert!(started.is_some(), "postinst did not start staticlet\n{}", machine.journal());
    for _ in 0..10 {
        assert_eq!(machine.unit("ActiveState"), "activating", "active with no runtime\n{}", machine.journal());
        std::thread::sleep(Duration::from_millis(400));
    }
    step(t0, "activating with no runtime, as it must; giving it the runtime");
    machine.sh(&format!("mkdir -p /run/containerd && ln -s {CRI_INSIDE} /run/containerd/containerd.sock"));
    let mut pid = machine.wait_active("staticlet to send READY=1 once the runtime answers", "0");
    assert!(machine.journal().contains("ready"), "{}", machine.journal());

    // The unit's hardening is in force on the running daemon (and it runs pods regardless).
    let status = machine.sh(&format!("cat /proc/{pid}/status"));
    for line in ["NoNewPrivs:\t1", "Seccomp:\t2"] {
        assert!(status.lines().any(|l| l == line), "staticlet's /proc status lacks {line:?}:\n{status}");
    }
    step(t0, "active (READY=1); waiting for the pod");
    // The pod, as the host's runtime sees it.
    let running = common::wait_for(Duration::from_secs(60), || {
        let listed = containers(&node);
        (listed.len() == 1 && listed[0].2).then_some(listed)
    })
    .unwrap_or_else(|| panic!("the pod did not start\n{}", machine.journal()));

    step(t0, "pod running; SIGKILL");
    // SIGKILL: systemd restarts it (Restart=always); the container is the same one.
    let restarts = machine.unit("NRestarts");
    machine.sh("systemctl kill --signal=KILL staticlet.service");
    pid = machine.wait_active("staticlet to be restarted after SIGKILL", &pid);
    assert_ne!(machine.unit("NRestarts"), restarts);
    assert_eq!(containers(&node), running, "a container changed when staticlet was killed");

    step(t0, "restarted after SIGKILL; systemctl stop");
    // stop: staticlet goes, every pod stays (KillMode=process).
    machine.sh("systemctl stop staticlet.service");
    assert_eq!(machine.unit("ActiveState"), "inactive");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(containers(&node), running, "`systemctl stop staticlet` touched a container");
    machine.sh("systemctl start staticlet.service");
    pid = machine.wait_active("staticlet to start again", &pid);

    step(t0, "checking the journal's fields");
    // The journal has the events' fields as fields of their own (tracing-journald).
    let entries: Vec<serde_json::Value> = machine
        .sh("journalctl --no-pager -o json -u staticlet.service")
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let started = entries
        .iter()
        .find(|e| e["MESSAGE"] == "container started")
        .unwrap_or_else(|| panic!("no `container started` entry:\n{}", machine.journal()));
    let full_name = format!("default/web-{node}");
    assert_eq!(started["POD"], full_name.as_str(), "{started}");
    assert_eq!(started["NAMESPACE"], "default", "{started}");
    assert_eq!(started["CONTAINER"], "main", "{started}");
    assert!(started["SOURCE"].as_str().is_some_and(|s| s.contains("web.yaml")), "{started}");
    eprintln!("{started}");

    step(t0, "SIGSTOP, for the watchdog");
    // The watchdog: a stopped (wedged) process sends no WATCHDOG=1, so systemd kills it after
    // WatchdogSec and restarts it. Still the same container.
    let restarts = machine.unit("NRestarts");
    machine.sh(&format!("kill -STOP {pid}"));
    pid = machine.wait_active("systemd's watchdog to restart the stopped staticlet", &pid);
    assert_ne!(machine.unit("NRestarts"), restarts);
    assert!(machine.journal().contains("Watchdog timeout"), "{}", machine.journal());
    assert_eq!(containers(&node), running, "a container changed when the watchdog restarted staticlet");

    step(t0, "restarted by the watchdog; a bad config");
    // A bad config exits 78, which ends the restart loop (RestartPreventExitStatus=78).
    machine.sh("cp /etc/staticlet/config.yaml /root/config.yaml && echo 'notAField: 1' >>/etc/staticlet/config.yaml");
    let _ = machine.run("systemctl restart staticlet.service");
    let failed = common::wait_for(Duration::from_secs(20), || (machine.unit("ActiveState") == "failed").then_some(()));
    assert!(failed.is_some(), "{}", machine.journal());
    assert_eq!(machine.unit("ExecMainStatus"), "78");
    let restarts = machine.unit("NRestarts");
    std::thread::sleep(Duration::from_secs(5)); // RestartSec=2: two restarts' worth
    assert_eq!(machine.unit("NRestarts"), restarts, "restarted despite exit 78\n{}", machine.journal());
    assert_eq!(machine.unit("ActiveState"), "failed");
    assert!(machine.journal().contains("notAField"), "{}", machine.journal());
    assert_eq!(containers(&node), running, "a container changed while staticlet could not start");
    machine.sh("cp /root/config.yaml /etc/staticlet/config.yaml && systemctl reset-failed staticlet.service");
    machine.sh("systemctl start staticlet.service");
    pid = machine.wait_active("staticlet to start with the good config", &pid);

    step(t0, "exit 78 held; upgrading");
    // Upgrade: the new package's postinst restarts staticlet (try-restart) and nothing else.
    machine.sh(&format!("dpkg -i --force-confold {SHARE_INSIDE}/{}", new.file_name().unwrap().to_string_lossy()));
    assert_eq!(machine.sh("dpkg-query -W -f '${Version}' staticlet"), "0.1.0+systemd.2");
    machine.wait_active("the upgraded staticlet to run", &pid);
    assert_eq!(containers(&node), running, "the upgrade restarted a container");
    // Given time to judge the pod, it still keeps it (adopted, not replaced).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(containers(&node), running, "the upgraded staticlet replaced a container");

    step(t0, "upgraded; removing");
    // Removal: staticlet stops; the pods and the manifests stay.
    machine.sh("dpkg -r staticlet");
    assert_eq!(machine.sh("test -e /usr/bin/staticlet && echo present || echo gone").trim(), "gone");
    assert_ne!(machine.unit("ActiveState"), "active");
    assert_eq!(machine.sh("ls /etc/kubernetes/manifests").trim(), "web.yaml");
    assert_eq!(std::fs::read_to_string(manifests.join("web.yaml")).unwrap(), pod);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(containers(&node), running, "`dpkg -r staticlet` touched a container");

    step(t0, "removed; pods and manifests kept");
    drop(machine);
    drop(cleanup);
}

/// Removes the node's pods from the runtime.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        common::remove_node_pods(&self.0);
    }
}
