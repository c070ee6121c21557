//! usageNanoCores: the CPU rate between two readings of one counter (node, pod sandbox,
//! container), Δ core-nanoseconds / Δ seconds, as kubelet computes it from CRI's readings.
//!
//! The earlier reading is kept until it is `WINDOW` old rather than replaced on every sample: a
//! second scraper asking right after the first would otherwise get the rate over a few
//! milliseconds. cAdvisor's rates span its housekeeping interval, which kubelet sets to 10 s.

use std::collections::HashMap;

use super::{Cpu, Sample, UnixNanos};

/// How old the earlier reading may get before a newer one takes its place.
pub const WINDOW: UnixNanos = 10_000_000_000;

/// The earlier reading of each counter, by `node`, `pod/<sandbox ID>`, `container/<ID>`.
#[derive(Debug, Default)]
pub struct Rates {
    earlier: HashMap<String, Reading>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Reading {
    time: UnixNanos,
    usage: u64,
}

impl Rates {
    /// Sets usageNanoCores on every CPU reading of `sample` that has an earlier one; counters not
    /// in `sample` (removed containers) are forgotten.
    pub fn fill(&mut self, sample: &mut Sample) {
        let mut earlier = std::mem::take(&mut self.earlier);
        let mut step = |key: String, cpu: &mut Option<Cpu>| {
            let Some(cpu) = cpu else { return };
            let Some(usage) = cpu.usage_core_nano_seconds else { return };
            let now = Reading { time: cpu.time, usage };
            let (rate, keep) = next(earlier.remove(&key), now);
            cpu.usage_nano_cores = rate;
            self.earlier.insert(key, keep);
        };
        step("node".into(), &mut sample.node.cpu);
        for pod in &mut sample.pods {
            step(format!("pod/{}", pod.sandbox_id), &mut pod.cpu);
            for container in &mut pod.containers {
                step(format!("container/{}", container.id), &mut container.cpu);
            }
        }
    }
}

/// The rate since `earlier` (None without one, or when the counter went back: a reset, as
/// kubelet treats it), and the reading to keep for next time.
fn next(earlier: Option<Reading>, now: Reading) -> (Option<u64>, Reading) {
    let Some(earlier) = earlier else { return (None, now) };
    if now.usage < earlier.usage || now.time < earlier.time {
        return (None, now);
    }
    if now.time == earlier.time {
        return (None, earlier);
    }
    let rate = (now.usage - earlier.usage) as f64 / (now.time - earlier.time) as f64 * 1e9;
    let keep = if now.time - earlier.time >= WINDOW { now } else { earlier };
    (Some(rate as u64), keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_api::stats::{ContainerSample, PodSample};

    const S: UnixNanos = 1_000_000_000;

    fn at(time: UnixNanos, usage: u64) -> Reading {
        Reading { time, usage }
    }

    #[test]
    fn rate_is_core_nanoseconds_per_second_since_the_earlier_reading() {
        let cases = [
            ("first reading: no rate", None, at(S, 5), (None, at(S, 5))),
            ("one core busy for 2 s", Some(at(0, 0)), at(2 * S, 2 * S as u64), (Some(1_000_000_000), at(0, 0))),
            ("a quarter core", Some(at(0, 100)), at(4 * S, 100 + S as u64), (Some(250_000_000), at(0, 100))),
            ("idle", Some(at(0, 7)), at(S, 7), (Some(0), at(0, 7))),
            ("a window old: the new reading is kept", Some(at(0, 0)), at(WINDOW, 10), (Some(1), at(WINDOW, 10))),
            ("counter went back: reset, no rate", Some(at(0, 500)), at(S, 10), (None, at(S, 10))),
            ("same instant: no rate, earlier kept", Some(at(S, 1)), at(S, 9), (None, at(S, 1))),
            ("clock went back: no rate", Some(at(2 * S, 1)), at(S, 9), (None, at(S, 9))),
        ];
        for (case, earlier, now, expected) in cases {
            assert_eq!(next(earlier, now), expected, "{case}");
        }
    }

    fn sample(time: UnixNanos, node: u64, container: (&str, u64)) -> Sample {
        let cpu = |usage| Some(Cpu { time, usage_core_nano_seconds: Some(usage), usage_nano_cores: None });
        let mut sample = Sample::default();
        sample.node.cpu = cpu(node);
        sample.pods.push(PodSample {
            sandbox_id: "sb".into(),
            cpu: cpu(container.1),
            containers: vec![ContainerSample { id: container.0.into(), cpu: cpu(container.1), ..Default::default() }],
            ..Default::default()
        });
        sample
    }

    #[test]
    fn second_sample_has_rates_for_node_pod_and_container_and_a_new_container_starts_over() {
        let mut rates = Rates::default();
        let mut first = sample(0, 0, ("c1", 0));
        rates.fill(&mut first);
        assert_eq!(first.node.cpu.unwrap().usage_nano_cores, None, "no earlier sample");
        assert_eq!(first.pods[0].containers[0].cpu.unwrap().usage_nano_cores, None);

        let mut second = sample(S, 2 * S as u64, ("c1", S as u64 / 2));
        rates.fill(&mut second);
        assert_eq!(second.node.cpu.unwrap().usage_nano_cores, Some(2_000_000_000));
        assert_eq!(second.pods[0].cpu.unwrap().usage_nano_cores, Some(500_000_000));
        assert_eq!(second.pods[0].containers[0].cpu.unwrap().usage_nano_cores, Some(500_000_000));

        let mut restarted = sample(2 * S, 3 * S as u64, ("c2", 0));
        rates.fill(&mut restarted);
        assert_eq!(restarted.pods[0].containers[0].cpu.unwrap().usage_nano_cores, None, "a new container ID");
        assert!(!rates.earlier.contains_key("container/c1"), "the removed container is forgotten");
    }
}
