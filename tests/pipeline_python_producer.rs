//! An independent producer (Confluent's Python client with its AvroSerializer, writer schema = ours
//! plus one optional field) feeds the topic; `nrt run --role consumer` must land every event, and the
//! new field with it: in every lake line that has it, and in a column added to the table once.
#![cfg(feature = "integration")]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Names, NrtProcess};

const EVENTS: usize = 2_000;

#[tokio::test(flavor = "multi_thread")]
async fn consumer_lands_events_of_an_evolved_writer_schema() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("pyprod");
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, 3, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let produced = common::python_producer("produce_evolved.py", &cfg, &names.topic, EVENTS);
    let ids = common::strings(&produced["ids"]);
    assert_eq!(ids.len(), EVENTS);

    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &names.env("http://127.0.0.1:1"));
    common::wait_for(90, "every Python-produced event in ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? == EVENTS as u64).then_some(())
    })
    .await;
    let mut ch = cfg.clickhouse.clone();
    ch.database = common::TEST_DATABASE.to_owned();
    let client = nrt_pipeline::clickhouse::client(&ch).unwrap_or_else(|e| panic!("{e}"));
    let landed: Vec<String> = client
        .query(&format!("SELECT toString(event_id) FROM {} FINAL", names.table))
        .fetch_all()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(landed.into_iter().collect::<HashSet<_>>(), ids);
    // Money exact through fastavro's minimal decimal encoding: sum of i*7 cents over odd i.
    let cents: i64 = (0..EVENTS as i64).filter(|i| i % 2 == 1).map(|i| i * 7).sum();
    let sum: String = client
        .query(&format!(
            "SELECT toString(sum(amount)) FROM {} FINAL",
            names.table
        ))
        .fetch_one()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sum, format!("{}.{:02}", cents / 100, cents % 100));
    let lines = common::wait_for(30, "every event in MinIO", || async {
        let lines = common::minio_lines(&cfg, &names.prefix).await;
        (lines.len() >= EVENTS).then_some(lines)
    })
    .await;
    assert_eq!(lines.len(), EVENTS);
    assert_eq!(
        common::metric(&consumer.url, "nrt_events_consumed_total").await,
        Some(EVENTS as f64)
    );
    // The producer's new field (`channel`: "mobile" unless i % 3 == 0, then null) is not dropped.
    let mobile = (0..EVENTS).filter(|i| i % 3 != 0).count() as u64;
    let in_lines = lines
        .iter()
        .filter(|(_, l)| l.contains(r#""channel":"mobile""#))
        .count() as u64;
    assert_eq!(in_lines, mobile, "lake lines carrying the new field");
    let in_rows: u64 = client
        .query(&format!(
            "SELECT count() FROM {} FINAL WHERE channel = 'mobile'",
            names.table
        ))
        .fetch_one()
        .await
        .unwrap_or_else(|e| panic!("the new field has no column: {e}"));
    assert_eq!(in_rows, mobile, "rows carrying the new field");
    let added: Vec<String> = client
        .query(&format!(
            "SELECT statement FROM schema_changes WHERE table_name = '{}'",
            names.table
        ))
        .fetch_all()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(added.len(), 1, "one column added, once: {added:?}");
    assert!(
        added[0].contains("ADD COLUMN `channel` Nullable(String)"),
        "{added:?}"
    );
    println!(
        "python producer, evolved schema: {EVENTS} events landed once; the new field in {in_lines} lines and \
         {in_rows} rows; {}",
        added[0]
    );
}
