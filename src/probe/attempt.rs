//! One probe run against a container, bounded by the probe's timeout. `Ok` is a pass; `Err`
//! carries the message kubelet would put after "Liveness probe failed: ".

use std::time::Duration;

use super::{
    Handler, ProbeSpec,
    http::{self, Caller, authority},
    http1,
};
use crate::cri::Cri;

/// kubelet's User-Agent for probes (`kube-probe/<major>.<minor>`), so servers that log or filter
/// probe traffic see what they would from kubelet.
const USER_AGENT: &str = "kube-probe/1.35";

/// Where the probe goes: the container (for exec) and the pod's IP (for the network probes'
/// default host; the node's IP on the host network).
pub struct Target<'a> {
    pub container_id: &'a str,
    pub pod_ip: &'a str,
}

pub async fn attempt(cri: &dyn Cri, spec: &ProbeSpec, target: &Target<'_>) -> Result<(), String> {
    let timeout = spec.timeout;
    match &spec.handler {
        Handler::Exec { command } => exec(cri, target.container_id, command, timeout).await,
        Handler::Http { https, host, port, path, headers } => {
            let host = host.as_deref().unwrap_or(target.pod_ip);
            match http::get(*https, host, *port, path, headers, timeout, &PROBE).await? {
                200..400 => Ok(()),
                status => Err(format!("HTTP probe failed with statuscode: {status}")),
            }
        }
        Handler::Tcp { host, port } => tcp(host.as_deref().unwrap_or(target.pod_ip), *port, timeout).await,
        Handler::Grpc { port, service } => grpc(target.pod_ip, *port, service, timeout).await,
    }
}

pub(crate) async fn exec(cri: &dyn Cri, id: &str, command: &[String], timeout: Duration) -> Result<(), String> {
    match cri.exec_sync(id, command.to_vec(), timeout).await {
        Ok(r) if r.exit_code == 0 => Ok(()),
        Ok(r) if r.output.trim().is_empty() => Err(format!("command {command:?} exited with {}", r.exit_code)),
        Ok(r) => Err(r.output.trim_end().to_owned()),
        Err(e) if e.is_timeout() => Err(format!("command {command:?} timed out")),
        Err(e) => Err(e.to_string()),
    }
}

/// How kubelet's client behaves for probes.
pub(crate) const PROBE: Caller = Caller { user_agent: USER_AGENT, follows_other_hosts: false };

async fn tcp(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, http1::dial(host, port)).await {
        Ok(result) => result.map(drop),
        Err(_) => Err(format!("dial tcp {}: i/o timeout", authority(host, port))),
    }
}

async fn grpc(host: &str, port: u16, service: &str, timeout: Duration) -> Result<(), String> {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let address = authority(host, port);
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(timeout)
            .connect()
            .await
            .map_err(|e| format!("failed to connect service {address:?} within {}s: {e}", timeout.as_secs()))?;
        let mut client = HealthClient::new(channel).max_decoding_message_size(1 << 20);
        let response =
            client.check(HealthCheckRequest { service: service.into() }).await.map_err(|s| s.message().to_owned())?;
        match response.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!("service unhealthy (responded with {:?})", other.as_str_name())),
        }
    };
    tokio::time::timeout(timeout, check)
        .await
        .unwrap_or_else(|_| Err(format!("timeout: health rpc did not complete within {}s", timeout.as_secs())))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        cri::fake::FakeCri,
        probe::{ProbeKind, http::serve_once},
    };

    fn spec(handler: Handler) -> ProbeSpec {
        ProbeSpec {
            kind: ProbeKind::Liveness,
            handler,
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 1,
            termination_grace: None,
        }
    }

    #[tokio::test]
    async fn http_probe_passes_below_400_sends_kubelets_user_agent_and_headers() {
        let fake = Arc::new(FakeCri::default());
        let target = Target { container_id: "c", pod_ip: "127.0.0.1" };
        for (status, passes) in [(200, true), (302, true), (404, false), (500, false)] {
            let (port, request) = serve_once(status);
            let handler = Handler::Http {
                https: false,
                host: None,
                port,
                path: "healthz".into(),
                headers: vec![("X-Probe".into(), "yes".into())],
            };
            let result = attempt(fake.as_ref(), &spec(handler), &target).await;
            assert_eq!(result.is_ok(), passes, "{status}: {result:?}");
            if !passes {
                assert_eq!(result.unwrap_err(), format!("HTTP probe failed with statuscode: {status}"));
            }
            let request = request.join().unwrap().to_lowercase();
            assert!(request.starts_with("get /healthz http/1.1"), "{request}");
            assert!(request.contains("user-agent: kube-probe/1.35"), "{request}");
            assert!(request.contains("x-probe: yes"), "{request}");
        }
    }

    #[tokio::test]
    async fn tcp_probe_passes_when_something_listens_and_names_the_address_when_not() {
        let fake = FakeCri::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Target { container_id: "c", pod_ip: "127.0.0.1" };
        assert_eq!(attempt(&fake, &spec(Handler::Tcp { host: None, port }), &target).await, Ok(()));
        drop(listener);
        let error = attempt(&fake, &spec(Handler::Tcp { host: None, port }), &target).await.unwrap_err();
        assert_eq!(error, format!("dial tcp 127.0.0.1:{port}: connect: connection refused"));
    }

    #[tokio::test]
    async fn exec_probe_passes_on_exit_zero_and_fails_with_the_commands_output() {
        use crate::cri::{Cri, api};
        let fake = FakeCri::default();
        let sandbox = fake.run_sandbox(api::PodSandboxConfig::default(), "").await.unwrap();
        let id = fake.create_container(&sandbox, Default::default(), Default::default()).await.unwrap();
        let target = Target { container_id: &id, pod_ip: "" };
        let probe = spec(Handler::Exec { command: vec!["cat".into(), "/tmp/healthy".into()] });
        assert_eq!(attempt(&fake, &probe, &target).await, Ok(()));
        fake.set_exec_result(&id, 1, "cat: /tmp/healthy: No such file or directory\n");
        assert_eq!(attempt(&fake, &probe, &target).await.unwrap_err(), "cat: /tmp/healthy: No such file or directory");
        fake.set_exec_result(&id, 2, "");
        assert!(attempt(&fake, &probe, &target).await.unwrap_err().contains("exited with 2"));
    }
}
