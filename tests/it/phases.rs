//! scripts/phases.sh, the phase runner every script's CI steps go through: a phase fails on its first
//! failing command (also inside functions it calls, also in a pipeline), a phase called where bash
//! ignores errexit is refused, and the closing `tests:` line is printed also when a phase failed.
//! Needs bash only: no service and no feature.

use std::process::Command;

const PHASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/phases.sh");

/// Runs `body` after sourcing phases.sh under `set -euo pipefail`; returns (exit code, stdout+stderr).
fn script(body: &str) -> (Option<i32>, String) {
    let text = format!("set -euo pipefail\nsource {PHASES}\n{body}\n");
    let out = Command::new("bash")
        .args(["-c", &text])
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash: {e}"));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), all)
}

#[test]
fn a_phase_fails_on_its_first_failing_command() {
    let (code, out) = script(
        r#"
inner() { echo inner-start; return 3; }
step() { inner; echo after-the-failure; true; }
phase first true
phase second step
echo not-reached
"#,
    );
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("inner-start"), "{out}");
    assert!(
        !out.contains("after-the-failure"),
        "the phase went on past its failure:\n{out}"
    );
    assert!(!out.contains("not-reached"), "{out}");
    assert!(out.contains("first") && out.contains("ok"), "{out}");
    assert!(out.contains("FAILED (exit 3)"), "{out}");
    assert!(out.contains("=== phase durations"), "{out}");
}

#[test]
fn a_failure_inside_a_pipeline_fails_the_phase() {
    let (code, out) = script(
        r#"
step() { false | cat; echo after-the-pipeline; }
phase piped step
"#,
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(!out.contains("after-the-pipeline"), "{out}");
    assert!(out.contains("FAILED (exit 1)"), "{out}");
}

#[test]
fn a_phase_called_where_errexit_is_ignored_is_refused() {
    for call in [
        "if phase masked step; then :; fi",
        "phase masked step || true",
        "wrapper() { phase masked step; }; wrapper && true",
    ] {
        let (code, out) = script(&format!("step() {{ false; echo masked-went-on; }}\n{call}"));
        assert_eq!(code, Some(2), "{call}:\n{out}");
        assert!(out.contains("called inside an if"), "{call}:\n{out}");
        assert!(!out.contains("masked-went-on"), "{call}:\n{out}");
    }
}

#[test]
fn the_tests_line_is_printed_also_when_a_phase_failed() {
    let dir = std::env::temp_dir().join(format!("nrt-phases-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let log = dir.join("test-output.log");
    std::fs::write(
        &log,
        "test result: ok. 5 passed; 0 failed; 0 ignored\ntest result: FAILED. 2 passed; 1 failed; 0 ignored\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.join("never-written.log");
    let body = format!(
        r#"
hook() {{ echo hook-ran; }}
PHASE_EXIT_HOOKS+=(hook)
PHASE_TESTS_LOGS=({} {})
phase tests true
phase later false
"#,
        log.display(),
        missing.display()
    );
    let (code, out) = script(&body);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("tests: 7 passed, 1 failed; phase later failed"),
        "{out}"
    );
    assert!(out.contains("hook-ran"), "{out}");

    let ok = format!("PHASE_TESTS_LOGS=({})\nphase tests true\nsummary", log.display());
    let (code, out) = script(&ok);
    assert_eq!(code, Some(0), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert_eq!(last, "tests: 7 passed, 1 failed", "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
