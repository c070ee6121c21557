//! The kubelet API on a staticlet node, through the real API server and real kubectl: logs,
//! exec, attach, port-forward and cp on mirror pods; and the API's own door, with curl:
//! who gets in (client certificates of the cluster CA, tokens the API server vouches for) and
//! what each may do (SubjectAccessReviews on nodes/<subresource>).

mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

/// A cluster node whose kubelet API serves a certificate of the cluster CA (what the API
/// server's --kubelet-certificate-authority checks) and checks client certificates against it.
fn node_with_api(test: &str) -> Daemon {
    let mut d = Daemon::new(test);
    let (crt, key) = serving_cert(d.dir.path(), &d.node);
    d.extra = vec![
        format!("--kubeconfig={}", node_kubeconfig(&d.node)),
        "--node-ip=127.0.0.1".into(),
        format!("--tls-cert-file={}", crt.display()),
        format!("--tls-private-key-file={}", key.display()),
        format!("--client-ca-file={}", cluster_pki().join("ca.crt").display()),
    ];
    d
}

fn wait_for_mirror_running(d: &Daemon, mirror: &str) {
    d.wait_until(&format!("mirror {mirror} Running"), Duration::from_secs(60), |_| {
        kubectl(&["get", "pod", mirror, "-o", "jsonpath={.status.phase}"]).1 == "Running"
    });
}

/// curl against the node's kubelet API; returns (HTTP status, body). `auth` are curl options.
fn curl(d: &Daemon, path: &str, auth: &[&str]) -> (u16, String) {
    let url = format!("https://127.0.0.1:{}{path}", d.kubelet_port);
    let ca = cluster_pki().join("ca.crt");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", &ca.display().to_string(), "-w", "\n%{http_code}"])
        .args(auth)
        .arg(&url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn kubectl_logs_exec_attach_cp_and_port_forward_work_on_mirror_pods() {
    let _guard = serial();
    let mut d = node_with_api("node_api_verbs");
    let _cleanup = NodeCleanup(d.node.clone());
    let web_port = 20000 + (std::process::id() % 5000) as u16;
    d.write_manifest(
        "talker.yaml",
        &shell_pod("talker", "i=0; while true; do i=$((i+1)); echo line-$i; echo err-$i >&2; sleep 0.2; done", ""),
    );
    d.write_manifest("web.yaml", &web_pod("web", web_port));
    d.start();
    let (talker, web) = (format!("talker-{}", d.node), format!("web-{}", d.node));
    wait_for_mirror_running(&d, &talker);
    wait_for_mirror_running(&d, &web);
    d.wait_until("talker has written 10 lines", Duration::from_secs(20), |_| {
        kubectl(&["logs", &talker]).1.contains("line-10\n")
    });

    // logs: all, tail, timestamps, limit, previous (none yet).
    let (ok, all, err) = kubectl(&["logs", &talker]);
    // stdout and stderr both, each line once (their order is the runtime's).
    assert!(ok && all.lines().filter(|l| *l == "line-1" || *l == "err-1").count() == 2, "{all}{err}");
    let (ok, tail, _) = kubectl(&["logs", &talker, "--tail", "2"]);
    assert!(ok && tail.lines().count() == 2, "{tail}");
    let (_, stamped, _) = kubectl(&["logs", &talker, "--tail", "1", "--timestamps"]);
    let stamp = stamped.split(' ').next().unwrap_or_default();
    assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "an RFC 3339 timestamp first: {stamped}");
    let (_, limited, _) = kubectl(&["logs", &talker, "--limit-bytes", "3"]);
    assert!(limited.len() == 3 && (limited == "lin" || limited == "err"), "{limited:?}");
    let (_, since, _) = kubectl(&["logs", &talker, "--since", "1s"]);
    let (_, all_now, _) = kubectl(&["logs", &talker]);
    assert!(!since.is_empty() && since.lines().count() < all_now.lines().count(), "since 1s is the last part of it");
    let (ok, _, err) = kubectl(&["logs", &talker, "--previous"]);
    assert!(!ok && err.contains("previous terminated container \"main\""), "{err}");

    // logs -f: lines keep coming while it is open.
    let mut follow = Command::new("kubectl")
        .args(["logs", "-f", &talker, "--tail", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = follow.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && seen.iter().filter(|b| **b == b'\n').count() < 6 {
            match std::io::Read::read(&mut stdout, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let followed = reader.join().unwrap();
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(followed.lines().count() >= 6, "logs -f streams new lines as they are written: {followed:?}");

    // exec: output, exit code, stdin.
    let (ok, out, err) = kubectl(&["exec", &talker, "--", "sh", "-c", "echo out; echo err >&2"]);
    assert!(ok && out == "out\n" && err.contains("err"), "{out}|{err}");
    let (ok, _, err) = kubectl(&["exec", &talker, "--", "sh", "-c", "exit 3"]);
    assert!(!ok && err.contains("exit code 3"), "{err}");
    let mut cat = Command::new("kubectl")
        .args(["exec", "-i", &talker, "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut cat.stdin.take().unwrap(), b"through stdin\n").unwrap();
    let out = cat.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");

    // cp out of the pod (tar through exec).
    let copy = d.dir.path().join("copied");
    let (ok, _, err) = kubectl(&["cp", &format!("default/{talker}:/etc/passwd"), &copy.display().to_string()]);
    assert!(ok, "{err}");
    assert!(std::fs::read_to_string(&copy).unwrap().starts_with("root:"), "the pod's /etc/passwd");

    // attach: the running container's output, live.
    let out = Command::new("timeout")
        .args(["3", "kubectl", "attach", &talker, "-c", "main"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let attached = String::from_utf8_lossy(&out.stdout);
    assert!(attached.contains("line-"), "attach shows the container's output: {attached:?}");

    // port-forward to the web pod's port.
    let local = free_port();
    let mut forward = Command::new("kubectl")
        .args(["port-forward", &format!("pod/{web}"), &format!("{local}:{web_port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut fetched = Err(String::new());
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        fetched = http_get(local, "/passwd");
        if fetched.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = forward.kill();
    let _ = forward.wait();
    let page = fetched.expect("port-forward reaches the pod's httpd");
    assert!(page.contains("root:"), "{page}");
}

#[test]
fn the_kubelet_api_lets_in_only_whom_the_cluster_vouches_for_and_authorizes_each_request() {
    let _guard = serial();
    let mut d = node_with_api("node_api_door");
    let _cleanup = NodeCleanup(d.node.clone());
    d.write_manifest("quiet.yaml", &shell_pod("quiet", "echo hello; sleep 3600", ""));
    d.start();
    let quiet = format!("quiet-{}", d.node);
    wait_for_mirror_running(&d, &quiet);
    let logs = format!("/containerLogs/default/{quiet}/main");
    let dir = d.dir.path();

    // Nobody: 401.
    assert_eq!(curl(&d, "/pods", &[]).0, 401);
    // The API server's own client identity (system:masters): everything.
    let apiserver =
        (cluster_pki().join("apiserver-kubelet-client.crt"), cluster_pki().join("apiserver-kubelet-client.key"));
    let as_apiserver =
        ["--cert", &*apiserver.0.display().to_string(), "--key", &*apiserver.1.display().to_string()].map(String::from);
    let as_apiserver: Vec<&str> = as_apiserver.iter().map(String::as_str).collect();
    let (code, body) = curl(&d, &logs, &as_apiserver);
    assert_eq!((code, body.as_str()), (200, "hello\n"));
    let (code, body) = curl(&d, "/pods", &as_apiserver);
    assert!(code == 200 && body.contains(&quiet), "{code} {body}");

    // A user of the cluster CA with nodes/metrics and nodes/stats only: those yes, logs no.
    let (crt, key) = issue_cert(dir, "viewer", "/CN=metrics-viewer", "extendedKeyUsage=clientAuth");
    let role = format!("{}-metrics", d.node);
    let _ = kubectl(&["create", "clusterrole", &role, "--verb=get", "--resource=nodes/metrics,nodes/stats"]);
    let _ =
        kubectl(&["create", "clusterrolebinding", &role, &format!("--clusterrole={role}"), "--user=metrics-viewer"]);
    let viewer = ["--cert", &*crt.display().to_string(), "--key", &*key.display().to_string()].map(String::from);
    let viewer: Vec<&str> = viewer.iter().map(String::as_str).collect();
    let (code, body) = curl(&d, "/metrics", &viewer);
    assert!(code == 200 && body.contains("kubelet_running_pods"), "{code} {body}");
    let (code, body) = curl(&d, "/metrics/resource", &viewer);
    let series =
        format!("container_memory_working_set_bytes{{container=\"main\",namespace=\"default\",pod=\"{quiet}\"}}");
    assert!(code == 200 && body.contains(&series), "{code} {body}");
    let (code, body) = curl(&d, "/stats/summary", &viewer);
    let summary: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(code, 200, "{body}");
    assert_eq!(summary["node"]["nodeName"], d.node.as_str());
    assert!(summary["pods"].as_array().unwrap().iter().any(|p| p["podRef"]["name"] == quiet.as_str()), "{body}");
    let (code, body) = curl(&d, &logs, &viewer);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("user=metrics-viewer, verb=get, resource=nodes, subresource=proxy"), "{body}");

    // A certificate of another CA: the handshake itself fails.
    let other = dir.join("other");
    std::fs::create_dir(&other).unwrap();
    let script = format!(
        "cd {o} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k -out c -subj /CN=admin -days 1 2>/dev/null",
        o = other.display()
    );
    assert!(Command::new("sh").args(["-c", &script]).status().unwrap().success());
    let forged = ["--cert", &*other.join("c").display().to_string(), "--key", &*other.join("k").display().to_string()]
        .map(String::from);
    let forged: Vec<&str> = forged.iter().map(String::as_str).collect();
    assert_eq!(curl(&d, "/pods", &forged).0, 0, "no HTTP answer to a certificate of another CA");

    // Tokens: a ServiceAccount's, vouched for by TokenReview, authorized like anyone.
    let sa = format!("{}-reader", d.node);
    let _ = kubectl(&["create", "serviceaccount", &sa, "-n", "default"]);
    let _ = kubectl(&[
        "create",
        "clusterrolebinding",
        &sa,
        &format!("--clusterrole={role}"),
        &format!("--serviceaccount=default:{sa}"),
    ]);
    let (ok, token, err) = kubectl(&["create", "token", &sa, "-n", "default"]);
    assert!(ok, "{err}");
    let bearer = format!("Authorization: Bearer {}", token.trim());
    let (code, _) = curl(&d, "/metrics", &["-H", &bearer]);
    assert_eq!(code, 200);
    assert_eq!(curl(&d, &logs, &["-H", &bearer]).0, 403);
    let (_, other_audience, _) =
        kubectl(&["create", "token", &sa, "-n", "default", "--audience", "not-the-api-server"]);
    assert_eq!(curl(&d, "/metrics", &["-H", &format!("Authorization: Bearer {}", other_audience.trim())]).0, 401);
    assert_eq!(curl(&d, "/metrics", &["-H", "Authorization: Bearer not-a-token"]).0, 401);

    // Paths: a pod not on this node is 404; exec without an upgrade is 400.
    let (code, body) = curl(&d, "/containerLogs/default/nothing-here/main", &as_apiserver);
    assert_eq!(code, 404, "{body}");
    let (code, body) = curl(
        &d,
        &format!("/exec/default/{quiet}/main?command=true&output=1"),
        &[&as_apiserver[..], &["-X", "POST"]].concat(),
    );
    assert_eq!((code, body.trim()), (400, "Upgrade request required"));

    for name in [&role, &sa] {
        let _ = kubectl(&["delete", "clusterrolebinding", name]);
    }
    let _ = kubectl(&["delete", "clusterrole", &role]);
    let _ = kubectl(&["delete", "serviceaccount", &sa, "-n", "default"]);
}

#[test]
fn a_slow_client_is_cut_off_and_does_not_hold_the_api() {
    let _guard = serial();
    let mut d = node_with_api("node_api_slow");
    let _cleanup = NodeCleanup(d.node.clone());
    d.start();
    // Connect and say nothing: the TLS handshake must be done within 10 s.
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", d.kubelet_port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = std::io::Read::read(&mut idle, &mut buf);
    assert!(matches!(read, Ok(0) | Err(_)), "the server closes a connection that never handshakes");
    assert!(started.elapsed() < Duration::from_secs(15), "closed after the handshake timeout: {:?}", started.elapsed());
    // Meanwhile others were served.
    assert_eq!(curl(&d, "/healthz", &[]).0, 401, "answered (unauthenticated) while the idle one hung");
}

#[test]
fn logs_follow_ends_with_the_last_line_when_the_container_exits_and_follows_the_restarted_one() {
    let _guard = serial();
    let mut d = node_with_api("node_api_follow_restart");
    let _cleanup = NodeCleanup(d.node.clone());
    // Runs 3 s, says goodbye, exits 1; restartPolicy Always brings it back (after a back-off).
    d.write_manifest(
        "blinker.yaml",
        &shell_pod("blinker", "echo hello-$(date +%s%N); sleep 3; echo goodbye; exit 1", ""),
    );
    d.start();
    let blinker = format!("blinker-{}", d.node);
    wait_for_mirror_running(&d, &blinker);
    let started = Instant::now();
    let out =
        Command::new("timeout").args(["30", "kubectl", "logs", "-f", &blinker]).stdin(Stdio::null()).output().unwrap();
    let followed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "logs -f ended by itself, not by the 30 s timeout: {followed:?}");
    assert!(followed.ends_with("goodbye\n"), "the last line came before the end: {followed:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "ended when the container did");
    // The restarted container is followed by the next logs -f, from its own first line.
    d.wait_until("the container restarted", Duration::from_secs(60), |_| {
        kubectl(&["get", "pod", &blinker, "-o", "jsonpath={.status.containerStatuses[0].restartCount}"]).1 == "1"
            && kubectl(&["get", "pod", &blinker, "-o", "jsonpath={.status.phase}"]).1 == "Running"
    });
    let (ok, current, _) = kubectl(&["logs", &blinker]);
    let (_, previous, previous_err) = kubectl(&["logs", &blinker, "--previous"]);
    assert!(ok && current.starts_with("hello-") && current != previous, "{current:?} vs {previous:?}");
    assert!(previous.ends_with("goodbye\n"), "--previous is the exited one: {previous:?} {previous_err}");
}

#[test]
fn a_hundred_concurrent_follows_all_get_every_new_line() {
    let _guard = serial();
    let mut d = node_with_api("node_api_hundred");
    let _cleanup = NodeCleanup(d.node.clone());
    d.write_manifest(
        "ticker.yaml",
        &shell_pod("ticker", "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.5; done", ""),
    );
    d.start();
    let ticker = format!("ticker-{}", d.node);
    wait_for_mirror_running(&d, &ticker);
    // 25 s each: a hundred kubectl processes starting at once on 2 cores can take 10 s to attach,
    // and the window is not what is tested; that no new line is missed is.
    let followers: Vec<std::process::Child> = (0..100)
        .map(|_| {
            Command::new("timeout")
                .args(["25", "kubectl", "logs", "-f", &ticker, "--tail", "0"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<std::process::Output> = followers.into_iter().map(|f| f.wait_with_output().unwrap()).collect();
    let ticks: Vec<Vec<u64>> = outputs
        .iter()
        .map(|o| {
            let out = String::from_utf8_lossy(&o.stdout);
            out.lines().filter_map(|l| l.strip_prefix("tick-")?.parse().ok()).collect()
        })
        .collect();
    let failed: Vec<String> = outputs
        .iter()
        .zip(&ticks)
        .filter(|(_, seen)| seen.len() < 5 || seen.windows(2).any(|w| w[1] != w[0] + 1))
        .map(|(o, seen)| format!("ticks {seen:?}: {}", String::from_utf8_lossy(&o.stderr)))
        .collect();
    assert!(
        failed.is_empty(),
        "every follower saw at least 5 ticks, each new one, none skipped: {} did not: {:?}",
        failed.len(),
        failed.first()
    );
    assert!(d.exit_status().is_none(), "staticlet is still running");
}
