//! Pod Security Standards for static pods, enforced by the node.
//!
//! Admission never sees a static pod: the API server only gets its mirror, after the pod runs.
//! So whoever can write the manifest directory (or serve the manifest URL) runs anything
//! (kubeadm#1541). Here the node applies the cluster's own rules before a pod runs: `enforce`
//! refuses a manifest whose pods break its level, `warn` only logs, both with the API server's
//! words (`violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)`). The
//! exemptions are the API server's too: namespaces and runtime classes.
//!
//! A refused manifest is handled like a broken one (`desired::merge`): pods it defined before
//! keep running, nothing new starts, and `staticlet get pods` shows the refusal.

mod checks;

use std::{collections::BTreeSet, fmt};

use crate::{
    desired::{Manifest, SourceSnapshot},
    manifest::{ManifestError, SourceKind, StaticPod},
};

/// A Pod Security Standards level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing is checked: kubelet's behaviour, and what kubeadm's control plane needs.
    #[default]
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Privileged => "privileged",
            Self::Baseline => "baseline",
            Self::Restricted => "restricted",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "privileged" => Ok(Self::Privileged),
            "baseline" => Ok(Self::Baseline),
            "restricted" => Ok(Self::Restricted),
            _ => Err(format!("{text:?} is not a Pod Security level: privileged, baseline or restricted")),
        }
    }
}

impl fmt::Display for Level {
    /// As the API server names a policy: the level at the latest version.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:latest", self.as_str())
    }
}

/// One broken check: a short reason and, in parentheses after it, what exactly broke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

/// The violations of one pod, as the API server lists them: `reason (detail), reason (detail)`.
pub fn describe(violations: &[Violation]) -> String {
    let parts: Vec<String> = violations
        .iter()
        .map(|v| if v.detail.is_empty() { v.reason.clone() } else { format!("{} ({})", v.reason, v.detail) })
        .collect();
    parts.join(", ")
}

/// What `pod` breaks at `level`, in the API server's order.
pub fn evaluate(level: Level, pod: &StaticPod) -> Vec<Violation> {
    let checks = match level {
        Level::Privileged => return Vec::new(),
        Level::Baseline => checks::BASELINE,
        Level::Restricted => checks::RESTRICTED,
    };
    let annotations = pod.annotations();
    checks.iter().filter_map(|check| check(&annotations, pod.spec())).collect()
}

/// The configured policy: a level to enforce per source, one to warn at, and who is exempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// For manifests from the manifest path.
    pub enforce: Level,
    /// For manifests from the manifest URL, which come from elsewhere and may be held stricter.
    pub url_enforce: Level,
    pub warn: Level,
    pub exempt_namespaces: BTreeSet<String>,
    pub exempt_runtime_classes: BTreeSet<String>,
}

impl Policy {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            enforce: config.pod_security_enforce,
            url_enforce: config.pod_security_url_enforce.unwrap_or(config.pod_security_enforce),
            warn: config.pod_security_warn,
            exempt_namespaces: config.pod_security_exempt_namespaces.iter().cloned().collect(),
            exempt_runtime_classes: config.pod_security_exempt_runtime_classes.iter().cloned().collect(),
        }
    }

    fn enforce_for(&self, source: SourceKind) -> Level {
        match source {
            SourceKind::File => self.enforce,
            SourceKind::Http => self.url_enforce,
        }
    }

    fn exempt(&self, pod: &StaticPod) -> bool {
        self.exempt_namespaces.contains(pod.namespace())
            || pod.spec().runtime_class_name.as_ref().is_some_and(|c| self.exempt_runtime_classes.contains(c))
    }

    /// Applies the policy to a source's snapshot: a manifest with a pod that breaks the enforced
    /// level becomes a `ManifestError::Forbidden` (the whole manifest, as with any other error, so
    /// half a file never runs). Returns the warnings for pods that break the warn level.
    pub fn admit(&self, mut snapshot: SourceSnapshot) -> (SourceSnapshot, Vec<String>) {
        let enforce = self.enforce_for(snapshot.kind);
        let mut warnings = Vec::new();
        for manifest in &mut snapshot.manifests {
            let Manifest { origin, result: Ok(pods) } = manifest else { continue };
            let (mut refusal, mut warned_here) = (None, Vec::new());
            for pod in pods.iter().filter(|p| !self.exempt(p)) {
                let violations = evaluate(enforce, pod);
                if !violations.is_empty() {
                    refusal = Some(ManifestError::Forbidden {
                        location: origin.location.clone(),
                        pod: pod.full_name(),
                        policy: enforce.to_string(),
                        violations: describe(&violations),
                    });
                    break;
                }
                let warned = evaluate(self.warn, pod);
                if !warned.is_empty() {
                    warned_here.push(format!(
                        "{}: pod {} would violate PodSecurity \"{}\": {}",
                        origin.location,
                        pod.full_name(),
                        self.warn,
                        describe(&warned)
                    ));
                }
            }
            match refusal {
                Some(error) => manifest.result = Err(error),
                None => warnings.extend(warned_here),
            }
        }
        (snapshot, warnings)
    }
}

#[cfg(test)]
mod tests;
