//! A registry that refuses the consumer is an outage, never a reason to dead-letter. On the secured
//! stack: the consumer's registry credentials are revoked while it runs, then a producer writes events
//! of a new schema version (an id the consumer has not cached). The consumer must hold those records
//! (partitions paused, `/ready` 503 naming the registry and the 401, `nrt_consumer_blocked` 1), commit
//! nothing past them and dead-letter nothing; once the credentials are back, every event lands once.
#![cfg(feature = "integration")]

use crate::common;

use std::time::Duration;

use common::secure::{Secure, SecuredRegistry};
use common::{Names, NrtProcess};
use nrt_pipeline::config::ServicesConfig;

const EPOCH_MS: i64 = 1_767_225_600_000;
const V1_EVENTS: u64 = 2_000;
const V2_EVENTS: u64 = 1_000;
const V2_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/events.v2.avsc");
const BLOCKED: &str = r#"nrt_consumer_blocked{reason="registry_refuses"}"#;

fn env_of(names: &Names, mock: &str, cfg: &ServicesConfig, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = names
        .env(mock)
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    env.extend(Secure::env(cfg));
    env
}

fn spawn(role: &str, env: &[(String, String)]) -> NrtProcess {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    NrtProcess::spawn(&["run", "--role", role], &env)
}

async fn published(admin: &str, n: u64) {
    common::wait_for(120, &format!("{n} events published"), || async {
        (common::metric(admin, "nrt_events_published_total").await? == n as f64).then_some(())
    })
    .await;
}

async fn rows(cfg: &ServicesConfig, names: &Names) -> u64 {
    common::clickhouse_count(cfg, &names.table, true)
        .await
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_registry_credentials_hold_records_and_dead_letter_none() {
    let base = common::services();
    common::require_all(&base, &common::PIPELINE_SERVICES).await;
    let secure = Secure::load();
    let mut registry = SecuredRegistry::start(&secure);
    let writer = secure.services(&base, &registry, "writer");
    let consumer_cfg = secure.services(&base, &registry, "consumer");
    let names = Names::new("regrefuse");

    let first = common::spawn_mock(2201, V1_EVENTS, EPOCH_MS);
    let (txn1, txn2) = (format!("{}-v1", names.topic), format!("{}-v2", names.topic));
    let mut v1 = spawn(
        "producer",
        &env_of(&names, &first.url, &writer, &[("NRT_TRANSACTIONAL_ID", &txn1)]),
    );
    let consumer = spawn("consumer", &env_of(&names, &first.url, &consumer_cfg, &[]));
    published(&v1.url, V1_EVENTS).await;
    common::wait_for(120, "the v1 events in ClickHouse", || async {
        (rows(&writer, &names).await == V1_EVENTS).then_some(())
    })
    .await;
    assert_eq!(v1.terminate(), Some(0));

    // The consumer's credentials go; a producer registers v2 (a new id) and writes with it.
    registry.restart(&["consumer"]);
    let second = common::spawn_mock_with(2202, V2_EVENTS, EPOCH_MS, None, &["--extra-fields"]);
    let v2_env = env_of(
        &names,
        &second.url,
        &writer,
        &[("NRT_TRANSACTIONAL_ID", &txn2), ("NRT_SCHEMA_FILE", V2_FILE)],
    );
    let mut v2 = spawn("producer", &v2_env);
    published(&v2.url, V2_EVENTS).await;

    // The consumer decides about the new id: it holds the records (right) or dead-letters them (wrong).
    let dlq = format!("{}.dlq", names.topic);
    common::wait_for(
        60,
        "the consumer to hold or dead-letter the new schema's records",
        || async {
            let blocked = common::metric(&consumer.url, BLOCKED).await == Some(1.0);
            (blocked || common::topic_records(&writer, &dlq) > 0).then_some(())
        },
    )
    .await;
    assert_eq!(
        common::topic_records(&writer, &dlq),
        0,
        "records dead-lettered for a refusal"
    );
    assert_eq!(common::metric(&consumer.url, BLOCKED).await, Some(1.0));
    let resp = reqwest::get(format!("{}/ready", consumer.url))
        .await
        .unwrap_or_else(|e| panic!("GET /ready: {e}"));
    assert_eq!(resp.status().as_u16(), 503);
    let ready: serde_json::Value = resp.json().await.unwrap_or_default();
    let why = ready["why"]["kafka_reader"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        why.contains("schema registry at") && why.contains("401"),
        "/ready: {ready}"
    );
    // Held, not decided: a while later still nothing more landed, nothing dead-lettered or committed.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        rows(&writer, &names).await,
        V1_EVENTS,
        "rows landed while the registry refused us"
    );
    assert_eq!(
        common::topic_records(&writer, &dlq),
        0,
        "records dead-lettered for a refusal"
    );
    assert_eq!(
        common::uncommitted_records(&writer, &names),
        V2_EVENTS,
        "committed past held records"
    );
    let held_for = common::metric(&consumer.url, BLOCKED).await;
    assert_eq!(held_for, Some(1.0));

    registry.restart(&[]);
    let total = V1_EVENTS + V2_EVENTS;
    common::wait_for(
        120,
        "every event in ClickHouse after the credentials came back",
        || async { (rows(&writer, &names).await == total).then_some(()) },
    )
    .await;
    let lines = common::landed(&writer, &names, total).await;
    let ids = common::event_ids(&lines);
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(
        (ids.len() as u64, distinct.len() as u64),
        (total, total),
        "lake lines, distinct ids"
    );
    assert_eq!(
        common::topic_records(&writer, &dlq),
        0,
        "dead letters after recovery"
    );
    assert_eq!(common::metric(&consumer.url, BLOCKED).await, Some(0.0));
    common::wait_for(60, "every record committed", || async {
        (common::uncommitted_records(&writer, &names) == 0).then_some(())
    })
    .await;
    assert_eq!(v2.terminate(), Some(0));
    println!(
        "registry refusal: consumer credentials revoked, {V2_EVENTS} events of a new schema version held \
         (blocked registry_refuses, /ready 503: {why}); restored: {total}/{total} in ClickHouse and the lake, \
         0 dead letters"
    );
}
