//! The kubelet API's serving certificate. Where it comes from (`ServingSource::choose`):
//! tlsCertFile and tlsPrivateKeyFile when given; else, with serverTLSBootstrap, the cluster (a
//! `kubernetes.io/kubelet-serving` CSR, which an admin approves); else self-signed. With
//! serverTLSBootstrap, a current, unexpired `kubelet-server-current.pem` is served at once at
//! start (the self-signed one until a signed one exists), and renewed at its deadline.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use kube::Client;
use rustls::sign::CertifiedKey;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    CertError,
    identity::Template,
    renew::{CSR_WAIT, Renewer},
    store::{self, Pair},
};
use crate::node_api::tls::{ServingCert, certified_key};

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServingSource {
    /// tlsCertFile and tlsPrivateKeyFile, served as they are; no CSR is made. (kubelet, given
    /// these and serverTLSBootstrap, would start from them and still rotate.)
    Files { cert: PathBuf, key: PathBuf },
    /// serverTLSBootstrap: signed by the cluster, kept in the certificate directory.
    Bootstrap,
    /// Neither: the self-signed certificate (node_api::tls::self_signed).
    SelfSigned,
}

impl ServingSource {
    pub fn choose(
        tls_cert_file: Option<&Path>,
        tls_private_key_file: Option<&Path>,
        server_tls_bootstrap: bool,
    ) -> Result<Self, CertError> {
        match (tls_cert_file, tls_private_key_file) {
            (Some(cert), Some(key)) => Ok(Self::Files { cert: cert.into(), key: key.into() }),
            (Some(_), None) | (None, Some(_)) => {
                Err(CertError::Invalid("tlsCertFile and tlsPrivateKeyFile go together: give both, or neither".into()))
            }
            (None, None) if server_tls_bootstrap => Ok(Self::Bootstrap),
            (None, None) => Ok(Self::SelfSigned),
        }
    }
}

/// tlsCertFile and tlsPrivateKeyFile as a serving certificate; errors name the file.
pub fn from_files(cert: &Path, key: &Path) -> Result<CertifiedKey, CertError> {
    let read = |path: &Path| std::fs::read(path).map_err(|e| CertError::io(path, e));
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    certified_key(&cert_pem, &key_pem, &cert.display().to_string()).map_err(tls)
}

fn tls(e: crate::node_api::tls::TlsError) -> CertError {
    CertError::Pem { what: "serving certificate".into(), reason: e.to_string() }
}

fn serve(slot: &ServingCert, pair: &Pair, what: &str) -> Result<(), CertError> {
    slot.replace(certified_key(pair.cert_pem.as_bytes(), pair.key_pem.as_bytes(), what).map_err(tls)?);
    Ok(())
}

/// serverTLSBootstrap: the signed serving certificate, loaded from the directory or asked for.
pub struct Serving {
    renewer: Renewer,
    current: Option<Pair>,
}

impl Serving {
    /// Reads `kubelet-server-current.pem` from `cert_dir` and, if it has not expired, puts it
    /// into `slot` before this returns; `addresses` are the Node's (host name, IPs), which the
    /// certificate must name.
    pub fn start(cert_dir: &Path, node: &str, addresses: &[String], slot: &ServingCert) -> Result<Self, CertError> {
        let template = Template::serving(node, addresses);
        let current = store::load_current(cert_dir, template.signer.file_prefix())?;
        let path = store::current_path(cert_dir, template.signer.file_prefix());
        if let Some(pair) = current.as_ref().filter(|p| !p.info.is_expired(jiff::Timestamp::now())) {
            serve(slot, pair, &path.display().to_string())?;
            tracing::info!(file = %path.display(), not_after = %pair.info.not_after, "serving certificate loaded");
        }
        Ok(Self { renewer: Renewer { template, cert_dir: cert_dir.into(), wait: CSR_WAIT }, current })
    }

    /// How long one CSR is waited for before a new one is made (kubelet: 15 minutes).
    pub fn with_wait(mut self, wait: std::time::Duration) -> Self {
        self.renewer.wait = wait;
        self
    }

    /// Whether `start` found a certificate that needs no CSR now.
    pub fn current(&self) -> Option<&Pair> {
        self.current.as_ref()
    }

    /// Keeps the slot holding a signed certificate: asks when there is none (or it is due),
    /// with the newest client `clients` holds, until `shutdown`.
    pub async fn run(mut self, slot: Arc<ServingCert>, clients: watch::Receiver<Client>, shutdown: CancellationToken) {
        loop {
            let current = self.current.as_ref().map(|p| &p.info);
            let Some(pair) = self.renewer.next(current, &clients, &shutdown).await else { return };
            let path = store::current_path(&self.renewer.cert_dir, self.renewer.template.signer.file_prefix());
            if let Err(e) = serve(&slot, &pair, &path.display().to_string()) {
                // A signed certificate that rustls cannot use would be asked for again at once.
                tracing::error!(error = %e, "the signed serving certificate cannot be served");
                return;
            }
            self.current = Some(pair);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serving_certificate_comes_from_files_the_cluster_or_itself() {
        let (cert, key) = (Path::new("/etc/kubelet.crt"), Path::new("/etc/kubelet.key"));
        let files = ServingSource::Files { cert: cert.into(), key: key.into() };
        assert_eq!(ServingSource::choose(Some(cert), Some(key), false).unwrap(), files);
        assert_eq!(ServingSource::choose(Some(cert), Some(key), true).unwrap(), files);
        assert_eq!(ServingSource::choose(None, None, true).unwrap(), ServingSource::Bootstrap);
        assert_eq!(ServingSource::choose(None, None, false).unwrap(), ServingSource::SelfSigned);
        let err = ServingSource::choose(Some(cert), None, true).unwrap_err();
        assert!(err.to_string().contains("tlsPrivateKeyFile"), "{err}");
    }

    #[test]
    fn a_current_file_is_served_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, cert_pem, key_pem) = crate::node_api::tls::self_signed("node-a", &[]).unwrap();
        let pair = Pair::from_pem(&cert_pem, &key_pem, "test").unwrap();
        store::write(dir.path(), "kubelet-server", &pair, &"2026-01-01T00:00:00".parse().unwrap()).unwrap();
        let (placeholder, _, _) = crate::node_api::tls::self_signed("node-a", &[]).unwrap();
        let slot = ServingCert::new(placeholder);
        let serving = Serving::start(dir.path(), "node-a", &[], &slot).unwrap();
        assert_eq!(slot.current().cert[0], cert.cert[0]);
        assert_eq!(serving.current(), Some(&pair));
    }

    #[test]
    fn files_that_are_not_a_certificate_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("kubelet.crt");
        std::fs::write(&cert, "junk").unwrap();
        let err = from_files(&cert, &cert).unwrap_err();
        assert!(err.to_string().contains("kubelet.crt"), "{err}");
        let err = from_files(&dir.path().join("missing.crt"), &cert).unwrap_err();
        assert!(err.to_string().contains("missing.crt"), "{err}");
    }
}
