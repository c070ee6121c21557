//! Container lifecycle hooks, as kubelet runs them: `postStart` right after StartContainer (the
//! container is not Running until it returns; if it fails the container is killed and restarted
//! through the normal restart path) and `preStop` before the stop signal, counted against the
//! grace period. Handlers: exec (CRI ExecSync), httpGet (any HTTP answer passes, as kubelet's:
//! only a transport error fails the hook) and sleep. `tcpSocket` is deprecated for hooks (kubelet
//! fails such a hook at run time) and refused here.
//!
//! - this file: a container's hooks from its manifest, checked (pure), and `grace_left` (pure);
//! - `run`: one hook run against a container, reusing the probes' exec and HTTP code.
//!
//! The supervisor calls them: `supervisor::act` (postStart), `supervisor::stop` (preStop on every
//! stop staticlet makes: pod removed or edited, liveness kill, failed postStart, deadline).

mod run;

use std::time::Duration;

use k8s_openapi::{
    api::core::v1::{Container, LifecycleHandler},
    apimachinery::pkg::util::intstr::IntOrString,
};

pub use run::{Target, run};

/// kubelet's event messages: the hook's own output is left out of the event so secrets do not
/// leak to the API server; the log line has it.
pub const POST_START_FAILED: &str = "PostStartHook failed";
pub const PRE_STOP_FAILED: &str = "PreStopHook failed";

/// kubelet gives a container at least this long between the stop signal and SIGKILL, however much
/// of the grace period its preStop hook used.
pub const MIN_GRACE_AFTER_HOOK: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    Exec { command: Vec<String> },
    Http { https: bool, host: Option<String>, port: u16, path: String, headers: Vec<(String, String)> },
    Sleep { seconds: u64 },
}

/// A container's hooks, as the manifest gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub post_start: Option<Handler>,
    pub pre_stop: Option<Handler>,
}

/// A hook problem: the field (relative to the container) and what is wrong.
pub type HookError = (String, String);

/// The container's hooks, checked as the API server checks them (one handler each; a sleep of 0
/// to `grace_seconds`, the pod's terminationGracePeriodSeconds), with named ports resolved. The
/// errors name fields relative to the container (`lifecycle.preStop.sleep.seconds`).
pub fn container_hooks(container: &Container, grace_seconds: i64) -> Result<Hooks, Vec<HookError>> {
    let Some(lifecycle) = &container.lifecycle else { return Ok(Hooks::default()) };
    let mut errors = Vec::new();
    let mut hook = |name: &str, handler: &Option<LifecycleHandler>| {
        let handler = handler.as_ref()?;
        match handler_of(&format!("lifecycle.{name}"), handler, container, grace_seconds) {
            Ok(h) => Some(h),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        }
    };
    let hooks =
        Hooks { post_start: hook("postStart", &lifecycle.post_start), pre_stop: hook("preStop", &lifecycle.pre_stop) };
    if errors.is_empty() { Ok(hooks) } else { Err(errors) }
}

fn handler_of(
    field: &str,
    handler: &LifecycleHandler,
    container: &Container,
    grace_seconds: i64,
) -> Result<Handler, Vec<HookError>> {
    if handler.tcp_socket.is_some() {
        let message = "not supported in a lifecycle hook (deprecated: kubelet fails such a hook when it runs); use exec, httpGet or sleep";
        return Err(vec![(format!("{field}.tcpSocket"), message.into())]);
    }
    let count =
        [handler.exec.is_some(), handler.http_get.is_some(), handler.sleep.is_some()].iter().filter(|h| **h).count();
    if count != 1 {
        return Err(vec![(
            field.into(),
            format!("must have exactly one handler (exec, httpGet or sleep), has {count}"),
        )]);
    }
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        if command.is_empty() {
            return Err(vec![(format!("{field}.exec.command"), "required".into())]);
        }
        return Ok(Handler::Exec { command });
    }
    if let Some(sleep) = &handler.sleep {
        return match u64::try_from(sleep.seconds) {
            Ok(seconds) if sleep.seconds <= grace_seconds => Ok(Handler::Sleep { seconds }),
            _ => Err(vec![(
                format!("{field}.sleep.seconds"),
                format!(
                    "{} must be non-negative and at most terminationGracePeriodSeconds ({grace_seconds})",
                    sleep.seconds
                ),
            )]),
        };
    }
    let http = handler.http_get.as_ref().expect("one handler is set");
    let mut errors = Vec::new();
    let https = crate::probe::spec::https_scheme(field, http.scheme.as_deref(), &mut errors);
    // kubelet sends a hook with an empty port name to port 80.
    let port = match &http.port {
        IntOrString::String(name) if name.is_empty() => 80,
        port => crate::probe::spec::resolve_port(port, container).unwrap_or_else(|message| {
            errors.push((format!("{field}.httpGet.port"), message));
            0
        }),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Handler::Http {
        https,
        host: http.host.clone().filter(|h| !h.is_empty()),
        port,
        path: http.path.clone().unwrap_or_default(),
        headers: http.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect(),
    })
}

/// The StopContainer timeout after a preStop hook that took `took` of the `grace` period: what is
/// left, in whole seconds as kubelet counts it (a hook of 2.9 s used 2 s), and never less than
/// `MIN_GRACE_AFTER_HOOK`.
pub fn grace_left(grace: Duration, took: Duration) -> Duration {
    Duration::from_secs(grace.as_secs().saturating_sub(took.as_secs())).max(MIN_GRACE_AFTER_HOOK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(yaml: &str) -> Container {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn hooks(lifecycle: &str) -> Result<Hooks, Vec<HookError>> {
        let c = container(&format!(
            "name: c\nimage: i\nports: [{{name: admin, containerPort: 9000}}]\nlifecycle: {lifecycle}\n"
        ));
        container_hooks(&c, 30)
    }

    #[test]
    fn each_handler_takes_its_fields() {
        let h = hooks(
            "{postStart: {exec: {command: [sh, -c, 'echo hi']}}, \
              preStop: {httpGet: {path: /drain, port: admin, scheme: HTTPS, httpHeaders: [{name: X-A, value: b}]}}}",
        )
        .unwrap();
        assert_eq!(h.post_start, Some(Handler::Exec { command: vec!["sh".into(), "-c".into(), "echo hi".into()] }));
        assert_eq!(
            h.pre_stop,
            Some(Handler::Http {
                https: true,
                host: None,
                port: 9000,
                path: "/drain".into(),
                headers: vec![("X-A".into(), "b".into())]
            })
        );
        let h = hooks("{preStop: {sleep: {seconds: 0}}}").unwrap();
        assert_eq!((h.post_start, h.pre_stop), (None, Some(Handler::Sleep { seconds: 0 })));
        assert_eq!(container_hooks(&container("name: c\nimage: i\n"), 30), Ok(Hooks::default()));
        assert_eq!(hooks("{}"), Ok(Hooks::default()), "an empty lifecycle has no hooks");
    }

    #[test]
    fn bad_hooks_are_refused_naming_the_field() {
        for (lifecycle, field, says) in [
            ("{preStop: {}}", "lifecycle.preStop", "has 0"),
            ("{postStart: {exec: {command: [x]}, sleep: {seconds: 1}}}", "lifecycle.postStart", "has 2"),
            ("{preStop: {sleep: {seconds: -1}}}", "lifecycle.preStop.sleep.seconds", "-1 must be non-negative"),
            (
                "{preStop: {sleep: {seconds: 31}}}",
                "lifecycle.preStop.sleep.seconds",
                "terminationGracePeriodSeconds (30)",
            ),
            ("{preStop: {tcpSocket: {port: 80}}}", "lifecycle.preStop.tcpSocket", "deprecated"),
            ("{postStart: {exec: {command: []}}}", "lifecycle.postStart.exec.command", "required"),
            ("{preStop: {httpGet: {port: web}}}", "lifecycle.preStop.httpGet.port", "no port named \"web\""),
            ("{preStop: {httpGet: {port: 80, scheme: FTP}}}", "lifecycle.preStop.httpGet.scheme", "FTP"),
        ] {
            let errors = hooks(lifecycle).unwrap_err();
            assert!(errors.iter().any(|(f, m)| f == field && m.contains(says)), "{lifecycle}: {errors:?}");
        }
    }

    #[test]
    fn grace_left_after_a_hook_counts_whole_seconds_with_kubelets_floor() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        for (grace, took, left) in [
            (s(30), ms(0), s(30)),
            (s(30), ms(2900), s(28)),
            (s(30), s(10), s(20)),
            (s(10), s(9), s(2)),
            (s(10), s(10), s(2)),
            (s(10), s(60), s(2)),
            (s(1), ms(10), s(2)),
        ] {
            assert_eq!(grace_left(grace, took), left, "grace {grace:?}, hook took {took:?}");
        }
    }
}
