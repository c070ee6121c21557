//! The pod's network identity on the real runtime: the managed /etc/hosts (pod IP, hostname and
//! subdomain, hostAliases) on the CNI bridge, the node's hosts file with hostAliases appended on
//! the host network, and `runtimeClassName` as the runtime handler (an unknown one is an error
//! naming the field, and nothing half-runs).

mod common;

use std::time::Duration;

use common::*;
use staticlet::cri::Cri;

fn daemon(test: &str) -> Daemon {
    let mut d = Daemon::new(test);
    d.extra = vec!["--node-ip=127.0.0.1".into()];
    d
}

/// `cat /etc/hosts` in the pod's first running container.
fn hosts_in(uid: &str) -> String {
    let id = running_container_ids(uid).into_iter().next().expect("a running container");
    let cmd = vec!["cat".to_owned(), "/etc/hosts".to_owned()];
    let result = block_on(async { runtime().exec_sync(&id, cmd, Duration::from_secs(10)).await.unwrap() });
    assert_eq!(result.exit_code, 0, "{}", result.output);
    result.output
}

const ALIASES: &str = "  hostAliases:\n  - {ip: 10.1.2.3, hostnames: [foo.local, bar.local]}\n";

#[test]
fn bridged_pod_gets_kubelets_managed_hosts_file_with_its_ip_fqdn_and_aliases() {
    let _serial = serial();
    let mut d = daemon("hosts-bridge");
    d.start();
    let manifest = shell_pod("named", "sleep 3600", &format!("  hostname: web\n  subdomain: sub\n{ALIASES}"))
        .replace("  hostNetwork: true\n", "");
    d.write_manifest("named.yaml", &manifest);
    let pod = d.wait_for_running("named");
    assert!(pod.ip.starts_with(&pod_subnet_prefix()), "on the test's CNI bridge: {}", pod.ip);

    let hosts = hosts_in(&pod.uid);
    assert!(hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(hosts.contains(&format!("\n{}\tweb.sub.default.svc.cluster.local\tweb\n", pod.ip)), "{hosts}");
    assert!(hosts.ends_with("\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"), "{hosts}");
}

#[test]
fn host_network_pod_gets_the_nodes_hosts_file_with_aliases_appended() {
    let _serial = serial();
    let mut d = daemon("hosts-node");
    d.start();
    d.write_manifest("aliased.yaml", &shell_pod("aliased", "sleep 3600", ALIASES));
    let pod = d.wait_for_running("aliased");

    let hosts = hosts_in(&pod.uid);
    let node = std::fs::read_to_string("/etc/hosts").unwrap();
    assert_eq!(
        hosts,
        format!(
            "# Kubernetes-managed hosts file (host network).\n{node}\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"
        )
    );
}

#[test]
fn an_unknown_runtime_class_is_an_error_naming_the_field_and_nothing_runs() {
    let _serial = serial();
    let mut d = daemon("handler");
    d.start();
    d.write_manifest("odd.yaml", &shell_pod("odd", "sleep 3600", "  runtimeClassName: no-such-handler\n"));
    let pod = d.wait_for_pod("odd", "the sandbox refused", |p| p.last_error.is_some());
    let error = pod.last_error.clone().unwrap();
    assert!(error.contains(r#"spec.runtimeClassName "no-such-handler""#), "{error}");
    assert!(error.contains("RunPodSandbox"), "{error}");
    assert_eq!(pod.status, "ContainerCreating", "{pod:?}");
    assert!(runtime_sandboxes(&pod.uid).is_empty(), "no sandbox is left behind");
    assert!(runtime_containers(&pod.uid).is_empty(), "no container is created");
}

#[test]
fn dns_policy_none_gives_the_pod_its_dns_config_as_resolv_conf() {
    let _serial = serial();
    let mut d = daemon("dns-none");
    d.start();
    let dns = "  dnsPolicy: None\n  dnsConfig: {nameservers: [10.0.0.10], searches: [svc.example], options: [{name: ndots, value: '5'}]}\n";
    let manifest = shell_pod("resolver", "sleep 3600", dns).replace("  hostNetwork: true\n", "");
    d.write_manifest("resolver.yaml", &manifest);
    let pod = d.wait_for_running("resolver");
    let id = running_container_ids(&pod.uid).into_iter().next().unwrap();
    let cmd = vec!["cat".to_owned(), "/etc/resolv.conf".to_owned()];
    let result = block_on(async { runtime().exec_sync(&id, cmd, Duration::from_secs(10)).await.unwrap() });
    let resolv = result.output;
    assert!(resolv.contains("nameserver 10.0.0.10"), "{resolv}");
    assert!(resolv.contains("search svc.example"), "{resolv}");
    assert!(resolv.contains("options ndots:5"), "{resolv}");
}
