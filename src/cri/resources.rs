//! Requests and limits as kubelet v1.35 turns them into cgroup settings. Pure: quantities are
//! parsed here, the QoS class is computed here (for the CRI configs and the mirror's status
//! alike), and the host facts the formulas need come in as a `Host`.
//!
//! Sources, all in kubernetes v1.35.8:
//! - `apimachinery/pkg/api/resource` (quantity grammar; sub-unit values round up);
//! - `pkg/apis/core/v1/defaults.go` `SetDefaults_Pod` (a limit without a request is the request);
//! - `pkg/apis/core/v1/helper/qos/qos.go` `ComputePodQOS`;
//! - `pkg/kubelet/cm/helpers_linux.go` (`MilliCPUToShares`, `MilliCPUToQuota`, `ResourceConfigForPod`);
//! - `pkg/kubelet/kuberuntime/kuberuntime_container_linux.go` (`calculateLinuxResources`,
//!   `GetHugepageLimitsFromResources`) and `kuberuntime_sandbox_linux.go` (sandbox resources);
//! - `pkg/kubelet/qos/policy.go` `GetContainerOOMScoreAdjust`;
//! - `pkg/kubelet/cm/pod_container_manager_linux.go` and `cgroup_manager_linux.go` (cgroup names).

use std::collections::{BTreeMap, BTreeSet};

use k8s_cri::v1::{HugepageLimit, LinuxContainerResources};
use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::host::{Host, hugepage_size_name};

/// apimachinery's words for a quantity that does not scan (`ErrFormatWrong`)...
pub const QUANTITY_FORMAT: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// ... and for one whose suffix is not a unit (`ErrSuffix`).
pub const QUANTITY_SUFFIX: &str = "unable to parse quantity's suffix";

/// A Kubernetes quantity, held exactly in billionths (the API rounds finer values up to the
/// nano), so `1` and `1000m` are equal and `0.5Gi` is exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity {
    nanos: i128,
}

impl Quantity {
    /// apimachinery's `ParseQuantity`: `[+-]<digits>[.<digits>]<suffix>`, the suffix one of
    /// `n u m k M G T P E`, `Ki Mi Gi Ti Pi Ei`, an exponent `e<n>`/`E<n>` (`1e3`), or nothing
    /// (units). Its scanner's leniencies are kept: empty digits read as 0 (`.`, `Mi`), `1.G` is 1G.
    pub fn parse(text: &str) -> Result<Self, String> {
        let too_large = || format!("{text:?} is too large");
        if text.is_empty() {
            return Err(QUANTITY_FORMAT.into());
        }
        let (negative, rest) = match text.as_bytes()[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (int, rest) = rest.split_at(digits(rest));
        let (frac, suffix) = match rest.strip_prefix('.') {
            Some(after) => after.split_at(digits(after)),
            None => ("", rest),
        };
        // The suffix scan: unit letters, then an optional sign and digits, then nothing.
        let letters = suffix.find(|c: char| !"eEinumkKMGTP".contains(c)).unwrap_or(suffix.len());
        let tail = suffix[letters..].strip_prefix(['+', '-']).unwrap_or(&suffix[letters..]);
        if tail.bytes().any(|b| !b.is_ascii_digit()) {
            return Err(QUANTITY_FORMAT.into());
        }
        let (exp10, exp2): (i32, u32) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            s if s.len() > 1 && s.starts_with(['e', 'E']) => {
                (s[1..].parse::<i32>().map_err(|_| QUANTITY_SUFFIX.to_owned())?, 0)
            }
            _ => return Err(QUANTITY_SUFFIX.into()),
        };
        let mut mantissa: i128 = 0;
        for digit in int.bytes().chain(frac.bytes()) {
            mantissa =
                mantissa.checked_mul(10).and_then(|m| m.checked_add(i128::from(digit - b'0'))).ok_or_else(too_large)?;
        }
        let scaled = mantissa.checked_mul(1i128 << exp2).ok_or_else(too_large)?;
        let power = i64::from(exp10) + 9 - frac.len() as i64;
        let nanos = if scaled == 0 {
            0
        } else if power >= 0 {
            let factor = u32::try_from(power).ok().and_then(|p| 10i128.checked_pow(p)).ok_or_else(too_large)?;
            scaled.checked_mul(factor).ok_or_else(too_large)?
        } else {
            match u32::try_from(-power).ok().and_then(|p| 10i128.checked_pow(p)) {
                Some(divisor) => ceil_div(scaled, divisor),
                None => 1, // finer than a nano: rounds up to one
            }
        };
        Ok(Self { nanos: if negative { -nanos } else { nanos } })
    }

    /// In thousandths, rounded up (`MilliValue`): `250m` -> 250, `0.1` -> 100, `1n` -> 1.
    pub fn milli(self) -> i64 {
        saturate(ceil_div(self.nanos, 1_000_000))
    }

    /// In units, rounded up (`Value`): `64Mi` -> 67108864, `0.5` -> 1.
    pub fn value(self) -> i64 {
        saturate(ceil_div(self.nanos, 1_000_000_000))
    }

    pub fn is_positive(self) -> bool {
        self.nanos > 0
    }

    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }
}

impl std::ops::Add for Quantity {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self { nanos: self.nanos.saturating_add(other.nanos) }
    }
}

impl std::str::FromStr for Quantity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

fn ceil_div(n: i128, d: i128) -> i128 {
    n / d + i128::from(n % d > 0)
}

fn saturate(n: i128) -> i64 {
    n.clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

/// A container's requests and limits, parsed, with `SetDefaults_Pod` applied: a resource with a
/// limit and no request is requested at its limit (the API server does this for every pod, and
/// kubelet's file source decodes static pods through the same defaulting). Quantities that do
/// not parse are left out (validation refuses them before a pod gets here).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub requests: BTreeMap<String, Quantity>,
    pub limits: BTreeMap<String, Quantity>,
}

impl Resources {
    pub fn of(container: &Container) -> Self {
        let resources = container.resources.as_ref();
        let written = |list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
            list.into_iter().flatten().map(|(name, q)| (name.clone(), Quantity::parse(&q.0))).collect::<Vec<_>>()
        };
        let limits = written(resources.and_then(|r| r.limits.as_ref()));
        let mut requests = written(resources.and_then(|r| r.requests.as_ref()));
        for (name, limit) in &limits {
            if !requests.iter().any(|(n, _)| n == name) {
                requests.push((name.clone(), limit.clone()));
            }
        }
        let parsed = |list: Vec<(String, Result<Quantity, String>)>| {
            list.into_iter().filter_map(|(name, q)| Some((name, q.ok()?))).collect()
        };
        Self { requests: parsed(requests), limits: parsed(limits) }
    }

    pub fn request(&self, name: &str) -> Option<Quantity> {
        self.requests.get(name).copied()
    }

    pub fn limit(&self, name: &str) -> Option<Quantity> {
        self.limits.get(name).copied()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guaranteed => "Guaranteed",
            Self::Burstable => "Burstable",
            Self::BestEffort => "BestEffort",
        }
    }
}

/// `ComputePodQOS`: BestEffort when no container requests or limits any cpu or memory;
/// Guaranteed when every container limits both and the pod's summed requests equal its summed
/// limits; Burstable otherwise. Only positive cpu and memory quantities count.
pub fn qos(spec: &PodSpec) -> QosClass {
    let mut requests: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    let counted = |name: &str, q: &Quantity| (name == "cpu" || name == "memory") && q.is_positive();
    for container in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        let resources = Resources::of(container);
        for (name, q) in resources.requests.iter().filter(|(n, q)| counted(n, q)) {
            let sum = requests.entry(name.clone()).or_default();
            *sum = *sum + *q;
        }
        let mut found = BTreeSet::new();
        for (name, q) in resources.limits.iter().filter(|(n, q)| counted(n, q)) {
            found.insert(name.as_str());
            let sum = limits.entry(name.clone()).or_default();
            *sum = *sum + *q;
        }
        if !(found.contains("cpu") && found.contains("memory")) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed && requests.len() == limits.len() && requests.iter().all(|(name, q)| limits.get(name) == Some(q)) {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

pub const SYSTEM_NODE_CRITICAL: &str = "system-node-critical";
/// CFS period kubelet always sets (100 ms, `cm.QuotaPeriod`).
pub const QUOTA_PERIOD: i64 = 100_000;
const MIN_QUOTA: i64 = 1_000;
const MIN_SHARES: i64 = 2;
const MAX_SHARES: i64 = 262_144;
const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
const BESTEFFORT_OOM_SCORE_ADJ: i64 = 1000;

/// `MilliCPUToShares`: 1024 per CPU, at least 2 (also for no request at all), at most 262144.
pub fn milli_cpu_to_shares(milli_cpu: i64) -> i64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    (milli_cpu.saturating_mul(1024) / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// `MilliCPUToQuota`: 0 (no quota) without a limit, else `milliCPU * period / 1000`, at least 1 ms.
pub fn milli_cpu_to_quota(milli_cpu: i64, period: i64) -> i64 {
    if milli_cpu <= 0 {
        return 0;
    }
    (milli_cpu.saturating_mul(period) / 1000).max(MIN_QUOTA)
}

/// `GetContainerOOMScoreAdjust`. Static pods are critical pods to kubelet, so one with
/// `priorityClassName: system-node-critical` (kubeadm's control plane) is node-critical: -997,
/// like Guaranteed. BestEffort 1000. Burstable `1000 - 1000 * memoryRequest / capacity`, kept
/// within 3..=999 so it stays above Guaranteed and below BestEffort.
pub fn oom_score_adj(spec: &PodSpec, container: &Container, memory_capacity: i64) -> i64 {
    if spec.priority_class_name.as_deref() == Some(SYSTEM_NODE_CRITICAL) {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match qos(spec) {
        QosClass::Guaranteed => GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => BESTEFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {
            let request = Resources::of(container).request("memory").map_or(0, Quantity::value);
            let adj = if memory_capacity > 0 {
                1000 - (1000 * i128::from(request) / i128::from(memory_capacity)) as i64
            } else {
                BESTEFFORT_OOM_SCORE_ADJ
            };
            adj.clamp(1000 + GUARANTEED_OOM_SCORE_ADJ, BESTEFFORT_OOM_SCORE_ADJ - 1)
        }
    }
}

/// `calculateLinuxResources`: shares from the cpu request (from the limit if there is no
/// request, 2 with neither), the 100 ms period always, the quota from the cpu limit, and the
/// memory limit.
fn linux_resources(
    cpu_request: Option<Quantity>,
    cpu_limit: Option<Quantity>,
    memory_limit: Option<Quantity>,
) -> LinuxContainerResources {
    let shares_from = cpu_request.or(cpu_limit).map_or(0, Quantity::milli);
    LinuxContainerResources {
        cpu_period: QUOTA_PERIOD,
        cpu_quota: milli_cpu_to_quota(cpu_limit.map_or(0, Quantity::milli), QUOTA_PERIOD),
        cpu_shares: milli_cpu_to_shares(shares_from),
        memory_limit_in_bytes: memory_limit.map_or(0, Quantity::value).max(0),
        ..Default::default()
    }
}

/// The container's `LinuxContainerResources`, as kubelet's `generateLinuxContainerResources`
/// makes them on cgroup v1 (no swap, no MemoryQoS).
pub fn container_resources(spec: &PodSpec, container: &Container, host: &Host) -> LinuxContainerResources {
    let resources = Resources::of(container);
    LinuxContainerResources {
        oom_score_adj: oom_score_adj(spec, container, host.memory_capacity),
        hugepage_limits: hugepage_limits(&resources.limits, &host.hugepage_sizes),
        ..linux_resources(resources.request("cpu"), resources.limit("cpu"), resources.limit("memory"))
    }
}

/// `GetHugepageLimitsFromResources`: every page size the host has gets a limit, 0 unless the
/// container limits `hugepages-<size>`; sizes the host lacks are dropped.
pub fn hugepage_limits(limits: &BTreeMap<String, Quantity>, host_sizes: &[String]) -> Vec<HugepageLimit> {
    let mut out: Vec<HugepageLimit> =
        host_sizes.iter().map(|size| HugepageLimit { page_size: size.clone(), limit: 0 }).collect();
    for (name, limit) in limits {
        let Some(size) = name.strip_prefix("hugepages-").and_then(|s| Quantity::parse(s).ok()) else { continue };
        let page_size = hugepage_size_name(size.value().max(0) as u64);
        if let Some(entry) = out.iter_mut().find(|l| l.page_size == page_size) {
            entry.limit = limit.value().max(0) as u64;
        }
    }
    out
}

/// The pod's summed requests and limits (`resourcehelper.PodRequests` / `PodLimits` without
/// init containers, which staticlet refuses): overhead is added to every request and to the
/// limits that are set and non-zero.
fn pod_totals(spec: &PodSpec, with_overhead: bool) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let (mut requests, mut limits) = (BTreeMap::<String, Quantity>::new(), BTreeMap::<String, Quantity>::new());
    for container in &spec.containers {
        let resources = Resources::of(container);
        for (list, add) in [(&mut requests, &resources.requests), (&mut limits, &resources.limits)] {
            for (name, q) in add {
                let sum = list.entry(name.clone()).or_default();
                *sum = *sum + *q;
            }
        }
    }
    if with_overhead {
        for (name, q) in overhead(spec) {
            let sum = requests.entry(name.clone()).or_default();
            *sum = *sum + q;
            if let Some(limit) = limits.get_mut(&name).filter(|l| **l != Quantity::default()) {
                *limit = *limit + q;
            }
        }
    }
    (requests, limits)
}

fn overhead(spec: &PodSpec) -> BTreeMap<String, Quantity> {
    let parse = |(name, q): (&String, &k8s_openapi::apimachinery::pkg::api::resource::Quantity)| {
        Some((name.clone(), Quantity::parse(&q.0).ok()?))
    };
    spec.overhead.iter().flatten().filter_map(parse).collect()
}

/// `calculateSandboxResources` (the sandbox's `resources`: the containers' sums, overhead
/// excluded) and `convertOverheadToLinuxResources` (its `overhead`, requests = limits).
pub fn sandbox_resources(spec: &PodSpec) -> (LinuxContainerResources, LinuxContainerResources) {
    let (requests, limits) = pod_totals(spec, false);
    let resources =
        linux_resources(requests.get("cpu").copied(), limits.get("cpu").copied(), limits.get("memory").copied());
    let overhead = overhead(spec);
    let overhead = if spec.overhead.is_some() {
        let cpu = overhead.get("cpu").copied().unwrap_or_default();
        linux_resources(Some(cpu), Some(cpu), overhead.get("memory").copied())
    } else {
        LinuxContainerResources::default()
    };
    (resources, overhead)
}

/// What kubelet writes into a pod's own cgroup (`ResourceConfigForPod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCgroup {
    pub cpu_shares: i64,
    /// `(quota, period)` in microseconds, when the pod's cpu is limited.
    pub cpu_quota: Option<(i64, i64)>,
    pub memory_limit: Option<i64>,
}

/// `ResourceConfigForPod` with cfs quota enforced: Guaranteed pods get the summed shares, quota
/// and memory limit; Burstable ones the shares, and the quota or memory limit only when every
/// container declares that limit; BestEffort ones 2 shares and nothing else.
pub fn pod_cgroup(spec: &PodSpec) -> PodCgroup {
    let (requests, limits) = pod_totals(spec, true);
    let declared = |name: &str| {
        spec.containers.iter().all(|c| Resources::of(c).limit(name).is_some_and(|q| q != Quantity::default()))
    };
    let shares = milli_cpu_to_shares(requests.get("cpu").map_or(0, |q| q.milli()));
    let quota = (milli_cpu_to_quota(limits.get("cpu").map_or(0, |q| q.milli()), QUOTA_PERIOD), QUOTA_PERIOD);
    let memory = limits.get("memory").map_or(0, |q| q.value());
    match qos(spec) {
        QosClass::Guaranteed => PodCgroup { cpu_shares: shares, cpu_quota: Some(quota), memory_limit: Some(memory) },
        QosClass::Burstable => PodCgroup {
            cpu_shares: shares,
            cpu_quota: declared("cpu").then_some(quota),
            memory_limit: declared("memory").then_some(memory),
        },
        QosClass::BestEffort => PodCgroup { cpu_shares: MIN_SHARES, cpu_quota: None, memory_limit: None },
    }
}

/// The runtime's cgroup driver, which decides how a cgroup parent is spelt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

/// containerd's cgroup driver, from the `config` JSON its verbose CRI `Status` returns: the
/// default runtime's `options.SystemdCgroup` (false or absent: cgroupfs). None for a runtime
/// other than runc's shim, or a config of another shape.
pub fn cgroup_driver_of_containerd_config(config: &serde_json::Value) -> Option<CgroupDriver> {
    let containerd = config.get("containerd")?;
    let name = containerd.get("defaultRuntimeName")?.as_str()?;
    let runtime = containerd.get("runtimes")?.get(name)?;
    if !runtime.get("runtimeType")?.as_str()?.starts_with("io.containerd.runc.") {
        return None;
    }
    let systemd = runtime.get("options").and_then(|o| o.get("SystemdCgroup")).and_then(serde_json::Value::as_bool);
    Some(if systemd == Some(true) { CgroupDriver::Systemd } else { CgroupDriver::Cgroupfs })
}

/// Where this node puts a pod's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodCgroups {
    /// No cgroup parent: the runtime's default place (containerd: `/k8s.io/<id>`), where the
    /// runtime's driver is unknown, or cgroupfs on cgroup v2 (staticlet writes no pod-level
    /// values there yet, and a pod cgroup without them would weigh every pod alike).
    RuntimeDefault,
    /// kubelet's `/kubepods/...`, cgroupfs on cgroup v1; staticlet writes the pod's values
    /// (`pod_cgroup::ensure`).
    Cgroupfs,
    /// kubelet's slices; systemd creates them on demand with its default weights (staticlet does
    /// not talk to systemd). A systemd-driven runc needs a slice parent to run a pod at all.
    Systemd,
}

pub fn pod_cgroups(driver: Option<CgroupDriver>, cgroup_v2: bool) -> PodCgroups {
    match driver {
        Some(CgroupDriver::Systemd) => PodCgroups::Systemd,
        Some(CgroupDriver::Cgroupfs) if !cgroup_v2 => PodCgroups::Cgroupfs,
        _ => PodCgroups::RuntimeDefault,
    }
}

impl PodCgroups {
    /// The sandbox's `cgroup_parent` ("" for the runtime's default).
    pub fn parent(self, spec: &PodSpec, uid: &str) -> String {
        match self {
            Self::RuntimeDefault => String::new(),
            Self::Cgroupfs => pod_cgroup_parent(CgroupDriver::Cgroupfs, qos(spec), uid),
            Self::Systemd => pod_cgroup_parent(CgroupDriver::Systemd, qos(spec), uid),
        }
    }
}

/// kubelet's pod cgroup with `--cgroups-per-qos` and cgroup root `/`: `/kubepods/pod<uid>`
/// (Guaranteed), `/kubepods/burstable/pod<uid>`, `/kubepods/besteffort/pod<uid>` with cgroupfs;
/// with systemd the same path as slices, `-` in the UID escaped as `_`
/// (`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice`).
pub fn pod_cgroup_parent(driver: CgroupDriver, qos: QosClass, uid: &str) -> String {
    let tier = match qos {
        QosClass::Guaranteed => None,
        QosClass::Burstable => Some("burstable"),
        QosClass::BestEffort => Some("besteffort"),
    };
    let pod = format!("pod{uid}");
    match driver {
        CgroupDriver::Cgroupfs => match tier {
            Some(tier) => format!("/kubepods/{tier}/{pod}"),
            None => format!("/kubepods/{pod}"),
        },
        CgroupDriver::Systemd => {
            let mut parts = vec!["kubepods".to_owned()];
            parts.extend(tier.map(str::to_owned));
            parts.push(pod.replace('-', "_"));
            let mut path = String::new();
            for i in 0..parts.len() {
                path.push_str(&format!("/{}.slice", parts[..=i].join("-")));
            }
            path
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn quantities_parse_as_the_api_does() {
        for (text, milli, value) in [
            ("1", 1000, 1),
            ("1000m", 1000, 1),
            ("250m", 250, 1),
            ("0.5", 500, 1),
            (".5", 500, 1),
            ("1.", 1000, 1),
            ("+2", 2000, 2),
            ("1e3", 1_000_000, 1000),
            ("1E3", 1_000_000, 1000),
            ("1e-3", 1, 1),
            ("1.5e+2", 150_000, 150),
            ("128Mi", (128 << 20) * 1000, 128 << 20),
            ("1Gi", 1000 << 30, 1 << 30),
            ("0.5Gi", 500 << 30, 1 << 29),
            ("100M", 100_000_000_000, 100_000_000),
            ("1k", 1_000_000, 1000),
            ("2Ki", 2_048_000, 2048),
            ("1E", i64::MAX, 1_000_000_000_000_000_000),
            ("1u", 1, 1),
            ("1n", 1, 1),
            ("1.G", 1_000_000_000_000, 1_000_000_000),
            ("0.1n", 1, 1),
            ("007", 7000, 7),
            ("0", 0, 0),
            ("-1", -1000, -1),
            ("-250m", -250, 0),
        ] {
            let parsed = q(text);
            assert_eq!((parsed.milli(), parsed.value()), (milli, value), "{text}");
        }
        assert_eq!(q("128Mi").milli(), (128i64 << 20) * 1000);
    }

    #[test]
    fn equal_quantities_compare_equal_whatever_their_spelling() {
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1k"), q("1e3"));
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert!(q("600m") > q("0.5"));
        assert!(q("1M") < q("1Mi"));
        assert_eq!(q("250m") + q("750m"), q("1"));
    }

    #[test]
    fn malformed_quantities_are_refused_with_apimachinerys_words() {
        for text in ["", "abc", "1.2.3", "1Mb", "1 Gi", "1e3.5", "0x10", "1.5.", "1m "] {
            assert_eq!(Quantity::parse(text), Err(QUANTITY_FORMAT.to_owned()), "{text:?}");
        }
        for text in ["1ki", "1e", "1e+", "--1", "1Mi2", "1mm", "1K"] {
            assert_eq!(Quantity::parse(text), Err(QUANTITY_SUFFIX.to_owned()), "{text:?}");
        }
        // The scanner's leniencies: no digits at all is zero.
        for text in [".", "Mi", "e3", "-", "+0.0"] {
            assert_eq!(Quantity::parse(text), Ok(Quantity::default()), "{text:?}");
        }
        assert!(Quantity::parse("1e40").unwrap_err().contains("too large"));
        assert!(Quantity::parse("99999999999999999999999999999999999999999").unwrap_err().contains("too large"));
    }

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let list = |items: &[(&str, &str)]| {
            (!items.is_empty()).then(|| {
                items
                    .iter()
                    .map(|(k, v)| {
                        (k.to_string(), k8s_openapi::apimachinery::pkg::api::resource::Quantity(v.to_string()))
                    })
                    .collect()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements { requests: list(requests), limits: list(limits), claims: None }),
            ..Default::default()
        }
    }

    fn spec(containers: Vec<Container>) -> PodSpec {
        PodSpec { containers, ..Default::default() }
    }

    #[test]
    fn requests_default_to_limits() {
        let r = Resources::of(&container(&[("cpu", "100m")], &[("cpu", "1"), ("memory", "64Mi")]));
        assert_eq!(r.request("cpu"), Some(q("100m")), "a written request stays");
        assert_eq!(r.request("memory"), Some(q("64Mi")), "an unwritten one is the limit");
    }

    #[test]
    fn qos_classes() {
        let none = container(&[], &[]);
        let equal = container(&[("cpu", "1"), ("memory", "1Gi")], &[("cpu", "1000m"), ("memory", "1024Mi")]);
        let limits_only = container(&[], &[("cpu", "500m"), ("memory", "64Mi")]);
        let burst = container(&[("cpu", "250m")], &[("cpu", "500m"), ("memory", "64Mi")]);
        let memory_only = container(&[], &[("memory", "64Mi")]);
        let zero = container(&[("cpu", "0")], &[("memory", "0")]);
        let hugepages_only = container(&[], &[("hugepages-2Mi", "4Mi")]);
        for (containers, class) in [
            (vec![none.clone()], QosClass::BestEffort),
            (vec![zero], QosClass::BestEffort),
            (vec![hugepages_only], QosClass::BestEffort),
            (vec![equal.clone()], QosClass::Guaranteed),
            (vec![limits_only.clone()], QosClass::Guaranteed),
            (vec![equal.clone(), limits_only], QosClass::Guaranteed),
            (vec![burst], QosClass::Burstable),
            (vec![memory_only], QosClass::Burstable),
            (vec![equal, none], QosClass::Burstable),
        ] {
            assert_eq!(qos(&spec(containers.clone())), class, "{containers:?}");
        }
    }

    #[test]
    fn shares_and_quota_follow_kubelets_helpers() {
        for (milli, shares) in
            [(0, 2), (1, 2), (250, 256), (500, 512), (1000, 1024), (1500, 1536), (10_000_000, 262_144)]
        {
            assert_eq!(milli_cpu_to_shares(milli), shares, "{milli}m");
        }
        for (milli, quota) in [(0, 0), (1, 1000), (10, 1000), (250, 25_000), (500, 50_000), (2000, 200_000)] {
            assert_eq!(milli_cpu_to_quota(milli, QUOTA_PERIOD), quota, "{milli}m");
        }
    }

    const GIB: i64 = 1 << 30;

    fn host() -> Host {
        Host {
            memory_capacity: 16 * GIB,
            hugepage_sizes: vec!["2MB".into(), "1GB".into()],
            cpus: 2,
            apparmor: false,
            thermal_throttle_paths: vec![],
            cgroup_v2: false,
        }
    }

    #[test]
    fn container_resources_of_the_issue_example() {
        let c = container(&[("cpu", "250m")], &[("cpu", "500m"), ("memory", "64Mi")]);
        let r = container_resources(&spec(vec![c.clone()]), &c, &host());
        assert_eq!(
            (r.cpu_shares, r.cpu_period, r.cpu_quota, r.memory_limit_in_bytes),
            (256, 100_000, 50_000, 64 << 20)
        );
        // Burstable, 64Mi of 16Gi requested (defaulted from the limit): 1000 - 3 = 997.
        assert_eq!(r.oom_score_adj, 997);
        let pages: Vec<(&str, u64)> = r.hugepage_limits.iter().map(|l| (l.page_size.as_str(), l.limit)).collect();
        assert_eq!(pages, [("2MB", 0), ("1GB", 0)], "every host page size is limited to 0");
    }

    #[test]
    fn no_resources_means_two_shares_and_no_quota_or_memory_limit() {
        let c = container(&[], &[]);
        let r = container_resources(&spec(vec![c.clone()]), &c, &host());
        assert_eq!((r.cpu_shares, r.cpu_period, r.cpu_quota, r.memory_limit_in_bytes), (2, 100_000, 0, 0));
        assert_eq!(r.oom_score_adj, 1000);
    }

    #[test]
    fn hugepage_limits_fill_the_host_sizes_they_name() {
        let c = container(
            &[("memory", "1Gi")],
            &[("hugepages-2Mi", "128Mi"), ("hugepages-16Mi", "32Mi"), ("memory", "1Gi")],
        );
        let pages: Vec<(String, u64)> = hugepage_limits(&Resources::of(&c).limits, &host().hugepage_sizes)
            .into_iter()
            .map(|l| (l.page_size, l.limit))
            .collect();
        assert_eq!(pages, [("2MB".into(), 128 << 20), ("1GB".into(), 0)], "16Mi pages: not on this host");
    }

    #[test]
    fn oom_score_adj_per_qos_and_priority_class() {
        let capacity = 16 * GIB;
        let guaranteed = container(&[], &[("cpu", "1"), ("memory", "1Gi")]);
        let besteffort = container(&[], &[]);
        let burstable = |memory: &str| container(&[("cpu", "100m"), ("memory", memory)], &[]);
        let adj = |c: &Container| oom_score_adj(&spec(vec![c.clone()]), c, capacity);
        assert_eq!(adj(&guaranteed), -997);
        assert_eq!(adj(&besteffort), 1000);
        assert_eq!(adj(&burstable("1Gi")), 1000 - 1000 / 16, "1/16 of memory: 938");
        assert_eq!(adj(&burstable("8Gi")), 500);
        assert_eq!(adj(&burstable("16Gi")), 3, "at least 3, above Guaranteed's 1000-997");
        assert_eq!(adj(&burstable("32Gi")), 3);
        assert_eq!(adj(&burstable("1")), 999, "never 1000, below BestEffort");
        let cpu_only = container(&[("cpu", "100m")], &[]);
        assert_eq!(adj(&cpu_only), 999, "Burstable without a memory request");
        assert_eq!(oom_score_adj(&spec(vec![cpu_only.clone()]), &cpu_only, 0), 999, "unknown capacity");

        // kubeadm's control plane: Burstable, but system-node-critical.
        let mut critical = spec(vec![cpu_only.clone()]);
        critical.priority_class_name = Some(SYSTEM_NODE_CRITICAL.into());
        critical.priority = Some(2_000_001_000);
        assert_eq!(oom_score_adj(&critical, &cpu_only, capacity), -997);
        // A priority alone does not make a pod node-critical (`IsNodeCriticalPod` reads the class).
        let mut cluster_critical = spec(vec![cpu_only.clone()]);
        cluster_critical.priority_class_name = Some("system-cluster-critical".into());
        cluster_critical.priority = Some(2_000_000_000);
        assert_eq!(oom_score_adj(&cluster_critical, &cpu_only, capacity), 999);
        let mut best = spec(vec![besteffort.clone()]);
        best.priority_class_name = Some(SYSTEM_NODE_CRITICAL.into());
        assert_eq!(oom_score_adj(&best, &besteffort, capacity), -997);
    }

    #[test]
    fn pod_cgroup_values_per_qos() {
        let guaranteed = container(&[], &[("cpu", "500m"), ("memory", "64Mi")]);
        let burst = container(&[("cpu", "250m")], &[("cpu", "500m"), ("memory", "64Mi")]);
        let cpu_only = container(&[("cpu", "100m")], &[]);
        let pc = |containers: Vec<Container>| pod_cgroup(&spec(containers));
        assert_eq!(
            pc(vec![guaranteed.clone(), guaranteed.clone()]),
            PodCgroup { cpu_shares: 1024, cpu_quota: Some((100_000, 100_000)), memory_limit: Some(128 << 20) }
        );
        assert_eq!(
            pc(vec![burst.clone()]),
            PodCgroup { cpu_shares: 256, cpu_quota: Some((50_000, 100_000)), memory_limit: Some(64 << 20) }
        );
        assert_eq!(
            pc(vec![burst, cpu_only.clone()]),
            PodCgroup { cpu_shares: 358, cpu_quota: None, memory_limit: None },
            "a container without limits: the pod has none"
        );
        assert_eq!(pc(vec![container(&[], &[])]), PodCgroup { cpu_shares: 2, cpu_quota: None, memory_limit: None });

        let mut with_overhead = spec(vec![guaranteed]);
        with_overhead.overhead = Some(
            [("cpu", "100m"), ("memory", "16Mi")]
                .map(|(k, v)| (k.to_string(), k8s_openapi::apimachinery::pkg::api::resource::Quantity(v.into())))
                .into(),
        );
        assert_eq!(
            pod_cgroup(&with_overhead),
            PodCgroup { cpu_shares: 614, cpu_quota: Some((60_000, 100_000)), memory_limit: Some(80 << 20) }
        );
        let (resources, overhead) = sandbox_resources(&with_overhead);
        assert_eq!(
            (resources.cpu_shares, resources.cpu_quota, resources.memory_limit_in_bytes),
            (512, 50_000, 64 << 20)
        );
        assert_eq!((overhead.cpu_shares, overhead.cpu_quota, overhead.memory_limit_in_bytes), (102, 10_000, 16 << 20));
        let (_, none) = sandbox_resources(&spec(vec![cpu_only]));
        assert_eq!(none, LinuxContainerResources::default());
    }

    #[test]
    fn cgroup_parents_per_qos_and_driver() {
        use CgroupDriver::*;
        let uid = "6f1c0e3d-aaaa";
        for (driver, class, parent) in [
            (Cgroupfs, QosClass::Guaranteed, "/kubepods/pod6f1c0e3d-aaaa"),
            (Cgroupfs, QosClass::Burstable, "/kubepods/burstable/pod6f1c0e3d-aaaa"),
            (Cgroupfs, QosClass::BestEffort, "/kubepods/besteffort/pod6f1c0e3d-aaaa"),
            (Systemd, QosClass::Guaranteed, "/kubepods.slice/kubepods-pod6f1c0e3d_aaaa.slice"),
            (
                Systemd,
                QosClass::Burstable,
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1c0e3d_aaaa.slice",
            ),
            (
                Systemd,
                QosClass::BestEffort,
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6f1c0e3d_aaaa.slice",
            ),
        ] {
            assert_eq!(pod_cgroup_parent(driver, class, uid), parent);
        }
    }

    #[test]
    fn cgroup_driver_from_containerd_config() {
        let config = |name: &str, kind: &str, options: serde_json::Value| {
            serde_json::json!({"containerd": {"defaultRuntimeName": name,
                "runtimes": {"runc": {"runtimeType": kind, "options": options}}}})
        };
        let runc = "io.containerd.runc.v2";
        for (value, driver) in [
            (config("runc", runc, serde_json::json!({"SystemdCgroup": false})), Some(CgroupDriver::Cgroupfs)),
            (config("runc", runc, serde_json::json!({"SystemdCgroup": true})), Some(CgroupDriver::Systemd)),
            (config("runc", runc, serde_json::json!({})), Some(CgroupDriver::Cgroupfs)),
            (config("runc", runc, serde_json::Value::Null), Some(CgroupDriver::Cgroupfs)),
            (config("kata", runc, serde_json::json!({})), None),
            (config("runc", "io.containerd.kata.v2", serde_json::json!({})), None),
            (serde_json::json!({}), None),
        ] {
            assert_eq!(cgroup_driver_of_containerd_config(&value), driver, "{value}");
        }
        assert_eq!(pod_cgroups(Some(CgroupDriver::Cgroupfs), false), PodCgroups::Cgroupfs);
        assert_eq!(pod_cgroups(Some(CgroupDriver::Cgroupfs), true), PodCgroups::RuntimeDefault);
        assert_eq!(pod_cgroups(Some(CgroupDriver::Systemd), true), PodCgroups::Systemd);
        assert_eq!(pod_cgroups(None, false), PodCgroups::RuntimeDefault);
    }

    #[test]
    fn qos_reads_a_manifest() {
        let pod: Pod = serde_json::from_value(serde_json::json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "128Mi"}, "requests": {"cpu": "1000m"}}}
        ]}}))
        .unwrap();
        assert_eq!(qos(pod.spec.as_ref().unwrap()), QosClass::Guaranteed, "1 == 1000m, memory defaulted");
    }
}
