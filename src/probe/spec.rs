//! A container's probes as the manifest gives them, defaulted and checked the way the API server
//! does (v1 defaults: period 10 s, timeout 1 s, success 1, failure 3), so a broken probe is
//! refused with its field named before anything runs.

use std::time::Duration;

use k8s_openapi::{
    api::core::v1::{Container, Probe},
    apimachinery::pkg::util::intstr::IntOrString,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    /// As kubelet's events say it ("Liveness probe failed: ...").
    pub fn word(self) -> &'static str {
        match self {
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
            Self::Startup => "Startup",
        }
    }
    fn field(self) -> &'static str {
        match self {
            Self::Liveness => "livenessProbe",
            Self::Readiness => "readinessProbe",
            Self::Startup => "startupProbe",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    Exec { command: Vec<String> },
    Http { https: bool, host: Option<String>, port: u16, path: String, headers: Vec<(String, String)> },
    Tcp { host: Option<String>, port: u16 },
    Grpc { port: u16, service: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub kind: ProbeKind,
    pub handler: Handler,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The probe-level terminationGracePeriodSeconds: the grace of a kill this probe causes.
    pub termination_grace: Option<Duration>,
}

/// A probe problem: the field (relative to the container) and what is wrong.
pub type ProbeError = (String, String);

/// The container's probes, startup first; the errors name fields relative to the container.
pub fn container_probes(container: &Container) -> Result<Vec<ProbeSpec>, Vec<ProbeError>> {
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    for (kind, probe) in [
        (ProbeKind::Startup, &container.startup_probe),
        (ProbeKind::Liveness, &container.liveness_probe),
        (ProbeKind::Readiness, &container.readiness_probe),
    ] {
        let Some(probe) = probe else { continue };
        match probe_spec(kind, probe, container) {
            Ok(spec) => specs.push(spec),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() { Ok(specs) } else { Err(errors) }
}

fn probe_spec(kind: ProbeKind, probe: &Probe, container: &Container) -> Result<ProbeSpec, Vec<ProbeError>> {
    let field = kind.field();
    let mut errors = Vec::new();
    let handlers = [probe.exec.is_some(), probe.http_get.is_some(), probe.tcp_socket.is_some(), probe.grpc.is_some()];
    let count = handlers.iter().filter(|h| **h).count();
    if count != 1 {
        let message = format!("must have exactly one handler (exec, httpGet, tcpSocket or grpc), has {count}");
        return Err(vec![(field.into(), message)]);
    }
    let port = |sub: &str, port: &IntOrString, errors: &mut Vec<ProbeError>| match resolve_port(port, container) {
        Ok(p) => p,
        Err(message) => {
            errors.push((format!("{field}.{sub}.port"), message));
            0
        }
    };
    let handler = if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        if command.is_empty() {
            errors.push((format!("{field}.exec.command"), "required".into()));
        }
        Handler::Exec { command }
    } else if let Some(http) = &probe.http_get {
        let https = https_scheme(field, http.scheme.as_deref(), &mut errors);
        let path = http.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
        let headers = http.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect::<Vec<_>>();
        let host = http.host.clone().filter(|h| !h.is_empty());
        Handler::Http { https, host, port: port("httpGet", &http.port, &mut errors), path, headers }
    } else if let Some(tcp) = &probe.tcp_socket {
        let host = tcp.host.clone().filter(|h| !h.is_empty());
        Handler::Tcp { host, port: port("tcpSocket", &tcp.port, &mut errors) }
    } else {
        let grpc = probe.grpc.as_ref().expect("one handler is set");
        let port = u16::try_from(grpc.port).ok().filter(|p| *p > 0).unwrap_or_else(|| {
            errors.push((format!("{field}.grpc.port"), format!("{} is not between 1 and 65535", grpc.port)));
            0
        });
        Handler::Grpc { port, service: grpc.service.clone().unwrap_or_default() }
    };
    let seconds = |name: &str, value: Option<i32>, default: i32, min: i32, errors: &mut Vec<ProbeError>| {
        let value = value.unwrap_or(default);
        if value < min {
            errors.push((format!("{field}.{name}"), format!("{value} must be at least {min}")));
        }
        value.max(min) as u32
    };
    let initial_delay = seconds("initialDelaySeconds", probe.initial_delay_seconds, 0, 0, &mut errors);
    let period = seconds("periodSeconds", probe.period_seconds, 10, 1, &mut errors);
    let timeout = seconds("timeoutSeconds", probe.timeout_seconds, 1, 1, &mut errors);
    let success_threshold = seconds("successThreshold", probe.success_threshold, 1, 1, &mut errors);
    let failure_threshold = seconds("failureThreshold", probe.failure_threshold, 3, 1, &mut errors);
    if kind != ProbeKind::Readiness && success_threshold != 1 {
        errors.push((format!("{field}.successThreshold"), "must be 1 for liveness and startup probes".into()));
    }
    let termination_grace = match probe.termination_grace_period_seconds {
        Some(_) if kind == ProbeKind::Readiness => {
            let message = "only liveness and startup probes may set it".to_owned();
            errors.push((format!("{field}.terminationGracePeriodSeconds"), message));
            None
        }
        Some(s) if s < 1 => {
            errors.push((format!("{field}.terminationGracePeriodSeconds"), format!("{s} must be at least 1")));
            None
        }
        Some(s) => Some(Duration::from_secs(s as u64)),
        None => None,
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ProbeSpec {
        kind,
        handler,
        initial_delay: Duration::from_secs(initial_delay.into()),
        period: Duration::from_secs(period.into()),
        timeout: Duration::from_secs(timeout.into()),
        success_threshold,
        failure_threshold,
        termination_grace,
    })
}

/// Whether an httpGet action (a probe's or a hook's, under `field`) uses HTTPS; an unknown scheme
/// is an error and reads as HTTP.
pub(crate) fn https_scheme(field: &str, scheme: Option<&str>, errors: &mut Vec<ProbeError>) -> bool {
    match scheme.unwrap_or("HTTP") {
        "HTTP" => false,
        "HTTPS" => true,
        other => {
            errors.push((format!("{field}.httpGet.scheme"), format!("{other:?} is not one of HTTP, HTTPS")));
            false
        }
    }
}

/// A number, or the name of one of the container's ports (kubeadm >= 1.34 probes `probe-port`).
pub(crate) fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => {
            u16::try_from(*n).ok().filter(|p| *p > 0).ok_or_else(|| format!("{n} is not between 1 and 65535"))
        }
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<i32>() {
                return resolve_port(&IntOrString::Int(n), container);
            }
            let ports = container.ports.iter().flatten();
            let found = ports.clone().find(|p| p.name.as_deref() == Some(name.as_str()));
            match found {
                Some(p) => u16::try_from(p.container_port).map_err(|_| format!("port {name:?} is out of range")),
                None => {
                    let names: Vec<&str> = ports.filter_map(|p| p.name.as_deref()).collect();
                    Err(format!("no port named {name:?} in the container's ports (named: {})", names.join(", ")))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(yaml: &str) -> Container {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn kubeadm_style_probe_on_a_named_port_is_resolved_with_v1_defaults() {
        let c = container(
            "name: etcd\nimage: e\nports: [{name: probe-port, containerPort: 2381}]\n\
             livenessProbe: {httpGet: {host: 127.0.0.1, path: /livez, port: probe-port, scheme: HTTP}, initialDelaySeconds: 10, failureThreshold: 8, timeoutSeconds: 15}\n\
             startupProbe: {httpGet: {host: 127.0.0.1, path: /readyz, port: probe-port}, failureThreshold: 24, periodSeconds: 10}\n",
        );
        let probes = container_probes(&c).unwrap();
        assert_eq!(probes.iter().map(|p| p.kind).collect::<Vec<_>>(), [ProbeKind::Startup, ProbeKind::Liveness]);
        let live = &probes[1];
        assert_eq!(
            live.handler,
            Handler::Http {
                https: false,
                host: Some("127.0.0.1".into()),
                port: 2381,
                path: "/livez".into(),
                headers: vec![]
            }
        );
        assert_eq!(
            (live.initial_delay, live.period, live.timeout),
            (Duration::from_secs(10), Duration::from_secs(10), Duration::from_secs(15))
        );
        assert_eq!((live.success_threshold, live.failure_threshold), (1, 8));
    }

    #[test]
    fn bad_probes_are_refused_naming_the_field() {
        for (probe, field, says) in [
            ("livenessProbe: {initialDelaySeconds: 1}", "livenessProbe", "has 0"),
            ("livenessProbe: {exec: {command: [true]}, tcpSocket: {port: 80}}", "livenessProbe", "has 2"),
            ("readinessProbe: {httpGet: {port: web}}", "readinessProbe.httpGet.port", "no port named \"web\""),
            ("readinessProbe: {tcpSocket: {port: 70000}}", "readinessProbe.tcpSocket.port", "not between"),
            (
                "livenessProbe: {exec: {command: [true]}, successThreshold: 2}",
                "livenessProbe.successThreshold",
                "must be 1",
            ),
            (
                "readinessProbe: {exec: {command: [true]}, periodSeconds: 0}",
                "readinessProbe.periodSeconds",
                "at least 1",
            ),
            ("startupProbe: {exec: {command: []}}", "startupProbe.exec.command", "required"),
            (
                "readinessProbe: {exec: {command: [true]}, terminationGracePeriodSeconds: 5}",
                "readinessProbe.terminationGracePeriodSeconds",
                "only liveness",
            ),
            ("livenessProbe: {httpGet: {port: 80, scheme: FTP}}", "livenessProbe.httpGet.scheme", "FTP"),
        ] {
            let c = container(&format!("name: c\nimage: i\n{probe}\n"));
            let errors = container_probes(&c).unwrap_err();
            assert!(errors.iter().any(|(f, m)| f == field && m.contains(says)), "{probe}: {errors:?}");
        }
    }

    #[test]
    fn handlers_take_their_fields() {
        let c = container(
            "name: c\nimage: i\n\
             readinessProbe: {exec: {command: [cat, /ready]}}\n\
             livenessProbe: {httpGet: {scheme: HTTPS, port: 8443, httpHeaders: [{name: X-A, value: b}]}, terminationGracePeriodSeconds: 3}\n\
             startupProbe: {grpc: {port: 9000, service: etcd}}\n",
        );
        let probes = container_probes(&c).unwrap();
        assert_eq!(probes[0].handler, Handler::Grpc { port: 9000, service: "etcd".into() });
        assert_eq!(
            probes[1].handler,
            Handler::Http {
                https: true,
                host: None,
                port: 8443,
                path: "/".into(),
                headers: vec![("X-A".into(), "b".into())]
            }
        );
        assert_eq!(probes[1].termination_grace, Some(Duration::from_secs(3)));
        assert_eq!(probes[2].handler, Handler::Exec { command: vec!["cat".into(), "/ready".into()] });
    }
}
