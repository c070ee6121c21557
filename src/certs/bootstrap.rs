//! TLS bootstrap, kubelet's `LoadClientCert`: when `--kubeconfig` does not hold a client
//! certificate that is still good, get one with the credentials of `--bootstrap-kubeconfig` (a
//! bootstrap token, in group system:bootstrappers) and write kubelet's kubeconfig pointing at it.
//!
//! In order: a kubeconfig still good is kept; a good `kubelet-client-current.pem` from an
//! earlier run only needs the kubeconfig written; else a key (kept in `kubelet-client.key.tmp`
//! until the certificate comes, so a restart asks again with the same key and finds its CSR by
//! kubelet's digest name, `node-csr-...`), a CSR, and a wait of up to an hour for
//! kube-controller-manager to approve and sign it (kubeadm's RBAC bindings have it approve node
//! client CSRs; without them `kubectl certificate approve` does).
//!
//! Unlike kubelet, which exits when the bootstrap fails and is restarted by systemd, staticlet
//! keeps its pods running and retries in-process; and after a denial it asks with a new key, as
//! the denied CSR keeps its name forever.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use super::{
    CertError, csr,
    identity::Template,
    kubeconfig,
    store::{self, Pair},
};
use crate::retry::{Doubling, LogOnce};

/// kubelet waits this long for its bootstrap CSR to be signed.
pub const BOOTSTRAP_WAIT: Duration = Duration::from_secs(3600);

pub struct Bootstrap {
    pub kubeconfig: PathBuf,
    pub bootstrap_kubeconfig: PathBuf,
    pub cert_dir: PathBuf,
    pub node: String,
    pub wait: Duration,
}

/// How `ensure` found or made the kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrapped {
    /// The kubeconfig's client certificate is still good: nothing done.
    StillValid,
    /// A good pair from an earlier run was in the certificate directory: kubeconfig written.
    FromStore,
    /// A certificate was issued for this CSR, written, and the kubeconfig too.
    Issued { csr: String },
}

impl Bootstrap {
    pub fn new(kubeconfig: &Path, bootstrap_kubeconfig: &Path, cert_dir: &Path, node: &str) -> Self {
        Self {
            kubeconfig: kubeconfig.into(),
            bootstrap_kubeconfig: bootstrap_kubeconfig.into(),
            cert_dir: cert_dir.into(),
            node: node.into(),
            wait: BOOTSTRAP_WAIT,
        }
    }

    fn key_path(&self) -> PathBuf {
        self.cert_dir.join("kubelet-client.key.tmp")
    }

    /// One bootstrap, as kubelet makes it at start.
    pub async fn ensure(&self) -> Result<Bootstrapped, CertError> {
        let now = jiff::Timestamp::now();
        if kubeconfig::still_valid(&self.kubeconfig, now).unwrap_or(false) {
            return Ok(Bootstrapped::StillValid);
        }
        if !self.bootstrap_kubeconfig.exists() {
            return Err(CertError::Invalid(format!(
                "kubeconfig {} holds no client certificate that is still good, and bootstrap kubeconfig {} does not \
                 exist: write one (kubeadm join does) or the node's kubeconfig",
                self.kubeconfig.display(),
                self.bootstrap_kubeconfig.display()
            )));
        }
        let cluster = kubeconfig::cluster_access(&self.bootstrap_kubeconfig)?;
        let template = Template::client(&self.node);
        let prefix = template.signer.file_prefix();
        let pem = store::current_path(&self.cert_dir, prefix);
        if let Ok(Some(pair)) = store::load_current(&self.cert_dir, prefix)
            && super::client::use_store(Some(&pair.info), &template, now)
        {
            self.write_kubeconfig(&cluster, &pem)?;
            return Ok(Bootstrapped::FromStore);
        }

        store::create_private_dir(&self.cert_dir)?;
        let key_path = self.key_path();
        let saved_key = match std::fs::read_to_string(&key_path) {
            Ok(key) => Some(key),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(CertError::io(&key_path, e)),
        };
        let request = match csr::request(&template, saved_key.as_deref()) {
            Ok(request) => request,
            // A key we cannot read is of no use to anyone: start over with a new one.
            Err(_) if saved_key.is_some() => csr::request(&template, None)?,
            Err(e) => return Err(e),
        };
        store::write_private(&key_path, request.key_pem.as_bytes())?;
        let name = csr::bootstrap_name(&template, &request.public_key_der);
        let client = kubeconfig::client(&self.bootstrap_kubeconfig, None).await?;
        let (name, uid) = csr::create(&client, &template, &request, Some(&name)).await?;
        tracing::info!(csr = %name, bootstrap_kubeconfig = %self.bootstrap_kubeconfig.display(),
            "TLS bootstrap: client certificate requested; waiting for approval");
        let certificate = match csr::wait_for_certificate(&client, &name, &uid, self.wait).await {
            Ok(certificate) => certificate,
            Err(e) => {
                if e.ends_the_request() {
                    let _ = std::fs::remove_file(&key_path);
                }
                return Err(e);
            }
        };
        let pair = Pair::from_pem(&certificate, &request.key_pem, &format!("CSR {name}'s certificate"))?;
        store::write(&self.cert_dir, prefix, &pair, &store::local_stamp())?;
        let _ = std::fs::remove_file(&key_path);
        self.write_kubeconfig(&cluster, &pem)?;
        Ok(Bootstrapped::Issued { csr: name })
    }

    fn write_kubeconfig(&self, cluster: &kubeconfig::ClusterAccess, pem: &Path) -> Result<(), CertError> {
        if let Some(parent) = self.kubeconfig.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| CertError::io(parent, e))?;
        }
        store::write_private(&self.kubeconfig, kubeconfig::render(cluster, pem).as_bytes())
    }

    /// `ensure`, again and again (5 s doubling to 5 minutes between attempts) until it works;
    /// false if `shutdown` came first. Each new failure is logged once.
    pub async fn run(&self, shutdown: &CancellationToken) -> bool {
        let mut delay = Doubling::new(Duration::from_secs(5), Duration::from_secs(300));
        let mut failure = LogOnce::default();
        loop {
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => return false,
                attempt = self.ensure() => attempt,
            };
            match attempt {
                Ok(how) => {
                    if how != Bootstrapped::StillValid {
                        tracing::info!(kubeconfig = %self.kubeconfig.display(), ?how, "TLS bootstrap done");
                    }
                    return true;
                }
                Err(e) => {
                    if failure.failed(e.to_string()) {
                        tracing::warn!(error = %e, "TLS bootstrap failed; static pods are unaffected, retrying");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(delay.next_wait()) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_good_pair_from_an_earlier_run_only_needs_the_kubeconfig_written() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        // A pair for system:node:node-a, as the signer would have issued it.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:nodes");
        params.distinguished_name.push(rcgen::DnType::CommonName, "system:node:node-a");
        params.not_after = rcgen::date_time_ymd(2100, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        let pair = Pair::from_pem(&cert.pem(), &key.serialize_pem(), "test").unwrap();
        store::write(&pki, "kubelet-client", &pair, &"2026-01-01T00:00:00".parse().unwrap()).unwrap();
        let bootstrap_path = dir.path().join("bootstrap-kubelet.conf");
        std::fs::write(
            &bootstrap_path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1', \
             certificate-authority: ca.crt}\nusers:\n- name: u\n  user: {token: abc.def}\ncontexts:\n- name: x\n  \
             context: {cluster: c, user: u}\ncurrent-context: x\n",
        )
        .unwrap();
        let kubeconfig = dir.path().join("etc/kubelet.conf");
        let bootstrap = Bootstrap::new(&kubeconfig, &bootstrap_path, &pki, "node-a");
        assert_eq!(bootstrap.ensure().await.unwrap(), Bootstrapped::FromStore);
        let written = std::fs::read_to_string(&kubeconfig).unwrap();
        let ca = dir.path().join("ca.crt").display().to_string();
        assert!(written.contains(&format!("certificate-authority: {ca}\n")), "{written}");
        assert!(written.contains(&format!("client-key: {}\n", pki.join("kubelet-client-current.pem").display())));
        assert_eq!(bootstrap.ensure().await.unwrap(), Bootstrapped::StillValid);
    }

    #[tokio::test]
    async fn a_missing_bootstrap_kubeconfig_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let bootstrap =
            Bootstrap::new(&dir.path().join("kubelet.conf"), &dir.path().join("bootstrap.conf"), dir.path(), "node-a");
        let err = bootstrap.ensure().await.unwrap_err().to_string();
        assert!(
            err.contains("kubelet.conf") && err.contains("bootstrap.conf") && err.contains("kubeadm join"),
            "{err}"
        );
    }
}
