//! Probes, as kubelet runs them: liveness, readiness and startup; exec (CRI ExecSync), httpGet
//! (HTTP and HTTPS without certificate checks), tcpSocket and grpc.
//!
//! - `spec`: a container's probes from its manifest, checked (one handler, named ports resolved);
//! - `verdict`: what a run of results means (thresholds, startup gating), pure;
//! - `attempt`: one probe run against the container;
//! - `http`: one httpGet as kubelet's client makes it (headers, redirects, timeout), for probes
//!   and hooks; `http1`: its minimal HTTP/1.1 client for plain HTTP (HTTPS goes through reqwest);
//! - `prober`: one task per probe of a running container, feeding `Health` to its worker.
//!
//! The worker turns health into the container's `ready` and `started` (so READY in
//! `staticlet get pods` and the mirror's Ready condition follow readiness), and a failed liveness
//! or startup probe into `Action::KillUnhealthy`, after which the normal restart path (back-off
//! included) runs the container again.

pub(crate) mod attempt;
pub(crate) mod http;
mod http1;
pub mod prober;
pub mod spec;
pub mod verdict;

pub use prober::{Health, Prober};
pub use spec::{Handler, ProbeKind, ProbeSpec, container_probes};
