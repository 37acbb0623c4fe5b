//! Fault tests on the real stack: a sink or Kafka or the registry goes away mid-stream, or the consumer
//! is killed with SIGKILL again and again. Nothing may be lost, nothing may stay duplicated, and the
//! pipeline must recover by itself. Each test prints its figures.
//!
//! They stop shared services (scripts/stack.sh stop|start), so they run one at a time.
#![cfg(feature = "integration")]

use crate::common;

use std::time::{Duration, Instant};

use common::{Names, NrtProcess};
use nrt_pipeline::config::ServicesConfig;

const EPOCH_MS: i64 = 1_767_225_600_000;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A pipeline fed by a slowed-down seeded source (about 4,000 events/s), so faults land mid-stream.
async fn slow_source(seed: u64, events: u64) -> NrtProcess {
    let mock = common::spawn_mock(seed, events, EPOCH_MS);
    common::arm_chaos(&mock.url, "slow", 1_000_000, 25).await;
    mock
}

async fn rows(cfg: &ServicesConfig, names: &Names, at_least: u64) {
    common::wait_for(180, &format!("{at_least} rows in ClickHouse"), || async {
        (common::clickhouse_count(cfg, &names.table, false).await? >= at_least).then_some(())
    })
    .await;
}

async fn no_restarts(admin: &str) {
    let actors = common::get_json(&format!("{admin}/actors")).await;
    for (name, status) in actors.as_object().into_iter().flatten() {
        assert_eq!(status["restarts"], 0, "{name} restarted: {actors}");
    }
}

/// A sink stopped for 30 s mid-stream: nothing lost, and the pipeline recovers without a restart.
async fn sink_outage(service: &'static str, seed: u64) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new(&format!("{service}-down"));
    const EVENTS: u64 = 40_000;
    let mock = slow_source(seed, EVENTS).await;
    let mut pipeline = NrtProcess::spawn(&["run", "--role", "all"], &names.env(&mock.url));
    rows(&cfg, &names, 3_000).await;
    let started = Instant::now();
    {
        let _outage = common::Outage::begin(service);
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let down = started.elapsed();
    let raw = common::assert_all_landed_once(&cfg, &names, seed, EPOCH_MS, EVENTS).await;
    let errors = common::metric(
        &pipeline.url,
        &format!("nrt_sink_errors_total{{sink=\"{service}\"}}"),
    )
    .await;
    assert!(
        errors.unwrap_or_default() > 0.0,
        "the outage was not noticed: no {service} errors counted"
    );
    no_restarts(&pipeline.url).await;
    assert!(pipeline.is_running());
    println!(
        "fault {service} down {:.0} s: {EVENTS} events, 0 lost, 0 duplicates after FINAL ({raw} raw rows), \
         {} failed {service} writes retried, recovered without a restart",
        down.as_secs_f64(),
        errors.unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_stopped_for_30_seconds() {
    sink_outage("clickhouse", 31).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn minio_stopped_for_30_seconds() {
    sink_outage("minio", 32).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_broker_restarted_mid_stream() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("kafka-restart");
    const EVENTS: u64 = 40_000;
    let mock = slow_source(33, EVENTS).await;
    let producer = NrtProcess::spawn(&["run", "--role", "producer"], &names.env(&mock.url));
    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &names.env(&mock.url));
    rows(&cfg, &names, 3_000).await;
    let published_before = common::metric(&producer.url, "nrt_events_published_total").await;
    {
        let _outage = common::Outage::begin("kafka");
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    // The broker went down mid-stream: with events left to publish, not after the last one.
    assert!(
        published_before.is_some_and(|n| n < EVENTS as f64),
        "Kafka restarted after {published_before:?} of {EVENTS} events were published"
    );
    let raw = common::assert_all_landed_once(&cfg, &names, 33, EPOCH_MS, EVENTS).await;
    assert_eq!(
        common::metric(&producer.url, "nrt_events_published_total").await,
        Some(EVENTS as f64)
    );
    no_restarts(&producer.url).await;
    no_restarts(&consumer.url).await;
    println!(
        "fault kafka restarted: {EVENTS} acked events all landed, 0 duplicates after FINAL ({raw} raw rows)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_stopped_known_schemas_keep_landing() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("registry-down");
    const EVENTS: u64 = 40_000;
    // A steady source (16 s for all of it): events must still be flowing when the outage begins.
    let mock = common::spawn_mock_at(34, EVENTS, EPOCH_MS, Some(2_500));
    let pipeline = NrtProcess::spawn(&["run", "--role", "all"], &names.env(&mock.url));
    rows(&cfg, &names, 3_000).await;
    let (before, after) = {
        let _outage = common::Outage::begin("registry");
        let before = common::clickhouse_count(&cfg, &names.table, false)
            .await
            .unwrap_or_default();
        tokio::time::sleep(Duration::from_secs(8)).await;
        let after = common::clickhouse_count(&cfg, &names.table, false)
            .await
            .unwrap_or_default();
        (before, after)
    };
    assert!(
        after > before + 5_000,
        "events stopped landing while the registry was down: {before} -> {after}"
    );
    common::assert_all_landed_once(&cfg, &names, 34, EPOCH_MS, EVENTS).await;
    no_restarts(&pipeline.url).await;
    println!(
        "fault registry down 8 s: {} events landed meanwhile from cached schemas; {EVENTS} in all",
        after - before
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_killed_five_times() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("kill9");
    const EVENTS: u64 = 100_000;
    let mock = common::spawn_mock(35, EVENTS, EPOCH_MS);
    // About 2,000 events/s: the stream lasts long enough for five kills.
    common::arm_chaos(&mock.url, "slow", 1_000_000, 50).await;
    let mut env = names.env(&mock.url);
    env.push(("NRT_POLL_BATCH", "100"));
    let _producer = NrtProcess::spawn(&["run", "--role", "producer"], &env);
    let mut consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &env);
    let mut kills = Vec::new();
    for i in 1..=5u64 {
        rows(&cfg, &names, i * 6_000).await;
        // A random moment within the next half second.
        let jitter = rand::random::<u64>() % 500;
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        consumer.kill();
        kills.push(
            common::clickhouse_count(&cfg, &names.table, false)
                .await
                .unwrap_or_default(),
        );
        consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &env);
    }
    assert!(
        kills.iter().all(|rows| *rows < EVENTS),
        "a kill after everything had landed: {kills:?}"
    );
    let raw = common::assert_all_landed_once(&cfg, &names, 35, EPOCH_MS, EVENTS).await;
    println!("fault kill -9 consumer x5 (at {kills:?} rows): {EVENTS} events, 0 lost, 0 duplicates after FINAL ({raw} raw rows), 0 duplicate ids in MinIO");
    drop(consumer);
}
