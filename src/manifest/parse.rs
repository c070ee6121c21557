//! Bytes -> YAML/JSON documents -> v1 Pods.

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::{FieldError, ManifestError, Origin, StaticPod, identity, validate::validate_pod};

/// kubelet's limit for one manifest (`maxConfigLength`), kept so a file that works with kubelet
/// works here and a runaway file cannot exhaust memory.
pub const MAX_MANIFEST_BYTES: u64 = 10 * 1024 * 1024;

/// Turns one manifest (a file's or a URL body's bytes) into the static pods it defines.
///
/// A manifest may hold several YAML documents, each a v1 Pod or a v1 PodList (kubelet reads only the
/// first document and silently drops the rest; we read them all). The manifest is all or nothing:
/// one bad document rejects the whole file, so a half-applied edit never runs.
pub fn parse_manifest(bytes: &[u8], origin: &Origin, node: &str) -> Result<Vec<StaticPod>, ManifestError> {
    let location = &origin.location;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            location: location.clone(),
            size: bytes.len() as u64,
            limit: MAX_MANIFEST_BYTES,
        });
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') => text,
        _ => return Err(ManifestError::NotText { location: location.clone() }),
    };
    let documents = documents(text, location)?;
    if documents.is_empty() {
        return Err(ManifestError::Empty { location: location.clone() });
    }
    let mut pods = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let doc = index + 1;
        for (item, raw) in pod_objects(document, location, doc)? {
            let invalid = |errors| ManifestError::Invalid { location: location.clone(), doc, item, errors };
            let pod = decode_pod(&raw).map_err(|e| invalid(vec![e]))?;
            let static_pod = identity::build(&raw, pod, node, origin);
            validate_pod(&raw, &static_pod.pod).map_err(invalid)?;
            pods.push(static_pod);
        }
    }
    Ok(pods)
}

/// Splits the text into documents. JSON is tried first when the text looks like JSON, so its
/// errors speak JSON; everything else is YAML (of which JSON is a subset anyway).
fn documents(text: &str, location: &str) -> Result<Vec<Value>, ManifestError> {
    let syntax =
        |line, column, message: String| ManifestError::Syntax { location: location.to_owned(), line, column, message };
    if text.trim_start().starts_with('{') {
        return serde_json::from_str::<Value>(text)
            .map(|v| vec![v])
            .map_err(|e| syntax(e.line() as u64, e.column() as u64, strip_position(&e.to_string())));
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        syntax(line, column, first_line(&e.to_string()))
    })?;
    // `---` with nothing after it yields a null document; it defines nothing.
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// The Pod objects in one document: the document itself, or the items of a PodList.
fn pod_objects(document: Value, location: &str, doc: usize) -> Result<Vec<(Option<usize>, Value)>, ManifestError> {
    let kind_error = |found: String| ManifestError::Kind { location: location.to_owned(), doc, found };
    let Value::Object(map) = &document else {
        return Err(kind_error(format!("a {}", json_type(&document))));
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
    let missing = |field: &str| ManifestError::Invalid {
        location: location.to_owned(),
        doc,
        item: None,
        errors: vec![FieldError::new(field, "required")],
    };
    if kind.is_empty() {
        return Err(missing("kind"));
    }
    if api_version.is_empty() {
        return Err(missing("apiVersion"));
    }
    match (api_version, kind) {
        ("v1", "Pod") => Ok(vec![(None, document)]),
        ("v1", "PodList" | "List") => {
            let items = map.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let is_pod = item.get("kind").and_then(Value::as_str).is_none_or(|k| k == "Pod");
                    if is_pod {
                        Ok((Some(i), item))
                    } else {
                        Err(kind_error(format!("items[{i}]: {}", describe(&item))))
                    }
                })
                .collect()
        }
        _ => Err(kind_error(describe(&document))),
    }
}

fn decode_pod(raw: &Value) -> Result<Pod, FieldError> {
    serde_path_to_error::deserialize::<_, Pod>(raw).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "(pod)".to_owned() } else { path };
        FieldError::new(field, e.into_inner().to_string())
    })
}

fn describe(object: &Value) -> String {
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or("?");
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("?");
    format!("a {api_version} {kind}")
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

/// serde-saphyr's first line, without the "error: line L column C:" we report as fields.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    let line = match line.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((position, rest)) if position.contains("column") => rest,
        _ => line,
    };
    line.strip_prefix("budget breached: ").map(over_budget).unwrap_or_else(|| line.to_owned())
}

/// The parser's budgets (documents, nodes, depth, alias expansions...) bound what a hostile file
/// can cost; its report (`Nodes { nodes: 250001 }`) becomes words.
fn over_budget(report: &str) -> String {
    let counted = report
        .split_once('{')
        .and_then(|(_, fields)| fields.trim_end_matches('}').split_once(':'))
        .map(|(what, count)| format!("{} {}", count.trim(), what.trim().replace('_', " ")));
    format!(
        "over the YAML parser's safety limits ({}); a manifest this large or this deep is refused before it can exhaust memory",
        counted.unwrap_or_else(|| report.to_owned())
    )
}

/// serde_json appends " at line L column C"; we report those as fields of their own.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
#[path = "hostile.rs"]
mod hostile;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<StaticPod>, ManifestError> {
        parse_manifest(text.as_bytes(), &Origin::file("/m/web.yaml"), "Node-1")
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox:1.0\n";

    #[test]
    fn pod_gets_kubelet_identity() {
        let pod = parse(POD).unwrap().remove(0);
        assert_eq!(pod.name(), "web-node-1");
        assert_eq!(pod.namespace(), "default");
        assert_eq!(pod.spec().node_name.as_deref(), Some("Node-1"));
        let annotations = pod.annotations();
        assert_eq!(annotations["kubernetes.io/config.hash"], pod.uid);
        assert_eq!(annotations["kubernetes.io/config.source"], "file");
        assert_eq!(pod.uid.len(), 32);
        assert_eq!(pod.spec().restart_policy.as_deref(), Some("Always"));
        assert_eq!(pod.spec().tolerations.as_ref().unwrap()[0].effect.as_deref(), Some("NoExecute"));
    }

    #[test]
    fn every_document_and_podlist_item_is_read() {
        let list = r#"{"apiVersion":"v1","kind":"PodList","items":[
            {"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i:1"}]}},
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"},"spec":{"containers":[{"name":"c","image":"i:1"}]}}]}"#;
        let names = |pods: Vec<StaticPod>| pods.iter().map(|p| p.name().to_owned()).collect::<Vec<_>>();
        assert_eq!(names(parse(list).unwrap()), ["a-node-1", "b-node-1"]);
        let two = format!("{POD}---\n{}", POD.replace("name: web", "name: db"));
        assert_eq!(names(parse(&two).unwrap()), ["web-node-1", "db-node-1"]);
        let yaml_list = format!("apiVersion: v1\nkind: List\nitems:\n- {}", POD.replace('\n', "\n  "));
        assert_eq!(names(parse(&yaml_list).unwrap()), ["web-node-1"]);
    }

    #[test]
    fn bad_manifests_name_file_document_and_place() {
        for (text, expected) in [
            ("apiVersion: v1\nkind: Pod\nmetadata:\n\tname: web\n", "/m/web.yaml: line 4, column"),
            ("kind: Pod\nmetadata: {name: [\n", "/m/web.yaml: line"),
            (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
                "document 1: a apps/v1 Deployment is not a static pod",
            ),
            (
                "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: c, image: i:1}]}\n",
                "document 1: metadata.name: required",
            ),
            ("apiVersion: v1\nmetadata: {name: web}\n", "document 1: kind: required"),
            ("kind: Pod\nmetadata: {name: web}\n", "document 1: apiVersion: required"),
            (
                &format!("{POD}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: x}}\nspec: {{containers: []}}\n"),
                "document 2: spec.containers: at least one container is required",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: i, ports: [{containerPort: http}]}]}\n",
                "document 1: spec.containers[0].ports[0].containerPort: invalid type",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: Web_1}\nspec: {containers: [{name: c, image: i:1}]}\n",
                "metadata.name: \"Web_1-node-1\" (with the node name appended) must consist of",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c}]}\n",
                "spec.containers[0].image: required",
            ),
            ("", "/m/web.yaml: empty manifest"),
            ("---\n", "/m/web.yaml: empty manifest"),
            ("- 1\n- 2\n", "document 1: a list is not a static pod"),
        ] {
            let message = error(text);
            assert!(message.contains(expected), "{text:?}\n  gave: {message}\n  want: {expected}");
        }
    }

    #[test]
    fn api_object_references_are_refused_with_the_reason() {
        for (spec, field, kind) in [
            (
                "serviceAccountName: builder, containers: [{name: c, image: i:1}]",
                "spec.serviceAccountName",
                "ServiceAccount",
            ),
            (
                "containers: [{name: c, image: i:1}], volumes: [{name: s, secret: {secretName: x}}]",
                "spec.volumes[0]",
                "Secret",
            ),
            (
                "containers: [{name: c, image: i:1}], volumes: [{name: s, configMap: {name: x}}]",
                "spec.volumes[0]",
                "ConfigMap",
            ),
            (
                "containers: [{name: c, image: i:1}], volumes: [{name: s, persistentVolumeClaim: {claimName: x}}]",
                "spec.volumes[0]",
                "PersistentVolumeClaim",
            ),
            (
                "containers: [{name: c, image: i:1, env: [{name: A, valueFrom: {secretKeyRef: {name: x, key: k}}}]}]",
                "spec.containers[0].env[0].valueFrom",
                "Secret",
            ),
            (
                "containers: [{name: c, image: i:1, envFrom: [{configMapRef: {name: x}}]}]",
                "spec.containers[0].envFrom[0]",
                "ConfigMap",
            ),
        ] {
            let message = error(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec: {{{spec}}}\n"));
            assert!(message.contains(&format!("{field}: references the API object kind {kind}")), "{message}");
        }
    }

    #[test]
    fn bad_hooks_and_deadlines_are_refused_naming_the_field() {
        let c = "{name: c, image: i:1}";
        for (spec, expected) in [
            (
                format!("containers: [{c}, {{name: d, image: i:1, lifecycle: {{preStop: {{}}}}}}]"),
                "spec.containers[1].lifecycle.preStop: must have exactly one handler",
            ),
            (
                "containers: [{name: d, image: i:1, lifecycle: {preStop: {sleep: {seconds: -2}}}}]".to_string(),
                "spec.containers[0].lifecycle.preStop.sleep.seconds: -2 must be non-negative",
            ),
            (
                "containers: [{name: d, image: i:1, lifecycle: {postStart: {exec: {command: [x]}, httpGet: {port: 80}}}}]".to_string(),
                "spec.containers[0].lifecycle.postStart: must have exactly one handler (exec, httpGet or sleep), has 2",
            ),
            (
                "terminationGracePeriodSeconds: 5, containers: [{name: d, image: i:1, lifecycle: {preStop: {sleep: {seconds: 6}}}}]".to_string(),
                "spec.containers[0].lifecycle.preStop.sleep.seconds: 6 must be non-negative and at most terminationGracePeriodSeconds (5)",
            ),
            (
                "containers: [{name: d, image: i:1, lifecycle: {preStop: {tcpSocket: {port: 80}}}}]".to_string(),
                "spec.containers[0].lifecycle.preStop.tcpSocket: not supported in a lifecycle hook",
            ),
            (
                format!("activeDeadlineSeconds: 0, containers: [{c}]"),
                "spec.activeDeadlineSeconds: 0 is not between 1 and 2147483647",
            ),
        ] {
            let message = error(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec: {{{spec}}}\n"));
            assert!(message.contains(expected), "{spec}: {message}");
        }
    }

    #[test]
    fn refused_fields_are_named_with_their_index() {
        let c = "{name: c, image: i:1}";
        for (spec, expected) in [
            (
                format!("containers: [{c}, {{name: d, image: i:1, lifecycle: {{stopSignal: SIGUSR1}}}}]"),
                "spec.containers[1].lifecycle.stopSignal: the runtime cannot take it",
            ),
            (
                "containers: [{name: c, image: i:1, resizePolicy: [{resourceName: cpu, restartPolicy: NotRequired}]}]"
                    .into(),
                "spec.containers[0].resizePolicy: in-place resize is not supported by staticlet",
            ),
            (format!("os: {{name: windows}}, containers: [{c}]"), "spec.os.name: \"windows\" is not this node's"),
            (format!("hostUsers: false, containers: [{c}]"), "spec.hostUsers: user namespaces are not supported"),
            (
                format!("dnsPolicy: None, containers: [{c}]"),
                "spec.dnsConfig.nameservers: must provide at least one DNS nameserver when dnsPolicy is None",
            ),
            (
                format!("dnsConfig: {{nameservers: [1.1.1.1, 1.0.0.1, 8.8.8.8, 8.8.4.4]}}, containers: [{c}]"),
                "spec.dnsConfig.nameservers: must not have more than 3 nameservers",
            ),
            (
                format!("dnsConfig: {{nameservers: [dns.example]}}, containers: [{c}]"),
                "spec.dnsConfig.nameservers[0]: \"dns.example\" must be a valid IP address",
            ),
            (
                format!("hostAliases: [{{ip: nope, hostnames: [a]}}], containers: [{c}]"),
                "spec.hostAliases[0].ip: \"nope\" is not a valid IP address",
            ),
            (format!("subdomain: Bad_Sub, containers: [{c}]"), "spec.subdomain: "),
            (format!("hostNetwrok: true, containers: [{c}]"), "spec.hostNetwrok: unknown field"),
        ] {
            let message = error(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec: {{{spec}}}\n"));
            assert!(message.contains(expected), "{spec}\n  gave: {message}\n  want: {expected}");
        }
    }

    #[test]
    fn volume_problems_are_refused_by_field() {
        let m = |mount: &str| {
            format!(
                "containers: [{{name: c, image: i:1, volumeMounts: [{{name: v, mountPath: /v, {mount}}}]}}], volumes: [{{name: v, emptyDir: {{}}}}]"
            )
        };
        for (spec, expected) in [
            (m("subPath: ../../etc"), "spec.containers[0].volumeMounts[0].subPath: \"../../etc\" must not contain '..'"),
            (m("subPath: /etc"), "spec.containers[0].volumeMounts[0].subPath: \"/etc\" must be a relative path"),
            (m("subPathExpr: $(A)/../x"), "volumeMounts[0].subPathExpr: \"$(A)/../x\" must not contain '..'"),
            (m("subPath: a, subPathExpr: b"), "subPathExpr: subPathExpr and subPath are mutually exclusive"),
            (
                m("mountPropagation: Bidirectional"),
                "volumeMounts[0].mountPropagation: Bidirectional mount propagation is available only to privileged containers",
            ),
            (m("mountPropagation: Shared"), "volumeMounts[0].mountPropagation: Unsupported value: \"Shared\""),
            (m("recursiveReadOnly: Enabled, readOnly: true"), "volumeMounts[0].recursiveReadOnly: \"Enabled\" is not supported: the runtime does not support recursive read-only mounts"),
            (m("recursiveReadOnly: IfPossible"), "recursiveReadOnly: may only be specified when readOnly is true"),
            (
                "containers: [{name: c, image: i:1}], volumes: [{name: v, hostPath: {path: /x, type: Fifo}}]".into(),
                "spec.volumes[0].hostPath.type: Unsupported value: \"Fifo\"",
            ),
            (
                "containers: [{name: c, image: i:1}], volumes: [{name: v, emptyDir: {medium: HugePages}}]".into(),
                "spec.volumes[0].emptyDir.medium: \"HugePages\" is not supported",
            ),
            (
                "containers: [{name: c, image: i:1}], volumes: [{name: v, downwardAPI: {items: [{path: /abs, fieldRef: {fieldPath: metadata.name}}]}}]".into(),
                "spec.volumes[0].downwardAPI.items[0].path: \"/abs\" must be a relative path",
            ),
            (
                "containers: [{name: c, image: i:1}], volumes: [{name: v, downwardAPI: {items: [{path: a, fieldRef: {fieldPath: spec.nodeName}}]}}]".into(),
                "spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath: \"spec.nodeName\" is not supported",
            ),
            (
                "containers: [{name: c, image: i:1}], volumes: [{name: v, downwardAPI: {items: [{path: a, resourceFieldRef: {containerName: x, resource: limits.cpu}}]}}]".into(),
                "spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName: no container named \"x\"",
            ),
            (
                "containers: [{name: c, image: i:1}], volumes: [{name: v, projected: {sources: [{secret: {name: s}}]}}]".into(),
                "spec.volumes[0].projected.sources[0]: references the API object kind",
            ),
        ] {
            let message = error(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec: {{{spec}}}\n"));
            assert!(message.contains(expected), "{spec}\n  gave: {message}\n  want: {expected}");
        }
        let privileged = "containers: [{name: c, image: i:1, securityContext: {privileged: true}, volumeMounts: [{name: v, mountPath: /v, mountPropagation: Bidirectional, subPathExpr: $(POD)}]}], volumes: [{name: v, hostPath: {path: /x, type: Socket}}, {name: d, projected: {sources: [{downwardAPI: {items: [{path: l, fieldRef: {fieldPath: metadata.labels}}]}}]}}]";
        parse(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec: {{{privileged}}}\n")).unwrap();
        for ok in [
            "recursiveReadOnly: IfPossible, readOnly: true",
            "recursiveReadOnly: Disabled",
            "mountPropagation: HostToContainer",
        ] {
            parse(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec: {{{}}}\n", m(ok))).unwrap();
        }
    }

    #[test]
    fn a_refusal_a_specific_check_explains_is_reported_once() {
        let message = error(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {serviceAccountName: x, containers: [{name: c, \
             image: i:1, envFrom: [{secretRef: {name: s}}]}], volumes: [{name: s, secret: {secretName: x}}]}\n",
        );
        assert_eq!(message.matches("references the API object kind").count(), 3, "{message}");
        assert!(message.contains("spec.volumes[0]: references the API object kind Secret"), "{message}");
    }

    #[test]
    fn scheduling_fields_are_accepted_and_kept() {
        let pod = parse(&format!(
            "{POD}  nodeSelector: {{kubernetes.io/os: linux}}\n  tolerations: [{{key: k, operator: Exists}}]\n  \
             affinity: {{nodeAffinity: {{requiredDuringSchedulingIgnoredDuringExecution: {{nodeSelectorTerms: \
             [{{matchExpressions: [{{key: k, operator: In, values: [v]}}]}}]}}}}}}\n"
        ))
        .unwrap()
        .remove(0);
        assert_eq!(pod.spec().node_selector.as_ref().unwrap()["kubernetes.io/os"], "linux");
        assert!(pod.spec().affinity.is_some());
        assert_eq!(pod.spec().tolerations.as_ref().unwrap()[0].key.as_deref(), Some("k"));
    }

    /// What `kubeadm init` v1.35 writes for kube-apiserver, trimmed to one of each kind of field.
    const KUBEADM_APISERVER: &str = r#"apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 10.0.0.1:6443
  creationTimestamp: null
  labels: {component: kube-apiserver, tier: control-plane}
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command: [kube-apiserver, --advertise-address=10.0.0.1]
    image: registry.k8s.io/kube-apiserver:v1.35.8
    imagePullPolicy: IfNotPresent
    livenessProbe:
      failureThreshold: 8
      httpGet: {host: 10.0.0.1, path: /livez, port: probe-port, scheme: HTTPS}
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    name: kube-apiserver
    ports: [{containerPort: 6443, name: probe-port, protocol: TCP}]
    readinessProbe:
      failureThreshold: 3
      httpGet: {host: 10.0.0.1, path: /readyz, port: probe-port, scheme: HTTPS}
      periodSeconds: 1
      timeoutSeconds: 15
    resources: {requests: {cpu: 250m}}
    startupProbe:
      failureThreshold: 24
      httpGet: {host: 10.0.0.1, path: /livez, port: probe-port, scheme: HTTPS}
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    volumeMounts:
    - {mountPath: /etc/ssl/certs, name: ca-certs, readOnly: true}
    - {mountPath: /etc/kubernetes/pki, name: k8s-certs, readOnly: true}
  hostNetwork: true
  priority: 2000001000
  priorityClassName: system-node-critical
  securityContext:
    seccompProfile: {type: RuntimeDefault}
  volumes:
  - hostPath: {path: /etc/ssl/certs, type: DirectoryOrCreate}
    name: ca-certs
  - hostPath: {path: /etc/kubernetes/pki, type: FileOrCreate}
    name: k8s-certs
status: {}
"#;

    #[test]
    fn a_kubeadm_control_plane_manifest_parses() {
        let pod = parse(KUBEADM_APISERVER).unwrap().remove(0);
        assert_eq!(pod.full_name(), "kube-system/kube-apiserver-node-1");
        assert_eq!(pod.spec().priority, Some(2000001000));
    }

    #[test]
    fn oversized_and_binary_files_are_refused() {
        let big = vec![b'#'; (MAX_MANIFEST_BYTES + 1) as usize];
        let err = parse_manifest(&big, &Origin::file("/m/big.yaml"), "n").unwrap_err();
        assert!(matches!(err, ManifestError::TooLarge { .. }), "{err}");
        let err = parse_manifest(&[0x7f, b'E', b'L', b'F', 0, 0, 0xff], &Origin::file("/m/bin.yaml"), "n").unwrap_err();
        assert_eq!(err.to_string(), "/m/bin.yaml: not a text file (binary content); a manifest is YAML or JSON");
    }

    #[test]
    fn json_syntax_errors_give_line_and_column() {
        let message = error("{\"apiVersion\": \"v1\",\n \"kind\": }");
        assert!(message.starts_with("/m/web.yaml: line 2, column 10:"), "{message}");
    }
}
