//! The mirror sync's decisions that are not about one mirror's shape (that is `pod::verdict`):
//! what to do with a mirror no static pod claims, which failures are refusals, and how long a
//! refused mirror waits before it is tried again. Pure, with time as an input.

use std::{collections::HashMap, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use super::{MirrorError, pod::ANNOTATION_MIRROR};
use crate::retry::Doubling;

/// What to do about a pod on the API server, bound to this node, that no desired pod claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Orphan {
    /// Not ours to touch (not a mirror), still wanted, or already marked terminating.
    Leave,
    /// Its static pod is still stopping on the node: a graceful delete marks the mirror
    /// Terminating in kubectl, as the pod is; the final delete follows once it has stopped.
    MarkTerminating { grace_seconds: u32 },
    /// Its static pod is gone: delete it now.
    Delete,
}

/// `wanted`: the pod's full name is in the desired set. `stopping`: a supervisor still holds it
/// (its worker removes its view only once the pod is gone).
pub fn orphan(mirror: &Pod, wanted: bool, stopping: bool) -> Orphan {
    let meta = &mirror.metadata;
    let is_mirror = meta.annotations.as_ref().is_some_and(|a| a.contains_key(ANNOTATION_MIRROR));
    if !is_mirror || wanted {
        return Orphan::Leave;
    }
    if !stopping {
        return Orphan::Delete;
    }
    if meta.deletion_timestamp.is_some() {
        return Orphan::Leave;
    }
    let grace = mirror.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
    Orphan::MarkTerminating { grace_seconds: grace.max(1) as u32 }
}

/// Why a pod the API server bound to this node is rejected, as kubelet words a pod it cannot
/// admit: kubelet would run it; this node runs static pods only.
pub const REJECTED_REASON: &str = "StaticPodsOnly";

/// Whether `pod`, bound to this node through the API server, must be rejected now: it is not a
/// mirror, has not ended (a rejected pod is Failed, so it is rejected once) and is not being deleted.
pub fn must_reject(pod: &Pod) -> bool {
    let meta = &pod.metadata;
    let is_mirror = meta.annotations.as_ref().is_some_and(|a| a.contains_key(ANNOTATION_MIRROR));
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !is_mirror && meta.deletion_timestamp.is_none() && !matches!(phase, Some("Failed" | "Succeeded"))
}

/// The message of a rejected pod's status and its event.
pub fn rejection_message(node: &str) -> String {
    format!(
        "Pod was rejected: node {node} runs static pods only (staticlet) and never runs pods bound to it through the \
         API server; run it on another node, or as a static pod from this node's manifests"
    )
}

/// Whether the API server refused the mirror itself (bad request, forbidden by authorization or
/// admission, invalid): something a person must fix, so it is also posted as a Node event.
/// Anything else (connection errors, conflicts, 5xx) is transient and only retried.
pub fn is_refusal(error: &MirrorError) -> bool {
    matches!(error.code(), Some(400 | 403 | 422))
}

const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Back-off per pod for a mirror the API server will not take: retried, but not hammered
/// (1 s doubling to 5 minutes), and at once after the pod's mirror is accepted again.
#[derive(Default)]
pub struct RefusalBackoff {
    pods: HashMap<String, (Instant, Doubling)>,
}

impl RefusalBackoff {
    /// Whether `pod`'s mirror must not be tried yet at `now`.
    pub fn waiting(&self, pod: &str, now: Instant) -> bool {
        self.pods.get(pod).is_some_and(|(next, _)| now < *next)
    }

    /// Records a failed create at `now`; returns how long the pod now waits.
    pub fn failed(&mut self, pod: &str, now: Instant) -> Duration {
        let (next, wait) =
            self.pods.entry(pod.to_owned()).or_insert_with(|| (now, Doubling::new(RETRY_MIN, RETRY_MAX)));
        let delay = wait.next_wait();
        *next = now + delay;
        delay
    }

    pub fn succeeded(&mut self, pod: &str) {
        self.pods.remove(pod);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_live_pods_that_are_not_mirrors_are_rejected() {
        use k8s_openapi::{api::core::v1::PodStatus, apimachinery::pkg::apis::meta::v1::Time};
        let pod = |mirror: bool, phase: Option<&str>, deleting: bool| {
            let mut p = Pod::default();
            if mirror {
                p.metadata.annotations = Some([(ANNOTATION_MIRROR.to_owned(), "hash".to_owned())].into());
            }
            p.status = Some(PodStatus { phase: phase.map(Into::into), ..Default::default() });
            p.metadata.deletion_timestamp = deleting.then_some(Time(jiff::Timestamp::UNIX_EPOCH));
            p
        };
        for (mirror, phase, deleting, reject) in [
            (false, None, false, true),
            (false, Some("Pending"), false, true),
            (false, Some("Running"), false, true),
            (false, Some("Failed"), false, false),
            (false, Some("Succeeded"), false, false),
            (false, Some("Pending"), true, false),
            (true, Some("Running"), false, false),
            (true, None, false, false),
        ] {
            assert_eq!(
                must_reject(&pod(mirror, phase, deleting)),
                reject,
                "mirror {mirror}, {phase:?}, deleting {deleting}"
            );
        }
    }

    use k8s_openapi::{
        api::core::v1::PodSpec,
        apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    };

    use super::*;

    fn pod(mirror: bool, terminating: bool) -> Pod {
        let annotations = mirror.then(|| [(ANNOTATION_MIRROR.to_owned(), "hash".to_owned())].into());
        Pod {
            metadata: ObjectMeta {
                annotations,
                deletion_timestamp: terminating.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            spec: Some(PodSpec { termination_grace_period_seconds: Some(5), ..Default::default() }),
            status: None,
        }
    }

    #[test]
    fn orphan_table() {
        use Orphan::*;
        // (is a mirror, already terminating, wanted, still stopping) -> action
        for (mirror, terminating, wanted, stopping, action) in [
            (false, false, false, false, Leave),
            (true, false, true, false, Leave),
            (true, false, false, false, Delete),
            (true, true, false, false, Delete),
            (true, false, false, true, MarkTerminating { grace_seconds: 5 }),
            (true, true, false, true, Leave),
        ] {
            assert_eq!(
                orphan(&pod(mirror, terminating), wanted, stopping),
                action,
                "mirror {mirror}, terminating {terminating}, wanted {wanted}, stopping {stopping}"
            );
        }
    }

    #[test]
    fn refusals_are_the_api_servers_no_not_its_absence() {
        let api = |code| MirrorError::Api { verb: "create", object: "pod".into(), code, message: String::new() };
        for (code, refusal) in [(Some(400), true), (Some(403), true), (Some(422), true)] {
            assert_eq!(is_refusal(&api(code)), refusal, "{code:?}");
        }
        for code in [Some(409), Some(500), Some(503), None] {
            assert!(!is_refusal(&api(code)), "{code:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_mirror_waits_1_s_doubling_to_5_minutes_and_none_once_accepted() {
        let mut backoff = RefusalBackoff::default();
        let t0 = Instant::now();
        assert!(!backoff.waiting("default/web", t0));
        assert_eq!(backoff.failed("default/web", t0), Duration::from_secs(1));
        assert!(backoff.waiting("default/web", t0));
        assert!(!backoff.waiting("default/other", t0), "one pod's refusal holds up no other");
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(backoff.waiting("default/web", Instant::now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!backoff.waiting("default/web", Instant::now()));

        let waits: Vec<u64> = (0..10).map(|_| backoff.failed("default/web", Instant::now()).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);

        backoff.succeeded("default/web");
        assert!(!backoff.waiting("default/web", Instant::now()));
        assert_eq!(backoff.failed("default/web", Instant::now()), Duration::from_secs(1));
    }
}
