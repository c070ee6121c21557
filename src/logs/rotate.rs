//! kubelet's container log rotation (pkg/kubelet/logs/container_log_manager.go). Every
//! containerLogMonitorInterval, each running container whose log file has reached
//! containerLogMaxSize gets it renamed to `<path>.<UTC YYYYMMDD-HHMMSS>`, and the runtime is told
//! to reopen the log (CRI ReopenContainerLog), so the container writes on into a fresh file at the
//! same path. A container keeps containerLogMaxFiles files in all: the one being written, the
//! newest rotated one as it is, older ones gzipped (`.gz`); the oldest beyond that are removed.
//!
//! `plan` decides what to do with one container's files (pure, table-tested); `run` lists the
//! running containers (from the shared relist), stats their files and carries the plans out, up
//! to containerLogMaxWorkers containers at a time. A log path is asked of the runtime once per
//! container (ContainerStatus) and remembered, so an idle pass costs a `stat` per container.

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    cri::{ContainerState, CriError, Observer, SharedCri},
    retry::LogOnce,
};

/// kubelet's suffixes: a compressed rotated file, and the file being compressed.
const COMPRESSED: &str = ".gz";
const PARTIAL: &str = ".tmp";

/// How large a log may grow and how many files a container keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Bytes; a file this large or larger is rotated.
    pub max_size: u64,
    /// Files in all, the one being written included (at least 2).
    pub max_files: usize,
}

/// The rotation settings in force; `policy` is None when rotation is off (a negative max size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub policy: Option<Policy>,
    pub workers: usize,
    pub interval: Duration,
}

impl Settings {
    pub fn of(config: &Config) -> Self {
        Self {
            policy: config
                .container_log_max_size
                .map(|max_size| Policy { max_size, max_files: config.container_log_max_files }),
            workers: config.container_log_max_workers.max(1),
            interval: config.container_log_monitor_interval,
        }
    }
}

/// One thing to do to a container's log files, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A file to delete: left over from an interrupted compression, or beyond maxFiles.
    Remove(PathBuf),
    /// gzip the file into `<file>.gz`, then delete it.
    Compress(PathBuf),
    /// Rename the current file to `to`, then ReopenContainerLog; if that fails, rename it back.
    Rotate { to: PathBuf },
    /// The current file is missing: ReopenContainerLog makes the runtime create it again.
    Reopen,
}

/// What to do with the log `current` (None: missing, else its size), given the other files of
/// its directory whose names start with its own and a dot (its rotated files), at `stamp`
/// (`YYYYMMDD-HHMMSS`). Nothing until the file has reached `max_size` (an empty file never has);
/// then, as kubelet: remove leftovers (`.tmp` files, and a file whose `.gz` exists), remove the
/// oldest rotated files until `max_files - 2` are left, compress those left that are not yet,
/// and rotate the current file. A rotated name already taken (a second rotation within one
/// second) waits for the next pass rather than overwrite it.
pub fn plan(current: &Path, size: Option<u64>, rotated: &[PathBuf], policy: Policy, stamp: &str) -> Vec<Step> {
    let Some(size) = size else { return vec![Step::Reopen] };
    if size < policy.max_size || size == 0 {
        return Vec::new();
    }
    let to = suffixed(current, &format!(".{stamp}"));
    if rotated.iter().any(|r| *r == to || *r == suffixed(&to, COMPRESSED)) {
        return Vec::new();
    }
    let mut steps = Vec::new();
    let mut in_use: Vec<&PathBuf> = Vec::new();
    for file in rotated {
        let leftover =
            ends_with(file, PARTIAL) || (!ends_with(file, COMPRESSED) && rotated.contains(&suffixed(file, COMPRESSED)));
        if leftover {
            steps.push(Step::Remove(file.clone()));
        } else {
            in_use.push(file);
        }
    }
    // Timestamps sort by time, and `x.gz` after `x`.
    in_use.sort();
    let keep = policy.max_files.saturating_sub(2);
    let excess = in_use.len().saturating_sub(keep);
    steps.extend(in_use[..excess].iter().map(|f| Step::Remove((*f).clone())));
    steps.extend(in_use[excess..].iter().filter(|f| !ends_with(f, COMPRESSED)).map(|f| Step::Compress((*f).clone())));
    steps.push(Step::Rotate { to });
    steps
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn ends_with(path: &Path, suffix: &str) -> bool {
    path.as_os_str().as_encoded_bytes().ends_with(suffix.as_bytes())
}

/// A rotation that failed, by the phase that failed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("asking the runtime for the log path: {0}")]
    Status(#[source] CriError),
    #[error("cannot stat {path}: {source}")]
    Stat { path: String, source: io::Error },
    #[error("cannot list {dir}: {source}")]
    List { dir: String, source: io::Error },
    #[error("cannot remove {path}: {source}")]
    Remove { path: String, source: io::Error },
    #[error("cannot compress {path}: {source}")]
    Compress { path: String, source: io::Error },
    #[error("cannot rename {from} to {to}: {source}")]
    Rename { from: String, to: String, source: io::Error },
    #[error("reopening {path}: {source}")]
    Reopen { path: String, source: CriError },
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// The files next to `current` named `<its name>.<anything>`.
fn rotated_files(current: &Path) -> Result<Vec<PathBuf>, RotateError> {
    let dir = current.parent().unwrap_or(Path::new("/"));
    let mut prefix = current.file_name().unwrap_or_default().to_owned();
    prefix.push(".");
    let entries = std::fs::read_dir(dir).map_err(|source| RotateError::List { dir: shown(dir), source })?;
    Ok(entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().as_encoded_bytes().starts_with(prefix.as_encoded_bytes()))
        .map(|e| e.path())
        .collect())
}

/// gzip `path` into `<path>.gz` through `<path>.tmp` (so an interrupted compression leaves no
/// `.gz` half written), with the original's permissions; then removes `path`.
fn compress(path: &Path) -> io::Result<()> {
    let partial = suffixed(path, PARTIAL);
    let result = (|| {
        let mut source = std::fs::File::open(path)?;
        let permissions = source.metadata()?.permissions();
        let target = std::fs::File::create(&partial)?;
        target.set_permissions(permissions)?;
        let mut encoder = flate2::write::GzEncoder::new(io::BufWriter::new(target), flate2::Compression::default());
        io::copy(&mut source, &mut encoder)?;
        encoder.finish()?.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()?;
        std::fs::rename(&partial, suffixed(path, COMPRESSED))?;
        std::fs::remove_file(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn size_of(path: &Path) -> Result<Option<u64>, RotateError> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some(meta.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RotateError::Stat { path: shown(path), source }),
    }
}

/// Checks one container's log and rotates it if `plan` says so. True if it was rotated.
pub async fn check(runtime: &SharedCri, id: &str, log: &Path, policy: Policy) -> Result<bool, RotateError> {
    let size = size_of(log)?;
    if size.is_some_and(|s| s < policy.max_size || s == 0) {
        return Ok(false);
    }
    let rotated = if size.is_some() { rotated_files(log)? } else { Vec::new() };
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
    let steps = plan(log, size, &rotated, policy, &stamp);
    let rotates = steps.iter().any(|s| matches!(s, Step::Rotate { .. }));
    for step in steps {
        carry_out(runtime, id, log, step).await?;
    }
    Ok(rotates)
}

async fn carry_out(runtime: &SharedCri, id: &str, log: &Path, step: Step) -> Result<(), RotateError> {
    let reopen = || async {
        runtime.reopen_container_log(id).await.map_err(|source| RotateError::Reopen { path: shown(log), source })
    };
    match step {
        Step::Remove(path) => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(RotateError::Remove { path: shown(&path), source: e }),
            _ => Ok(()),
        },
        Step::Compress(path) => {
            // A 10Mi file takes a tenth of a second: off the runtime's threads.
            let shown = shown(&path);
            match tokio::task::spawn_blocking(move || compress(&path)).await {
                Ok(result) => result.map_err(|source| RotateError::Compress { path: shown, source }),
                Err(e) => Err(RotateError::Compress { path: shown, source: io::Error::other(e) }),
            }
        }
        Step::Rotate { to } => {
            std::fs::rename(log, &to).map_err(|source| RotateError::Rename {
                from: shown(log),
                to: shown(&to),
                source,
            })?;
            let reopened = reopen().await;
            if reopened.is_err() {
                // The container still writes into the renamed file: give it its name back, as
                // kubelet does, so the log stays where readers look for it.
                if let Err(e) = std::fs::rename(&to, log) {
                    tracing::warn!(from = %to.display(), to = %log.display(), error = %e, "cannot rename a rotated log back");
                }
            }
            reopened
        }
        Step::Reopen => reopen().await,
    }
}

/// Rotates the logs of this node's running containers every `settings.interval` until
/// `shutdown`; returns at once if rotation is off. A pass runs to its end once started, so that
/// a rename is never left without its reopen; a log that is missing (a staticlet stopped between
/// the two) is reopened by the next pass, as kubelet does.
pub async fn run(runtime: SharedCri, observer: Arc<Observer>, settings: Settings, shutdown: CancellationToken) {
    let Some(policy) = settings.policy else {
        tracing::info!("container log rotation is off (containerLogMaxSize is negative)");
        return;
    };
    let mut paths: HashMap<String, PathBuf> = HashMap::new();
    let mut failures: HashMap<String, LogOnce> = HashMap::new();
    loop {
        let snapshot = observer.latest();
        if snapshot.listed {
            let running: Vec<(String, String)> = snapshot
                .pods
                .values()
                .flat_map(|pod| {
                    pod.containers
                        .iter()
                        .filter(|c| c.state == ContainerState::Running)
                        .map(move |c| (c.id.clone(), format!("{}/{}", pod.full_name(), c.name)))
                })
                .collect();
            paths.retain(|id, _| running.iter().any(|(r, _)| r == id));
            failures.retain(|id, _| running.iter().any(|(r, _)| r == id));
            let known = &paths;
            let results: Vec<_> = futures::stream::iter(running)
                .map(|(id, name)| {
                    let runtime = runtime.clone();
                    let known = known.get(&id).cloned();
                    async move {
                        let (log, outcome) = match known {
                            Some(log) => (Ok(log.clone()), check_path(&runtime, &id, &log, policy).await),
                            None => match log_path(&runtime, &id).await {
                                Ok(log) => (Ok(log.clone()), check_path(&runtime, &id, &log, policy).await),
                                Err(e) => (Err(()), Err(e)),
                            },
                        };
                        (id, name, log, outcome)
                    }
                })
                .buffer_unordered(settings.workers)
                .collect()
                .await;
            for (id, name, log, outcome) in results {
                if let Ok(log) = log {
                    paths.insert(id.clone(), log);
                }
                let failure = failures.entry(id).or_default();
                match outcome {
                    Ok(rotated) => {
                        if failure.recovered() {
                            tracing::info!(container = %name, "container log rotation works again");
                        }
                        if rotated {
                            tracing::debug!(container = %name, "container log rotated");
                        }
                    }
                    Err(e) => {
                        if failure.failed(e.to_string()) {
                            tracing::warn!(container = %name, error = %e, "cannot rotate the container's log; retrying");
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(settings.interval) => {}
        }
    }
}

/// `check`, unless the runtime keeps no log for the container (an empty path).
async fn check_path(runtime: &SharedCri, id: &str, log: &Path, policy: Policy) -> Result<bool, RotateError> {
    if log.as_os_str().is_empty() { Ok(false) } else { check(runtime, id, log, policy).await }
}

/// The container's log file as the runtime has it (CRI ContainerStatus); empty if it has none.
async fn log_path(runtime: &SharedCri, id: &str) -> Result<PathBuf, RotateError> {
    let status = runtime.container_status(id).await.map_err(RotateError::Status)?;
    Ok(PathBuf::from(status.log_path))
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;
    use crate::cri::{Cri, api, fake::FakeCri};

    const STAMP: &str = "20260102-030405";

    fn p(name: &str) -> PathBuf {
        PathBuf::from(format!("/logs/c/{name}"))
    }

    fn policy(max_size: u64, max_files: usize) -> Policy {
        Policy { max_size, max_files }
    }

    #[test]
    fn plan_follows_kubelets_rotation() {
        use Step::{Compress, Remove, Reopen, Rotate};
        let rotate = Rotate { to: p("0.log.20260102-030405") };
        // What, the current file's size, its rotated files, the policy, the plan.
        type Case = (&'static str, Option<u64>, Vec<&'static str>, Policy, Vec<Step>);
        let cases: Vec<Case> = vec![
            ("smaller than the maximum: nothing", Some(99), vec![], policy(100, 5), vec![]),
            ("an empty file is never rotated", Some(0), vec![], policy(0, 5), vec![]),
            ("missing: the runtime reopens it", None, vec![], policy(100, 5), vec![Reopen]),
            ("at the maximum, first rotation", Some(100), vec![], policy(100, 5), vec![rotate.clone()]),
            (
                "the newest rotated file is compressed, the oldest beyond maxFiles - 2 removed",
                Some(150),
                vec![
                    "0.log.20260101-000003.gz",
                    "0.log.20260101-000001.gz",
                    "0.log.20260101-000004",
                    "0.log.20260101-000002.gz",
                ],
                policy(100, 5),
                vec![Remove(p("0.log.20260101-000001.gz")), Compress(p("0.log.20260101-000004")), rotate.clone()],
            ),
            (
                "maxFiles 2 keeps only the file rotated now",
                Some(100),
                vec!["0.log.20260101-000001"],
                policy(100, 2),
                vec![Remove(p("0.log.20260101-000001")), rotate.clone()],
            ),
            (
                "leftovers of an interrupted compression are removed first",
                Some(100),
                vec!["0.log.20260101-000001.tmp", "0.log.20260101-000002", "0.log.20260101-000002.gz"],
                policy(100, 5),
                vec![Remove(p("0.log.20260101-000001.tmp")), Remove(p("0.log.20260101-000002")), rotate.clone()],
            ),
            (
                "a second rotation within the second waits",
                Some(100),
                vec!["0.log.20260102-030405.gz"],
                policy(100, 5),
                vec![],
            ),
        ];
        for (what, size, rotated, policy, want) in cases {
            let rotated: Vec<PathBuf> = rotated.into_iter().map(p).collect();
            assert_eq!(plan(&p("0.log"), size, &rotated, policy, STAMP), want, "{what}");
        }
    }

    /// A fake runtime with one running container whose log is `<dir>/main/0.log`.
    async fn running(dir: &Path) -> (SharedCri, Arc<FakeCri>, String, PathBuf) {
        let fake = Arc::new(FakeCri::default());
        let sandbox_config = api::PodSandboxConfig { log_directory: dir.display().to_string(), ..Default::default() };
        let sandbox = fake.run_sandbox(sandbox_config.clone(), "").await.unwrap();
        let config = api::ContainerConfig { log_path: "main/0.log".into(), ..Default::default() };
        let id = fake.create_container(&sandbox, config, sandbox_config).await.unwrap();
        fake.start_container(&id).await.unwrap();
        let log = PathBuf::from(fake.container_status(&id).await.unwrap().log_path);
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        (fake.clone(), fake, id, log)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_full_log_is_renamed_and_reopened_and_older_ones_gzipped_up_to_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, fake, id, log) = running(dir.path()).await;
        let logs = log.parent().unwrap();
        std::fs::write(&log, "small\n").unwrap();
        assert!(!check(&runtime, &id, &log, policy(100, 3)).await.unwrap());
        assert_eq!(names(logs), ["0.log"]);

        // Two older rotated files, as earlier passes left them.
        std::fs::write(logs.join("0.log.20200101-000000.gz"), "old").unwrap();
        std::fs::write(logs.join("0.log.20200101-000001"), "newer\n".repeat(10)).unwrap();
        std::fs::write(&log, "x".repeat(100)).unwrap();
        assert!(check(&runtime, &id, &log, policy(100, 3)).await.unwrap());
        assert_eq!(fake.calls().last().unwrap(), &format!("ReopenContainerLog {id}"));
        let now = names(logs);
        assert_eq!(now.len(), 2, "maxFiles 3: the runtime's new file, one gzipped and one plain: {now:?}");
        assert_eq!(now[0], "0.log.20200101-000001.gz");
        assert!(now[1].starts_with("0.log.") && now[1].len() == "0.log.20260102-030405".len(), "{now:?}");
        assert_eq!(std::fs::read_to_string(logs.join(&now[1])).unwrap(), "x".repeat(100));
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(logs.join(&now[0])).unwrap())
            .read_to_string(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, "newer\n".repeat(10));

        // The fake writes no new file: the next pass finds it missing and asks again.
        let reopens = fake.calls().len();
        assert!(!check(&runtime, &id, &log, policy(100, 3)).await.unwrap());
        assert_eq!(fake.calls()[reopens..], [format!("ReopenContainerLog {id}")]);
    }

    #[tokio::test]
    async fn a_failed_reopen_renames_the_log_back() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, fake, id, log) = running(dir.path()).await;
        std::fs::write(&log, "y".repeat(100)).unwrap();
        fake.fail_next(
            "ReopenContainerLog",
            crate::cri::fake::rpc_error("ReopenContainerLog", tonic::Code::Internal, "no"),
        );
        let err = check(&runtime, &id, &log, policy(100, 3)).await.unwrap_err();
        assert!(matches!(err, RotateError::Reopen { .. }), "{err}");
        assert_eq!(names(log.parent().unwrap()), ["0.log"]);
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "y".repeat(100));
    }
}
