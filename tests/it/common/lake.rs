//! `nrt replay` and `nrt reconcile` as the tests run them, and a checksum over every column of a
//! table's `FINAL` rows: what "a rebuilt table equals the live one" is measured with.

use std::process::Command;

use nrt_pipeline::config::ServicesConfig;

use super::{Names, TEST_DATABASE};

/// `nrt ARGS` against `names`' lake prefix and the test database's `table`.
pub fn nrt(names: &Names, table: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nrt"));
    cmd.args(args)
        .env("NRT_S3_PREFIX", &names.prefix)
        .env("NRT_CLICKHOUSE_DATABASE", TEST_DATABASE)
        .env("NRT_CLICKHOUSE_TABLE", table)
        .env("RUST_LOG", "warn");
    cmd
}

/// Runs `nrt replay` to its end; returns its summary line's numbers (objects, resumed, events).
pub fn replay(names: &Names, table: &str, range: (&str, &str), extra: &[&str]) -> (u64, u64, u64) {
    replay_with(names, table, range, extra, &[])
}

/// `replay` with more environment (`envs`: another cluster's services, say).
pub fn replay_with(
    names: &Names,
    table: &str,
    range: (&str, &str),
    extra: &[&str],
    envs: &[(&str, &str)],
) -> (u64, u64, u64) {
    let out = nrt(names, table, &["replay", "--from", range.0, "--to", range.1])
        .args(extra)
        .envs(envs.iter().copied())
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

/// `nrt reconcile --json` of `from..to`: its exit code and report.
pub fn reconcile(names: &Names, from: &str, to: &str) -> (i32, serde_json::Value) {
    reconcile_with(names, from, to, &[])
}

/// `reconcile` with more environment (`envs`).
pub fn reconcile_with(
    names: &Names,
    from: &str,
    to: &str,
    envs: &[(&str, &str)],
) -> (i32, serde_json::Value) {
    let out = nrt(
        names,
        &names.table,
        &["reconcile", "--from", from, "--to", to, "--json"],
    )
    .envs(envs.iter().copied())
    .output()
    .unwrap_or_else(|e| panic!("cannot run nrt reconcile: {e}"));
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "reconcile printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

#[derive(Debug, PartialEq, Eq, clickhouse::Row, serde::Deserialize)]
pub struct Checksum {
    pub rows: u64,
    pub hash: u64,
}

/// `FINAL` rows and a hash over every column of them.
pub async fn checksum(cfg: &ServicesConfig, table: &str) -> Checksum {
    let mut ch = cfg.clickhouse.clone();
    ch.database = TEST_DATABASE.to_owned();
    nrt_pipeline::clickhouse::client(&ch)
        .unwrap_or_else(|e| panic!("{e}"))
        .query(&format!(
            "SELECT count() AS rows, sum(cityHash64(toString(event_id), type, user_id, toString(amount), currency, \
             created_at, created_at_ms, ingested_at, kafka_partition, kafka_offset, ifNull(country, '-'), \
             ifNull(session_id, '-'))) AS hash FROM {table} FINAL"
        ))
        .fetch_one::<Checksum>()
        .await
        .unwrap_or_else(|e| panic!("checksum of {table}: {e}"))
}

/// Runs one statement in the test database.
pub async fn execute(cfg: &ServicesConfig, sql: &str) {
    let mut ch = cfg.clickhouse.clone();
    ch.database = TEST_DATABASE.to_owned();
    nrt_pipeline::clickhouse::client(&ch)
        .unwrap_or_else(|e| panic!("{e}"))
        .query(sql)
        .execute()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The table's column names, sorted: what `checksum_of` hashes (the same list for two tables made
/// from the same schemas in another order).
pub async fn columns(cfg: &ServicesConfig, table: &str) -> Vec<String> {
    let mut ch = cfg.clickhouse.clone();
    ch.database = TEST_DATABASE.to_owned();
    let mut names: Vec<String> = nrt_pipeline::clickhouse::client(&ch)
        .unwrap_or_else(|e| panic!("{e}"))
        .query(&format!(
            "SELECT name FROM system.columns WHERE database = '{TEST_DATABASE}' AND table = '{table}'"
        ))
        .fetch_all()
        .await
        .unwrap_or_else(|e| panic!("columns of {table}: {e}"));
    names.sort();
    names
}

/// `FINAL` rows and a hash over `columns` of them (each as text, NULL as `\N`): any table.
pub async fn checksum_of(cfg: &ServicesConfig, table: &str, columns: &[String]) -> Checksum {
    let mut ch = cfg.clickhouse.clone();
    ch.database = TEST_DATABASE.to_owned();
    let texts: Vec<String> = columns
        .iter()
        .map(|c| format!("ifNull(toString(`{c}`), '\\\\N')"))
        .collect();
    nrt_pipeline::clickhouse::client(&ch)
        .unwrap_or_else(|e| panic!("{e}"))
        .query(&format!(
            "SELECT count() AS rows, sum(cityHash64({})) AS hash FROM {table} FINAL",
            texts.join(", ")
        ))
        .fetch_one::<Checksum>()
        .await
        .unwrap_or_else(|e| panic!("checksum of {table}: {e}"))
}

/// The lake's objects under `prefix` and the events their metadata says they hold; None while one
/// does not answer.
pub async fn objects(store: &nrt_pipeline::s3::ObjectStore, prefix: &str) -> Option<(Vec<String>, u64)> {
    let keys = store.list(prefix).await.ok()?;
    let objects: Vec<String> = keys
        .into_iter()
        .filter(|k| nrt_pipeline::lake::key::is_object(k))
        .collect();
    let mut events = 0u64;
    for key in &objects {
        events += store
            .metadata(key)
            .await
            .ok()?
            .get("nrt-events")?
            .parse::<u64>()
            .ok()?;
    }
    Some((objects, events))
}
