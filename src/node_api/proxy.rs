//! exec, attach and port-forward: the runtime's streaming server (containerd's, on loopback)
//! speaks SPDY and WebSocket itself, so the kubelet API forwards the caller's upgrade request
//! to the URL CRI gave, and once the runtime has switched protocols, copies bytes both ways.
//! No byte is interpreted; only a loopback URL is followed.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::Body;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("streaming URL {0:?} is not an http:// URL on a loopback address: refused")]
    NotLoopback(String),
    #[error("runtime streaming server {url}: {message}")]
    Backend { url: String, message: String },
}

/// host:port and path of a streaming URL, if it is plain HTTP on loopback.
pub fn loopback_target(url: &str) -> Result<(String, String), ProxyError> {
    let refused = || ProxyError::NotLoopback(url.to_owned());
    let rest = url.strip_prefix("http://").ok_or_else(refused)?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => return Err(refused()),
    };
    let ip: std::net::IpAddr = host.trim_start_matches('[').trim_end_matches(']').parse().map_err(|_| refused())?;
    if !ip.is_loopback() {
        return Err(refused());
    }
    Ok((authority.to_owned(), if path.is_empty() { "/".into() } else { path.to_owned() }))
}

/// Whether a request asks to switch protocols (SPDY/3.1 from the API server, or WebSocket).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
    connection_upgrade && headers.contains_key(http::header::UPGRADE)
}

/// The request head sent to the runtime: the caller's method and headers, the runtime's path.
fn request_head(method: &http::Method, authority: &str, path: &str, headers: &HeaderMap) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    for (name, value) in headers {
        // The caller's credentials are for us, not the runtime; Host is the runtime's.
        if name == http::header::HOST || name == http::header::AUTHORIZATION {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

const HEAD_LIMIT: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Forwards `req` to the runtime's `url`; on 101 Switching Protocols, answers 101 with the
/// runtime's headers and splices the two connections; else relays the runtime's answer.
pub async fn forward(req: Request<hyper::body::Incoming>, url: &str) -> Result<Response<Body>, ProxyError> {
    let (authority, path) = loopback_target(url)?;
    let backend = |message: String| ProxyError::Backend { url: url.to_owned(), message };
    let mut upstream = tokio::time::timeout(TIMEOUT, TcpStream::connect(&authority))
        .await
        .map_err(|_| backend("connect timed out".into()))?
        .map_err(|e| backend(e.to_string()))?;
    // SPDY and WebSocket frames are small and interactive: no Nagle delay (Go's default too).
    let _ = upstream.set_nodelay(true);
    upstream
        .write_all(&request_head(req.method(), &authority, &path, req.headers()))
        .await
        .map_err(|e| backend(e.to_string()))?;
    let (status, headers, leftover) =
        tokio::time::timeout(TIMEOUT, read_head(&mut upstream)).await.map_err(|_| backend("no answer".into()))??;
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        response = response.header(name, value);
    }
    if status != StatusCode::SWITCHING_PROTOCOLS {
        // An error page (bad token, unknown container): relay it, bounded.
        let mut body = leftover.to_vec();
        let _ = tokio::time::timeout(TIMEOUT, (&mut upstream).take(HEAD_LIMIT as u64).read_to_end(&mut body)).await;
        return response.body(super::full(body)).map_err(|e| backend(e.to_string()));
    }
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "streaming client went away before the upgrade");
                return;
            }
        };
        let mut client = hyper_util::rt::TokioIo::new(upgraded);
        if !leftover.is_empty() && client.write_all(&leftover).await.is_err() {
            return;
        }
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "streaming session ended");
        }
    });
    response.body(super::empty()).map_err(|e| ProxyError::Backend { url: String::new(), message: e.to_string() })
}

/// Reads the runtime's response head: status, headers, and any bytes read past it.
async fn read_head(upstream: &mut TcpStream) -> Result<(StatusCode, HeaderMap, Bytes), ProxyError> {
    let backend = |message: String| ProxyError::Backend { url: String::new(), message };
    let mut buf = Vec::with_capacity(4096);
    loop {
        let mut chunk = [0u8; 4096];
        let n = upstream.read(&mut chunk).await.map_err(|e| backend(e.to_string()))?;
        if n == 0 {
            return Err(backend("closed before answering".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut parsed = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut parsed);
        match response.parse(&buf).map_err(|e| backend(e.to_string()))? {
            httparse::Status::Complete(len) => {
                let status = StatusCode::from_u16(response.code.unwrap_or(502)).unwrap_or(StatusCode::BAD_GATEWAY);
                let mut headers = HeaderMap::new();
                for h in response.headers.iter() {
                    if let (Ok(name), Ok(value)) =
                        (http::HeaderName::from_bytes(h.name.as_bytes()), HeaderValue::from_bytes(h.value))
                    {
                        headers.append(name, value);
                    }
                }
                return Ok((status, headers, Bytes::copy_from_slice(&buf[len..])));
            }
            httparse::Status::Partial if buf.len() > HEAD_LIMIT => return Err(backend("answer head too large".into())),
            httparse::Status::Partial => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_on_loopback_is_followed() {
        assert_eq!(
            loopback_target("http://127.0.0.1:35000/exec/abc").unwrap(),
            ("127.0.0.1:35000".into(), "/exec/abc".into())
        );
        assert_eq!(loopback_target("http://[::1]:8/x").unwrap().0, "[::1]:8");
        for url in
            ["http://10.0.0.1:35000/exec/abc", "https://127.0.0.1:1/x", "http://localhost:1/x", "http://127.0.0.1/x"]
        {
            assert_eq!(loopback_target(url), Err(ProxyError::NotLoopback(url.into())), "{url}");
        }
    }

    #[test]
    fn an_upgrade_needs_connection_upgrade_and_an_upgrade_header() {
        let mut h = HeaderMap::new();
        assert!(!is_upgrade(&h));
        h.insert(http::header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        assert!(!is_upgrade(&h));
        h.insert(http::header::UPGRADE, "SPDY/3.1".parse().unwrap());
        assert!(is_upgrade(&h));
    }

    #[test]
    fn the_runtime_gets_the_callers_headers_but_not_its_credentials() {
        let mut h = HeaderMap::new();
        h.insert(http::header::UPGRADE, "SPDY/3.1".parse().unwrap());
        h.insert(http::header::AUTHORIZATION, "Bearer secret".parse().unwrap());
        h.insert("x-stream-protocol-version", "v4.channel.k8s.io".parse().unwrap());
        let head = String::from_utf8(request_head(&http::Method::POST, "127.0.0.1:1", "/exec/t", &h)).unwrap();
        assert!(head.starts_with("POST /exec/t HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"), "{head}");
        assert!(
            head.contains("upgrade: SPDY/3.1\r\n") && head.contains("x-stream-protocol-version: v4.channel.k8s.io\r\n")
        );
        assert!(!head.contains("secret") && head.ends_with("\r\n\r\n"));
    }
}
