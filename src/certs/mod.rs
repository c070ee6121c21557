//! The node's certificates, as kubelet gets and keeps them:
//! - `bootstrap`: TLS bootstrap, a client certificate for `--kubeconfig` asked for with the
//!   credentials of `--bootstrap-kubeconfig` (a bootstrap token), and kubelet's kubeconfig
//!   written to point at it;
//! - `client`: the client certificate renewed before it expires (rotateCertificates), each new
//!   one handed out as a new `kube::Client`;
//! - `serving`: the kubelet API's certificate signed by the cluster (serverTLSBootstrap), put
//!   into `node_api::tls::ServingCert`, renewed likewise.
//!
//! The parts: `identity` (what a certificate must and does say), `deadline` (when to renew,
//! pure), `store` (kubelet's certificate directory layout), `csr` (keys, requests and the
//! CertificateSigningRequest API), `kubeconfig` (read, rendered, made a client), and `renew`
//! (the wait-then-ask loop both renewals share).
//!
//! Every wait for the cluster happens beside the pods, never before them: a node whose CSR
//! nobody approves still runs its static pods.

pub mod bootstrap;
pub mod client;
pub mod csr;
pub mod deadline;
pub mod identity;
pub mod kubeconfig;
pub mod renew;
pub mod serving;
pub mod store;

use std::{path::Path, time::Duration};

pub use bootstrap::Bootstrap;
pub use client::ClientCerts;
pub use serving::{Serving, ServingSource};

/// kubelet's default --cert-dir.
pub const DEFAULT_CERT_DIR: &str = "/var/lib/kubelet/pki";

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{what}: {reason}")]
    Pem { what: String, reason: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a symlink: kubelet and staticlet keep the current pair as a symlink; move the file away")]
    NotASymlink { path: String },
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("cannot make a key or a certificate request: {0}")]
    Key(#[from] rcgen::Error),
    #[error("{verb} CSR {name}: {message}")]
    Api { verb: &'static str, name: String, message: String },
    #[error(
        "CSR {name} exists and asks for another key or signer: delete it (`kubectl delete csr {name}`) and the \
         next attempt makes a new one"
    )]
    Conflict { name: String },
    #[error("CSR {name} was denied ({why}): see `kubectl describe csr {name}`")]
    Denied { name: String, why: String },
    #[error("CSR {name} failed ({why}): its signer could not sign it; see `kubectl describe csr {name}`")]
    Failed { name: String, why: String },
    #[error(
        "CSR {name} got no certificate within {}: approve it (`kubectl certificate approve {name}`; \
         `kubectl get csr` lists it){}",
        humanize(*waited),
        last_error.as_ref().map(|e| format!("; last watch error: {e}")).unwrap_or_default()
    )]
    NotIssued { name: String, waited: Duration, last_error: Option<String> },
    #[error("{0}")]
    Invalid(String),
}

impl CertError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.display().to_string(), source }
    }

    pub fn kubeconfig(path: &Path, message: String) -> Self {
        Self::Kubeconfig { path: path.display().to_string(), message }
    }

    pub fn api(verb: &'static str, name: &str, error: kube::Error) -> Self {
        let message = match &error {
            kube::Error::Api(status) => format!("{} ({})", status.message, status.reason),
            other => describe(other),
        };
        Self::Api { verb, name: name.into(), message }
    }

    /// Whether asking again with the same key can help: not after a denial or a signer's failure.
    pub fn ends_the_request(&self) -> bool {
        matches!(self, Self::Denied { .. } | Self::Failed { .. } | Self::Conflict { .. })
    }
}

fn humanize(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s if s > 0 => format!("{s}s"),
        _ => format!("{}ms", d.as_millis()),
    }
}

use crate::mirror::describe;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unissued_csr_says_how_to_approve_it() {
        let err = CertError::NotIssued { name: "csr-abc".into(), waited: Duration::from_secs(900), last_error: None };
        assert_eq!(
            err.to_string(),
            "CSR csr-abc got no certificate within 15m: approve it (`kubectl certificate approve csr-abc`; \
             `kubectl get csr` lists it)"
        );
    }
}
