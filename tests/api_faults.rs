//! API server faults through an HTTPS relay (common::api_relay) between staticlet and the real
//! kube-apiserver: 429 with Retry-After, 500s, dropped connections and latency on every request,
//! and watches that expire at once (410 Gone). Nothing local waits for the API server, the
//! mirrors converge once the fault ends, and the requests staticlet makes meanwhile stay few
//! (printed per minute by verb).

mod common;

use std::time::{Duration, Instant};

use common::{
    api_relay::{ApiFault, ApiRelay},
    *,
};
use serde_json::Value;

/// A daemon whose API server is reached through a relay; the Node is deleted when the test ends.
fn relayed_daemon(test: &str) -> (ApiRelay, Daemon, NodeCleanup) {
    let mut d = Daemon::new(test);
    let cleanup = NodeCleanup(d.node.clone());
    let kubeconfig = std::fs::read_to_string(node_kubeconfig(&d.node)).unwrap();
    let (cert, key) =
        issue_cert(d.dir.path(), "relay", "/CN=api-relay", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth");
    let relay = ApiRelay::start(&kubeconfig, (&cert, &key));
    let relayed = d.dir.path().join("kubeconfig");
    std::fs::write(&relayed, &relay.kubeconfig).unwrap();
    d.extra = vec![format!("--kubeconfig={}", relayed.display()), "--node-ip=127.0.0.1".into()];
    (relay, d, cleanup)
}

fn sleeper(name: &str) -> String {
    shell_pod(name, "exec sleep 3600", "")
}

fn mirror(d: &Daemon, name: &str) -> Option<Value> {
    let (ok, out, _) = kubectl(&["get", "pod", &format!("{name}-{}", d.node), "-n", "default", "-o", "json"]);
    ok.then(|| serde_json::from_str(&out).ok()).flatten()
}

fn mirror_running(d: &Daemon, name: &str) -> bool {
    mirror(d, name)
        .is_some_and(|m| m["status"]["phase"] == "Running" && m["status"]["containerStatuses"][0]["ready"] == true)
}

/// Requests per minute over `window`, and the counts by verb, for the printed table.
fn per_minute(counts: &std::collections::BTreeMap<String, usize>, window: Duration) -> f64 {
    counts.values().sum::<usize>() as f64 * 60.0 / window.as_secs_f64()
}

#[test]
fn api_server_faults_hold_up_nothing_local_converge_the_mirrors_and_draw_no_storm() {
    let _serial = serial();
    let (relay, mut d, _cleanup) = relayed_daemon("api-faults");
    d.start();
    d.write_manifest("steady.yaml", &sleeper("steady"));
    let steady = d.wait_for_running("steady");
    d.wait_until("steady's mirror runs", Duration::from_secs(60), |d| mirror_running(d, "steady"));
    const WINDOW: Duration = Duration::from_secs(10);
    let start = Instant::now();
    std::thread::sleep(WINDOW);
    let at_rest = relay.requests_since(start);
    println!("at rest: {:.0} requests/min {at_rest:?}", per_minute(&at_rest, WINDOW));

    for (i, (what, fault)) in [
        ("429 with Retry-After: 5", ApiFault::Status(429, Some(5))),
        ("500", ApiFault::Status(500, None)),
        ("connection dropped", ApiFault::Reset),
        ("2 s of latency", ApiFault::Delay(Duration::from_secs(2))),
    ]
    .into_iter()
    .enumerate()
    {
        let start = Instant::now();
        relay.inject("*", fault, u32::MAX);
        relay.drop_connections();
        // Something local happens meanwhile, and does not wait for the API server.
        let name = format!("during-{i}");
        d.write_manifest(&format!("{name}.yaml"), &sleeper(&name));
        d.wait_for_running(&name);
        let local = start.elapsed();
        std::thread::sleep(WINDOW.saturating_sub(start.elapsed()));
        let during = relay.requests_since(start);
        relay.clear();
        let ended = Instant::now();
        d.wait_until(&format!("{name}'s mirror runs after {what}"), Duration::from_secs(90), |d| {
            mirror_running(d, &name)
        });
        let converged = ended.elapsed();
        let after = relay.requests_since(ended);
        let rate = per_minute(&during, WINDOW);
        println!(
            "{what} on every request for {WINDOW:?}: a pod written meanwhile ran in {:.1} s; {rate:.0} requests/min \
             {during:?}; mirrors converged {:.1} s after, with {} requests",
            local.as_secs_f64(),
            converged.as_secs_f64(),
            after.values().sum::<usize>()
        );
        // A retry storm is thousands a minute; the Node keeper, the watch's back-off and the
        // mirror loop's wakes are a few dozen.
        assert!(rate <= 300.0, "{what}: no retry storm: {rate:.0}/min {during:?}");
    }
    assert_eq!(
        running_container_ids(&steady.uid),
        vec![steady.containers[0].id.clone()],
        "the API server's faults cost no container"
    );

    // Watches that expire at once, as after an etcd compaction: the watch lists again and goes
    // on, and a mirror deleted through the API is still made again at once.
    relay.inject("watch", ApiFault::WatchExpired, 3);
    relay.drop_connections();
    d.wait_until("three watches expired", Duration::from_secs(120), |_| relay.pending("watch") == 0);
    let old = mirror(&d, "steady").unwrap()["metadata"]["uid"].clone();
    assert!(kubectl(&["delete", "pod", &format!("steady-{}", d.node), "-n", "default", "--wait=false"]).0);
    d.wait_until("the deleted mirror is made again", Duration::from_secs(30), |d| {
        mirror(d, "steady").is_some_and(|m| m["metadata"]["uid"] != old && m["status"]["phase"] == "Running")
    });
    assert!(d.log().contains("too old resource version"), "the expiry is logged\n{}", d.log());
}

#[test]
fn an_api_server_restarted_after_an_etcd_compaction_costs_no_pod_and_the_mirrors_come_back() {
    let _serial = serial();
    let (relay, mut d, _cleanup) = relayed_daemon("api-restart");
    d.start();
    d.write_manifest("steady.yaml", &sleeper("steady"));
    let steady = d.wait_for_running("steady");
    d.wait_until("steady's mirror runs", Duration::from_secs(60), |d| mirror_running(d, "steady"));

    // Everything staticlet's watch has seen is compacted away, and the API server's watch cache
    // starts anew: the watch resumes from a revision etcd no longer has.
    let revision = testenv(&["compact-etcd"]);
    let start = Instant::now();
    let restart = std::thread::spawn(|| testenv(&["restart-apiserver"]));
    let upstream = relay.upstream.clone();
    assert!(
        wait_for(Duration::from_secs(30), || std::net::TcpStream::connect(&upstream).is_err().then_some(())).is_some(),
        "kube-apiserver at {upstream} stopped"
    );
    // While it is down, a pod written runs: nothing local waits for the API server.
    let written = Instant::now();
    d.write_manifest("during.yaml", &sleeper("during"));
    d.wait_for_running("during");
    let local = written.elapsed();
    restart.join().unwrap();
    let down = start.elapsed();
    let during = relay.requests_since(start);
    let ended = Instant::now();
    d.wait_until("during's mirror runs after the restart", Duration::from_secs(90), |d| mirror_running(d, "during"));
    let converged = ended.elapsed();
    let rate = per_minute(&during, down);
    let expired = d.log().matches("too old resource version").count();
    println!(
        "etcd compacted at revision {revision}, kube-apiserver restarted in {:.1} s (a pod written meanwhile ran in \
         {:.1} s): {rate:.0} requests/min {during:?}; mirrors converged {:.1} s after; watch expiries logged: {expired}",
        down.as_secs_f64(),
        local.as_secs_f64(),
        converged.as_secs_f64()
    );
    assert!(rate <= 300.0, "no retry storm while the API server restarts: {rate:.0}/min {during:?}");

    // The watch goes on after the restart: a mirror deleted through the API comes back at once.
    let old = mirror(&d, "steady").unwrap()["metadata"]["uid"].clone();
    assert!(kubectl(&["delete", "pod", &format!("steady-{}", d.node), "-n", "default", "--wait=false"]).0);
    d.wait_until("the deleted mirror is made again", Duration::from_secs(30), |d| {
        mirror(d, "steady").is_some_and(|m| m["metadata"]["uid"] != old && m["status"]["phase"] == "Running")
    });
    assert_eq!(
        running_container_ids(&steady.uid),
        vec![steady.containers[0].id.clone()],
        "the restart cost no container"
    );
}
