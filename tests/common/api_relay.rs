//! An HTTPS relay to the test cluster's API server for fault tests. It ends the daemon's TLS with
//! a serving certificate of the cluster CA and speaks to the API server as the node itself (the
//! node kubeconfig's client certificate), HTTP/1.1 request by request, so it can answer a request
//! the way an API server under trouble does: late, 429 with Retry-After, 500, a dropped
//! connection, or a watch that expires at once (410 Gone, as after an etcd compaction). Every
//! request is recorded with its verb, so a test can print requests per minute by verb.

use std::{
    convert::Infallible,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Request, Response, body::Incoming, client::conn::http1::SendRequest, service::service_fn};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ApiFault {
    /// Forwarded after this long.
    Delay(Duration),
    /// Answered with this HTTP status (and, for 429, Retry-After of these seconds).
    Status(u16, Option<u64>),
    /// The connection is dropped.
    Reset,
    /// A watch answered with one ERROR event, 410 Gone (resource version too old), and its end.
    WatchExpired,
}

struct Rule {
    verb: String,
    fault: ApiFault,
    times: u32,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    requests: Vec<(Instant, String)>,
    connections: Vec<tokio::task::AbortHandle>,
}

pub struct ApiRelay {
    /// The relay's own kubeconfig for the node: the original, with the relay as its server.
    pub kubeconfig: String,
    /// The API server's address (host:port), which the relay forwards to.
    pub upstream: String,
    state: Arc<Mutex<State>>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// A request's verb as the API server's audit log names it: get, list, watch, create, update,
/// patch, delete, followed by the resource (`pods`, `pods/status`, `leases`, ...).
pub fn verb_of(method: &str, path: &str, query: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/<group>/<version>/...; then [namespaces/<ns>/]<resource>[/<name>[/<sub>]]
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..).unwrap_or_default(),
        Some(&"apis") => segments.get(3..).unwrap_or_default(),
        _ => &[][..],
    };
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [resource] => (resource.to_string(), false),
        [resource, _] => (resource.to_string(), true),
        [resource, _, sub, ..] => (format!("{resource}/{sub}"), true),
        [] => ("-".to_owned(), false),
    };
    let watch = query.split('&').any(|p| p == "watch=true" || p == "watch=1");
    let verb = match method {
        "GET" if watch => "watch",
        "GET" if named => "get",
        "GET" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        other => other,
    };
    format!("{verb} {resource}")
}

/// The base64 value of `key:` in a kubeconfig, decoded.
fn kubeconfig_data(kubeconfig: &str, key: &str) -> Vec<u8> {
    let value = kubeconfig.lines().find_map(|l| l.trim().strip_prefix(key)).unwrap_or_else(|| panic!("no {key}"));
    base64::engine::general_purpose::STANDARD.decode(value.trim()).unwrap()
}

impl ApiRelay {
    /// A relay for the node of `kubeconfig` (its text), serving with `serving` (certificate, key).
    pub fn start(kubeconfig: &str, serving: (&Path, &Path)) -> Self {
        let server = kubeconfig.lines().find_map(|l| l.trim().strip_prefix("server: ")).unwrap().trim().to_owned();
        let upstream = server.trim_start_matches("https://").to_owned();
        assert!(!upstream.contains('/'), "a server URL without a path: {server}");
        let ca = kubeconfig_data(kubeconfig, "certificate-authority-data: ");
        let client_cert = kubeconfig_data(kubeconfig, "client-certificate-data: ");
        let client_key = kubeconfig_data(kubeconfig, "client-key-data: ");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(&client_cert).map(Result::unwrap).collect(),
                PrivateKeyDer::from_pem_slice(&client_key).unwrap(),
            )
            .unwrap();
        let mut serving_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                CertificateDer::pem_file_iter(serving.0).unwrap().map(Result::unwrap).collect(),
                PrivateKeyDer::from_pem_file(serving.1).unwrap(),
            )
            .unwrap();
        serving_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(serving_config));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));

        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, connector, upstream, state) =
                    (acceptor.clone(), connector.clone(), upstream.clone(), shared.clone());
                let connection = tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else { return };
                    serve(stream, connector, upstream, state).await;
                });
                let mut state = shared.lock().unwrap();
                state.connections.retain(|c| !c.is_finished());
                state.connections.push(connection.abort_handle());
            }
        });
        Self {
            kubeconfig: kubeconfig.replace(&server, &format!("https://127.0.0.1:{port}")),
            upstream: server.trim_start_matches("https://").to_owned(),
            state,
            runtime: Some(runtime),
        }
    }

    /// The next `times` requests of `verb` (as `verb_of` names them, or "*" for all, or a verb
    /// alone, "watch", for every resource) meet `fault`.
    pub fn inject(&self, verb: &str, fault: ApiFault, times: u32) {
        self.state.lock().unwrap().rules.push(Rule { verb: verb.into(), fault, times });
    }

    /// Drops every open connection, long watches included, so what is injected meets them too.
    pub fn drop_connections(&self) {
        for connection in self.state.lock().unwrap().connections.drain(..) {
            connection.abort();
        }
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// Injections on `verb` not used up yet.
    pub fn pending(&self, verb: &str) -> u64 {
        self.state.lock().unwrap().rules.iter().filter(|r| r.verb == verb).map(|r| u64::from(r.times)).sum()
    }

    /// The requests since `since`, by verb and resource.
    pub fn requests_since(&self, since: Instant) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for (_, verb) in self.state.lock().unwrap().requests.iter().filter(|(at, _)| *at >= since) {
            *counts.entry(verb.clone()).or_default() += 1;
        }
        counts
    }
}

impl Drop for ApiRelay {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never: Infallible| match never {}).boxed()
}

fn status_body(code: u16, reason: &str, message: &str) -> String {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    })
    .to_string()
}

type Upstream = Arc<tokio::sync::Mutex<Option<SendRequest<Incoming>>>>;

/// One connection of the daemon's, over (at most) one connection of our own to the API server.
async fn serve<S>(stream: S, connector: tokio_rustls::TlsConnector, upstream: String, state: Arc<Mutex<State>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let sender: Upstream = Arc::default();
    let service = service_fn(move |request: Request<Incoming>| {
        let (connector, upstream, state, sender) = (connector.clone(), upstream.clone(), state.clone(), sender.clone());
        async move {
            let verb = verb_of(request.method().as_str(), request.uri().path(), request.uri().query().unwrap_or(""));
            let fault = {
                let mut state = state.lock().unwrap();
                state.requests.push((Instant::now(), verb.clone()));
                let (kind, _) = verb.split_once(' ').unwrap_or((&verb, ""));
                let rule =
                    state.rules.iter_mut().find(|r| r.times > 0 && (r.verb == "*" || r.verb == verb || r.verb == kind));
                rule.map(|r| {
                    r.times -= 1;
                    r.fault
                })
            };
            match fault {
                Some(ApiFault::Status(code, retry_after)) => {
                    let mut response = Response::builder().status(code).header("content-type", "application/json");
                    if let Some(seconds) = retry_after {
                        response = response.header("retry-after", seconds.to_string());
                    }
                    let reason = if code == 429 { "TooManyRequests" } else { "InternalError" };
                    return Ok(response.body(full(status_body(code, reason, "injected by the API relay"))).unwrap());
                }
                Some(ApiFault::Reset) => return Err("injected reset".to_owned()),
                Some(ApiFault::WatchExpired) => {
                    let gone = status_body(410, "Expired", "too old resource version: 1 (2)");
                    let event = format!("{{\"type\":\"ERROR\",\"object\":{gone}}}\n");
                    return Ok(Response::builder()
                        .header("content-type", "application/json")
                        .body(full(event))
                        .unwrap());
                }
                Some(ApiFault::Delay(delay)) => tokio::time::sleep(delay).await,
                None => {}
            }
            forward(request, &connector, &upstream, &sender).await
        }
    });
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}

async fn forward(
    request: Request<Incoming>,
    connector: &tokio_rustls::TlsConnector,
    upstream: &str,
    sender: &Upstream,
) -> Result<Response<Body>, String> {
    let mut sender = sender.lock().await;
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        let tcp = TcpStream::connect(upstream).await.map_err(|e| e.to_string())?;
        let host = upstream.rsplit_once(':').map_or(upstream, |(host, _)| host).to_owned();
        let name = ServerName::try_from(host).map_err(|e| e.to_string())?;
        let tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
        let (send, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        *sender = Some(send);
    }
    let send = sender.as_mut().expect("connected above");
    send.ready().await.map_err(|e| e.to_string())?;
    let response = send.send_request(request).await.map_err(|e| e.to_string())?;
    Ok(response.map(BodyExt::boxed))
}
