//! When to ask for the next certificate, as kubelet's certificate manager decides it: at a
//! jittered 70 to 90% of the current one's lifetime (so that a fleet's nodes, all issued at
//! once, do not all come back at once), and at once when there is none, it has expired, or it
//! no longer names what the node is.

use jiff::{SignedDuration, Timestamp};

use super::identity::{CertInfo, Template};

/// kubelet's `nextRotationDeadline`: `not_before + (0.7 + 0.2 * jitter) * lifetime`, with
/// `jitter` in [0, 1) (kubelet's `wait.Jitter(lifetime, 0.2) - 0.3 * lifetime`), to the second
/// (certificates' times are whole seconds).
pub fn rotation_deadline(not_before: Timestamp, not_after: Timestamp, jitter: f64) -> Timestamp {
    let lifetime = not_after.duration_since(not_before).as_secs_f64().max(0.0);
    let fraction = 0.7 + 0.2 * jitter.clamp(0.0, 1.0);
    let offset = SignedDuration::from_secs((lifetime * fraction).round() as i64);
    not_before.saturating_add(offset).unwrap_or(not_after)
}

/// What to do with the certificate at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Serve it (or use it) meanwhile: it exists and has not expired, even if it names too
    /// little, as kubelet keeps serving it while it asks for a new one.
    pub use_current: bool,
    /// When to ask for the next one; `now` or earlier means at once.
    pub renew_at: Timestamp,
}

impl Plan {
    pub fn renew_now(&self, now: Timestamp) -> bool {
        self.renew_at <= now
    }
}

pub fn plan(current: Option<&CertInfo>, template: &Template, now: Timestamp, jitter: f64) -> Plan {
    match current {
        None => Plan { use_current: false, renew_at: now },
        Some(cert) => Plan {
            use_current: !cert.is_expired(now),
            renew_at: if template.is_satisfied_by(cert) {
                rotation_deadline(cert.not_before, cert.not_after, jitter)
            } else {
                now
            },
        },
    }
}

/// A jitter in [0, 1): the low bits of a randomly keyed hash, which is random enough to spread
/// nodes and needs no random number crate.
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new().build_hasher().finish() >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn the_deadline_falls_between_70_and_90_percent_of_the_lifetime() {
        // A year-long certificate, as the controller manager signs by default.
        let (not_before, not_after) = (at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z"));
        for (jitter, deadline) in [
            (0.0, "2026-09-13T12:00:00Z"),
            (0.5, "2026-10-20T00:00:00Z"),
            (0.25, "2026-10-01T18:00:00Z"),
            (1.0, "2026-11-25T12:00:00Z"),
            (-3.0, "2026-09-13T12:00:00Z"),
            (7.0, "2026-11-25T12:00:00Z"),
        ] {
            assert_eq!(rotation_deadline(not_before, not_after, jitter), at(deadline), "jitter {jitter}");
        }
    }

    #[test]
    fn a_certificate_that_ends_before_it_begins_is_renewed_at_its_start() {
        let t = at("2026-01-01T00:00:00Z");
        assert_eq!(rotation_deadline(t, at("2025-01-01T00:00:00Z"), 0.5), t);
    }

    #[test]
    fn jitter_is_in_the_unit_interval() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    fn cert(template: &Template, not_before: &str, not_after: &str) -> CertInfo {
        CertInfo {
            common_name: template.common_name.clone(),
            organizations: template.organizations.clone(),
            dns_names: template.dns_names.clone(),
            ips: template.ips.clone(),
            not_before: at(not_before),
            not_after: at(not_after),
        }
    }

    #[test]
    fn the_plan_uses_what_is_valid_and_renews_what_is_due_missing_or_wrong() {
        let template = Template::serving("node-a", &["10.0.0.5".into()]);
        let valid = cert(&template, "2026-01-01T00:00:00Z", "2026-01-11T00:00:00Z");
        let expired = cert(&template, "2025-01-01T00:00:00Z", "2025-01-11T00:00:00Z");
        let moved = CertInfo { ips: vec!["10.0.0.6".parse().unwrap()], ..valid.clone() };
        let now = at("2026-01-05T00:00:00Z");
        for (current, use_current, renew_at) in [
            (None, false, "2026-01-05T00:00:00Z"),
            (Some(&valid), true, "2026-01-08T00:00:00Z"),
            (Some(&expired), false, "2025-01-08T00:00:00Z"),
            (Some(&moved), true, "2026-01-05T00:00:00Z"),
        ] {
            let plan = plan(current, &template, now, 0.0);
            assert_eq!(plan, Plan { use_current, renew_at: at(renew_at) }, "{current:?}");
        }
        assert!(plan(Some(&expired), &template, now, 0.0).renew_now(now));
        assert!(!plan(Some(&valid), &template, now, 0.0).renew_now(now));
    }
}
