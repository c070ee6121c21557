//! The manifest directory (staticPodPath): inotify events, debounced, plus a full rescan every
//! fileCheckFrequency. Every scan reads the whole directory and yields a whole snapshot, and is
//! counted in `staticlet_manifest_dir_scans_total` by what started it (start, event, period,
//! overflow). The watch follows the directory by inode: deleted and made again, or swapped through
//! a symlink (`..data`-style layouts inside it need nothing: their swap is a rename in it), it is
//! watched again where it now is.
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
        let (event_tx, mut events) = mpsc::unbounded_channel::<Wake>();
        // Kept alive here (dropping the watcher ends its inotify watches), with the identity of
        // what it watches: when that changes (the directory deleted and made again, or swapped
        // through a symlink), the old watch hears nothing more and is replaced.
        let mut watching: Option<(Watched, notify::RecommendedWatcher)> = None;
        let mut last: Option<SourceSnapshot> = None;
        let mut missing_reported = false;
        let mut trigger = "start";
        loop {
            let target = Watched::of(&self.path);
            if watching.as_ref().map(|(w, _)| w) != target.as_ref() {
                watching = target.and_then(|t| Some((t, watch(&self.path, event_tx.clone())?)));
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
                Some(first) = events.recv() => {
                    trigger = "event";
                    if settle(first, &mut events).await {
                        tracing::warn!(path = %self.path.display(), "inotify lost events (its queue overflowed: fs.inotify.max_queued_events); rescanning the whole directory");
                        trigger = "overflow";
                    }
                }
            }
        }
    }
}

/// What an inotify event asks of the scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// A change still in progress: a file created, opened or being written.
    Changing,
    /// A change that is over: a file closed after writing, renamed, removed.
    Changed,
    /// Events were lost (the kernel queue overflowed, IN_Q_OVERFLOW, or the watcher could not
    /// read them): only a full rescan knows what changed.
    Lost,
}

/// What a watcher watches, by inode: the manifest directory (or, for a single file or a path not
/// there yet, its parent). Paths alone cannot tell a directory made again from the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Watched {
    device: u64,
    inode: u64,
}

impl Watched {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let target = if path.is_dir() { path } else { path.parent()? };
        let metadata = std::fs::metadata(target).ok()?;
        Some(Self { device: metadata.dev(), inode: metadata.ino() })
    }
}

/// After a first event, waits for the burst to end: until no event has come for SETTLED_QUIET
/// after one that ends a change, or for UNSETTLED_MAX after one that does not (a file still being
/// written gets time to be finished), and never longer than UNSETTLED_MAX from the first event.
/// Events that arrive meanwhile are taken in. True if the burst lost events.
async fn settle(first: Wake, events: &mut mpsc::UnboundedReceiver<Wake>) -> bool {
    let deadline = tokio::time::Instant::now() + UNSETTLED_MAX;
    let (mut last, mut lost) = (first, first == Wake::Lost);
    loop {
        let quiet = if last == Wake::Changing { UNSETTLED_MAX } else { SETTLED_QUIET };
        tokio::select! {
            _ = tokio::time::sleep(quiet) => return lost,
            _ = tokio::time::sleep_until(deadline) => return lost,
            e = events.recv() => match e {
                Some(wake) => {
                    lost |= wake == Wake::Lost;
                    last = wake;
                }
                None => return lost,
            },
        }
    }
}

/// Watches the manifest directory and its parent (or, for a single manifest file or a path not
/// there yet, the parent alone): the parent sees the path itself made, removed or swapped (editors
/// replace files by renaming; `ln -sfn` and `mv -T` swap a directory's symlink). None if neither
/// is there; the periodic rescan retries.
fn watch(path: &Path, tx: mpsc::UnboundedSender<Wake>) -> Option<notify::RecommendedWatcher> {
    // notify names events by absolute paths; the path itself stays as configured, since pod
    // UIDs are made from it.
    let absolute = std::path::absolute(path).ok()?;
    let filter = absolute.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let wake = match event {
            Ok(event) if concerns(&event, &filter) => wakes(&event),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, "the manifest watcher failed to read events");
                Some(Wake::Lost)
            }
        };
        if let Some(wake) = wake {
            let _ = tx.send(wake);
        }
    })
    .ok()?;
    let mut watched = false;
    for target in [absolute.parent(), absolute.is_dir().then_some(absolute.as_path())].into_iter().flatten() {
        match watcher.watch(target, RecursiveMode::NonRecursive) {
            Ok(()) => watched = true,
            Err(e) => tracing::debug!(path = %target.display(), error = %e, "cannot watch yet; relying on rescans"),
        }
    }
    watched.then_some(watcher)
}

/// Whether an event in a watched directory concerns the manifest path: anything in it, but of its
/// parent's entries only the path itself. Lost events name no path and concern everything.
fn concerns(event: &notify::Event, path: &Path) -> bool {
    event.paths.is_empty() || event.paths.iter().any(|p| p == path || p.parent() == Some(path))
}

/// Whether an event calls for a rescan, and of what kind. Reads are not changes: our own scan
/// opens and closes every file, and waking on that kept an idle daemon rescanning twice a second.
fn wakes(event: &notify::Event) -> Option<Wake> {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
    if event.need_rescan() {
        return Some(Wake::Lost);
    }
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Wake::Changed),
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => Some(Wake::Changed),
        _ => Some(Wake::Changing),
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
    // read_to_end leaves room for kilobytes more; the memory keeps only what the file holds.
    bytes.shrink_to_fit();
    parsed.insert(path.to_owned(), (bytes, result.clone()));
    result
}

#[cfg(test)]
mod tests {
    use notify::Event;

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
    fn reads_do_not_wake_a_rescan_finished_writes_settle_it_and_lost_events_rescan_all() {
        use notify::event::{
            AccessKind, AccessMode, CreateKind, DataChange, EventKind, Flag, ModifyKind, RemoveKind, RenameMode,
        };
        for (event, expected) in [
            (Event::new(EventKind::Access(AccessKind::Open(AccessMode::Any))), None),
            (Event::new(EventKind::Access(AccessKind::Close(AccessMode::Read))), None),
            (Event::new(EventKind::Access(AccessKind::Read)), None),
            (Event::new(EventKind::Create(CreateKind::File)), Some(Wake::Changing)),
            (Event::new(EventKind::Modify(ModifyKind::Data(DataChange::Any))), Some(Wake::Changing)),
            (
                Event::new(EventKind::Modify(ModifyKind::Metadata(notify::event::MetadataKind::Any))),
                Some(Wake::Changing),
            ),
            (Event::new(EventKind::Access(AccessKind::Close(AccessMode::Write))), Some(Wake::Changed)),
            (Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::To))), Some(Wake::Changed)),
            (Event::new(EventKind::Remove(RemoveKind::File)), Some(Wake::Changed)),
            // notify's IN_Q_OVERFLOW.
            (Event::new(EventKind::Other).set_flag(Flag::Rescan), Some(Wake::Lost)),
        ] {
            assert_eq!(wakes(&event), expected, "{event:?}");
        }
    }

    #[test]
    fn of_the_parent_only_the_manifest_path_itself_concerns_the_scanner() {
        let event = |path: &str| Event::new(notify::EventKind::Any).add_path(PathBuf::from(path));
        let dir = Path::new("/etc/kubernetes/manifests");
        for (event, concerns_it) in [
            (event("/etc/kubernetes/manifests/etcd.yaml"), true),
            (event("/etc/kubernetes/manifests"), true), // made, removed, or a symlink swapped in
            (event("/etc/kubernetes/admin.conf"), false),
            (event("/etc/kubernetes/manifests.tmp"), false),
            (event("/etc/kubernetes/manifests/sub/x.yaml"), false),
            (Event::new(notify::EventKind::Other), true), // lost events name no path
        ] {
            assert_eq!(concerns(&event, dir), concerns_it, "{event:?}");
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
        let wake = |settled| if settled { Wake::Changed } else { Wake::Changing };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let start = tokio::time::Instant::now();
        let later = later.to_vec();
        let sender = tokio::spawn(async move {
            for (at, settled) in later {
                tokio::time::sleep_until(start + Duration::from_millis(at)).await;
                let _ = tx.send(wake(settled));
            }
            std::future::pending::<()>().await;
        });
        settle(wake(first), &mut rx).await;
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
    async fn a_burst_that_lost_events_says_so() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for wake in [Wake::Changing, Wake::Lost, Wake::Changed] {
            tx.send(wake).unwrap();
        }
        assert!(settle(Wake::Changed, &mut rx).await);
        tx.send(Wake::Changed).unwrap();
        assert!(!settle(Wake::Changing, &mut rx).await);
    }

    /// Runs a DirSource on `path` with an hour between rescans, so only inotify can bring news.
    fn watched_source(path: &Path) -> (mpsc::Receiver<SourceSnapshot>, CancellationToken) {
        let source = DirSource::new(path.to_owned(), "n".into(), Duration::from_secs(3600), true, Family::default());
        let (tx, rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        tokio::spawn(source.run(tx, shutdown.clone()));
        (rx, shutdown)
    }

    /// The names in the next snapshot that has `count` pods (bounded by 10 s, for a failing test).
    async fn next_pods(rx: &mut mpsc::Receiver<SourceSnapshot>, count: usize) -> Vec<String> {
        let wait = async {
            loop {
                let snapshot = rx.recv().await.expect("the source runs");
                if snapshot.manifests.len() == count {
                    return snapshot
                        .manifests
                        .iter()
                        .map(|m| m.result.as_ref().map_or_else(|e| e.to_string(), |p| p[0].name().to_owned()))
                        .collect();
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait).await.expect("a snapshot within 10 s")
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i:1}]}\n";

    #[tokio::test]
    async fn a_directory_deleted_and_made_again_is_watched_again() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("manifests");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.yaml"), POD).unwrap();
        let (mut rx, shutdown) = watched_source(&dir);
        assert_eq!(next_pods(&mut rx, 1).await, ["a-n"]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(next_pods(&mut rx, 0).await, Vec::<String>::new());
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("b.yaml"), POD.replace("name: a", "name: b")).unwrap();
        assert_eq!(next_pods(&mut rx, 1).await, ["b-n"]);
        // A change inside the new directory is heard too: its watch is the new directory's.
        std::fs::write(dir.join("c.yaml"), POD.replace("name: a", "name: c")).unwrap();
        assert_eq!(next_pods(&mut rx, 2).await, ["b-n", "c-n"]);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_directory_swapped_through_its_symlink_is_watched_at_its_new_target() {
        let parent = tempfile::tempdir().unwrap();
        let (v1, v2, link) = (parent.path().join("v1"), parent.path().join("v2"), parent.path().join("manifests"));
        for v in [&v1, &v2] {
            std::fs::create_dir(v).unwrap();
        }
        std::fs::write(v1.join("a.yaml"), POD).unwrap();
        std::fs::write(v2.join("b.yaml"), POD.replace("name: a", "name: b")).unwrap();
        std::os::unix::fs::symlink("v1", &link).unwrap();
        let (mut rx, shutdown) = watched_source(&link);
        assert_eq!(next_pods(&mut rx, 1).await, ["a-n"]);
        // `ln -sfn v2 manifests.new && mv -T manifests.new manifests`: one atomic rename.
        std::os::unix::fs::symlink("v2", parent.path().join("manifests.new")).unwrap();
        std::fs::rename(parent.path().join("manifests.new"), &link).unwrap();
        assert_eq!(next_pods(&mut rx, 1).await, ["b-n"]);
        std::fs::write(v2.join("c.yaml"), POD.replace("name: a", "name: c")).unwrap();
        assert_eq!(next_pods(&mut rx, 2).await, ["b-n", "c-n"]);
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn settle_returns_at_once_when_the_watcher_is_gone() {
        let (tx, mut rx) = mpsc::unbounded_channel::<Wake>();
        drop(tx);
        let start = tokio::time::Instant::now();
        assert!(!settle(Wake::Changing, &mut rx).await);
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
