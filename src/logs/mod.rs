//! `staticlet logs`: container logs straight from the CRI log files, no daemon or API server
//! needed. Files are `<podLogsDir>/<ns>_<pod>_<uid>/<container>/<restartCount>.log`, lines
//! `<RFC3339Nano> <stdout|stderr> <F|P> <content>`; `P` marks a partial line continued by the next.
//! Rotated files (`<restartCount>.log.<timestamp>[.gz]`, `rotate`) are not read: the current file
//! is the one being written, and `--previous` is the previous restart's.

pub mod rotate;
pub mod space;

use std::{
    io::{BufRead, BufReader, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    time::Duration,
};

#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("no pod named {pod:?} in namespace {namespace:?} has logs under {dir}")]
    NoPod { pod: String, namespace: String, dir: String },
    #[error("pod {pod} has several containers ({containers}); choose one with -c")]
    ChooseContainer { pod: String, containers: String },
    #[error("pod {pod} has no container {container:?} (it has: {containers})")]
    NoContainer { pod: String, container: String, containers: String },
    #[error("container {container} of pod {pod} has no {which} log")]
    NoLog { pod: String, container: String, which: &'static str },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

pub struct LogRequest {
    pub pod: String,
    pub namespace: String,
    pub container: Option<String>,
    pub node: String,
    pub follow: bool,
    pub previous: bool,
    pub tail: Option<usize>,
    pub timestamps: bool,
}

/// One parsed CRI log line.
#[derive(Debug, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub timestamp: &'a str,
    pub stream: &'a str,
    pub partial: bool,
    pub content: &'a str,
}

pub fn parse_line(line: &str) -> Option<LogLine<'_>> {
    let mut parts = line.splitn(4, ' ');
    let timestamp = parts.next()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or("");
    Some(LogLine { timestamp, stream, partial: tag.split(':').next() == Some("P"), content })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogsError + '_ {
    move |source| LogsError::Io { path: path.display().to_string(), source }
}

/// The log file to read: newest restart, or the one before with `previous`.
pub fn find_log(pod_logs_dir: &Path, req: &LogRequest) -> Result<PathBuf, LogsError> {
    let full_name = format!("{}-{}", req.pod, req.node.to_lowercase());
    let mut pod_dirs: Vec<(std::time::SystemTime, PathBuf, String)> = std::fs::read_dir(pod_logs_dir)
        .map_err(io(pod_logs_dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let mut parts = name.splitn(3, '_');
            let (ns, pod) = (parts.next()?.to_owned(), parts.next()?.to_owned());
            let matches = ns == req.namespace && (pod == req.pod || pod == full_name);
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            matches.then_some((modified, e.path(), pod))
        })
        .collect();
    // Several directories: older versions of an edited pod. The newest is the one running.
    pod_dirs.sort();
    let Some((_, pod_dir, pod_name)) = pod_dirs.pop() else {
        return Err(LogsError::NoPod {
            pod: req.pod.clone(),
            namespace: req.namespace.clone(),
            dir: pod_logs_dir.display().to_string(),
        });
    };
    let mut containers: Vec<String> = std::fs::read_dir(&pod_dir)
        .map_err(io(&pod_dir))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    containers.sort();
    let container = match (&req.container, containers.as_slice()) {
        (Some(c), _) if containers.contains(c) => c.clone(),
        (Some(c), _) => {
            return Err(LogsError::NoContainer {
                pod: pod_name,
                container: c.clone(),
                containers: containers.join(", "),
            });
        }
        (None, [only]) => only.clone(),
        (None, _) => return Err(LogsError::ChooseContainer { pod: pod_name, containers: containers.join(", ") }),
    };
    let container_dir = pod_dir.join(&container);
    let mut attempts: Vec<u64> = std::fs::read_dir(&container_dir)
        .map_err(io(&container_dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".log")?.parse().ok())
        .collect();
    attempts.sort_unstable();
    let pick = if req.previous { attempts.iter().rev().nth(1) } else { attempts.last() };
    let which = if req.previous { "previous" } else { "current" };
    let attempt = pick.ok_or(LogsError::NoLog { pod: pod_name, container, which })?;
    Ok(container_dir.join(format!("{attempt}.log")))
}

/// Writes the log to `out`, and with `follow` keeps writing as the container writes, moving on to
/// the next file when the container restarts.
pub fn stream(path: &Path, req: &LogRequest, out: &mut impl Write) -> Result<(), LogsError> {
    let io = |source| LogsError::Io { path: path.display().to_string(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    let mut pending = String::new();
    let mut raw = String::new();
    loop {
        raw.clear();
        if reader.read_line(&mut raw).map_err(io)? == 0 {
            break;
        }
        if let Some(line) = assemble(&raw, &mut pending, req.timestamps) {
            lines.push(line);
        }
    }
    let skip = req.tail.map(|n| lines.len().saturating_sub(n)).unwrap_or(0);
    for line in &lines[skip..] {
        writeln!(out, "{line}").map_err(io)?;
    }
    out.flush().map_err(io)?;
    if !req.follow {
        return Ok(());
    }
    let mut current = path.to_path_buf();
    loop {
        raw.clear();
        let read = reader.read_line(&mut raw).map_err(io)?;
        if read > 0 && raw.ends_with('\n') {
            if let Some(line) = assemble(&raw, &mut pending, req.timestamps) {
                writeln!(out, "{line}").map_err(io)?;
                out.flush().map_err(io)?;
            }
            continue;
        }
        if read > 0 {
            // Half a line: wait for the rest.
            let back = reader.stream_position().map_err(io)? - read as u64;
            reader.seek(SeekFrom::Start(back)).map_err(io)?;
        }
        let next =
            find_log(current.parent().and_then(Path::parent).and_then(Path::parent).unwrap_or(Path::new("/")), req)
                .ok()
                .filter(|p| p != &current || rotated(reader.get_ref(), p));
        if let Some(next) = next {
            current = next;
            reader = BufReader::new(std::fs::File::open(&current).map_err(io)?);
            continue;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether `path` is now another file than the one being read: the log was rotated (renamed
/// away, and the runtime writes to a new file at the path).
fn rotated(open: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (open.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(now)) => (open.dev(), open.ino()) != (now.dev(), now.ino()),
        _ => false,
    }
}

fn assemble(raw: &str, pending: &mut String, timestamps: bool) -> Option<String> {
    let parsed = parse_line(raw.trim_end_matches('\n'))?;
    pending.push_str(parsed.content);
    if parsed.partial {
        return None;
    }
    let content = std::mem::take(pending);
    Some(if timestamps { format!("{} {content}", parsed.timestamp) } else { content })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines_parse_and_partial_lines_join() {
        let mut pending = String::new();
        assert_eq!(assemble("2024-01-01T00:00:00.1Z stdout P hel\n", &mut pending, false), None);
        assert_eq!(assemble("2024-01-01T00:00:00.2Z stdout F lo\n", &mut pending, false).as_deref(), Some("hello"));
        assert_eq!(
            assemble("2024-01-01T00:00:00.3Z stderr F x y\n", &mut pending, true).as_deref(),
            Some("2024-01-01T00:00:00.3Z x y")
        );
        assert_eq!(parse_line("2024 stdout F").unwrap().content, "");
    }

    #[test]
    fn a_followed_file_renamed_away_and_replaced_counts_as_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, "a\n").unwrap();
        let open = std::fs::File::open(&path).unwrap();
        assert!(!rotated(&open, &path));
        std::fs::rename(&path, dir.path().join("0.log.20260101-000000")).unwrap();
        assert!(!rotated(&open, &path), "not yet reopened: wait");
        std::fs::write(&path, "b\n").unwrap();
        assert!(rotated(&open, &path));
    }

    #[test]
    fn newest_pod_dir_and_restart_are_chosen_and_previous_is_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("default_web-node1_uid1/httpd");
        std::fs::create_dir_all(&c).unwrap();
        for n in [0, 1, 2, 10] {
            std::fs::write(c.join(format!("{n}.log")), "").unwrap();
        }
        // Rotated files of the current restart are neither current nor previous.
        for rotated in ["10.log.20260101-000000.gz", "10.log.20260101-000001", "10.log.20260101-000002.tmp"] {
            std::fs::write(c.join(rotated), "").unwrap();
        }
        let mut req = LogRequest {
            pod: "web".into(),
            namespace: "default".into(),
            container: None,
            node: "Node1".into(),
            follow: false,
            previous: false,
            tail: None,
            timestamps: false,
        };
        assert_eq!(find_log(dir.path(), &req).unwrap(), c.join("10.log"));
        req.previous = true;
        assert_eq!(find_log(dir.path(), &req).unwrap(), c.join("2.log"));
        req.pod = "web-node1".into();
        assert!(find_log(dir.path(), &req).is_ok());
        req.pod = "db".into();
        assert!(matches!(find_log(dir.path(), &req), Err(LogsError::NoPod { .. })));
    }
}
