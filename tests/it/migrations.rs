//! ClickHouse migrations on the real server: each applied once per table and recorded, also when four
//! runners start on a fresh table at the same moment (as consumers do); an added column (ClickHouse 18.16
//! has no `ADD COLUMN IF NOT EXISTS`) added once; and the pipeline's rows still insert into a table with
//! a column they do not name.
#![cfg(feature = "integration")]

use crate::common;

use common::{Names, TEST_DATABASE};
use nrt_pipeline::event::{EventRow, Millis};
use nrt_pipeline::migrations::{self, Migration, MIGRATIONS};

#[derive(Debug, PartialEq, clickhouse::Row, serde::Deserialize)]
struct Recorded {
    version: u32,
    times: u64,
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_apply_once_even_when_started_together() {
    let cfg = common::services();
    common::require(common::Service::Clickhouse, &cfg).await;
    let names = Names::new("migrations");
    let ddl = nrt_pipeline::clickhouse::ddl::Ddl::new(&cfg.clickhouse).unwrap_or_else(|e| panic!("{e}"));
    let server = ddl.client();
    let added = Migration {
        version: MIGRATIONS.len() as u32 + 1,
        name: "999_note.sql",
        sql: "-- a column the rows do not have\nALTER TABLE analytics.events_raw ADD COLUMN note Nullable(String);",
    };
    let all: Vec<Migration> = MIGRATIONS.iter().copied().chain([added]).collect();

    let together = (0..4).map(|_| migrations::migrate_with(&ddl, TEST_DATABASE, &names.table, &all));
    for (i, result) in futures::future::join_all(together).await.into_iter().enumerate() {
        result.unwrap_or_else(|e| panic!("runner {i}: {e}"));
    }
    let recorded = || async {
        server
            .query(&format!(
                "SELECT version, count() AS times FROM {TEST_DATABASE}.schema_migrations FINAL \
                 WHERE table_name = '{}' GROUP BY version ORDER BY version",
                names.table
            ))
            .fetch_all::<Recorded>()
            .await
            .unwrap_or_else(|e| panic!("schema_migrations: {e}"))
    };
    let once: Vec<Recorded> = (1..=all.len() as u32)
        .map(|version| Recorded { version, times: 1 })
        .collect();
    assert_eq!(recorded().await, once);
    let columns = server
        .query(&format!(
            "SELECT name FROM system.columns WHERE database = '{TEST_DATABASE}' AND table = '{}'",
            names.table
        ))
        .fetch_all::<String>()
        .await
        .unwrap_or_else(|e| panic!("system.columns: {e}"));
    assert_eq!(columns.iter().filter(|c| *c == "note").count(), 1, "{columns:?}");
    assert_eq!(columns.len(), 13, "{columns:?}");

    // Again: nothing left to apply, nothing fails, nothing recorded twice.
    migrations::migrate_with(&ddl, TEST_DATABASE, &names.table, &all)
        .await
        .unwrap_or_else(|e| panic!("second run: {e}"));
    assert_eq!(recorded().await, once);

    // The pipeline's insert names its columns: the extra one is left to its default.
    let mut ch = cfg.clickhouse.clone();
    ch.database = TEST_DATABASE.to_owned();
    let client = nrt_pipeline::clickhouse::client(&ch).unwrap_or_else(|e| panic!("{e}"));
    let event = nrt_pipeline::mock_api::Generator::seeded(5, 1_767_225_600_000).next_event();
    let mut insert = client
        .insert::<EventRow>(&names.table)
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    insert
        .write(&EventRow::new(&event, Millis::now(), 0, 0))
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    insert.end().await.unwrap_or_else(|e| panic!("insert: {e}"));
    let nulls = client
        .query(&format!(
            "SELECT count() FROM {} WHERE event_id = toUUID('{}') AND isNull(country)",
            names.table, event.event_id
        ))
        .fetch_one::<u64>()
        .await
        .unwrap_or_else(|e| panic!("select: {e}"));
    assert_eq!(nulls, 1);
}
