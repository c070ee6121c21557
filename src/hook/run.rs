//! One lifecycle hook run against a container. `Err` carries kubelet's message
//! (`Exec lifecycle hook ([sh -c exit 1]) for Container "c" in Pod "ns/p" failed - error: ...`).
//! The caller bounds it (preStop: the grace period) or cancels it (postStart: the pod stopping).

use std::time::Duration;

use super::Handler;
use crate::{
    cri::Cri,
    probe::{attempt, http},
};

/// kubelet's User-Agent for lifecycle hooks (`kube-lifecycle/<major>.<minor>`); its hooks use Go's
/// default client, which follows redirects to any host.
const CALLER: http::Caller = http::Caller { user_agent: "kube-lifecycle/1.35", follows_other_hosts: true };

/// Where the hook goes: the container (exec) and the pod's IP (httpGet's default host; the
/// node's IP on the host network); the names are for the messages.
pub struct Target<'a> {
    pub container_id: &'a str,
    pub container: &'a str,
    /// `namespace/name`.
    pub pod: &'a str,
    pub pod_ip: &'a str,
}

/// Runs `handler`; `limit` bounds an exec or HTTP call (the runtime and the HTTP client need one).
pub async fn run(cri: &dyn Cri, handler: &Handler, target: &Target<'_>, limit: Duration) -> Result<(), String> {
    let (container, pod) = (target.container, target.pod);
    match handler {
        Handler::Exec { command } => attempt::exec(cri, target.container_id, command, limit).await.map_err(|e| {
            format!(
                "Exec lifecycle hook ([{}]) for Container {container:?} in Pod {pod:?} failed - error: {e}",
                command.join(" ")
            )
        }),
        Handler::Http { https, host, port, path, headers } => {
            let host = host.as_deref().unwrap_or(target.pod_ip);
            // Any answer passes: kubelet discards the response and fails only on a transport error.
            http::get(*https, host, *port, path, headers, limit, &CALLER).await.map(drop).map_err(|e| {
                format!("HTTP lifecycle hook ({path}) for Container {container:?} in Pod {pod:?} failed - error: {e}")
            })
        }
        Handler::Sleep { seconds } => {
            tokio::time::sleep(Duration::from_secs(*seconds)).await;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cri::{api, fake::FakeCri},
        probe::http::serve_once,
    };

    fn target(id: &str) -> Target<'_> {
        Target { container_id: id, container: "c", pod: "default/p-n", pod_ip: "127.0.0.1" }
    }

    #[tokio::test]
    async fn exec_hook_fails_with_kubelets_message_naming_the_command_and_container() {
        use crate::cri::Cri;
        let fake = FakeCri::default();
        let sandbox = fake.run_sandbox(api::PodSandboxConfig::default(), "").await.unwrap();
        let id = fake.create_container(&sandbox, Default::default(), Default::default()).await.unwrap();
        let hook = Handler::Exec { command: vec!["sh".into(), "-c".into(), "exit 3".into()] };
        assert_eq!(run(&fake, &hook, &target(&id), Duration::from_secs(5)).await, Ok(()));
        fake.set_exec_result(&id, 3, "no luck\n");
        let error = run(&fake, &hook, &target(&id), Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(
            error,
            "Exec lifecycle hook ([sh -c exit 3]) for Container \"c\" in Pod \"default/p-n\" failed - error: no luck"
        );
        assert!(fake.calls().contains(&format!("ExecSync {id}")));
    }

    #[tokio::test]
    async fn http_hook_passes_on_any_answer_sends_kubelets_user_agent_and_fails_only_without_one() {
        let fake = FakeCri::default();
        for status in [200, 500] {
            let (port, request) = serve_once(status);
            let hook = Handler::Http {
                https: false,
                host: None,
                port,
                path: "drain".into(),
                headers: vec![("X-H".into(), "v".into())],
            };
            assert_eq!(run(&fake, &hook, &target(""), Duration::from_secs(5)).await, Ok(()), "{status}");
            let request = request.join().unwrap().to_lowercase();
            assert!(request.starts_with("get /drain http/1.1"), "{request}");
            assert!(request.contains("user-agent: kube-lifecycle/1.35"), "{request}");
            assert!(request.contains("x-h: v"), "{request}");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let hook = Handler::Http { https: false, host: None, port, path: "/drain".into(), headers: vec![] };
        let error = run(&fake, &hook, &target(""), Duration::from_secs(5)).await.unwrap_err();
        assert!(
            error.starts_with(
                "HTTP lifecycle hook (/drain) for Container \"c\" in Pod \"default/p-n\" failed - error: Get "
            ),
            "{error}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_hook_sleeps_its_seconds() {
        let fake = FakeCri::default();
        let t0 = tokio::time::Instant::now();
        run(&fake, &Handler::Sleep { seconds: 7 }, &target(""), Duration::from_secs(30)).await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(7));
    }
}
