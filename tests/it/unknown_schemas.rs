//! Records whose schema ids the registry does not know are not dead-lettered wholesale when the registry
//! is the one that is wrong. Pointed at an empty registry, the consumer pauses at the first record and
//! says why (`/ready` 503, `nrt_consumer_blocked`), dead-letters nothing, commits nothing; pointed back,
//! everything lands. A registry that knows the topic but lacks its newest schema (restored from an old
//! backup) pauses the consumer once 100 records in a row have that id, and it resumes by itself when
//! the schema is registered again.
//!
//! A writer schema the table cannot take (a field retyped beyond widening, forced in with compatibility
//! NONE) holds the consumer the same way: nothing dead-lettered or committed past it, `/ready` 503
//! naming the field; once an operator makes the column a `String` it resumes, and every record lands.
//!
//! They count on the registry handing out the next id to them, so they run one at a time.
#![cfg(feature = "integration")]

use crate::common;

use std::time::Duration;

use apache_avro::Schema;
use common::{Names, NrtProcess, RegistryProcess};
use nrt_pipeline::config::ServicesConfig;
use nrt_pipeline::event::SCHEMA_V1;
use nrt_pipeline::mock_api::Generator;
use nrt_pipeline::registry::RegistryClient;
use rdkafka::producer::{FutureProducer, FutureRecord};

const EPOCH_MS: i64 = 1_767_225_600_000;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn registry(url: &str) -> RegistryClient {
    let mut cfg = common::services().registry;
    cfg.url = url.to_owned();
    RegistryClient::new(&cfg, Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"))
}

/// Produces `n` events of the seeded stream (from event `skip` on), framed with schema `id`; `extra`
/// names a leading optional field that schema has beyond v1 (written as null).
struct Writer<'a> {
    schema: &'a Schema,
    id: u32,
    extra: Option<&'a str>,
    /// `user_id` written as a string (`"u<n>"`), as a schema that retyped it does.
    text_user_id: bool,
}

async fn produce(cfg: &ServicesConfig, topic: &str, w: Writer<'_>, seed: u64, skip: usize, n: usize) {
    let producer: FutureProducer = nrt_pipeline::kafka::producer_config(&cfg.kafka)
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut gen = Generator::seeded(seed, EPOCH_MS);
    let events: Vec<_> = (0..skip + n).map(|_| gen.next_event()).skip(skip).collect();
    for e in events {
        let mut value = e.to_avro();
        if let (Some(name), apache_avro::types::Value::Record(fields)) = (w.extra, &mut value) {
            let null = apache_avro::types::Value::Union(0, Box::new(apache_avro::types::Value::Null));
            fields.insert(0, (name.to_owned(), null));
        }
        if let (true, apache_avro::types::Value::Record(fields)) = (w.text_user_id, &mut value) {
            for (name, v) in fields.iter_mut() {
                if let ("user_id", apache_avro::types::Value::Long(n)) = (name.as_str(), &*v) {
                    *v = apache_avro::types::Value::String(format!("u{n}"));
                }
            }
        }
        let payload = nrt_pipeline::wire::encode(w.id, w.schema, value).unwrap_or_else(|e| panic!("{e}"));
        let key = e.event_id.to_string();
        producer
            .send(
                FutureRecord::to(topic).key(&key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("producing: {e}"));
    }
}

async fn ready_status(admin: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::get(format!("{admin}/ready"))
        .await
        .unwrap_or_else(|e| panic!("GET /ready: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// Waits until the consumer says it is blocked for `reason`; returns what `/actors` says of the reader.
async fn blocked(admin: &str, reason: &str) -> String {
    let sample = format!("nrt_consumer_blocked{{reason=\"{reason}\"}}");
    common::wait_for(60, &format!("the consumer blocked ({reason})"), || async {
        (common::metric(admin, &sample).await? == 1.0).then_some(())
    })
    .await;
    let (status, body) = ready_status(admin).await;
    assert_eq!(status, 503, "/ready while blocked: {body}");
    let actors = common::get_json(&format!("{admin}/actors")).await;
    assert_eq!(actors["kafka_reader"]["state"], "blocked", "{actors}");
    actors["kafka_reader"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The test's topic with one partition (records come in the order they were produced) and `events.v1`
/// registered under its value subject: the registry client, the subject, v1's id.
async fn one_partition_with_v1(cfg: &ServicesConfig, names: &Names) -> (RegistryClient, String, u32) {
    let subject = format!("{}-value", names.topic);
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, 1, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = registry(&cfg.registry.url);
    let v1 = client
        .register(&subject, SCHEMA_V1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (client, subject, v1)
}

fn dead_letters(cfg: &ServicesConfig, names: &Names) -> u64 {
    common::topic_records(cfg, &format!("{}.dlq", names.topic))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_registry_pauses_the_consumer_instead_of_dead_lettering() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("emptyreg");
    const EVENTS: usize = 3_000;
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, 3, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = registry(&cfg.registry.url)
        .register(&format!("{}-value", names.topic), SCHEMA_V1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let schema = Schema::parse_str(SCHEMA_V1).unwrap_or_else(|e| panic!("{e}"));
    let writer = Writer {
        schema: &schema,
        id,
        extra: None,
        text_user_id: false,
    };
    produce(&cfg, &names.topic, writer, 71, 0, EVENTS).await;

    let empty = RegistryProcess::start();
    let mut env = names.env("http://127.0.0.1:1");
    env.push(("NRT_SCHEMA_REGISTRY_URL", &empty.url));
    let mut consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &env);
    let why = blocked(&consumer.url, "registry_lacks_schemas").await;
    assert!(why.contains("NRT_SCHEMA_REGISTRY_URL"), "{why}");
    // Longer than a recheck: still paused, still nothing dead-lettered, committed or written.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let paused = common::metric(&consumer.url, "nrt_consumer_paused_partitions").await;
    assert_eq!(
        paused,
        Some(3.0),
        "partitions paused while the registry cannot tell"
    );
    assert_eq!(
        dead_letters(&cfg, &names),
        0,
        "dead letters from a wrong registry"
    );
    assert_eq!(
        common::uncommitted_records(&cfg, &names),
        EVENTS as u64,
        "committed past unknown records"
    );
    assert_eq!(
        common::clickhouse_count(&cfg, &names.table, false)
            .await
            .unwrap_or_default(),
        0
    );
    assert_eq!(
        consumer.terminate(),
        Some(0),
        "a blocked consumer still shuts down cleanly"
    );

    // Pointed back at the right registry: everything lands, once.
    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &names.env("http://127.0.0.1:1"));
    common::assert_all_landed_once(&cfg, &names, 71, EPOCH_MS, EVENTS as u64).await;
    assert_eq!(dead_letters(&cfg, &names), 0);
    let (status, body) = ready_status(&consumer.url).await;
    assert_eq!(status, 200, "/ready once the registry answers: {body}");
    println!(
        "unknown schemas: consumer pointed at an empty registry paused its 3 partitions at once ({why}); \
         0 dead letters, {EVENTS} records left uncommitted; pointed back, {EVENTS} events landed once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_missing_the_newest_schema_pauses_until_it_is_back() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("oldreg");
    let (client, subject, v1) = one_partition_with_v1(&cfg, &names).await;
    // The newest writer schema: v1 with a field added, registered *after* its records were written,
    // as when the registry was restored from a backup older than the producers' last change.
    let field = format!("origin_{}", common::unique(""));
    let newest_text = SCHEMA_V1.replacen(
        "\"fields\": [",
        &format!(
            "\"fields\": [{{\"name\": \"{field}\", \"type\": [\"null\", \"string\"], \"default\": null}},"
        ),
        1,
    );
    assert_ne!(newest_text, SCHEMA_V1, "the schema text changed");
    let newest = Schema::parse_str(&newest_text).unwrap_or_else(|e| panic!("{e}"));
    let probe = client
        .register(
            &format!("{}-probe", names.topic),
            &SCHEMA_V1.replace("Event", &common::unique("Probe")),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let next_id = probe + 1;
    let v1_schema = Schema::parse_str(SCHEMA_V1).unwrap_or_else(|e| panic!("{e}"));
    let old = Writer {
        schema: &v1_schema,
        id: v1,
        extra: None,
        text_user_id: false,
    };
    produce(&cfg, &names.topic, old, 72, 0, 500).await;
    let new = Writer {
        schema: &newest,
        id: next_id,
        extra: Some(&field),
        text_user_id: false,
    };
    produce(&cfg, &names.topic, new, 72, 500, 1_500).await;

    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &names.env("http://127.0.0.1:1"));
    let why = blocked(&consumer.url, "registry_lacks_schemas").await;
    assert!(why.contains("in a row"), "{why}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        dead_letters(&cfg, &names),
        0,
        "dead letters from a registry that lost a schema"
    );
    let landed = common::clickhouse_count(&cfg, &names.table, true)
        .await
        .unwrap_or_default();
    assert_eq!(
        landed, 500,
        "what came before the unknown records landed, nothing after"
    );

    let registered = client
        .register(&subject, &newest_text)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(registered, next_id, "another test registered a schema meanwhile");
    common::assert_all_landed_once(&cfg, &names, 72, EPOCH_MS, 2_000).await;
    common::wait_for(30, "the consumer ready again", || async {
        (ready_status(&consumer.url).await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(dead_letters(&cfg, &names), 0);
    let sample = "nrt_consumer_blocked{reason=\"registry_lacks_schemas\"}";
    assert_eq!(common::metric(&consumer.url, sample).await, Some(0.0));
    println!(
        "unknown schemas: 1,500 records of a schema the registry lost paused the consumer after 100 in a row \
         ({why}); 500 earlier events landed, 0 dead letters; once the schema was registered again (id \
         {registered}) all 2,000 landed once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_field_retyped_beyond_widening_holds_until_the_table_takes_it() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("retyped");
    let (client, subject, v1) = one_partition_with_v1(&cfg, &names).await;
    let v1_schema = Schema::parse_str(SCHEMA_V1).unwrap_or_else(|e| panic!("{e}"));
    let writer = |schema, id, text_user_id| Writer {
        schema,
        id,
        extra: None,
        text_user_id,
    };
    produce(&cfg, &names.topic, writer(&v1_schema, v1, false), 73, 0, 400).await;
    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &names.env("http://127.0.0.1:1"));
    common::wait_for(60, "the v1 events in ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? == 400).then_some(())
    })
    .await;

    // A producer team forces in `user_id` as a string: compatibility NONE, then the new version.
    let put = reqwest::Client::new()
        .put(format!("{}/config/{subject}", cfg.registry.url))
        .json(&serde_json::json!({"compatibility": "NONE"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT /config: {e}"));
    assert!(
        put.status().is_success(),
        "PUT /config/{subject}: {}",
        put.status()
    );
    let retyped_text = SCHEMA_V1.replacen(
        r#""name": "user_id",
      "type": "long""#,
        r#""name": "user_id",
      "type": "string""#,
        1,
    );
    assert_ne!(retyped_text, SCHEMA_V1, "the schema text changed");
    let retyped = Schema::parse_str(&retyped_text).unwrap_or_else(|e| panic!("{e}"));
    let v2 = client
        .register(&subject, &retyped_text)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    produce(&cfg, &names.topic, writer(&retyped, v2, true), 73, 400, 300).await;
    produce(&cfg, &names.topic, writer(&v1_schema, v1, false), 73, 700, 300).await;

    let why = blocked(&consumer.url, "schema_change").await;
    assert!(
        why.contains("user_id") && why.contains(&format!("schema {v2}")),
        "{why}"
    );
    let (_, ready) = ready_status(&consumer.url).await;
    assert!(
        ready.to_string().contains("user_id"),
        "/ready names the field: {ready}"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        dead_letters(&cfg, &names),
        0,
        "held records are never dead letters"
    );
    let landed = common::clickhouse_count(&cfg, &names.table, true).await;
    assert_eq!(landed, Some(400), "nothing past the retyped records landed");
    assert_eq!(
        common::uncommitted_records(&cfg, &names),
        600,
        "nothing past them committed"
    );

    // The operator's resolution, reviewed then applied: a String column takes both, the v1 longs as
    // their text.
    let mut ch = cfg.clickhouse.clone();
    ch.database = common::TEST_DATABASE.to_owned();
    let table = |action: &str| {
        let id = v2.to_string();
        let out = common::lake::nrt(&names, &names.table, &["table", action, "--schema-id", &id])
            .output()
            .unwrap_or_else(|e| panic!("cannot run nrt table: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let statement = format!(
        "ALTER TABLE {}.{} MODIFY COLUMN `user_id` String",
        common::TEST_DATABASE,
        names.table
    );
    let (code, checked) = table("check");
    assert_eq!(code, Some(1), "{checked}");
    assert!(checked.contains(&format!("apply: {statement}")), "{checked}");
    let (code, applied) = table("apply");
    assert_eq!(code, Some(0), "{applied}");
    assert!(applied.contains(&format!("applied: {statement}")), "{applied}");
    let (code, again) = table("check");
    assert_eq!(code, Some(0), "{again}");
    let client = nrt_pipeline::clickhouse::client(&ch).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        common::schema_changes(&client, &names.table).await,
        std::slice::from_ref(&statement)
    );
    common::assert_all_landed_once(&cfg, &names, 73, EPOCH_MS, 1_000).await;
    common::wait_for(30, "the consumer ready again", || async {
        (ready_status(&consumer.url).await.0 == 200).then_some(())
    })
    .await;
    let texts: u64 = nrt_pipeline::clickhouse::client(&ch)
        .unwrap_or_else(|e| panic!("{e}"))
        .query(&format!(
            "SELECT count() FROM {} FINAL WHERE user_id LIKE 'u%'",
            names.table
        ))
        .fetch_one()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(texts, 300, "the retyped records' user_id, as written");
    let lines = common::minio_lines(&cfg, &names.prefix).await;
    let quoted = lines
        .iter()
        .filter(|(_, l)| l.contains(r#""user_id":"u"#))
        .count();
    assert_eq!(
        (lines.len(), quoted),
        (1_000, 300),
        "each line as its writer wrote it"
    );
    assert_eq!(dead_letters(&cfg, &names), 0);
    let sample = "nrt_consumer_blocked{reason=\"schema_change\"}";
    assert_eq!(common::metric(&consumer.url, sample).await, Some(0.0));
    println!(
        "retyped field: 300 records of writer schema {v2} (user_id long → string) held the consumer ({why}); \
         0 dead letters, 600 left uncommitted; `nrt table check` proposed, `nrt table apply` applied and \
         recorded `{statement}`: all 1,000 landed once"
    );
}
