//! What a node certificate must say (`Template`: subject and names, as kubelet's certificate
//! managers ask for them), what one does say (`CertInfo`, read from its PEM), and whether the
//! second satisfies the first, by kubelet's rule: same common name, and the same sets of
//! organizations, DNS names and IP addresses. A certificate that no longer satisfies its
//! template (the node got another address) is renewed at once.

use std::{collections::BTreeSet, net::IpAddr};

use super::CertError;

pub const NODES_GROUP: &str = "system:nodes";

/// The two certificates a node asks the cluster for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// The client certificate of `--kubeconfig`: who the node is to the API server.
    Client,
    /// The kubelet API's serving certificate (serverTLSBootstrap).
    Serving,
}

impl Signer {
    pub fn name(self) -> &'static str {
        match self {
            Self::Client => "kubernetes.io/kube-apiserver-client-kubelet",
            Self::Serving => "kubernetes.io/kubelet-serving",
        }
    }

    /// kubelet's usages for an ECDSA key. "key encipherment" is for RSA keys only, and the
    /// kube-controller-manager's signers accept exactly these sets, so they must match.
    pub fn usages(self) -> [&'static str; 2] {
        match self {
            Self::Client => ["digital signature", "client auth"],
            Self::Serving => ["digital signature", "server auth"],
        }
    }

    /// kubelet's file name prefix in the certificate directory.
    pub fn file_prefix(self) -> &'static str {
        match self {
            Self::Client => "kubelet-client",
            Self::Serving => "kubelet-server",
        }
    }
}

/// What the node asks for: `O=system:nodes, CN=system:node:<node>`, and for serving, names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub signer: Signer,
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Template {
    /// The client certificate: the node's identity, no names (the signer refuses any).
    pub fn client(node: &str) -> Self {
        Self {
            signer: Signer::Client,
            common_name: format!("system:node:{node}"),
            organizations: vec![NODES_GROUP.into()],
            dns_names: Vec::new(),
            ips: Vec::new(),
        }
    }

    /// The serving certificate: the node's name, its host name and each of its addresses (an
    /// address that parses as an IP is an IP SAN, anything else a DNS name), each once, in the
    /// order given.
    pub fn serving(node: &str, addresses: &[String]) -> Self {
        let mut template = Self { signer: Signer::Serving, ..Self::client(node) };
        for address in std::iter::once(node).chain(addresses.iter().map(String::as_str)) {
            let address = address.trim();
            if address.is_empty() {
                continue;
            }
            match address.parse::<IpAddr>() {
                Ok(ip) if !template.ips.contains(&ip) => template.ips.push(ip),
                Ok(_) => {}
                Err(_) if !template.dns_names.iter().any(|d| d == address) => template.dns_names.push(address.into()),
                Err(_) => {}
            }
        }
        template
    }

    /// kubelet's `certSatisfiesTemplate`.
    pub fn is_satisfied_by(&self, cert: &CertInfo) -> bool {
        fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
            items.iter().cloned().collect()
        }
        cert.common_name == self.common_name
            && set(&cert.organizations) == set(&self.organizations)
            && set(&cert.dns_names) == set(&self.dns_names)
            && set(&cert.ips) == set(&self.ips)
    }
}

/// What a certificate (the first of a PEM chain) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub not_before: jiff::Timestamp,
    pub not_after: jiff::Timestamp,
}

impl CertInfo {
    /// Reads the first CERTIFICATE block of `pem`; `what` names it in errors (a file, a CSR).
    pub fn from_pem(pem: &[u8], what: &str) -> Result<Self, CertError> {
        let bad = |reason: String| CertError::Pem { what: what.to_owned(), reason };
        let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| bad(format!("no PEM block: {e}")))?;
        if block.label != "CERTIFICATE" {
            return Err(bad(format!("the first PEM block is a {}, not a CERTIFICATE", block.label)));
        }
        let cert = block.parse_x509().map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
        let text = |values: Vec<&x509_parser::x509::AttributeTypeAndValue>| -> Vec<String> {
            values.into_iter().filter_map(|v| v.as_str().ok().map(str::to_owned)).collect()
        };
        let subject = cert.subject();
        let (mut dns_names, mut ips) = (Vec::new(), Vec::new());
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                    x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                            ips.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                            ips.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        let time = |t: x509_parser::time::ASN1Time| {
            jiff::Timestamp::from_second(t.timestamp()).map_err(|e| bad(format!("validity out of range: {e}")))
        };
        Ok(Self {
            common_name: text(subject.iter_common_name().collect()).into_iter().next().unwrap_or_default(),
            organizations: text(subject.iter_organization().collect()),
            dns_names,
            ips,
            not_before: time(cert.validity().not_before)?,
            not_after: time(cert.validity().not_after)?,
        })
    }

    pub fn is_expired(&self, now: jiff::Timestamp) -> bool {
        now >= self.not_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(common_name: &str, organizations: &[&str], dns: &[&str], ips: &[&str]) -> CertInfo {
        CertInfo {
            common_name: common_name.into(),
            organizations: organizations.iter().map(|o| o.to_string()).collect(),
            dns_names: dns.iter().map(|d| d.to_string()).collect(),
            ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            not_before: jiff::Timestamp::UNIX_EPOCH,
            not_after: jiff::Timestamp::MAX,
        }
    }

    #[test]
    fn a_serving_template_names_the_node_its_host_and_addresses_once_each() {
        let template =
            Template::serving("node-a", &["10.0.0.5".into(), "host-a".into(), "node-a".into(), "10.0.0.5".into()]);
        assert_eq!(template.common_name, "system:node:node-a");
        assert_eq!(template.organizations, ["system:nodes"]);
        assert_eq!(template.dns_names, ["node-a", "host-a"]);
        assert_eq!(template.ips, ["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(template.signer.usages(), ["digital signature", "server auth"]);
    }

    #[test]
    fn a_client_template_has_no_names() {
        let template = Template::client("node-a");
        assert!(template.dns_names.is_empty() && template.ips.is_empty());
        assert_eq!(template.signer.name(), "kubernetes.io/kube-apiserver-client-kubelet");
        assert_eq!(template.signer.usages(), ["digital signature", "client auth"]);
    }

    #[test]
    fn a_certificate_satisfies_its_template_by_sets_not_order() {
        let template = Template::serving("node-a", &["10.0.0.5".into(), "host-a".into()]);
        let cn = "system:node:node-a";
        for (cert, satisfies) in [
            (cert(cn, &["system:nodes"], &["node-a", "host-a"], &["10.0.0.5"]), true),
            (cert(cn, &["system:nodes"], &["host-a", "node-a"], &["10.0.0.5"]), true),
            (cert(cn, &["system:nodes"], &["node-a", "host-a"], &["10.0.0.6"]), false),
            (cert(cn, &["system:nodes"], &["node-a"], &["10.0.0.5"]), false),
            (cert(cn, &["system:masters"], &["node-a", "host-a"], &["10.0.0.5"]), false),
            (cert("system:node:node-b", &["system:nodes"], &["node-a", "host-a"], &["10.0.0.5"]), false),
        ] {
            assert_eq!(template.is_satisfied_by(&cert), satisfies, "{cert:?}");
        }
    }

    #[test]
    fn a_certificate_is_read_from_its_pem() {
        let (_, pem, _) = crate::node_api::tls::self_signed("node-a", &["127.0.0.1".into()]).unwrap();
        let info = CertInfo::from_pem(pem.as_bytes(), "test").unwrap();
        assert_eq!(info.dns_names, ["node-a"]);
        assert_eq!(info.ips, ["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(info.not_before, "2000-01-01T00:00:00Z".parse().unwrap());
        let err = CertInfo::from_pem(b"junk", "/pki/x.pem").unwrap_err();
        assert!(err.to_string().starts_with("/pki/x.pem: "), "{err}");
    }
}
