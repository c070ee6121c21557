//! The manifest URL (staticPodURL), polled every httpCheckFrequency, kubelet's semantics:
//! - a transport error, a timeout or a non-200 answer changes nothing (the pods keep running);
//! - a 200 with the same body as last time changes nothing;
//! - a 200 with an empty body means "no pods";
//! - anything else is parsed as Pods/PodLists, YAML or JSON; a body that does not parse keeps the
//!   last good pods running, like a broken file.
//!
//! The body is capped at 10 MiB and every request at 10 s, so an endless or silent server costs
//! one bounded request per period. Every poll is counted in `staticlet_manifest_url_polls_total`
//! by how it ended (`PollResult`).

use std::time::Duration;

use prometheus_client::metrics::{counter::Counter, family::Family};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    desired::{Manifest, SourceSnapshot},
    manifest::{MAX_MANIFEST_BYTES, Origin, SourceKind, parse_manifest},
    ops::metrics::{Labels, label},
    retry::LogOnce,
};

pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct UrlSource {
    url: String,
    headers: Vec<(String, String)>,
    node: String,
    period: Duration,
    /// `staticlet_manifest_url_polls_total`, by result.
    polls: Family<Labels, Counter>,
}

/// How one poll ended: the `result` label of `staticlet_manifest_url_polls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollResult {
    /// A new body that parsed: the URL's pods are now what it lists.
    Ok,
    /// A new, empty body: no URL pods.
    Empty,
    /// A new body that does not parse: the last good pods keep running.
    Invalid,
    /// The same body as last time.
    Unchanged,
    /// An answer other than 200.
    HttpError,
    /// No answer: refused, reset, unresolvable.
    Unreachable,
    /// No answer within REQUEST_TIMEOUT.
    Timeout,
    /// A body over the size limit.
    TooLarge,
}

impl PollResult {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Empty => "empty",
            Self::Invalid => "invalid",
            Self::Unchanged => "unchanged",
            Self::HttpError => "http_error",
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
            Self::TooLarge => "too_large",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {message}")]
    Transport { url: String, message: String, timeout: bool },
    #[error("{url}: answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: response body is over the {limit}-byte limit")]
    TooLarge { url: String, limit: u64 },
}

impl FetchError {
    pub fn result(&self) -> PollResult {
        match self {
            Self::Transport { timeout: true, .. } => PollResult::Timeout,
            Self::Transport { .. } => PollResult::Unreachable,
            Self::Status { .. } => PollResult::HttpError,
            Self::TooLarge { .. } => PollResult::TooLarge,
        }
    }
}

impl UrlSource {
    pub fn new(
        url: String,
        headers: Vec<(String, String)>,
        node: String,
        period: Duration,
        polls: Family<Labels, Counter>,
    ) -> Self {
        Self { url, headers, node, period, polls }
    }

    pub async fn run(self, tx: mpsc::Sender<SourceSnapshot>, shutdown: CancellationToken) {
        let client = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(url = %self.url, error = %e, "cannot build an HTTP client; the manifest URL is not polled");
                return;
            }
        };
        let origin = Origin::http(self.url.clone());
        let mut last_body: Option<Vec<u8>> = None;
        let mut failure = LogOnce::default();
        loop {
            let result = match self.fetch(&client).await {
                Ok(body) => {
                    if failure.recovered() {
                        tracing::info!(url = %self.url, "manifest URL is answering again");
                    }
                    if last_body.as_ref() == Some(&body) {
                        PollResult::Unchanged
                    } else {
                        let (manifests, result) = if body.iter().all(u8::is_ascii_whitespace) {
                            tracing::warn!(url = %self.url, "manifest URL answered with an empty body: no URL pods");
                            (vec![], PollResult::Empty)
                        } else {
                            let parsed = parse_manifest(&body, &origin, &self.node);
                            let result = if parsed.is_ok() { PollResult::Ok } else { PollResult::Invalid };
                            (vec![Manifest { origin: origin.clone(), result: parsed }], result)
                        };
                        last_body = Some(body);
                        let snapshot = SourceSnapshot { kind: SourceKind::Http, manifests, notes: vec![] };
                        if tx.send(snapshot).await.is_err() {
                            return;
                        }
                        result
                    }
                }
                Err(e) => {
                    // A new kind of failure is news; the same failure every period is not.
                    if failure.failed(e.to_string()) {
                        tracing::warn!(error = %e, "manifest URL unavailable; keeping its pods");
                    } else {
                        tracing::debug!(error = %e, "manifest URL still unavailable");
                    }
                    e.result()
                }
            };
            // Counted once the poll is handled (its snapshot, if any, handed on), so a reader who
            // sees the count move knows this answer has been dealt with.
            self.polls.get_or_create(&label("result", result.label())).inc();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.period) => {}
            }
        }
    }

    async fn fetch(&self, client: &reqwest::Client) -> Result<Vec<u8>, FetchError> {
        let transport = |e: reqwest::Error| FetchError::Transport {
            url: self.url.clone(),
            message: describe(&e),
            timeout: e.is_timeout(),
        };
        let mut request = client.get(&self.url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let mut response = request.send().await.map_err(transport)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status { url: self.url.clone(), status: response.status().as_u16() });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > MAX_MANIFEST_BYTES {
                return Err(FetchError::TooLarge { url: self.url.clone(), limit: MAX_MANIFEST_BYTES });
            }
        }
        Ok(body)
    }
}

/// reqwest's top-level message hides the cause ("error sending request"); name it.
fn describe(error: &reqwest::Error) -> String {
    let mut message = if error.is_timeout() { "timed out".to_owned() } else { error.to_string() };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}
