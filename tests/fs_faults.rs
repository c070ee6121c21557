//! Filesystem faults under the manifest directory, against the real runtime: inotify's queue
//! overflowing, the directory deleted and made again, and the two atomic ways tools replace a
//! directory's contents (a symlink swapped for the directory, a ConfigMap-style `..data` swap
//! inside it). Each daemon rescans only every 10 minutes, so what it sees it sees from inotify.
//! And the pod log directory full: containers run on, and staticlet says so once; the manifest
//! directory's filesystem full under an edit, then read-only: the running pod is never the price.

mod common;

use std::{path::Path, time::Duration};

use common::*;

/// Only inotify brings news within a test: the periodic rescan is 10 minutes away.
fn watched_daemon(test: &str) -> Daemon {
    let mut d = Daemon::new(test);
    d.file_check_frequency = "10m".into();
    d
}

fn sleeper(name: &str, version: &str) -> String {
    shell_pod(name, &format!("echo {version}; exec sleep 3600"), "")
}

fn running(d: &Daemon) -> usize {
    d.status().pods.iter().filter(|p| p.status == "Running" && p.containers.iter().all(|c| c.ready)).count()
}

/// fs.inotify.max_queued_events, lowered while it is held. The kernel reads it when an inotify
/// instance is made, so a daemon started meanwhile keeps the small queue for its whole life.
struct SmallInotifyQueue(String);

const MAX_QUEUED_EVENTS: &str = "/proc/sys/fs/inotify/max_queued_events";

impl SmallInotifyQueue {
    fn of(events: u32) -> Self {
        let before = std::fs::read_to_string(MAX_QUEUED_EVENTS).unwrap();
        std::fs::write(MAX_QUEUED_EVENTS, events.to_string()).unwrap();
        Self(before)
    }
}

impl Drop for SmallInotifyQueue {
    fn drop(&mut self) {
        std::fs::write(MAX_QUEUED_EVENTS, self.0.trim()).unwrap();
    }
}

#[test]
fn an_overflowed_inotify_queue_rescans_the_directory_and_loses_no_manifest() {
    let _serial = serial();
    let mut d = watched_daemon("overflow");
    {
        let _small = SmallInotifyQueue::of(1);
        d.start();
        // The watch is made before the first scan, so once it is counted the daemon's queue holds
        // one event.
        d.wait_until("the first scan is done", Duration::from_secs(10), |d| {
            d.metric(r#"staticlet_manifest_dir_scans_total{trigger="start"}"#) == 1.0
        });
    }
    // Written in place: a create, writes and a close each, far more than one event's room.
    const PODS: usize = 12;
    for i in 0..PODS {
        std::fs::write(d.manifests.join(format!("p{i}.yaml")), sleeper(&format!("p{i}"), "v1")).unwrap();
    }
    d.wait_until("every manifest's pod runs", Duration::from_secs(180), |d| running(d) == PODS);
    assert!(
        d.metric(r#"staticlet_manifest_dir_scans_total{trigger="overflow"}"#) >= 1.0,
        "the queue of one event overflowed and was answered by a rescan\n{}",
        d.log()
    );
    assert_eq!(d.metric(r#"staticlet_manifest_dir_scans_total{trigger="period"}"#), 0.0, "no periodic rescan helped");
    assert!(d.log().contains("inotify lost events"), "the overflow is reported\n{}", d.log());
}

#[test]
fn a_deleted_manifest_directory_stops_its_pods_and_made_again_runs_them_at_once() {
    let _serial = serial();
    let mut d = watched_daemon("dir-recreated");
    d.start();
    d.write_manifest("a.yaml", &sleeper("a", "v1"));
    let a = d.wait_for_running("a");
    // As kubelet: a manifest path that does not exist is an empty source.
    std::fs::remove_dir_all(&d.manifests).unwrap();
    d.wait_until("a's pod is gone from the runtime", Duration::from_secs(30), |_| runtime_sandboxes(&a.uid).is_empty());
    assert!(d.log().contains("manifest path does not exist"), "{}", d.log());
    std::fs::create_dir(&d.manifests).unwrap();
    d.write_manifest("a.yaml", &sleeper("a", "v1"));
    d.write_manifest("b.yaml", &sleeper("b", "v1"));
    assert_eq!(d.wait_for_running("a").uid, a.uid, "the same manifest at the same path is the same pod");
    d.wait_for_running("b");
    // The new directory's own watch hears a change inside it.
    std::fs::remove_file(d.manifests.join("b.yaml")).unwrap();
    d.wait_until("b is stopped", Duration::from_secs(30), |d| d.pod("b").is_none());
    assert_eq!(d.metric(r#"staticlet_manifest_dir_scans_total{trigger="period"}"#), 0.0, "inotify alone saw it all");
}

/// The container id and restart count of each named pod's container, to compare before and after.
fn containers_of(d: &Daemon, names: &[&str]) -> Vec<(String, u32)> {
    names
        .iter()
        .map(|name| {
            let pod = d.pod(name).unwrap();
            (pod.containers[0].id.clone(), pod.restarts)
        })
        .collect()
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

#[test]
fn a_manifest_directory_swapped_through_its_symlink_restarts_only_what_changed() {
    let _serial = serial();
    let mut d = watched_daemon("symlink-swap");
    let versions = d.dir.path().join("versions");
    for (version, edited) in [("v1", "v1"), ("v2", "v2")] {
        write(&versions.join(version).join("a.yaml"), &sleeper("a", "v1"));
        write(&versions.join(version).join("b.yaml"), &sleeper("b", edited));
    }
    write(&versions.join("v2/c.yaml"), &sleeper("c", "v1"));
    // staticPodPath is a symlink to the version in force, as deploy tools keep a release.
    d.manifests = d.dir.path().join("current");
    std::os::unix::fs::symlink(versions.join("v1"), &d.manifests).unwrap();
    d.start();
    d.wait_for_running("a");
    let b = d.wait_for_running("b");
    let before = containers_of(&d, &["a"]);
    // ln -sfn versions/v2 current.new && mv -T current.new current
    let new_link = d.dir.path().join("current.new");
    std::os::unix::fs::symlink(versions.join("v2"), &new_link).unwrap();
    std::fs::rename(&new_link, &d.manifests).unwrap();
    d.wait_for_running("c");
    d.wait_for_pod("b", "its v2", |p| p.uid != b.uid && p.status == "Running");
    assert_eq!(containers_of(&d, &["a"]), before, "a did not change, so it was not restarted");
    // The watch followed the swap: a change in the new target is heard.
    write(&versions.join("v2/d.yaml"), &sleeper("d", "v1"));
    d.wait_for_running("d");
    assert_eq!(d.metric(r#"staticlet_manifest_dir_scans_total{trigger="period"}"#), 0.0, "inotify alone saw it all");
}

/// A ConfigMap volume's layout (what kubelet's atomic writer makes, and what tools copying it
/// make on a node): `..<timestamp>/` holds the files, `..data` points at it, and each manifest
/// is a symlink through `..data`. A new version is one rename of `..data`.
fn configmap_version(dir: &Path, stamp: &str, files: &[(&str, String)]) {
    let version = dir.join(format!("..{stamp}"));
    for (name, content) in files {
        write(&version.join(name), content);
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
    let data_tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{stamp}"), &data_tmp).unwrap();
    std::fs::rename(&data_tmp, dir.join("..data")).unwrap();
}

#[test]
fn a_configmap_style_data_swap_replaces_the_edited_pod_and_keeps_the_rest() {
    let _serial = serial();
    let mut d = watched_daemon("data-swap");
    let files = |b_version: &str| vec![("a.yaml", sleeper("a", "v1")), ("b.yaml", sleeper("b", b_version))];
    configmap_version(&d.manifests, "2026_12_03_08_00_00.1", &files("v1"));
    d.start();
    d.wait_for_running("a");
    let b = d.wait_for_running("b");
    let before = containers_of(&d, &["a"]);
    configmap_version(&d.manifests, "2026_12_03_08_05_00.2", &files("v2"));
    std::fs::remove_dir_all(d.manifests.join("..2026_12_03_08_00_00.1")).unwrap();
    d.wait_for_pod("b", "its v2", |p| p.uid != b.uid && p.status == "Running");
    assert_eq!(containers_of(&d, &["a"]), before, "a did not change, so it was not restarted");
    assert_eq!(d.status().pods.len(), 2, "the ..data entries are not manifests: {:#?}", d.status());
    assert!(d.log().contains("..data") && d.log().contains("skipped: hidden file"), "{}", d.log());
}

/// A tmpfs of `size` mounted on a directory while held; lazily unmounted after, since the
/// runtime may still hold a log file in it open.
struct SmallFilesystem(std::path::PathBuf);

impl SmallFilesystem {
    fn on(dir: &Path, options: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mount = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "staticlet-test"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(mount.success(), "mount a tmpfs on {}", dir.display());
        Self(dir.to_owned())
    }

    /// `mount -o remount,<options>`: a bigger size, or `ro`.
    fn remount(&self, options: &str) {
        let remount = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(remount.success(), "remount {}", self.0.display());
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_pod_log_directory_keeps_containers_running_and_is_reported_once() {
    let _serial = serial();
    let mut d = watched_daemon("logs-full");
    d.extra = vec!["--container-log-monitor-interval=1s".into()];
    let logs = SmallFilesystem::on(&d.logs, "size=4m");
    d.start();
    d.write_manifest("quiet.yaml", &sleeper("quiet", "v1"));
    let quiet = d.wait_for_running("quiet");
    // About 8 MB of output, twice what the directory holds, then quiet.
    let flood = "pad=$(printf '%0100d' 0); i=0; while [ $i -lt 80000 ]; do echo \"line $i $pad\"; i=$((i+1)); done; \
                 exec sleep 3600";
    d.write_manifest("flood.yaml", &shell_pod("flood", flood, ""));
    let flood = d.wait_for_running("flood");
    d.wait_until("the full directory is reported", Duration::from_secs(60), |d| {
        d.log().contains("the pod log directory is full")
    });
    assert!(d.metric("staticlet_pod_logs_dir_free_bytes") < 1048576.0);
    // Several checks later, the same fault is not said again, and no container paid for it.
    std::thread::sleep(Duration::from_secs(5));
    let log = d.log();
    assert_eq!(log.matches("the pod log directory is full").count(), 1, "{log}");
    for (pod, name) in [(&quiet, "quiet"), (&flood, "flood")] {
        assert_eq!(running_container_ids(&pod.uid), vec![pod.containers[0].id.clone()], "{name} runs on");
        assert_eq!(d.pod(name).unwrap().restarts, 0, "{name}");
    }
    logs.remount("size=64m");
    d.wait_until("room again is reported", Duration::from_secs(30), |d| {
        d.log().contains("the pod log directory has room again")
    });
    assert!(d.metric("staticlet_pod_logs_dir_free_bytes") > 32.0 * 1048576.0);
}

/// Writes a hidden file (staticlet skips it) until the filesystem has no room left.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join(".filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![b'x'; 4096];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => continue,
            Err(e) if e.raw_os_error() == Some(28) => return path,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
}

#[test]
fn a_manifest_filesystem_full_under_an_edit_keeps_the_pod_and_read_only_changes_nothing() {
    let _serial = serial();
    let mut d = watched_daemon("manifests-full");
    // Root's 0755, as strict modes want a manifest directory; tmpfs's own default is 1777.
    let manifests = SmallFilesystem::on(&d.manifests, "size=64k,mode=755");
    let path = d.manifests.join("web.yaml");
    std::fs::write(&path, sleeper("web", "v1")).unwrap();
    d.start();
    let v1 = d.wait_for_running("web");
    let filler = fill(&d.manifests);
    // An editor saving in place: the file is truncated, then the write runs out of room. What
    // is left is the comment the edit began with, and no pod.
    let edited = format!("{}{}", "# padding the edit past the room left\n".repeat(400), sleeper("web", "v2"));
    let cut = std::fs::write(&path, &edited).expect_err("the edit does not fit");
    assert_eq!(cut.raw_os_error(), Some(28), "{cut}");
    let location = path_str(&path);
    d.wait_until("the cut-short manifest is reported", Duration::from_secs(20), |d| {
        d.status().manifest_errors.iter().any(|e| e.contains(&location))
    });
    assert_eq!(d.metric(&format!("staticlet_manifest_errors{{location=\"{location}\"}}")), 1.0);
    let web = d.pod("web").unwrap();
    assert_eq!((web.uid.as_str(), web.restarts), (v1.uid.as_str(), 0), "the running version stays: {web:#?}");
    assert_eq!(running_container_ids(&v1.uid), vec![v1.containers[0].id.clone()], "not restarted");
    // Room again, and the edit saved whole: the new version replaces the old, the error is gone.
    std::fs::remove_file(filler).unwrap();
    std::fs::write(&path, &edited).unwrap();
    let v2 = d.wait_for_pod("web", "its v2", |p| p.uid != v1.uid && p.status == "Running");
    d.wait_until("the error is cleared", Duration::from_secs(20), |d| d.status().manifest_errors.is_empty());
    let metrics = http_get(d.status_port, "/metrics").unwrap();
    assert!(!metrics.contains(&location), "the series goes once the manifest loads:\n{metrics}");
    // Read-only (a node's /etc remounted, a sealed image): staticlet needs no write there, so a
    // restart adopts the pod as it runs.
    manifests.remount("ro");
    assert!(std::fs::write(d.manifests.join("new.yaml"), "x").is_err(), "the directory is read-only");
    d.stop();
    d.start();
    let adopted = d.wait_for_running("web");
    assert_eq!((adopted.uid.as_str(), adopted.restarts), (v2.uid.as_str(), 0), "{adopted:#?}");
    assert_eq!(running_container_ids(&v2.uid), vec![v2.containers[0].id.clone()], "adopted, not restarted");
    assert!(d.status().manifest_errors.is_empty(), "{:#?}", d.status().manifest_errors);
}
