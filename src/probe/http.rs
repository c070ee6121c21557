//! One HTTP(S) GET as kubelet's Go client makes it for probes and hooks: kubelet's headers, the
//! redirects it follows, everything within the caller's timeout, errors in Go's words
//! (`Get "<url>": ...`). Plain HTTP goes through `http1`, HTTPS through reqwest.

use std::{net::IpAddr, sync::OnceLock, time::Duration};

use super::http1;

/// `host:port`, with IPv6 addresses in brackets.
pub(super) fn authority(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

/// Who sends an HTTP GET, and so how kubelet's client behaves for it.
pub(crate) struct Caller {
    pub user_agent: &'static str,
    /// Probes stop at a redirect to another host and take it as a pass (kubelet's
    /// `followNonLocalRedirects` is false for them); hooks use Go's default client, which follows.
    pub follows_other_hosts: bool,
}

/// Go's client follows at most this many redirects.
const MAX_REDIRECTS: usize = 10;

/// For HTTPS only: plain HTTP goes through `http1`, which takes about a third less CPU per probe.
fn https_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        // main installs ring as the process's provider; unit tests may not have.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            // kubelet does not verify a probed server's certificate: it checks liveness, not identity.
            .danger_accept_invalid_certs(true)
            // One connection per probe, as kubelet (keep-alive off): a probe must see a fresh accept.
            .pool_max_idle_per_host(0)
            // `get` follows redirects itself, by kubelet's rules, for both schemes.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with default settings builds")
    })
}

/// One GET to `host:port` + `path` with `headers`, as `caller`, redirects followed as kubelet
/// does, all within `timeout`: the final response's status code, or the transport error in Go's
/// words (`Get "<url>": ...`). Probes and lifecycle hooks share it.
pub(crate) async fn get(
    https: bool,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
    caller: &Caller,
) -> Result<u16, String> {
    let scheme = if https { "https" } else { "http" };
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    let mut shown = format!("{scheme}://{}{path}", authority(host, port));
    let result = tokio::time::timeout(timeout, follow(&mut shown, authority(host, port), headers, caller)).await;
    result.unwrap_or_else(|_| Err(format!("Get {shown:?}: context deadline exceeded")))
}

/// The request loop of [`get`]; `shown` is the URL of the request under way (for the
/// messages, as written for the first), `authority` the first request's Host.
async fn follow(
    shown: &mut String,
    authority: String,
    headers: &[(String, String)],
    caller: &Caller,
) -> Result<u16, String> {
    let mut url = reqwest::Url::parse(shown).map_err(|e| format!("parse {shown:?}: {e}"))?;
    let (custom_host, mut headers) = kubelet_headers(headers, caller.user_agent);
    let mut host_header = custom_host.unwrap_or(&authority).to_owned();
    let first_host = url.host_str().unwrap_or_default().to_owned();
    let mut sent = 0;
    loop {
        sent += 1;
        let response = match url.scheme() {
            "http" => plain_get(&url, &host_header, &headers).await,
            _ => https_get(&url, &host_header, &headers).await,
        }
        .map_err(|e| format!("Get {shown:?}: {e}"))?;
        let location = match (response.status, response.location) {
            (301 | 302 | 303 | 307 | 308, Some(location)) if !location.is_empty() => location,
            (status, _) => return Ok(status),
        };
        let next = url
            .join(&location)
            .map_err(|e| format!("Get {shown:?}: failed to parse Location header {location:?}: {e}"))?;
        let same_host = next.host_str() == Some(first_host.as_str());
        if !same_host && !caller.follows_other_hosts {
            tracing::warn!(url = %shown, location = %next, "probe terminated redirects: a redirect to another host passes");
            return Ok(response.status);
        }
        *shown = next.to_string();
        if sent >= MAX_REDIRECTS {
            return Err(format!("Get {shown:?}: stopped after {MAX_REDIRECTS} redirects"));
        }
        if !matches!(next.scheme(), "http" | "https") {
            return Err(format!("Get {shown:?}: unsupported protocol scheme {:?}", next.scheme()));
        }
        // As Go: a custom Host survives only a relative Location; credentials stay on their host.
        if custom_host.is_none() || reqwest::Url::parse(&location).is_ok() {
            host_header = match next.port() {
                Some(port) => format!("{}:{port}", next.host_str().unwrap_or_default()),
                None => next.host_str().unwrap_or_default().to_owned(),
            };
        }
        if !same_host {
            headers.retain(|(name, _)| {
                !["authorization", "www-authenticate", "cookie", "cookie2"].iter().any(|s| name.eq_ignore_ascii_case(s))
            });
        }
        url = next;
    }
}

/// The headers kubelet sends besides Host: the handler's, with its User-Agent and `Accept: */*`
/// unless the handler sets them (an empty one sends none), and the handler's Host, which replaces
/// the URL's authority. Framing headers are the client's.
fn kubelet_headers<'a>(
    headers: &'a [(String, String)],
    user_agent: &'a str,
) -> (Option<&'a str>, Vec<(&'a str, &'a str)>) {
    let first =
        |wanted: &str| headers.iter().find(|(name, _)| name.eq_ignore_ascii_case(wanted)).map(|(_, v)| v.as_str());
    let mut sent = Vec::with_capacity(headers.len() + 2);
    match first("user-agent") {
        None => sent.push(("User-Agent", user_agent)),
        Some("") => {}
        Some(value) => sent.push(("User-Agent", value)),
    }
    if first("accept").is_none() {
        sent.push(("Accept", "*/*"));
    }
    let accept_removed = first("accept") == Some("");
    for (name, value) in headers {
        let own = ["host", "user-agent", "connection", "content-length", "transfer-encoding", "trailer"];
        let dropped =
            own.iter().any(|o| name.eq_ignore_ascii_case(o)) || (accept_removed && name.eq_ignore_ascii_case("accept"));
        if !dropped {
            sent.push((name.as_str(), value.as_str()));
        }
    }
    (first("host").filter(|h| !h.is_empty()), sent)
}

/// One plain-HTTP request through the minimal client.
async fn plain_get(url: &reqwest::Url, host_header: &str, headers: &[(&str, &str)]) -> Result<http1::Response, String> {
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let request = http1::request(host_header, &target, headers)?;
    // The URL keeps an IPv6 address in brackets; the dialer wants it bare.
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let stream = http1::dial(host, url.port_or_known_default().unwrap_or(80)).await?;
    http1::exchange(stream, &request).await
}

/// One HTTPS request through reqwest, without its redirect handling.
async fn https_get(url: &reqwest::Url, host_header: &str, headers: &[(&str, &str)]) -> Result<http1::Response, String> {
    let mut request = https_client().get(url.clone()).header(reqwest::header::HOST, host_header);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.map_err(|e| describe(&e))?;
    let location = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
    Ok(http1::Response { status: response.status().as_u16(), location: location.map(str::to_owned) })
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
    let (port, requests) =
        serve(vec![format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")]);
    (port, std::thread::spawn(move || requests.join().unwrap().remove(0)))
}

/// An HTTP server on loopback answering one connection with each of `responses` in turn (the
/// `{port}` in one replaced by its port); returns its port and the requests it got.
#[cfg(test)]
pub(crate) fn serve(responses: Vec<String>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for response in responses {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap();
            stream.write_all(response.replace("{port}", &port.to_string()).as_bytes()).unwrap();
            requests.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        requests
    });
    (port, handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::attempt::PROBE;

    /// A GET as a probe, with a 1 s timeout, to 127.0.0.1:`port`.
    async fn probe(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<u16, String> {
        let headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>();
        get(false, "127.0.0.1", port, path, &headers, Duration::from_secs(1), &PROBE).await
    }

    #[tokio::test]
    async fn a_get_sends_kubelets_request_head_with_host_accept_and_connection_close() {
        let (port, request) = serve_once(200);
        assert_eq!(probe(port, "/healthz?verbose=1#frag", &[]).await, Ok(200));
        assert_eq!(
            request.join().unwrap(),
            format!(
                "GET /healthz?verbose=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.35\r\n\
                 Accept: */*\r\nConnection: close\r\n\r\n"
            )
        );
    }

    #[tokio::test]
    async fn handler_headers_replace_host_user_agent_and_accept_as_kubelets_do() {
        let (port, request) = serve_once(200);
        let headers = [("Host", "example.com"), ("user-agent", "mine/1"), ("Accept", ""), ("X-A", "b")];
        assert_eq!(probe(port, "/", &headers).await, Ok(200));
        assert_eq!(
            request.join().unwrap(),
            "GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: mine/1\r\nX-A: b\r\nConnection: close\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn a_probe_follows_same_host_redirects_and_stops_at_a_redirect_elsewhere() {
        let redirect = |to: &str| format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n");
        let (port, requests) = serve(vec![
            redirect("/next"),
            redirect("http://127.0.0.1:{port}/last"),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy".into(),
        ]);
        assert_eq!(probe(port, "healthz", &[]).await, Ok(503));
        let paths = requests.join().unwrap().iter().map(|r| r.lines().next().unwrap().to_owned()).collect::<Vec<_>>();
        assert_eq!(paths, ["GET /healthz HTTP/1.1", "GET /next HTTP/1.1", "GET /last HTTP/1.1"]);

        // Nothing listens on 127.0.0.2:1: the 302 shows the redirect was not followed.
        let (port, requests) = serve(vec![redirect("http://127.0.0.2:1/elsewhere")]);
        assert_eq!(probe(port, "/", &[]).await, Ok(302));
        assert_eq!(requests.join().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_get_stops_after_10_redirects_and_hooks_follow_redirects_elsewhere() {
        let to_self = "HTTP/1.1 307 Temporary Redirect\r\nLocation: /again\r\n\r\n".to_owned();
        let (port, requests) = serve(vec![to_self; 10]);
        let error = probe(port, "/", &[]).await.unwrap_err();
        assert_eq!(error, format!("Get \"http://127.0.0.1:{port}/again\": stopped after 10 redirects"));
        assert_eq!(requests.join().unwrap().len(), 10);

        let hook = Caller { user_agent: "kube-lifecycle/1.35", follows_other_hosts: true };
        let (port, _) = serve(vec!["HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.2:1/x\r\n\r\n".into()]);
        let error = get(false, "127.0.0.1", port, "/", &[], Duration::from_secs(1), &hook).await.unwrap_err();
        assert_eq!(error, "Get \"http://127.0.0.2:1/x\": dial tcp 127.0.0.2:1: connect: connection refused");
    }

    #[tokio::test]
    async fn failures_read_as_kubelets() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let error = probe(closed, "/healthz", &[]).await.unwrap_err();
        assert_eq!(
            error,
            format!(
                "Get \"http://127.0.0.1:{closed}/healthz\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
            )
        );

        let (port, _) = serve(vec!["SSH-2.0-OpenSSH_9.6\r\n".into()]);
        let error = probe(port, "/", &[]).await.unwrap_err();
        assert_eq!(
            error,
            format!(
                "Get \"http://127.0.0.1:{port}/\": net/http: HTTP/1.x transport connection broken: \
                 malformed HTTP response \"SSH-2.0-OpenSSH_9.6\""
            )
        );

        // Accepted (by the backlog) but never answered: the probe's timeout bounds it.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let error = get(false, "127.0.0.1", port, "/healthz", &[], Duration::from_millis(200), &PROBE).await;
        let error = error.unwrap_err();
        assert_eq!(error, format!("Get \"http://127.0.0.1:{port}/healthz\": context deadline exceeded"));
    }

    #[test]
    fn ipv6_hosts_are_bracketed_in_the_authority() {
        assert_eq!(authority("fd00::1", 8080), "[fd00::1]:8080");
        assert_eq!(authority("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(authority("db.local", 5432), "db.local:5432");
    }
}
