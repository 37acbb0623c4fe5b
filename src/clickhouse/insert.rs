//! The INSERT of records' rows: one statement per run of records of one writer schema (naming that
//! schema's columns), the rows sent as RowBinary with the meta columns after each. What the
//! ClickhouseWriter writes a batch with, and `nrt replay` an object's records.

use std::time::Duration;

use crate::clickhouse::row::put_meta;
use crate::record::{Record, Records};

/// The INSERT buffer's size: big enough that a send is worth its call.
const SEND_BYTES: usize = 256 << 10;

/// What the meta columns add to each row (`put_meta`).
pub const META_BYTES: usize = 4 + 4 + 8;

/// Where the rows came from: their meta columns.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub partition: i32,
    /// When the batch was ingested, ms; None (objects written before the lake recorded it): each
    /// record's own event time.
    pub ingested_at: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// Records keep the plan of every row they hold: this is a bug, not data.
    #[error("no columns known for writer schema {0}")]
    NoPlan(u32),
    #[error(transparent)]
    Server(#[from] clickhouse::error::Error),
    /// A cluster's shard without a replica: `Cluster::parse` refuses those.
    #[error("no ClickHouse replica for partition {0}'s shard")]
    NoReplica(i32),
}

/// Inserts the records at `at` (in order), a run of one writer schema at a time: a table's share of a
/// batch whose records go to several (`tenants.rs`).
pub async fn insert_chosen(
    client: &clickhouse::Client,
    table: &str,
    records: &Records,
    at: &[usize],
    origin: Origin,
) -> Result<(), InsertError> {
    let mut at = at.iter().filter_map(|&i| records.get(i)).peekable();
    while at.peek().is_some() {
        insert_next(client, table, records, &mut at, origin, None).await?;
    }
    Ok(())
}

/// Inserts the records of `at` from its next one on while they share its writer schema.
async fn insert_next<'r>(
    client: &clickhouse::Client,
    table: &str,
    records: &'r Records,
    at: &mut std::iter::Peekable<impl Iterator<Item = Record<'r>>>,
    origin: Origin,
    limit: Option<Duration>,
) -> Result<(), InsertError> {
    let Some(schema_id) = at.peek().map(|r| r.schema_id) else {
        return Ok(());
    };
    let plan = records.plan(schema_id).ok_or(InsertError::NoPlan(schema_id))?;
    let columns: Vec<String> = plan.rows.columns.iter().map(|c| format!("`{c}`")).collect();
    let sql = format!("INSERT INTO {table} ({}) FORMAT RowBinary", columns.join(", "));
    let mut insert = client.insert_formatted_with(sql).with_timeouts(limit, limit);
    let secs = |ms: i64| (ms / 1000).clamp(0, u32::MAX as i64) as u32;
    let ingested = |r: &Record| secs(origin.ingested_at.unwrap_or(r.time));
    // Rows gathered into chunks of `SEND_BYTES`, each handed over whole (no copy behind it).
    let mut chunk = Vec::with_capacity(SEND_BYTES + 4096);
    while let Some(r) = at.next_if(|r| r.schema_id == schema_id) {
        chunk.extend_from_slice(r.row);
        put_meta(&mut chunk, ingested(&r), origin.partition, r.offset);
        if chunk.len() >= SEND_BYTES {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(SEND_BYTES + 4096));
            insert.send(full.into()).await?;
        }
    }
    if !chunk.is_empty() {
        insert.send(chunk.into()).await?;
    }
    insert.end().await?;
    Ok(())
}

/// Inserts every record, a run of one writer schema at a time.
pub async fn insert_all(
    client: &clickhouse::Client,
    table: &str,
    records: &Records,
    origin: Origin,
) -> Result<(), InsertError> {
    insert_all_within(client, table, records, origin, None).await
}

/// `insert_all`, each send and the server's answer given at most `limit` (None: no limit): a node
/// that stops answering is left for another.
pub async fn insert_all_within(
    client: &clickhouse::Client,
    table: &str,
    records: &Records,
    origin: Origin,
    limit: Option<Duration>,
) -> Result<(), InsertError> {
    let mut at = records.iter().peekable();
    while at.peek().is_some() {
        insert_next(client, table, records, &mut at, origin, limit).await?;
    }
    Ok(())
}
