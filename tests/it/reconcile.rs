//! `nrt reconcile` on the real services: a clean run reports every hour the same (counts equal to what
//! the seeded Mock API served, hour by hour of `created_at`); after the rows of one hour are deleted
//! from ClickHouse it names exactly that hour and exits 1; a bad range is a usage error (exit 2).
#![cfg(feature = "integration")]

use crate::common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{Names, NrtProcess, TEST_DATABASE};
use nrt_pipeline::lake::Hour;
use nrt_pipeline::mock_api::Generator;

const SEED: u64 = 11;
/// 2026-01-01T10:59:50Z: the stream crosses into hour 11 after ten seconds.
const EPOCH_MS: i64 = 1_767_265_190_000;
const EVENTS: u64 = 3_000;

/// Runs `nrt reconcile` over 09..13 on the test's names; returns the exit code and stdout.
fn reconcile(names: &Names, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nrt"))
        .args(["reconcile", "--from", "2026-01-01T09", "--to", "2026-01-01T13"])
        .args(extra)
        .env("NRT_S3_PREFIX", &names.prefix)
        .env("NRT_CLICKHOUSE_DATABASE", TEST_DATABASE)
        .env("NRT_CLICKHOUSE_TABLE", &names.table)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("cannot run nrt reconcile: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.is_empty() || out.status.code() != Some(0),
        "stderr: {stderr}"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_finds_exactly_the_hours_clickhouse_lacks() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("reconcile");
    let mut generator = Generator::seeded(SEED, EPOCH_MS);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..EVENTS {
        *expected
            .entry(Hour::of_millis(generator.next_event().created_at.0).to_string())
            .or_default() += 1;
    }
    assert_eq!(
        expected.len(),
        2,
        "the seeded stream spans hours 10 and 11: {expected:?}"
    );

    let mock = common::spawn_mock(SEED, EVENTS, EPOCH_MS);
    let mut pipeline = NrtProcess::spawn(&["run", "--role", "all"], &names.env(&mock.url));
    common::wait_for(120, "every event in ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? == EVENTS).then_some(())
    })
    .await;
    common::wait_for(60, "every event in MinIO", || async {
        (common::minio_lines(&cfg, &names.prefix).await.len() as u64 >= EVENTS).then_some(())
    })
    .await;
    pipeline.terminate();

    // Clean: four hours, two of them empty on both sides, the others exactly what was served.
    let (code, out) = reconcile(&names, &["--json"]);
    assert_eq!(code, 0, "{out}");
    let report = json(&out);
    let hours = report["hours"].as_array().unwrap_or_else(|| panic!("{report}"));
    let counts: Vec<(String, u64, u64, u64, u64)> = hours
        .iter()
        .map(|h| {
            let n = |k: &str| h[k].as_u64().unwrap_or_else(|| panic!("{k} in {h}"));
            let hour = h["hour"].as_str().unwrap_or_default().to_owned();
            (
                hour,
                n("lake_lines"),
                n("lake_ids"),
                n("clickhouse_rows"),
                n("clickhouse_ids"),
            )
        })
        .collect();
    let want = |hour: &str| expected.get(hour).copied().unwrap_or(0);
    let expected_counts: Vec<(String, u64, u64, u64, u64)> = ["09", "10", "11", "12"]
        .iter()
        .map(|h| {
            let hour = format!("2026-01-01T{h}");
            let n = want(&hour);
            (hour, n, n, n, n)
        })
        .collect();
    assert_eq!(counts, expected_counts);
    assert_eq!(report["differ"], serde_json::json!([]));

    // Hour 11's rows gone from ClickHouse (a mutation: asynchronous).
    let mut ch = cfg.clickhouse.clone();
    ch.database = TEST_DATABASE.to_owned();
    nrt_pipeline::clickhouse::client(&ch)
        .unwrap_or_else(|e| panic!("{e}"))
        .query(&format!(
            "ALTER TABLE {} DELETE WHERE created_at >= toDateTime({})",
            names.table,
            Hour::parse("2026-01-01T11").map_or(0, |h| h.0 * 3600)
        ))
        .execute()
        .await
        .unwrap_or_else(|e| panic!("ALTER TABLE DELETE: {e}"));
    let left = want("2026-01-01T10");
    common::wait_for(60, "hour 11 deleted from ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? == left).then_some(())
    })
    .await;

    let (code, out) = reconcile(&names, &["--json"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(json(&out)["differ"], serde_json::json!(["2026-01-01T11"]));
    let (code, table) = reconcile(&names, &[]);
    assert_eq!(code, 1, "{table}");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("2026-")).collect();
    assert_eq!(rows.len(), 1, "{table}");
    let lake = want("2026-01-01T11").to_string();
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        ["2026-01-01T11", &lake, &lake, "0", "0"],
        "{table}"
    );
    assert!(
        table.ends_with("4 hour(s) from 2026-01-01T09 to 2026-01-01T13 (exclusive) checked: 1 differ\n"),
        "{table}"
    );

    // A range that ends before it starts: a usage error, nothing read.
    let out = Command::new(env!("CARGO_BIN_EXE_nrt"))
        .args(["reconcile", "--from", "2026-01-01T13", "--to", "2026-01-01T09"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run nrt reconcile: {e}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--to must be a later hour than --from"));
}
