//! The static pod every benchmark runs: busybox on the host network (no CNI limit or cost in the
//! figures), a process that exits on SIGTERM (so a removal is not the grace period) and args that
//! carry a version (so an edit is a new pod to every system).

pub fn manifest(name: &str, bench: &str, version: u32) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{bench: {bench}}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {image}
    command: [sh, -c]
    args: [\"trap 'exit 0' TERM; sleep {seconds} & wait\"]
",
        image = super::common::image(),
        seconds = 3600 + version
    )
}
