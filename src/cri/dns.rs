//! A pod's DNS as kubelet configures it (pkg/kubelet/network/dns): `dnsPolicy: None` uses only
//! `dnsConfig`; the other policies start from the node's resolv.conf (there is no cluster DNS, so
//! ClusterFirst and ClusterFirstWithHostNet fall back to Default, as kubelet's do without
//! clusterDNS) and merge `dnsConfig` onto it. Pure, but for reading the node's file.

use k8s_openapi::api::core::v1::{PodDNSConfig, PodSpec};

use super::api;

/// kubelet's limits (validation.MaxDNSNameservers, MaxDNSSearchPaths).
pub const MAX_NAMESERVERS: usize = 3;
pub const MAX_SEARCHES: usize = 32;
/// The node's resolv.conf (kubelet's `--resolv-conf` default).
pub const NODE_RESOLV_CONF: &str = "/etc/resolv.conf";

/// The sandbox's CRI DNSConfig, or None to let the runtime copy the node's resolv.conf (a pod
/// without dnsConfig and a policy other than None). `node_resolv` is read only when needed.
pub fn sandbox_dns(spec: &PodSpec, node_resolv: impl FnOnce() -> String) -> Option<api::DnsConfig> {
    let none = spec.dns_policy.as_deref() == Some("None");
    let config = spec.dns_config.as_ref();
    if !none && config.is_none() {
        return None;
    }
    let base = if none { api::DnsConfig::default() } else { parse_resolv_conf(&node_resolv()) };
    Some(merge(base, config))
}

/// kubelet's `parseResolvConf`: nameservers, the last `search` line, options accumulated.
pub fn parse_resolv_conf(content: &str) -> api::DnsConfig {
    let mut dns = api::DnsConfig::default();
    for line in content.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("nameserver") => dns.servers.extend(fields.next().map(str::to_owned)),
            Some("search") => dns.searches = fields.map(str::to_owned).collect(),
            Some("options") => dns.options = merge_options(dns.options, fields.map(str::to_owned)),
            _ => {}
        }
    }
    dns
}

/// kubelet's `appendDNSConfig`: servers and searches appended without duplicates, options merged
/// by name (a later value wins); then kubelet's limits, as it trims a node's resolv.conf.
pub fn merge(mut dns: api::DnsConfig, config: Option<&PodDNSConfig>) -> api::DnsConfig {
    if let Some(config) = config {
        dns.servers = dedup(dns.servers.into_iter().chain(config.nameservers.iter().flatten().cloned()));
        dns.searches = dedup(dns.searches.into_iter().chain(config.searches.iter().flatten().cloned()));
        let options = config.options.iter().flatten().filter_map(|o| {
            let name = o.name.as_deref()?;
            Some(match o.value.as_deref() {
                Some(value) => format!("{name}:{value}"),
                None => name.to_owned(),
            })
        });
        dns.options = merge_options(dns.options, options);
    }
    dns.servers.truncate(MAX_NAMESERVERS);
    dns.searches.truncate(MAX_SEARCHES);
    dns
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Options by name (`ndots:5` is named `ndots`): a later one replaces an earlier one in place.
fn merge_options(mut options: Vec<String>, more: impl Iterator<Item = String>) -> Vec<String> {
    let name = |o: &str| o.split(':').next().unwrap_or_default().to_owned();
    for option in more {
        match options.iter().position(|o| name(o) == name(&option)) {
            Some(i) => options[i] = option,
            None => options.push(option),
        }
    }
    options
}

/// Reads the node's resolv.conf ("" if it cannot be read: the pod then gets only its dnsConfig).
pub fn node_resolv_conf() -> String {
    std::fs::read_to_string(NODE_RESOLV_CONF).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodDNSConfigOption;

    use super::*;

    const NODE: &str = "# generated\nnameserver 192.168.1.1\nnameserver 192.168.1.2 ; comment\nsearch old.example\nsearch lan example.com\noptions ndots:2 edns0\n";

    fn dns(servers: &[&str], searches: &[&str], options: &[&str]) -> api::DnsConfig {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect();
        api::DnsConfig { servers: v(servers), searches: v(searches), options: v(options) }
    }

    fn config(servers: &[&str], searches: &[&str], options: &[(&str, Option<&str>)]) -> PodDNSConfig {
        PodDNSConfig {
            nameservers: Some(servers.iter().map(|s| s.to_string()).collect()),
            searches: Some(searches.iter().map(|s| s.to_string()).collect()),
            options: Some(
                options
                    .iter()
                    .map(|(n, v)| PodDNSConfigOption { name: Some(n.to_string()), value: v.map(Into::into) })
                    .collect(),
            ),
        }
    }

    fn spec(policy: Option<&str>, dns_config: Option<PodDNSConfig>) -> PodSpec {
        PodSpec { dns_policy: policy.map(Into::into), dns_config, ..Default::default() }
    }

    #[test]
    fn node_resolv_conf_parses_like_kubelets() {
        assert_eq!(
            parse_resolv_conf(NODE),
            dns(&["192.168.1.1", "192.168.1.2"], &["lan", "example.com"], &["ndots:2", "edns0"])
        );
    }

    #[test]
    fn policy_and_dns_config_table() {
        let pod_dns =
            config(&["10.0.0.10", "192.168.1.1"], &["svc.example", "lan"], &[("ndots", Some("5")), ("rotate", None)]);
        let merged = dns(
            &["192.168.1.1", "192.168.1.2", "10.0.0.10"],
            &["lan", "example.com", "svc.example"],
            &["ndots:5", "edns0", "rotate"],
        );
        let only_pod = dns(&["10.0.0.10", "192.168.1.1"], &["svc.example", "lan"], &["ndots:5", "rotate"]);
        for (policy, dns_config, expected) in [
            (None, None, None),
            (Some("ClusterFirst"), None, None),
            (Some("Default"), None, None),
            (Some("Default"), Some(pod_dns.clone()), Some(merged.clone())),
            (Some("ClusterFirst"), Some(pod_dns.clone()), Some(merged.clone())),
            (Some("ClusterFirstWithHostNet"), Some(pod_dns.clone()), Some(merged)),
            (Some("None"), Some(pod_dns.clone()), Some(only_pod)),
        ] {
            assert_eq!(
                sandbox_dns(&spec(policy, dns_config.clone()), || NODE.into()),
                expected,
                "{policy:?} {dns_config:?}"
            );
        }
    }

    #[test]
    fn the_merge_keeps_kubelets_limits() {
        let many = config(
            &["10.0.0.1", "10.0.0.2"],
            &(0..40).map(|i| format!("s{i}")).collect::<Vec<_>>().iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
        );
        let got = sandbox_dns(&spec(Some("Default"), Some(many)), || NODE.into()).unwrap();
        assert_eq!(got.servers, ["192.168.1.1", "192.168.1.2", "10.0.0.1"], "at most 3 nameservers");
        assert_eq!(got.searches.len(), MAX_SEARCHES);
        assert_eq!(&got.searches[..3], ["lan", "example.com", "s0"]);
    }
}
