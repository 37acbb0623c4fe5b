//! Graceful shutdown: SIGTERM drains (open batches written and committed before the process exits 0),
//! a drain that cannot finish gives up after NRT_SHUTDOWN_TIMEOUT_MS, and a second signal exits at once.
//! `POST /flush` writes open batches on demand.
#![cfg(feature = "integration")]

use crate::common;

use std::time::{Duration, Instant};

use common::{Names, NrtProcess};

const EPOCH_MS: i64 = 1_767_225_600_000;

async fn consumed(pipeline: &NrtProcess, events: u64) {
    common::wait_for(120, &format!("{events} events consumed"), || async {
        let n = common::metric(&pipeline.url, "nrt_events_consumed_total").await?;
        (n as u64 == events).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_writes_and_commits_open_batches_then_exits_0() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("drain");
    const SEED: u64 = 41;
    const EVENTS: u64 = 5_000;
    let mock = common::spawn_mock(SEED, EVENTS, EPOCH_MS);
    let mut env = names.env(&mock.url);
    // Batches that would stay open for ten minutes: only the drain can write them.
    env.push(("NRT_FLUSH_INTERVAL_MS", "600000"));
    env.push(("NRT_BATCH_MAX_RECORDS", "10000000"));
    let mut pipeline = NrtProcess::spawn(&["run", "--role", "all"], &env);
    consumed(&pipeline, EVENTS).await;
    let before = common::clickhouse_count(&cfg, &names.table, false).await;
    assert_eq!(
        before.unwrap_or_default(),
        0,
        "a batch was written before the drain"
    );
    assert_eq!(
        common::uncommitted_records(&cfg, &names),
        EVENTS,
        "something was committed before the drain"
    );

    let t0 = Instant::now();
    assert_eq!(pipeline.terminate(), Some(0), "exit code after a complete drain");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(30), "the drain took {took:?}");
    // Durable when the process is gone: no waiting here.
    assert_eq!(
        common::clickhouse_count(&cfg, &names.table, true).await,
        Some(EVENTS),
        "ClickHouse rows after the drain"
    );
    let ids = common::event_ids(&common::minio_lines(&cfg, &names.prefix).await);
    assert_eq!(ids.len() as u64, EVENTS, "MinIO lines after the drain");
    assert_eq!(
        common::uncommitted_records(&cfg, &names),
        0,
        "uncommitted offsets after the drain"
    );
    println!(
        "shutdown: SIGTERM with {EVENTS} events in open batches: written to both sinks and committed, exit 0 \
         after {:.2} s",
        took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_drain_times_out_and_a_second_signal_exits_at_once() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("stuck-drain");
    const EVENTS: u64 = 2_000;
    let mock = common::spawn_mock(42, EVENTS, EPOCH_MS);
    let mut env = names.env(&mock.url);
    // ClickHouse refuses every write of this test alone: its "table" is a view with the table's
    // columns (the reader learns them; no INSERT into a view ever succeeds), so no batch can complete.
    let view = format!(
        "CREATE VIEW {}.{} AS SELECT toUUID('00000000-0000-0000-0000-000000000000') AS event_id, '' AS type, \
         toInt64(0) AS user_id, toDecimal64(0, 2) AS amount, '' AS currency, toDateTime(0) AS created_at, \
         toInt64(0) AS created_at_ms, CAST(NULL AS Nullable(String)) AS country, \
         CAST(NULL AS Nullable(String)) AS session_id, toDateTime(0) AS ingested_at, \
         toInt32(0) AS kafka_partition, toInt64(0) AS kafka_offset",
        common::TEST_DATABASE,
        names.table
    );
    common::lake::execute(&cfg, &view).await;
    env.push(("NRT_SHUTDOWN_TIMEOUT_MS", "3000"));
    let mut pipeline = NrtProcess::spawn(&["run", "--role", "all"], &env);
    consumed(&pipeline, EVENTS).await;
    let t0 = Instant::now();
    pipeline.signal("TERM");
    let code = pipeline.wait_exit(Duration::from_secs(30));
    let took = t0.elapsed();
    assert_eq!(code, Some(75), "exit code of a drain that timed out");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "a 3 s drain timeout ended after {took:?}"
    );
    assert_eq!(
        common::uncommitted_records(&cfg, &names),
        EVENTS,
        "committed without ClickHouse"
    );

    env.push(("NRT_SHUTDOWN_TIMEOUT_MS", "600000"));
    let mut pipeline = NrtProcess::spawn(&["run", "--role", "consumer"], &env);
    consumed(&pipeline, EVENTS).await;
    pipeline.signal("TERM");
    assert_eq!(
        pipeline.wait_exit(Duration::from_secs(2)),
        None,
        "exited before its drain"
    );
    let t1 = Instant::now();
    pipeline.signal("TERM");
    let code = pipeline.wait_exit(Duration::from_secs(5));
    let second = t1.elapsed();
    assert_eq!(code, Some(130), "exit code after a second signal");
    assert_eq!(
        common::uncommitted_records(&cfg, &names),
        EVENTS,
        "committed without ClickHouse"
    );
    println!(
        "shutdown: stuck drain (ClickHouse refusing every write) gave up after {:.2} s with exit 75 (timeout 3 s); \
         second SIGTERM exited in {:.3} s with 130; {EVENTS} events left uncommitted for the next consumer",
        took.as_secs_f64(),
        second.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn post_flush_writes_open_batches_now() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("flush");
    const EVENTS: u64 = 3_000;
    const TOKEN: &str = "flush-token-0b9e";
    let mock = common::spawn_mock(45, EVENTS, EPOCH_MS);
    let mut env = names.env(&mock.url);
    env.push(("NRT_FLUSH_INTERVAL_MS", "600000"));
    env.push(("NRT_ADMIN_TOKEN", TOKEN));
    let pipeline = NrtProcess::spawn(&["run", "--role", "all"], &env);
    consumed(&pipeline, EVENTS).await;
    let post = |token: Option<&'static str>| {
        let mut req = reqwest::Client::new().post(format!("{}/flush", pipeline.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.map(|r| r.status().as_u16()).ok() }
    };
    assert_eq!(post(None).await, Some(401), "/flush without the token");
    assert_eq!(
        common::uncommitted_records(&cfg, &names),
        EVENTS,
        "flushed without being asked"
    );
    assert_eq!(post(Some(TOKEN)).await, Some(202));
    common::wait_for(30, "every event written and committed after /flush", || async {
        let rows = common::clickhouse_count(&cfg, &names.table, true).await?;
        (rows == EVENTS && common::uncommitted_records(&cfg, &names) == 0).then_some(())
    })
    .await;
    let ids = common::event_ids(&common::minio_lines(&cfg, &names.prefix).await);
    assert_eq!(ids.len() as u64, EVENTS, "MinIO lines after /flush");
    println!("flush: POST /flush wrote and committed {EVENTS} events held in ten-minute batches (401 without the token)");
}
