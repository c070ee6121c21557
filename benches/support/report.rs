//! What every benchmark prints and records: the samples of each (scenario, system) pair, summarised
//! as median, p90 and max, with a ratio to the scenario's baseline: the raw CRI floor where there is
//! one, staticlet otherwise. `finish` prints the table and, when `BENCH_OUT` names a directory,
//! writes `<bench>.json` there (hack/bench merges those files and draws the chart); with
//! `BENCH_TAG` (hack/bench's runtime, for a bench run on each) the bench is `<bench> [<tag>]`.
//!
//! Benchmarks print and record; nothing here asserts a timing.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};

pub const FLOOR: &str = "floor";
pub const STATICLET: &str = "staticlet";
pub const KUBELET: &str = "kubelet";

pub struct Report {
    bench: &'static str,
    context: serde_json::Map<String, Value>,
    rows: Vec<Row>,
}

struct Row {
    scenario: String,
    system: String,
    unit: &'static str,
    samples: Vec<f64>,
}

/// Median, p90 and max by nearest rank: with 10 samples p90 is the 9th smallest.
pub fn summary(samples: &[f64]) -> (f64, f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1];
    (at(0.5), at(0.9), sorted[sorted.len() - 1])
}

pub fn millis(samples: &[Duration]) -> Vec<f64> {
    samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect()
}

impl Report {
    pub fn new(bench: &'static str) -> Self {
        Self { bench, context: Default::default(), rows: vec![] }
    }

    /// A fact about the run (versions, settings) printed in the header and kept in the JSON.
    pub fn context(&mut self, key: &str, value: impl Into<Value>) {
        self.context.insert(key.into(), value.into());
    }

    pub fn latency(&mut self, scenario: &str, system: &str, samples: &[Duration]) {
        self.record(scenario, system, "ms", millis(samples));
    }

    pub fn record(&mut self, scenario: &str, system: &str, unit: &'static str, samples: Vec<f64>) {
        if samples.is_empty() {
            return;
        }
        self.rows.push(Row { scenario: scenario.into(), system: system.into(), unit, samples });
    }

    fn baseline(&self, scenario: &str, system: &str) -> Option<(&'static str, f64)> {
        let median = |of: &str| {
            self.rows.iter().find(|r| r.scenario == scenario && r.system == of).map(|r| summary(&r.samples).0)
        };
        match median(FLOOR) {
            Some(floor) if system != FLOOR => Some((FLOOR, floor)),
            Some(_) => None,
            None if system != STATICLET => median(STATICLET).map(|s| (STATICLET, s)),
            None => None,
        }
    }

    pub fn finish(self) {
        let tag = std::env::var("BENCH_TAG").ok().filter(|t| !t.is_empty());
        let bench = match &tag {
            Some(tag) => format!("{} [{tag}]", self.bench),
            None => self.bench.to_owned(),
        };
        println!("\n{bench}: {}", serde_json::to_string(&self.context).unwrap());
        println!(
            "{:<40} {:<10} {:>5} {:>12} {:>12} {:>12}  ratio (medians)",
            "scenario", "system", "runs", "median", "p90", "max"
        );
        let mut rows_json = vec![];
        for row in &self.rows {
            let (median, p90, max) = summary(&row.samples);
            let ratio = self
                .baseline(&row.scenario, &row.system)
                .filter(|(_, base)| *base > 0.0)
                .map(|(of, base)| (of, median / base));
            let ratio_text = ratio.map(|(of, r)| format!("{r:.2}x {of}")).unwrap_or_default();
            // CPU at rest is a few hundredths of a percent: one clock tick over 60 s is 0.017 %.
            let digits = if row.unit == "%" { 3 } else { 1 };
            println!(
                "{:<40} {:<10} {:>5} {:>12} {:>12} {:>12}  {ratio_text}",
                row.scenario,
                row.system,
                row.samples.len(),
                format!("{median:.digits$} {}", row.unit),
                format!("{p90:.digits$} {}", row.unit),
                format!("{max:.digits$} {}", row.unit),
            );
            rows_json.push(json!({
                "scenario": row.scenario, "system": row.system, "unit": row.unit,
                "median": median, "p90": p90, "max": max, "samples": row.samples,
                "baseline": ratio.map(|(of, _)| of), "ratio": ratio.map(|(_, r)| r),
            }));
        }
        if let Ok(dir) = std::env::var("BENCH_OUT") {
            let file = match &tag {
                Some(tag) => format!("{}-{tag}.json", self.bench),
                None => format!("{}.json", self.bench),
            };
            let path = std::path::Path::new(&dir).join(file);
            let doc = json!({ "bench": bench, "context": self.context, "rows": rows_json });
            std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
            println!("recorded in {}", path.display());
        }
    }
}
