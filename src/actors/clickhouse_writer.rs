//! ClickhouseWriter: one RowBinary INSERT per batch into the ReplacingMergeTree table, whose sorting
//! key collapses the rows of a replayed batch. Applies the migrations of `schemas/clickhouse/` before
//! the first insert (`migrations.rs`: once per table, safe when consumers start together).

use actix::prelude::*;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::messages::{Batch, Failure, SinkAck, SinkError, WriteBatch};
use super::Shared;
use crate::event::{Event, EventRow, Millis};

pub const NAME: &str = "clickhouse_writer";

pub struct ClickhouseWriter {
    client: clickhouse::Client,
    server: clickhouse::Client,
    database: String,
    table: String,
    table_ready: bool,
    shared: Shared,
}

impl ClickhouseWriter {
    pub fn new(
        cfg: &crate::config::ClickhouseConfig,
        table: String,
        shared: Shared,
    ) -> Result<Self, crate::tls::TlsError> {
        Ok(ClickhouseWriter {
            client: crate::clickhouse::client(cfg)?,
            server: crate::clickhouse::server_client(cfg)?,
            database: cfg.database.clone(),
            table,
            table_ready: false,
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
    use clickhouse::error::Error as E;
    let failure = match &e {
        E::Network(_) | E::TimedOut => Failure::Transient,
        E::BadResponse(body) => match error_code(body) {
            Some(c) if REFUSED_CODES.contains(&c) => Failure::Refused,
            Some(c) if MISCONFIGURED_CODES.contains(&c) => Failure::Misconfigured,
            _ => Failure::Transient,
        },
        // Rows the client itself cannot serialize, or an answer it does not understand.
        _ => Failure::Misconfigured,
    };
    SinkError {
        sink: "clickhouse",
        message: e.to_string(),
        failure,
    }
}

/// The number after "Code: " in a ClickHouse error answer.
fn error_code(body: &str) -> Option<u32> {
    let rest = &body[body.find("Code: ")? + "Code: ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Rows ClickHouse refused for good: the offset, the event, and what ClickHouse said.
pub type RefusedRows = Vec<(i64, Event, String)>;

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
            Err(e) if e.failure == Failure::Refused => match part.events.as_slice() {
                [(offset, event)] => refused.push((*offset, event.clone(), e.message)),
                events => {
                    let (left, right) = events.split_at(events.len() / 2);
                    for half in [right, left] {
                        parts.push(Arc::new(Batch {
                            first_offset: half.first().map_or(part.first_offset, |(o, _)| *o),
                            last_offset: half.last().map_or(part.last_offset, |(o, _)| *o),
                            events: half.to_vec(),
                            bytes: 0,
                            topic: part.topic.clone(),
                            ..*part
                        }));
                    }
                }
            },
            Err(e) => return Err(e),
        }
    }
    if refused.len() < batch.events.len() {
        took_rows.store(true, Ordering::SeqCst);
        return Ok(refused);
    }
    let whole_and_alone = batch.events.len() == 1 && took_rows.swap(false, Ordering::SeqCst);
    if refused.is_empty() || whole_and_alone {
        return Ok(refused);
    }
    let why = refused.pop().map(|(_, _, m)| m).unwrap_or_default();
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
        if batch.events.is_empty() {
            return Box::pin(fut::ready(Ok(SinkAck::Written)));
        }
        let now = batch.ingested_at;
        let migrate = (!self.table_ready).then(|| self.database.clone());
        let (client, server, table) = (self.client.clone(), self.server.clone(), self.table.clone());
        let started = std::time::Instant::now();
        // RowBinary size: the fixed-width columns, each string and its length byte, and the
        // nullable columns' flags.
        let optional = |s: &Option<compact_str::CompactString>| s.as_ref().map_or(0, |s| s.len() + 1);
        let bytes: usize = batch
            .events
            .iter()
            .map(|(_, e)| {
                let extra = e.extra.as_deref();
                16 + 8 * 5 + 4 * 3 + e.kind.len() + e.currency.len() + 2 + 2
                    + extra.map_or(0, |x| optional(&x.country) + optional(&x.session_id))
            })
            .sum();
        let rows = batch.clone();
        let write = async move {
            if let Some(database) = migrate {
                crate::migrations::migrate(&server, &database, &table)
                    .await
                    .map_err(|e| {
                        let mut failed = sink_error(e.source);
                        failed.message = format!("migration {}: {}", e.statement, failed.message);
                        failed
                    })?;
            }
            let mut insert = client.insert::<EventRow>(&table).await.map_err(sink_error)?;
            // Row by row into the insert's buffer: no second copy of the batch as rows.
            for (offset, e) in &rows.events {
                let row = EventRow::new(e, now, rows.partition, *offset);
                insert.write(&row).await.map_err(sink_error)?;
            }
            insert.end().await.map_err(sink_error)?;
            Ok::<usize, SinkError>(rows.events.len())
        };
        Box::pin(write.into_actor(self).map(move |res, act, _| {
            let m = &act.shared.metrics;
            match res {
                Ok(n) => {
                    act.table_ready = true;
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
                    let now = Millis::now().0;
                    for (_, e) in &batch.events {
                        m.freshness_seconds
                            .observe(now.saturating_sub(e.created_at.0).max(0) as f64 / 1000.0);
                    }
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
        assert_eq!(answer(33), Failure::Misconfigured, "columns do not match the rows");
        assert_eq!(answer(53), Failure::Misconfigured);
        assert_eq!(answer(60), Failure::Misconfigured);
        assert_eq!(answer(516), Failure::Misconfigured);
        assert_eq!(answer(241), Failure::Transient);
        assert_eq!(error_code("Code: 395. DB::Exception"), Some(395));
        assert_eq!(error_code("no code here"), None);
    }

}
