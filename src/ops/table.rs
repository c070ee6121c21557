//! The `staticlet get pods` table. Pure: a status in, text out.

use std::time::SystemTime;

use super::server::LocalStatus;
use crate::supervisor::status::human_age;

/// `staticlet get pods`: kubectl's columns, then the problems a user needs to see.
pub fn render_pods(status: &LocalStatus, now: SystemTime) -> String {
    if status.pods.is_empty() && status.manifest_errors.is_empty() && status.runtime_error.is_none() {
        return format!("No static pods on node {}.\n", status.node);
    }
    let mut rows =
        vec![["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "SOURCE"].map(String::from).to_vec()];
    for pod in &status.pods {
        // AGE is the running sandbox's age when there is one: config.seen restarts with staticlet.
        let age = pod
            .started
            .as_deref()
            .unwrap_or(&pod.since)
            .parse::<jiff::Timestamp>()
            .map(|t| human_age(SystemTime::from(t), now))
            .unwrap_or_else(|_| "?".into());
        rows.push(vec![
            pod.namespace.clone(),
            pod.name.clone(),
            pod.ready.clone(),
            pod.status.clone(),
            pod.restarts.to_string(),
            age,
            if pod.ip.is_empty() { "<host>".into() } else { pod.ip.clone() },
            pod.source.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    let mut notes: Vec<String> = Vec::new();
    if let Some(e) = &status.runtime_error {
        notes.push(format!("container runtime: {e}"));
    }
    for pod in &status.pods {
        if pod.manifest_error.is_some() {
            notes.push(format!("{}: manifest is broken; the last good version keeps running", pod.name));
        }
        if let Some(e) = &pod.mirror_error {
            notes.push(format!("{}: {e}", pod.name));
        }
        if let Some(e) = &pod.last_error {
            notes.push(format!("{}: {e}", pod.name));
        }
    }
    notes.extend(status.manifest_errors.iter().cloned());
    if !notes.is_empty() {
        out.push_str("\nPROBLEMS\n");
        for note in notes {
            out.push_str(&format!("  {note}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::view::PodView;

    fn view(name: &str, status: &str, started: Option<&str>) -> PodView {
        PodView {
            namespace: "default".into(),
            name: name.into(),
            uid: "u".into(),
            source: "file:/m/web.yaml".into(),
            ready: "1/1".into(),
            status: status.into(),
            restarts: 2,
            since: "2026-01-01T00:00:00Z".into(),
            ip: String::new(),
            started: started.map(Into::into),
            terminating: false,
            init_containers: vec![],
            containers: vec![],
            manifest_error: None,
            last_error: None,
            mirror_error: Some("no mirror pod: refused".into()),
            reason: None,
            message: None,
        }
    }

    #[test]
    fn table_has_kubectl_columns_age_from_the_sandbox_and_problems_below() {
        let status = LocalStatus {
            node: "n1".into(),
            runtime_endpoint: "unix:///run/c.sock".into(),
            runtime_error: None,
            pods: vec![view("web-n1", "Running", Some("2026-01-01T00:59:00Z"))],
            manifest_errors: vec!["/m/bad.yaml: empty manifest".into()],
        };
        let now = SystemTime::from("2026-01-01T01:00:00Z".parse::<jiff::Timestamp>().unwrap());
        let out = render_pods(&status, now);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "SOURCE"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["default", "web-n1", "1/1", "Running", "2", "60s", "<host>", "file:/m/web.yaml"]
        );
        assert!(out.contains("PROBLEMS\n  web-n1: no mirror pod: refused\n  /m/bad.yaml: empty manifest\n"), "{out}");
    }

    #[test]
    fn empty_node_says_so() {
        let status = LocalStatus {
            node: "n1".into(),
            runtime_endpoint: String::new(),
            runtime_error: None,
            pods: vec![],
            manifest_errors: vec![],
        };
        assert_eq!(render_pods(&status, SystemTime::now()), "No static pods on node n1.\n");
    }
}
