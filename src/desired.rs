//! The desired set: every source's latest snapshot merged into one map of pods by full name.
//!
//! Pure and level-triggered: `merge` takes the previous result and the current snapshots and
//! returns the next result, so every rule below is a table test with no I/O.
//! - A manifest that fails to parse keeps the pods it defined last time it was good, and the
//!   error is reported (kubelet kills them at the next re-list; we don't).
//! - Two definitions of one `namespace/name`: the first wins (file sources before the URL, files in
//!   name order, documents in file order); the other is refused with an error naming both.
//! - `config.seen` is the time a UID was first seen, kept across rescans.

use std::collections::{BTreeMap, BTreeSet};

use crate::manifest::{ANNOTATION_CONFIG_SEEN, ManifestError, Origin, SourceKind, StaticPod};

/// One manifest (file or URL body) as a source last read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub origin: Origin,
    pub result: Result<Vec<StaticPod>, ManifestError>,
}

/// Everything one source knows right now. Sources send whole snapshots, never deltas.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSnapshot {
    pub kind: SourceKind,
    /// In precedence order (files sorted by name).
    pub manifests: Vec<Manifest>,
    /// Problems that are not tied to a manifest's content (missing directory, skipped files).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredPod {
    pub pod: StaticPod,
    /// When this UID was first seen (RFC 3339), the `config.seen` annotation.
    pub seen: jiff::Timestamp,
    /// Set when the manifest is currently broken and this is the last good version.
    pub stale: Option<ManifestError>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    /// By full name (`namespace/name`).
    pub pods: BTreeMap<String, DesiredPod>,
    pub errors: Vec<ManifestError>,
    /// Sources that have delivered at least one snapshot: only their runtime pods may be judged
    /// orphans, so a slow URL never gets its pods killed at start.
    pub seen_sources: BTreeSet<SourceKind>,
    /// Manifests that exist but are broken: runtime pods from them are left alone.
    pub broken: BTreeSet<Origin>,
}

pub fn merge(previous: &Desired, snapshots: &BTreeMap<SourceKind, SourceSnapshot>, now: jiff::Timestamp) -> Desired {
    let mut next = Desired { seen_sources: snapshots.keys().copied().collect(), ..Default::default() };
    for snapshot in snapshots.values() {
        for manifest in &snapshot.manifests {
            let candidates: Vec<(StaticPod, Option<ManifestError>)> = match &manifest.result {
                Ok(pods) => pods.iter().map(|p| (p.clone(), None)).collect(),
                Err(error) => {
                    next.errors.push(error.clone());
                    next.broken.insert(manifest.origin.clone());
                    previous
                        .pods
                        .values()
                        .filter(|d| d.pod.origin == manifest.origin)
                        .map(|d| (d.pod.clone(), Some(error.clone())))
                        .collect()
                }
            };
            for (pod, stale) in candidates {
                let full_name = pod.full_name();
                if let Some(first) = next.pods.get(&full_name) {
                    next.errors.push(ManifestError::Duplicate {
                        location: pod.origin.location.clone(),
                        name: full_name,
                        first: first.pod.origin.location.clone(),
                    });
                    continue;
                }
                let before = previous.pods.get(&full_name).filter(|d| d.pod.uid == pod.uid);
                let seen = before.map(|d| d.seen).unwrap_or(now);
                let pod = match before {
                    // The same version as at the last merge: its pod, config.seen already in, is
                    // shared instead of copied again.
                    Some(d) if d.pod.config_hash == pod.config_hash && d.pod.origin == pod.origin => d.pod.clone(),
                    _ => with_seen(pod, seen),
                };
                next.pods.insert(full_name, DesiredPod { pod, seen, stale });
            }
        }
    }
    next
}

fn with_seen(mut pod: StaticPod, seen: jiff::Timestamp) -> StaticPod {
    std::sync::Arc::make_mut(&mut pod.pod)
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(ANNOTATION_CONFIG_SEEN.into(), seen.strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string());
    pod
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_manifest;

    fn manifest(path: &str, yaml: &str) -> Manifest {
        let origin = Origin::file(path);
        Manifest { result: parse_manifest(yaml.as_bytes(), &origin, "n1"), origin }
    }

    fn pod_yaml(name: &str, image: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{containers: [{{name: c, image: {image}}}]}}\n"
        )
    }

    fn files(manifests: Vec<Manifest>) -> BTreeMap<SourceKind, SourceSnapshot> {
        BTreeMap::from([(SourceKind::File, SourceSnapshot { kind: SourceKind::File, manifests, notes: vec![] })])
    }

    fn t(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn broken_manifest_keeps_the_last_good_pod() {
        let good = merge(&Desired::default(), &files(vec![manifest("/m/web.yaml", &pod_yaml("web", "a:1"))]), t(1));
        let broken = merge(&good, &files(vec![manifest("/m/web.yaml", "kind: Pod\n\tbad")]), t(2));
        let kept = &broken.pods["default/web-n1"];
        assert_eq!(kept.pod.uid, good.pods["default/web-n1"].pod.uid);
        assert!(kept.stale.is_some());
        assert_eq!(broken.errors.len(), 1);
        assert!(broken.broken.contains(&Origin::file("/m/web.yaml")));
    }

    #[test]
    fn removed_manifest_removes_its_pod() {
        let good = merge(&Desired::default(), &files(vec![manifest("/m/web.yaml", &pod_yaml("web", "a:1"))]), t(1));
        let gone = merge(&good, &files(vec![]), t(2));
        assert!(gone.pods.is_empty());
    }

    #[test]
    fn first_file_in_order_wins_a_duplicate_and_the_other_is_named() {
        let desired = merge(
            &Desired::default(),
            &files(vec![
                manifest("/m/a.yaml", &pod_yaml("web", "a:1")),
                manifest("/m/b.yaml", &pod_yaml("web", "b:1")),
            ]),
            t(1),
        );
        assert_eq!(desired.pods["default/web-n1"].pod.origin.location, "/m/a.yaml");
        let error = desired.errors[0].to_string();
        assert!(error.contains("/m/b.yaml") && error.contains("/m/a.yaml"), "{error}");
    }

    #[test]
    fn seen_time_survives_rescans_and_resets_on_edit() {
        let one = merge(&Desired::default(), &files(vec![manifest("/m/w.yaml", &pod_yaml("web", "a:1"))]), t(1));
        let again = merge(&one, &files(vec![manifest("/m/w.yaml", &pod_yaml("web", "a:1"))]), t(5));
        assert_eq!(again.pods["default/web-n1"].seen, t(1));
        let edited = merge(&again, &files(vec![manifest("/m/w.yaml", &pod_yaml("web", "a:2"))]), t(9));
        assert_eq!(edited.pods["default/web-n1"].seen, t(9));
        let seen =
            &edited.pods["default/web-n1"].pod.pod.metadata.annotations.as_ref().unwrap()[ANNOTATION_CONFIG_SEEN];
        assert_eq!(seen, "1970-01-01T00:00:09.000000000Z");
    }

    #[test]
    fn broken_file_without_history_defines_nothing() {
        let desired = merge(&Desired::default(), &files(vec![manifest("/m/x.yaml", "{")]), t(1));
        assert!(desired.pods.is_empty());
        assert_eq!(desired.errors.len(), 1);
    }
}
