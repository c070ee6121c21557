//! `GET /containerLogs/{namespace}/{pod}/{container}`: what `kubectl logs` reads, from the CRI
//! log file, with kubelet's query parameters and order: the last `tailLines` lines, then those
//! since `sinceSeconds`/`sinceTime`, then at most `limitBytes`. CRI partial lines (`P`) are
//! joined into the line they belong to; with `follow` the stream stays open, a line sent as soon
//! as it is written, across a log rotation, until the container is no longer running.

use std::{
    io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use jiff::Timestamp;
use tokio::sync::mpsc;

use crate::{cri::Observer, logs::parse_line};

/// Which of the container's streams to send (kubelet's `stream`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Stream {
    #[default]
    All,
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub since: Option<Timestamp>,
    pub tail_lines: Option<u64>,
    pub limit_bytes: Option<u64>,
    pub stream: Stream,
}

/// A query boolean, as the API server reads them.
fn boolean(name: &str, value: &str) -> Result<bool, String> {
    crate::config::parse_go_bool(value).ok_or_else(|| format!("{name}: {value:?} is not a boolean"))
}

fn number(name: &str, value: &str) -> Result<i64, String> {
    value.parse().map_err(|_| format!("{name}: {value:?} is not an integer"))
}

fn at_least(name: &str, value: &str, min: i64, rule: &str) -> Result<u64, String> {
    let n = number(name, value)?;
    if n < min {
        return Err(format!("{name}: must be {rule}"));
    }
    Ok(n as u64)
}

/// The options of one request, checked as the API server and kubelet check PodLogOptions.
/// `now` turns sinceSeconds into a time.
pub fn options(query: &[(String, String)], now: Timestamp) -> Result<LogOptions, String> {
    let mut options = LogOptions::default();
    let (mut since_seconds, mut since_time) = (None, None);
    for (name, value) in query {
        match name.as_str() {
            "follow" => options.follow = boolean(name, value)?,
            "previous" => options.previous = boolean(name, value)?,
            "timestamps" => options.timestamps = boolean(name, value)?,
            "sinceSeconds" => since_seconds = Some(number(name, value)?),
            "sinceTime" => {
                since_time = Some(
                    value.parse::<Timestamp>().map_err(|_| format!("sinceTime: {value:?} is not an RFC 3339 time"))?,
                )
            }
            // The legacy `tail`: a number, or `all`.
            "tail" if value == "all" => options.tail_lines = None,
            "tailLines" | "tail" => options.tail_lines = Some(at_least(name, value, 0, "greater than or equal to 0")?),
            "limitBytes" => options.limit_bytes = Some(at_least(name, value, 1, "greater than 0")?),
            "stream" => {
                options.stream = match value.as_str() {
                    "All" => Stream::All,
                    "Stdout" => Stream::Stdout,
                    "Stderr" => Stream::Stderr,
                    _ => return Err(format!("stream: {value:?} is not All, Stdout or Stderr")),
                }
            }
            _ => {}
        }
    }
    match (since_seconds, since_time) {
        (Some(_), Some(_)) => return Err("at most one of sinceTime or sinceSeconds may be specified".into()),
        (Some(s), None) if s < 1 => return Err("sinceSeconds: must be greater than 0".into()),
        (Some(s), None) => options.since = Some(now - jiff::SignedDuration::from_secs(s)),
        (None, t) => options.since = t,
    }
    if options.stream != Stream::All && options.tail_lines.is_some() {
        return Err("tailLines and a specific stream are mutually exclusive".into());
    }
    Ok(options)
}

/// Turns CRI lines into what the client gets: partial lines joined, stream and since filters,
/// the timestamp prefix, and the byte limit. Pure; the reader feeds it lines.
#[derive(Debug)]
pub struct Renderer {
    options: LogOptions,
    pending: String,
    pending_stream: String,
    sent: u64,
}

impl Renderer {
    pub fn new(options: LogOptions) -> Self {
        Self { options, pending: String::new(), pending_stream: String::new(), sent: 0 }
    }

    /// Whether the byte limit is used up: nothing more will be rendered.
    pub fn done(&self) -> bool {
        self.options.limit_bytes.is_some_and(|limit| self.sent >= limit)
    }

    /// The bytes one CRI line adds to the output (empty for a partial line, a filtered one, or
    /// one that does not parse).
    pub fn line(&mut self, raw: &str, out: &mut Vec<u8>) {
        let Some(line) = parse_line(raw.trim_end_matches('\n')) else { return };
        // A partial line's parts come from one stream; the first part's timestamp is the line's.
        if self.pending.is_empty() {
            self.pending_stream = format!("{} {}", line.timestamp, line.stream);
        }
        self.pending.push_str(line.content);
        if line.partial {
            return;
        }
        let content = std::mem::take(&mut self.pending);
        let (timestamp, stream) = self.pending_stream.split_once(' ').unwrap_or_default();
        let wanted = match self.options.stream {
            Stream::All => true,
            Stream::Stdout => stream == "stdout",
            Stream::Stderr => stream == "stderr",
        };
        let recent = match self.options.since {
            None => true,
            Some(since) => timestamp.parse::<Timestamp>().is_ok_and(|t| t >= since),
        };
        if !wanted || !recent || self.done() {
            return;
        }
        let mut rendered = Vec::with_capacity(content.len() + 40);
        if self.options.timestamps {
            rendered.extend_from_slice(timestamp.as_bytes());
            rendered.push(b' ');
        }
        rendered.extend_from_slice(content.as_bytes());
        rendered.push(b'\n');
        if let Some(limit) = self.options.limit_bytes {
            rendered.truncate((limit - self.sent) as usize);
        }
        self.sent += rendered.len() as u64;
        out.extend_from_slice(&rendered);
    }
}

/// Where the last `lines` complete (F-tagged) lines of `file` start: read backwards in
/// blocks, so a tail of a large file reads little of it.
fn tail_start(file: &mut std::fs::File, lines: u64) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if lines == 0 {
        return Ok(len);
    }
    let mut block = 16 * 1024u64;
    loop {
        let start = len.saturating_sub(block);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        (&mut *file).take(len - start).read_to_end(&mut buf)?;
        // Line ends in buf, newest first; a line is complete if its tag is F.
        let mut complete = 0;
        let mut ends = buf.iter().enumerate().rev().filter(|(_, b)| **b == b'\n').map(|(i, _)| i).peekable();
        while let Some(end) = ends.next() {
            let line_start = ends.peek().map_or(0, |p| p + 1);
            if line_start == 0 && start > 0 {
                break; // this line may begin before the block
            }
            if is_full(&buf[line_start..end]) {
                complete += 1;
                if complete > lines {
                    return Ok(start + end as u64 + 1);
                }
            }
        }
        if start == 0 {
            return Ok(0);
        }
        block *= 4;
    }
}

/// Whether a CRI line's tag says it ends a log line (`F`, or a tag with more after `:`).
fn is_full(line: &[u8]) -> bool {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let tag = fields.nth(2).unwrap_or_default();
    !tag.starts_with(b"P")
}

/// The container whose log is read: its runtime ID (to know when it stops) and log file.
pub struct Source {
    pub container_id: String,
    pub pod_uid: String,
    pub path: PathBuf,
}

const CHUNK: usize = 32 * 1024;

/// Sends the log into `out` as chunks; returns when done, the limit is reached, the client is
/// gone or (following) the container has stopped and its file is read to the end.
pub async fn send(source: Source, options: LogOptions, observer: Arc<Observer>, out: mpsc::Sender<Bytes>) {
    if let Err(e) = read(&source, options, &observer, &out).await {
        tracing::debug!(path = %source.path.display(), error = %e, "container log stream ended");
    }
}

/// Reads with plain blocking calls: the file is local, and a read at its end returns at once,
/// so a follower costs one read and one stat per idle tick and no thread of the blocking pool.
async fn read(
    source: &Source,
    options: LogOptions,
    observer: &Observer,
    out: &mpsc::Sender<Bytes>,
) -> std::io::Result<()> {
    let follow = options.follow;
    let mut file = std::fs::File::open(&source.path)?;
    let start = match options.tail_lines {
        Some(lines) => tail_start(&mut file, lines)?,
        None => 0,
    };
    file.seek(SeekFrom::Start(start))?;
    let mut open = identity(&file.metadata()?);
    let mut reader = BufReader::new(file);
    let mut renderer = Renderer::new(options);
    let (mut raw, mut chunk) = (String::new(), Vec::with_capacity(CHUNK));
    let mut idle = IDLE_FIRST;
    loop {
        raw.clear();
        let read = reader.read_line(&mut raw)?;
        if read > 0 && raw.ends_with('\n') {
            renderer.line(&raw, &mut chunk);
            idle = IDLE_FIRST;
            if chunk.len() >= CHUNK {
                flush(&mut chunk, out).await?;
            }
            if renderer.done() {
                break;
            }
            continue;
        }
        if read > 0 {
            // Half a line: the runtime is still writing it; read it again whole.
            reader.seek_relative(-(read as i64))?;
        }
        flush(&mut chunk, out).await?;
        if !follow {
            break;
        }
        // Rotated: the runtime writes to a new file at the path; this one is read to its end.
        if let Ok(now) = std::fs::metadata(&source.path)
            && identity(&now) != open
        {
            let file = std::fs::File::open(&source.path)?;
            open = identity(&file.metadata()?);
            reader = BufReader::new(file);
            continue;
        }
        if !running(observer, source) {
            break;
        }
        tokio::select! {
            _ = out.closed() => break,
            _ = tokio::time::sleep(idle) => {}
        }
        idle = (idle * 2).min(IDLE_MAX);
    }
    flush(&mut chunk, out).await
}

/// A follower's wait at the end of the file: short after a line (more tend to follow), longer
/// while the container is quiet.
const IDLE_FIRST: Duration = Duration::from_millis(50);
const IDLE_MAX: Duration = Duration::from_millis(250);

fn identity(metadata: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    (metadata.dev(), metadata.ino())
}

fn running(observer: &Observer, source: &Source) -> bool {
    let snapshot = observer.latest();
    snapshot.pod(&source.pod_uid).is_some_and(|pod| {
        pod.containers.iter().any(|c| c.id == source.container_id && c.state == crate::cri::ContainerState::Running)
    })
}

async fn flush(chunk: &mut Vec<u8>, out: &mpsc::Sender<Bytes>) -> std::io::Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let bytes = Bytes::from(std::mem::replace(chunk, Vec::with_capacity(CHUNK)));
    out.send(bytes).await.map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    const NOW: &str = "2026-12-02T10:00:00Z";

    fn opts(pairs: &[(&str, &str)]) -> Result<LogOptions, String> {
        options(&q(pairs), NOW.parse().map_err(|e: jiff::Error| e.to_string())?)
    }

    #[test]
    fn query_parameters_read_as_kubelet_reads_them() {
        let o = opts(&[
            ("follow", "true"),
            ("previous", "1"),
            ("timestamps", "true"),
            ("tailLines", "10"),
            ("limitBytes", "5"),
        ])
        .unwrap();
        assert!(o.follow && o.previous && o.timestamps);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(10), Some(5)));
        assert_eq!(opts(&[("sinceSeconds", "60")]).unwrap().since, Some("2026-12-02T09:59:00Z".parse().unwrap()));
        assert_eq!(
            opts(&[("sinceTime", "2026-12-01T00:00:00Z")]).unwrap().since,
            Some("2026-12-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(opts(&[("tail", "3")]).unwrap().tail_lines, Some(3), "the legacy tail");
        assert_eq!(opts(&[("tail", "all")]).unwrap().tail_lines, None);
        assert_eq!(opts(&[("stream", "Stderr")]).unwrap().stream, Stream::Stderr);
    }

    #[test]
    fn bad_query_parameters_are_refused_by_name() {
        for (query, field) in [
            (&[("tailLines", "-1")][..], "tailLines"),
            (&[("limitBytes", "0")], "limitBytes"),
            (&[("sinceSeconds", "0")], "sinceSeconds"),
            (&[("sinceSeconds", "5"), ("sinceTime", "2026-12-01T00:00:00Z")], "sinceTime or sinceSeconds"),
            (&[("sinceTime", "yesterday")], "sinceTime"),
            (&[("follow", "yes")], "follow"),
            (&[("stream", "Both")], "stream"),
            (&[("stream", "Stdout"), ("tailLines", "1")], "tailLines and a specific stream"),
        ] {
            let err = opts(query).unwrap_err();
            assert!(err.contains(field), "{query:?}: {err}");
        }
    }

    fn render(options: LogOptions, lines: &[&str]) -> String {
        let mut r = Renderer::new(options);
        let mut out = Vec::new();
        for l in lines {
            r.line(l, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    const LINES: &[&str] = &[
        "2026-12-02T09:00:00.000000001Z stdout F one\n",
        "2026-12-02T09:30:00.5Z stderr P tw\n",
        "2026-12-02T09:30:00.6Z stderr F o\n",
        "2026-12-02T09:59:30Z stdout F three\n",
    ];

    #[test]
    fn partial_lines_join_with_the_first_parts_timestamp() {
        let o = LogOptions { timestamps: true, ..Default::default() };
        assert_eq!(
            render(o, LINES),
            "2026-12-02T09:00:00.000000001Z one\n2026-12-02T09:30:00.5Z two\n2026-12-02T09:59:30Z three\n"
        );
    }

    #[test]
    fn since_and_stream_filter_and_the_limit_cuts_the_last_line() {
        let since = LogOptions { since: Some("2026-12-02T09:30:00Z".parse().unwrap()), ..Default::default() };
        assert_eq!(render(since, LINES), "two\nthree\n");
        let stderr = LogOptions { stream: Stream::Stderr, ..Default::default() };
        assert_eq!(render(stderr, LINES), "two\n");
        let limited = LogOptions { limit_bytes: Some(6), ..Default::default() };
        assert_eq!(render(limited, LINES), "one\ntw");
    }

    #[test]
    fn the_tail_starts_at_the_last_complete_lines_partial_ones_counted_with_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, LINES.concat()).unwrap();
        let mut file = std::fs::File::open(&path).unwrap();
        let all = LINES.concat();
        for (lines, from) in [(0, all.len()), (1, all.len() - LINES[3].len()), (2, LINES[0].len()), (3, 0), (10, 0)] {
            assert_eq!(tail_start(&mut file, lines).unwrap(), from as u64, "tail {lines}");
        }
    }
}
