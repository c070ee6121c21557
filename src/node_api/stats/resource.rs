//! kubelet's `/metrics/resource` (its resource metrics collector, v1.35), byte for byte as its
//! Prometheus registry writes it: families sorted by name, series by label values, help texts
//! prefixed with their stability level, Go's float format, and the reading's own time as an
//! explicit millisecond timestamp (none on the start times and the scrape error). A family
//! without series is left out, as the registry leaves it out.
//!
//! `scrape_error` is not served: it is ALPHA and deprecated since 1.29, and component-base hides
//! a deprecated ALPHA metric from the next minor release on. The swap families appear only where
//! the runtime reports swap (containerd 1.6 reports none for containers; kubelet would print
//! zeros for them).

use std::fmt::Write;

use super::{ContainerSample, Cpu, Memory, Sample, Swap, UnixNanos};

/// What kubelet answers a plain scrape with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    /// (labels as printed, value, timestamp)
    series: Vec<(String, f64, Option<UnixNanos>)>,
}

const STABLE: &str = "[STABLE]";
const ALPHA: &str = "[ALPHA]";

/// The body of `/metrics/resource` for `sample`.
pub fn resource_metrics(sample: &Sample) -> String {
    let mut families = families();
    let node = &sample.node;
    let mut add = |name: &str, labels: String, value: Option<(f64, Option<UnixNanos>)>| {
        if let Some((value, time)) = value {
            let family = families.iter_mut().find(|f| f.name == name).expect("a known family");
            family.series.push((labels, value, time));
        }
    };
    add("node_cpu_usage_seconds_total", String::new(), cpu_seconds(node.cpu.as_ref()));
    add("node_memory_working_set_bytes", String::new(), working_set(node.memory.as_ref()));
    add("node_swap_usage_bytes", String::new(), swap_usage(node.swap.as_ref()));
    for pod in &sample.pods {
        for c in &pod.containers {
            let labels = labels(&[("container", &c.name), ("namespace", &pod.namespace), ("pod", &pod.name)]);
            add("container_start_time_seconds", labels.clone(), start_time(c));
            add("container_cpu_usage_seconds_total", labels.clone(), cpu_seconds(c.cpu.as_ref()));
            add("container_memory_working_set_bytes", labels.clone(), working_set(c.memory.as_ref()));
            add("container_swap_usage_bytes", labels.clone(), swap_usage(c.swap.as_ref()));
            add("container_swap_limit_bytes", labels, swap_limit(c.swap.as_ref()));
        }
        let labels = labels(&[("namespace", &pod.namespace), ("pod", &pod.name)]);
        add("pod_cpu_usage_seconds_total", labels.clone(), cpu_seconds(pod.cpu.as_ref()));
        add("pod_memory_working_set_bytes", labels.clone(), working_set(pod.memory.as_ref()));
        add("pod_swap_usage_bytes", labels, swap_usage(pod.swap.as_ref()));
    }
    add("resource_scrape_error", String::new(), Some((0.0, None)));
    render(families)
}

/// The body when no sample could be taken: only the scrape error, as kubelet serves it.
pub fn resource_metrics_failed() -> String {
    let mut families = families();
    let family = families.iter_mut().find(|f| f.name == "resource_scrape_error").expect("a known family");
    family.series.push((String::new(), 1.0, None));
    render(families)
}

fn families() -> Vec<Family> {
    let family = |name, help, kind| Family { name, help, kind, series: Vec::new() };
    vec![
        family(
            "node_cpu_usage_seconds_total",
            "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
            "counter",
        ),
        family("node_memory_working_set_bytes", "[STABLE] Current working set of the node in bytes", "gauge"),
        family(
            "node_swap_usage_bytes",
            "[ALPHA] Current swap usage of the node in bytes. Reported only on non-windows systems",
            "gauge",
        ),
        family(
            "container_cpu_usage_seconds_total",
            "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
            "counter",
        ),
        family("container_memory_working_set_bytes", "[STABLE] Current working set of the container in bytes", "gauge"),
        family(
            "container_swap_usage_bytes",
            "[ALPHA] Current amount of the container swap usage in bytes. Reported only on non-windows systems",
            "gauge",
        ),
        family(
            "container_swap_limit_bytes",
            "[ALPHA] Current amount of the container swap limit in bytes. Reported only on non-windows systems",
            "gauge",
        ),
        family(
            "pod_cpu_usage_seconds_total",
            "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
            "counter",
        ),
        family("pod_memory_working_set_bytes", "[STABLE] Current working set of the pod in bytes", "gauge"),
        family(
            "pod_swap_usage_bytes",
            "[ALPHA] Current amount of the pod swap usage in bytes. Reported only on non-windows systems",
            "gauge",
        ),
        family(
            "resource_scrape_error",
            "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
            "gauge",
        ),
        family(
            "container_start_time_seconds",
            "[STABLE] Start time of the container since unix epoch in seconds",
            "gauge",
        ),
    ]
}

fn render(mut families: Vec<Family>) -> String {
    debug_assert!(families.iter().all(|f| f.help.starts_with(STABLE) || f.help.starts_with(ALPHA)));
    families.sort_by_key(|f| f.name);
    let mut out = String::new();
    for mut family in families.into_iter().filter(|f| !f.series.is_empty()) {
        // Label values in label-name order, as the registry sorts them.
        family.series.sort_by(|a, b| a.0.cmp(&b.0));
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        for (labels, value, time) in family.series {
            let _ = write!(out, "{}{labels} {}", family.name, go_float(value));
            if let Some(time) = time {
                let _ = write!(out, " {}", time.div_euclid(1_000_000));
            }
            out.push('\n');
        }
    }
    out
}

fn cpu_seconds(cpu: Option<&Cpu>) -> Option<(f64, Option<UnixNanos>)> {
    let cpu = cpu?;
    Some((cpu.usage_core_nano_seconds? as f64 / 1e9, Some(cpu.time)))
}

fn working_set(memory: Option<&Memory>) -> Option<(f64, Option<UnixNanos>)> {
    let memory = memory?;
    Some((memory.working_set_bytes? as f64, Some(memory.time)))
}

fn swap_usage(swap: Option<&Swap>) -> Option<(f64, Option<UnixNanos>)> {
    let swap = swap?;
    Some((swap.usage_bytes? as f64, Some(swap.time)))
}

/// kubelet's limit is what is available plus what is used.
fn swap_limit(swap: Option<&Swap>) -> Option<(f64, Option<UnixNanos>)> {
    let swap = swap?;
    Some(((swap.available_bytes? + swap.usage_bytes.unwrap_or(0)) as f64, Some(swap.time)))
}

/// kubelet leaves out a container whose start time is not after the epoch.
fn start_time(c: &ContainerSample) -> Option<(f64, Option<UnixNanos>)> {
    (c.start_time >= 1_000_000_000).then(|| (c.start_time as f64 / 1e9, None))
}

/// `{a="x",b="y"}`, names given in sorted order, values escaped as the text format wants.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            let value = value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n");
            format!("{name}=\"{value}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)`, which the text format uses: the shortest digits
/// that read back as `v`, in exponent form (`1.5e+09`, two exponent digits at least) when the
/// decimal exponent is below -4 or 6 and up (Go's rule for the shortest form), else plain.
pub(super) fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` gives the same shortest digits: `d.ddde<exp>`.
    let scientific = format!("{:e}", v.abs());
    let (mantissa, exp) = scientific.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if v < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}e{exp_sign}{:02}", exp.abs());
    }
    // Plain decimal with exactly those digits: the point after exp + 1 of them.
    let point = exp + 1;
    if point <= 0 {
        return format!("{sign}0.{}{digits}", "0".repeat((-point) as usize));
    }
    let point = point as usize;
    if digits.len() <= point {
        return format!("{sign}{digits}{}", "0".repeat(point - digits.len()));
    }
    format!("{sign}{}.{}", &digits[..point], &digits[point..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_api::stats::{NodeSample, PodSample};

    #[test]
    fn floats_are_written_as_go_writes_them() {
        let cases = [
            (0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (0.5, "0.5"),
            (10.0, "10"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (507904.0, "507904"),
            (15561502720.0, "1.556150272e+10"),
            (3.032522498, "3.032522498"),
            (32910.498296491, "32910.498296491"),
            (1_796_184_899_848_770_421.0 / 1e9, "1.7961848998487704e+09"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1e100, "1e+100"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (value, go) in cases {
            assert_eq!(go_float(value), go, "{value:?}");
        }
    }

    const S: UnixNanos = 1_000_000_000;

    fn sample() -> Sample {
        let cpu = |time, usage| Some(Cpu { time, usage_core_nano_seconds: Some(usage), usage_nano_cores: Some(1) });
        let memory =
            |time, working_set| Some(Memory { time, working_set_bytes: Some(working_set), ..Default::default() });
        let container = |name: &str, usage| ContainerSample {
            id: format!("id-{name}"),
            name: name.into(),
            start_time: 1_796_184_899 * S + 848_770_421,
            cpu: cpu(1_796_184_900 * S + 919_206_204, usage),
            memory: memory(1_796_184_900 * S + 919_206_204, 507_904),
            ..Default::default()
        };
        Sample {
            node: NodeSample {
                boot_time: 1_764_650_000 * S,
                cpu: cpu(1_796_184_901 * S, 32_910_498_296_491),
                memory: memory(1_796_184_901 * S, 13_106_937_856),
                swap: Some(Swap { time: 1_796_184_901 * S, usage_bytes: Some(0), available_bytes: None }),
                fs: None,
            },
            pods: vec![PodSample {
                name: "web-node-a".into(),
                namespace: "default".into(),
                uid: "u1".into(),
                // Containers are printed by name whatever their order here.
                containers: vec![container("sidecar", 1_500_000_000), container("app", 3_032_522_498)],
                cpu: cpu(1_796_184_900 * S + 943_136_232, 3_054_325_107),
                memory: memory(1_796_184_900 * S + 943_136_232, 1_052_672),
                ..Default::default()
            }],
        }
    }

    #[test]
    fn a_sample_is_rendered_as_kubelets_resource_metrics() {
        let expected = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="default",pod="web-node-a"} 3.032522498 1796184900919
container_cpu_usage_seconds_total{container="sidecar",namespace="default",pod="web-node-a"} 1.5 1796184900919
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="app",namespace="default",pod="web-node-a"} 507904 1796184900919
container_memory_working_set_bytes{container="sidecar",namespace="default",pod="web-node-a"} 507904 1796184900919
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="app",namespace="default",pod="web-node-a"} 1.7961848998487704e+09
container_start_time_seconds{container="sidecar",namespace="default",pod="web-node-a"} 1.7961848998487704e+09
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 32910.498296491 1796184901000
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1.3106937856e+10 1796184901000
# HELP node_swap_usage_bytes [ALPHA] Current swap usage of the node in bytes. Reported only on non-windows systems
# TYPE node_swap_usage_bytes gauge
node_swap_usage_bytes 0 1796184901000
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="default",pod="web-node-a"} 3.054325107 1796184900943
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace="default",pod="web-node-a"} 1.052672e+06 1796184900943
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
"#;
        assert_eq!(resource_metrics(&sample()), expected);
    }

    #[test]
    fn a_node_without_pods_has_only_node_families_and_the_scrape_error() {
        let mut sample = sample();
        sample.pods.clear();
        sample.node.swap = None;
        let text = resource_metrics(&sample);
        let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
        assert_eq!(
            names,
            [
                "node_cpu_usage_seconds_total counter",
                "node_memory_working_set_bytes gauge",
                "resource_scrape_error gauge"
            ]
        );
    }

    #[test]
    fn swap_is_printed_where_the_runtime_reports_it_with_available_plus_used_as_the_limit() {
        let mut sample = sample();
        let swap = Swap { time: 2 * S, usage_bytes: Some(100), available_bytes: Some(900) };
        sample.pods[0].containers[0].swap = Some(swap);
        sample.pods[0].swap = Some(swap);
        let text = resource_metrics(&sample);
        assert!(text.contains("\ncontainer_swap_limit_bytes{container=\"sidecar\",namespace=\"default\",pod=\"web-node-a\"} 1000 2000\n"), "{text}");
        assert!(text.contains("\ncontainer_swap_usage_bytes{container=\"sidecar\",namespace=\"default\",pod=\"web-node-a\"} 100 2000\n"), "{text}");
        assert!(text.contains("\npod_swap_usage_bytes{namespace=\"default\",pod=\"web-node-a\"} 100 2000\n"), "{text}");
        assert!(
            !text.contains("container=\"app\",namespace=\"default\",pod=\"web-node-a\"} 0"),
            "no zeros for the container without swap"
        );
    }

    #[test]
    fn deprecated_scrape_error_is_hidden_as_kubelet_1_35_hides_it() {
        assert!(!resource_metrics(&sample()).contains("\nscrape_error"));
        assert_eq!(
            resource_metrics_failed(),
            "# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise\n\
             # TYPE resource_scrape_error gauge\nresource_scrape_error 1\n"
        );
    }

    #[test]
    fn label_values_are_escaped_and_a_start_time_at_the_epoch_is_left_out() {
        assert_eq!(labels(&[("pod", "a\"b\\c\nd")]), r#"{pod="a\"b\\c\nd"}"#);
        let mut sample = sample();
        sample.pods[0].containers[0].start_time = 0;
        let text = resource_metrics(&sample);
        assert_eq!(text.matches("container_start_time_seconds{").count(), 1, "{text}");
    }
}
