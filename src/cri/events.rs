//! Container events (CRI `GetContainerEvents`, containerd 1.7 and 2.x): what lets the relister
//! rest. While the stream is followed, every event for this node's pods asks the relister for a
//! listing at once, and the periodic relist slows to a safety net (`EVENTED_RELIST_PERIOD`, as
//! kubelet's Evented PLEG keeps one); a broken, ended or lagging stream puts the relister back to
//! its normal period at once, with one log line, and the stream is opened again after a wait.
//!
//! An event only triggers a listing; the snapshot stays the one source of truth. That costs two
//! RPCs per burst of events (a burst is coalesced into one listing), and buys the guarantee that
//! a missed or reordered event can never leave a wrong state behind: the next listing, whoever
//! asked for it, says what is there.
//!
//! containerd 2.4 sends every event to every reader (its `eventq`), and waits for a slow reader
//! before it goes on, with a buffer of 100 events: so the stream is read by a task that does
//! nothing but poke the relister. (containerd 1.7 hands each event to one reader only, so a
//! second reader, `crictl events` say, takes events from staticlet; the safety net and the exit
//! watches still notice what it took.)
//!
//! A runtime without the RPC (containerd 1.6) answers Unimplemented at once; staticlet then
//! relists as before and stops asking. One that has it answers nothing until the first event
//! (grpc-go sends the response headers with the first message), so a call still pending after
//! `SETTLE` counts as a followed stream.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::{Stream, StreamExt as _};
use tokio_util::sync::CancellationToken;

use super::{CriError, Observer, SharedCri, api, labels};
use crate::retry::Doubling;

/// The relist period while events are followed: kubelet's with Evented PLEG.
pub const EVENTED_RELIST_PERIOD: Duration = Duration::from_secs(300);

/// How long an open call may stay unanswered before it counts as a followed stream.
const SETTLE: Duration = Duration::from_secs(1);

/// An event older than this when it arrives means the stream lags behind the runtime: the
/// listings it triggers come too late to be worth waiting for.
const LAG_LIMIT: Duration = Duration::from_secs(10);

/// Waits before opening the stream again after it broke.
const REOPEN_MIN: Duration = Duration::from_secs(1);
const REOPEN_MAX: Duration = Duration::from_secs(30);

/// A container or sandbox event, with what staticlet reads of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEvent {
    pub container_id: String,
    /// When the runtime made it (Unix nanoseconds).
    pub created_at: i64,
    /// The `staticlet.io/node` label of the container's sandbox, when the event carries the
    /// sandbox's status (containerd leaves it out of some deletion events).
    pub node: Option<String>,
}

impl From<api::ContainerEventResponse> for RuntimeEvent {
    fn from(event: api::ContainerEventResponse) -> Self {
        let node = event.pod_sandbox_status.as_ref().map(|s| s.labels.get(labels::NODE).cloned().unwrap_or_default());
        Self { container_id: event.container_id, created_at: event.created_at, node }
    }
}

/// The stream `Cri::container_events` returns; opened lazily, on the first poll.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RuntimeEvent, CriError>> + Send>>;

/// What one event means for the relister.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Something of this node's changed (or may have): list now.
    Relist,
    /// Another node's pod, or a container of someone else's, on the same runtime; or an event
    /// from before the stream was opened (containerd 2 keeps events nobody read for five minutes
    /// and hands them to the next reader), which the listing made after opening already covers.
    Ignore,
    /// The event is this much older than now: the stream lags.
    Lagging(Duration),
}

/// Decides what one event means, for a stream opened at `opened` and at `now` (both Unix
/// nanoseconds). Pure.
pub fn verdict(event: &RuntimeEvent, node: &str, opened: i64, now: i64) -> Verdict {
    if event.created_at < opened {
        return Verdict::Ignore;
    }
    let age = Duration::from_nanos(now.saturating_sub(event.created_at).max(0) as u64);
    if age > LAG_LIMIT {
        return Verdict::Lagging(age);
    }
    match &event.node {
        Some(owner) if owner != node => Verdict::Ignore,
        _ => Verdict::Relist,
    }
}

/// How a followed stream ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The runtime has no container events: relist as always, and stop asking.
    Unsupported,
    /// Broken, ended or lagging; open it again after a wait.
    Lost(String),
    Shutdown,
}

/// Follows the runtime's container events for `node` until `shutdown`, switching `observer`
/// between its safety-net period (while the stream is followed) and its normal period.
pub async fn follow(runtime: SharedCri, observer: Arc<Observer>, node: String, shutdown: CancellationToken) {
    let mut streak = LossStreak { lost: false, followed: false, reopen: Doubling::new(REOPEN_MIN, REOPEN_MAX) };
    loop {
        let end = follow_once(runtime.as_ref(), &observer, &node, &shutdown, &mut streak).await;
        // Whatever ended the stream, listing at the normal period starts now, not at the next
        // safety-net pass.
        observer.set_evented(false);
        match end {
            End::Shutdown => return,
            End::Unsupported => {
                tracing::info!(
                    endpoint = runtime.endpoint(),
                    "the runtime has no container events (GetContainerEvents); relisting every second"
                );
                return;
            }
            End::Lost(why) => {
                if !streak.lost && streak.followed {
                    tracing::warn!(
                        endpoint = runtime.endpoint(),
                        reason = %why,
                        "container event stream lost; relisting every second until it is back"
                    );
                } else if !streak.lost {
                    // The runtime is not there yet; the relister says so already.
                    tracing::debug!(reason = %why, "container events not open yet; relisting every second");
                }
                streak.lost = true;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(streak.reopen.next_wait()) => {}
        }
    }
}

/// Attempts since the stream was last followed: one log line for a loss, however many
/// attempts it takes to open the stream again, and waits that grow between them.
struct LossStreak {
    lost: bool,
    /// The stream was followed at some point (before that, a failure is no loss).
    followed: bool,
    reopen: Doubling,
}

/// Opens the stream once and follows it until it ends.
async fn follow_once(
    runtime: &dyn super::Cri,
    observer: &Observer,
    node: &str,
    shutdown: &CancellationToken,
    streak: &mut LossStreak,
) -> End {
    let opened = now_nanos();
    let mut events = runtime.container_events();
    let mut pending = match tokio::time::timeout(SETTLE, events.next()).await {
        Ok(Some(Err(CriError::Rpc { code: tonic::Code::Unimplemented, .. }))) => return End::Unsupported,
        Ok(Some(Err(e))) => return End::Lost(e.to_string()),
        Ok(None) => return End::Lost("the runtime ended the stream".into()),
        Ok(Some(Ok(event))) => Some(event),
        Err(_still_open) => None,
    };
    observer.set_evented(true);
    // Whatever happened before the stream was open is only in a listing.
    observer.poke();
    tracing::info!(
        endpoint = runtime.endpoint(),
        safety_net = ?EVENTED_RELIST_PERIOD,
        "following the runtime's container events{}",
        if streak.lost && streak.followed { " again" } else { "" }
    );
    *streak = LossStreak { lost: false, followed: true, reopen: Doubling::new(REOPEN_MIN, REOPEN_MAX) };
    loop {
        let event = match pending.take() {
            Some(event) => event,
            None => tokio::select! {
                _ = shutdown.cancelled() => return End::Shutdown,
                next = events.next() => match next {
                    Some(Ok(event)) => event,
                    Some(Err(e)) => return End::Lost(e.to_string()),
                    None => return End::Lost("the runtime ended the stream".into()),
                },
            },
        };
        match verdict(&event, node, opened, now_nanos()) {
            Verdict::Relist => observer.poke(),
            Verdict::Ignore => {}
            Verdict::Lagging(age) => return End::Lost(format!("an event arrived {age:?} after it happened")),
        }
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::fake::FakeCri;
    use api::ContainerEventType::*;

    const NOW: i64 = 1_000_000_000_000;
    const OPENED: i64 = NOW - 60_000_000_000;

    fn event(node: Option<&str>, age: Duration) -> RuntimeEvent {
        RuntimeEvent { container_id: "c1".into(), created_at: NOW - age.as_nanos() as i64, node: node.map(Into::into) }
    }

    #[test]
    fn an_event_of_this_node_asks_for_a_listing_another_nodes_is_ignored_a_late_one_is_lag() {
        let fresh = Duration::from_millis(5);
        let cases = [
            (event(Some("n1"), fresh), Verdict::Relist),
            (event(None, fresh), Verdict::Relist), // a deletion without the sandbox: cannot tell
            (event(Some("other"), fresh), Verdict::Ignore),
            (event(Some(""), fresh), Verdict::Ignore), // a container that is not staticlet's
            (event(Some("n1"), Duration::from_secs(11)), Verdict::Lagging(Duration::from_secs(11))),
            (event(Some("n1"), Duration::ZERO), Verdict::Relist),
            // Queued before the stream was opened: the listing after opening covers it.
            (event(Some("n1"), Duration::from_secs(61)), Verdict::Ignore),
        ];
        for (event, want) in cases {
            assert_eq!(verdict(&event, "n1", OPENED, NOW), want, "{event:?}");
        }
        // The clock stepped back since the event: not lag.
        let future = RuntimeEvent { created_at: NOW + 60_000_000_000, ..event(Some("n1"), fresh) };
        assert_eq!(verdict(&future, "n1", OPENED, NOW), Verdict::Relist);
    }

    #[test]
    fn an_event_reads_the_node_from_its_sandbox_status() {
        let response = api::ContainerEventResponse {
            container_id: "c1".into(),
            container_event_type: ContainerStartedEvent as i32,
            created_at: 7,
            pod_sandbox_status: Some(api::PodSandboxStatus {
                labels: [(labels::NODE.to_owned(), "n1".to_owned())].into(),
                ..Default::default()
            }),
            containers_statuses: vec![],
        };
        let event = RuntimeEvent::from(response);
        assert_eq!(event.node.as_deref(), Some("n1"));
        let bare = api::ContainerEventResponse { container_id: "c1".into(), ..Default::default() };
        assert_eq!(RuntimeEvent::from(bare).node, None);
    }

    async fn listings(fake: &FakeCri) -> usize {
        tokio::task::yield_now().await;
        fake.calls().iter().filter(|c| c.starts_with("ListPodSandbox")).count()
    }

    /// The observer and the follower on one fake runtime, as the daemon runs them.
    fn start(fake: &Arc<FakeCri>) -> (Arc<Observer>, CancellationToken) {
        let observer = Observer::new();
        let shutdown = CancellationToken::new();
        let runtime: SharedCri = fake.clone();
        tokio::spawn(observer.clone().run(runtime.clone(), "n1".into(), Duration::from_secs(1), shutdown.clone()));
        tokio::spawn(follow(runtime, observer.clone(), "n1".into(), shutdown.clone()));
        (observer, shutdown)
    }

    #[tokio::test(start_paused = true)]
    async fn without_events_the_relister_keeps_its_period() {
        let fake = Arc::new(FakeCri::default());
        let (observer, shutdown) = start(&fake);
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        assert!(!observer.is_evented());
        assert_eq!(fake.calls().iter().filter(|c| *c == "GetContainerEvents").count(), 1, "asked once");
        assert!(listings(&fake).await >= 10, "{:?}", fake.calls());
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn with_events_the_relister_rests_and_an_event_brings_a_listing() {
        let fake = Arc::new(FakeCri::default());
        let events = fake.enable_events();
        let (observer, shutdown) = start(&fake);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(observer.is_evented());
        let rested = listings(&fake).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(listings(&fake).await, rested, "no listing at rest");

        let mut stopped = event(Some("n1"), Duration::ZERO);
        stopped.created_at = now_nanos();
        events.send(Ok(stopped.clone())).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(listings(&fake).await, rested + 1, "the event brought one listing");

        let foreign = RuntimeEvent { node: Some("other".into()), ..stopped };
        events.send(Ok(foreign)).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(listings(&fake).await, rested + 1, "another node's event brought none");

        // The safety net still lists.
        tokio::time::sleep(EVENTED_RELIST_PERIOD).await;
        assert_eq!(listings(&fake).await, rested + 2);
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_broken_stream_brings_back_the_normal_period_until_it_is_open_again() {
        let fake = Arc::new(FakeCri::default());
        let events = fake.enable_events();
        let (observer, shutdown) = start(&fake);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(observer.is_evented());

        // The stream breaks; the fake opens a new one on the next call.
        let _next = fake.enable_events();
        let before = listings(&fake).await;
        events.send(Err(crate::cri::fake::rpc_error("GetContainerEvents", tonic::Code::Unavailable, "gone"))).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!observer.is_evented());
        assert_eq!(listings(&fake).await, before + 1, "listed at once when the stream broke");
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert_eq!(listings(&fake).await, before + 2, "and every second until it is back");

        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(observer.is_evented(), "opened again");
        assert_eq!(fake.calls().iter().filter(|c| *c == "GetContainerEvents").count(), 2);
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_from_before_the_stream_is_drained_without_listings() {
        let fake = Arc::new(FakeCri::default());
        let events = fake.enable_events();
        let mut queued = event(Some("n1"), Duration::ZERO);
        queued.created_at = now_nanos() - 3_600_000_000_000;
        for _ in 0..1000 {
            events.send(Ok(queued.clone())).unwrap();
        }
        let (observer, shutdown) = start(&fake);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(observer.is_evented(), "an hour-old backlog is not lag");
        let rested = listings(&fake).await;
        assert!(rested <= 3, "the backlog brought no listings: {rested}");

        shutdown.cancel();
    }
}
