//! staticlet: a node agent for Kubernetes static pods.
//!
//! The modules follow the data flow:
//! `source` (manifest directory and URL) -> `manifest` (parse, validate, identity) ->
//! `desired` (merge of sources, last-good retention) -> `supervisor` (one task per pod, pure
//! decisions) -> `cri` (the only code that talks gRPC to the runtime, behind the `Cri` trait).
//! Observed + desired -> `mirror` (the only code that talks to the API server: Node, Lease,
//! mirror pods, events). `ops` serves the local view, health and metrics; `logs` reads container
//! logs from disk and rotates them; `config` is the settings table; `daemon` wires it all;
//! `retry` holds the two habits every retry loop shares (doubling waits, failures logged once).

pub mod certs;
pub mod config;
pub mod cri;
pub mod daemon;
pub mod desired;
pub mod hook;
pub mod logs;
pub mod manifest;
pub mod mirror;
pub mod node_api;
pub mod ops;
pub mod pod_security;
pub mod probe;
pub mod retry;
pub mod source;
pub mod supervisor;

/// For tests that keep a generated document under docs/ current.
#[cfg(test)]
pub(crate) mod generated {
    /// Asserts that docs/`name` is `rendered`; with STATICLET_REGENERATE set, writes it first.
    /// `regenerate` is the command that does that, for the failure message.
    pub fn assert_committed(name: &str, rendered: &str, regenerate: &str) {
        let path = format!("{}/docs/{name}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("STATICLET_REGENERATE").is_some() {
            std::fs::write(&path, rendered).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == rendered, "docs/{name} differs from its source: run `{regenerate}`");
    }
}
