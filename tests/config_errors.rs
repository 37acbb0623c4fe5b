//! Invalid configuration: `nrt run` exits with code 2 and names the variable. Needs no service.

use std::process::Command;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Runs `nrt run` with `envs`; it must exit by itself within 10 s (a valid config would start the
/// pipeline, which this test must never do).
fn run_with(envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nrt"))
        .arg("run")
        .env("NRT_ADMIN_ADDR", "127.0.0.1:0")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run nrt: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nrt run with {envs:?} did not exit: the configuration was accepted");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut text);
    }
    (status.code(), text)
}

#[test]
fn invalid_values_exit_2_naming_the_variable() {
    let cases = [
        ("NRT_FLUSH_INTERVAL_MS", "soon"),
        ("NRT_FLUSH_INTERVAL_MS", "0"),
        ("NRT_POLL_BATCH", "20000"),
        ("NRT_ROLE", "spectator"),
        ("NRT_CLICKHOUSE_TABLE", "events; DROP TABLE x"),
        ("NRT_TOPIC", "spaces are not allowed"),
        ("NRT_ADMIN_ADDR", "localhost"),
        ("NRT_S3_ENDPOINT", "minio:9000"),
        ("NRT_SCHEMA_REGISTRY_URL", "ftp://registry"),
    ];
    for (var, value) in cases {
        let (code, stderr) = run_with(&[(var, value)]);
        assert_eq!(code, Some(2), "{var}={value}: {stderr}");
        assert!(
            stderr.contains(var),
            "{var}={value}: the message does not name the variable:\n{stderr}"
        );
    }
}

#[test]
fn secrets_do_not_appear_in_errors() {
    let (code, all) = run_with(&[
        ("NRT_S3_SECRET_KEY", "super-secret-value-123"),
        ("NRT_CLICKHOUSE_PASSWORD", "another-secret-456"),
        ("NRT_TOPIC", "bad topic"),
    ]);
    assert_eq!(code, Some(2), "{all}");
    assert!(
        !all.contains("super-secret-value-123") && !all.contains("another-secret-456"),
        "{all}"
    );
}
