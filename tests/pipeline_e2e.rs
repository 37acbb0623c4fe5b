//! The whole pipeline on the real services: Mock API (fixed seed) → `nrt run --role all` → Kafka →
//! MinIO + ClickHouse. Counts must match exactly and sampled events must be equal field by field.
#![cfg(feature = "integration")]

mod common;

use std::collections::HashSet;
use std::time::Instant;

use common::{Names, NrtProcess};
use nrt_pipeline::event::{Event, EventRow};
use nrt_pipeline::mock_api::Generator;

const SEED: u64 = 42;
const EPOCH_MS: i64 = 1_767_225_600_000;
const EVENTS: u64 = 20_000;

#[tokio::test(flavor = "multi_thread")]
async fn mock_api_to_minio_and_clickhouse() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("e2e");
    let mock = common::spawn_mock(SEED, EVENTS, EPOCH_MS);
    let started = Instant::now();
    let mut pipeline = NrtProcess::spawn(&["run", "--role", "all"], &names.env(&mock.url));

    let admin = pipeline.url.clone();
    common::wait_for(120, "every event acknowledged by Kafka", || async {
        (common::metric(&admin, "nrt_events_published_total").await? as u64 == EVENTS).then_some(())
    })
    .await;
    common::wait_for(120, "every event in ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? == EVENTS).then_some(())
    })
    .await;
    let lines = common::wait_for(60, "every event in MinIO", || async {
        let lines = common::minio_lines(&cfg, &names.prefix).await;
        (lines.len() as u64 >= EVENTS).then_some(lines)
    })
    .await;
    let elapsed = started.elapsed();
    println!(
        "end to end: {EVENTS} events polled, published, written to MinIO and ClickHouse in {:.1} s ({:.0} events/s)",
        elapsed.as_secs_f64(),
        EVENTS as f64 / elapsed.as_secs_f64()
    );

    // What the Mock API served, regenerated from the seed.
    let mut generator = Generator::seeded(SEED, EPOCH_MS);
    let expected: Vec<Event> = (0..EVENTS).map(|_| generator.next_event()).collect();
    let expected_ids: HashSet<String> = expected.iter().map(|e| e.event_id.to_string()).collect();

    // Kafka: exactly the acked count.
    assert_eq!(
        common::metric(&admin, "nrt_events_published_total").await,
        Some(EVENTS as f64)
    );

    // MinIO: one line per event, each event once, keys of the documented shape.
    assert_eq!(lines.len() as u64, EVENTS, "JSONL lines across objects");
    let minio_events: Vec<Event> = lines
        .iter()
        .map(|(key, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{key}: bad JSONL line {l}: {e}")))
        .collect();
    let minio_ids: HashSet<String> = minio_events.iter().map(|e| e.event_id.to_string()).collect();
    assert_eq!(
        minio_ids.len() as u64,
        EVENTS,
        "duplicate event ids across MinIO objects"
    );
    assert_eq!(minio_ids, expected_ids);
    for (key, _) in &lines {
        let rest = key.strip_prefix(&names.prefix).unwrap_or_default();
        assert!(
            rest.starts_with("dt=2026-01-01/hour=00/events_20260101_00"),
            "{key}"
        );
        assert!(
            rest.contains("_p") && rest.contains("_o") && rest.ends_with(".jsonl"),
            "{key}"
        );
    }

    // ClickHouse: FINAL count, distinct ids, the same id set.
    let mut ch = cfg.clickhouse.clone();
    ch.database = common::TEST_DATABASE.to_owned();
    let client = nrt_pipeline::clickhouse::client(&ch).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<String> = client
        .query(&format!("SELECT toString(event_id) FROM {} FINAL", names.table))
        .fetch_all()
        .await
        .unwrap_or_else(|e| panic!("select ids: {e}"));
    assert_eq!(ids.len() as u64, EVENTS);
    assert_eq!(ids.into_iter().collect::<HashSet<_>>(), expected_ids);

    // A sample, field by field, across the three: money exact, time to the millisecond.
    let rows: Vec<EventRow> = client
        .query(&format!("SELECT * FROM {} FINAL", names.table))
        .fetch_all()
        .await
        .unwrap_or_else(|e| panic!("select rows: {e}"));
    let by_id = |id: uuid::Uuid| rows.iter().find(|r| r.event_id == id);
    for want in expected.iter().step_by(199) {
        let in_minio = minio_events.iter().find(|e| e.event_id == want.event_id);
        assert_eq!(in_minio, Some(want), "MinIO copy of {}", want.event_id);
        let row = by_id(want.event_id).unwrap_or_else(|| panic!("{} not in ClickHouse", want.event_id));
        assert_eq!(
            (
                row.kind.as_str(),
                row.user_id,
                row.amount,
                row.currency.as_str(),
                row.created_at_ms
            ),
            (
                want.kind.as_str(),
                want.user_id,
                want.amount.0,
                want.currency.as_str(),
                want.created_at.0
            ),
            "ClickHouse row of {}",
            want.event_id
        );
        assert_eq!(i64::from(row.created_at), want.created_at.0 / 1000);
    }
    assert_eq!(pipeline.terminate(), Some(0), "nrt run exits 0 on SIGTERM");
}

/// A producer of any record schema: `nrt mock-api --schema` serves seeded records of the every-type
/// schema as JSON, `nrt run --role all` with `NRT_SCHEMA_FILE` naming it encodes them along it, and every
/// record lands with exactly the JSON it was polled as; a record that does not fit the schema (one chaos
/// answer) is a dead letter naming the field, not dropped and not published.
#[tokio::test(flavor = "multi_thread")]
async fn records_of_any_schema_from_the_api_to_both_sinks() {
    const RECORDS: u64 = 3_000;
    const RECORD_SEED: u64 = 19;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("anyschema");
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/every_type.avsc");
    let mock = common::spawn_mock_with(RECORD_SEED, RECORDS, EPOCH_MS, None, &["--schema", schema]);
    // The first answer does not fit the schema (an event-shaped object): one dead letter.
    common::arm_chaos(&mock.url, "missing_field", 1, 0).await;
    let mut env = names.env(&mock.url);
    env.push(("NRT_SCHEMA_FILE", schema));
    let pipeline = NrtProcess::spawn(&["run", "--role", "all"], &env);
    let lines = common::landed(&cfg, &names, RECORDS).await;
    assert_eq!(lines.len() as u64, RECORDS, "lake lines");

    let text = std::fs::read_to_string(schema).unwrap_or_else(|e| panic!("{e}"));
    let plan = apache_avro::Schema::parse_str(&text)
        .map_err(|e| e.to_string())
        .and_then(|s| nrt_pipeline::avro::Plan::new(&s).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut gen = nrt_pipeline::mock_api::RecordGenerator::seeded(plan, RECORD_SEED, EPOCH_MS);
    let json =
        |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut expected: Vec<String> = (0..RECORDS).map(|_| json(&gen.next_line()).to_string()).collect();
    let mut got: Vec<String> = lines
        .iter()
        .map(|(_, l)| json(l.as_bytes()).to_string())
        .collect();
    expected.sort();
    got.sort();
    assert!(
        got == expected,
        "the lake holds exactly the records the API served"
    );

    let dlq = format!("{}.dlq", names.topic);
    let letters = common::wait_for(60, "the misfit dead-lettered", || async {
        let letters = common::topic_messages(&cfg, &dlq);
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 1, "one misfit record");
    let headers = common::headers(&letters[0]);
    assert_eq!(
        headers.get("nrt.error.kind").map(String::as_str),
        Some("invalid_record"),
        "{headers:?}"
    );
    let why = headers.get("nrt.error.message").cloned().unwrap_or_default();
    assert!(why.contains("event_id"), "the misfit's field is named: {why}");
    assert_eq!(
        common::metric(&pipeline.url, "nrt_poll_errors_total{kind=\"invalid_record\"}").await,
        Some(1.0)
    );
    assert_eq!(
        common::metric(&pipeline.url, "nrt_events_published_total").await,
        Some(RECORDS as f64),
        "the misfit was not published"
    );
    println!(
        "any schema, producer side: {RECORDS} records of the every-type schema polled as JSON, encoded along \
         it and landed exactly; 1 misfit dead-lettered ({why})"
    );
}

/// The pipeline configured by a pipelines file (`NRT_CONFIG`), not by the pipeline's variables: its
/// topic, group, table, lake prefix, flush interval and events API all come from the file, and every
/// event lands exactly once where the file says.
#[tokio::test(flavor = "multi_thread")]
async fn a_pipelines_file_configures_the_pipeline() {
    const N: u64 = 4_000;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("file");
    let mock = common::spawn_mock(7, N, EPOCH_MS);
    let dir = std::env::temp_dir().join(common::unique("nrt-file-"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("nrt.toml");
    let text = format!(
        "# one pipeline, every name its own\n[[pipeline]]\nname = \"orders\"\ntopic = \"{}\"\ngroup_id = \"{}\"\n\
         s3_prefix = \"{}\"\nclickhouse_table = \"{}\"\nmock_api_url = \"{}\"\nflush_interval_ms = 300\n",
        names.topic, names.group, names.prefix, names.table, mock.url
    );
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
    let path = file.to_string_lossy().into_owned();
    let env = [
        ("NRT_CONFIG", path.as_str()),
        ("NRT_CLICKHOUSE_DATABASE", common::TEST_DATABASE),
        ("NRT_ADMIN_ADDR", "127.0.0.1:0"),
        ("RUST_LOG", "warn"),
    ];
    let mut pipeline = NrtProcess::spawn(&["run", "--role", "all"], &env);
    common::wait_for(120, "every event in ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? == N).then_some(())
    })
    .await;
    let lines = common::landed(&cfg, &names, N).await;
    assert_eq!(lines.len() as u64, N, "lake lines under the file's prefix");
    assert_eq!(
        common::event_ids(&lines)
            .into_iter()
            .collect::<HashSet<_>>()
            .len() as u64,
        N
    );
    assert_eq!(
        common::topic_records(&cfg, &names.topic),
        N,
        "published to the file's topic"
    );
    common::wait_for(60, "the file's group committed everything", || async {
        (common::kafka_lag(&cfg, &names) == 0).then_some(())
    })
    .await;
    assert_eq!(pipeline.terminate(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
