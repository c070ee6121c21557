//! A bounded mutation fuzzer over everything a manifest passes through before a pod runs: the
//! parser, validation, identity, the Pod Security checks and the merge of sources. It runs on the
//! stable toolchain with no instrumentation, so it is not coverage-guided: it mutates the committed
//! corpus (tests/fuzz/corpus) at random, with a seed printed so a failure can be replayed.
//!
//! `STATICLET_FUZZ_ITERATIONS` (default 10000, the bounded run of `hack/test`) and
//! `STATICLET_FUZZ_SEED` (default: from the clock) set the run; it asserts that nothing panics and
//! that every refusal names the manifest.

use std::{collections::BTreeMap, time::Instant};

use staticlet::{
    desired::{Desired, Manifest, SourceSnapshot, merge},
    manifest::{Origin, SourceKind, parse_manifest},
    pod_security::{Level, evaluate},
};

/// xorshift64*: deterministic for a seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Pieces of YAML and JSON that make mutations land on syntax rather than noise.
const TOKENS: &[&str] = &[
    "\n",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "---\n",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "? ",
    "|\n  ",
    ">-\n  ",
    "\"",
    "'",
    "#",
    "\t",
    "\\u0000",
    "~",
    "null",
    "true",
    "1e999",
    "-1",
    "0x10",
    "9223372036854775808",
    "<<: *a\n",
    "kind: Pod\n",
    "apiVersion: v1\n",
    "items: ",
    "containers: ",
    "hostNetwork: true\n",
    "privileged: true",
    "hostPath: {path: /}",
    "\u{feff}",
    "\u{202e}",
    "é",
    "\u{10ffff}",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(8) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(7) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
            2 if !bytes.is_empty() => {
                let end = (at + rng.below(64)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            3 => bytes.truncate(at),
            4 => {
                // Splice in a piece of another seed.
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len());
                let to = (from + rng.below(256)).min(other.len());
                bytes.splice(at..at, other[from..to].iter().copied());
            }
            5 if !bytes.is_empty() => {
                // Repeat a span: long lists, deep nesting.
                let end = (at + rng.below(32)).min(bytes.len());
                let span = bytes[at.min(end)..end].to_vec();
                for _ in 0..rng.below(64) {
                    bytes.splice(at..at, span.iter().copied());
                }
            }
            _ => bytes.insert(at, rng.below(256) as u8),
        }
    }
    bytes
}

#[test]
fn mutated_manifests_never_panic_and_every_refusal_names_the_manifest() {
    let iterations: usize =
        std::env::var("STATICLET_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let seed: u64 = std::env::var("STATICLET_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    }) | 1;
    println!("fuzz seed {seed} ({iterations} iterations); replay with STATICLET_FUZZ_SEED={seed}");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/corpus");
    let mut corpus: Vec<Vec<u8>> =
        std::fs::read_dir(dir).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect();
    corpus.sort();
    assert!(corpus.len() >= 4, "the committed corpus is there");

    let mut rng = Rng(seed);
    let origin = Origin::file("/m/fuzz.yaml");
    let (mut accepted, mut refused, mut previous) = (0usize, 0usize, Desired::default());
    let began = Instant::now();
    for i in 0..iterations {
        let seed_input = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, seed_input, &corpus);
        let result = parse_manifest(&input, &origin, "fuzz-node");
        match &result {
            Ok(pods) => {
                accepted += 1;
                for pod in pods {
                    let _ = evaluate(Level::Restricted, pod);
                    let _ = evaluate(Level::Baseline, pod);
                }
            }
            Err(error) => {
                refused += 1;
                let message = error.to_string();
                assert!(
                    message.starts_with("/m/fuzz.yaml"),
                    "iteration {i} (seed {seed}): a refusal that does not name the manifest: {message}\ninput: {:?}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
        let snapshot = SourceSnapshot {
            kind: SourceKind::File,
            manifests: vec![Manifest { origin: origin.clone(), result }],
            notes: vec![],
        };
        previous = merge(&previous, &BTreeMap::from([(SourceKind::File, snapshot)]), jiff::Timestamp::now());
    }
    println!(
        "fuzz: {iterations} executions in {:.1} s, {accepted} accepted, {refused} refused, 0 panics",
        began.elapsed().as_secs_f64()
    );
    assert!(accepted > 0 && refused > 0, "mutations reach both outcomes ({accepted} accepted, {refused} refused)");
}
