//! Rows a sink refuses for good: the ClickHouse table carries a guard column (`throwIf`, as a CHECK
//! constraint would) that refuses some events. The writer isolates them by halving the batch, writes
//! every other row, dead-letters exactly the refused ones (as JSON, with headers), and commits: no
//! partition is stuck, MinIO has every event.
#![cfg(feature = "integration")]

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Names, NrtProcess, TEST_DATABASE};
use nrt_pipeline::event::Event;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;

const SEED: u64 = 43;
const EPOCH_MS: i64 = 1_767_225_600_000;
const EVENTS: u64 = 20_000;

fn refused(e: &Event) -> bool {
    e.user_id % 1000 == 7
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_rows_are_dead_lettered_and_the_rest_lands() {
    refused_rows_with_a_lake_of("jsonl").await;
}

/// A Parquet lake's records keep their Avro datums, not their lines: a refused row's dead letter
/// carries the line made from its datum, the same JSON.
#[tokio::test(flavor = "multi_thread")]
async fn refused_rows_of_a_parquet_lake_are_dead_lettered_as_json() {
    refused_rows_with_a_lake_of("parquet").await;
}

async fn refused_rows_with_a_lake_of(format: &str) {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new(&format!("refused-{format}"));
    let dlq_topic = format!("{}.dlq", names.topic);
    // The pipeline's own DDL, plus a guard column ClickHouse evaluates on every insert.
    let server = nrt_pipeline::clickhouse::server_client(&cfg.clickhouse).unwrap_or_else(|e| panic!("{e}"));
    let ddl = nrt_pipeline::migrations::ddl(TEST_DATABASE, &names.table);
    let guarded = ddl[1].replacen(
        "kafka_offset    Int64",
        "kafka_offset Int64, guard UInt8 MATERIALIZED throwIf(user_id % 1000 = 7)",
        1,
    );
    assert_ne!(
        guarded, ddl[1],
        "the DDL changed: update this test's guard column"
    );
    for statement in [&ddl[0], &guarded] {
        server
            .query(statement)
            .execute()
            .await
            .unwrap_or_else(|e| panic!("ClickHouse at {}: {statement}: {e}", cfg.clickhouse.url));
    }
    let mut generator = nrt_pipeline::mock_api::Generator::seeded(SEED, EPOCH_MS);
    let events: Vec<Event> = (0..EVENTS).map(|_| generator.next_event()).collect();
    let expected: HashSet<String> = events
        .iter()
        .filter(|e| refused(e))
        .map(|e| e.event_id.to_string())
        .collect();
    let k = expected.len() as u64;
    assert!(k > 5, "the seed gives only {k} refused events");

    let mock = common::spawn_mock(SEED, EVENTS, EPOCH_MS);
    let mut env = names.env(&mock.url);
    env.push(("NRT_LAKE_FORMAT", format));
    let pipeline = NrtProcess::spawn(&["run", "--role", "all"], &env);
    common::wait_for(240, "every accepted event in ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? == EVENTS - k).then_some(())
    })
    .await;
    common::wait_for(
        60,
        "every refused row dead-lettered, every offset committed",
        || async {
            let sample = r#"nrt_sink_refused_total{sink="clickhouse"}"#;
            let n = common::metric(&pipeline.url, sample).await?;
            (n as u64 == k && common::uncommitted_records(&cfg, &names) == 0).then_some(())
        },
    )
    .await;
    let store = nrt_pipeline::s3::ObjectStore::new(&cfg.s3).unwrap_or_else(|e| panic!("{e}"));
    let (objects, in_lake) = common::lake::objects(&store, &names.prefix)
        .await
        .unwrap_or_else(|| panic!("the lake's objects under {}", names.prefix));
    assert_eq!(in_lake, EVENTS, "MinIO has every event, refused ones included");
    assert!(
        objects.iter().all(|k| k.ends_with(&format!(".{format}"))),
        "objects of another format than {format}: {objects:?}"
    );
    if format == "jsonl" {
        let lines = common::minio_lines(&cfg, &names.prefix).await;
        assert_eq!(lines.len() as u64, EVENTS, "JSONL lines");
    }

    let reader: StreamConsumer =
        nrt_pipeline::kafka::consumer_config(&cfg.kafka, &common::unique("nrt-test-refused-"))
            .and_then(|c| c.create())
            .unwrap_or_else(|e| panic!("{e}"));
    reader.subscribe(&[&dlq_topic]).unwrap_or_else(|e| panic!("{e}"));
    let mut seen = HashSet::new();
    while (seen.len() as u64) < k {
        let msg = tokio::time::timeout(Duration::from_secs(30), reader.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {k} refused rows in {dlq_topic}", seen.len()))
            .unwrap_or_else(|e| panic!("{e}"));
        let headers = common::headers(&msg);
        let get = |k: &str| headers.get(k).map(String::as_str).unwrap_or_default();
        assert_eq!(get("nrt.error.kind"), "refused_by_clickhouse", "{headers:?}");
        assert_eq!(get("nrt.payload.format"), "json", "{headers:?}");
        assert!(get("nrt.error.message").contains("395"), "{headers:?}");
        assert_eq!(get("nrt.original.topic"), names.topic, "{headers:?}");
        let payload = msg.payload().unwrap_or_default();
        let event: Event = serde_json::from_slice(payload)
            .unwrap_or_else(|e| panic!("dead letter payload is not an event: {e}"));
        // The lake line exactly (docs/data.md), whichever the lake's format.
        assert_eq!(
            String::from_utf8_lossy(payload),
            String::from_utf8_lossy(&lake_line(&event)),
            "the dead letter's payload against the event's lake line"
        );
        assert!(refused(&event), "{event:?} was not to be refused");
        assert_eq!(msg.key(), Some(event.event_id.to_string().as_bytes()));
        seen.insert(event.event_id.to_string());
    }
    assert_eq!(seen, expected, "dead-lettered ids");
    let errors = common::metric(&pipeline.url, r#"nrt_sink_errors_total{sink="clickhouse"}"#).await;
    println!(
        "sink refusals ({format} lake): ClickHouse refused {k} of {EVENTS} events (throwIf guard, code 395): {k} \
         in {dlq_topic}, {} rows FINAL, {EVENTS} events in the lake, lag 0; {} refused inserts while isolating them",
        EVENTS - k,
        errors.unwrap_or_default()
    );
}

/// The JSONL lake's line of `event` (events.v1): its JSON, which the lake writes byte for byte.
fn lake_line(event: &Event) -> Vec<u8> {
    let mut line = Vec::new();
    event.write_json(&mut line);
    line
}
