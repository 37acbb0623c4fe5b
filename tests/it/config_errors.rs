//! Startup errors, each with one clear line, its documented exit code and no panic: invalid
//! configuration exits 2 naming the variable; a taken port or an unusable data directory exits 1; a
//! lake that does not answer makes reconcile and replay exit 3; `nrt run` waits for unreachable
//! services instead (it is a service), `/ready` naming them. Needs no service.

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
        ("NRT_SUBJECT_STRATEGY", "by_name"),
        ("NRT_LAKE_FORMAT", "csv"),
        // A cluster needs its nodes, and its nodes their cluster's name.
        ("NRT_CLICKHOUSE_CLUSTER", "nrt"),
        ("NRT_CLICKHOUSE_SHARDS", "http://127.0.0.1:18121"),
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
fn a_clickhouse_cluster_refuses_bad_nodes_and_a_table_per_tenant() {
    let cluster = ("NRT_CLICKHOUSE_CLUSTER", "nrt");
    let cases = [
        (
            vec![cluster, ("NRT_CLICKHOUSE_SHARDS", "http://a:1;;http://b:1")],
            "shard 2 has no replica URL",
        ),
        (
            vec![cluster, ("NRT_CLICKHOUSE_SHARDS", "a:8123")],
            "NRT_CLICKHOUSE_SHARDS",
        ),
        (
            vec![
                ("NRT_CLICKHOUSE_CLUSTER", "n-r-t"),
                ("NRT_CLICKHOUSE_SHARDS", "http://a:1"),
            ],
            "not a plain name",
        ),
        (
            vec![
                cluster,
                ("NRT_CLICKHOUSE_SHARDS", "http://a:1"),
                ("NRT_CLICKHOUSE_TABLE", "events_{field:tenant}"),
            ],
            "not supported on a ClickHouse cluster",
        ),
    ];
    for (envs, said) in cases {
        let (code, stderr) = run_with(&envs);
        assert_eq!(code, Some(2), "{envs:?}: {stderr}");
        assert!(stderr.contains(said), "{envs:?}: expected '{said}' in:\n{stderr}");
    }
}

#[test]
fn a_pipelines_file_with_a_mistake_exits_2_naming_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("nrt-config-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("nrt.toml");
    let path = file.to_string_lossy().into_owned();
    let cases = [
        (
            "[[pipeline]]\nname = \"orders\"\n\nflush_interval_ms = 5\n",
            vec![],
            format!("{path}:4: flush_interval_ms: invalid value '5': 5 is not in 10..=3600000"),
        ),
        (
            "[[pipeline]]\nname = \"orders\"\nflush_intervall_ms = 500\n",
            vec![],
            format!("{path}:3: flush_intervall_ms: unknown key"),
        ),
        (
            "[[pipeline]]\nname = \"orders\"\n",
            vec![("NRT_TOPIC", "t")],
            format!("{path} and NRT_TOPIC both configure pipelines"),
        ),
        (
            "[[pipeline]]\nname = \"a\"\n[[pipeline]]\nname = \"b\"\ntopic = \"b\"\n",
            vec![],
            format!("{path}: pipeline 'b': clickhouse_table 'events_raw' is another pipeline's too"),
        ),
    ];
    for (text, env, expected) in cases {
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
        let mut envs = vec![("NRT_CONFIG", path.as_str())];
        envs.extend(env);
        let (code, stderr) = run_with(&envs);
        assert_eq!(code, Some(2), "{text}: {stderr}");
        assert!(stderr.contains(&expected), "{text}\n{stderr}\nwant: {expected}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
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

/// Runs `nrt ARGS`; it must exit by itself within 10 s. Returns the exit code and stdout + stderr.
fn nrt(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new("timeout")
        .arg("10")
        .arg(env!("CARGO_BIN_EXE_nrt"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run nrt: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        out.status.code(),
        Some(124),
        "nrt {args:?} did not exit within 10 s: {text}"
    );
    (out.status.code(), text)
}

fn one_clean_line(what: &str, text: &str) {
    assert!(!text.contains("panicked"), "{what}: {text}");
    assert_eq!(text.trim().lines().count(), 1, "{what}: one line: {text}");
}

#[test]
fn the_mock_api_and_the_registry_on_a_taken_port_exit_1_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = taken.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("nrt-taken-port-{}", std::process::id()));
    let dir = dir.to_string_lossy().into_owned();
    for (args, says) in [
        (vec!["mock-api", "--listen", &addr], "cannot listen on"),
        (
            vec!["registry", "--listen", &addr, "--data-dir", &dir],
            "registry: cannot listen on",
        ),
    ] {
        let (code, text) = nrt(&args, &[("RUST_LOG", "info")]);
        assert_eq!(code, Some(1), "{args:?}: {text}");
        assert!(text.contains(says) && text.contains(&addr), "{args:?}: {text}");
        one_clean_line(args[0], &text);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_registry_data_dir_that_cannot_be_made_exits_1_with_one_line() {
    // Under a regular file: no user, root included, can make a directory there.
    let file = std::env::temp_dir().join(format!("nrt-not-a-dir-{}", std::process::id()));
    std::fs::write(&file, b"x").unwrap_or_else(|e| panic!("{e}"));
    let dir = file.join("registry");
    let (code, text) = nrt(
        &[
            "registry",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &dir.to_string_lossy(),
        ],
        &[("RUST_LOG", "info")],
    );
    let _ = std::fs::remove_file(&file);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&dir.to_string_lossy().into_owned()),
        "names the directory: {text}"
    );
    one_clean_line("registry", &text);
}

#[test]
fn reconcile_and_replay_with_the_lake_unreachable_exit_3_with_one_line() {
    // Port 1 on loopback: refused at once, as a stopped MinIO would be.
    let envs = [
        ("NRT_S3_ENDPOINT", "http://127.0.0.1:1"),
        ("NRT_CLICKHOUSE_URL", "http://127.0.0.1:1"),
        ("RUST_LOG", "warn"),
    ];
    for command in ["reconcile", "replay"] {
        let (code, text) = nrt(
            &[command, "--from", "2026-01-01T00", "--to", "2026-01-01T01"],
            &envs,
        );
        assert_eq!(code, Some(3), "{command}: {text}");
        assert!(text.contains(&format!("nrt {command}:")), "{command}: {text}");
        one_clean_line(command, &text);
    }
}

/// `nrt run` is a service: dependencies that do not answer at start are waited for (they may come up
/// after it, as compose starts things), never a panic or a flood; `/ready` says which, and SIGTERM
/// still exits cleanly.
#[test]
fn unreachable_services_at_start_are_waited_for_quietly_and_named_by_ready() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nrt"))
        .args(["run", "--role", "consumer"])
        .envs([
            ("NRT_ADMIN_ADDR", "127.0.0.1:0"),
            ("NRT_KAFKA_BROKERS", "127.0.0.1:1"),
            ("NRT_SCHEMA_REGISTRY_URL", "http://127.0.0.1:1"),
            ("NRT_S3_ENDPOINT", "http://127.0.0.1:1"),
            ("NRT_CLICKHOUSE_URL", "http://127.0.0.1:1"),
            ("RUST_LOG", "info"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run nrt: {e}"));
    let mut stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut first = String::new();
    let mut byte = [0u8; 1];
    while !first.ends_with('\n') && stdout.read(&mut byte).unwrap_or(0) == 1 {
        first.push(byte[0] as char);
    }
    let admin = first
        .trim()
        .strip_prefix("nrt admin listening on ")
        .unwrap_or_else(|| panic!("no admin address: {first:?}"))
        .to_owned();
    std::thread::sleep(Duration::from_secs(8));
    let ready = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", &format!("{admin}/ready")])
        .output()
        .unwrap_or_else(|e| panic!("curl: {e}"));
    let ready = String::from_utf8_lossy(&ready.stdout).into_owned();
    assert!(ready.ends_with("\n503"), "{ready}");
    for service in ["kafka", "registry", "minio", "clickhouse"] {
        assert!(
            ready.contains(&format!("\"{service}\"")),
            "/ready names {service}: {ready}"
        );
    }
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut log);
    }
    assert!(!log.contains("panicked"), "{log}");
    let lines = log.lines().count();
    assert!(
        lines <= 40,
        "{lines} log lines in ~10 s of waiting: a flood\n{log}"
    );
    assert!(
        matches!(status.code(), Some(0) | Some(75)),
        "exit {:?} after SIGTERM (0 drained, 75 not drained in time)\n{log}",
        status.code()
    );
    println!(
        "waited {lines} log lines, /ready: {}",
        ready.lines().next().unwrap_or_default()
    );
}
