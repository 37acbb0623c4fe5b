//! Startup errors: invalid configuration exits 2 naming the variable; a taken admin port exits 1 with
//! one line. Needs no service.

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

/// The admin port already taken: one line naming the address, exit 1, and no panic (the pipeline used
/// to start, then panic twice tearing its actors down outside the runtime).
#[test]
fn a_taken_admin_port_exits_1_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = taken.local_addr().map(|a| a.to_string()).unwrap_or_default();
    for role in ["producer", "consumer", "all"] {
        let (code, text) = run_with(&[
            ("NRT_ADMIN_ADDR", &addr),
            ("NRT_ROLE", role),
            ("RUST_LOG", "info"),
        ]);
        assert_eq!(code, Some(1), "{role}: {text}");
        assert!(
            text.contains(&format!("admin API: cannot listen on {addr}")),
            "{role}: {text}"
        );
        assert!(!text.contains("panicked"), "{role}: {text}");
        assert_eq!(text.trim().lines().count(), 1, "{role}: one line: {text}");
    }
}
