//! The `clickhouse` crate against the real server (18.16 natively): DDL, a RowBinary insert, selects.
#![cfg(feature = "integration")]

use crate::common;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct SmokeRow {
    id: u64,
    name: String,
    amount: i64,
}

const ROWS: u64 = 10_000;

#[tokio::test]
async fn create_insert_select() {
    let mut cfg = common::services();
    common::require(common::Service::Clickhouse, &cfg).await;
    cfg.clickhouse.database = "nrt_test".to_owned();
    let server = nrt_pipeline::clickhouse::server_client(&cfg.clickhouse).unwrap_or_else(|e| panic!("{e}"));
    server
        .query("CREATE DATABASE IF NOT EXISTS nrt_test")
        .execute()
        .await
        .unwrap_or_else(|e| panic!("create database: {e}"));
    let client = nrt_pipeline::clickhouse::client(&cfg.clickhouse).unwrap_or_else(|e| panic!("{e}"));
    let table = common::unique("smoke_");
    client
        .query(&format!(
            "CREATE TABLE {table} (id UInt64, name String, amount Int64) ENGINE = MergeTree() ORDER BY id"
        ))
        .execute()
        .await
        .unwrap_or_else(|e| panic!("create table: {e}"));

    let rows: Vec<SmokeRow> = (0..ROWS)
        .map(|i| SmokeRow {
            id: i,
            name: format!("name-{i}-é"),
            amount: i as i64 * 100 - 5_000,
        })
        .collect();
    let mut insert = client
        .insert::<SmokeRow>(&table)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for row in &rows {
        insert.write(row).await.unwrap_or_else(|e| panic!("write: {e}"));
    }
    insert.end().await.unwrap_or_else(|e| panic!("insert: {e}"));

    let (count, sum): (u64, i64) = client
        .query(&format!("SELECT count(), sum(amount) FROM {table}"))
        .fetch_one()
        .await
        .unwrap_or_else(|e| panic!("aggregate: {e}"));
    assert_eq!(count, ROWS);
    assert_eq!(sum, rows.iter().map(|r| r.amount).sum::<i64>());

    let back: Vec<SmokeRow> = client
        .query(&format!("SELECT id, name, amount FROM {table} ORDER BY id"))
        .fetch_all()
        .await
        .unwrap_or_else(|e| panic!("select: {e}"));
    assert_eq!(back, rows);

    client
        .query(&format!("DROP TABLE {table}"))
        .execute()
        .await
        .unwrap_or_else(|e| panic!("drop: {e}"));
}
