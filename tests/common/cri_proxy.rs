//! A CRI proxy for fault tests: a unix socket that forwards every gRPC call to the real runtime,
//! HTTP/2 stream by stream, and on the calls a rule names delays it, answers with a gRPC error,
//! resets it, cuts its response short, or SIGKILLs the caller once the runtime has carried it
//! out (a crash between two CRI calls of one action). Every call is recorded with its time, so a
//! test can count what the daemon asked and how often.

use std::{
    convert::Infallible,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{UnixListener, UnixStream};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Forwarded after this long.
    Delay(Duration),
    /// Not forwarded: answered with this gRPC code.
    Fail(tonic::Code),
    /// Not forwarded: the stream is reset.
    Reset,
    /// Forwarded, and the answer cut to half its bytes, with no gRPC status.
    Truncate,
    /// Forwarded; once the runtime has answered, this process (staticlet, or containerd itself)
    /// is SIGKILLed and the answer lost.
    KillOnAnswer(u32),
}

struct Rule {
    method: String,
    fault: Fault,
    times: u32,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    calls: Vec<(Instant, String)>,
    kills: u32,
}

pub struct CriProxy {
    /// What the daemon is given as --container-runtime-endpoint.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    runtime: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

/// The method a gRPC path names: `ListContainers` of `/runtime.v1.RuntimeService/ListContainers`.
fn method_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl CriProxy {
    /// A proxy in front of the runtime at `upstream` (`unix:///...`).
    pub fn start(upstream: &str) -> Self {
        let upstream = PathBuf::from(upstream.strip_prefix("unix://").unwrap_or(upstream));
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("cri.sock");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let listener = runtime.block_on(async { UnixListener::bind(&socket) }).unwrap();
        let shared = state.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, upstream.clone(), shared.clone()));
            }
        });
        Self { endpoint: format!("unix://{}", socket.display()), state, runtime: Some(runtime), _dir: dir }
    }

    /// The next `times` calls of `method` (or of every method, for "*") meet `fault`.
    pub fn inject(&self, method: &str, fault: Fault, times: u32) {
        self.state.lock().unwrap().rules.push(Rule { method: method.into(), fault, times });
    }

    /// Injections on `method` not used up yet.
    pub fn pending(&self, method: &str) -> u64 {
        self.state.lock().unwrap().rules.iter().filter(|r| r.method == method).map(|r| u64::from(r.times)).sum()
    }

    /// Callers killed so far.
    pub fn kills(&self) -> u32 {
        self.state.lock().unwrap().kills
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// The methods called since `since`, in order.
    pub fn calls_since(&self, since: Instant) -> Vec<String> {
        self.state.lock().unwrap().calls.iter().filter(|(at, _)| *at >= since).map(|(_, m)| m.clone()).collect()
    }
}

impl Drop for CriProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never: Infallible| match never {}).boxed()
}

/// One connection of the daemon's, over one connection of our own to the runtime.
async fn serve(stream: UnixStream, upstream: PathBuf, state: Arc<Mutex<State>>) {
    let Ok(runtime) = UnixStream::connect(&upstream).await else { return };
    let Ok((sender, connection)) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(runtime)).await
    else {
        return;
    };
    let mut upstream_connection = tokio::spawn(connection);
    let service = service_fn(move |request: Request<Incoming>| {
        let (sender, state) = (sender.clone(), state.clone());
        async move {
            let method = method_of(request.uri().path()).to_owned();
            let fault = {
                let mut state = state.lock().unwrap();
                state.calls.push((Instant::now(), method.clone()));
                let rule = state.rules.iter_mut().find(|r| r.times > 0 && (r.method == "*" || r.method == method));
                rule.map(|r| {
                    r.times -= 1;
                    r.fault
                })
            };
            answer(request, fault, sender, state).await
        }
    });
    let downstream =
        hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service);
    // A runtime that goes away (killed, restarted) takes the daemon's connection with it, as it
    // would without the proxy, so the daemon connects again to the runtime that comes back.
    tokio::select! {
        _ = downstream => upstream_connection.abort(),
        _ = &mut upstream_connection => {}
    }
}

async fn answer(
    request: Request<Incoming>,
    fault: Option<Fault>,
    mut runtime: hyper::client::conn::http2::SendRequest<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Body>, String> {
    match fault {
        Some(Fault::Fail(code)) => {
            // A trailers-only answer, as a gRPC server gives for an error before any message.
            return Ok(Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", (code as i32).to_string())
                .header("grpc-message", "injected%20by%20the%20CRI%20proxy")
                .body(full(Bytes::new()))
                .unwrap());
        }
        Some(Fault::Reset) => return Err("injected reset".into()),
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        _ => {}
    }
    let response = runtime.send_request(request).await.map_err(|e| e.to_string())?;
    match fault {
        Some(Fault::Truncate) => {
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok(Response::from_parts(parts, full(bytes.slice(..bytes.len() / 2))))
        }
        Some(Fault::KillOnAnswer(pid)) => {
            let _ = response.into_body().collect().await;
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            state.lock().unwrap().kills += 1;
            Err(format!("{pid} was killed"))
        }
        _ => Ok(response.map(BodyExt::boxed)),
    }
}
