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

    fn http(port: u16, path: &str, headers: &[(&str, &str)]) -> Handler {
        let headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        Handler::Http { https: false, host: None, port, path: path.into(), headers }
    }

    const LOCAL: Target<'static> = Target { container_id: "c", pod_ip: "127.0.0.1" };

    /// CPU time so far of this thread (`thread: true`, the scheduler's nanoseconds) or of the whole
    /// process (user + system, in clock ticks of 10 ms).
    fn cpu(thread: bool) -> Duration {
        if thread {
            let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
            return Duration::from_nanos(stat.split_whitespace().next().unwrap().parse().unwrap());
        }
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let fields = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect::<Vec<_>>();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    }

    /// CPU per HTTP probe on the prober's side: 10,000 probes, one at a time, on a runtime like
    /// main's, against a loopback server on its own thread whose CPU is subtracted. Prints;
    /// asserts nothing. `cargo test --release --lib http_probe_cpu -- --ignored --nocapture`
    /// (on a 2-core VM: about 31 us, of which a bare tokio connect, write and read take 28;
    /// reqwest took 50).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a benchmark: prints CPU per probe, wants a quiet machine and --release"]
    async fn http_probe_cpu_per_probe() {
        use std::{
            io::{Read, Write},
            sync::atomic::{AtomicU64, Ordering},
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server_cpu = Arc::new(AtomicU64::new(0));
        let server_cpu_written = server_cpu.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let (mut request, mut buf) = (Vec::new(), [0u8; 1024]);
                while !request.ends_with(b"\r\n\r\n") {
                    let n = stream.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                drop(stream);
                server_cpu_written.store(cpu(true).as_nanos() as u64, Ordering::Relaxed);
            }
        });
        let probes = 10_000;
        let (cpu0, wall0) = (cpu(false), std::time::Instant::now());
        // On a worker, as a prober task runs, not on the test's own thread.
        tokio::spawn(async move {
            for _ in 0..probes {
                attempt(&FakeCri::default(), &spec(http(port, "/healthz", &[])), &LOCAL).await.unwrap();
            }
        })
        .await
        .unwrap();
        let wall = wall0.elapsed();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let client = cpu(false) - cpu0 - Duration::from_nanos(server_cpu.load(Ordering::Relaxed));
        let per_probe = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(probes);
        println!("{probes} HTTP probes: {:.1} us CPU, {:.1} us wall per probe", per_probe(client), per_probe(wall));
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
