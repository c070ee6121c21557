//! Who a static pod is: its UID, name, namespace and the kubelet annotations.
//!
//! # The UID contract
//! `uid = hex(sha256("staticlet/v1\n" + canonical_json(document) + "\nnode:" + node + "\n" +
//! kind + ":" + location))[..32]`, where `document` is the pod object exactly as written in the
//! manifest (before any defaulting), `canonical_json` sorts object keys and has no whitespace, `kind`
//! is `file` or `http` and `location` the file path or URL. It depends only on what the user wrote,
//! never on staticlet's version or its defaults, so upgrading staticlet restarts no pod (kubelet's
//! hash of its internal structs does, kubernetes#116080). `uid_is_pinned` in the tests holds it.
//!
//! A `metadata.uid` in the manifest is kept as the UID, as kubelet does, but unlike kubelet the
//! `config.hash` annotation stays the content hash, so edits are still seen (kubernetes#103374).

use std::collections::BTreeMap;

use super::pod::StaticPod;

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus, Toleration};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const ANNOTATION_CONFIG_HASH: &str = "kubernetes.io/config.hash";
pub const ANNOTATION_CONFIG_SOURCE: &str = "kubernetes.io/config.source";
pub const ANNOTATION_CONFIG_SEEN: &str = "kubernetes.io/config.seen";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    File,
    Http,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Http => "http",
        }
    }
}

/// Where a pod was defined: the file path or the URL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Origin {
    pub kind: SourceKind,
    pub location: String,
}

impl Origin {
    pub fn file(path: impl Into<String>) -> Self {
        Self { kind: SourceKind::File, location: path.into() }
    }
    pub fn http(url: impl Into<String>) -> Self {
        Self { kind: SourceKind::Http, location: url.into() }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.location)
    }
}

/// The pinned content hash (see the module docs).
pub fn derive_uid(document: &Value, node: &str, origin: &Origin) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"staticlet/v1\n");
    write_canonical(document, &mut hasher);
    hasher.update(format!("\nnode:{node}\n{}:{}", origin.kind.as_str(), origin.location).as_bytes());
    let digest = hasher.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn write_canonical(value: &Value, out: &mut Sha256) {
    match value {
        Value::Object(map) => {
            out.update(b"{");
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.update(b",");
                }
                out.update(serde_json::to_string(key).expect("a string serializes").as_bytes());
                out.update(b":");
                write_canonical(&map[key], out);
            }
            out.update(b"}");
        }
        Value::Array(items) => {
            out.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.update(b",");
                }
                write_canonical(item, out);
            }
            out.update(b"]");
        }
        scalar => out.update(scalar.to_string().as_bytes()),
    }
}

/// Applies kubelet's identity and v1 defaults to a decoded pod (KUBELET.md 1.4).
pub(super) fn build(document: &Value, mut pod: Pod, node: &str, origin: &Origin) -> StaticPod {
    let config_hash = derive_uid(document, node, origin);
    let uid = pod.metadata.uid.clone().filter(|u| !u.is_empty()).unwrap_or_else(|| config_hash.clone());

    let meta = &mut pod.metadata;
    if let Some(name) = &meta.name {
        meta.name = Some(format!("{name}-{}", node.to_lowercase()));
    }
    if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some("default".into());
    }
    meta.uid = Some(uid.clone());
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(ANNOTATION_CONFIG_HASH.into(), config_hash.clone());
    annotations.insert(ANNOTATION_CONFIG_SOURCE.into(), origin.kind.as_str().into());

    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    spec.node_name = Some(node.to_owned());
    apply_spec_defaults(spec);
    if origin.kind == SourceKind::File {
        let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
        let no_execute =
            Toleration { operator: Some("Exists".into()), effect: Some("NoExecute".into()), ..Default::default() };
        if !tolerations.contains(&no_execute) {
            tolerations.push(no_execute);
        }
    }
    pod.status = Some(PodStatus { phase: Some("Pending".into()), ..Default::default() });
    StaticPod { uid, config_hash, origin: origin.clone(), pod: std::sync::Arc::new(pod) }
}

fn apply_spec_defaults(spec: &mut PodSpec) {
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.scheduler_name.get_or_insert_with(|| "default-scheduler".into());
    for container in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        container.termination_message_path.get_or_insert_with(|| "/dev/termination-log".into());
        container.termination_message_policy.get_or_insert_with(|| "File".into());
        let policy = default_pull_policy(container.image.as_deref().unwrap_or_default());
        container.image_pull_policy.get_or_insert_with(|| policy.into());
        for port in container.ports.iter_mut().flatten() {
            port.protocol.get_or_insert_with(|| "TCP".into());
        }
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent` (the v1 defaulting rule).
pub fn default_pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_segment = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last_segment.split_once(':') {
        _ if image.contains('@') => "IfNotPresent",
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn web() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"role": "myrole"}},
               "spec": {"containers": [{"name": "web", "image": "busybox:1.36"}]}})
    }

    #[test]
    fn uid_is_pinned() {
        // This value is a contract: changing it restarts every static pod on upgrade.
        let uid = derive_uid(&web(), "node-a", &Origin::file("/etc/kubernetes/manifests/web.yaml"));
        assert_eq!(uid, "9373aa9df15f8ad34018c8ebc4e1062f");
    }

    #[test]
    fn uid_ignores_key_order() {
        let reordered: Value = serde_json::from_str(
            r#"{"spec":{"containers":[{"image":"busybox:1.36","name":"web"}]},"metadata":{"labels":{"role":"myrole"},"name":"web"},"kind":"Pod","apiVersion":"v1"}"#,
        )
        .unwrap();
        let origin = Origin::file("/m/web.yaml");
        assert_eq!(derive_uid(&web(), "n", &origin), derive_uid(&reordered, "n", &origin));
    }

    #[test]
    fn uid_changes_with_content_node_and_source() {
        let origin = Origin::file("/m/web.yaml");
        let base = derive_uid(&web(), "n", &origin);
        let mut edited = web();
        edited["spec"]["containers"][0]["image"] = json!("busybox:1.37");
        assert_ne!(base, derive_uid(&edited, "n", &origin));
        assert_ne!(base, derive_uid(&web(), "other", &origin));
        assert_ne!(base, derive_uid(&web(), "n", &Origin::file("/m/web2.yaml")));
        assert_ne!(base, derive_uid(&web(), "n", &Origin::http("/m/web.yaml")));
    }

    #[test]
    fn pull_policy_defaults_follow_the_tag() {
        for (image, policy) in [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("busybox:1.36", "IfNotPresent"),
            ("localhost:5000/busybox", "Always"),
            ("localhost:5000/busybox:1", "IfNotPresent"),
            ("busybox@sha256:abc", "IfNotPresent"),
        ] {
            assert_eq!(default_pull_policy(image), policy, "{image}");
        }
    }
}
