//! The kubelet API's TLS: the serving certificate as one slot that every handshake reads, so a
//! certificate signed later (a `kubernetes.io/kubelet-serving` CSR) or renewed replaces it with
//! no restart and no dropped connection; and the client-certificate check against the
//! configured client CA, optional so that token-only clients (metrics-server) still get in.

use std::sync::{Arc, RwLock};

use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: {reason}")]
    Pem { what: String, reason: String },
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("client CA {path}: {reason}")]
    ClientCa { path: String, reason: String },
}

/// The serving certificate in use; `replace` swaps it for every later handshake.
#[derive(Debug)]
pub struct ServingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServingCert {
    pub fn new(key: CertifiedKey) -> Self {
        Self { current: RwLock::new(Arc::new(key)) }
    }

    pub fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A certificate chain and its key, from PEM (`what` names them in errors: a file, a CSR).
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8], what: &str) -> Result<CertifiedKey, TlsError> {
    let pem = |reason: String| TlsError::Pem { what: what.to_owned(), reason };
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(chain_pem).collect::<Result<_, _>>().map_err(|e| pem(e.to_string()))?;
    if chain.is_empty() {
        return Err(pem("no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| pem(format!("private key: {e}")))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| pem(e.to_string()))?;
    Ok(CertifiedKey::new(chain, signing))
}

/// What kubelet serves when it has no certificate yet: self-signed, for the node's name and
/// addresses. The API server refuses it when it checks kubelet certificates
/// (`--kubelet-certificate-authority`); a signed one replaces it once its CSR is approved.
/// Returns the key pair's PEM too, so it can be written to the certificate directory.
pub fn self_signed(node: &str, addresses: &[String]) -> Result<(CertifiedKey, String, String), TlsError> {
    let mut names = vec![node.to_owned()];
    names.extend(addresses.iter().filter(|a| *a != node).cloned());
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("{node}@{}", jiff::Timestamp::now().as_second()));
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    Ok((certified_key(cert_pem.as_bytes(), key_pem.as_bytes(), "self-signed certificate")?, cert_pem, key_pem))
}

/// The server's TLS configuration: HTTP/1.1 (the API server's upgrades for exec and
/// port-forward are HTTP/1.1), certificates from `serving`, and, with a client CA, client
/// certificates checked against it but not required (a bearer token is the other way in).
pub fn server_config(serving: Arc<ServingCert>, client_ca: Option<&std::path::Path>) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pem { what: "TLS versions".into(), reason: e.to_string() })?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let ca = |reason: String| TlsError::ClientCa { path: path.display().to_string(), reason };
            let bytes = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&bytes) {
                roots.add(cert.map_err(|e| ca(e.to_string()))?).map_err(|e| ca(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca("no CERTIFICATE block".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| ca(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(serving);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_names_the_node_and_its_addresses() {
        let (key, cert_pem, _) = self_signed("node-a", &["127.0.0.1".into(), "node-a".into()]).unwrap();
        let der = key.cert[0].clone();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let sans = cert.subject_alternative_name().unwrap().unwrap().value.general_names.clone();
        let sans: Vec<String> = sans.iter().map(|n| n.to_string()).collect();
        assert_eq!(sans, ["DNSName(node-a)", "IPAddress(7f:00:00:01)"]);
        assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn a_replaced_certificate_serves_the_next_handshake() {
        let (first, _, _) = self_signed("node-a", &[]).unwrap();
        let (second, _, _) = self_signed("node-a", &[]).unwrap();
        let expected = second.cert[0].clone();
        let slot = ServingCert::new(first);
        slot.replace(second);
        assert_eq!(slot.current().cert[0], expected);
    }

    #[test]
    fn pem_errors_name_what_was_read() {
        let err = certified_key(b"junk", b"junk", "/etc/kubelet.crt").unwrap_err();
        assert!(err.to_string().starts_with("/etc/kubelet.crt: no CERTIFICATE"), "{err}");
    }
}
