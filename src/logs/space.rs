//! Room in the pod log directory. When its filesystem is full the runtime drops what containers
//! write (containerd says so once a line, in its own log) and the containers run on; kubelet
//! says nothing unless its eviction manager acts. staticlet says it once, in its own log: a
//! warning when the directory has no room left, a line when it has room again, and
//! `staticlet_pod_logs_dir_free_bytes` all along.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::CancellationToken;

/// Below this much free space the directory counts as full: containerd writes a log line or
/// nothing, and what is left no longer holds the lines of a busy container.
pub const FULL_BELOW: u64 = 1 << 20;

/// What the directory's filesystem has free (statvfs: space and inodes as root sees them, since
/// the runtime writes as root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    pub free_bytes: u64,
    pub free_inodes: u64,
    /// Inodes in all; 0 where the filesystem does not count them (btrfs), so none can run out.
    pub inodes: u64,
}

impl Room {
    pub fn of(dir: &Path) -> std::io::Result<Room> {
        let stat = rustix::fs::statvfs(dir)?;
        Ok(Room {
            free_bytes: stat.f_bfree.saturating_mul(stat.f_frsize),
            free_inodes: stat.f_ffree,
            inodes: stat.f_files,
        })
    }

    /// Why a new log line cannot be written, if it cannot.
    pub fn full(self) -> Option<String> {
        if self.free_bytes < FULL_BELOW {
            Some(format!("{} KiB free", self.free_bytes / 1024))
        } else if self.inodes > 0 && self.free_inodes == 0 {
            Some("no free inode".to_owned())
        } else {
            None
        }
    }
}

/// Checks the room in `dir` every `interval` (containerLogMonitorInterval, as rotation does) until
/// shutdown. A directory that does not exist yet is not full: the runtime makes it with the
/// first pod.
pub async fn watch(dir: PathBuf, interval: Duration, free_bytes: Gauge, shutdown: CancellationToken) {
    let mut full = false;
    loop {
        match Room::of(&dir) {
            Ok(room) => {
                free_bytes.set(i64::try_from(room.free_bytes).unwrap_or(i64::MAX));
                match (room.full(), full) {
                    (Some(why), false) => {
                        tracing::warn!(
                            dir = %dir.display(), %why,
                            "the pod log directory is full: containers run on, but what they write is lost \
                             until there is room"
                        );
                        full = true;
                    }
                    (None, true) => {
                        tracing::info!(dir = %dir.display(), free_bytes = room.free_bytes, "the pod log directory has room again");
                        full = false;
                    }
                    _ => {}
                }
            }
            Err(e) => tracing::trace!(dir = %dir.display(), error = %e, "no room to measure yet"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_full_without_a_mebibyte_or_an_inode_left() {
        let room = |free_bytes, free_inodes, inodes| Room { free_bytes, free_inodes, inodes };
        let cases = [
            (room(10 << 30, 1000, 2000), None),
            (room(FULL_BELOW, 1, 2000), None),
            (room(FULL_BELOW - 1, 1000, 2000), Some("1023 KiB free")),
            (room(0, 1000, 2000), Some("0 KiB free")),
            (room(10 << 30, 0, 2000), Some("no free inode")),
            // btrfs counts no inodes: none can run out.
            (room(10 << 30, 0, 0), None),
        ];
        for (room, want) in cases {
            assert_eq!(room.full().as_deref(), want, "{room:?}");
        }
    }

    #[tokio::test]
    async fn the_gauge_reads_the_free_space_of_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let gauge = Gauge::default();
        let shutdown = CancellationToken::new();
        let task =
            tokio::spawn(watch(dir.path().to_owned(), Duration::from_secs(3600), gauge.clone(), shutdown.clone()));
        for _ in 0..500 {
            if gauge.get() != 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let free = Room::of(dir.path()).unwrap().free_bytes as i64;
        // Others write to the same filesystem meanwhile; a gigabyte either way is the same reading.
        assert!((gauge.get() - free).abs() < 1 << 30, "{} against {free}", gauge.get());
        shutdown.cancel();
        task.await.unwrap();
    }
}
