//! Schema evolution while the pipeline runs, on the real services: v1 and v2 producers on one topic
//! (v2 registered as version 2 of the same subject), one consumer reading both into the newest reader
//! schema; and an incompatible v3 refused by the registry without losing what was polled.
#![cfg(feature = "integration")]

use crate::common;

use std::collections::{HashMap, HashSet};

use common::{Names, NrtProcess, TEST_DATABASE};
use nrt_pipeline::event::Event;
use nrt_pipeline::mock_api::Generator;

const EPOCH_MS: i64 = 1_767_225_600_000;
const V2_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/events.v2.avsc");
const V3_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/events.v3.incompatible.avsc"
);

/// A seeded Mock API whose events carry the v2 fields (as an events API that grew them).
fn spawn_mock(seed: u64, limit: u64, rate: Option<u64>) -> NrtProcess {
    common::spawn_mock_with(seed, limit, EPOCH_MS, rate, &["--extra-fields"])
}

fn expected(seed: u64, n: u64) -> Vec<Event> {
    let mut g = Generator::seeded(seed, EPOCH_MS).with_extra_fields();
    (0..n).map(|_| g.next_event()).collect()
}

/// A producer of `names`' topic polling `mock`, with its own transactional id and these extra settings.
fn producer(names: &Names, mock: &NrtProcess, txn: &str, extra: &[(&str, &str)]) -> NrtProcess {
    let txn = format!("{}-{txn}", names.topic);
    let mut env = names.env(&mock.url);
    env.push(("NRT_TRANSACTIONAL_ID", &txn));
    env.extend_from_slice(extra);
    NrtProcess::spawn(&["run", "--role", "producer"], &env)
}

async fn published(p: &NrtProcess, n: u64, secs: u64) {
    common::wait_for(secs, &format!("{n} events published by {}", p.url), || async {
        let m = common::metric(&p.url, "nrt_events_published_total").await?;
        (m as u64 >= n).then_some(())
    })
    .await;
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct Extras {
    id: String,
    country: Option<String>,
    session_id: Option<String>,
}

async fn clickhouse_extras(
    cfg: &nrt_pipeline::config::ServicesConfig,
    table: &str,
) -> HashMap<String, Extras> {
    let mut ch = cfg.clickhouse.clone();
    ch.database = TEST_DATABASE.to_owned();
    let rows = nrt_pipeline::clickhouse::client(&ch)
        .unwrap_or_else(|e| panic!("{e}"))
        .query(&format!(
            "SELECT toString(event_id) AS id, country, session_id FROM {table} FINAL"
        ))
        .fetch_all::<Extras>()
        .await
        .unwrap_or_else(|e| panic!("reading {table}: {e}"));
    rows.into_iter().map(|r| (r.id.clone(), r)).collect()
}

async fn versions(cfg: &nrt_pipeline::config::ServicesConfig, subject: &str) -> serde_json::Value {
    common::get_json(&format!("{}/subjects/{subject}/versions", cfg.registry.url)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_and_v2_producers_share_a_topic_and_both_land_once() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("evolution");
    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &names.env("http://127.0.0.1:9"));

    // 20,000 events through a v1 producer, then a v2 producer (a new process) for 20,000 more while
    // another v1 producer goes on beside it with 10,000.
    let first = spawn_mock(61, 20_000, None);
    let v1 = producer(&names, &first, "v1-first", &[]);
    published(&v1, 20_000, 120).await;
    let second = spawn_mock(62, 20_000, None);
    let third = spawn_mock(63, 10_000, Some(2_000));
    let v2 = producer(&names, &second, "v2", &[("NRT_SCHEMA_FILE", V2_FILE)]);
    let v1_beside = producer(&names, &third, "v1-beside", &[]);
    published(&v2, 20_000, 120).await;
    published(&v1_beside, 10_000, 120).await;
    let subject = format!("{}-value", names.topic);
    assert_eq!(
        versions(&cfg, &subject).await,
        serde_json::json!([1, 2]),
        "v2 is version 2 of {subject}"
    );

    let written_v1: Vec<Event> = expected(61, 20_000)
        .into_iter()
        .chain(expected(63, 10_000))
        .collect();
    let written_v2 = expected(62, 20_000);
    let all = written_v1.len() + written_v2.len();
    let lines = common::landed(&cfg, &names, all as u64).await;

    // ClickHouse: v2 rows with their values, v1 rows NULL (the events API sent the fields to the v1
    // producers too: their schema has no place for them).
    let rows = clickhouse_extras(&cfg, &names.table).await;
    assert_eq!(rows.len(), all, "rows FINAL");
    let text = |s: &Option<compact_str::CompactString>| s.as_ref().map(|s| s.to_string());
    for e in &written_v2 {
        let row = rows
            .get(&e.event_id.to_string())
            .unwrap_or_else(|| panic!("v2 event {} missing", e.event_id));
        let x = e.extra.as_deref().cloned().unwrap_or_default();
        assert_eq!(
            (&row.country, &row.session_id),
            (&text(&x.country), &text(&x.session_id)),
            "{row:?}"
        );
    }
    for e in &written_v1 {
        let row = rows
            .get(&e.event_id.to_string())
            .unwrap_or_else(|| panic!("v1 event {} missing", e.event_id));
        assert_eq!((&row.country, &row.session_id), (&None, &None), "v1 row {row:?}");
    }
    let with_country = written_v2
        .iter()
        .filter(|e| e.extra.as_ref().is_some_and(|x| x.country.is_some()))
        .count();
    assert!(
        with_country > 10_000 && with_country < 20_000,
        "the stream mixes both: {with_country}"
    );

    // MinIO: every event once, each line as it was written (the v2 fields only in v2 events' lines).
    assert_eq!(lines.len(), all, "JSONL lines");
    let by_id: HashMap<String, Event> = lines
        .iter()
        .map(|(key, l)| {
            let e: Event = serde_json::from_str(l).unwrap_or_else(|err| panic!("{key}: {err}: {l}"));
            (e.event_id.to_string(), e)
        })
        .collect();
    assert_eq!(by_id.len(), all, "an event sits in two lines");
    for e in &written_v2 {
        assert_eq!(by_id.get(&e.event_id.to_string()), Some(e), "v2 line");
    }
    for e in &written_v1 {
        let line = by_id.get(&e.event_id.to_string());
        let without = Event {
            extra: None,
            ..e.clone()
        };
        assert_eq!(line, Some(&without), "v1 line");
    }
    let raw_v1 = lines
        .iter()
        .filter(|(_, l)| !l.contains("\"session_id\""))
        .count();
    assert!(raw_v1 >= written_v1.len(), "v1 lines carry no v2 field: {raw_v1}");

    // Confluent's own deserializer reads every record of the topic, each with its writer schema.
    let read = read_topic(&cfg, &names.topic);
    assert_eq!(read["errors"], serde_json::json!([]), "{}", read["errors"]);
    assert_eq!(read["records"], all, "records read by confluent-kafka");
    let mut per_schema: Vec<u64> = read["schema_ids"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, n)| n.as_u64())
        .collect();
    per_schema.sort_unstable();
    assert_eq!(per_schema, [20_000, 30_000], "records per writer schema id");
    assert_eq!(read["with_country"], with_country, "v2 records with a country");
    let ids: HashSet<String> = common::strings(&read["ids"]);
    let want: HashSet<String> = written_v1
        .iter()
        .chain(&written_v2)
        .map(|e| e.event_id.to_string())
        .collect();
    assert_eq!(ids, want, "ids read by confluent-kafka");
    assert_eq!(common::kafka_lag(&cfg, &names), 0, "consumer lag");
    drop(consumer);
    println!(
        "evolution: {} v1 + {} v2 events on one topic (subject versions [1, 2]) landed once: {} rows FINAL, \
         {} JSONL lines; {with_country} v2 rows with a country, v1 rows NULL; confluent-kafka read {} records",
        written_v1.len(),
        written_v2.len(),
        rows.len(),
        lines.len(),
        read["records"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incompatible_schema_is_refused_loudly_and_nothing_is_lost() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    common::require(common::Service::Prometheus, &cfg).await;
    let names = Names::new("schema-refused");
    let subject = format!("{}-value", names.topic);
    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &names.env("http://127.0.0.1:9"));
    let before = spawn_mock(71, 2_000, None);
    let mut v2 = producer(&names, &before, "v2", &[("NRT_SCHEMA_FILE", V2_FILE)]);
    published(&v2, 2_000, 120).await;
    assert_eq!(v2.terminate(), Some(0), "v2 producer's exit");

    // The same subject under BACKWARD: a required field without a default is refused with 409.
    let v3 = std::fs::read_to_string(V3_FILE).unwrap_or_else(|e| panic!("{V3_FILE}: {e}"));
    let direct = reqwest::Client::new()
        .post(format!(
            "{}/compatibility/subjects/{subject}/versions/latest",
            cfg.registry.url
        ))
        .json(&serde_json::json!({"schema": v3}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("registry: {e}"));
    let verdict: serde_json::Value = direct.json().await.unwrap_or_default();
    assert_eq!(verdict["is_compatible"], false, "{verdict}");

    // A producer started with v3 (its file changed later, as an operator fixes it), where Prometheus
    // scrapes it (127.0.0.1:9180), so the alert is evaluated on the real server.
    let dir = std::env::temp_dir().join(common::unique("nrt-schema-"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let file = dir.join("events.avsc");
    std::fs::write(&file, &v3).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let file_text = file.display().to_string();
    let during = spawn_mock(72, 3_000, None);
    let refused = producer(
        &names,
        &during,
        "v3",
        &[
            ("NRT_SCHEMA_FILE", &file_text),
            ("NRT_ADMIN_ADDR", "127.0.0.1:9180"),
        ],
    );
    let http = reqwest::Client::new();
    let ready = common::wait_for(60, "/ready saying the schema is refused", || async {
        let r = http.get(format!("{}/ready", refused.url)).send().await.ok()?;
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.ok()?;
        let why = body["why"]["encoder"].as_str().unwrap_or_default().to_owned();
        (status == 503 && why.contains("not compatible")).then_some(why)
    })
    .await;
    assert!(ready.contains("409"), "the registry's answer is named: {ready}");
    assert_eq!(
        common::metric(&refused.url, "nrt_schema_refused").await,
        Some(1.0)
    );
    let firing = common::wait_for(150, "NrtSchemaRefused firing in Prometheus", || async {
        let alerts = common::get_json(&format!(
            "{}/api/v1/alerts",
            cfg.prometheus.url.trim_end_matches('/')
        ))
        .await;
        let list = alerts["data"]["alerts"].as_array()?.clone();
        list.into_iter()
            .find(|a| a["labels"]["alertname"] == "NrtSchemaRefused" && a["state"] == "firing")
    })
    .await;
    assert_eq!(
        common::metric(&refused.url, "nrt_events_published_total").await,
        Some(0.0)
    );
    let polled = common::metric(&refused.url, "nrt_events_polled_total")
        .await
        .unwrap_or_default();
    assert!(polled > 0.0, "the producer polled a batch and holds it");
    // Each refused attempt is counted by its kind, not as a generic publishing failure.
    let refusals = common::metric(&refused.url, r#"nrt_poll_errors_total{kind="schema_refused"}"#)
        .await
        .unwrap_or_default();
    assert!(refusals >= 1.0, "refusals counted as schema_refused: {refusals}");
    assert_eq!(
        common::metric(&refused.url, r#"nrt_poll_errors_total{kind="kafka"}"#).await,
        Some(0.0),
        "nothing counted as a Kafka failure"
    );
    assert_eq!(
        versions(&cfg, &subject).await,
        serde_json::json!([1]),
        "nothing registered"
    );

    // Back to v2: the producer reads the file again on its next retry and publishes everything.
    std::fs::write(&file, std::fs::read(V2_FILE).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    published(&refused, 3_000, 90).await;
    assert_eq!(
        common::metric(&refused.url, "nrt_schema_refused").await,
        Some(0.0)
    );
    let all = 5_000;
    let lines = common::landed(&cfg, &names, all).await;
    let ids: HashSet<String> = common::event_ids(&lines).into_iter().collect();
    let want: HashSet<String> = expected(71, 2_000)
        .iter()
        .chain(&expected(72, 3_000))
        .map(|e| e.event_id.to_string())
        .collect();
    assert_eq!(lines.len() as u64, all, "JSONL lines");
    assert_eq!(ids, want, "ids in MinIO");
    drop((refused, consumer));
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "schema refused: v3 (a required field without default) got 409 ({ready}); /ready 503, \
         nrt_schema_refused 1, alert {} {}; back to v2 from the same file: {all} events landed once \
         (2,000 before, 3,000 held and published after), subject versions [1]",
        firing["labels"]["alertname"], firing["state"]
    );
}

/// `tests/python/read_topic.py`: the whole topic through confluent-kafka's AvroDeserializer.
fn read_topic(cfg: &nrt_pipeline::config::ServicesConfig, topic: &str) -> serde_json::Value {
    common::python("read_topic.py", &[&cfg.kafka.brokers, &cfg.registry.url, topic])
}

/// Writes `n` events of the seeded stream `seed` (from event `skip` on) with writer schema `id`: v1's
/// fields, then `extra` (name, value) appended in the schema's order.
async fn produce_version(
    cfg: &nrt_pipeline::config::ServicesConfig,
    topic: &str,
    (schema, id): (&apache_avro::Schema, u32),
    extra: &[(&str, apache_avro::types::Value)],
    (seed, skip, n): (u64, usize, usize),
) {
    let producer: rdkafka::producer::FutureProducer = nrt_pipeline::kafka::producer_config(&cfg.kafka)
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut gen = Generator::seeded(seed, EPOCH_MS);
    for e in (0..skip + n).map(|_| gen.next_event()).skip(skip) {
        let mut value = e.to_avro();
        if let apache_avro::types::Value::Record(fields) = &mut value {
            fields.extend(extra.iter().map(|(name, v)| (name.to_string(), v.clone())));
        }
        let payload = nrt_pipeline::wire::encode(id, schema, value).unwrap_or_else(|e| panic!("{e}"));
        let key = e.event_id.to_string();
        producer
            .send(
                rdkafka::producer::FutureRecord::to(topic)
                    .key(&key)
                    .payload(&payload),
                std::time::Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("producing: {e}"));
    }
}

/// `events.v1` with its fields edited: `drop` removed, `add` (field JSON) appended.
fn v1_with(drop: &[&str], add: &[serde_json::Value]) -> String {
    let mut schema: serde_json::Value =
        serde_json::from_str(nrt_pipeline::event::SCHEMA_V1).unwrap_or_else(|e| panic!("{e}"));
    if let Some(fields) = schema["fields"].as_array_mut() {
        fields.retain(|f| !drop.contains(&f["name"].as_str().unwrap_or_default()));
        fields.extend(add.iter().cloned());
    }
    schema.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_producers_moving_through_three_versions_while_it_runs_lose_nothing() {
    use apache_avro::types::Value;
    const PER_PHASE: usize = 400;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("threeversions");
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, 3, 1, std::time::Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &names.env("http://127.0.0.1:1"));
    let channel = serde_json::json!({"name": "channel", "type": ["null", "string"], "default": null});
    let priority = serde_json::json!({"name": "priority", "type": "int", "default": 5});
    // v2 adds an optional field; v3 adds a field with a non-null default and removes v2's, which had one.
    let texts = [
        nrt_pipeline::event::SCHEMA_V1.to_owned(),
        v1_with(&[], std::slice::from_ref(&channel)),
        v1_with(&[], std::slice::from_ref(&priority)),
    ];
    let registry =
        nrt_pipeline::registry::RegistryClient::new(&cfg.registry, std::time::Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}"));
    let registry = std::sync::Arc::new(registry);
    let subject = format!("{}-value", names.topic);
    let mut producers = Vec::new();
    for p in 0..3u64 {
        let (cfg, topic, texts, registry, subject) = (
            cfg.clone(),
            names.topic.clone(),
            texts.clone(),
            registry.clone(),
            subject.clone(),
        );
        producers.push(tokio::spawn(async move {
            for (version, text) in texts.iter().enumerate() {
                let schema = apache_avro::Schema::parse_str(text).unwrap_or_else(|e| panic!("{e}"));
                let id = registry
                    .register(&subject, text)
                    .await
                    .unwrap_or_else(|e| panic!("v{}: {e}", version + 1));
                let extra = match version {
                    0 => vec![],
                    1 => vec![(
                        "channel",
                        Value::Union(1, Box::new(Value::String(format!("p{p}")))),
                    )],
                    _ => vec![("priority", Value::Int(10 + p as i32))],
                };
                produce_version(
                    &cfg,
                    &topic,
                    (&schema, id),
                    &extra,
                    (80 + p, version * PER_PHASE, PER_PHASE),
                )
                .await;
            }
        }));
    }
    for p in producers {
        p.await.unwrap_or_else(|e| panic!("a producer: {e}"));
    }
    const ALL: u64 = 3 * 3 * PER_PHASE as u64;
    let lines = common::landed(&cfg, &names, ALL).await;
    assert_eq!(lines.len() as u64, ALL, "lake lines");
    let with = |field: &str| {
        lines
            .iter()
            .filter(|(_, l)| l.contains(&format!("\"{field}\":")))
            .count()
    };
    assert_eq!(
        (with("channel"), with("priority")),
        (3 * PER_PHASE, 3 * PER_PHASE),
        "each line its writer's fields"
    );
    let both = lines
        .iter()
        .filter(|(_, l)| l.contains("\"channel\":") && l.contains("\"priority\":"))
        .count();
    assert_eq!(both, 0, "no line carries a field its writer did not write");

    let mut ch = cfg.clickhouse.clone();
    ch.database = TEST_DATABASE.to_owned();
    let client = nrt_pipeline::clickhouse::client(&ch).unwrap_or_else(|e| panic!("{e}"));
    let count = |condition: &str| {
        let sql = format!("SELECT count() FROM {} FINAL WHERE {condition}", names.table);
        let client = client.clone();
        async move {
            client
                .query(&sql)
                .fetch_one::<u64>()
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    };
    assert_eq!(
        count("channel IS NOT NULL").await,
        3 * PER_PHASE as u64,
        "v2 rows carry channel"
    );
    assert_eq!(
        count("priority >= 10").await,
        3 * PER_PHASE as u64,
        "v3 rows carry their priority"
    );
    assert_eq!(
        count("priority = 5").await,
        6 * PER_PHASE as u64,
        "older rows read v3's default"
    );
    let added = common::schema_changes(&client, &names.table).await;
    assert_eq!(added.len(), 2, "each column added once: {added:?}");
    assert!(
        added.iter().any(|s| s.contains("`priority` Int32 DEFAULT 5")),
        "{added:?}"
    );
    assert_eq!(
        common::topic_records(&cfg, &format!("{}.dlq", names.topic)),
        0,
        "dead letters"
    );
    assert_eq!(
        common::metric(&consumer.url, "nrt_events_consumed_total").await,
        Some(ALL as f64)
    );
    println!(
        "three producers v1 → v2 → v3 while the consumer ran: {ALL} events landed once; columns added once: {added:?}"
    );
}
