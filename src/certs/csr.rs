//! Asking the cluster for a certificate: a fresh ECDSA P-256 key and a PKCS#10 request for a
//! `Template` (pure), then a certificates.k8s.io/v1 CertificateSigningRequest, watched until it
//! is issued, denied or failed, or the wait is over. Someone (kube-controller-manager for
//! kubeadm's client CSRs, an admin with `kubectl certificate approve` for serving ones) approves
//! it; the cluster's signer then writes `status.certificate`.

use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt as _;
use k8s_openapi::{
    ByteString,
    api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client,
    api::PostParams,
    runtime::{WatchStreamExt as _, watcher},
};
use sha2::Digest as _;
use x509_parser::prelude::FromDer as _;

use super::{CertError, identity::Template};

/// A private key and the request made with it, both PEM.
#[derive(Debug, Clone)]
pub struct Request {
    pub key_pem: String,
    pub csr_pem: String,
    /// The key's SubjectPublicKeyInfo (DER): what names a bootstrap CSR.
    pub public_key_der: Vec<u8>,
}

/// A request for `template`, with `key_pem`'s key or a new ECDSA P-256 one (kubelet's kind).
pub fn request(template: &Template, key_pem: Option<&str>) -> Result<Request, CertError> {
    let key = match key_pem {
        Some(pem) => rcgen::KeyPair::from_pem(pem)?,
        None => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
    };
    let mut names: Vec<String> = template.dns_names.clone();
    names.extend(template.ips.iter().map(ToString::to_string));
    let mut params = rcgen::CertificateParams::new(names)?;
    let mut subject = rcgen::DistinguishedName::new();
    for organization in &template.organizations {
        subject.push(rcgen::DnType::OrganizationName, organization.as_str());
    }
    subject.push(rcgen::DnType::CommonName, template.common_name.as_str());
    params.distinguished_name = subject;
    let csr = params.serialize_request(&key)?;
    Ok(Request {
        key_pem: key.serialize_pem(),
        csr_pem: csr.pem()?,
        public_key_der: rcgen::PublicKeyData::subject_public_key_info(&key),
    })
}

/// kubelet's name for a bootstrap CSR, `node-csr-<digest>` of the key, subject and usages: a
/// restarted bootstrap with the same key finds its CSR again (and an approval given meanwhile)
/// instead of asking twice.
/// What a CSR asks for: its subject and its subject alternative names (as x509-parser writes
/// them, `DNSName(n)`, `IPAddress(7f:00:00:01)`); None if it does not parse.
pub fn requested(csr_pem: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, block) = x509_parser::pem::parse_x509_pem(csr_pem).ok()?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents).ok()?;
    let names = csr
        .requested_extensions()
        .into_iter()
        .flatten()
        .filter_map(|e| match e {
            x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) => Some(san),
            _ => None,
        })
        .flat_map(|san| san.general_names.iter().map(|n| n.to_string()))
        .collect();
    Some((csr.certification_request_info.subject.to_string(), names))
}

pub fn bootstrap_name(template: &Template, public_key_der: &[u8]) -> String {
    let encode = |data: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data);
    let mut hash = sha2::Sha512_256::new();
    // '|' is not in the base64url alphabet, so no two inputs write the same stream.
    let mut write = |data: &[u8]| {
        hash.update(encode(data).as_bytes());
        hash.update(b"|");
    };
    write(public_key_der);
    write(template.common_name.as_bytes());
    for organization in &template.organizations {
        write(organization.as_bytes());
    }
    for usage in template.signer.usages() {
        write(usage.as_bytes());
    }
    format!("node-csr-{}", encode(&hash.finalize()))
}

/// The CertificateSigningRequest for `request`: named `name`, or `csr-<random>` by the server.
pub fn object(template: &Template, request: &Request, name: Option<&str>) -> CertificateSigningRequest {
    CertificateSigningRequest {
        metadata: ObjectMeta {
            name: name.map(str::to_owned),
            generate_name: name.is_none().then(|| "csr-".to_owned()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.csr_pem.clone().into_bytes()),
            signer_name: template.signer.name().into(),
            usages: Some(template.signer.usages().iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        status: None,
    }
}

/// Creates the CSR and returns its name and UID. A named one that exists already is taken over
/// if it asks for the same key and signer (a bootstrap restarted with its saved key).
pub async fn create(
    client: &Client,
    template: &Template,
    request: &Request,
    name: Option<&str>,
) -> Result<(String, String), CertError> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let wanted = object(template, request, name);
    let created = match api.create(&PostParams::default(), &wanted).await {
        Ok(created) => created,
        Err(kube::Error::Api(status)) if status.code == 409 && name.is_some() => {
            let name = name.unwrap_or_default();
            let existing = api.get(name).await.map_err(|e| CertError::api("get", name, e))?;
            if !same_request(&existing, request, template) {
                return Err(CertError::Conflict { name: name.into() });
            }
            existing
        }
        Err(e) => return Err(CertError::api("create", name.unwrap_or("csr-"), e)),
    };
    let name = created.metadata.name.unwrap_or_default();
    Ok((name, created.metadata.uid.unwrap_or_default()))
}

fn same_request(existing: &CertificateSigningRequest, request: &Request, template: &Template) -> bool {
    let key_of = |pem: &[u8]| -> Option<Vec<u8>> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem).ok()?;
        let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents).ok()?;
        Some(csr.certification_request_info.subject_pki.raw.to_vec())
    };
    existing.spec.signer_name == template.signer.name()
        && key_of(&existing.spec.request.0).is_some_and(|k| k == request.public_key_der)
}

/// Watches CSR `name` until it has a certificate (returned, PEM) or is denied or failed, for at
/// most `limit`. `uid` guards against a CSR deleted and made again under the same name.
pub async fn wait_for_certificate(
    client: &Client,
    name: &str,
    uid: &str,
    limit: Duration,
) -> Result<String, CertError> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
    let mut last_error = None;
    let outcome = tokio::time::timeout(limit, async {
        while let Some(item) = stream.next().await {
            match item {
                Ok(csr) => {
                    if let Some(outcome) = outcome(&csr, uid) {
                        return outcome;
                    }
                }
                Err(e) => last_error = Some(super::describe(&e)),
            }
        }
        Err(CertError::Invalid(format!("the watch of CSR {name} ended")))
    })
    .await;
    outcome.unwrap_or_else(|_| Err(CertError::NotIssued { name: name.into(), waited: limit, last_error }))
}

/// What a CSR says: issued (its certificate), denied, failed, or nothing yet (`None`).
pub fn outcome(csr: &CertificateSigningRequest, uid: &str) -> Option<Result<String, CertError>> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    if !uid.is_empty() && csr.metadata.uid.as_deref().is_some_and(|u| u != uid) {
        return Some(Err(CertError::Invalid(format!("CSR {name} was deleted and made again by someone else"))));
    }
    let status = csr.status.as_ref()?;
    for condition in status.conditions.iter().flatten() {
        if condition.status != "True" {
            continue;
        }
        let why = || {
            let reason = condition.reason.clone().unwrap_or_default();
            let message = condition.message.clone().unwrap_or_default();
            [reason, message].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(": ")
        };
        match condition.type_.as_str() {
            "Denied" => return Some(Err(CertError::Denied { name, why: why() })),
            "Failed" => return Some(Err(CertError::Failed { name, why: why() })),
            _ => {}
        }
    }
    let certificate = status.certificate.as_ref().filter(|c| !c.0.is_empty())?;
    Some(
        String::from_utf8(certificate.0.clone())
            .map_err(|_| CertError::Pem { what: format!("CSR {name}'s certificate"), reason: "not PEM text".into() }),
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::certificates::v1::{CertificateSigningRequestCondition, CertificateSigningRequestStatus};

    use super::*;

    #[test]
    fn a_serving_request_carries_the_subject_and_names() {
        let template = Template::serving("node-a", &["10.0.0.5".into(), "host-a".into()]);
        let request = request(&template, None).unwrap();
        let (subject, names) = requested(request.csr_pem.as_bytes()).unwrap();
        assert_eq!(subject, "O=system:nodes, CN=system:node:node-a");
        assert_eq!(names, ["DNSName(node-a)", "DNSName(host-a)", "IPAddress(0a:00:00:05)"]);
        assert!(request.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let object = object(&template, &request, None);
        assert_eq!(object.metadata.generate_name.as_deref(), Some("csr-"));
        assert_eq!(object.spec.signer_name, "kubernetes.io/kubelet-serving");
        assert_eq!(object.spec.usages.unwrap(), ["digital signature", "server auth"]);
    }

    #[test]
    fn the_same_key_gives_the_same_bootstrap_name_and_another_key_another() {
        let template = Template::client("node-a");
        let first = request(&template, None).unwrap();
        let again = request(&template, Some(&first.key_pem)).unwrap();
        let other = request(&template, None).unwrap();
        let name = bootstrap_name(&template, &first.public_key_der);
        assert_eq!(name, bootstrap_name(&template, &again.public_key_der));
        assert_ne!(name, bootstrap_name(&template, &other.public_key_der));
        assert_ne!(name, bootstrap_name(&Template::client("node-b"), &first.public_key_der));
        // node-csr- and 43 characters: 32 bytes of SHA-512/256 in unpadded base64url.
        assert!(name.starts_with("node-csr-") && name.len() == 9 + 43, "{name}");
    }

    fn csr(conditions: &[(&str, &str)], certificate: Option<&str>) -> CertificateSigningRequest {
        CertificateSigningRequest {
            metadata: ObjectMeta { name: Some("csr-x".into()), uid: Some("u1".into()), ..Default::default() },
            status: Some(CertificateSigningRequestStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(type_, reason)| CertificateSigningRequestCondition {
                            type_: type_.to_string(),
                            status: "True".into(),
                            reason: Some(reason.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                certificate: certificate.map(|c| ByteString(c.as_bytes().to_vec())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_csr_is_done_when_issued_denied_or_failed() {
        assert!(outcome(&csr(&[], None), "u1").is_none());
        assert!(outcome(&csr(&[("Approved", "AutoApproved")], None), "u1").is_none(), "approved, not signed yet");
        let issued = outcome(&csr(&[("Approved", "AutoApproved")], Some("PEM")), "u1").unwrap().unwrap();
        assert_eq!(issued, "PEM");
        let denied = outcome(&csr(&[("Denied", "NotMine")], None), "u1").unwrap().unwrap_err();
        assert_eq!(denied.to_string(), "CSR csr-x was denied (NotMine): see `kubectl describe csr csr-x`");
        let failed = outcome(&csr(&[("Approved", "A"), ("Failed", "SignerError")], None), "u1").unwrap().unwrap_err();
        assert!(failed.to_string().contains("csr-x") && failed.to_string().contains("SignerError"), "{failed}");
        let replaced = outcome(&csr(&[], Some("PEM")), "u0").unwrap().unwrap_err();
        assert!(replaced.to_string().contains("made again"), "{replaced}");
    }
}
