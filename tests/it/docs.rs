//! The documentation in step with the code: every variable `nrt` reads is in docs/configuration.md,
//! every metric of src/metrics.rs is somewhere in docs/, and the docs name no variable or metric the code
//! does not have. Reads files only: needs no service and no feature.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Where a variable the docs name may be read: `nrt` itself, the scripts, the tests, the deployment files.
const VARIABLE_SOURCES: [&str; 8] = [
    "src",
    "scripts",
    "tests",
    ".env.example",
    "docker-compose.yml",
    "compose",
    "Dockerfile",
    "fuzz",
];

/// How our metric names end (a histogram's series included). Other `nrt_` words in the docs name other
/// things, such as the tests' databases, and are left alone.
const METRIC_ENDINGS: [&str; 13] = [
    "_total",
    "_seconds",
    "_bytes",
    "_events",
    "_partitions",
    "_messages",
    "_lag",
    "_info",
    "_refused",
    "_blocked",
    "_bucket",
    "_sum",
    "_count",
];

/// The series Prometheus adds to a histogram's name.
const HISTOGRAM_SERIES: [&str; 3] = ["_bucket", "_sum", "_count"];

fn in_repo(relative: &str) -> PathBuf {
    Path::new(ROOT).join(relative)
}

fn shown(path: &Path) -> String {
    path.strip_prefix(ROOT).unwrap_or(path).display().to_string()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Build output can be gigabytes, and hidden entries are tools' state: neither is a source of the docs.
fn skipped(name: &OsStr) -> bool {
    name == "target" || name.to_string_lossy().starts_with('.')
}

/// `path` itself if it is a file, else every file under it, in a stable order.
fn files_under(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    if !path.is_dir() {
        return Vec::new();
    }
    let mut children = Vec::new();
    for entry in std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let child = entry.path();
        if !child.file_name().is_some_and(skipped) {
            children.push(child);
        }
    }
    children.sort();
    let mut files = Vec::new();
    for child in children {
        files.extend(files_under(&child));
    }
    files
}

fn has_extension(path: &Path, extension: &str) -> bool {
    path.extension().is_some_and(|e| e == extension)
}

fn doc_files() -> Vec<PathBuf> {
    let docs = in_repo("docs");
    let mut files = files_under(&docs);
    files.retain(|file| has_extension(file, "md"));
    assert!(!files.is_empty(), "no .md file under {}", docs.display());
    files
}

/// The docs/*.md files and the README.
fn all_docs() -> Vec<PathBuf> {
    let mut files = doc_files();
    files.push(in_repo("README.md"));
    files
}

fn variable_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
}

fn metric_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The word `text` starts with: `prefix`, then at least one character `tail` accepts.
fn word_at<'a>(text: &'a str, prefix: &str, tail: fn(char) -> bool) -> Option<&'a str> {
    let rest = text.strip_prefix(prefix)?;
    let end = rest.find(|c: char| !tail(c)).unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    Some(&text[..prefix.len() + end])
}

/// Every word of `text` starting with `prefix`; a prefix inside a longer word (`X_NRT_…`) starts none.
fn words(text: &str, prefix: &str, tail: fn(char) -> bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        if text[..at].ends_with(word_char) {
            continue;
        }
        if let Some(word) = word_at(&text[at..], prefix, tail) {
            found.insert(word.to_owned());
        }
    }
    found
}

/// The variables of clap's `env = "NRT_…"` attributes in `text`.
fn declared_variables(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("\"NRT_") {
        let Some(before) = text[..at].trim_end().strip_suffix('=') else {
            continue;
        };
        if !before.trim_end().ends_with("env") {
            continue;
        }
        if let Some(name) = word_at(&text[at + 1..], "NRT_", variable_char) {
            found.insert(name.to_owned());
        }
    }
    found
}

/// The names src/metrics.rs gives its metrics: its `"nrt_…"` string literals.
fn defined_metrics() -> BTreeSet<String> {
    let text = read(&in_repo("src/metrics.rs"));
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("\"nrt_") {
        let Some(name) = word_at(&text[at + 1..], "nrt_", metric_char) else {
            continue;
        };
        if text[at + 1 + name.len()..].starts_with('"') {
            found.insert(name.to_owned());
        }
    }
    // Finding nothing would let every check of the metrics pass.
    assert!(!found.is_empty(), "no \"nrt_…\" metric name in src/metrics.rs");
    found
}

fn looks_like_metric(word: &str) -> bool {
    METRIC_ENDINGS.iter().any(|ending| word.ends_with(ending))
}

fn is_metric(word: &str, metrics: &BTreeSet<String>) -> bool {
    let histogram = HISTOGRAM_SERIES.iter().find_map(|s| word.strip_suffix(s));
    metrics.contains(word) || histogram.is_some_and(|name| metrics.contains(name))
}

#[test]
fn every_variable_nrt_reads_is_in_the_configuration_doc() {
    let configuration = in_repo("docs/configuration.md");
    let documented = words(&read(&configuration), "NRT_", variable_char);
    let mut declared = Vec::new();
    for file in files_under(&in_repo("src")) {
        if has_extension(&file, "rs") {
            for variable in declared_variables(&read(&file)) {
                declared.push((variable, shown(&file)));
            }
        }
    }
    // Finding nothing would let the check pass.
    assert!(!declared.is_empty(), "no `env = \"NRT_…\"` under src/");
    let mut missing = Vec::new();
    for (variable, file) in declared {
        if !documented.contains(&variable) {
            missing.push(format!("{variable} (declared in {file})"));
        }
    }
    assert!(
        missing.is_empty(),
        "not in {}: {}",
        shown(&configuration),
        missing.join(", ")
    );
}

#[test]
fn every_metric_is_in_the_docs() {
    let mut documented = BTreeSet::new();
    for doc in doc_files() {
        documented.extend(words(&read(&doc), "nrt_", metric_char));
    }
    let mut missing = Vec::new();
    for metric in defined_metrics() {
        if !documented.contains(&metric) {
            missing.push(metric);
        }
    }
    assert!(
        missing.is_empty(),
        "metrics of src/metrics.rs in no docs/*.md: {}",
        missing.join(", ")
    );
}

#[test]
fn every_variable_the_docs_name_exists() {
    // Its own words would vouch for themselves.
    let this_file = in_repo("tests/it/docs.rs");
    let mut known = BTreeSet::new();
    for source in VARIABLE_SOURCES {
        for file in files_under(&in_repo(source)) {
            if file == this_file {
                continue;
            }
            // What is not text (the fuzz seeds) names no variable.
            if let Ok(text) = std::fs::read_to_string(&file) {
                known.extend(words(&text, "NRT_", variable_char));
            }
        }
    }
    let mut stale = Vec::new();
    for doc in all_docs() {
        for variable in words(&read(&doc), "NRT_", variable_char) {
            if !known.contains(&variable) {
                stale.push(format!("{variable} in {}", shown(&doc)));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "named in the docs, read nowhere in {}: {}",
        VARIABLE_SOURCES.join(", "),
        stale.join(", ")
    );
}

#[test]
fn every_metric_the_docs_name_exists() {
    let metrics = defined_metrics();
    let mut stale = Vec::new();
    for doc in all_docs() {
        for word in words(&read(&doc), "nrt_", metric_char) {
            if looks_like_metric(&word) && !is_metric(&word, &metrics) {
                stale.push(format!("{word} in {}", shown(&doc)));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "not a metric of src/metrics.rs: {}",
        stale.join(", ")
    );
}

/// What `nrt` tells an operator to set must exist: every `NRT_…` word in src/ is a variable some
/// `env = "NRT_…"` declares (or, in a unit test, one it sets itself).
#[test]
fn every_variable_a_message_of_src_names_exists() {
    let sources: Vec<PathBuf> = files_under(&in_repo("src"))
        .into_iter()
        .filter(|f| has_extension(f, "rs"))
        .collect();
    let mut known = BTreeSet::new();
    for file in &sources {
        let text = read(file);
        known.extend(declared_variables(&text));
        for call in ["set_var(\"", "remove_var(\""] {
            for (at, _) in text.match_indices(call) {
                if let Some(name) = word_at(&text[at + call.len()..], "NRT_", variable_char) {
                    known.insert(name.to_owned());
                }
            }
        }
    }
    assert!(!known.is_empty(), "no `env = \"NRT_…\"` under src/");
    let mut stale = Vec::new();
    for file in &sources {
        for variable in words(&read(file), "NRT_", variable_char) {
            if !known.contains(&variable) {
                stale.push(format!("{variable} in {}", shown(file)));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "named in src/, read by no `env = \"…\"`: {}",
        stale.join(", ")
    );
}
