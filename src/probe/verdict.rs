//! What a run of probe results means, as kubelet's prober worker decides it: a result changes
//! only after `successThreshold` successes or `failureThreshold` failures in a row; liveness
//! starts out passing, readiness failing, startup unknown; until the startup probe has passed,
//! liveness and readiness are not run, and the container is neither started nor ready.

use super::ProbeKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Unknown,
    Success,
    Failure,
}

#[derive(Debug, Clone)]
pub struct Tracker {
    pub result: Outcome,
    last: Option<bool>,
    run: u32,
    success_threshold: u32,
    failure_threshold: u32,
}

impl Tracker {
    pub fn new(kind: ProbeKind, success_threshold: u32, failure_threshold: u32) -> Self {
        let result = match kind {
            ProbeKind::Liveness => Outcome::Success,
            ProbeKind::Readiness => Outcome::Failure,
            ProbeKind::Startup => Outcome::Unknown,
        };
        Self { result, last: None, run: 0, success_threshold, failure_threshold }
    }

    /// Records one attempt; returns the new result when it changed.
    pub fn record(&mut self, ok: bool) -> Option<Outcome> {
        if self.last == Some(ok) {
            self.run += 1;
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let (threshold, outcome) =
            if ok { (self.success_threshold, Outcome::Success) } else { (self.failure_threshold, Outcome::Failure) };
        if self.run < threshold || self.result == outcome {
            return None;
        }
        self.result = outcome;
        Some(outcome)
    }
}

/// `(started, ready)` from the startup and readiness results (None: the container has no such
/// probe). A container with no probes is started and ready once it runs.
pub fn health(startup: Option<Outcome>, readiness: Option<Outcome>) -> (bool, bool) {
    let started = startup.is_none_or(|o| o == Outcome::Success);
    let ready = started && readiness.is_none_or(|o| o == Outcome::Success);
    (started, ready)
}

/// Whether a probe of `kind` runs now: liveness and readiness wait for the startup probe.
pub fn runs(kind: ProbeKind, started: bool) -> bool {
    kind == ProbeKind::Startup || started
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The results a tracker reports over a sequence of attempts (`+` pass, `-` fail).
    fn results(kind: ProbeKind, success: u32, failure: u32, attempts: &str) -> (Vec<Option<Outcome>>, Outcome) {
        let mut t = Tracker::new(kind, success, failure);
        let changes = attempts.chars().map(|c| t.record(c == '+')).collect();
        (changes, t.result)
    }

    #[test]
    fn thresholds_table() {
        use Outcome::*;
        for (kind, success, failure, attempts, last_result, first_change_at) in [
            // Liveness starts passing: it fails only after `failure` failures in a row.
            (ProbeKind::Liveness, 1, 3, "--", Success, None),
            (ProbeKind::Liveness, 1, 3, "---", Failure, Some(2)),
            (ProbeKind::Liveness, 1, 3, "--+--", Success, None),
            // Readiness starts failing: one success (successThreshold 1) makes it ready.
            (ProbeKind::Readiness, 1, 3, "+", Success, Some(0)),
            (ProbeKind::Readiness, 2, 3, "+-+", Failure, None),
            (ProbeKind::Readiness, 2, 3, "-++", Success, Some(2)),
            // Startup is unknown until it passes or fails for good.
            (ProbeKind::Startup, 1, 2, "-", Unknown, None),
            (ProbeKind::Startup, 1, 2, "-+", Success, Some(1)),
            (ProbeKind::Startup, 1, 2, "--", Failure, Some(1)),
        ] {
            let (changes, result) = results(kind, success, failure, attempts);
            assert_eq!(result, last_result, "{kind:?} {attempts}");
            assert_eq!(changes.iter().position(Option::is_some), first_change_at, "{kind:?} {attempts}");
        }
    }

    #[test]
    fn a_ready_container_goes_unready_after_failure_threshold_and_back_after_success_threshold() {
        let mut t = Tracker::new(ProbeKind::Readiness, 1, 3);
        assert_eq!(t.record(true), Some(Outcome::Success));
        assert_eq!([t.record(false), t.record(false)], [None, None]);
        assert_eq!(t.record(false), Some(Outcome::Failure));
        assert_eq!(t.record(false), None, "a result is reported once, when it changes");
        assert_eq!(t.record(true), Some(Outcome::Success));
    }

    #[test]
    fn startup_gates_started_ready_and_the_other_probes() {
        use Outcome::*;
        for (startup, readiness, expected) in [
            (None, None, (true, true)),
            (Some(Unknown), None, (false, false)),
            (Some(Unknown), Some(Success), (false, false)),
            (Some(Success), Some(Failure), (true, false)),
            (Some(Success), Some(Success), (true, true)),
            (None, Some(Failure), (true, false)),
        ] {
            assert_eq!(health(startup, readiness), expected, "startup {startup:?}, readiness {readiness:?}");
        }
        assert!(runs(ProbeKind::Startup, false));
        assert!(!runs(ProbeKind::Liveness, false) && !runs(ProbeKind::Readiness, false));
        assert!(runs(ProbeKind::Liveness, true) && runs(ProbeKind::Readiness, true));
    }
}
