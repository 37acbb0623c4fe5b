//! ClickhouseWriter: the batch's rows, written by the reader as it decoded them (`clickhouse::row`),
//! sent as RowBinary, one INSERT per run of records of one writer schema (naming that schema's columns,
//! `clickhouse::plans`), into the ReplacingMergeTree table whose sorting key collapses the rows of a
//! replayed batch. The table was made able to take each schema before its first record was decoded.

use actix::prelude::*;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::actors::messages::{Batch, Failure, SinkAck, SinkError, WriteBatch};
use crate::actors::Shared;
use crate::clickhouse::follow::Table;
use crate::clickhouse::insert::{self, InsertError, META_BYTES};
use crate::clickhouse::shards::Shards;
use crate::clickhouse::tenants::{TenantError, Tenants};
use crate::event::Millis;

pub const NAME: &str = "clickhouse_writer";

pub struct ClickhouseWriter {
    client: clickhouse::Client,
    /// `database.table`.
    table: Arc<str>,
    /// A table per tenant (`clickhouse::route`): each record goes to the one its field names.
    tenants: Option<Arc<Tenants>>,
    /// On a cluster, where each partition's rows go (`clickhouse::shards`), instead of `client`.
    shards: Option<Arc<Shards>>,
    shared: Shared,
}

impl ClickhouseWriter {
    pub fn new(
        cfg: &crate::config::ClickhouseConfig,
        table: &Table,
        shared: Shared,
    ) -> Result<Self, crate::tls::TlsError> {
        let shards = match cfg.validated_cluster() {
            Some(cluster) => Some(Arc::new(Shards::new(cfg, cluster, &table.table)?)),
            None => None,
        };
        Ok(ClickhouseWriter {
            shards,
            client: crate::clickhouse::client(cfg)?,
            table: format!("{}.{}", cfg.database, table.table).into(),
            tenants: table
                .route
                .clone()
                .map(|r| Arc::new(Tenants::new(&cfg.database, r))),
            shared,
        })
    }
}

/// ClickHouse error codes that mean "this data": one row of the block is refused by the table's own
/// rules, evaluated per row (a MATERIALIZED/DEFAULT expression or a CONSTRAINT), so the batch is split
/// to find it. 6/25/26/27/38/41/72 cannot parse (inside such an expression: RowBinary itself is never
/// parsed as text), 69/321 out of range, 70 cannot convert, 117 incorrect data, 395 throwIf (a guard
/// column), 469 violated constraint.
const REFUSED_CODES: [u32; 13] = [6, 25, 26, 27, 38, 41, 69, 70, 72, 117, 321, 395, 469];
/// Codes that mean "this setup": every write would fail the same way. 16 no such column, 33 cannot read
/// all data and 53 type mismatch (the table's columns are not the rows we send), 47 unknown identifier,
/// 60 unknown table, 62 syntax error, 81 unknown database, 164 readonly, 192 unknown user, 291/497
/// access denied, 516 authentication failed.
const MISCONFIGURED_CODES: [u32; 12] = [16, 33, 47, 53, 60, 62, 81, 164, 192, 291, 497, 516];

/// Transient unless the answer names a code of the two lists above: network errors, timeouts, overload
/// (e.g. 241 memory limit, 252 too many parts, 159 timeout) and 5xx are worth another try.
fn sink_error(e: clickhouse::error::Error) -> SinkError {
    SinkError {
        sink: "clickhouse",
        failure: failure_of(&e),
        message: e.to_string(),
    }
}

pub fn failure_of(e: &clickhouse::error::Error) -> Failure {
    use clickhouse::error::Error as E;
    match e {
        E::Network(_) | E::TimedOut => Failure::Transient,
        E::BadResponse(body) => match error_code(body) {
            Some(c) if REFUSED_CODES.contains(&c) => Failure::Refused,
            Some(c) if MISCONFIGURED_CODES.contains(&c) => Failure::Misconfigured,
            _ => Failure::Transient,
        },
        // Rows the client itself cannot serialize, or an answer it does not understand.
        _ => Failure::Misconfigured,
    }
}

/// The number after "Code: " in a ClickHouse error answer.
fn error_code(body: &str) -> Option<u32> {
    let rest = &body[body.find("Code: ")? + "Code: ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A row ClickHouse refused for good: its record, and what ClickHouse said.
#[derive(Debug, Clone)]
pub struct Refused {
    pub offset: i64,
    pub time: i64,
    pub key: Vec<u8>,
    /// The record's lake line (its JSON): what the dead letter carries.
    pub line: Vec<u8>,
    pub message: String,
}

pub type RefusedRows = Vec<Refused>;

/// Writes `batch`; when ClickHouse refuses the data, halves the batch until the refused rows are alone,
/// writes every other row, and returns the refused ones (to be dead-lettered). Any other error ends the
/// attempt: the caller retries the whole batch (rows written meanwhile collapse in the ReplacingMergeTree).
///
/// A table that takes nothing is a setup problem, not poison data, so it is retried and never
/// dead-lettered: a batch of which every row is refused counts as `Misconfigured` when it has several
/// rows, and also when it has one and ClickHouse took no row since the previous batch it refused whole
/// (`took_rows`, shared by all partitions: a one-row batch alone says little).
pub async fn write_isolating(
    writer: &Recipient<WriteBatch>,
    batch: &Arc<Batch>,
    took_rows: &AtomicBool,
) -> Result<RefusedRows, SinkError> {
    let mut parts = vec![batch.clone()];
    let mut refused = RefusedRows::new();
    while let Some(part) = parts.pop() {
        let written = writer.send(WriteBatch(part.clone())).await.unwrap_or_else(|e| {
            Err(SinkError {
                sink: "clickhouse",
                message: format!("writer unavailable: {e}"),
                failure: Failure::Transient,
            })
        });
        match written {
            Ok(_) => {}
            Err(e) if e.failure == Failure::Refused => match (part.records.len(), part.records.first()) {
                (1, Some(r)) => refused.push(Refused {
                    offset: r.offset,
                    time: r.time,
                    key: r.key.to_vec(),
                    line: part.records.line_of(&r),
                    message: e.message,
                }),
                (n, _) => {
                    let mut left = part.records.clone();
                    let right = left.split_off(n / 2);
                    for half in [right, left] {
                        parts.push(Arc::new(Batch {
                            first_offset: half.first().map_or(part.first_offset, |r| r.offset),
                            last_offset: half.last().map_or(part.last_offset, |r| r.offset),
                            records: half,
                            bytes: 0,
                            topic: part.topic.clone(),
                            dead_letters: Vec::new(),
                            ..*part
                        }));
                    }
                }
            },
            Err(e) => return Err(e),
        }
    }
    if refused.len() < batch.records.len() {
        took_rows.store(true, Ordering::SeqCst);
        return Ok(refused);
    }
    let whole_and_alone = batch.records.len() == 1 && took_rows.swap(false, Ordering::SeqCst);
    if refused.is_empty() || whole_and_alone {
        return Ok(refused);
    }
    let why = refused.pop().map(|r| r.message).unwrap_or_default();
    Err(SinkError {
        sink: "clickhouse",
        message: format!("every row of the batch refused (a table or schema problem?): {why}"),
        failure: Failure::Misconfigured,
    })
}

impl Actor for ClickhouseWriter {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.shared.health.running(NAME);
    }
}

impl Supervised for ClickhouseWriter {}

impl Handler<WriteBatch> for ClickhouseWriter {
    type Result = ResponseActFuture<Self, Result<SinkAck, SinkError>>;

    fn handle(&mut self, WriteBatch(batch): WriteBatch, _: &mut Self::Context) -> Self::Result {
        if batch.records.is_empty() {
            return Box::pin(fut::ready(Ok(SinkAck::Written)));
        }
        let (client, table, tenants) = (self.client.clone(), self.table.clone(), self.tenants.clone());
        let shards = self.shards.clone();
        let started = std::time::Instant::now();
        let bytes: usize = batch.records.iter().map(|r| r.row.len() + META_BYTES).sum();
        let rows = batch.clone();
        let write = async move {
            let origin = insert::Origin {
                partition: rows.partition,
                ingested_at: Some(rows.ingested_at.0),
            };
            let inserted = match (&tenants, &shards) {
                (Some(tenants), _) => tenants.insert(&client, &rows.records, origin).await.map(drop),
                (None, Some(shards)) => shards
                    .insert(&rows.records, origin)
                    .await
                    .map_err(TenantError::from),
                (None, None) => insert::insert_all(&client, &table, &rows.records, origin)
                    .await
                    .map_err(TenantError::from),
            };
            inserted.map_err(|e| match e {
                TenantError::Insert(InsertError::Server(e)) | TenantError::Server { source: e, .. } => {
                    sink_error(e)
                }
                e => SinkError {
                    sink: "clickhouse",
                    message: e.to_string(),
                    failure: Failure::Misconfigured,
                },
            })?;
            Ok::<usize, SinkError>(rows.records.len())
        };
        Box::pin(write.into_actor(self).map(move |res, act, _| {
            let m = &act.shared.metrics;
            match res {
                Ok(n) => {
                    m.events_written
                        .with_label_values(&["clickhouse"])
                        .inc_by(n as u64);
                    m.sink_bytes
                        .with_label_values(&["clickhouse"])
                        .inc_by(bytes as u64);
                    m.batch_events
                        .with_label_values(&["clickhouse"])
                        .observe(n as f64);
                    m.flush_seconds
                        .with_label_values(&["clickhouse"])
                        .observe(started.elapsed().as_secs_f64());
                    // Freshness ends here: an event is queryable once ClickHouse acknowledged it.
                    // Counted locally, added once: an atomic update per record was 1 % of the consumer.
                    let now = Millis::now().0;
                    let freshness = m.freshness_seconds.local();
                    for r in batch.records.iter() {
                        freshness.observe(now.saturating_sub(r.time).max(0) as f64 / 1000.0);
                    }
                    freshness.flush();
                    act.shared.health.running(NAME);
                    Ok(SinkAck::Written)
                }
                Err(e) => {
                    m.sink_errors.with_label_values(&["clickhouse"]).inc();
                    act.shared.health.error(NAME, e.to_string());
                    Err(e)
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_classified() {
        let answer = |code: u32| {
            sink_error(clickhouse::error::Error::BadResponse(format!(
                "Code: {code}, e.displayText() = DB::Exception: something (version 18.16.1)"
            )))
            .failure
        };
        assert_eq!(answer(395), Failure::Refused);
        assert_eq!(answer(6), Failure::Refused);
        assert_eq!(
            answer(33),
            Failure::Misconfigured,
            "columns do not match the rows"
        );
        assert_eq!(answer(53), Failure::Misconfigured);
        assert_eq!(answer(60), Failure::Misconfigured);
        assert_eq!(answer(516), Failure::Misconfigured);
        assert_eq!(answer(241), Failure::Transient);
        assert_eq!(error_code("Code: 395. DB::Exception"), Some(395));
        assert_eq!(error_code("no code here"), None);
    }
}
