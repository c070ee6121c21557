//! The wall clock stepped backwards and forwards under a running staticlet (an NTP correction, a
//! VM resumed, a dead RTC battery set right): crash-loop back-off keeps its length, probes keep
//! their period, config.seen stays what it was, because staticlet times them on the monotonic
//! clock. The step is staticlet's alone, through libfaketime (LD_PRELOAD; the monotonic clock is
//! left true, as a real step leaves it). The runtime keeps the true time, so after a step its
//! timestamps and staticlet's disagree by the step: the harder case of the two.

mod common;

use std::{
    path::PathBuf,
    thread::sleep,
    time::{Duration, Instant},
};

use common::*;
use staticlet::ops::view::PodView;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// The offset staticlet's wall clock runs at, re-read by libfaketime at most once a second.
struct WallClock {
    offset_file: PathBuf,
}

impl WallClock {
    fn step(&self, offset: &str) {
        std::fs::write(&self.offset_file, offset).unwrap();
        // libfaketime reads the file again after its one-second cache.
        sleep(Duration::from_millis(1500));
    }
}

fn daemon_with_a_wall_clock(test: &str) -> (Daemon, WallClock) {
    assert!(std::path::Path::new(LIBFAKETIME).exists(), "{LIBFAKETIME} is missing: apt-get install faketime");
    let mut d = Daemon::new(test);
    d.extra = vec!["--node-ip=127.0.0.1".into()];
    let offset_file = d.dir.path().join("wall-clock-offset");
    std::fs::write(&offset_file, "+0").unwrap();
    d.env = [
        ("LD_PRELOAD", LIBFAKETIME.to_owned()),
        ("FAKETIME_TIMESTAMP_FILE", path_str(&offset_file)),
        ("FAKETIME_CACHE_DURATION", "1".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        // File times stay the disk's: a step does not rewrite them.
        ("NO_FAKE_STAT", "1".into()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec();
    (d, WallClock { offset_file })
}

fn main_container(p: &PodView) -> &staticlet::ops::view::ContainerView {
    p.containers.first().expect("one container")
}

/// Exited after `restarts` restarts and now waiting out its back-off.
fn backing_off_after(restarts: u32) -> impl FnMut(&PodView) -> bool {
    move |p| main_container(p).restart_count == restarts && main_container(p).state != "Running"
}

fn seconds_behind_now(rfc3339: &str) -> i64 {
    let seen: jiff::Timestamp = rfc3339.parse().unwrap_or_else(|e| panic!("{rfc3339}: {e}"));
    jiff::Timestamp::now().as_second() - seen.as_second()
}

#[test]
fn a_stepped_wall_clock_neither_stretches_nor_skips_a_back_off_and_leaves_probes_and_config_seen_alone() {
    let _serial = serial();
    let (mut d, clock) = daemon_with_a_wall_clock("clock-steps");
    d.write_manifest("crashing.yaml", &shell_pod("crashing", "sleep 1; exit 1", ""));
    let probed = shell_pod("probed", "exec sleep 3600", "")
        + "    readinessProbe: {exec: {command: [\"true\"]}, periodSeconds: 1}\n    \
           livenessProbe: {exec: {command: [\"true\"]}, periodSeconds: 1, failureThreshold: 1}\n";
    d.write_manifest("probed.yaml", &probed);
    d.start();
    let before = d.wait_for_running("probed");
    let crashing_seen = d.wait_for_pod("crashing", "listed", |_| true).since;

    // The first restart is at once, the second 10 s after the exit. An hour back in the middle
    // of that wait: the runtime's exit time is an hour ahead of staticlet's clock now.
    d.wait_for_pod("crashing", "backing off after its first restart", backing_off_after(1));
    clock.step("-1h");
    d.wait_for_pod("crashing", "restarted after its 10 s back-off, not an hour later", |p| {
        main_container(p).restart_count >= 2
    });

    // A pod first seen now is stamped with the clock as it reads (kubelet's config.seen is wall
    // time too): this is also what shows the step took.
    d.write_manifest("late.yaml", &shell_pod("late", "exec sleep 3600", ""));
    let late = d.wait_for_running("late");
    let behind = seconds_behind_now(&late.since);
    assert!(
        (3500..3700).contains(&behind),
        "late's config.seen is {} ({behind} s behind): the step did not take",
        late.since
    );

    // An hour forward (two from where it stood) 20 s into the third wait: the runtime's exit time
    // now looks two hours old, which must not end the back-off early or forget its length.
    d.wait_for_pod("crashing", "backing off after its second restart", backing_off_after(2));
    clock.step("+1h");
    let stepped = Instant::now();
    while stepped.elapsed() < Duration::from_secs(5) {
        let now = d.pod("crashing").unwrap();
        assert_eq!(main_container(&now).restart_count, 2, "restarted before its 20 s back-off ended: {now:#?}");
        sleep(Duration::from_millis(200));
    }
    d.wait_for_pod("crashing", "restarted once its 20 s back-off ended", |p| main_container(p).restart_count >= 3);

    let after = d.wait_for_running("probed");
    assert_eq!(main_container(&after).id, main_container(&before).id, "the probes never failed: {after:#?}");
    assert_eq!(after.restarts, 0);
    assert_eq!(after.since, before.since, "config.seen is kept across the steps");
    assert_eq!(d.pod("crashing").unwrap().since, crashing_seen, "config.seen is kept across the steps");
}
