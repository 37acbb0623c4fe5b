//! Restart: the consumer is stopped (SIGTERM) mid-stream and started again. Nothing may be lost, no
//! duplicate may remain after FINAL, and no event may sit in two MinIO objects.
#![cfg(feature = "integration")]

use crate::common;

use common::{Names, NrtProcess};

const SEED: u64 = 5;
const EPOCH_MS: i64 = 1_767_225_600_000;
const EVENTS: u64 = 30_000;

#[tokio::test(flavor = "multi_thread")]
async fn consumer_restart_mid_stream_loses_and_duplicates_nothing() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("restart");
    let mock = common::spawn_mock(SEED, EVENTS, EPOCH_MS);
    // Slow the source down (100 events per ~25 ms) so the stream is still flowing when the consumer stops.
    common::arm_chaos(&mock.url, "slow", 100_000, 25).await;

    let mut env = names.env(&mock.url);
    env.push(("NRT_POLL_BATCH", "100"));
    let producer = NrtProcess::spawn(&["run", "--role", "producer"], &env);
    let mut first = NrtProcess::spawn(&["run", "--role", "consumer"], &env);
    let before = common::wait_for(120, "the first 3,000 rows", || async {
        let n = common::clickhouse_count(&cfg, &names.table, false).await?;
        (n >= 3_000).then_some(n)
    })
    .await;
    assert_eq!(first.terminate(), Some(0), "consumer exits 0 on SIGTERM");
    let published_at_stop = common::metric(&producer.url, "nrt_events_published_total")
        .await
        .unwrap_or_default();
    assert!(
        published_at_stop < EVENTS as f64,
        "the stream had already ended: not a mid-stream stop"
    );

    let second = NrtProcess::spawn(&["run", "--role", "consumer"], &env);
    let raw_rows = common::assert_all_landed_once(&cfg, &names, SEED, EPOCH_MS, EVENTS).await;
    println!(
        "restart: {before} rows before SIGTERM at {published_at_stop} published; after restart {EVENTS} rows FINAL \
         ({raw_rows} before merge), {EVENTS} JSONL lines"
    );
    assert_eq!(
        common::metric(&producer.url, "nrt_events_published_total").await,
        Some(EVENTS as f64)
    );
    drop(second);
}
