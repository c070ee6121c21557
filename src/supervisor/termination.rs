//! Termination messages, as kubelet makes them: each container gets a fresh host file
//! (`<rootDir>/pods/<uid>/containers/<name>/<restartCount>`, mode 0666) bind-mounted at its
//! terminationMessagePath; when it exits, the last 4096 bytes of that file become the terminated
//! state's `message`. With `FallbackToLogsOnError`, an empty (or missing) file and a non-zero
//! exit, the last 80 lines of the container's log, at most 2048 bytes, are used instead.
//!
//! The choice (`choose`) and the log tail (`log_tail`) are pure; `prepare` and `read` do the file
//! work around them.

use std::{
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use k8s_openapi::api::core::v1::Container;

use crate::{cri::api, logs::parse_line, manifest::StaticPod};

/// kubelet's limits (MaxContainerTerminationMessageLength, ...LogLines, ...LogLength).
pub const MAX_MESSAGE_BYTES: usize = 4096;
pub const MAX_LOG_LINES: usize = 80;
pub const MAX_LOG_BYTES: usize = 2048;
/// How much of the end of a log file is read for its last lines: far more than 80 lines of at
/// most 2048 bytes of content can take, with the CRI prefixes.
const LOG_READ_BYTES: u64 = 64 * 1024;

/// The host file of one container instance's termination message.
pub fn host_file(root_dir: &Path, pod: &StaticPod, container: &str, restart_count: u32) -> PathBuf {
    root_dir.join("pods").join(&pod.uid).join("containers").join(container).join(restart_count.to_string())
}

/// Creates the container's (empty) termination message file and returns its mount, or None when
/// the container has no terminationMessagePath or the file cannot be made (the container then
/// runs without it, as it would if the path were unset).
pub fn prepare(root_dir: &Path, pod: &StaticPod, container: &Container, restart_count: u32) -> Option<api::Mount> {
    let path = container.termination_message_path.as_deref().filter(|p| !p.is_empty())?;
    let file = host_file(root_dir, pod, &container.name, restart_count);
    let made = (|| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(file.parent().expect("the file is under the pod's directory"))?;
        std::fs::File::create(&file)?;
        // 0666 whatever the umask, so a container running as any user can write it (kubelet's chmod).
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))
    })();
    if let Err(e) = made {
        tracing::warn!(container = %container.name, file = %file.display(), error = %e, "cannot create the termination message file");
        return None;
    }
    Some(api::Mount {
        container_path: path.to_owned(),
        host_path: file.to_string_lossy().into_owned(),
        ..Default::default()
    })
}

/// The terminated state's message for an exited container, from its runtime status (the mount of
/// the message file, the log path, exit code, reason and the runtime's own message).
pub fn read(status: &api::ContainerStatus, container: Option<&Container>) -> String {
    let Some(container) = container else { return status.message.clone() };
    let path = container.termination_message_path.as_deref().unwrap_or_default();
    let fallback = container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
        && status.exit_code != 0
        && status.reason != "ContainerCannotRun";
    let mount = status.mounts.iter().find(|m| !path.is_empty() && m.container_path == path);
    let file =
        mount.map(|m| (m.host_path.as_str(), tail_of_file(Path::new(&m.host_path), MAX_MESSAGE_BYTES as u64, false)));
    choose(&status.message, file, fallback, || match tail_of_file(Path::new(&status.log_path), LOG_READ_BYTES, true) {
        Ok(bytes) => log_tail(&String::from_utf8_lossy(&bytes)),
        Err(e) => format!("Error on reading termination message from logs: {e}"),
    })
}

/// kubelet's choice: the file's text; the log tail when falling back and the file is empty or
/// missing (or there is no file); appended to the runtime's own message after ": ". `file` is the
/// host path and what reading it gave (None: no mount at terminationMessagePath).
pub fn choose(
    runtime_message: &str,
    file: Option<(&str, std::io::Result<Vec<u8>>)>,
    fallback: bool,
    logs: impl FnOnce() -> String,
) -> String {
    let (text, check_logs) = match file {
        None => (String::new(), fallback),
        Some((_, Err(e))) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), fallback),
        Some((path, Err(e))) => (format!("Error on reading termination log {path}: {e}"), false),
        Some((_, Ok(data))) => (String::from_utf8_lossy(&data).into_owned(), fallback && data.is_empty()),
    };
    let text = if check_logs { logs() } else { text };
    match (runtime_message.is_empty(), text.is_empty()) {
        (_, true) => runtime_message.to_owned(),
        (true, false) => text,
        (false, false) => format!("{runtime_message}: {text}"),
    }
}

/// The last `MAX_LOG_LINES` lines of a CRI log (`<ts> <stream> <F|P> <content>`, both streams,
/// partial lines joined), each ending in a newline, then the last `MAX_LOG_BYTES` bytes of those.
/// `raw` may start mid-line (the tail of a file): a first line without its start is dropped.
pub fn log_tail(raw: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut pending = String::new();
    for line in raw.lines() {
        let Some(parsed) = parse_line(line) else { continue };
        pending.push_str(parsed.content);
        if !parsed.partial {
            pending.push('\n');
            lines.push(std::mem::take(&mut pending));
        }
    }
    let text = lines[lines.len().saturating_sub(MAX_LOG_LINES)..].concat();
    let mut start = text.len().saturating_sub(MAX_LOG_BYTES);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

/// The last `max` bytes of a file; with `whole_lines`, a first line cut by the limit is dropped.
fn tail_of_file(path: &Path, max: u64, whole_lines: bool) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let from = len.saturating_sub(max);
    file.seek(SeekFrom::Start(from))?;
    let mut data = Vec::with_capacity((len - from) as usize);
    file.take(max).read_to_end(&mut data)?;
    if from > 0 && whole_lines {
        let cut = data.iter().position(|b| *b == b'\n').map_or(data.len(), |i| i + 1);
        data.drain(..cut);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind};

    use super::*;

    fn logs_say() -> String {
        "from the logs\n".into()
    }

    #[test]
    fn the_file_or_the_logs_as_kubelet_chooses() {
        let ok = |s: &str| Some(("/f", Ok(s.as_bytes().to_vec())));
        let missing = || Some(("/f", Err(Error::from(ErrorKind::NotFound))));
        for (runtime, file, fallback, expected) in [
            ("", ok("bye"), false, "bye"),
            ("", ok("bye"), true, "bye"),
            ("", ok(""), false, ""),
            ("", ok(""), true, "from the logs\n"),
            ("", missing(), true, "from the logs\n"),
            ("", missing(), false, ""),
            ("", None, true, "from the logs\n"),
            ("", None, false, ""),
            ("OOMKilled", ok("bye"), false, "OOMKilled: bye"),
            ("OOMKilled", ok(""), false, "OOMKilled"),
            (
                "",
                Some(("/f", Err(Error::from(ErrorKind::PermissionDenied)))),
                true,
                "Error on reading termination log /f: ",
            ),
        ] {
            let message = choose(runtime, file, fallback, logs_say);
            assert!(message.starts_with(expected), "{runtime:?} fallback {fallback}: {message:?}");
            if !expected.ends_with(": ") {
                assert_eq!(message, expected);
            }
        }
    }

    fn line(i: usize) -> String {
        format!("2026-01-01T00:00:00.{i:09}Z stdout F line {i}\n")
    }

    #[test]
    fn log_tail_keeps_the_last_80_lines_and_2048_bytes_and_joins_partial_lines() {
        let raw: String = (0..100).map(line).collect();
        let tail = log_tail(&raw);
        assert!(tail.starts_with("line 20\n") && tail.ends_with("line 99\n"), "{tail}");
        assert_eq!(tail.lines().count(), 80);

        let raw = "t stdout P hel\nt stderr F lo\nt stdout F \n";
        assert_eq!(log_tail(raw), "hello\n\n");

        let long: String =
            (0..10).map(|i| format!("t stdout F {}\n", char::from(b'a' + i).to_string().repeat(300))).collect();
        let tail = log_tail(&long);
        assert_eq!(tail.len(), MAX_LOG_BYTES);
        assert!(tail.ends_with(&format!("{}\n", "j".repeat(300))));

        let wide: String = (0..3).map(|_| format!("t stdout F {}\n", "é".repeat(500))).collect();
        let tail = log_tail(&wide);
        assert!(tail.len() <= MAX_LOG_BYTES && tail.ends_with("é\n"), "cut on a character boundary");
    }

    #[test]
    fn read_takes_the_last_4096_bytes_of_the_mounted_file_and_the_tail_of_a_long_log() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("msg");
        std::fs::write(&file, format!("{}{}", "x".repeat(100), "y".repeat(MAX_MESSAGE_BYTES))).unwrap();
        let log = dir.path().join("0.log");
        let lines: String = (0..5000).map(line).collect();
        std::fs::write(&log, &lines).unwrap();
        let container: Container = serde_saphyr::from_str(
            "name: c\nterminationMessagePath: /dev/termination-log\nterminationMessagePolicy: FallbackToLogsOnError\n",
        )
        .unwrap();
        let mut status = api::ContainerStatus {
            exit_code: 1,
            log_path: log.to_string_lossy().into_owned(),
            mounts: vec![api::Mount {
                container_path: "/dev/termination-log".into(),
                host_path: file.to_string_lossy().into_owned(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(read(&status, Some(&container)), "y".repeat(MAX_MESSAGE_BYTES));
        std::fs::write(&file, "").unwrap();
        let tail = read(&status, Some(&container));
        assert!(tail.ends_with("line 4999\n") && tail.lines().count() <= MAX_LOG_LINES, "{tail}");
        status.exit_code = 0;
        assert_eq!(read(&status, Some(&container)), "", "a clean exit never falls back to the logs");
    }
}
