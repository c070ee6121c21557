//! Manifest trust, as sshd's StrictModes: a manifest runs as root on the node, so a file that a
//! user other than root could change (or whose directory lets one replace it) is refused.
//! kubelet reads whatever is there (kubeadm#1541).

use std::{os::unix::fs::MetadataExt, path::Path};

/// Why a file or directory with this `mode` and owner `uid` cannot be trusted, if it cannot.
/// `own_uid` is staticlet's user, which may own its manifests too (a test or a rootless setup).
pub fn judge(what: &str, path: &Path, mode: u32, uid: u32, own_uid: u32) -> Result<(), String> {
    if uid != 0 && uid != own_uid {
        return Err(format!("{what} {} is owned by uid {uid}, not root", path.display()));
    }
    let writable: Vec<&str> = [(0o020, "group"), (0o002, "others")]
        .into_iter()
        .filter(|(bit, _)| mode & bit != 0)
        .map(|(_, who)| who)
        .collect();
    if !writable.is_empty() {
        return Err(format!(
            "{what} {} is writable by {} (mode {:04o})",
            path.display(),
            writable.join(" and "),
            mode & 0o7777
        ));
    }
    Ok(())
}

/// Checks a manifest file, the directory it is in and, when it is a symlink, the file it points
/// to and that file's directory: whoever can write any of them decides what runs.
pub fn check(file: &Path) -> Result<(), String> {
    let own_uid = rustix::process::geteuid().as_raw();
    // What cannot be stat'ed is left to the reader, whose error says why (a dangling symlink,
    // a file removed since the listing).
    let judge_path = |what: &str, path: &Path| match std::fs::metadata(path) {
        Ok(metadata) => judge(what, path, metadata.mode(), metadata.uid(), own_uid),
        Err(_) => Ok(()),
    };
    let directory = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    judge_path("directory", directory)?;
    judge_path("file", file)?;
    if std::fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink())
        && let Some(parent) = std::fs::canonicalize(file).ok().as_deref().and_then(Path::parent)
    {
        judge_path("the symlink's target directory", parent)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_root_alone_can_change_are_trusted() {
        let path = Path::new("/m/web.yaml");
        for (mode, uid, want) in [
            (0o100600, 0, Ok(())),
            (0o100644, 0, Ok(())),
            (0o040755, 0, Ok(())),
            (0o100644, 1000, Ok(())), // staticlet's own user
            (0o100644, 1001, Err("file /m/web.yaml is owned by uid 1001, not root")),
            (0o100664, 0, Err("file /m/web.yaml is writable by group (mode 0664)")),
            (0o100666, 0, Err("file /m/web.yaml is writable by group and others (mode 0666)")),
            (0o041777, 0, Err("file /m/web.yaml is writable by group and others (mode 1777)")),
        ] {
            assert_eq!(judge("file", path, mode, uid, 1000), want.map_err(str::to_owned), "{mode:o} {uid}");
        }
    }
}
