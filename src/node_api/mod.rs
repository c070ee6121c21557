//! kubelet's API on the Node's kubeletEndpoint port (10250, HTTPS): what the API server calls
//! for `kubectl logs`, `exec`, `attach`, `port-forward` and `cp`, and what metrics-server and
//! `kubectl get --raw .../proxy/...` read. Every request is authenticated (`authn`) and
//! authorized (`authz`) as kubelet does it before it is routed (`routes`).
//!
//! The connection loop bounds what a client can hold: 10 s for the TLS handshake and 10 s for
//! each request's headers (a slow-loris client is dropped), and shutdown stops accepting and
//! lets each connection finish its request.

pub mod authn;
pub mod authz;
pub mod logs;
pub mod proxy;
mod routes;
pub mod stats;
pub mod tls;

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{cri::Observer, cri::SharedCri, desired::Desired, ops::metrics::Metrics, supervisor::Views};

pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// What the handlers read: the node's pods as desired and as running, and who may ask.
pub struct NodeApi {
    pub node: String,
    pub node_ip: String,
    pub runtime: SharedCri,
    pub observer: Arc<Observer>,
    pub desired: watch::Receiver<Arc<Desired>>,
    pub views: Views,
    pub metrics: Arc<Metrics>,
    pub authn: authn::Authenticator,
    pub authz: authz::Authorizer,
    /// Where node stats are read (the root cgroup, /proc, the root dir's filesystem).
    pub stats_files: stats::NodeFiles,
    /// The earlier CPU readings, for usageNanoCores.
    pub rates: std::sync::Mutex<stats::Rates>,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown`; each connection on its own task.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    api: Arc<NodeApi>,
    shutdown: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet API: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Interactive streams (exec, attach) and per-line log chunks: no Nagle delay, as Go's
        // servers default to.
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(acceptor.clone(), tcp, peer, api.clone(), shutdown.clone()));
    }
}

async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    api: Arc<NodeApi>,
    shutdown: CancellationToken,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "kubelet API: TLS handshake failed"),
        Err(_) => return tracing::debug!(%peer, "kubelet API: TLS handshake timed out"),
    };
    // The verifier has checked the chain against the client CA; the leaf names the user.
    let certificate_user =
        tls.get_ref().1.peer_certificates().and_then(|chain| chain.first()).and_then(|c| authn::user_of_certificate(c));
    let service = hyper::service::service_fn(move |req| {
        let (api, user) = (api.clone(), certificate_user.clone());
        async move { Ok::<_, Infallible>(routes::handle(&api, req, user.as_ref()).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "kubelet API: connection ended");
        },
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
