//! Posting events, rate-limited the way kubelet's recorder spares the API server: a repeat of the
//! same event within a minute is dropped, and no object gets more than 25 events a minute.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::{Event, EventSource, ObjectReference},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time},
};

const REPEAT_WINDOW: Duration = Duration::from_secs(60);
const PER_OBJECT_PER_MINUTE: usize = 25;

#[derive(Default)]
pub struct RateLimit {
    seen: HashMap<(String, String, String), Instant>,
    per_object: HashMap<String, Vec<Instant>>,
}

impl RateLimit {
    /// Whether an event about `object` with this reason and message may be sent at `now`.
    pub fn allow(&mut self, object: &str, reason: &str, message: &str, now: Instant) -> bool {
        let key = (object.to_owned(), reason.to_owned(), message.to_owned());
        if self.seen.get(&key).is_some_and(|t| now.duration_since(*t) < REPEAT_WINDOW) {
            return false;
        }
        let recent = self.per_object.entry(object.to_owned()).or_default();
        recent.retain(|t| now.duration_since(*t) < REPEAT_WINDOW);
        if recent.len() >= PER_OBJECT_PER_MINUTE {
            return false;
        }
        recent.push(now);
        self.seen.insert(key, now);
        self.seen.retain(|_, t| now.duration_since(*t) < REPEAT_WINDOW);
        true
    }
}

pub fn event(
    involved: ObjectReference,
    node: &str,
    warning: bool,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> Event {
    let name = format!("{}.{:x}", involved.name.as_deref().unwrap_or("object"), now.as_nanosecond());
    Event {
        metadata: ObjectMeta { name: Some(name), namespace: involved.namespace.clone(), ..Default::default() },
        involved_object: involved,
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        source: Some(EventSource { component: Some("kubelet".into()), host: Some(node.into()) }),
        reporting_component: Some("staticlet".into()),
        reporting_instance: Some(node.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        action: Some(reason.into()),
        count: Some(1),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_a_minute_are_dropped_and_objects_are_capped() {
        let mut limit = RateLimit::default();
        let t0 = Instant::now();
        assert!(limit.allow("p", "BackOff", "m", t0));
        assert!(!limit.allow("p", "BackOff", "m", t0 + Duration::from_secs(30)));
        assert!(limit.allow("p", "BackOff", "m", t0 + Duration::from_secs(61)));
        let t1 = t0 + Duration::from_secs(200);
        for i in 0..25 {
            assert!(limit.allow("q", "Started", &i.to_string(), t1));
        }
        assert!(!limit.allow("q", "Started", "26th", t1));
        assert!(limit.allow("other", "Started", "x", t1));
    }
}
