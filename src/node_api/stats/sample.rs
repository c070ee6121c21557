//! Which pods and containers a sample holds, and their readings from the runtime's stats, by
//! kubelet's rules (its CRI stats provider): a pod's ready sandbox (the newest one if none is
//! ready), its running containers, and a pod only once one of them has stats. Pure.
//!
//! The runtime's usageNanoCores is ignored: containerd computes it against whatever call came
//! before, from any client (`crictl stats` included), and says 0 on its first; `Rates` computes
//! our own from the cumulative counter, as cAdvisor does for kubelet.

use std::collections::{BTreeMap, HashMap};

use super::{ContainerSample, Cpu, Fs, Interface, Memory, Network, PodSample, Swap, UnixNanos};
use crate::cri::{ContainerState, RuntimePod, api};

/// The filesystem of a writable layer's mountpoint, asked once per sample.
#[derive(Default)]
pub(super) struct FsCache(HashMap<String, Option<Fs>>);

impl FsCache {
    pub(super) fn get(&mut self, mountpoint: &str, time: UnixNanos) -> Option<Fs> {
        *self.0.entry(mountpoint.to_owned()).or_insert_with(|| super::node::statvfs(mountpoint.as_ref(), time))
    }
}

/// The pods of `runtime` with their readings; `fs_of(mountpoint, time)` sizes a filesystem.
pub(super) fn pods(
    runtime: &BTreeMap<String, RuntimePod>,
    container_stats: Vec<api::ContainerStats>,
    sandbox_stats: Vec<api::PodSandboxStats>,
    fs_of: &mut dyn FnMut(&str, UnixNanos) -> Option<Fs>,
) -> Vec<PodSample> {
    let mut containers: HashMap<String, api::ContainerStats> =
        container_stats.into_iter().filter_map(|s| Some((s.attributes.as_ref()?.id.clone(), s))).collect();
    let sandboxes: HashMap<String, api::LinuxPodSandboxStats> =
        sandbox_stats.into_iter().filter_map(|s| Some((s.attributes?.id, s.linux?))).collect();
    let mut pods = Vec::new();
    for pod in runtime.values() {
        let Some(sandbox) = pod.ready_sandbox().or_else(|| pod.latest_sandbox()) else { continue };
        let mut samples: Vec<ContainerSample> = pod
            .containers
            .iter()
            .filter(|c| c.sandbox_id == sandbox.id && c.state == ContainerState::Running)
            .filter_map(|c| {
                let stats = containers.remove(&c.id)?;
                Some(container(c.id.clone(), c.name.clone(), c.created_at, stats, fs_of))
            })
            .collect();
        if samples.is_empty() {
            continue;
        }
        samples.sort_by(|a, b| a.name.cmp(&b.name));
        let linux = sandboxes.get(&sandbox.id);
        let cpu = linux.and_then(|l| l.cpu.as_ref()).map(cpu).or_else(|| sum_cpu(&samples));
        let memory = linux.and_then(|l| l.memory.as_ref()).map(memory).or_else(|| sum_memory(&samples));
        pods.push(PodSample {
            name: pod.name.clone(),
            namespace: pod.namespace.clone(),
            uid: pod.uid.clone(),
            sandbox_id: sandbox.id.clone(),
            start_time: sandbox.created_at,
            cpu,
            memory,
            swap: sum_swap(&samples),
            network: linux.and_then(|l| network(l.network.as_ref()?, cpu.map_or(0, |c| c.time))),
            process_count: linux.and_then(|l| value(&l.process.as_ref()?.process_count)),
            containers: samples,
        });
    }
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    pods
}

fn container(
    id: String,
    name: String,
    created_at: UnixNanos,
    stats: api::ContainerStats,
    fs_of: &mut dyn FnMut(&str, UnixNanos) -> Option<Fs>,
) -> ContainerSample {
    let rootfs = stats.writable_layer.as_ref().map(|layer| {
        let size = layer.fs_id.as_ref().and_then(|id| fs_of(&id.mountpoint, layer.timestamp)).unwrap_or_default();
        Fs {
            time: layer.timestamp,
            used_bytes: value(&layer.used_bytes),
            inodes_used: value(&layer.inodes_used),
            ..size
        }
    });
    ContainerSample {
        id,
        name,
        start_time: created_at,
        cpu: stats.cpu.as_ref().map(cpu),
        memory: stats.memory.as_ref().map(memory),
        swap: stats.swap.as_ref().map(|s| Swap {
            time: s.timestamp,
            usage_bytes: value(&s.swap_usage_bytes),
            available_bytes: value(&s.swap_available_bytes),
        }),
        rootfs,
    }
}

fn value(v: &Option<api::UInt64Value>) -> Option<u64> {
    v.as_ref().map(|v| v.value)
}

fn cpu(c: &api::CpuUsage) -> Cpu {
    Cpu { time: c.timestamp, usage_core_nano_seconds: value(&c.usage_core_nano_seconds), usage_nano_cores: None }
}

/// containerd says availableBytes 0 for a cgroup without a limit; cAdvisor (and so kubelet)
/// leaves it out.
fn memory(m: &api::MemoryUsage) -> Memory {
    Memory {
        time: m.timestamp,
        available_bytes: value(&m.available_bytes).filter(|b| *b > 0),
        usage_bytes: value(&m.usage_bytes),
        working_set_bytes: value(&m.working_set_bytes),
        rss_bytes: value(&m.rss_bytes),
        page_faults: value(&m.page_faults),
        major_page_faults: value(&m.major_page_faults),
    }
}

/// containerd 1.6 stamps the network reading 0; it is taken with the pod's CPU reading.
fn network(n: &api::NetworkUsage, fallback_time: UnixNanos) -> Option<Network> {
    let interface = |i: &api::NetworkInterfaceUsage| Interface {
        name: i.name.clone(),
        rx_bytes: value(&i.rx_bytes),
        rx_errors: value(&i.rx_errors),
        tx_bytes: value(&i.tx_bytes),
        tx_errors: value(&i.tx_errors),
    };
    let default = n.default_interface.as_ref().map(interface);
    let mut interfaces: Vec<Interface> = n.interfaces.iter().map(interface).collect();
    // cAdvisor lists every interface, the default one included; containerd lists only the others.
    if let Some(d) = &default
        && !interfaces.iter().any(|i| i.name == d.name)
    {
        interfaces.insert(0, d.clone());
    }
    if default.is_none() && interfaces.is_empty() {
        return None;
    }
    Some(Network { time: if n.timestamp > 0 { n.timestamp } else { fallback_time }, default, interfaces })
}

/// kubelet's sum for a pod without sandbox stats: missing values count as 0, the time is the
/// last container's.
fn sum_cpu(containers: &[ContainerSample]) -> Option<Cpu> {
    let readings: Vec<&Cpu> = containers.iter().filter_map(|c| c.cpu.as_ref()).collect();
    let last = readings.last()?;
    Some(Cpu {
        time: last.time,
        usage_core_nano_seconds: Some(readings.iter().filter_map(|c| c.usage_core_nano_seconds).sum()),
        usage_nano_cores: None,
    })
}

fn sum_memory(containers: &[ContainerSample]) -> Option<Memory> {
    let readings: Vec<&Memory> = containers.iter().filter_map(|c| c.memory.as_ref()).collect();
    let last = readings.last()?;
    let sum = |field: fn(&Memory) -> Option<u64>| Some(readings.iter().filter_map(|m| field(m)).sum());
    Some(Memory {
        time: last.time,
        available_bytes: sum(|m| m.available_bytes),
        usage_bytes: sum(|m| m.usage_bytes),
        working_set_bytes: sum(|m| m.working_set_bytes),
        rss_bytes: sum(|m| m.rss_bytes),
        page_faults: sum(|m| m.page_faults),
        major_page_faults: sum(|m| m.major_page_faults),
    })
}

/// Only where the runtime reports containers' swap (containerd 1.6 does not).
fn sum_swap(containers: &[ContainerSample]) -> Option<Swap> {
    let readings: Vec<&Swap> = containers.iter().filter_map(|c| c.swap.as_ref()).collect();
    let first = readings.first()?;
    Some(Swap {
        time: first.time,
        usage_bytes: Some(readings.iter().filter_map(|s| s.usage_bytes).sum()),
        available_bytes: Some(readings.iter().filter_map(|s| s.available_bytes).sum()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::{ContainerInfo, SandboxInfo};

    fn sandbox(id: &str, ready: bool, created_at: i64) -> SandboxInfo {
        SandboxInfo { id: id.into(), attempt: 0, ready, created_at, annotations: Default::default() }
    }

    fn container(id: &str, sandbox: &str, name: &str, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            sandbox_id: sandbox.into(),
            name: name.into(),
            state,
            created_at: 50,
            restart_count: 0,
            image_ref: String::new(),
        }
    }

    fn pod(uid: &str, name: &str, sandboxes: Vec<SandboxInfo>, containers: Vec<ContainerInfo>) -> (String, RuntimePod) {
        let pod =
            RuntimePod { uid: uid.into(), name: name.into(), namespace: "kube-system".into(), sandboxes, containers };
        (uid.into(), pod)
    }

    fn usage(cpu_ns: u64, working_set: u64) -> (Option<api::CpuUsage>, Option<api::MemoryUsage>) {
        let v = |value| Some(api::UInt64Value { value });
        let cpu = api::CpuUsage { timestamp: 1000, usage_core_nano_seconds: v(cpu_ns), usage_nano_cores: v(0) };
        let memory = api::MemoryUsage {
            timestamp: 1000,
            working_set_bytes: v(working_set),
            available_bytes: v(0),
            usage_bytes: v(working_set + 1),
            rss_bytes: v(7),
            page_faults: v(3),
            major_page_faults: v(0),
        };
        (Some(cpu), Some(memory))
    }

    fn container_stats(id: &str, cpu_ns: u64, working_set: u64) -> api::ContainerStats {
        let (cpu, memory) = usage(cpu_ns, working_set);
        let attributes = api::ContainerAttributes { id: id.into(), ..Default::default() };
        let layer = api::FilesystemUsage {
            timestamp: 900,
            fs_id: Some(api::FilesystemIdentifier { mountpoint: "/var/lib/containerd/overlay".into() }),
            used_bytes: Some(api::UInt64Value { value: 20480 }),
            inodes_used: Some(api::UInt64Value { value: 8 }),
        };
        api::ContainerStats { attributes: Some(attributes), cpu, memory, writable_layer: Some(layer), swap: None }
    }

    fn no_fs(_: &str, _: UnixNanos) -> Option<Fs> {
        None
    }

    #[test]
    fn a_pod_is_its_ready_sandbox_and_running_containers_named_as_its_mirror() {
        let runtime = BTreeMap::from([pod(
            "uid-1",
            "etcd-node-a",
            vec![sandbox("old", false, 1), sandbox("new", true, 2)],
            vec![
                container("c-old", "old", "etcd", ContainerState::Exited),
                container("c-exited", "new", "init", ContainerState::Exited),
                container("c-new", "new", "etcd", ContainerState::Running),
            ],
        )]);
        let stats = vec![
            container_stats("c-old", 5, 5),
            container_stats("c-exited", 6, 6),
            container_stats("c-new", 300, 4096),
        ];
        let pods = pods(&runtime, stats, vec![], &mut no_fs);
        assert_eq!(pods.len(), 1);
        let p = &pods[0];
        assert_eq!((p.name.as_str(), p.namespace.as_str(), p.uid.as_str()), ("etcd-node-a", "kube-system", "uid-1"));
        assert_eq!((p.sandbox_id.as_str(), p.start_time), ("new", 2));
        let names: Vec<&str> = p.containers.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(names, ["c-new"], "only the running container of the ready sandbox");
        let c = &p.containers[0];
        assert_eq!((c.name.as_str(), c.start_time), ("etcd", 50), "startTime is the creation time");
        assert_eq!(c.cpu.unwrap().usage_core_nano_seconds, Some(300));
        assert_eq!(c.cpu.unwrap().usage_nano_cores, None, "the runtime's rate is not taken");
        let memory = c.memory.unwrap();
        assert_eq!((memory.working_set_bytes, memory.usage_bytes, memory.rss_bytes), (Some(4096), Some(4097), Some(7)));
        assert_eq!(memory.available_bytes, None, "containerd's 0 for no limit");
        let rootfs = c.rootfs.unwrap();
        assert_eq!(
            (rootfs.time, rootfs.used_bytes, rootfs.inodes_used, rootfs.capacity_bytes),
            (900, Some(20480), Some(8), None)
        );
    }

    #[test]
    fn pod_usage_is_the_sandbox_cgroups_else_the_sum_of_its_containers() {
        let runtime = BTreeMap::from([
            pod(
                "a",
                "with-sandbox-stats",
                vec![sandbox("sa", true, 1)],
                vec![container("ca", "sa", "c", ContainerState::Running)],
            ),
            pod(
                "b",
                "summed",
                vec![sandbox("sb", true, 1)],
                vec![
                    container("cb1", "sb", "x", ContainerState::Running),
                    container("cb2", "sb", "y", ContainerState::Running),
                ],
            ),
        ]);
        let (cpu, memory) = usage(1000, 2000);
        let network = api::NetworkUsage {
            timestamp: 0,
            default_interface: Some(api::NetworkInterfaceUsage {
                name: "eth0".into(),
                rx_bytes: Some(api::UInt64Value { value: 1096 }),
                ..Default::default()
            }),
            interfaces: vec![],
        };
        let linux = api::LinuxPodSandboxStats { cpu, memory, network: Some(network), ..Default::default() };
        let sandbox_stats = vec![api::PodSandboxStats {
            attributes: Some(api::PodSandboxAttributes { id: "sa".into(), ..Default::default() }),
            linux: Some(linux),
            windows: None,
        }];
        let stats = vec![container_stats("ca", 10, 10), container_stats("cb1", 100, 1), container_stats("cb2", 200, 2)];
        let pods = pods(&runtime, stats, sandbox_stats, &mut no_fs);
        let (a, b) = (&pods[1], &pods[0]);
        assert_eq!((a.name.as_str(), b.name.as_str()), ("with-sandbox-stats", "summed"), "sorted by name");
        assert_eq!(a.cpu.unwrap().usage_core_nano_seconds, Some(1000), "the pod cgroup's, pause included");
        assert_eq!(a.memory.unwrap().working_set_bytes, Some(2000));
        let net = a.network.as_ref().unwrap();
        assert_eq!((net.time, net.interfaces.len(), net.default.as_ref().unwrap().rx_bytes), (1000, 1, Some(1096)));
        assert_eq!(b.cpu.unwrap().usage_core_nano_seconds, Some(300), "no sandbox stats: the containers' sum");
        assert_eq!(b.memory.unwrap().working_set_bytes, Some(3));
        assert_eq!(b.memory.unwrap().page_faults, Some(6));
    }

    #[test]
    fn a_pod_without_a_running_container_with_stats_is_left_out() {
        let runtime = BTreeMap::from([
            pod("a", "exited", vec![sandbox("sa", true, 1)], vec![container("ca", "sa", "c", ContainerState::Exited)]),
            pod(
                "b",
                "no-stats-yet",
                vec![sandbox("sb", true, 1)],
                vec![container("cb", "sb", "c", ContainerState::Running)],
            ),
            pod("c", "no-sandbox", vec![], vec![]),
        ]);
        assert_eq!(pods(&runtime, vec![container_stats("ca", 1, 1)], vec![], &mut no_fs), vec![]);
    }

    #[test]
    fn rootfs_takes_its_filesystems_size() {
        let runtime = BTreeMap::from([pod(
            "a",
            "p",
            vec![sandbox("s", true, 1)],
            vec![container("c", "s", "c", ContainerState::Running)],
        )]);
        let mut asked = Vec::new();
        let mut fs_of = |mountpoint: &str, time| {
            asked.push(mountpoint.to_owned());
            Some(Fs {
                time,
                capacity_bytes: Some(1 << 30),
                available_bytes: Some(1 << 29),
                used_bytes: Some(1),
                ..Default::default()
            })
        };
        let pods = pods(&runtime, vec![container_stats("c", 1, 1)], vec![], &mut fs_of);
        let rootfs = pods[0].containers[0].rootfs.unwrap();
        assert_eq!(asked, ["/var/lib/containerd/overlay"]);
        assert_eq!((rootfs.capacity_bytes, rootfs.available_bytes), (Some(1 << 30), Some(1 << 29)));
        assert_eq!(rootfs.used_bytes, Some(20480), "the layer's own usage, not the filesystem's");
    }
}
