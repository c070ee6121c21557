//! The certificate directory, laid out as kubelet lays it out (--cert-dir, default
//! /var/lib/kubelet/pki), so that a node moving between kubelet and staticlet keeps its
//! certificates: each pair (certificate chain, then key, PEM, mode 0600) in
//! `<prefix>-<YYYY-MM-DD-HH-MM-SS>.pem`, and `<prefix>-current.pem` a symlink to the one in use.
//! A new pair is written beside the old ones and the symlink swapped by a rename, so a reader
//! sees the old pair or the new one, never half of either.

use std::{
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use super::{CertError, identity::CertInfo};

/// A certificate chain and its private key, as PEM, with what the certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
    pub info: CertInfo,
}

impl Pair {
    /// Reads a pair from PEM text holding both (a `-current.pem`), or from two texts.
    pub fn from_pem(cert_pem: &str, key_pem: &str, what: &str) -> Result<Self, CertError> {
        let info = CertInfo::from_pem(cert_pem.as_bytes(), what)?;
        let certs = pem_blocks(cert_pem, |label| label == "CERTIFICATE");
        let key = pem_blocks(key_pem, |label| label.ends_with("PRIVATE KEY"));
        if key.is_empty() {
            return Err(CertError::Pem { what: what.into(), reason: "no PRIVATE KEY block".into() });
        }
        Ok(Self { cert_pem: certs, key_pem: key, info })
    }

    /// The file's bytes: kubelet's order, certificates first.
    pub fn file_text(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }
}

/// The PEM blocks of `text` whose label `keep` accepts, each ending in a newline.
fn pem_blocks(text: &str, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
            inside = keep(label);
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
        if line.starts_with("-----END ") {
            inside = false;
        }
    }
    out
}

/// `<prefix>-<stamp>.pem`, the stamp in Go's `2006-01-02-15-04-05` layout (kubelet formats its
/// local time).
pub fn pair_file_name(prefix: &str, stamp: &jiff::civil::DateTime) -> String {
    format!("{prefix}-{}.pem", stamp.strftime("%Y-%m-%d-%H-%M-%S"))
}

pub fn current_path(dir: &Path, prefix: &str) -> PathBuf {
    dir.join(format!("{prefix}-current.pem"))
}

/// The pair `<prefix>-current.pem` holds; `None` if there is none.
pub fn load_current(dir: &Path, prefix: &str) -> Result<Option<Pair>, CertError> {
    let path = current_path(dir, prefix);
    match std::fs::read_to_string(&path) {
        Ok(text) => Pair::from_pem(&text, &text, &path.display().to_string()).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CertError::io(&path, e)),
    }
}

/// Writes `pair` as `<prefix>-<stamp>.pem` (0600) and points `<prefix>-current.pem` at it;
/// returns the current path. Like kubelet, refuses to replace a `-current.pem` that is a plain
/// file: somebody put it there, and it is theirs.
pub fn write(dir: &Path, prefix: &str, pair: &Pair, stamp: &jiff::civil::DateTime) -> Result<PathBuf, CertError> {
    create_private_dir(dir)?;
    let file = dir.join(pair_file_name(prefix, stamp));
    write_private(&file, pair.file_text().as_bytes())?;
    let current = current_path(dir, prefix);
    match std::fs::symlink_metadata(&current) {
        Ok(meta) if !meta.file_type().is_symlink() => {
            return Err(CertError::NotASymlink { path: current.display().to_string() });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CertError::io(&current, e)),
    }
    let updated = dir.join(format!("{prefix}-updated.pem"));
    match std::fs::remove_file(&updated) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(CertError::io(&updated, e)),
        _ => {}
    }
    std::os::unix::fs::symlink(&file, &updated).map_err(|e| CertError::io(&updated, e))?;
    std::fs::rename(&updated, &current).map_err(|e| CertError::io(&current, e))?;
    Ok(current)
}

/// The certificate directory holds keys: only root may look in (kubelet makes it 0755, but
/// nothing else needs to list it).
pub fn create_private_dir(dir: &Path) -> Result<(), CertError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| CertError::io(dir, e))
}

/// Writes `bytes` to `path` by a rename, mode 0600 from the start (a key is never readable).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CertError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| CertError::io(&tmp, e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| CertError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| CertError::io(path, e))
}

/// The local time, as kubelet stamps its files.
pub fn local_stamp() -> jiff::civil::DateTime {
    jiff::Zoned::now().datetime()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn pair(node: &str) -> Pair {
        let (_, cert, key) = crate::node_api::tls::self_signed(node, &[]).unwrap();
        Pair::from_pem(&cert, &key, "test").unwrap()
    }

    fn stamp(text: &str) -> jiff::civil::DateTime {
        text.parse().unwrap()
    }

    #[test]
    fn pair_files_are_named_by_kubelets_stamp() {
        assert_eq!(
            pair_file_name("kubelet-server", &stamp("2026-03-04T05:06:07.891")),
            "kubelet-server-2026-03-04-05-06-07.pem"
        );
        assert_eq!(current_path(Path::new("/pki"), "kubelet-client"), Path::new("/pki/kubelet-client-current.pem"));
    }

    #[test]
    fn a_written_pair_is_current_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        assert_eq!(load_current(&pki, "kubelet-server").unwrap(), None);
        let first = pair("node-a");
        let current = write(&pki, "kubelet-server", &first, &stamp("2026-03-04T05:06:07")).unwrap();
        assert_eq!(std::fs::read_link(&current).unwrap(), pki.join("kubelet-server-2026-03-04-05-06-07.pem"));
        let mode = std::fs::metadata(&current).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_current(&pki, "kubelet-server").unwrap(), Some(first.clone()));
        let text = std::fs::read_to_string(&current).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----") && text.contains("PRIVATE KEY"), "{text}");

        let second = pair("node-a");
        write(&pki, "kubelet-server", &second, &stamp("2026-03-05T00:00:00")).unwrap();
        assert_eq!(load_current(&pki, "kubelet-server").unwrap(), Some(second));
        assert!(pki.join("kubelet-server-2026-03-04-05-06-07.pem").exists(), "the old pair is kept, as kubelet does");
    }

    #[test]
    fn a_current_file_that_is_not_a_symlink_is_left_alone_and_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubelet-client-current.pem"), "mine").unwrap();
        let err = write(dir.path(), "kubelet-client", &pair("node-a"), &stamp("2026-03-04T05:06:07")).unwrap_err();
        assert!(err.to_string().contains("kubelet-client-current.pem") && err.to_string().contains("symlink"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.path().join("kubelet-client-current.pem")).unwrap(), "mine");
    }

    #[test]
    fn a_pair_without_a_key_is_an_error_naming_the_file() {
        let (_, cert, _) = crate::node_api::tls::self_signed("node-a", &[]).unwrap();
        let err = Pair::from_pem(&cert, &cert, "/pki/kubelet-server-current.pem").unwrap_err();
        assert!(err.to_string().starts_with("/pki/kubelet-server-current.pem: no PRIVATE KEY"), "{err}");
    }
}
