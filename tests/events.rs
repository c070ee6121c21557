//! Container events against the real runtime: on containerd 2.x (`hack/testenv up --runtime
//! containerd2`) staticlet follows `GetContainerEvents` and stops relisting at rest; on Debian's
//! 1.6, which has no events, it relists every second as before. The same tests run on both and
//! pin what each runtime must show.

mod common;

use std::time::Duration;

use common::*;

const LISTINGS: &str = "kubelet_runtime_operations_total{operation_type=\"list_podsandbox\"}";

#[test]
fn the_relist_rests_while_events_are_followed_and_an_orphan_made_outside_is_still_stopped() {
    let _serial = serial();
    let mut d = Daemon::new("evented");
    d.start();
    d.write_manifest("web.yaml", &web_pod("static-web", free_port()));
    let pod = d.wait_for_running("static-web");
    let evented = runtime_has_events();
    let followed = if evented { 1.0 } else { 0.0 };
    d.wait_until("the event stream's state is reported", Duration::from_secs(20), |d| {
        d.metric("staticlet_container_events_followed") == followed
    });

    // Five idle seconds: one listing a second without events, none (bar a stray poke) with them.
    let before = d.metric(LISTINGS);
    std::thread::sleep(Duration::from_secs(5));
    let idle = d.metric(LISTINGS) - before;
    if evented {
        assert!(idle <= 1.0, "{idle} listings in 5 idle seconds with events followed");
        assert!(d.log().contains("following the runtime's container events"), "{}", d.log());
    } else {
        assert!(idle >= 4.0, "{idle} listings in 5 idle seconds without events");
        assert!(d.log().contains("the runtime has no container events"), "{}", d.log());
    }

    // A sandbox of this node's that no manifest defines appears, made from outside: no process
    // staticlet watches exits, so with the relist resting (its safety net is 300 s) only the
    // runtime's events can tell staticlet, which stops the orphan. The pod it runs stays.
    let orphan = block_on(async { runtime().run_sandbox(orphan_sandbox(&d.node), "").await.unwrap() });
    d.wait_until("the orphan sandbox is stopped", Duration::from_secs(60), |_| {
        runtime_sandboxes(ORPHAN_UID).iter().all(|s| s.id != orphan || s.state != 0)
    });
    assert_eq!(d.pod("static-web").unwrap().restarts, 0);
    assert_eq!(runtime_sandboxes(&pod.uid).len(), 1);
}

const ORPHAN_UID: &str = "0b7a2d9e-events-orphan";

/// A host-network sandbox labelled as one of `node`'s pods, without the origin annotation a pod
/// staticlet started carries.
fn orphan_sandbox(node: &str) -> staticlet::cri::api::PodSandboxConfig {
    use staticlet::cri::api;
    let labels = [
        ("staticlet.io/node", node),
        ("io.kubernetes.pod.uid", ORPHAN_UID),
        ("io.kubernetes.pod.name", "orphan"),
        ("io.kubernetes.pod.namespace", "default"),
    ];
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: "orphan".into(),
            uid: ORPHAN_UID.into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: api::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
