//! Fault test 9, backpressure: ClickHouse is down while the topic fills with far more than the consumer
//! may hold. The reader pauses its partitions at `NRT_MAX_INFLIGHT_BYTES`, its memory stays bounded
//! (peak RSS reported), it stays in its group, and when ClickHouse is back it resumes by itself and
//! every event lands once.
#![cfg(feature = "integration")]

use crate::common;

use std::time::Duration;

use common::{Names, NrtProcess};

const SEED: u64 = 39;
const EPOCH_MS: i64 = 1_767_225_600_000;
const EVENTS: u64 = 300_000;
const MAX_INFLIGHT: u64 = 8 << 20;
/// What the consumer may grow by over its warm size while the backlog waits: the in-flight Avro bytes
/// decoded into events (a few times their wire size), librdkafka's prefetch (a quarter of the bound),
/// one chunk, and allocator slack.
const RSS_GROWTH_BOUND: u64 = 5 * MAX_INFLIGHT;

const MIB: f64 = (1 << 20) as f64;

#[tokio::test(flavor = "multi_thread")]
async fn a_full_topic_behind_a_dead_sink_keeps_memory_bounded() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("backpressure");
    let mock = common::spawn_mock(SEED, EVENTS, EPOCH_MS);
    let mut env = names.env(&mock.url);
    let bound = MAX_INFLIGHT.to_string();
    env.push(("NRT_MAX_INFLIGHT_BYTES", &bound));
    env.push(("NRT_BATCH_MAX_BYTES", "1048576"));
    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &env);
    // A first trickle through both sinks, so the consumer is warm when its baseline is taken.
    common::arm_chaos(&mock.url, "slow", 1_000_000, 50).await;
    let producer = NrtProcess::spawn(&["run", "--role", "producer"], &env);
    common::wait_for(120, "2,000 rows in ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, false).await? >= 2_000).then_some(())
    })
    .await;
    let (warm, _) = consumer.rss();

    let outage = common::Outage::begin("clickhouse");
    common::arm_chaos(&mock.url, "slow", 0, 0).await;
    let paused = common::wait_for(
        300,
        "the whole stream published and the reader paused",
        || async {
            let published = common::metric(&producer.url, "nrt_events_published_total").await?;
            let paused = common::metric(&consumer.url, "nrt_consumer_paused_partitions").await?;
            (published as u64 == EVENTS && paused > 0.0).then_some(paused)
        },
    )
    .await;
    // The backlog waits in Kafka, not in the consumer: hold it a while longer.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let lag = common::kafka_lag(&cfg, &names);
    let inflight = common::metric(&consumer.url, "nrt_inflight_bytes")
        .await
        .unwrap_or_default();
    // The kernel's high-water mark: the peak over the whole run, warm-up included.
    let (_, peak) = consumer.rss();
    drop(outage);

    let raw = common::assert_all_landed_once(&cfg, &names, SEED, EPOCH_MS, EVENTS).await;
    common::wait_for(60, "partitions resumed", || async {
        let paused = common::metric(&consumer.url, "nrt_consumer_paused_partitions").await?;
        (paused == 0.0).then_some(())
    })
    .await;
    let actors = common::get_json(&format!("{}/actors", consumer.url)).await;
    assert_eq!(actors["kafka_reader"]["restarts"], 0, "{actors}");
    println!(
        "fault 9 backpressure: ClickHouse down while {EVENTS} events were produced; reader paused {paused} \
         partitions with {:.1} MiB in flight (bound {:.0} MiB) and a lag of {lag} events; consumer RSS warm \
         {:.1} MiB, peak {:.1} MiB (growth {:.1} MiB, allowed {:.0} MiB); resumed by itself: {EVENTS} events \
         FINAL ({raw} raw rows)",
        inflight / MIB,
        MAX_INFLIGHT as f64 / MIB,
        warm as f64 / MIB,
        peak as f64 / MIB,
        peak.saturating_sub(warm) as f64 / MIB,
        RSS_GROWTH_BOUND as f64 / MIB,
    );
    assert!(
        lag > EVENTS / 2,
        "the backlog ({lag} events) is not much larger than what the consumer holds: the test proves nothing"
    );
    assert!(
        peak.saturating_sub(warm) < RSS_GROWTH_BOUND,
        "consumer RSS grew from {warm} to {peak} bytes with the sink down: more than {RSS_GROWTH_BOUND}"
    );
    assert!(
        inflight <= (MAX_INFLIGHT + (4 << 20)) as f64,
        "{inflight} bytes in flight"
    );
}
