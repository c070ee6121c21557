//! One probe run against a container, bounded by the probe's timeout. `Ok` is a pass; `Err`
//! carries the message kubelet would put after "Liveness probe failed: ".

use std::{net::IpAddr, sync::OnceLock, time::Duration};

use super::{Handler, ProbeSpec};
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
            http(*https, host, *port, path, headers, timeout).await
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

/// `host:port`, with IPv6 addresses in brackets.
fn authority(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

fn http_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        // main installs ring as the process's provider; unit tests may not have.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            // kubelet does not verify a probed server's certificate: it checks liveness, not identity.
            .danger_accept_invalid_certs(true)
            // One connection per probe, as kubelet (keep-alive off): a probe must see a fresh accept.
            .pool_max_idle_per_host(0)
            .user_agent(USER_AGENT)
            .build()
            .expect("an HTTP client with default settings builds")
    })
}

async fn http(
    https: bool,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    match http_get(https, host, port, path, headers, timeout, USER_AGENT).await? {
        200..400 => Ok(()),
        status => Err(format!("HTTP probe failed with statuscode: {status}")),
    }
}

/// One GET to `host:port` + `path` with `headers`, as `user_agent`: the response's status code,
/// or the transport error in Go's words (`Get "<url>": ...`). Probes and lifecycle hooks share it.
pub(crate) async fn http_get(
    https: bool,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
    user_agent: &str,
) -> Result<u16, String> {
    let scheme = if https { "https" } else { "http" };
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    let url = format!("{scheme}://{}{path}", authority(host, port));
    let mut request = http_client().get(&url).timeout(timeout).header(reqwest::header::USER_AGENT, user_agent);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(e) if e.is_timeout() => Err(format!("Get {url:?}: context deadline exceeded")),
        Err(e) => Err(format!("Get {url:?}: {}", describe(&e))),
    }
}

async fn tcp(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    let address = authority(host, port);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&address)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("dial tcp {address}: {e}")),
        Err(_) => Err(format!("dial tcp {address}: i/o timeout")),
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

fn describe(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// A one-shot HTTP server on loopback answering `status`; returns its port and the request it
/// got. For the probe and hook tests.
#[cfg(test)]
pub(crate) fn serve_once(status: u16) -> (u16, std::thread::JoinHandle<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).unwrap();
        write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    (port, handle)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{cri::fake::FakeCri, probe::ProbeKind};

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
        assert!(error.starts_with(&format!("dial tcp 127.0.0.1:{port}:")), "{error}");
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
