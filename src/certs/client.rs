//! The node's client certificate, renewed before it expires (rotateCertificates): a new key and
//! a `kubernetes.io/kube-apiserver-client-kubelet` CSR made with the current certificate
//! (kubeadm's `selfnodeclient` binding has kube-controller-manager approve it), written to
//! `kubelet-client-<stamp>.pem` with the symlink repointed. The kubeconfig is not rewritten:
//! kubelet's points at `kubelet-client-current.pem` already, and for one that names other files
//! the certificate directory's pair takes their place, as kubelet's certificate store does.
//!
//! A `kube::Client` holds the certificate it was built with, so each new certificate is handed
//! out as a new client through a `watch` channel; whoever talks to the API server takes the
//! newest one from it.

use std::path::{Path, PathBuf};

use kube::Client;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    CertError,
    identity::{CertInfo, Template},
    kubeconfig,
    renew::{CSR_WAIT, Renewer},
    store,
};

pub struct ClientCerts {
    kubeconfig: PathBuf,
    renewer: Renewer,
}

/// Which certificate the node presents: the directory's current pair when it is good (it is the
/// newer: rotation writes there), else the kubeconfig's own.
pub fn use_store(store: Option<&CertInfo>, template: &Template, now: jiff::Timestamp) -> bool {
    store.is_some_and(|cert| !cert.is_expired(now) && template.is_satisfied_by(cert))
}

impl ClientCerts {
    pub fn new(kubeconfig: &Path, cert_dir: &Path, node: &str) -> Self {
        Self {
            kubeconfig: kubeconfig.into(),
            renewer: Renewer { template: Template::client(node), cert_dir: cert_dir.into(), wait: CSR_WAIT },
        }
    }

    /// How long one CSR is waited for before a new one is made (kubelet: 15 minutes).
    pub fn with_wait(mut self, wait: std::time::Duration) -> Self {
        self.renewer.wait = wait;
        self
    }

    fn current_path(&self) -> PathBuf {
        store::current_path(&self.renewer.cert_dir, self.renewer.template.signer.file_prefix())
    }

    /// The client to use now, and the certificate it presents (if the kubeconfig has one).
    pub async fn client(&self) -> Result<(Client, Option<CertInfo>), CertError> {
        let stored = store::load_current(&self.renewer.cert_dir, self.renewer.template.signer.file_prefix())?;
        let stored = stored.map(|p| p.info);
        if use_store(stored.as_ref(), &self.renewer.template, jiff::Timestamp::now()) {
            let client = kubeconfig::client(&self.kubeconfig, Some(&self.current_path())).await?;
            return Ok((client, stored));
        }
        let client = kubeconfig::client(&self.kubeconfig, None).await?;
        Ok((client, kubeconfig::client_certificate(&self.kubeconfig)?))
    }

    /// Renews the certificate `in_use` (from `client`) at each deadline until `shutdown`,
    /// sending a client built with each new one. Without a certificate in use (a token in the
    /// kubeconfig) there is nothing to rotate.
    pub async fn run(self, in_use: Option<CertInfo>, clients: watch::Sender<Client>, shutdown: CancellationToken) {
        let Some(mut in_use) = in_use else {
            tracing::info!(kubeconfig = %self.kubeconfig.display(), "no client certificate to rotate");
            return;
        };
        let receiver = clients.subscribe();
        loop {
            let Some(pair) = self.renewer.next(Some(&in_use), &receiver, &shutdown).await else { return };
            match kubeconfig::client(&self.kubeconfig, Some(&self.current_path())).await {
                Ok(client) => {
                    clients.send_replace(client);
                    in_use = pair.info;
                }
                Err(e) => {
                    // Kept: the old client still works until the old certificate expires.
                    tracing::error!(error = %e, "cannot build a client with the renewed certificate");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directorys_pair_is_used_when_it_is_good() {
        let template = Template::client("node-a");
        let good = CertInfo {
            common_name: "system:node:node-a".into(),
            organizations: vec!["system:nodes".into()],
            dns_names: vec![],
            ips: vec![],
            not_before: "2026-01-01T00:00:00Z".parse().unwrap(),
            not_after: "2027-01-01T00:00:00Z".parse().unwrap(),
        };
        let now = "2026-06-01T00:00:00Z".parse().unwrap();
        assert!(use_store(Some(&good), &template, now));
        assert!(!use_store(None, &template, now));
        assert!(!use_store(Some(&good), &template, "2027-01-01T00:00:00Z".parse().unwrap()), "expired");
        let other = CertInfo { common_name: "system:node:node-b".into(), ..good };
        assert!(!use_store(Some(&other), &template, now), "another node's");
    }
}
