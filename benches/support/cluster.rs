//! The test control plane of `hack/testenv up --cluster`, as the benchmarks see it: node
//! credentials, the API server's audit log (its per-user record of requests) and its process.

#![allow(dead_code)]

use std::{collections::HashMap, path::PathBuf};

fn testenv_dir() -> String {
    std::env::var("STATICLET_TESTENV_DIR").unwrap_or("/var/lib/staticlet-testenv".into())
}

/// A kubeconfig authenticating as system:node:<node>, minted by hack/testenv.
pub fn node_kubeconfig(node: &str) -> PathBuf {
    let out = std::process::Command::new("bash")
        .args([concat!(env!("CARGO_MANIFEST_DIR"), "/hack/testenv"), "node-kubeconfig", node])
        .output()
        .unwrap();
    assert!(out.status.success(), "hack/testenv node-kubeconfig {node}: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Requests in the API server's audit log from users whose name starts with `user_prefix`, by
/// audit ID (a watch is logged when its response starts and again when it ends; it is one
/// request), each as "VERB resource".
pub fn requests_by(user_prefix: &str) -> HashMap<String, String> {
    let log = std::fs::read_to_string(format!("{}/cluster/audit.log", testenv_dir())).unwrap_or_default();
    let needle = format!("\"username\":\"{user_prefix}");
    log.lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| {
            let kind =
                format!("{} {}", e["verb"].as_str().unwrap_or("?"), e["objectRef"]["resource"].as_str().unwrap_or("-"));
            (e["auditID"].as_str().unwrap_or_default().to_owned(), kind)
        })
        .collect()
}

/// Requests that appear in `after` and not in `before`, counted by kind.
pub fn new_requests(
    before: &HashMap<String, String>,
    after: HashMap<String, String>,
) -> std::collections::BTreeMap<String, usize> {
    let mut kinds = std::collections::BTreeMap::new();
    for (id, kind) in after {
        if !before.contains_key(&id) {
            *kinds.entry(kind).or_default() += 1;
        }
    }
    kinds
}

pub fn apiserver_pid() -> u32 {
    let pid = std::fs::read_to_string(format!("{}/cluster/kube-apiserver.pid", testenv_dir())).unwrap();
    pid.trim().parse().unwrap()
}

/// The API server's own count of requests served (apiserver_request_total, all labels summed).
pub fn apiserver_requests_total() -> f64 {
    let out = std::process::Command::new("kubectl").args(["get", "--raw", "/metrics"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
