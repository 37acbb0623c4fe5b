//! `nrt replay` on the real services: two hours deleted from ClickHouse are named by `nrt reconcile`
//! and replayed back from the lake; a dropped table is rebuilt, also by a replay killed mid-way and run
//! again; replaying twice changes nothing; `--table` rebuilds into a fresh table. Every time the
//! table's `FINAL` rows equal the originals column for column (a checksum over every column).
#![cfg(feature = "integration")]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Names, NrtProcess, TEST_DATABASE};
use nrt_pipeline::lake::Hour;

/// Three streams of ~40 s each, starting 20 s before an hour (09:59:40, 10:59:40, 11:59:40 UTC on
/// 2026-01-01): events in hours 09 to 12, and batches that straddle hours (an object sits under its
/// first event's hour, so replaying hour 10 must read hour 09's objects too).
const STREAMS: [(u64, i64); 3] = [
    (81, 1_767_261_580_000),
    (82, 1_767_265_180_000),
    (83, 1_767_268_780_000),
];
const PER_STREAM: u64 = 4_000;
const ALL: u64 = PER_STREAM * 3;

fn nrt(names: &Names, table: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nrt"));
    cmd.args(args)
        .env("NRT_S3_PREFIX", &names.prefix)
        .env("NRT_CLICKHOUSE_DATABASE", TEST_DATABASE)
        .env("NRT_CLICKHOUSE_TABLE", table)
        .env("RUST_LOG", "warn");
    cmd
}

/// Runs `nrt replay` to its end; returns its summary line's numbers (objects, resumed, events).
fn replay(names: &Names, table: &str, range: (&str, &str), extra: &[&str]) -> (u64, u64, u64) {
    let out = nrt(names, table, &["replay", "--from", range.0, "--to", range.1])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run nrt replay: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    summary(&stdout)
}

/// `replay: 36 objects (4 resumed), 12000 lines, 8000 events written in 1.2 s` → (36, 4, 8000).
fn summary(stdout: &str) -> (u64, u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("replay: "))
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .filter_map(|w| w.parse().ok())
        .collect();
    match numbers[..] {
        [objects, resumed, _lines, events, ..] => (objects, resumed, events),
        _ => panic!("summary line: {line}"),
    }
}

fn reconcile(names: &Names) -> (i32, serde_json::Value) {
    let out = nrt(
        names,
        &names.table,
        &[
            "reconcile",
            "--from",
            "2026-01-01T09",
            "--to",
            "2026-01-01T13",
            "--json",
        ],
    )
    .output()
    .unwrap_or_else(|e| panic!("cannot run nrt reconcile: {e}"));
    let report =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("reconcile printed no JSON: {e}"));
    (out.status.code().unwrap_or(-1), report)
}

#[derive(Debug, PartialEq, Eq, clickhouse::Row, serde::Deserialize)]
struct Checksum {
    rows: u64,
    hash: u64,
}

/// `FINAL` rows and a hash over every column of them.
async fn checksum(cfg: &nrt_pipeline::config::ServicesConfig, table: &str) -> Checksum {
    let mut ch = cfg.clickhouse.clone();
    ch.database = TEST_DATABASE.to_owned();
    nrt_pipeline::clickhouse::client(&ch).unwrap_or_else(|e| panic!("{e}"))
        .query(&format!(
            "SELECT count() AS rows, sum(cityHash64(toString(event_id), type, user_id, toString(amount), currency, \
             created_at, created_at_ms, ingested_at, kafka_partition, kafka_offset, ifNull(country, '-'), \
             ifNull(session_id, '-'))) AS hash FROM {table} FINAL"
        ))
        .fetch_one::<Checksum>()
        .await
        .unwrap_or_else(|e| panic!("checksum of {table}: {e}"))
}

async fn execute(cfg: &nrt_pipeline::config::ServicesConfig, sql: &str) {
    let mut ch = cfg.clickhouse.clone();
    ch.database = TEST_DATABASE.to_owned();
    nrt_pipeline::clickhouse::client(&ch)
        .unwrap_or_else(|e| panic!("{e}"))
        .query(sql)
        .execute()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_repairs_and_rebuilds_from_the_lake() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("replay");
    // Small batches: many objects, so a replay can be stopped between two of them.
    let mut env = names.env("http://127.0.0.1:9");
    env.push(("NRT_BATCH_MAX_RECORDS", "250"));
    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &env);
    for (i, (seed, epoch)) in STREAMS.iter().enumerate() {
        let mock = common::spawn_mock(*seed, PER_STREAM, *epoch);
        let txn = format!("{}-{i}", names.topic);
        let mut env = names.env(&mock.url);
        env.push(("NRT_TRANSACTIONAL_ID", &txn));
        let mut producer = NrtProcess::spawn(&["run", "--role", "producer"], &env);
        common::wait_for(120, "a stream published", || async {
            let m = common::metric(&producer.url, "nrt_events_published_total").await?;
            (m as u64 >= PER_STREAM).then_some(())
        })
        .await;
        producer.terminate();
    }
    let lines = common::landed(&cfg, &names, ALL).await;
    drop(consumer);
    let straddling = lines
        .iter()
        .filter(|(key, line)| key.contains("/hour=09/") && line.contains("\"created_at\":\"2026-01-01T10:"))
        .count();
    assert!(
        straddling > 0,
        "no object of hour 09 holds events of hour 10: the test proves less"
    );
    let original = checksum(&cfg, &names.table).await;
    assert_eq!(original.rows, ALL);
    assert_eq!(reconcile(&names).0, 0, "clean run");

    // Two hours' rows deleted: reconcile names exactly them; replaying those two hours repairs it.
    let hour = |h: &str| Hour::parse(h).map_or(0, |h| h.0 * 3600);
    execute(
        &cfg,
        &format!(
            "ALTER TABLE {} DELETE WHERE created_at >= toDateTime({}) AND created_at < toDateTime({})",
            names.table,
            hour("2026-01-01T10"),
            hour("2026-01-01T12")
        ),
    )
    .await;
    common::wait_for(60, "hours 10 and 11 deleted", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? < ALL).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, report) = reconcile(&names);
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        report["differ"],
        serde_json::json!(["2026-01-01T10", "2026-01-01T11"])
    );
    let (_, _, repaired) = replay(&names, &names.table, ("2026-01-01T10", "2026-01-01T12"), &[]);
    assert_eq!(reconcile(&names).0, 0, "after replaying hours 10 and 11");
    assert_eq!(
        checksum(&cfg, &names.table).await,
        original,
        "rows after the repair"
    );

    // Dry run over everything: counts, writes nothing (the table it names is not even created).
    let (objects, _, counted) = replay(
        &names,
        "never_created",
        ("2026-01-01T09", "2026-01-01T13"),
        &["--dry-run"],
    );
    assert_eq!(counted, ALL, "events counted by --dry-run");
    assert!(objects > 10, "{objects} objects: small batches");
    assert_eq!(common::clickhouse_count(&cfg, "never_created", false).await, None);

    // The table dropped, then rebuilt by a replay killed after some objects and run again.
    execute(&cfg, &format!("DROP TABLE {}", names.table)).await;
    let checkpoint = std::env::temp_dir().join(common::unique("nrt-replay-checkpoint-"));
    let checkpoint_arg = checkpoint.display().to_string();
    let range = [
        "replay",
        "--from",
        "2026-01-01T09",
        "--to",
        "2026-01-01T13",
        "--checkpoint",
        &checkpoint_arg,
    ];
    let mut first = nrt(&names, &names.table, &range)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run nrt replay: {e}"));
    let started = std::time::Instant::now();
    while !checkpoint.exists() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = first.kill();
    let _ = first.wait();
    assert!(checkpoint.exists(), "the first replay left a checkpoint");
    let (objects, resumed, _) = replay(
        &names,
        &names.table,
        ("2026-01-01T09", "2026-01-01T13"),
        &["--checkpoint", &checkpoint_arg],
    );
    assert!(
        resumed > 0 && resumed < objects,
        "resumed {resumed} of {objects} objects"
    );
    assert!(!checkpoint.exists(), "a finished replay removes its checkpoint");
    assert_eq!(
        checksum(&cfg, &names.table).await,
        original,
        "rows after the interrupted rebuild"
    );

    // Again, over everything: nothing changes.
    replay(&names, &names.table, ("2026-01-01T09", "2026-01-01T13"), &[]);
    assert_eq!(
        checksum(&cfg, &names.table).await,
        original,
        "rows after a second replay"
    );

    // Into a fresh table.
    let fresh = format!("{}_rebuilt", names.table);
    replay(&names, &fresh, ("2026-01-01T09", "2026-01-01T13"), &[]);
    assert_eq!(checksum(&cfg, &fresh).await, original, "the rebuilt table");
    // Usage errors: exit 2, nothing read.
    for (table, from, to) in [
        (names.table.as_str(), "2026-01-01T13", "2026-01-01T09"),
        ("no-table!", "2026-01-01T09", "2026-01-01T13"),
    ] {
        let out = nrt(&names, table, &["replay", "--from", from, "--to", to])
            .output()
            .unwrap_or_else(|e| panic!("cannot run nrt replay: {e}"));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!(
        "replay: {ALL} events in {objects} objects over hours 09-12 ({straddling} events of hour 10 in objects of \
         hour 09); hours 10 and 11 deleted, named by reconcile \
         and replayed ({repaired} events); dropped table rebuilt by a replay killed after {resumed} objects and \
         resumed; a second replay and a rebuild into {fresh}: {} rows FINAL, checksum {:x} every time",
        original.rows, original.hash
    );
}
