//! A partition's new owner takes over objects a former owner left in the lake, uncommitted: the former
//! owner had a far larger memory budget and batch size, wrote one object per partition (each opening
//! with a dead-lettered record, each with its offsets in a sidecar: a transaction marker every ~250
//! records), and died before ClickHouse (frozen) let it commit. The new owner, with the default budget
//! (32 MiB: less than the objects' events take together), must catch up without waiting to hold a
//! whole object, never replace an object or its sidecar, and leave ClickHouse exactly as a replay of the
//! lake rebuilds it: every column, the Kafka offsets and ingestion times included.
#![cfg(feature = "integration")]

use crate::common;

use std::time::Duration;

use common::lake::{checksum, replay};
use common::{Names, NrtProcess};
use rdkafka::producer::{FutureProducer, FutureRecord};

const SEED: u64 = 2230;
const EPOCH_MS: i64 = 1_767_225_600_000;
const PARTITIONS: i32 = 4;
const EVENTS: u64 = 480_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_default_budget_owner_takes_over_big_objects_exactly() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("takeover");
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, PARTITIONS, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Offset 0 of every partition is poison: each batch of the former owner opens with a dead letter.
    let producer: FutureProducer = nrt_pipeline::kafka::producer_config(&cfg.kafka)
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("{e}"));
    for p in 0..PARTITIONS {
        producer
            .send(
                FutureRecord::to(&names.topic)
                    .partition(p)
                    .key("poison")
                    .payload("not avro"),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("producing poison: {e}"));
    }
    // 1,000 events a transaction: a marker after every ~250 records of a partition.
    let mock = common::spawn_mock(SEED, EVENTS, EPOCH_MS);
    let mut env = names.env(&mock.url);
    env.push(("NRT_POLL_BATCH", "1000"));
    let t0 = std::time::Instant::now();
    let mut events = NrtProcess::spawn(&["run", "--role", "producer"], &env);
    common::wait_for(300, "every event published", || async {
        (common::metric(&events.url, "nrt_events_published_total").await? as u64 == EVENTS).then_some(())
    })
    .await;
    assert_eq!(events.terminate(), Some(0));
    let produced = t0.elapsed();

    // The former owner: room for a whole partition in one batch; ClickHouse frozen once it has learnt
    // the table (before its first flush, 15 s on), so it writes its objects and never commits. Then it
    // dies.
    let mut env = names.env(&mock.url);
    env.extend([
        ("NRT_BATCH_MAX_RECORDS", "200000"),
        ("NRT_BATCH_MAX_BYTES", "1073741824"),
        ("NRT_MAX_INFLIGHT_BYTES", "4294967296"),
        ("NRT_FLUSH_INTERVAL_MS", "15000"),
        ("NRT_FLUSH_QUIET_MS", "0"),
    ]);
    let mut former = NrtProcess::spawn(&["run", "--role", "consumer"], &env);
    common::wait_for(30, "the former owner reading", || async {
        (common::metric(&former.url, "nrt_events_consumed_total").await? > 0.0).then_some(())
    })
    .await;
    let frozen = common::Freeze::begin("clickhouse");
    assert_eq!(
        common::metric(&former.url, "nrt_batches_committed_total").await,
        Some(0.0),
        "the former owner committed before ClickHouse froze"
    );
    let store = nrt_pipeline::s3::ObjectStore::new(&cfg.s3).unwrap_or_else(|e| panic!("{e}"));
    let objects = common::wait_for(180, "the former owner's objects", || async {
        let keys = store.list(&names.prefix).await.ok()?;
        let objects: Vec<String> = keys.iter().filter(|k| k.ends_with(".jsonl")).cloned().collect();
        let sidecars = keys.iter().filter(|k| k.ends_with(".offsets")).count();
        (objects.len() == PARTITIONS as usize && sidecars == PARTITIONS as usize).then_some(objects)
    })
    .await;
    let lines = common::minio_lines(&cfg, &names.prefix).await;
    assert_eq!(
        lines.len() as u64,
        EVENTS,
        "the former owner's objects hold every event"
    );
    former.kill();
    drop(frozen);
    let left = t0.elapsed();
    let poison = PARTITIONS as u64;
    assert_eq!(
        common::uncommitted_records(&cfg, &names),
        EVENTS + poison,
        "the former owner committed"
    );

    // The new owner, with the default budget.
    let owner = NrtProcess::spawn(&["run", "--role", "consumer"], &names.env(&mock.url));
    common::assert_all_landed_once(&cfg, &names, SEED, EPOCH_MS, EVENTS).await;
    common::wait_for(60, "every record committed", || async {
        (common::uncommitted_records(&cfg, &names) == 0).then_some(())
    })
    .await;
    let keys = store.list(&names.prefix).await.unwrap_or_else(|e| panic!("{e}"));
    let now: Vec<String> = keys.iter().filter(|k| k.ends_with(".jsonl")).cloned().collect();
    assert_eq!(
        now, objects,
        "the lake's objects are the former owner's, none added or replaced"
    );
    let reused = common::metric(&owner.url, "nrt_lake_objects_reused_total")
        .await
        .unwrap_or_default();
    assert!(reused >= PARTITIONS as f64, "objects reused: {reused}");
    let (_, peak_rss) = owner.rss();
    let caught_up = t0.elapsed();

    // The lake rebuilds the live table exactly: offsets (from the sidecars), ingestion times, all of it.
    let rebuilt = format!("{}_rebuilt", names.table);
    let (_, _, replayed) = replay(&names, &rebuilt, ("2026-01-01T00", "2026-01-01T03"), &[]);
    assert_eq!(replayed, EVENTS);
    let live = checksum(&cfg, &names.table).await;
    assert_eq!(live.rows, EVENTS);
    assert_eq!(
        checksum(&cfg, &rebuilt).await,
        live,
        "the table rebuilt from the lake"
    );
    println!(
        "takeover: {EVENTS} events in {PARTITIONS} objects of {} lines with sidecars, left uncommitted by a \
         former owner; a new owner with the default 32 MiB budget caught up ({reused} objects reused, peak RSS {} MiB), \
         the lake unchanged, a replay equal to the live table (checksum {:x}); produced at {:.0} s, objects \
         left at {:.0} s, caught up at {:.0} s, replayed at {:.0} s",
        EVENTS / PARTITIONS as u64,
        peak_rss >> 20,
        live.hash,
        produced.as_secs_f64(),
        left.as_secs_f64(),
        caught_up.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
