//! Crash consistency against the real runtime: a churn workload (pods added, edited, removed,
//! containers killed) while staticlet is killed with SIGKILL at random moments, including in the
//! middle of carrying a change out. After each restart the runtime must hold exactly the desired
//! pods: one ready sandbox with one running container each, no orphan, no duplicate, no pod the
//! change did not touch restarted, restart counts right.
//!
//! `STATICLET_CHAOS_KILLS` (default 10, the bounded run of `hack/test`; `hack/chaos` runs 100)
//! and `STATICLET_CHAOS_SEED` set the run; it prints the counts and the convergence times.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use common::*;
use staticlet::cri::api::{ContainerState, PodSandboxState};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1) as u64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    Add,
    Edit,
    Remove,
    KillContainer,
    Nothing,
}

fn pod(name: &str, version: u32) -> String {
    shell_pod(name, &format!("trap 'exit 0' TERM; echo v{version}; while true; do sleep 1; done"), "")
}

/// One pod as the runtime holds it: ready sandbox and running container ids.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    sandbox: String,
    container: String,
}

/// What the runtime holds for this node, by pod name, or why it is not converged yet.
fn held(node: &str, desired: &BTreeSet<String>) -> Result<BTreeMap<String, Held>, String> {
    let sandboxes = block_on(async { runtime().list_sandboxes(&[("staticlet.io/node", node)]).await })
        .map_err(|e| e.to_string())?;
    let mut held = BTreeMap::new();
    for sandbox in &sandboxes {
        let name = sandbox.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let short = name.strip_suffix(&format!("-{node}")).unwrap_or(&name).to_owned();
        if sandbox.state != PodSandboxState::SandboxReady as i32 {
            return Err(format!("a sandbox not ready is left: {name}"));
        }
        if !desired.contains(&short) {
            return Err(format!("an orphan sandbox: {name}"));
        }
        let uid = sandbox.metadata.as_ref().map(|m| m.uid.clone()).unwrap_or_default();
        let running: Vec<String> = runtime_containers(&uid)
            .into_iter()
            .filter(|c| c.pod_sandbox_id == sandbox.id && c.state == ContainerState::ContainerRunning as i32)
            .map(|c| c.id)
            .collect();
        if running.len() != 1 {
            return Err(format!("{name}: {} running containers", running.len()));
        }
        if held.insert(short.clone(), Held { sandbox: sandbox.id.clone(), container: running[0].clone() }).is_some() {
            return Err(format!("a duplicate pod: {name}"));
        }
    }
    if let Some(missing) = desired.iter().find(|p| !held.contains_key(*p)) {
        return Err(format!("{missing} does not run"));
    }
    Ok(held)
}

#[test]
fn sigkill_at_random_moments_of_a_churn_loses_nothing_and_restarts_nothing_needlessly() {
    let _serial = serial();
    let kills: usize = std::env::var("STATICLET_CHAOS_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let seed: u64 = std::env::var("STATICLET_CHAOS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    }) | 1;
    println!("chaos seed {seed}, {kills} kills; replay with STATICLET_CHAOS_SEED={seed}");
    let mut rng = Rng(seed);
    let mut daemon = Daemon::new("chaos");
    // Versions of the pods on disk, by name.
    let mut desired: BTreeMap<String, u32> = (0..3).map(|i| (format!("p{i}"), 1)).collect();
    for (name, version) in &desired {
        daemon.write_manifest(&format!("{name}.yaml"), &pod(name, *version));
    }
    daemon.start();
    let names = |d: &BTreeMap<String, u32>| d.keys().cloned().collect::<BTreeSet<_>>();
    let converge = |daemon: &Daemon, desired: &BTreeSet<String>| -> BTreeMap<String, Held> {
        let mut last = String::new();
        wait_for(Duration::from_secs(90), || match held(&daemon.node, desired) {
            Ok(held) if desired.iter().all(|p| daemon.pod(p).is_some_and(|v| v.status == "Running")) => Some(held),
            Ok(_) => {
                last = "status not Running yet".into();
                None
            }
            Err(why) => {
                last = why;
                None
            }
        })
        .unwrap_or_else(|| panic!("not converged after 90 s: {last}\n--- staticlet log ---\n{}", daemon.log()))
    };
    let mut before = converge(&daemon, &names(&desired));
    let mut restarts: BTreeMap<String, u32> = desired.keys().map(|p| (p.clone(), 0)).collect();
    let (mut next_pod, mut counts, mut times) = (3, BTreeMap::<Change, usize>::new(), Vec::new());
    let mut needless = 0;
    for round in 0..kills {
        let change = match rng.below(5) {
            0 => Change::Add,
            1 => Change::Edit,
            2 if desired.len() > 1 => Change::Remove,
            // Twice a pod at most: the crash-loop back-off doubles after each restart.
            3 => Change::KillContainer,
            _ => Change::Nothing,
        };
        let target = match change {
            Change::Add => {
                next_pod += 1;
                format!("p{next_pod}")
            }
            _ => desired.keys().nth(rng.below(desired.len())).unwrap().clone(),
        };
        let change = if change == Change::KillContainer && restarts[&target] >= 2 { Change::Nothing } else { change };
        match change {
            Change::Add => {
                desired.insert(target.clone(), 1);
                restarts.insert(target.clone(), 0);
                daemon.write_manifest(&format!("{target}.yaml"), &pod(&target, 1));
            }
            Change::Edit => {
                let version = desired.get_mut(&target).unwrap();
                *version += 1;
                restarts.insert(target.clone(), 0);
                daemon.write_manifest(&format!("{target}.yaml"), &pod(&target, *version));
            }
            Change::Remove => {
                desired.remove(&target);
                restarts.remove(&target);
                std::fs::remove_file(daemon.manifests.join(format!("{target}.yaml"))).unwrap();
            }
            Change::KillContainer => {
                let id = before[&target].container.clone();
                block_on(async { runtime().stop_container(&id, Duration::ZERO).await }).unwrap();
                *restarts.get_mut(&target).unwrap() += 1;
            }
            Change::Nothing => {}
        }
        // Kill it while it carries the change out, or before it has even seen it.
        std::thread::sleep(Duration::from_millis(rng.below(1500) as u64));
        daemon.crash();
        daemon.start();
        let restarted = Instant::now();
        let after = converge(&daemon, &names(&desired));
        times.push(restarted.elapsed());
        // And it stays so: nothing is restarted a moment later either.
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            held(&daemon.node, &names(&desired)).as_ref(),
            Ok(&after),
            "round {round}: not stable\n{}",
            daemon.log()
        );
        *counts.entry(change).or_default() += 1;
        for (name, held) in &after {
            let touched = *name == target;
            if !touched && before.get(name).is_some_and(|b| b != held) {
                needless += 1;
                println!(
                    "round {round} ({change:?} {target}): {name} was restarted needlessly: {:?} -> {held:?}",
                    before[name]
                );
            }
            let view = daemon.pod(name).unwrap();
            assert_eq!(
                view.restarts,
                restarts[name],
                "round {round} ({change:?} {target}): {name}'s restart count\n{}",
                daemon.log()
            );
        }
        before = after;
    }
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let max = times.last().copied().unwrap_or_default();
    println!(
        "chaos: {kills} SIGKILLs ({counts:?}); converged after each restart in median {:.2} s, max {:.2} s; pods lost 0, duplicates 0, orphans 0, needless restarts {needless}",
        median.as_secs_f64(),
        max.as_secs_f64()
    );
    assert_eq!(needless, 0, "no pod the change did not touch is restarted");
}
