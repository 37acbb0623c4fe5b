//! `nrt replay` on the real services: two hours deleted from ClickHouse are named by `nrt reconcile`
//! and replayed back from the lake; a dropped table is rebuilt, also by a replay killed mid-way and run
//! again; replaying twice changes nothing; `--table` rebuilds into a fresh table. Every time the
//! table's `FINAL` rows equal the originals column for column (a checksum over every column).
#![cfg(feature = "integration")]

use crate::common;

use std::time::Duration;

use common::lake::{self, checksum, execute, nrt, replay};
use common::{Names, NrtProcess};
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

fn reconcile(names: &Names) -> (i32, serde_json::Value) {
    lake::reconcile(names, "2026-01-01T09", "2026-01-01T13")
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

/// An event hours before its batch's first one (a producer backfilling): its object sits under the
/// first event's hour, 12, and the event is of hour 09. `reconcile` and `replay` of hour 09 find it
/// (the object leaves a reference under 09), however far it is from the object's own hour.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_far_from_its_objects_hour_is_found_by_its_own_hour() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("farhour");
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, 1, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let registry = nrt_pipeline::registry::RegistryClient::new(&cfg.registry, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    let schema_text = nrt_pipeline::event::SCHEMA_V1;
    let id = registry
        .register(&format!("{}-value", names.topic), schema_text)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let schema = apache_avro::Schema::parse_str(schema_text).unwrap_or_else(|e| panic!("{e}"));
    let noon = Hour::parse("2026-01-01T12").map_or(0, |h| h.0 * 3_600_000);
    let half_past_nine = Hour::parse("2026-01-01T09").map_or(0, |h| h.0 * 3_600_000) + 30 * 60_000;
    let mut generator = nrt_pipeline::mock_api::Generator::seeded(91, noon);
    let events: Vec<_> = (0..50i64)
        .map(|i| {
            let mut e = generator.next_event();
            e.created_at =
                nrt_pipeline::event::Millis(if i == 1 { half_past_nine } else { noon + i * 1_000 });
            e
        })
        .collect();
    // Produced at once: the records land in one batch, whose first event is of 12:00.
    let producer: rdkafka::producer::FutureProducer = nrt_pipeline::kafka::producer_config(&cfg.kafka)
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("{e}"));
    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &names.env("http://127.0.0.1:9"));
    for e in &events {
        let payload = nrt_pipeline::wire::encode(id, &schema, e.to_avro()).unwrap_or_else(|e| panic!("{e}"));
        let key = e.event_id.to_string();
        producer
            .send(
                rdkafka::producer::FutureRecord::to(&names.topic)
                    .key(&key)
                    .payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("producing: {e}"));
    }
    let lines = common::landed(&cfg, &names, events.len() as u64).await;
    drop(consumer);
    let objects: std::collections::HashSet<&String> = lines.iter().map(|(k, _)| k).collect();
    assert_eq!(objects.len(), 1, "one batch, one object: {objects:?}");
    assert!(objects.iter().all(|k| k.contains("/hour=12/")), "{objects:?}");

    let (code, report) = lake::reconcile(&names, "2026-01-01T09", "2026-01-01T10");
    assert_eq!(report["hours"][0]["lake_ids"], 1, "{report}");
    assert_eq!(
        (code, report["differ"].clone()),
        (0, serde_json::json!([])),
        "{report}"
    );
    let nine = format!("{}_nine", names.table);
    let (_, _, replayed) = replay(&names, &nine, ("2026-01-01T09", "2026-01-01T10"), &[]);
    assert_eq!(replayed, 1, "the 09:30 event replayed from the object of hour 12");
    let all = format!("{}_all", names.table);
    replay(&names, &all, ("2026-01-01T09", "2026-01-01T13"), &[]);
    assert_eq!(
        checksum(&cfg, &all).await,
        checksum(&cfg, &names.table).await,
        "the rebuilt table"
    );
    println!(
        "far hour: an event of 09:30 in a batch whose object sits under hour 12: reconcile 09..10 clean (1 id \
         in the lake), replay of hour 09 rebuilt it, replay of 09..13 equals the live table"
    );
}

/// Any record type, two writer schemas interleaved in every batch: `every_type.avsc` (every Avro type
/// and logical type, a map of several entries, nested records) and a v2 adding an optional field. The
/// table nrt made (key: Kafka coordinates, partitioned by `at_ms`) is reconciled clean; hour 10
/// deleted is named and replayed; a rebuild into a fresh table equals the live one column for column.
#[tokio::test(flavor = "multi_thread")]
async fn any_record_type_is_reconciled_and_replayed_exactly() {
    use nrt_pipeline::avro::{random, Plan};
    use rand::SeedableRng;
    const N: u64 = 3_000;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("anyreplay");
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, 2, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let v1_text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/every_type.avsc"
    ))
    .unwrap_or_else(|e| panic!("every_type.avsc: {e}"));
    let mut v2: serde_json::Value = serde_json::from_str(&v1_text).unwrap_or_else(|e| panic!("{e}"));
    if let Some(fields) = v2["fields"].as_array_mut() {
        fields.push(serde_json::json!({"name": "note", "type": ["null", "string"], "default": null}));
    }
    let registry = nrt_pipeline::registry::RegistryClient::new(&cfg.registry, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    let subject = format!("{}-value", names.topic);
    let mut versions = Vec::new();
    for text in [v1_text.clone(), v2.to_string()] {
        let id = registry
            .register(&subject, &text)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let schema = apache_avro::Schema::parse_str(&text).unwrap_or_else(|e| panic!("{e}"));
        versions.push((id, Plan::new(&schema).unwrap_or_else(|e| panic!("{e}"))));
    }
    let consumer = {
        let mut env = names.env("http://127.0.0.1:9");
        env.push(("NRT_BATCH_MAX_RECORDS", "250"));
        NrtProcess::spawn(&["run", "--role", "consumer"], &env)
    };
    // 09:40 on, a record every 2.5 s: hours 09, 10 and 11; runs of 7 records of each version.
    let start = Hour::parse("2026-01-01T09").map_or(0, |h| h.0 * 3_600_000) + 40 * 60_000;
    let producer: rdkafka::producer::FutureProducer = nrt_pipeline::kafka::producer_config(&cfg.kafka)
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let mut sends = Vec::new();
    for i in 0..N {
        let (id, plan) = &versions[(i / 7 % 2) as usize];
        let mut payload = vec![0u8];
        payload.extend_from_slice(&id.to_be_bytes());
        random::datum(plan, &mut rng, start + i as i64 * 2_500, &mut payload);
        let (producer, topic) = (producer.clone(), names.topic.clone());
        sends.push(tokio::spawn(async move {
            let key = (i % 13).to_string();
            producer
                .send(
                    rdkafka::producer::FutureRecord::to(&topic)
                        .key(&key)
                        .payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e.to_string())
        }));
    }
    for send in sends {
        send.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("producing: {e}"));
    }
    let lines = common::landed(&cfg, &names, N).await;
    drop(consumer);
    let columns = lake::columns(&cfg, &names.table).await;
    assert!(
        columns.contains(&"note".to_owned()) && columns.contains(&"attrs".to_owned()),
        "{columns:?}"
    );
    let original = lake::checksum_of(&cfg, &names.table, &columns).await;
    assert_eq!(original.rows, N);
    let range = ("2026-01-01T09", "2026-01-01T12");
    let (code, report) = lake::reconcile(&names, range.0, range.1);
    assert_eq!(
        (code, report["differ"].clone()),
        (0, serde_json::json!([])),
        "{report}"
    );
    let lake_lines: u64 = (0..3)
        .map(|h| report["hours"][h]["lake_ids"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(lake_lines, N, "{report}");

    // Hour 10 deleted: named by reconcile, replayed back.
    let secs = |h: &str| Hour::parse(h).map_or(0, |h| h.0 * 3600);
    execute(
        &cfg,
        &format!(
            "ALTER TABLE {} DELETE WHERE at_ms >= toDateTime({}) AND at_ms < toDateTime({})",
            names.table,
            secs("2026-01-01T10"),
            secs("2026-01-01T11")
        ),
    )
    .await;
    common::wait_for(60, "hour 10 deleted", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? < N).then_some(())
    })
    .await;
    let (code, report) = lake::reconcile(&names, range.0, range.1);
    assert_eq!(
        (code, report["differ"].clone()),
        (1, serde_json::json!(["2026-01-01T10"])),
        "{report}"
    );
    let (_, _, repaired) = replay(&names, &names.table, ("2026-01-01T10", "2026-01-01T11"), &[]);
    assert_eq!(repaired, 1_440, "a record every 2.5 s for an hour");
    assert_eq!(lake::reconcile(&names, range.0, range.1).0, 0, "after the replay");
    assert_eq!(
        lake::checksum_of(&cfg, &names.table, &columns).await,
        original,
        "rows after the repair"
    );

    // Counted without a table; rebuilt into a fresh one.
    let (_, _, counted) = replay(&names, "never_created", range, &["--dry-run"]);
    assert_eq!(counted, N);
    assert_eq!(common::clickhouse_count(&cfg, "never_created", false).await, None);
    let fresh = format!("{}_rebuilt", names.table);
    replay(&names, &fresh, range, &[]);
    assert_eq!(
        lake::columns(&cfg, &fresh).await,
        columns,
        "the rebuilt table's columns"
    );
    assert_eq!(
        lake::checksum_of(&cfg, &fresh, &columns).await,
        original,
        "the rebuilt table"
    );
    let maps = lines
        .iter()
        .filter_map(|(_, l)| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["attrs"].as_object().is_some_and(|m| m.len() > 1))
        .count();
    assert!(
        maps > 100,
        "{maps} lines with a map of several entries: the test proves less"
    );
    println!(
        "any record type: {N} records of two writer schemas (every Avro type; {maps} maps of several \
         entries) reconciled clean over 3 hours; hour 10 deleted, named, replayed ({repaired}); a rebuild \
         into {fresh} equals the live table: {} rows, checksum {:x} over {} columns",
        original.rows,
        original.hash,
        columns.len()
    );
}
