//! The container runtime, through CRI v1: the only module that speaks gRPC.
//!
//! `translate` turns a static pod into CRI configs (pure); `client` makes the calls with typed
//! errors; `observe` relists the runtime and publishes what it saw to every pod supervisor.

mod client;
pub mod exit_watch;
pub mod labels;
mod observe;
pub mod translate;

pub use client::{CriError, Runtime};
pub use k8s_cri::v1 as api;
pub use observe::{ContainerInfo, ContainerState, Observer, RuntimePod, RuntimeSnapshot, SandboxInfo};
