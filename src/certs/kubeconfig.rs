//! The node's kubeconfig: read (is its client certificate still good? which cluster does the
//! bootstrap one name?), written (kubelet's after a TLS bootstrap: the bootstrap kubeconfig's
//! server and CA, and the certificate directory's `kubelet-client-current.pem` as both client
//! certificate and key, so that a rotation needs no rewrite), and turned into a client.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use kube::{
    Client,
    config::{AuthInfo, Kubeconfig},
};

use super::{CertError, identity::CertInfo};

/// How to reach the cluster, as the bootstrap kubeconfig says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAccess {
    pub server: String,
    /// The CA file (an absolute path), or else the CA inline (base64, as the file had it).
    pub certificate_authority: Option<String>,
    pub certificate_authority_data: Option<String>,
    pub insecure_skip_tls_verify: bool,
}

/// kubelet's kubeconfig after a TLS bootstrap (`writeKubeconfigFromBootstrapping`), as client-go
/// writes it: keys sorted, kubelet's default-cluster, default-auth and default-context names.
pub fn render(cluster: &ClusterAccess, pem: &Path) -> String {
    let pem = scalar(&pem.display().to_string());
    let mut cluster_fields = String::new();
    if let Some(ca) = &cluster.certificate_authority {
        cluster_fields.push_str(&format!("    certificate-authority: {}\n", scalar(ca)));
    } else if let Some(data) = &cluster.certificate_authority_data {
        cluster_fields.push_str(&format!("    certificate-authority-data: {}\n", scalar(data)));
    }
    if cluster.insecure_skip_tls_verify {
        cluster_fields.push_str("    insecure-skip-tls-verify: true\n");
    }
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n{cluster_fields}    server: {server}\n  name: default-cluster\n\
         contexts:\n- context:\n    cluster: default-cluster\n    namespace: default\n    user: default-auth\n  \
         name: default-context\ncurrent-context: default-context\nkind: Config\npreferences: {{}}\nusers:\n\
         - name: default-auth\n  user:\n    client-certificate: {pem}\n    client-key: {pem}\n",
        server = scalar(&cluster.server),
    )
}

/// A YAML scalar: as it is when plain text cannot misread it, else double-quoted (JSON's quoting
/// is YAML's).
fn scalar(value: &str) -> String {
    let plain = !value.is_empty()
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "/:._-+=[]".contains(c))
        && value.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '/' || c == '.')
        && !matches!(value, "true" | "false" | "null" | "yes" | "no" | "on" | "off");
    if plain { value.to_owned() } else { serde_json::Value::from(value).to_string() }
}

fn read(path: &Path) -> Result<Kubeconfig, CertError> {
    Kubeconfig::read_from(path).map_err(|e| CertError::kubeconfig(path, super::describe(&e)))
}

/// The current context's cluster and user.
fn current(kubeconfig: &Kubeconfig, path: &Path) -> Result<(kube::config::Cluster, Option<AuthInfo>), CertError> {
    let context_name = kubeconfig
        .current_context
        .clone()
        .or_else(|| (kubeconfig.contexts.len() == 1).then(|| kubeconfig.contexts[0].name.clone()))
        .ok_or_else(|| CertError::kubeconfig(path, "no current-context".into()))?;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.clone())
        .ok_or_else(|| CertError::kubeconfig(path, format!("no context {context_name}")))?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| CertError::kubeconfig(path, format!("no cluster {}", context.cluster)))?;
    let user = context.user.as_ref().and_then(|u| kubeconfig.auth_infos.iter().find(|a| &a.name == u));
    Ok((cluster, user.and_then(|u| u.auth_info.clone())))
}

/// The bootstrap kubeconfig's cluster, which the written kubeconfig keeps.
pub fn cluster_access(bootstrap: &Path) -> Result<ClusterAccess, CertError> {
    let (cluster, _) = current(&read(bootstrap)?, bootstrap)?;
    let server = cluster.server.ok_or_else(|| CertError::kubeconfig(bootstrap, "the cluster has no server".into()))?;
    Ok(ClusterAccess {
        server,
        certificate_authority: cluster.certificate_authority,
        certificate_authority_data: cluster.certificate_authority_data,
        insecure_skip_tls_verify: cluster.insecure_skip_tls_verify.unwrap_or(false),
    })
}

/// kubelet's `isClientConfigStillValid`: the file exists, reads, and holds a client certificate
/// of which no part has expired. Anything else is bootstrapped again.
pub fn still_valid(path: &Path, now: jiff::Timestamp) -> Result<bool, CertError> {
    if !path.exists() {
        return Ok(false);
    }
    let Some(cert) = client_certificate(path)? else { return Ok(false) };
    Ok(!cert.is_expired(now))
}

/// The client certificate the kubeconfig's current user presents, if any.
pub fn client_certificate(path: &Path) -> Result<Option<CertInfo>, CertError> {
    let (_, user) = current(&read(path)?, path)?;
    let Some(user) = user else { return Ok(None) };
    let pem = match (&user.client_certificate_data, &user.client_certificate) {
        (Some(data), _) => base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| CertError::kubeconfig(path, format!("client-certificate-data: {e}")))?,
        (None, Some(file)) => std::fs::read(file).map_err(|e| CertError::io(Path::new(file), e))?,
        (None, None) => return Ok(None),
    };
    CertInfo::from_pem(&pem, &path.display().to_string()).map(Some)
}

/// The user's client certificate and key files, when the kubeconfig names files.
pub fn client_files(path: &Path) -> Result<Option<(PathBuf, PathBuf)>, CertError> {
    let (_, user) = current(&read(path)?, path)?;
    Ok(user.and_then(|u| Some((u.client_certificate?.into(), u.client_key?.into()))))
}

/// A client from the kubeconfig at `path`; with `identity`, that file (certificate and key, as
/// the certificate directory keeps them) replaces the kubeconfig user's certificate and key.
pub async fn client(path: &Path, identity: Option<&Path>) -> Result<Client, CertError> {
    let mut kubeconfig = read(path)?;
    if let Some(identity) = identity {
        let context = kubeconfig.current_context.clone();
        let user = kubeconfig
            .contexts
            .iter()
            .find(|c| Some(&c.name) == context.as_ref())
            .and_then(|c| c.context.as_ref()?.user.clone());
        for named in kubeconfig.auth_infos.iter_mut().filter(|a| Some(&a.name) == user.as_ref()) {
            let auth = named.auth_info.get_or_insert_with(Default::default);
            auth.client_certificate = Some(identity.display().to_string());
            auth.client_key = Some(identity.display().to_string());
            auth.client_certificate_data = None;
            auth.client_key_data = None;
        }
    }
    let invalid = |e: &dyn std::error::Error| CertError::kubeconfig(path, super::describe(e));
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.map_err(|e| invalid(&e))?;
    Client::try_from(config).map_err(|e| invalid(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrapped_kubeconfig_is_kubelets() {
        let cluster = ClusterAccess {
            server: "https://10.0.0.1:6443".into(),
            certificate_authority: Some("/etc/kubernetes/pki/ca.crt".into()),
            certificate_authority_data: None,
            insecure_skip_tls_verify: false,
        };
        assert_eq!(
            render(&cluster, Path::new("/var/lib/kubelet/pki/kubelet-client-current.pem")),
            "apiVersion: v1
clusters:
- cluster:
    certificate-authority: /etc/kubernetes/pki/ca.crt
    server: https://10.0.0.1:6443
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
kind: Config
preferences: {}
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
"
        );
    }

    #[test]
    fn inline_ca_data_and_odd_paths_are_kept_as_written() {
        let cluster = ClusterAccess {
            server: "https://api.example:6443".into(),
            certificate_authority: None,
            certificate_authority_data: Some("LS0tLS1CRUdJTg==".into()),
            insecure_skip_tls_verify: true,
        };
        let text = render(&cluster, Path::new("/var/lib/my pki/kubelet-client-current.pem"));
        assert!(
            text.contains("    certificate-authority-data: LS0tLS1CRUdJTg==\n    insecure-skip-tls-verify: true\n")
        );
        assert!(text.contains("client-key: \"/var/lib/my pki/kubelet-client-current.pem\"\n"), "{text}");
    }

    #[test]
    fn a_rendered_kubeconfig_reads_back_with_its_cluster_and_pem() {
        let dir = tempfile::tempdir().unwrap();
        let (_, cert, key) = crate::node_api::tls::self_signed("node-a", &[]).unwrap();
        let pem = dir.path().join("kubelet-client-current.pem");
        std::fs::write(&pem, format!("{cert}{key}")).unwrap();
        let cluster = ClusterAccess {
            server: "https://127.0.0.1:6443".into(),
            certificate_authority: Some(dir.path().join("ca.crt").display().to_string()),
            certificate_authority_data: None,
            insecure_skip_tls_verify: false,
        };
        let path = dir.path().join("kubelet.conf");
        std::fs::write(&path, render(&cluster, &pem)).unwrap();
        assert_eq!(cluster_access(&path).unwrap(), cluster);
        assert_eq!(client_files(&path).unwrap(), Some((pem.clone(), pem.clone())));
        let now = jiff::Timestamp::now();
        assert!(still_valid(&path, now).unwrap(), "the self-signed certificate runs to 2100");
        assert!(!still_valid(&path, "2100-01-02T00:00:00Z".parse().unwrap()).unwrap(), "expired");
        assert!(!still_valid(&dir.path().join("missing.conf"), now).unwrap());
    }

    #[test]
    fn a_kubeconfig_without_a_client_certificate_is_not_still_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstrap.conf");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\n\
             users:\n- name: u\n  user: {token: abc.def}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n\
             current-context: x\n",
        )
        .unwrap();
        assert!(!still_valid(&path, jiff::Timestamp::now()).unwrap());
        assert_eq!(cluster_access(&path).unwrap().server, "https://127.0.0.1:1");
    }
}
