//! Hostile but valid Avro from an independent producer (Confluent's Python serializer): `created_at`
//! in nanoseconds and microseconds, before 1970, after 2106, at the extremes of long, and at the exact
//! edges of what the sinks hold, interleaved with ordinary events in the same batches. Every event ends
//! in exactly one place: the dead-letter topic with its reason, or both sinks with the exact value.
#![cfg(feature = "integration")]

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::{Names, NrtProcess};
use nrt_pipeline::event::Millis;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;

const GOOD: usize = 2_150;

#[tokio::test(flavor = "multi_thread")]
async fn every_hostile_time_is_dead_lettered_or_lands_exactly() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("hostile");
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, 3, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let produced = common::python_producer("produce_hostile.py", &cfg, &names.topic, GOOD);
    let good = common::strings(&produced["good"]);
    let hostile: BTreeMap<String, i64> = produced["hostile"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| Some((h["id"].as_str()?.to_owned(), h["created_at"].as_i64()?)))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!((good.len(), hostile.len()), (GOOD, 18));
    let (fine, refused): (BTreeMap<_, _>, BTreeMap<_, _>) = hostile
        .iter()
        .map(|(id, ms)| (id.clone(), *ms))
        .partition(|(_, ms)| Millis::SINKABLE.contains(ms));
    assert_eq!((fine.len(), refused.len()), (4, 14));

    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &names.env("http://127.0.0.1:1"));
    let expected_rows = (GOOD + fine.len()) as u64;
    common::wait_for(120, "every representable event in ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? == expected_rows).then_some(())
    })
    .await;
    common::wait_for(60, "nothing left uncommitted", || async {
        (common::uncommitted_records(&cfg, &names) == 0).then_some(())
    })
    .await;

    // ClickHouse: the representable edges with their exact milliseconds and seconds.
    let mut ch = cfg.clickhouse.clone();
    ch.database = common::TEST_DATABASE.to_owned();
    let rows: Vec<(String, i64, u32)> = nrt_pipeline::clickhouse::client(&ch)
        .unwrap_or_else(|e| panic!("{e}"))
        .query(&format!(
            "SELECT toString(event_id), created_at_ms, toUnixTimestamp(created_at) FROM {} FINAL",
            names.table
        ))
        .fetch_all()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let landed: HashSet<String> = rows.iter().map(|(id, _, _)| id.clone()).collect();
    assert_eq!(rows.len() as u64, expected_rows, "a row twice in ClickHouse");
    assert!(
        good.iter().all(|id| landed.contains(id)),
        "an ordinary event is missing from ClickHouse"
    );
    for (id, ms) in &fine {
        let row = rows.iter().find(|(r, _, _)| r == id);
        assert_eq!(
            row.map(|(_, m, s)| (*m, *s)),
            Some((*ms, ms.div_euclid(1000) as u32)),
            "created_at of {id} in ClickHouse"
        );
    }
    assert!(
        refused.keys().all(|id| !landed.contains(id)),
        "a refused time reached ClickHouse"
    );

    // MinIO: the same events, the edges' times as exact text.
    let lines = common::minio_lines(&cfg, &names.prefix).await;
    assert_eq!(lines.len() as u64, expected_rows, "MinIO lines");
    let mut in_lake = HashSet::new();
    for (key, line) in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{key}: {e}"));
        let id = v["event_id"].as_str().unwrap_or_default().to_owned();
        if let Some(ms) = fine.get(&id) {
            assert_eq!(
                v["created_at"].as_str(),
                Some(Millis(*ms).to_string().as_str()),
                "{line}"
            );
        }
        in_lake.insert(id);
    }
    assert_eq!(in_lake, landed, "MinIO and ClickHouse hold different events");

    // The dead-letter topic: exactly the refused times, each with its reason.
    let dlq_topic = format!("{}.dlq", names.topic);
    let reader: StreamConsumer =
        nrt_pipeline::kafka::consumer_config(&cfg.kafka, &common::unique("nrt-test-hostile-"))
            .and_then(|c| c.create())
            .unwrap_or_else(|e| panic!("{e}"));
    reader.subscribe(&[&dlq_topic]).unwrap_or_else(|e| panic!("{e}"));
    let mut dead = HashSet::new();
    while dead.len() < refused.len() {
        let msg = tokio::time::timeout(Duration::from_secs(30), reader.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {} in {dlq_topic}", dead.len(), refused.len()))
            .unwrap_or_else(|e| panic!("{e}"));
        let headers = common::headers(&msg);
        assert_eq!(
            headers.get("nrt.error.kind").map(String::as_str),
            Some("created_at_out_of_range"),
            "{headers:?}"
        );
        let key = String::from_utf8_lossy(msg.key().unwrap_or_default()).into_owned();
        assert!(
            refused.contains_key(&key),
            "{key} dead-lettered but representable"
        );
        dead.insert(key);
    }
    assert_eq!(
        common::topic_records(&cfg, &dlq_topic),
        refused.len() as u64,
        "records in {dlq_topic}"
    );
    let sample = "nrt_decode_errors_total{kind=\"created_at_out_of_range\"}";
    assert_eq!(
        common::metric(&consumer.url, sample).await,
        Some(refused.len() as f64)
    );
    let actors = common::get_json(&format!("{}/actors", consumer.url)).await;
    assert_eq!(actors["kafka_reader"]["restarts"], 0, "{actors}");
    println!(
        "hostile input: {GOOD} ordinary events and 18 hostile created_at values from Confluent's serializer: \
         {} dead-lettered as created_at_out_of_range, {} representable edges landed exactly, {} rows in \
         ClickHouse = {} lines in MinIO, consumer never restarted",
        refused.len(),
        fine.len(),
        rows.len(),
        lines.len()
    );
}

fn avro_long(n: i64) -> Vec<u8> {
    let mut out = Vec::new();
    nrt_pipeline::fast_avro::put_long(&mut out, n);
    out
}

/// Any schema id in the registry is decoded: a writer schema registered under some other subject, an
/// array of arrays of null, and records of a few dozen bytes claiming tens of millions of nulls. Each is
/// a dead letter (`beyond_limits`) and costs no memory; the good events around them land.
#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_writer_schema_costs_a_dead_letter_not_the_memory() {
    const EVENTS: u64 = 5_000;
    const HOSTILE: usize = 3;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("hostileschema");
    let registry = nrt_pipeline::registry::RegistryClient::new(&cfg.registry, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    let schema = r#"{"type":"record","name":"Hostile","fields":[
        {"name":"a","type":{"type":"array","items":{"type":"array","items":"null"}}}]}"#;
    let id = registry
        .register(&format!("{}-hostile-value", names.topic), schema)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Five inner arrays of nine million nulls each (each just under apache-avro's own 512 MiB limit
    // of one collection): 27 bytes of Avro, 2.5 GB of values once decoded.
    let mut avro = avro_long(5);
    for _ in 0..5 {
        avro.extend(avro_long(9_000_000));
        avro.extend(avro_long(0));
    }
    avro.extend(avro_long(0));
    let record = [&[0u8][..], &id.to_be_bytes(), &avro].concat();
    assert!(record.len() < 40, "{} bytes", record.len());

    let mock = common::spawn_mock_at(24, EVENTS, 1_767_225_600_000, Some(2_500));
    let pipeline = NrtProcess::spawn(&["run", "--role", "all"], &names.env(&mock.url));
    common::wait_for(60, "good events before the hostile records", || async {
        (common::metric(&pipeline.url, "nrt_events_published_total").await? >= 1_000.0).then_some(())
    })
    .await;
    let producer: rdkafka::producer::FutureProducer = nrt_pipeline::kafka::producer_config(&cfg.kafka)
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..HOSTILE {
        let key = format!("hostile-{i}");
        producer
            .send(
                rdkafka::producer::FutureRecord::to(&names.topic)
                    .key(&key)
                    .payload(&record),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("producing: {e}"));
    }
    let lines = common::landed(&cfg, &names, EVENTS).await;
    assert_eq!(lines.len() as u64, EVENTS);
    let dlq = format!("{}.dlq", names.topic);
    let letters = common::wait_for(60, "the hostile records dead-lettered", || async {
        let letters = common::topic_messages(&cfg, &dlq);
        (letters.len() == HOSTILE).then_some(letters)
    })
    .await;
    let (_, peak) = pipeline.rss();
    assert!(
        peak < 512 << 20,
        "the pipeline's peak RSS reached {} MiB",
        peak >> 20
    );
    for letter in &letters {
        let headers = common::headers(letter);
        assert_eq!(
            headers.get("nrt.error.kind").map(String::as_str),
            Some("beyond_limits"),
            "{headers:?}"
        );
        assert_eq!(letter.payload(), Some(&record[..]), "the record, untouched");
    }
    println!(
        "hostile writer schema: {HOSTILE} records of {} bytes claiming 45,000,000 nulls each: {} dead letters \
         (beyond_limits), {EVENTS} good events landed, peak RSS {} MiB",
        record.len(),
        letters.len(),
        peak >> 20
    );
}
