//! A pod's hostname, domain and /etc/hosts, as kubelet makes them (kubelet_pods.go:
//! `GeneratePodHostNameAndDomain`, `managedHostsFileContent`, `nodeHostsFileContent`). The
//! contents are pure functions; `prepare` writes `<rootDir>/pods/<uid>/etc-hosts` and bind-mounts
//! it at /etc/hosts into a container, unless the container mounts /etc/hosts itself.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::HostAlias;

use super::api;
use crate::manifest::StaticPod;

/// The cluster domain of `<hostname>.<subdomain>.<namespace>.svc.<domain>`: kubelet's
/// `--cluster-domain` as kubeadm sets it. staticlet has no setting for it yet.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The longest FQDN `setHostnameAsFQDN` may make (kubelet: 64, the kernel's hostname limit).
pub const MAX_FQDN: usize = 64;

/// kubelet's pod hostname: `spec.hostname` or the pod's name, cut to 63 characters without a
/// trailing `-` or `.`; and its domain `<subdomain>.<namespace>.svc.<cluster domain>` when
/// `spec.subdomain` is set.
pub fn hostname_and_domain(pod: &StaticPod) -> (String, Option<String>) {
    let spec = pod.spec();
    let name = spec.hostname.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| pod.name().to_owned());
    let hostname = name.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_owned();
    let domain = spec
        .subdomain
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| format!("{s}.{}.svc.{CLUSTER_DOMAIN}", pod.namespace()));
    (hostname, domain)
}

/// The sandbox's hostname: "" on the host network (the runtime keeps the node's), else the pod
/// hostname, or with `setHostnameAsFQDN` and a subdomain its FQDN.
pub fn sandbox_hostname(pod: &StaticPod) -> String {
    if pod.host_network() {
        return String::new();
    }
    let (hostname, domain) = hostname_and_domain(pod);
    match domain {
        Some(domain) if pod.spec().set_hostname_as_fqdn == Some(true) => format!("{hostname}.{domain}"),
        _ => hostname,
    }
}

/// kubelet's `managedHostsFileContent`, for a pod with its own network namespace.
pub fn managed_hosts(ips: &[&str], hostname: &str, domain: Option<&str>, aliases: &[HostAlias]) -> String {
    let mut out = String::from("# Kubernetes-managed hosts file.\n");
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    for ip in ips {
        match domain {
            Some(domain) => out.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n")),
            None => out.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    out.push_str(&alias_entries(aliases));
    out
}

/// kubelet's `nodeHostsFileContent`, for a host-network pod: the node's hosts file with the
/// aliases appended.
pub fn node_hosts(node_hosts: &str, aliases: &[HostAlias]) -> String {
    let mut out = String::from("# Kubernetes-managed hosts file (host network).\n");
    out.push_str(node_hosts);
    out.push_str(&alias_entries(aliases));
    out
}

/// kubelet's `hostsEntriesFromHostAliases`: one line per IP with all its names.
fn alias_entries(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        out.push_str(&format!(
            "{}\t{}\n",
            alias.ip,
            alias.hostnames.iter().flatten().cloned().collect::<Vec<_>>().join("\t")
        ));
    }
    out
}

/// `<rootDir>/pods/<uid>/etc-hosts`, kubelet's place.
pub fn hosts_path(root_dir: &Path, pod: &StaticPod) -> PathBuf {
    root_dir.join("pods").join(&pod.uid).join("etc-hosts")
}

/// The hosts file this pod's containers see, or None before its IP is known (kubelet mounts none
/// then either). `node_hosts_file` is read for host-network pods.
pub fn content(pod: &StaticPod, pod_ip: &str, node_hosts_file: &Path) -> std::io::Result<Option<String>> {
    let aliases = pod.spec().host_aliases.clone().unwrap_or_default();
    if pod.host_network() {
        return Ok(Some(node_hosts(&std::fs::read_to_string(node_hosts_file)?, &aliases)));
    }
    if pod_ip.is_empty() {
        return Ok(None);
    }
    let (hostname, domain) = hostname_and_domain(pod);
    Ok(Some(managed_hosts(&[pod_ip], &hostname, domain.as_deref(), &aliases)))
}

/// Adds the /etc/hosts bind mount, unless the container mounts /etc/hosts itself.
pub fn add_mount(config: &mut api::ContainerConfig, hosts_file: &Path) {
    if config.mounts.iter().any(|m| Path::new(&m.container_path) == Path::new("/etc/hosts")) {
        return;
    }
    config.mounts.push(api::Mount {
        container_path: "/etc/hosts".into(),
        host_path: hosts_file.to_string_lossy().into_owned(),
        readonly: false,
        ..Default::default()
    });
}

/// Writes the pod's hosts file and mounts it into `config`; a failure to write is logged and
/// the container keeps the runtime's own /etc/hosts.
pub fn prepare(root_dir: &Path, pod: &StaticPod, pod_ip: &str, config: &mut api::ContainerConfig) {
    let path = hosts_path(root_dir, pod);
    let written = content(pod, pod_ip, Path::new("/etc/hosts")).and_then(|content| match content {
        Some(content) => {
            std::fs::create_dir_all(path.parent().expect("a pod directory"))?;
            std::fs::write(&path, content).map(|()| true)
        }
        None => Ok(false),
    });
    match written {
        Ok(true) => add_mount(config, &path),
        Ok(false) => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot write the pod's hosts file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Origin, parse_manifest};

    fn pod(spec: &str) -> StaticPod {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: ops}}\nspec:\n{spec}  containers: [{{name: c, image: i}}]\n"
        );
        parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "n1").unwrap().remove(0)
    }

    fn alias(ip: &str, names: &[&str]) -> HostAlias {
        HostAlias { ip: ip.into(), hostnames: Some(names.iter().map(|s| s.to_string()).collect()) }
    }

    const HEADER: &str = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n";

    #[test]
    fn managed_hosts_file_is_kubelets() {
        let aliases = [alias("10.1.2.3", &["foo.local", "bar.local"]), alias("10.1.2.4", &["baz"])];
        for (ips, domain, aliases, tail) in [
            (vec!["10.88.0.5"], None, &[][..], "10.88.0.5\tweb\n".to_owned()),
            (
                vec!["10.88.0.5"],
                Some("sub.ops.svc.cluster.local"),
                &[][..],
                "10.88.0.5\tweb.sub.ops.svc.cluster.local\tweb\n".to_owned(),
            ),
            (
                vec!["10.88.0.5", "fd00::5"],
                None,
                &aliases[..],
                "10.88.0.5\tweb\nfd00::5\tweb\n\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n10.1.2.4\tbaz\n"
                    .to_owned(),
            ),
        ] {
            assert_eq!(managed_hosts(&ips, "web", domain, aliases), format!("{HEADER}{tail}"), "{ips:?} {domain:?}");
        }
    }

    #[test]
    fn host_network_hosts_file_is_the_nodes_with_aliases_appended() {
        let node = "127.0.0.1\tlocalhost\n10.0.0.1\tnode1\n";
        assert_eq!(node_hosts(node, &[]), format!("# Kubernetes-managed hosts file (host network).\n{node}"));
        assert_eq!(
            node_hosts(node, &[alias("1.2.3.4", &["a", "b"])]),
            format!(
                "# Kubernetes-managed hosts file (host network).\n{node}\n# Entries added by HostAliases.\n1.2.3.4\ta\tb\n"
            )
        );
    }

    #[test]
    fn hostname_subdomain_and_fqdn_follow_kubelet() {
        let plain = pod("");
        assert_eq!(hostname_and_domain(&plain), ("web-n1".into(), None));
        assert_eq!(sandbox_hostname(&plain), "web-n1");
        let named = pod("  hostname: db\n  subdomain: backend\n");
        assert_eq!(hostname_and_domain(&named), ("db".into(), Some("backend.ops.svc.cluster.local".into())));
        assert_eq!(sandbox_hostname(&named), "db", "the FQDN only with setHostnameAsFQDN");
        let fqdn = pod("  hostname: db\n  subdomain: backend\n  setHostnameAsFQDN: true\n");
        assert_eq!(sandbox_hostname(&fqdn), "db.backend.ops.svc.cluster.local");
        let host = pod("  hostNetwork: true\n  hostname: db\n  subdomain: backend\n  setHostnameAsFQDN: true\n");
        assert_eq!(sandbox_hostname(&host), "", "host-network pods keep the node's hostname");
        let long =
            format!("  hostname: {}\n  subdomain: {}\n  setHostnameAsFQDN: true\n", "h".repeat(40), "s".repeat(20));
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: ops}}\nspec:\n{long}  containers: [{{name: c, image: i}}]\n"
        );
        let refused = parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "n1").unwrap_err().to_string();
        assert!(refused.contains("spec.setHostnameAsFQDN") && refused.contains("83 requested"), "{refused}");
    }

    #[test]
    fn long_pod_names_are_cut_to_63_without_a_trailing_dash() {
        let name = "a".repeat(62); // the pod's name is `<name>-n1`, cut after its dash
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: [{{name: c, image: i}}]\n"
        );
        let p = parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "n1").unwrap().remove(0);
        assert_eq!(hostname_and_domain(&p).0, "a".repeat(62));
    }

    #[test]
    fn hosts_mount_is_added_unless_the_container_mounts_etc_hosts() {
        let mut config = api::ContainerConfig::default();
        add_mount(&mut config, Path::new("/var/lib/staticlet/pods/u/etc-hosts"));
        assert_eq!(config.mounts.len(), 1);
        assert_eq!(config.mounts[0].container_path, "/etc/hosts");
        add_mount(&mut config, Path::new("/other"));
        assert_eq!(config.mounts.len(), 1, "an /etc/hosts mount already there is kept");
    }

    #[test]
    fn prepare_writes_the_file_and_waits_for_the_ip() {
        let dir = tempfile::tempdir().unwrap();
        let p = pod("  hostAliases: [{ip: 10.9.9.9, hostnames: [alias.example]}]\n");
        let mut config = api::ContainerConfig::default();
        prepare(dir.path(), &p, "", &mut config);
        assert!(config.mounts.is_empty(), "no IP yet, no managed file");
        prepare(dir.path(), &p, "10.88.0.7", &mut config);
        let written = std::fs::read_to_string(hosts_path(dir.path(), &p)).unwrap();
        assert!(written.contains("10.88.0.7\tweb-n1\n") && written.ends_with("10.9.9.9\talias.example\n"), "{written}");
        assert_eq!(config.mounts[0].host_path, hosts_path(dir.path(), &p).to_string_lossy());
    }
}
