use serde_json::json;

use super::*;
use crate::manifest::{Origin, parse_manifest};

/// A static pod from a spec written as JSON (containers named as given).
fn pod(spec: serde_json::Value) -> StaticPod {
    pod_with(json!({}), spec)
}

fn pod_with(annotations: serde_json::Value, spec: serde_json::Value) -> StaticPod {
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "kube-system", "annotations": annotations},
        "spec": spec,
    });
    parse_manifest(manifest.to_string().as_bytes(), &Origin::file("/m/web.yaml"), "n1").expect("a valid pod").remove(0)
}

fn c(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut container = json!({"name": name, "image": "busybox:1.0"});
    container.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    container
}

/// A container that passes every restricted check.
fn tight(name: &str) -> serde_json::Value {
    c(
        name,
        json!({"securityContext": {
        "allowPrivilegeEscalation": false, "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}}),
    )
}

fn at(level: Level, pod: &StaticPod) -> String {
    describe(&evaluate(level, pod))
}

#[test]
fn privileged_checks_nothing_and_a_plain_pod_is_baseline() {
    let plain = pod(json!({"containers": [c("a", json!({}))]}));
    assert_eq!(at(Level::Privileged, &pod(json!({"hostNetwork": true, "containers": [c("a", json!({}))]}))), "");
    assert_eq!(at(Level::Baseline, &plain), "");
    assert_eq!(at(Level::Restricted, &pod(json!({"containers": [tight("a")]}))), "");
}

#[test]
fn baseline_refusals_read_as_the_api_servers() {
    let cases = [
        (
            json!({"hostNetwork": true, "hostPID": true, "containers": [c("a", json!({}))]}),
            "host namespaces (hostNetwork=true, hostPID=true)",
        ),
        (
            json!({"containers": [c("a", json!({"securityContext": {"privileged": true}})), c("b", json!({"securityContext": {"privileged": true}}))]}),
            r#"privileged (containers "a", "b" must not set securityContext.privileged=true)"#,
        ),
        (
            json!({"volumes": [{"name": "etc", "hostPath": {"path": "/etc"}}], "containers": [c("a", json!({}))]}),
            r#"hostPath volumes (volume "etc")"#,
        ),
        (
            json!({"containers": [c("a", json!({"ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 10000}]}))]}),
            r#"hostPort (container "a" uses hostPorts 10000, 8080)"#,
        ),
        (
            json!({"containers": [c("a", json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN", "CHOWN", "SYS_ADMIN"]}}}))]}),
            r#"non-default capabilities (container "a" must not include "NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add)"#,
        ),
        (
            json!({"containers": [c("a", json!({"livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}}))]}),
            r#"probe or lifecycle host (container "a" uses probe or lifecycle host "10.0.0.1")"#,
        ),
        (
            json!({"containers": [c("a", json!({"securityContext": {"procMount": "Unmasked"}}))]}),
            r#"procMount (container "a" must not set securityContext.procMount to "Unmasked")"#,
        ),
        (
            json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}, "containers": [c("a", json!({}))]}),
            r#"seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")"#,
        ),
        (
            json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}, {"name": "net.ipv4.tcp_syncookies", "value": "1"}]}, "containers": [c("a", json!({}))]}),
            "forbidden sysctls (kernel.msgmax)",
        ),
        (
            json!({"containers": [c("a", json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}))]}),
            r#"forbidden AppArmor profile (container "a" must not set AppArmor profile type to "Unconfined")"#,
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(at(Level::Baseline, &pod(spec.clone())), want, "{spec}");
    }
}

#[test]
fn several_violations_come_in_the_api_servers_order() {
    let spec = json!({"hostNetwork": true, "volumes": [{"name": "v", "hostPath": {"path": "/"}}],
        "containers": [c("a", json!({"securityContext": {"privileged": true}}))]});
    assert_eq!(
        at(Level::Baseline, &pod(spec)),
        r#"host namespaces (hostNetwork=true), hostPath volumes (volume "v"), privileged (container "a" must not set securityContext.privileged=true)"#
    );
}

#[test]
fn restricted_refusals_read_as_the_api_servers() {
    let bare = pod(json!({"initContainers": [c("init", json!({}))], "containers": [c("a", json!({}))]}));
    assert_eq!(
        at(Level::Restricted, &bare),
        concat!(
            r#"allowPrivilegeEscalation != false (containers "init", "a" must set securityContext.allowPrivilegeEscalation=false), "#,
            r#"unrestricted capabilities (containers "init", "a" must set securityContext.capabilities.drop=["ALL"]), "#,
            r#"runAsNonRoot != true (pod or containers "init", "a" must set securityContext.runAsNonRoot=true), "#,
            r#"seccompProfile (pod or containers "init", "a" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#,
        )
    );
    let cases = [
        (
            json!({"volumes": [{"name": "etc", "hostPath": {"path": "/etc"}}, {"name": "tmp", "emptyDir": {}}], "containers": [tight("a")]}),
            r#"restricted volume types (volume "etc" uses restricted volume type "hostPath")"#,
        ),
        (
            json!({"securityContext": {"runAsUser": 0}, "containers": [c("a", json!({"securityContext": {
                "allowPrivilegeEscalation": false, "runAsNonRoot": true, "runAsUser": 0,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "NET_RAW"]}, "seccompProfile": {"type": "RuntimeDefault"}}}))]}),
            concat!(
                r#"unrestricted capabilities (container "a" must not include "NET_RAW" in securityContext.capabilities.add), "#,
                r#"runAsUser=0 (pod and container "a" must not set runAsUser=0)"#,
            ),
        ),
        (
            json!({"securityContext": {"runAsNonRoot": false}, "containers": [tight("a")]}),
            r#"runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)"#,
        ),
        (
            // The pod's setting covers containers that set none.
            json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
                "containers": [c("a", json!({"securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}))]}),
            "",
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(at(Level::Restricted, &pod(spec.clone())), want, "{spec}");
    }
}

#[test]
fn restricted_replaces_the_baseline_checks_it_tightens() {
    // hostPath is reported once, as a restricted volume type, not also as a hostPath volume.
    let spec = json!({"volumes": [{"name": "etc", "hostPath": {"path": "/etc"}}], "containers": [tight("a")]});
    let refusal = at(Level::Restricted, &pod(spec));
    assert!(!refusal.contains("hostPath volumes"), "{refusal}");
}

#[test]
fn a_refused_manifest_becomes_an_error_in_the_api_servers_words_and_a_warning_only_logs() {
    let policy = Policy { enforce: Level::Baseline, warn: Level::Restricted, ..Default::default() };
    let host = pod(json!({"hostNetwork": true, "containers": [c("a", json!({}))]}));
    let plain = pod(json!({"containers": [c("a", json!({}))]}));
    let snapshot = |pods: Vec<StaticPod>| SourceSnapshot {
        kind: SourceKind::File,
        manifests: vec![Manifest { origin: Origin::file("/m/web.yaml"), result: Ok(pods) }],
        notes: vec![],
    };
    let (admitted, warnings) = policy.admit(snapshot(vec![host.clone()]));
    let error = admitted.manifests[0].result.as_ref().unwrap_err().to_string();
    assert_eq!(
        error,
        r#"/m/web.yaml: pod kube-system/web-n1: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)"#
    );
    assert!(warnings.is_empty(), "a refused pod is not also warned about: {warnings:?}");

    let (admitted, warnings) = policy.admit(snapshot(vec![plain.clone()]));
    assert!(admitted.manifests[0].result.is_ok());
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].starts_with(r#"/m/web.yaml: pod kube-system/web-n1 would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false"#), "{}", warnings[0]);

    let exempt = Policy { exempt_namespaces: ["kube-system".to_owned()].into(), ..policy.clone() };
    let (admitted, warnings) = exempt.admit(snapshot(vec![host]));
    assert!(admitted.manifests[0].result.is_ok() && warnings.is_empty());
}

#[test]
fn the_url_source_has_its_own_level() {
    let policy = Policy { url_enforce: Level::Baseline, ..Default::default() };
    let host = pod(json!({"hostNetwork": true, "containers": [c("a", json!({}))]}));
    for (kind, refused) in [(SourceKind::File, false), (SourceKind::Http, true)] {
        let snapshot = SourceSnapshot {
            kind,
            manifests: vec![Manifest { origin: Origin::file("/m/web.yaml"), result: Ok(vec![host.clone()]) }],
            notes: vec![],
        };
        assert_eq!(policy.admit(snapshot).0.manifests[0].result.is_err(), refused, "{kind:?}");
    }
}

#[test]
fn levels_parse_and_print_as_the_api_server_names_them() {
    assert_eq!("restricted".parse::<Level>(), Ok(Level::Restricted));
    assert_eq!(Level::Baseline.to_string(), "baseline:latest");
    assert!("Baseline".parse::<Level>().unwrap_err().contains("privileged, baseline or restricted"));
}
