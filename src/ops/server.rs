//! The local status API, on loopback:
//! - `GET /pods`: every static pod as `staticlet get pods` shows it, plus manifest errors;
//! - `GET /metrics`: Prometheus text format;
//! - `GET /healthz`: the process is serving;
//! - `GET /readyz`: the runtime answered and the first manifest snapshot was applied.
//!
//! And kubelet's health endpoint, on its own port (healthzBindAddress:healthzPort, 127.0.0.1:10248),
//! which kubeadm's `[kubelet-check]` polls: `GET /healthz` alone, as kubelet serves it there.

use std::{net::SocketAddr, sync::Arc};

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{metrics::Metrics, readiness::Readiness};
use crate::{cri::Observer, desired::Desired, supervisor::Views};

pub use super::view::PodView;

/// The body of `GET /pods`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalStatus {
    pub node: String,
    pub runtime_endpoint: String,
    pub runtime_error: Option<String>,
    pub pods: Vec<PodView>,
    pub manifest_errors: Vec<String>,
}

#[derive(Clone)]
pub struct ServerState {
    pub node: String,
    pub runtime_endpoint: String,
    pub views: Views,
    pub desired: watch::Receiver<Arc<Desired>>,
    pub observer: Arc<Observer>,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    pub problems: crate::mirror::MirrorProblems,
}

pub async fn serve(listener: tokio::net::TcpListener, state: ServerState, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/pods", get(pods))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::error!(error = %e, "status API stopped");
    }
}

/// kubelet's health endpoint: `/healthz` answers `ok` while the process serves.
pub async fn serve_healthz(listener: tokio::net::TcpListener, shutdown: CancellationToken) {
    let app = Router::new().route("/healthz", get(|| async { "ok" }));
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::error!(error = %e, "health endpoint stopped");
    }
}

pub async fn bind(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address).await
}

async fn pods(State(state): State<ServerState>) -> Json<LocalStatus> {
    let desired = state.desired.borrow().clone();
    let mut pods: Vec<PodView> = state.views.all().iter().map(PodView::of).collect();
    for view in &mut pods {
        view.manifest_error = desired
            .pods
            .values()
            .find(|d| d.pod.uid == view.uid)
            .and_then(|d| d.stale.as_ref())
            .map(|e| format!("manifest is broken, running the last good version: {e}"));
        view.mirror_error = state.problems.get(&format!("{}/{}", view.namespace, view.name));
    }
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Json(LocalStatus {
        node: state.node.clone(),
        runtime_endpoint: state.runtime_endpoint.clone(),
        runtime_error: state.observer.latest().error.clone(),
        pods,
        manifest_errors: desired.errors.iter().map(ToString::to_string).collect(),
    })
}

async fn metrics(State(state): State<ServerState>) -> ([(&'static str, &'static str); 1], String) {
    let text = state.metrics.scrape(&state.observer.latest(), &state.desired.borrow());
    ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], text)
}

async fn readyz(State(state): State<ServerState>) -> (StatusCode, &'static str) {
    if state.readiness.is_ready() { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "starting") }
}
