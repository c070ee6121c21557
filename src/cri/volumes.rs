//! Volumes as kubelet sets them up before a container is created: hostPath `type` checks and
//! creation (`pkg/volume/hostpath/host_path.go`, `checkType`), emptyDir on disk or as a tmpfs
//! (`emptydir/empty_dir.go`), downwardAPI files (`downwardapi/downwardapi.go`, `fieldpath`'s
//! `FormatMap`, `resource`'s `ExtractContainerResourceValue`), and subPaths resolved inside their
//! volume (`pkg/volume/util/subpath`). The decisions are pure (`host_path_check`,
//! `downward_files`, `within`); the rest carries them out on the host.

use std::{
    collections::BTreeMap,
    io,
    os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Component, Path, PathBuf},
};

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, EmptyDirVolumeSource, PodSpec, ResourceFieldSelector, Volume,
};

use super::{
    host::Host,
    resources::{Quantity, Resources},
};
use crate::manifest::StaticPod;

/// The hostPath types kubelet knows (`""` does no check).
pub const HOST_PATH_TYPES: &[&str] =
    &["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"];

/// What is at a path, from one `stat` that follows symlinks (as kubelet's `os.Stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDisk {
    Missing,
    Directory,
    File,
    Socket,
    CharDevice,
    BlockDevice,
    /// A FIFO or anything else kubelet's `GetFileType` does not recognise.
    Other,
}

pub fn on_disk(path: &Path) -> OnDisk {
    match std::fs::metadata(path) {
        Err(_) => OnDisk::Missing,
        Ok(m) => {
            let t = m.file_type();
            if t.is_dir() {
                OnDisk::Directory
            } else if t.is_file() {
                OnDisk::File
            } else if t.is_socket() {
                OnDisk::Socket
            } else if t.is_char_device() {
                OnDisk::CharDevice
            } else if t.is_block_device() {
                OnDisk::BlockDevice
            } else {
                OnDisk::Other
            }
        }
    }
}

/// What a hostPath needs before it can be mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathStep {
    Nothing,
    /// `DirectoryOrCreate` on a missing path: `mkdir -p`, 0755.
    CreateDirectory,
    /// `FileOrCreate` on a missing path: an empty file, 0644 (its directory must exist).
    CreateFile,
}

/// kubelet's `checkType`, with its messages.
pub fn host_path_check(path: &str, kind: &str, found: OnDisk) -> Result<HostPathStep, String> {
    let failed = |what: &str| Err(format!("hostPath type check failed: {path} is not {what}"));
    match (kind, found) {
        ("", _) => Ok(HostPathStep::Nothing),
        ("DirectoryOrCreate", OnDisk::Missing) => Ok(HostPathStep::CreateDirectory),
        ("FileOrCreate", OnDisk::Missing) => Ok(HostPathStep::CreateFile),
        ("DirectoryOrCreate" | "Directory", OnDisk::Directory) => Ok(HostPathStep::Nothing),
        ("DirectoryOrCreate" | "Directory", _) => failed("a directory"),
        ("FileOrCreate" | "File", OnDisk::File) => Ok(HostPathStep::Nothing),
        ("FileOrCreate" | "File", _) => failed("a file"),
        ("Socket", OnDisk::Socket) => Ok(HostPathStep::Nothing),
        ("Socket", _) => failed("a socket file"),
        ("CharDevice", OnDisk::CharDevice) => Ok(HostPathStep::Nothing),
        ("CharDevice", _) => failed("a character device"),
        ("BlockDevice", OnDisk::BlockDevice) => Ok(HostPathStep::Nothing),
        ("BlockDevice", _) => failed("a block device"),
        (other, _) => Err(format!("{other} is an invalid volume type")),
    }
}

/// Checks a hostPath as its type says, creating it where the type asks for that.
pub fn prepare_host_path(path: &str, kind: &str) -> Result<(), String> {
    let p = Path::new(path);
    match host_path_check(path, kind, on_disk(p))? {
        HostPathStep::Nothing => Ok(()),
        HostPathStep::CreateDirectory => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(p)
            .map_err(|e| format!("hostPath type check failed: cannot create directory {path}: {e}")),
        HostPathStep::CreateFile => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(p)
            .map(drop)
            .map_err(|e| format!("hostPath type check failed: cannot create file {path}: {e}")),
    }
}

/// `<rootDir>/pods/<uid>/volumes`, kubelet's layout; each volume type has its own directory.
pub fn pod_volumes_dir(root_dir: &Path, pod: &StaticPod) -> PathBuf {
    root_dir.join("pods").join(&pod.uid).join("volumes")
}

/// Where a volume's contents are on the host (`volumes_dir` as `pod_volumes_dir`), or None for a
/// type staticlet does not mount.
pub fn volume_host_path(volume: &Volume, volumes_dir: &Path) -> Option<PathBuf> {
    let plugin = |name: &str| Some(volumes_dir.join(name).join(&volume.name));
    if let Some(host) = &volume.host_path {
        Some(PathBuf::from(&host.path))
    } else if volume.empty_dir.is_some() {
        plugin("kubernetes.io~empty-dir")
    } else if volume.downward_api.is_some() {
        plugin("kubernetes.io~downward-api")
    } else if volume.projected.is_some() {
        plugin("kubernetes.io~projected")
    } else {
        None
    }
}

/// Whether a volume's files are generated by staticlet (mounted read-only, as kubelet does).
pub fn is_generated(volume: &Volume) -> bool {
    volume.downward_api.is_some() || volume.projected.is_some()
}

/// An emptyDir with `medium: Memory`, and its tmpfs `size=` option (from `sizeLimit`) if any.
pub fn memory_medium(source: &EmptyDirVolumeSource) -> Option<Option<i64>> {
    (source.medium.as_deref() == Some("Memory"))
        .then(|| source.size_limit.as_ref().and_then(|q| Quantity::parse(&q.0).ok()).map(Quantity::value))
}

/// Mounts a tmpfs at `dir` unless one (anything) is mounted there already.
pub fn mount_tmpfs(dir: &Path, size: Option<i64>) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if is_mount_point(dir)? {
        return Ok(());
    }
    let options = match size {
        Some(bytes) => format!("mode=0777,size={bytes}"),
        None => "mode=0777".to_owned(),
    };
    let data = std::ffi::CString::new(options).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    rustix::mount::mount("tmpfs", dir, "tmpfs", rustix::mount::MountFlags::empty(), data.as_c_str())
        .map_err(io::Error::from)
}

/// Unmounts what is mounted at `dir` (lazily: a container may still hold it), if anything is.
pub fn unmount(dir: &Path) -> io::Result<()> {
    if dir.exists() && is_mount_point(dir)? {
        rustix::mount::unmount(dir, rustix::mount::UnmountFlags::DETACH).map_err(io::Error::from)?;
    }
    Ok(())
}

/// A directory on another device than its parent is a mount point.
pub fn is_mount_point(dir: &Path) -> io::Result<bool> {
    let here = std::fs::metadata(dir)?;
    let parent = std::fs::metadata(dir.parent().unwrap_or(Path::new("/")))?;
    Ok(here.dev() != parent.dev())
}

/// The tmpfs emptyDirs of a pod, unmounted before its directory is removed.
pub fn unmount_memory_volumes(root_dir: &Path, uid: &str) {
    let dir = root_dir.join("pods").join(uid).join("volumes").join("kubernetes.io~empty-dir");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if let Err(e) = unmount(&entry.path()) {
            tracing::warn!(volume = %entry.path().display(), error = %e, "cannot unmount emptyDir tmpfs");
        }
    }
}

/// The downward-API fields a volume file may name.
pub const VOLUME_FIELD_REFS: &[&str] =
    &["metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations"];

/// A relative path of a generated file, or what is wrong with it (the API server's
/// `validateLocalNonReservedPath`).
pub fn local_path_problem(path: &str) -> Option<String> {
    if path.is_empty() {
        Some("required".into())
    } else if path.starts_with('/') {
        Some(format!("{path:?} must be a relative path"))
    } else if path.split('/').any(|p| p == "..") {
        Some(format!("{path:?} must not contain '..'"))
    } else if path.starts_with("..") {
        Some(format!("{path:?} must not start with '..'"))
    } else {
        None
    }
}

/// One generated file: its path under the volume, its bytes and its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub contents: String,
    pub mode: u32,
}

/// The downward-API items of a volume (a downwardAPI volume, or the downwardAPI sources of a
/// projected one) with the mode each gets.
pub fn downward_items(volume: &Volume) -> Vec<(&DownwardAPIVolumeFile, i32)> {
    if let Some(d) = &volume.downward_api {
        let default = d.default_mode.unwrap_or(0o644);
        return d.items.iter().flatten().map(|i| (i, i.mode.unwrap_or(default))).collect();
    }
    let Some(p) = &volume.projected else { return vec![] };
    let default = p.default_mode.unwrap_or(0o644);
    let sources = p.sources.iter().flatten().filter_map(|s| s.downward_api.as_ref());
    sources.flat_map(|d| d.items.iter().flatten()).map(|i| (i, i.mode.unwrap_or(default))).collect()
}

/// The files of a downwardAPI (or projected) volume, as kubelet writes them.
pub fn downward_files(pod: &StaticPod, volume: &Volume, host: &Host) -> Result<Vec<File>, String> {
    let mut files = Vec::new();
    for (item, mode) in downward_items(volume) {
        if let Some(problem) = local_path_problem(&item.path) {
            return Err(format!("items path {problem}"));
        }
        let contents = if let Some(field) = &item.field_ref {
            match field.field_path.as_str() {
                "metadata.name" => pod.name().to_owned(),
                "metadata.namespace" => pod.namespace().to_owned(),
                "metadata.uid" => pod.uid.clone(),
                "metadata.labels" => format_map(&pod.labels()),
                "metadata.annotations" => format_map(&pod.annotations()),
                other => return Err(format!("unsupported fieldPath {other:?}")),
            }
        } else if let Some(selector) = &item.resource_field_ref {
            resource_value(pod.spec(), selector, host)?
        } else {
            return Err(format!("item {:?} has neither fieldRef nor resourceFieldRef", item.path));
        };
        files.push(File { path: item.path.clone(), contents, mode: (mode as u32) & 0o7777 });
    }
    Ok(files)
}

/// fieldpath's `FormatMap`: `key="value"` lines, sorted by key, Go-quoted, no final newline.
pub fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter().map(|(k, v)| format!("{k}={}", go_quote(v))).collect::<Vec<_>>().join("\n")
}

/// Go's `%q` of a string (printable characters kept, the rest escaped).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The resources a resourceFieldRef may name.
pub const RESOURCE_FIELDS: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

/// `ExtractContainerResourceValue`, with the node's capacity for a limit not set (kubelet's
/// `MergeContainerResourceLimits`): cpu rounded up to the divisor's millis, the rest to its units.
pub fn resource_value(spec: &PodSpec, selector: &ResourceFieldSelector, host: &Host) -> Result<String, String> {
    let name = selector.container_name.as_deref().unwrap_or_default();
    let container: &Container = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .ok_or_else(|| format!("resourceFieldRef names no container {name:?}"))?;
    let divisor = match &selector.divisor {
        Some(q) => Quantity::parse(&q.0)?,
        None => Quantity::parse("1")?,
    };
    let resources = Resources::of(container);
    let (kind, resource) =
        selector.resource.split_once('.').ok_or_else(|| format!("unsupported resource {:?}", selector.resource))?;
    let set = match kind {
        "limits" => resources.limit(resource),
        "requests" => resources.request(resource),
        _ => return Err(format!("unsupported resource {:?}", selector.resource)),
    };
    let capacity = |n: i64| Quantity::parse(&n.to_string());
    let value = match (kind, resource, set) {
        (_, _, Some(v)) => v,
        ("limits", "cpu", None) => capacity(host.cpus as i64)?,
        ("limits", "memory", None) => capacity(host.memory_capacity)?,
        (_, "cpu" | "memory" | "ephemeral-storage", None) => Quantity::default(),
        _ => return Err(format!("unsupported resource {:?}", selector.resource)),
    };
    let ceil = |n: i64, d: i64| if d <= 0 { n } else { n / d + i64::from(n % d > 0) };
    Ok(match resource {
        "cpu" => ceil(value.milli(), divisor.milli()).to_string(),
        _ => ceil(value.value(), divisor.value()).to_string(),
    })
}

/// Writes a generated volume's files under `dir` (each replaced by a rename, so a reader never
/// sees half a file), the directory made readable to all.
pub fn write_files(dir: &Path, files: &[File]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for file in files {
        let target = dir.join(&file.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = target.with_file_name(format!(
            ".{}.tmp",
            target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        ));
        std::fs::write(&tmp, &file.contents)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(file.mode))?;
        std::fs::rename(&tmp, &target)?;
    }
    Ok(())
}

/// A subPath (written or expanded) that stays inside its volume by its words: relative, no `..`.
pub fn sub_path_problem(sub_path: &str) -> Option<String> {
    if sub_path.starts_with('/') {
        Some(format!("{sub_path:?} must be a relative path"))
    } else if Path::new(sub_path).components().any(|c| c == Component::ParentDir) {
        Some(format!("{sub_path:?} must not contain '..'"))
    } else {
        None
    }
}

/// Whether `path`, with symlinks resolved, is `root` or lies under it (both canonical).
pub fn within(root: &Path, path: &Path) -> bool {
    path.starts_with(root)
}

/// The host path of `sub_path` inside the volume at `volume`, symlinks resolved, created as a
/// directory when missing (as kubelet does); an error if it would leave the volume.
pub fn resolve_sub_path(volume: &Path, sub_path: &str) -> Result<PathBuf, String> {
    if let Some(problem) = sub_path_problem(sub_path) {
        return Err(format!("subPath {problem}"));
    }
    let root = volume.canonicalize().map_err(|e| format!("volume path {}: {e}", volume.display()))?;
    let escapes =
        |p: &Path| format!("subPath {sub_path:?} resolves to {}, outside the volume {}", p.display(), root.display());
    // Walk down one component at a time, so that a missing part is created only inside the volume.
    let mut at = root.clone();
    for part in Path::new(sub_path).components().filter(|c| matches!(c, Component::Normal(_))) {
        let next = at.join(part);
        if std::fs::symlink_metadata(&next).is_err() {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(&next)
                .map_err(|e| format!("subPath {sub_path:?}: cannot create {}: {e}", next.display()))?;
        }
        let resolved = next.canonicalize().map_err(|e| format!("subPath {sub_path:?}: {}: {e}", next.display()))?;
        if !within(&root, &resolved) {
            return Err(escapes(&resolved));
        }
        at = resolved;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Origin, parse_manifest};

    #[test]
    fn host_path_types_are_checked_as_kubelet_checks_them() {
        use HostPathStep::*;
        use OnDisk::*;
        let p = "/x";
        for (kind, found, want) in [
            ("", Missing, Ok(Nothing)),
            ("", Socket, Ok(Nothing)),
            ("DirectoryOrCreate", Missing, Ok(CreateDirectory)),
            ("DirectoryOrCreate", Directory, Ok(Nothing)),
            ("DirectoryOrCreate", File, Err("hostPath type check failed: /x is not a directory")),
            ("Directory", Missing, Err("hostPath type check failed: /x is not a directory")),
            ("Directory", Directory, Ok(Nothing)),
            ("FileOrCreate", Missing, Ok(CreateFile)),
            ("FileOrCreate", File, Ok(Nothing)),
            ("FileOrCreate", Directory, Err("hostPath type check failed: /x is not a file")),
            ("File", Missing, Err("hostPath type check failed: /x is not a file")),
            ("File", Socket, Err("hostPath type check failed: /x is not a file")),
            ("File", File, Ok(Nothing)),
            ("Socket", Socket, Ok(Nothing)),
            ("Socket", File, Err("hostPath type check failed: /x is not a socket file")),
            ("Socket", Missing, Err("hostPath type check failed: /x is not a socket file")),
            ("CharDevice", CharDevice, Ok(Nothing)),
            ("CharDevice", BlockDevice, Err("hostPath type check failed: /x is not a character device")),
            ("BlockDevice", BlockDevice, Ok(Nothing)),
            ("BlockDevice", Other, Err("hostPath type check failed: /x is not a block device")),
            ("Fifo", File, Err("Fifo is an invalid volume type")),
        ] {
            assert_eq!(host_path_check(p, kind, found), want.map_err(String::from), "{kind} on {found:?}");
        }
    }

    #[test]
    fn on_disk_tells_files_directories_sockets_and_devices_apart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let socket = dir.path().join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        for (path, want) in [
            (dir.path().to_owned(), OnDisk::Directory),
            (file, OnDisk::File),
            (socket, OnDisk::Socket),
            (PathBuf::from("/dev/null"), OnDisk::CharDevice),
            (dir.path().join("none"), OnDisk::Missing),
        ] {
            assert_eq!(on_disk(&path), want, "{}", path.display());
        }
    }

    #[test]
    fn or_create_types_create_a_directory_or_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        prepare_host_path(d.to_str().unwrap(), "DirectoryOrCreate").unwrap();
        assert!(d.is_dir());
        assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o755 & !umask());
        let f = dir.path().join("f");
        prepare_host_path(f.to_str().unwrap(), "FileOrCreate").unwrap();
        let meta = std::fs::metadata(&f).unwrap();
        assert!(meta.is_file() && meta.len() == 0);
        assert_eq!(meta.permissions().mode() & 0o777, 0o644 & !umask());
        // FileOrCreate never makes a directory: a missing parent is an error.
        let deep = dir.path().join("missing/f");
        assert!(prepare_host_path(deep.to_str().unwrap(), "FileOrCreate").is_err());
        assert!(!dir.path().join("missing").exists());
    }

    fn umask() -> u32 {
        let old = rustix::process::umask(rustix::fs::Mode::empty());
        rustix::process::umask(old);
        old.bits()
    }

    fn pod(yaml: &str) -> StaticPod {
        parse_manifest(yaml.as_bytes(), &Origin::file("/m/p.yaml"), "n").unwrap().remove(0)
    }

    fn host() -> Host {
        Host {
            memory_capacity: 1 << 30,
            hugepage_sizes: vec![],
            cpus: 2,
            apparmor: false,
            thermal_throttle_paths: vec![],
            cgroup_v2: false,
        }
    }

    #[test]
    fn downward_api_files_hold_kubelets_values_and_modes() {
        let p = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {b: "2", a: "say \"hi\""}, annotations: {note: x}}
spec:
  volumes:
  - name: info
    downwardAPI:
      defaultMode: 384
      items:
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: ns, fieldRef: {fieldPath: metadata.namespace}}
      - {path: uid, fieldRef: {fieldPath: metadata.uid}, mode: 292}
      - {path: sub/labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: cpu, resourceFieldRef: {containerName: app, resource: limits.cpu, divisor: 1m}}
      - {path: mem, resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}}
      - {path: cores, resourceFieldRef: {containerName: app, resource: requests.cpu}}
      - {path: nodecpu, resourceFieldRef: {containerName: other, resource: limits.cpu}}
  containers:
  - name: app
    image: busybox
    resources: {requests: {cpu: 250m}, limits: {cpu: 500m, memory: 64Mi}}
  - {name: other, image: busybox}
"#);
        let volume = &p.spec().volumes.as_ref().unwrap()[0];
        let files = downward_files(&p, volume, &host()).unwrap();
        let got: Vec<(&str, &str, u32)> =
            files.iter().map(|f| (f.path.as_str(), f.contents.as_str(), f.mode)).collect();
        assert_eq!(
            got,
            [
                ("name", "p-n", 0o600),
                ("ns", "default", 0o600),
                ("uid", p.uid.as_str(), 0o444),
                ("sub/labels", "a=\"say \\\"hi\\\"\"\nb=\"2\"", 0o600),
                ("cpu", "500", 0o600),
                ("mem", "64", 0o600),
                ("cores", "1", 0o600),
                ("nodecpu", "2", 0o600),
            ]
        );
    }

    #[test]
    fn projected_downward_sources_and_unsafe_item_paths() {
        let p = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  volumes:
  - name: info
    projected:
      sources:
      - downwardAPI: {items: [{path: a, fieldRef: {fieldPath: metadata.name}}]}
      - downwardAPI: {items: [{path: b, fieldRef: {fieldPath: metadata.name}}]}
  containers: [{name: app, image: busybox}]
"#);
        let volume = &p.spec().volumes.as_ref().unwrap()[0];
        let files = downward_files(&p, volume, &host()).unwrap();
        assert_eq!(files.iter().map(|f| (f.path.as_str(), f.mode)).collect::<Vec<_>>(), [("a", 0o644), ("b", 0o644)]);
        // Validation refuses `..`; the writer refuses it again, whatever reaches it.
        let mut volume = volume.clone();
        let sources = volume.projected.as_mut().unwrap().sources.as_mut().unwrap();
        sources[1].downward_api.as_mut().unwrap().items.as_mut().unwrap()[0].path = "../b".into();
        let volume = &volume;
        assert_eq!(downward_items(volume).len(), 2);
        assert_eq!(downward_items(volume)[0].1, 0o644, "the default mode");
        let error = downward_files(&p, volume, &host()).unwrap_err();
        assert!(error.contains("must not contain '..'"), "{error}");
    }

    #[test]
    fn format_map_is_sorted_go_quoted_lines() {
        let map = BTreeMap::from([("z".to_owned(), "a\tb\n".to_owned()), ("k".to_owned(), "é\\".to_owned())]);
        assert_eq!(format_map(&map), "k=\"é\\\\\"\nz=\"a\\tb\\n\"");
        assert_eq!(format_map(&BTreeMap::new()), "");
    }

    #[test]
    fn sub_paths_stay_inside_their_volume() {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("vol");
        std::fs::create_dir(&volume).unwrap();
        let root = volume.canonicalize().unwrap();
        std::os::unix::fs::symlink("/etc", volume.join("out")).unwrap();
        std::os::unix::fs::symlink("in", volume.join("alias")).unwrap();
        std::fs::create_dir(volume.join("in")).unwrap();

        assert_eq!(resolve_sub_path(&volume, "in").unwrap(), root.join("in"));
        assert_eq!(resolve_sub_path(&volume, "alias").unwrap(), root.join("in"), "a symlink inside is followed");
        assert_eq!(resolve_sub_path(&volume, "new/deeper").unwrap(), root.join("new/deeper"), "created");
        assert!(root.join("new/deeper").is_dir());
        for (sub, says) in [
            ("out", "outside the volume"),
            ("out/passwd", "outside the volume"),
            ("../x", "must not contain '..'"),
            ("/etc", "must be a relative path"),
        ] {
            let error = resolve_sub_path(&volume, sub).unwrap_err();
            assert!(error.contains(says), "{sub}: {error}");
        }
        assert!(!Path::new("/etc/passwd/x").exists());
    }

    #[test]
    fn memory_medium_takes_its_size_from_size_limit() {
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;
        let source = |medium: Option<&str>, size: Option<&str>| EmptyDirVolumeSource {
            medium: medium.map(Into::into),
            size_limit: size.map(|s| Q(s.into())),
        };
        assert_eq!(memory_medium(&source(None, Some("1Gi"))), None);
        assert_eq!(memory_medium(&source(Some(""), None)), None);
        assert_eq!(memory_medium(&source(Some("Memory"), None)), Some(None));
        assert_eq!(memory_medium(&source(Some("Memory"), Some("64Mi"))), Some(Some(64 << 20)));
    }
}
