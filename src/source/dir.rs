//! The manifest directory (staticPodPath): inotify events, debounced, plus a full rescan every
//! fileCheckFrequency. Every scan reads the whole directory and yields a whole snapshot, and is
//! counted in `staticlet_manifest_dir_scans_total` by what started it (start, event, period).
//!
//! Unlike kubelet, only `*.yaml`, `*.yml` and `*.json` are manifests; dotfiles and the leftovers of
//! editors and package managers are skipped with one log line each, so a `web.yaml.bak` can never
//! silently replace `web.yaml` (kubernetes#136962, #40331).

use std::{
    collections::{HashMap, HashSet},
    io::Read,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use notify::{RecursiveMode, Watcher};
use prometheus_client::metrics::{counter::Counter, family::Family};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    desired::{Manifest, SourceSnapshot},
    manifest::{MAX_MANIFEST_BYTES, ManifestError, Origin, SourceKind, StaticPod, parse_manifest},
    ops::metrics::{Labels, label},
};

/// After an event that ends a change (a file closed after writing, renamed into place, removed),
/// the quiet time before a rescan: enough to take in the rest of a rename or an editor's burst.
const SETTLED_QUIET: Duration = Duration::from_millis(5);
/// The longest a change that is still in progress (opened, being written) delays a rescan.
const UNSETTLED_MAX: Duration = Duration::from_millis(500);
/// A file written this recently that fails to parse is probably still being written.
const FRESH_WRITE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileClass {
    Manifest,
    Skip(&'static str),
}

/// Which directory entries are manifests. Pure, so the list is a table test.
pub fn classify(name: &str) -> FileClass {
    const LEFTOVERS: &[&str] = &[
        "~",
        ".swp",
        ".swo",
        ".swx",
        ".bak",
        ".orig",
        ".rej",
        ".tmp",
        ".old",
        ".save",
        ".dpkg-old",
        ".dpkg-new",
        ".dpkg-dist",
        ".dpkg-tmp",
        ".dpkg-bak",
        ".rpmnew",
        ".rpmsave",
        ".rpmorig",
    ];
    if name.starts_with('.') {
        return FileClass::Skip("hidden file");
    }
    if name.starts_with('#')
        || LEFTOVERS.iter().any(|s| name.ends_with(s))
        || name.contains(".ucf-")
        || name.contains(".dpkg-")
    {
        return FileClass::Skip("editor or package-manager leftover");
    }
    if [".yaml", ".yml", ".json"].iter().any(|ext| name.ends_with(ext)) {
        return FileClass::Manifest;
    }
    FileClass::Skip("not a .yaml, .yml or .json file")
}

pub struct DirSource {
    path: PathBuf,
    node: String,
    period: Duration,
    memory: ScanMemory,
    /// `staticlet_manifest_dir_scans_total`, by trigger.
    scans: Family<Labels, Counter>,
}

/// What one scan leaves for the next.
#[derive(Default)]
pub struct ScanMemory {
    /// Skipped entries already logged, so a rescan every 20 s does not repeat them.
    reported: HashSet<(PathBuf, &'static str)>,
    /// Each file's last bytes and what they parsed to: a rescan reads every file but parses only
    /// those whose bytes changed, so writing 100 manifests (an event, hence a scan, per file)
    /// costs 100 parses rather than 5,050, and an idle rescan parses nothing. Bytes, not
    /// timestamps, decide: a same-length rewrite within one timestamp tick is still seen.
    parsed: Parsed,
    /// Whether files are checked for trust (`trust::check`) before they are read.
    strict_modes: bool,
}

impl ScanMemory {
    pub fn new(strict_modes: bool) -> Self {
        Self { strict_modes, ..Self::default() }
    }
}

impl DirSource {
    pub fn new(
        path: PathBuf,
        node: String,
        period: Duration,
        strict_modes: bool,
        scans: Family<Labels, Counter>,
    ) -> Self {
        Self { path, node, period, memory: ScanMemory::new(strict_modes), scans }
    }

    pub async fn run(mut self, tx: mpsc::Sender<SourceSnapshot>, shutdown: CancellationToken) {
        let (event_tx, mut events) = mpsc::unbounded_channel::<bool>();
        let mut watcher = None;
        let mut last: Option<SourceSnapshot> = None;
        let mut missing_reported = false;
        let mut trigger = "start";
        loop {
            if watcher.is_none() {
                // Kept alive in this variable: dropping the watcher ends the inotify watch.
                watcher = watch(&self.path, event_tx.clone());
            }
            let (path, node) = (self.path.clone(), self.node.clone());
            let mut memory = std::mem::take(&mut self.memory);
            let (snapshot, memory) = tokio::task::spawn_blocking(move || {
                let snapshot = scan(&path, &node, &mut memory);
                (snapshot, memory)
            })
            .await
            .expect("scan does not panic");
            self.memory = memory;
            let missing = snapshot.notes.iter().any(|n| n.contains("does not exist"));
            if missing && !missing_reported {
                tracing::warn!(path = %self.path.display(), "manifest path does not exist; no file pods until it appears");
            }
            missing_reported = missing;
            if last.as_ref() != Some(&snapshot) {
                last = Some(snapshot.clone());
                if tx.send(snapshot).await.is_err() {
                    return;
                }
            }
            // Counted once the snapshot, if it changed, is handed to the merge: a reader who sees
            // the count move knows this scan is done.
            self.scans.get_or_create(&label("trigger", trigger)).inc();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.period) => trigger = "period",
                Some(settled) = events.recv() => {
                    settle(settled, &mut events).await;
                    trigger = "event";
                }
            }
        }
    }
}

/// After a first event (`settled`: whether it ends a change), waits for the burst to end: until
/// no event has come for SETTLED_QUIET after one that ends a change, or for UNSETTLED_MAX after
/// one that does not (a file still being written gets time to be finished), and never longer
/// than UNSETTLED_MAX from the first event. Events that arrive meanwhile are taken in.
async fn settle(mut settled: bool, events: &mut mpsc::UnboundedReceiver<bool>) {
    let deadline = tokio::time::Instant::now() + UNSETTLED_MAX;
    loop {
        let quiet = if settled { SETTLED_QUIET } else { UNSETTLED_MAX };
        tokio::select! {
            _ = tokio::time::sleep(quiet) => return,
            _ = tokio::time::sleep_until(deadline) => return,
            e = events.recv() => match e {
                Some(s) => settled = s,
                None => return,
            },
        }
    }
}

/// Watches the directory (or, for a single manifest file, its parent, since editors replace
/// files by renaming). None if the path is not there yet; the periodic rescan retries.
fn watch(path: &Path, tx: mpsc::UnboundedSender<bool>) -> Option<notify::RecommendedWatcher> {
    let target = if path.is_dir() { path.to_path_buf() } else { path.parent()?.to_path_buf() };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Some(settled) = event.ok().and_then(|e| wakes(&e.kind)) {
            let _ = tx.send(settled);
        }
    })
    .ok()?;
    match watcher.watch(&target, RecursiveMode::NonRecursive) {
        Ok(()) => Some(watcher),
        Err(e) => {
            tracing::debug!(path = %target.display(), error = %e, "cannot watch yet; relying on rescans");
            None
        }
    }
}

/// Whether an event calls for a rescan (Some), and whether it ends a change (Some(true)): a file
/// closed after writing, renamed, removed. Reads are not changes: our own scan opens and closes
/// every file, and waking on that kept an idle daemon rescanning twice a second.
fn wakes(kind: &notify::EventKind) -> Option<bool> {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(true),
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => Some(true),
        _ => Some(false),
    }
}

/// Reads the manifest path once: a directory of manifests, a single file, or nothing.
pub fn scan(path: &Path, node: &str, memory: &mut ScanMemory) -> SourceSnapshot {
    let mut snapshot = SourceSnapshot { kind: SourceKind::File, manifests: Vec::new(), notes: Vec::new() };
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            snapshot.notes.push(format!("{}: does not exist ({e})", path.display()));
            return snapshot;
        }
    };
    if !metadata.is_dir() {
        memory.parsed.retain(|p, _| p == path);
        snapshot.manifests.push(read_manifest(path, node, memory));
        return snapshot;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(dir) => dir.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(e) => {
            // Unreadable directory: say so, but report the source as not seen rather than empty,
            // or every file pod would be stopped.
            snapshot.notes.push(format!("{}: cannot list ({e})", path.display()));
            snapshot.manifests.push(Manifest {
                origin: Origin::file(path.display().to_string()),
                result: Err(ManifestError::Read { location: path.display().to_string(), message: e.to_string() }),
            });
            return snapshot;
        }
    };
    entries.sort();
    let mut still_present = HashSet::new();
    for entry in entries {
        let name = entry.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let skip = match classify(&name) {
            FileClass::Skip(reason) => Some(reason),
            FileClass::Manifest if std::fs::symlink_metadata(&entry).is_ok_and(|m| m.is_dir()) => Some("subdirectory"),
            FileClass::Manifest if entry.is_dir() => Some("subdirectory"),
            FileClass::Manifest => None,
        };
        if let Some(reason) = skip {
            let key = (entry.clone(), reason);
            if memory.reported.insert(key.clone()) {
                tracing::info!(file = %entry.display(), "skipped: {reason}");
            }
            still_present.insert(key);
            continue;
        }
        snapshot.manifests.push(read_manifest(&entry, node, memory));
    }
    memory.reported.retain(|key| still_present.contains(key));
    memory.parsed.retain(|path, _| snapshot.manifests.iter().any(|m| Path::new(&m.origin.location) == path));
    snapshot
}

type Parsed = HashMap<PathBuf, (Vec<u8>, Result<Vec<StaticPod>, ManifestError>)>;

/// Reads and parses one file. A file that fails to parse while it is still being written is read
/// again shortly, so an in-place write is not reported as broken (bottlerocket#1396).
fn read_manifest(path: &Path, node: &str, memory: &mut ScanMemory) -> Manifest {
    let origin = Origin::file(path.display().to_string());
    if memory.strict_modes
        && let Err(reason) = super::trust::check(path)
    {
        return Manifest {
            origin: origin.clone(),
            result: Err(ManifestError::Untrusted { location: origin.location, reason }),
        };
    }
    let parsed = &mut memory.parsed;
    let mut result = read_once(path, &origin, node, parsed);
    for _ in 0..10 {
        let recently_written = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() < FRESH_WRITE);
        if result.is_ok() || !recently_written {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        result = read_once(path, &origin, node, parsed);
    }
    Manifest { origin, result }
}

fn read_once(path: &Path, origin: &Origin, node: &str, parsed: &mut Parsed) -> Result<Vec<StaticPod>, ManifestError> {
    let location = origin.location.clone();
    let read_error = |message: String| ManifestError::Read { location: location.clone(), message };
    let metadata = std::fs::metadata(path).map_err(|e| {
        if std::fs::symlink_metadata(path).is_ok() {
            read_error(format!("dangling symlink ({e})"))
        } else {
            read_error(e.to_string())
        }
    })?;
    if !metadata.is_file() {
        return Err(read_error("not a regular file".into()));
    }
    if metadata.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            location: location.clone(),
            size: metadata.len(),
            limit: MAX_MANIFEST_BYTES,
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| read_error(e.to_string()))?;
    if let Some((seen, result)) = parsed.get(path)
        && *seen == bytes
    {
        return result.clone();
    }
    let result = parse_manifest(&bytes, origin, node);
    parsed.insert(path.to_owned(), (bytes, result.clone()));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yaml_and_json_files_are_manifests() {
        for (name, manifest) in [
            ("web.yaml", true),
            ("web.yml", true),
            ("web.json", true),
            ("web.yaml~", false),
            (".web.yaml.swp", false),
            ("web.yaml.swp", false),
            ("web.yaml.bak", false),
            ("web.yaml.orig", false),
            ("web.yaml.dpkg-old", false),
            ("web.yaml.dpkg-new", false),
            ("web.yaml.ucf-dist", false),
            ("#web.yaml#", false),
            ("README", false),
            ("web.txt", false),
            (".hidden.yaml", false),
        ] {
            assert_eq!(classify(name) == FileClass::Manifest, manifest, "{name}");
        }
    }

    #[test]
    fn reads_do_not_wake_a_rescan_and_finished_writes_settle_it() {
        use notify::event::{
            AccessKind, AccessMode, CreateKind, DataChange, EventKind, ModifyKind, RemoveKind, RenameMode,
        };
        for (kind, expected) in [
            (EventKind::Access(AccessKind::Open(AccessMode::Any)), None),
            (EventKind::Access(AccessKind::Close(AccessMode::Read)), None),
            (EventKind::Access(AccessKind::Read), None),
            (EventKind::Create(CreateKind::File), Some(false)),
            (EventKind::Modify(ModifyKind::Data(DataChange::Any)), Some(false)),
            (EventKind::Modify(ModifyKind::Metadata(notify::event::MetadataKind::Any)), Some(false)),
            (EventKind::Access(AccessKind::Close(AccessMode::Write)), Some(true)),
            (EventKind::Modify(ModifyKind::Name(RenameMode::To)), Some(true)),
            (EventKind::Remove(RemoveKind::File), Some(true)),
        ] {
            assert_eq!(wakes(&kind), expected, "{kind:?}");
        }
    }

    #[test]
    fn scan_reads_sorted_manifests_and_skips_the_rest_once() {
        let dir = tempfile::tempdir().unwrap();
        let pod = |name: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{containers: [{{name: c, image: i:1}}]}}\n"
            )
        };
        std::fs::write(dir.path().join("b.yaml"), pod("b")).unwrap();
        std::fs::write(dir.path().join("a.json"), r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i:1"}]}}"#).unwrap();
        std::fs::write(dir.path().join("b.yaml.bak"), pod("b")).unwrap();
        std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
        let mut memory = ScanMemory::default();
        let snapshot = scan(dir.path(), "n", &mut memory);
        let names: Vec<String> =
            snapshot.manifests.iter().map(|m| m.result.as_ref().unwrap()[0].name().to_owned()).collect();
        assert_eq!(names, ["a-n", "b-n"]);
        assert_eq!(memory.reported.len(), 2, "{:?}", memory.reported);
    }

    #[test]
    fn rescan_parses_only_files_whose_bytes_changed() {
        let dir = tempfile::tempdir().unwrap();
        let pod = |name: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{containers: [{{name: c, image: i:1}}]}}\n"
            )
        };
        std::fs::write(dir.path().join("a.yaml"), pod("a1")).unwrap();
        std::fs::write(dir.path().join("b.yaml"), pod("b1")).unwrap();
        let mut memory = ScanMemory::default();
        scan(dir.path(), "n", &mut memory);
        // Plant a marker as b.yaml's remembered parse: served again only if b.yaml is not re-parsed.
        let b = dir.path().join("b.yaml");
        let marker = Err(ManifestError::Read { location: "marker".into(), message: "remembered".into() });
        memory.parsed.get_mut(&b).unwrap().1 = marker.clone();
        // Same length, new bytes, at once: timestamps may not move within one tick; bytes do.
        std::fs::write(dir.path().join("a.yaml"), pod("a2")).unwrap();
        let snapshot = scan(dir.path(), "n", &mut memory);
        assert_eq!(snapshot.manifests[0].result.as_ref().unwrap()[0].name(), "a2-n");
        assert_eq!(snapshot.manifests[1].result, marker);
        std::fs::remove_file(&b).unwrap();
        scan(dir.path(), "n", &mut memory);
        assert!(!memory.parsed.contains_key(&b), "a removed file is forgotten");
    }

    #[test]
    fn strict_modes_refuse_a_manifest_others_could_change_and_name_why() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i:1}]}\n";
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, pod).unwrap();
        let chmod = |path: &Path, mode| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        let result = |strict| scan(dir.path(), "n", &mut ScanMemory::new(strict)).manifests.remove(0).result;
        chmod(&file, 0o644);
        assert!(result(true).is_ok());
        chmod(&file, 0o664);
        let refusal = result(true).unwrap_err().to_string();
        assert!(
            refusal.contains("a.yaml: not trusted: file ") && refusal.contains("is writable by group (mode 0664)"),
            "{refusal}"
        );
        assert!(result(false).is_ok(), "strict modes off: read as kubelet does");
        chmod(&file, 0o600);
        chmod(dir.path(), 0o777);
        let refusal = result(true).unwrap_err().to_string();
        assert!(
            refusal.contains("not trusted: directory ") && refusal.contains("writable by group and others"),
            "{refusal}"
        );
        // A symlink to a file in a directory anyone can write to: the target decides.
        chmod(dir.path(), 0o755);
        let elsewhere = tempfile::tempdir().unwrap();
        chmod(elsewhere.path(), 0o1777);
        std::fs::write(elsewhere.path().join("b.yaml"), pod.replace("name: a", "name: b")).unwrap();
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("b.yaml"), &file).unwrap();
        let refusal = result(true).unwrap_err().to_string();
        assert!(refusal.contains("the symlink's target directory") && refusal.contains("mode 1777"), "{refusal}");
    }

    /// Runs `settle` after a first event `first`, with more events sent at the given times (ms
    /// after the first); returns how long it waited. Time is paused: no real sleeping.
    async fn settle_after(first: bool, later: &[(u64, bool)]) -> Duration {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let start = tokio::time::Instant::now();
        let later = later.to_vec();
        let sender = tokio::spawn(async move {
            for (at, settled) in later {
                tokio::time::sleep_until(start + Duration::from_millis(at)).await;
                let _ = tx.send(settled);
            }
            std::future::pending::<()>().await;
        });
        settle(first, &mut rx).await;
        let waited = start.elapsed();
        sender.abort();
        waited
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_settles_5_ms_after_it_ends_and_at_most_500_ms_after_it_starts() {
        let ms = Duration::from_millis;
        let every = |step: u64, until: u64, settled: bool| -> Vec<(u64, bool)> {
            (1..).map(|i| i * step).take_while(|&t| t <= until).map(|t| (t, settled)).collect()
        };
        for (what, first, later, waited) in [
            ("a finished write alone", true, vec![], ms(5)),
            ("a write still open alone", false, vec![], ms(500)),
            ("a write closed 400 ms in", false, vec![(300, false), (400, true)], ms(405)),
            ("a burst of renames 3 ms apart", true, vec![(3, true), (6, true), (9, true)], ms(14)),
            ("an event after the quiet time", true, vec![(10, true)], ms(5)),
            ("a finished write, then another opened", true, vec![(3, false)], ms(500)),
            ("a write that goes on for 900 ms", false, every(100, 900, false), ms(500)),
            ("renames every 4 ms for 600 ms", true, every(4, 600, true), ms(500)),
        ] {
            assert_eq!(settle_after(first, &later).await, waited, "{what}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn settle_returns_at_once_when_the_watcher_is_gone() {
        let (tx, mut rx) = mpsc::unbounded_channel::<bool>();
        drop(tx);
        let start = tokio::time::Instant::now();
        settle(false, &mut rx).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_directory_is_scanned_at_start_and_once_every_period() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i:1}]}\n",
        )
        .unwrap();
        let scans = Family::<Labels, Counter>::default();
        let source = DirSource::new(dir.path().to_owned(), "n".into(), Duration::from_secs(20), true, scans.clone());
        let (tx, mut rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(source.run(tx, shutdown.clone()));
        let first = rx.recv().await.unwrap();
        assert_eq!(first.manifests.len(), 1);
        let count = |trigger: &str| scans.get_or_create(&label("trigger", trigger)).get();
        // Just before the third period ends, then just after: scans come at 0, 20 s, 40 s, 60 s.
        tokio::time::sleep(Duration::from_millis(59_999)).await;
        assert_eq!((count("start"), count("period"), count("event")), (1, 2, 0));
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!((count("start"), count("period"), count("event")), (1, 3, 0));
        assert!(rx.try_recv().is_err(), "an unchanged directory yields no new snapshot");
        shutdown.cancel();
        task.await.unwrap();
    }

    #[test]
    fn missing_path_yields_no_pods_and_a_note() {
        let snapshot = scan(Path::new("/nonexistent/staticlet"), "n", &mut ScanMemory::default());
        assert!(snapshot.manifests.is_empty());
        assert_eq!(snapshot.notes.len(), 1);
    }
}
