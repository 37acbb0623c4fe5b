//! The whole pipeline on the real services: Mock API (fixed seed) → `nrt run --role all` → Kafka →
//! MinIO + ClickHouse. Counts must match exactly and sampled events must be equal field by field.
#![cfg(feature = "integration")]

use crate::common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

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
        // The key reads back: this pipeline's prefix, the hour of the events' time, a real partition.
        let parsed = nrt_pipeline::lake::key::ObjectKey::parse(key)
            .unwrap_or_else(|| panic!("{key}: not an object key"));
        assert_eq!(parsed.prefix, names.prefix, "{key}");
        assert_eq!(
            parsed.hour(),
            nrt_pipeline::lake::Hour::of_millis(EPOCH_MS),
            "{key}"
        );
        assert!((0..3).contains(&parsed.partition), "{key}");
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

/// `nrt run --role all` with the pipelines file `text` (and only the services in the environment); the
/// file's directory, to remove at the end.
fn run_pipelines_file(text: &str) -> (NrtProcess, std::path::PathBuf) {
    run_pipelines_file_as("all", text)
}

fn run_pipelines_file_as(role: &str, text: &str) -> (NrtProcess, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(common::unique("nrt-file-"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("nrt.toml");
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
    let path = file.to_string_lossy().into_owned();
    let env = [
        ("NRT_CONFIG", path.as_str()),
        ("NRT_CLICKHOUSE_DATABASE", common::TEST_DATABASE),
        ("NRT_ADMIN_ADDR", "127.0.0.1:0"),
        ("RUST_LOG", "warn"),
    ];
    (NrtProcess::spawn(&["run", "--role", role], &env), dir)
}

/// Five topics of one pipelines file in one process: three pipelines of one topic each, three schemas
/// (events.v1, v2 and the every-type record), and a pipeline of two topics (`topics = [...]`, a table
/// and a lake prefix per topic by `{topic}`), each its own consumer group and producer. Every record
/// lands exactly once where its pipeline's part of the file says; the metrics carry each pipeline's
/// name; `/actors` and `/ready` show each pipeline.
#[tokio::test(flavor = "multi_thread")]
async fn five_topics_of_one_file_land_in_their_own_tables_and_prefixes() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let every_type = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/every_type.avsc");
    let v2 = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/events.v2.avsc");
    // (pipeline, records, mock-api flags, schema file)
    let plan: [(&str, u64, &[&str], Option<&str>); 3] = [
        ("orders", 3_000, &[], None),
        ("clicks", 2_000, &["--extra-fields"], Some(v2)),
        ("sensors", 1_000, &["--schema", every_type], Some(every_type)),
    ];
    let mut mocks = Vec::new();
    let mut text = String::from("# four pipelines, five topics, one process\n");
    let mut all = Vec::new();
    // Two topics in one pipeline: its producers share one events API, so each topic gets some of its
    // 2,000 events, and each table must hold exactly its topic's.
    let regions = Names::new("regions");
    let two = [format!("{}-eu", regions.topic), format!("{}-us", regions.topic)];
    let regions_mock = common::spawn_mock(15, 2_000, EPOCH_MS);
    text.push_str(&format!(
        "\n[[pipeline]]\nname = \"regions\"\ntopics = [\"{}\", \"{}\"]\ns3_prefix = \"{}{{topic}}/\"\n\
         clickhouse_table = \"{}_{{topic}}\"\nmock_api_url = \"{}\"\nflush_interval_ms = 300\n",
        two[0], two[1], regions.prefix, regions.table, regions_mock.url
    ));
    for (i, (name, n, flags, schema)) in plan.iter().enumerate() {
        let names = Names::new(name);
        let mock = common::spawn_mock_with(11 + i as u64, *n, EPOCH_MS, None, flags);
        text.push_str(&format!(
            "\n[[pipeline]]\nname = \"{name}\"\ntopic = \"{}\"\ngroup_id = \"{}\"\ns3_prefix = \"{}\"\n\
             clickhouse_table = \"{}\"\nmock_api_url = \"{}\"\nflush_interval_ms = 300\n",
            names.topic, names.group, names.prefix, names.table, mock.url
        ));
        if let Some(schema) = schema {
            text.push_str(&format!("schema_file = \"{schema}\"\n"));
        }
        mocks.push(mock);
        all.push((*name, *n, names));
    }
    let (mut pipeline, dir) = run_pipelines_file(&text);
    for (name, n, names) in &all {
        let lines = common::landed(&cfg, names, *n).await;
        assert_eq!(lines.len() as u64, *n, "{name}: lake lines under its prefix");
        let distinct: HashSet<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(distinct.len() as u64, *n, "{name}: every line once");
        assert_eq!(
            common::topic_records(&cfg, &names.topic),
            *n,
            "{name}: published to its topic"
        );
        common::wait_for(60, "each group committed everything", || async {
            (common::kafka_lag(&cfg, names) == 0).then_some(())
        })
        .await;
        let consumed = format!("nrt_events_consumed_total{{pipeline=\"{name}\"}}");
        assert_eq!(
            common::metric(&pipeline.url, &consumed).await,
            Some(*n as f64),
            "{consumed}"
        );
        // A metric's own labels are printed before the pipeline's.
        let written = format!("nrt_events_written_total{{sink=\"clickhouse\",pipeline=\"{name}\"}}");
        assert_eq!(
            common::metric(&pipeline.url, &written).await,
            Some(*n as f64),
            "{written}"
        );
    }
    let v2_columns = common::lake::columns(&cfg, &all[1].2.table).await;
    assert!(
        v2_columns.iter().any(|c| c == "country"),
        "clicks' table has v2's columns: {v2_columns:?}"
    );
    let actors = common::get_json(&format!("{}/actors", pipeline.url)).await;
    for (name, _, _) in &all {
        assert_eq!(actors[name]["batcher"]["state"], "running", "{name}: {actors}");
        assert_eq!(actors[name]["poller"]["state"], "running", "{name}: {actors}");
    }
    let mut regions_total = 0;
    for topic in &two {
        let names = Names {
            topic: topic.clone(),
            group: format!("nrt-consumer-regions-{topic}"),
            prefix: format!("{}{topic}/", regions.prefix),
            table: format!("{}_{}", regions.table, topic.replace('-', "_")),
        };
        common::wait_for(120, "the regions topics all published", || async {
            let published = two.iter().map(|t| common::topic_records(&cfg, t)).sum::<u64>();
            (published == 2_000).then_some(())
        })
        .await;
        let n = common::topic_records(&cfg, topic);
        let lines = common::landed(&cfg, &names, n).await;
        let distinct: HashSet<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            (lines.len() as u64, distinct.len() as u64),
            (n, n),
            "{topic}: its lake prefix, once each"
        );
        assert_eq!(
            actors[format!("regions.{topic}")]["batcher"]["state"],
            "running",
            "{actors}"
        );
        regions_total += n;
    }
    assert_eq!(
        regions_total, 2_000,
        "every event of the regions API, in one of its two topics"
    );
    let ready = common::get_json(&format!("{}/ready", pipeline.url)).await;
    assert_eq!(ready["pipelines"]["sensors"]["ready"], true, "{ready}");
    assert_eq!(pipeline.terminate(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// One pipeline's table goes away mid-stream (renamed: every insert refused): only that pipeline
/// stops committing; the other, in the same process, keeps landing throughout. Once the table is
/// back, both are exact.
#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_whose_table_is_gone_holds_only_itself() {
    const N: u64 = 16_000;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let (stuck, steady) = (Names::new("stuck"), Names::new("steady"));
    let mocks = [
        common::spawn_mock_at(21, N, EPOCH_MS, Some(2_000)),
        common::spawn_mock_at(22, N, EPOCH_MS, Some(2_000)),
    ];
    let mut text = String::new();
    for ((name, names), mock) in [("stuck", &stuck), ("steady", &steady)].into_iter().zip(&mocks) {
        text.push_str(&format!(
            "[[pipeline]]\nname = \"{name}\"\ntopic = \"{}\"\ngroup_id = \"{}\"\ns3_prefix = \"{}\"\n\
             clickhouse_table = \"{}\"\nmock_api_url = \"{}\"\nflush_interval_ms = 200\n\n",
            names.topic, names.group, names.prefix, names.table, mock.url
        ));
    }
    let (mut pipeline, dir) = run_pipelines_file(&text);
    common::wait_for(60, "the stuck pipeline's first rows", || async {
        (common::clickhouse_count(&cfg, &stuck.table, false).await? >= 1_000).then_some(())
    })
    .await;
    let server = nrt_pipeline::clickhouse::server_client(&cfg.clickhouse).unwrap_or_else(|e| panic!("{e}"));
    let (table, away) = (
        format!("{}.{}", common::TEST_DATABASE, stuck.table),
        format!("{}.{}_away", common::TEST_DATABASE, stuck.table),
    );
    let rename = |from: &str, to: &str| format!("RENAME TABLE {from} TO {to}");
    server
        .query(&rename(&table, &away))
        .execute()
        .await
        .unwrap_or_else(|e| panic!("rename: {e}"));
    let steady_before = common::clickhouse_count(&cfg, &steady.table, false)
        .await
        .unwrap_or(0);
    let held_before = common::kafka_lag(&cfg, &stuck);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let steady_after = common::clickhouse_count(&cfg, &steady.table, false)
        .await
        .unwrap_or(0);
    let held_after = common::kafka_lag(&cfg, &stuck);
    let actors = common::get_json(&format!("{}/actors", pipeline.url)).await;
    let ready = reqwest::get(format!("{}/ready", pipeline.url))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let held = (
        ready.status().as_u16(),
        ready.json::<serde_json::Value>().await.unwrap_or_default(),
    );
    server
        .query(&rename(&away, &table))
        .execute()
        .await
        .unwrap_or_else(|e| panic!("rename back: {e}"));
    assert!(
        // 2,000 events/s are served; on two busy cores a few hundred landed is proof enough that it moves.
        steady_after >= steady_before + 500,
        "the other pipeline kept landing during the fault: {steady_before} -> {steady_after}"
    );
    assert!(
        held_after > held_before,
        "the stuck pipeline committed nothing: lag {held_before} -> {held_after}"
    );
    let why = actors["stuck"]["batcher"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        why.contains("clickhouse"),
        "the stuck pipeline says why: {actors}"
    );
    assert!(actors["steady"]["batcher"]["last_error"].is_null(), "{actors}");
    assert_eq!(actors["stuck"]["batcher"]["state"], "blocked", "{actors}");
    assert_eq!(
        held.0, 503,
        "/ready while a pipeline's sink refuses every write: {}",
        held.1
    );
    assert_eq!(held.1["pipelines"]["stuck"]["ready"], false, "{}", held.1);
    assert_eq!(held.1["pipelines"]["steady"]["ready"], true, "{}", held.1);
    let not_running = held.1["actors_not_running"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(not_running.iter().any(|n| n == "stuck:batcher"), "{}", held.1);
    for names in [&stuck, &steady] {
        let lines = common::landed(&cfg, names, N).await;
        let distinct: HashSet<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            (lines.len() as u64, distinct.len() as u64),
            (N, N),
            "{}: the lake, once each",
            names.table
        );
        common::wait_for(60, "everything committed", || async {
            (common::kafka_lag(&cfg, names) == 0).then_some(())
        })
        .await;
    }
    common::wait_for(30, "ready again once the table is back", || async {
        let ready = common::get_json(&format!("{}/ready", pipeline.url)).await;
        (ready["ready"] == true).then_some(())
    })
    .await;
    assert_eq!(pipeline.terminate(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two processes with the same pipelines file share each pipeline's partitions (one consumer group
/// per pipeline): both consume from both pipelines, and every record lands exactly once in the lake
/// and in ClickHouse, through the rebalance the second one's arrival causes mid-stream.
#[tokio::test(flavor = "multi_thread")]
async fn two_processes_with_one_file_share_every_pipeline() {
    const N: u64 = 8_000;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = [Names::new("shared-a"), Names::new("shared-b")];
    let mocks = [
        // 8 s of records each: the second process joins while they flow.
        common::spawn_mock_at(31, N, EPOCH_MS, Some(1_000)),
        common::spawn_mock_at(32, N, EPOCH_MS, Some(1_000)),
    ];
    let mut text = String::new();
    for ((name, names), mock) in ["a", "b"].into_iter().zip(&names).zip(&mocks) {
        text.push_str(&format!(
            "[[pipeline]]\nname = \"{name}\"\ntopic = \"{}\"\ngroup_id = \"{}\"\ns3_prefix = \"{}\"\n\
             clickhouse_table = \"{}\"\nmock_api_url = \"{}\"\nflush_interval_ms = 200\n\n",
            names.topic, names.group, names.prefix, names.table, mock.url
        ));
    }
    let (mut first, dir) = run_pipelines_file(&text);
    common::wait_for(60, "the first process consuming", || async {
        (common::metric(&first.url, "nrt_events_consumed_total{pipeline=\"b\"}").await? > 0.0).then_some(())
    })
    .await;
    let (mut second, second_dir) = run_pipelines_file(&text);
    for names in &names {
        let lines = common::landed(&cfg, names, N).await;
        let distinct: HashSet<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            (lines.len() as u64, distinct.len() as u64),
            (N, N),
            "{}: the lake, once each",
            names.table
        );
        common::wait_for(60, "everything committed", || async {
            (common::kafka_lag(&cfg, names) == 0).then_some(())
        })
        .await;
    }
    for (pipeline, name) in [(&first, "a"), (&first, "b"), (&second, "a"), (&second, "b")] {
        let sample = format!("nrt_events_consumed_total{{pipeline=\"{name}\"}}");
        let consumed = common::metric(&pipeline.url, &sample).await.unwrap_or_default();
        assert!(
            consumed > 0.0,
            "{} consumed nothing of pipeline {name}",
            pipeline.url
        );
    }
    assert_eq!((first.terminate(), second.terminate()), (Some(0), Some(0)));
    let _ = (
        std::fs::remove_dir_all(&dir),
        std::fs::remove_dir_all(&second_dir),
    );
}

/// `nrt doctor --config` checks what each pipeline of the file needs: its topic, its producer's
/// subject under its strategy (and the topic's other record types' subjects) and its table, each
/// named by the pipeline, as they are on the real services.
#[tokio::test(flavor = "multi_thread")]
async fn doctor_checks_every_pipeline_of_a_file() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let (ready, fresh, mixed) = (
        Names::new("doctor-ready"),
        Names::new("doctor-fresh"),
        Names::new("doctor-mixed"),
    );
    // `ready` has its subject registered and its table made; `fresh` has neither yet.
    let registry =
        nrt_pipeline::registry::RegistryClient::new(&cfg.registry, std::time::Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}"));
    let id = registry
        .register(&format!("{}-value", ready.topic), nrt_pipeline::event::SCHEMA_V1)
        .await
        .unwrap_or_else(|e| panic!("register: {e}"));
    // `mixed` names subjects by topic and record: another record type of its topic is registered.
    let order = r#"{"type":"record","name":"Order","namespace":"shop.v1","fields":[{"name":"order_id","type":"long"}]}"#;
    registry
        .register(&format!("{}-shop.v1.Order", mixed.topic), order)
        .await
        .unwrap_or_else(|e| panic!("register: {e}"));
    let server = nrt_pipeline::clickhouse::server_client(&cfg.clickhouse).unwrap_or_else(|e| panic!("{e}"));
    for statement in nrt_pipeline::migrations::ddl(common::TEST_DATABASE, &ready.table) {
        server
            .query(&statement)
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let dir = std::env::temp_dir().join(common::unique("nrt-doctor-"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("nrt.toml");
    let mut text = String::new();
    for (name, names) in [("ready", &ready), ("fresh", &fresh)] {
        text.push_str(&format!(
            "[[pipeline]]\nname = \"{name}\"\ntopic = \"{}\"\nclickhouse_table = \"{}\"\ns3_prefix = \"{}\"\n\n",
            names.topic, names.table, names.prefix
        ));
    }
    text.push_str(&format!(
        "[[pipeline]]\nname = \"mixed\"\ntopic = \"{}\"\nclickhouse_table = \"{}\"\ns3_prefix = \"{}\"\n\
         subject_strategy = \"topic_record\"\nschema_file = \"{}\"\n",
        mixed.topic,
        mixed.table,
        mixed.prefix,
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/refund.avsc")
    ));
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
    let out = common::run(
        std::process::Command::new(env!("CARGO_BIN_EXE_nrt"))
            .args(["doctor", "--config"])
            .arg(&file)
            .env("NRT_CLICKHOUSE_DATABASE", common::TEST_DATABASE),
    );
    let said = common::text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let line = |pipeline: &str, check: &str| {
        said.lines()
            .find(|l| l.split_whitespace().take(2).eq([pipeline, check]))
            .unwrap_or_else(|| panic!("no {pipeline} {check} line:\n{said}"))
            .to_owned()
    };
    assert!(
        line("ready", "subject").contains(&format!("version 1, schema id {id}")),
        "{said}"
    );
    assert!(line("ready", "table").contains("present, 12 columns"), "{said}");
    assert!(line("fresh", "subject").contains("not registered yet"), "{said}");
    let topic = &mixed.topic;
    assert!(
        line("mixed", "subject").contains(&format!(
            "{topic}-shop.v1.Refund: not registered yet (its producer registers it; a consumer waits for it); \
             other subjects (topic-record): {topic}-shop.v1.Order"
        )),
        "{said}"
    );
    assert!(
        line("fresh", "table").contains("absent (made from the first writer schema"),
        "{said}"
    );
    assert!(
        line("fresh", "topic").contains(&format!("topic {} absent", fresh.topic)),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pipeline with a `topic_pattern` picks up a topic created while it runs (within the discovery
/// interval) and lands its records exactly in the table and lake prefix its topic names.
#[tokio::test(flavor = "multi_thread")]
async fn a_topic_pattern_picks_up_a_topic_created_while_running() {
    const N: u64 = 3_000;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let id = common::unique("");
    let topic = format!("nrt-test-pat-{id}-a");
    let text = format!(
        "[[pipeline]]\nname = \"pat\"\ntopic_pattern = \"nrt-test-pat-{id}-[a-z]+\"\n\
         clickhouse_table = \"pat_{{topic}}\"\ns3_prefix = \"test-pat-{id}/{{topic}}/\"\nflush_interval_ms = 300\n"
    );
    let (mut consumer, dir) = run_pipelines_file_as("consumer", &text);
    let actors = common::get_json(&format!("{}/actors", consumer.url)).await;
    assert!(
        actors.as_object().is_some_and(|a| a.is_empty()),
        "no topic matches yet: {actors}"
    );
    let page = reqwest::get(format!("{}/", consumer.url))
        .await
        .unwrap_or_else(|e| panic!("status page: {e}"));
    assert_eq!(page.status().as_u16(), 200, "the status page while nothing runs");
    let html = page.text().await.unwrap_or_default();
    assert!(html.contains("No pipeline runs yet"), "{html}");
    // The topic appears (its producer creates it) while the consumer runs.
    let mock = common::spawn_mock(41, N, EPOCH_MS);
    let producer_env = [
        ("NRT_TOPIC", topic.as_str()),
        ("NRT_MOCK_API_URL", mock.url.as_str()),
        ("NRT_ADMIN_ADDR", "127.0.0.1:0"),
        ("RUST_LOG", "warn"),
    ];
    let mut producer = NrtProcess::spawn(&["run", "--role", "producer"], &producer_env);
    let names = Names {
        topic: topic.clone(),
        group: format!("nrt-consumer-pat-{topic}"),
        prefix: format!("test-pat-{id}/{topic}/"),
        table: format!("pat_{}", topic.replace('-', "_")),
    };
    let lines = common::landed(&cfg, &names, N).await;
    let distinct: HashSet<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        (lines.len() as u64, distinct.len() as u64),
        (N, N),
        "the lake under the topic's prefix"
    );
    common::wait_for(60, "the instance's group committed everything", || async {
        (common::kafka_lag(&cfg, &names) == 0).then_some(())
    })
    .await;
    let actors = common::get_json(&format!("{}/actors", consumer.url)).await;
    assert_eq!(
        actors[format!("pat.{topic}")]["batcher"]["state"],
        "running",
        "{actors}"
    );
    // The one instance has the whole budget; a second matching topic makes it half each.
    let bound = |t: String| format!("nrt_inflight_bound_bytes{{pipeline=\"pat.{t}\"}}");
    let budget = (32u64 << 20) as f64;
    assert_eq!(
        common::metric(&consumer.url, &bound(topic.clone())).await,
        Some(budget)
    );
    let second = format!("nrt-test-pat-{id}-b");
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &second, 1, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    common::wait_for(40, "the budget shared by the two instances", || async {
        let a = common::metric(&consumer.url, &bound(topic.clone())).await?;
        let b = common::metric(&consumer.url, &bound(second.clone())).await?;
        (a == budget / 2.0 && b == budget / 2.0).then_some(())
    })
    .await;
    assert_eq!((producer.terminate(), consumer.terminate()), (Some(0), Some(0)));
    let _ = std::fs::remove_dir_all(&dir);
}
