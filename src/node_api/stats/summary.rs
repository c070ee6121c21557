//! kubelet's `/stats/summary` (statsapi v1alpha1 `Summary`), field names and omissions as its
//! JSON has them: times in RFC 3339 to the second (metav1.Time), absent readings left out.
//! Not filled (staticlet does not measure them): the node's system containers, runtime image
//! filesystem and rlimit, pods' volumes and ephemeral storage, containers' logs.

use serde::Serialize;

use super::{ContainerSample, Cpu, Fs, Interface, Memory, Network, PodSample, Sample, Swap, UnixNanos};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    pub start_time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<SwapStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodReference,
    pub start_time: Time,
    pub containers: Vec<ContainerStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    #[serde(rename = "process_stats", skip_serializing_if = "Option::is_none")]
    pub process_stats: Option<ProcessStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<SwapStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<SwapStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_faults: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major_page_faults: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_free: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_used: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwapStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_usage_bytes: Option<u64>,
}

/// The default interface's counters inline, every interface listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkStats {
    pub time: Time,
    #[serde(flatten)]
    pub default: InterfaceStats,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceStats {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_errors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_errors: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_count: Option<u64>,
}

/// A point in time as metav1.Time writes it: UTC, whole seconds (`2026-12-02T04:14:39Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub UnixNanos);

impl Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let seconds = self.0.div_euclid(1_000_000_000);
        let text = jiff::Timestamp::from_second(seconds)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

/// `sample` as kubelet's summary of node `node_name`.
pub fn summary(sample: &Sample, node_name: &str) -> Summary {
    let node = &sample.node;
    Summary {
        node: NodeStats {
            node_name: node_name.to_owned(),
            start_time: Time(node.boot_time),
            cpu: node.cpu.as_ref().map(cpu),
            memory: node.memory.as_ref().map(memory),
            fs: node.fs.as_ref().map(fs),
            swap: node.swap.as_ref().map(swap),
        },
        pods: sample.pods.iter().map(pod).collect(),
    }
}

fn pod(p: &PodSample) -> PodStats {
    PodStats {
        pod_ref: PodReference { name: p.name.clone(), namespace: p.namespace.clone(), uid: p.uid.clone() },
        start_time: Time(p.start_time),
        containers: p.containers.iter().map(container).collect(),
        cpu: p.cpu.as_ref().map(cpu),
        memory: p.memory.as_ref().map(memory),
        network: p.network.as_ref().map(network),
        process_stats: p.process_count.map(|count| ProcessStats { process_count: Some(count) }),
        swap: p.swap.as_ref().map(swap),
    }
}

fn container(c: &ContainerSample) -> ContainerStats {
    ContainerStats {
        name: c.name.clone(),
        start_time: Time(c.start_time),
        cpu: c.cpu.as_ref().map(cpu),
        memory: c.memory.as_ref().map(memory),
        rootfs: c.rootfs.as_ref().map(fs),
        swap: c.swap.as_ref().map(swap),
    }
}

fn cpu(c: &Cpu) -> CpuStats {
    CpuStats {
        time: Time(c.time),
        usage_nano_cores: c.usage_nano_cores,
        usage_core_nano_seconds: c.usage_core_nano_seconds,
    }
}

fn memory(m: &Memory) -> MemoryStats {
    MemoryStats {
        time: Time(m.time),
        available_bytes: m.available_bytes,
        usage_bytes: m.usage_bytes,
        working_set_bytes: m.working_set_bytes,
        rss_bytes: m.rss_bytes,
        page_faults: m.page_faults,
        major_page_faults: m.major_page_faults,
    }
}

fn fs(f: &Fs) -> FsStats {
    FsStats {
        time: Time(f.time),
        available_bytes: f.available_bytes,
        capacity_bytes: f.capacity_bytes,
        used_bytes: f.used_bytes,
        inodes_free: f.inodes_free,
        inodes: f.inodes,
        inodes_used: f.inodes_used,
    }
}

fn swap(s: &Swap) -> SwapStats {
    SwapStats { time: Time(s.time), swap_available_bytes: s.available_bytes, swap_usage_bytes: s.usage_bytes }
}

fn network(n: &Network) -> NetworkStats {
    NetworkStats {
        time: Time(n.time),
        default: n.default.as_ref().map(interface).unwrap_or_default(),
        interfaces: n.interfaces.iter().map(interface).collect(),
    }
}

fn interface(i: &Interface) -> InterfaceStats {
    InterfaceStats {
        name: i.name.clone(),
        rx_bytes: i.rx_bytes,
        rx_errors: i.rx_errors,
        tx_bytes: i.tx_bytes,
        tx_errors: i.tx_errors,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::node_api::stats::NodeSample;

    const S: UnixNanos = 1_000_000_000;

    #[test]
    fn a_sample_reads_as_kubelets_summary_json() {
        let cpu = Cpu {
            time: 1_796_184_900 * S + 919_206_204,
            usage_core_nano_seconds: Some(3_032_522_498),
            usage_nano_cores: Some(972_059_835),
        };
        let memory = Some(Memory {
            time: 1_796_184_900 * S,
            working_set_bytes: Some(507_904),
            usage_bytes: Some(507_904),
            rss_bytes: Some(57_344),
            page_faults: Some(841),
            major_page_faults: Some(0),
            available_bytes: None,
        });
        let sample = Sample {
            node: NodeSample {
                boot_time: 1_764_650_000 * S,
                cpu: Some(Cpu { usage_nano_cores: None, ..cpu }),
                memory,
                swap: None,
                fs: Some(Fs {
                    time: 1_796_184_900 * S,
                    capacity_bytes: Some(100),
                    available_bytes: Some(40),
                    ..Default::default()
                }),
            },
            pods: vec![PodSample {
                name: "web-node-a".into(),
                namespace: "default".into(),
                uid: "8d3b".into(),
                sandbox_id: "sb".into(),
                start_time: 1_796_184_899 * S + 500_000_000,
                containers: vec![ContainerSample {
                    id: "c".into(),
                    name: "web".into(),
                    start_time: 1_796_184_899 * S + 848_770_421,
                    cpu: Some(cpu),
                    memory,
                    ..Default::default()
                }],
                cpu: Some(cpu),
                memory,
                process_count: Some(1),
                ..Default::default()
            }],
        };
        let expected = json!({
            "node": {
                "nodeName": "node-a",
                "startTime": "2025-12-02T04:33:20Z",
                "cpu": {"time": "2026-12-02T04:15:00Z", "usageCoreNanoSeconds": 3032522498u64},
                "memory": {"time": "2026-12-02T04:15:00Z", "usageBytes": 507904, "workingSetBytes": 507904, "rssBytes": 57344, "pageFaults": 841, "majorPageFaults": 0},
                "fs": {"time": "2026-12-02T04:15:00Z", "availableBytes": 40, "capacityBytes": 100},
            },
            "pods": [{
                "podRef": {"name": "web-node-a", "namespace": "default", "uid": "8d3b"},
                "startTime": "2026-12-02T04:14:59Z",
                "containers": [{
                    "name": "web",
                    "startTime": "2026-12-02T04:14:59Z",
                    "cpu": {"time": "2026-12-02T04:15:00Z", "usageNanoCores": 972059835, "usageCoreNanoSeconds": 3032522498u64},
                    "memory": {"time": "2026-12-02T04:15:00Z", "usageBytes": 507904, "workingSetBytes": 507904, "rssBytes": 57344, "pageFaults": 841, "majorPageFaults": 0},
                }],
                "cpu": {"time": "2026-12-02T04:15:00Z", "usageNanoCores": 972059835, "usageCoreNanoSeconds": 3032522498u64},
                "memory": {"time": "2026-12-02T04:15:00Z", "usageBytes": 507904, "workingSetBytes": 507904, "rssBytes": 57344, "pageFaults": 841, "majorPageFaults": 0},
                "process_stats": {"process_count": 1},
            }],
        });
        assert_eq!(serde_json::to_value(summary(&sample, "node-a")).unwrap(), expected);
    }

    #[test]
    fn network_has_the_default_interface_inline_and_every_interface_listed() {
        let eth0 = Interface { name: "eth0".into(), rx_bytes: Some(1096), tx_bytes: Some(472), ..Default::default() };
        let network = Network { time: 0, default: Some(eth0.clone()), interfaces: vec![eth0] };
        assert_eq!(
            serde_json::to_value(super::network(&network)).unwrap(),
            json!({"time": "1970-01-01T00:00:00Z", "name": "eth0", "rxBytes": 1096, "txBytes": 472,
                   "interfaces": [{"name": "eth0", "rxBytes": 1096, "txBytes": 472}]})
        );
    }

    #[test]
    fn times_are_whole_utc_seconds_truncated() {
        let text = |ns| serde_json::to_string(&Time(ns)).unwrap();
        assert_eq!(text(0), "\"1970-01-01T00:00:00Z\"");
        assert_eq!(text(1_796_184_899_999_999_999), "\"2026-12-02T04:14:59Z\"");
    }
}
