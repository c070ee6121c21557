//! Hostile manifests: input written to hurt the parser. Each must end, quickly and with bounded
//! memory, in a clear error (or, where the input is merely large, in pods), never in a panic.

use super::*;

fn parse(bytes: &[u8]) -> Result<Vec<StaticPod>, ManifestError> {
    parse_manifest(bytes, &Origin::file("/m/evil.yaml"), "n")
}

fn refusal(bytes: &[u8]) -> String {
    parse(bytes).expect_err("a hostile manifest is refused").to_string()
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: i:1}]}\n";

#[test]
fn an_alias_bomb_is_refused_before_it_expands() {
    // Each level doubles: 2^40 strings if expanded.
    let mut bomb = String::from("a0: &a0 [x, x]\n");
    for i in 1..=40 {
        bomb.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}]\n", prev = i - 1));
    }
    let message = refusal(bomb.as_bytes());
    assert!(message.starts_with("/m/evil.yaml: "), "{message}");
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    for depth in [1_000, 100_000] {
        let yaml = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(refusal(yaml.as_bytes()).starts_with("/m/evil.yaml: "));
        let json = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        assert!(refusal(json.as_bytes()).starts_with("/m/evil.yaml: "));
        let mappings = format!("{}x{}", "{a: ".repeat(depth), "}".repeat(depth));
        assert!(refusal(mappings.as_bytes()).starts_with("/m/evil.yaml: "));
    }
}

#[test]
fn a_hundred_thousand_documents_or_a_huge_env_list_hit_the_parsers_budget_and_say_so() {
    let limits = "over the YAML parser's safety limits";
    let empties = "---\n".repeat(100_000);
    let message = refusal(empties.as_bytes());
    assert!(message.contains(&format!("{limits} (1025 documents)")), "{message}");
    let pods = format!("{POD}---\n").repeat(20_000);
    assert!(refusal(pods.as_bytes()).contains("documents)"));
    let env = |count: usize| {
        let env: String = (0..count).map(|i| format!("      - {{name: V{i}, value: '{i}'}}\n")).collect();
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  containers:\n    - name: c\n      image: i:1\n      env:\n{env}"
        )
    };
    let pods = parse(env(10_000).as_bytes()).expect("large but within the budget");
    assert_eq!(pods[0].spec().containers[0].env.as_ref().map(Vec::len), Some(10_000));
    let huge = env(50_000);
    assert!(huge.len() < MAX_MANIFEST_BYTES as usize, "the size limit alone would let it through");
    let message = refusal(huge.as_bytes());
    assert!(message.contains(limits) && message.contains("nodes)"), "{message}");
}

#[test]
fn non_utf8_and_nul_bytes_are_refused_as_binary() {
    let not_text = "/m/evil.yaml: not a text file (binary content); a manifest is YAML or JSON";
    let mut latin1 = POD.as_bytes().to_vec();
    latin1.extend_from_slice(b"# caf\xe9\n");
    assert_eq!(refusal(&latin1), not_text);
    assert_eq!(refusal(POD.replace("web", "w\0eb").as_bytes()), not_text);
    assert_eq!(refusal(b"\xff\xfe\x00a\x00p\x00i"), not_text);
}

#[test]
fn odd_but_valid_text_is_handled_without_panic() {
    for text in [
        "\u{feff}".to_owned() + POD,                         // a byte-order mark
        POD.replace('\n', "\r\n"),                           // CRLF
        POD.replace("name: web", "name: \"\\u0000\""),       // an escaped NUL in a string
        POD.replace("name: web", "name: !!binary aGVsbG8="), // a tagged scalar
        "!!python/object:os.system [id]\n".to_owned(),       // a language-specific tag
        "? [a, b]\n: c\n".to_owned(),                        // a complex key
        "a: 1\na: 2\n".to_owned(),                           // a duplicate key
        "*unknown\n".to_owned(),                             // an undefined alias
        "%YAML 9.9\n---\na: 1\n".to_owned(),                 // an unknown directive
        "{".to_owned() + "\"kind\": \"Pod\", \"apiVersion\": \"v1\", \"metadata\": {\"name\": 1e999}}",
    ] {
        // Accepted or refused; what matters is an answer naming the file, not a panic.
        if let Err(error) = parse(text.as_bytes()) {
            assert!(error.to_string().starts_with("/m/evil.yaml"), "{text:?}: {error}");
        }
    }
}
