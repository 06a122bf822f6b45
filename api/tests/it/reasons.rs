//! The reasons errors carry (`extensions.reason`): every one is snake_case, unique, listed in the README's
//! table exactly as the code declares it, and (for the domain's rules) asserted by a test that provokes it from
//! outside, through the API or, for what only workers send, through the workers' commands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use api::error::ApiReason;
use domain::refusal::Rule;

/// Domain rules no client (and no worker) can break, so no test outside can assert them. Keep this short: a
/// rule leaves the list as soon as a test reaches it (the last test below insists).
const UNREACHABLE: &[&str] = &[
    // The new stream's id derives from the scoped command id (registration, addQuestion, createTrack,
    // publishSlot), and a command id already used answers with its first result without deciding again: the
    // "exists" branch is a guard nothing outside reaches.
    "account_exists",
    "question_exists",
    "track_exists",
    "slot_exists",
    // submitReview looks the solution up among those allocated to the reviewer first
    // (`solution_not_allocated` otherwise), so the decider never sees an unallocated review.
    "not_your_review",
];

/// Every reason with its code and meaning, API's own first, then the domain's rules: the README's table.
fn table() -> Vec<(&'static str, &'static str, &'static str)> {
    let api = ApiReason::ALL
        .iter()
        .map(|r| (r.as_str(), r.code().as_str(), r.when()));
    let domain = Rule::ALL.iter().map(|r| {
        let code = api::error::Code::from(r.kind());
        (r.reason(), code.as_str(), r.when())
    });
    api.chain(domain).collect()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn is_snake_case(reason: &str) -> bool {
    reason.starts_with(|c: char| c.is_ascii_lowercase())
        && !reason.ends_with('_')
        && !reason.contains("__")
        && reason
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[test]
fn every_reason_is_snake_case_and_names_one_thing() {
    let mut seen = BTreeSet::new();
    for (reason, _, when) in table() {
        assert!(is_snake_case(reason), "{reason} is not snake_case");
        assert!(seen.insert(reason), "{reason} is declared twice");
        assert!(!when.contains('|'), "{reason}: a | would break the table");
    }
}

#[test]
fn the_readme_lists_every_reason_as_declared() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let listed: Vec<&str> = readme
        .lines()
        .skip_while(|l| l.trim() != "| reason | code | when |")
        .skip(2)
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(str::trim)
        .collect();
    let expected: Vec<String> = table()
        .into_iter()
        .map(|(reason, code, when)| format!("| `{reason}` | `{code}` | {when} |"))
        .collect();
    assert!(
        listed == expected,
        "README.md's reason table (under \"The API\", \"Errors\") differs from the code; it should read:\n\n  \
         | reason | code | when |\n  | --- | --- | --- |\n  {}\n",
        expected.join("\n  ")
    );
}

/// The test sources that may assert a reason: the API's, the root package's and the workers'.
fn test_sources() -> String {
    let mut text = String::new();
    for dir in ["api/tests/it", "tests/it", "workers/tests/it"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .filter(|p| !p.ends_with("api/tests/it/reasons.rs"))
            .collect();
        files.sort();
        for file in files {
            text.push_str(&std::fs::read_to_string(file).unwrap());
        }
    }
    text
}

#[test]
fn every_domain_reason_is_asserted_by_a_test_that_provokes_it() {
    let sources = test_sources();
    let asserted = |reason: &str| sources.contains(&format!("\"{reason}\""));
    let unreachable: BTreeSet<&str> = UNREACHABLE.iter().copied().collect();
    let missing: Vec<&str> = Rule::ALL
        .iter()
        .map(|r| r.reason())
        .filter(|r| !unreachable.contains(r) && !asserted(r))
        .collect();
    assert!(
        missing.is_empty(),
        "no test asserts these reasons; provoke each through the API (or the workers) and assert it: \
         {missing:?}"
    );
    for reason in &unreachable {
        assert!(
            Rule::ALL.iter().any(|r| r.reason() == *reason),
            "{reason} is listed as unreachable but is no rule"
        );
        assert!(
            !asserted(reason),
            "{reason} is asserted by a test now: take it off UNREACHABLE"
        );
    }
}
