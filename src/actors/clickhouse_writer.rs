//! ClickhouseWriter: one RowBinary INSERT per batch into the ReplacingMergeTree table, whose sorting
//! key collapses the rows of a replayed batch. Applies the DDL of `schemas/clickhouse/` before the
//! first insert (idempotent: IF NOT EXISTS).

use actix::prelude::*;

use super::messages::{SinkError, WriteBatch};
use super::Shared;
use crate::event::{EventRow, Millis};

pub const NAME: &str = "clickhouse_writer";

const DDL_DATABASE: &str = include_str!("../../schemas/clickhouse/001_database.sql");
const DDL_TABLE: &str = include_str!("../../schemas/clickhouse/002_events_raw.sql");

pub struct ClickhouseWriter {
    client: clickhouse::Client,
    server: clickhouse::Client,
    database: String,
    table: String,
    table_ready: bool,
    shared: Shared,
}

impl ClickhouseWriter {
    pub fn new(cfg: &crate::config::ClickhouseConfig, table: String, shared: Shared) -> Self {
        ClickhouseWriter {
            client: crate::clickhouse::client(cfg),
            server: crate::clickhouse::server_client(cfg),
            database: cfg.database.clone(),
            table,
            table_ready: false,
            shared,
        }
    }
}

/// The checked-in DDL, for the configured database and table (the files name `analytics.events_raw`,
/// so compose can load them as they are).
pub fn ddl(database: &str, table: &str) -> Vec<String> {
    [DDL_DATABASE, DDL_TABLE]
        .iter()
        .map(|sql| {
            let body: String = sql
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            body.replace("analytics.events_raw", &format!("{database}.{table}"))
                .replace("EXISTS analytics;", &format!("EXISTS {database};"))
                .trim()
                .trim_end_matches(';')
                .to_owned()
        })
        .collect()
}

/// Retrying cannot fix data ClickHouse refuses: e.g. Code 53 (type mismatch), 117 (incorrect data),
/// 27/6 (cannot parse), 60 (unknown table after DDL), as Vector's ClickHouse sink also decides. Anything
/// else (network, timeouts, overload, 5xx) is worth another try.
fn sink_error(e: clickhouse::error::Error) -> SinkError {
    use clickhouse::error::Error as E;
    let transient = match &e {
        E::Network(_) | E::TimedOut => true,
        E::BadResponse(body) => ![
            "Code: 53",
            "Code: 117",
            "Code: 27",
            "Code: 6,",
            "Code: 60",
            "Code: 62",
        ]
        .iter()
        .any(|code| body.contains(code)),
        _ => false,
    };
    SinkError {
        sink: "clickhouse",
        message: e.to_string(),
        transient,
    }
}

impl Actor for ClickhouseWriter {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.shared.health.running(NAME);
    }
}

impl Supervised for ClickhouseWriter {}

impl Handler<WriteBatch> for ClickhouseWriter {
    type Result = ResponseActFuture<Self, Result<(), SinkError>>;

    fn handle(&mut self, WriteBatch(batch): WriteBatch, _: &mut Self::Context) -> Self::Result {
        if batch.events.is_empty() {
            return Box::pin(fut::ready(Ok(())));
        }
        let now = Millis::now();
        let rows: Vec<EventRow> = batch
            .events
            .iter()
            .map(|(offset, e)| EventRow::new(e, now, batch.partition, *offset))
            .collect();
        let ddl = (!self.table_ready).then(|| ddl(&self.database, &self.table));
        let (client, server, table) = (self.client.clone(), self.server.clone(), self.table.clone());
        let started = std::time::Instant::now();
        let created: Vec<i64> = batch.events.iter().map(|(_, e)| e.created_at.0).collect();
        // RowBinary size: the fixed-width columns, plus each string and its length byte.
        let bytes: usize = rows
            .iter()
            .map(|r| 16 + 8 * 5 + 4 * 3 + r.kind.len() + r.currency.len() + 2)
            .sum();
        let write = async move {
            for statement in ddl.unwrap_or_default() {
                server.query(&statement).execute().await.map_err(sink_error)?;
            }
            let mut insert = client.insert::<EventRow>(&table).await.map_err(sink_error)?;
            for row in &rows {
                insert.write(row).await.map_err(sink_error)?;
            }
            insert.end().await.map_err(sink_error)?;
            Ok::<usize, SinkError>(rows.len())
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
                    for c in &created {
                        m.freshness_seconds.observe((now - c).max(0) as f64 / 1000.0);
                    }
                    act.shared.health.running(NAME);
                    Ok(())
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
    fn ddl_targets_the_configured_table() {
        let stmts = ddl("db1", "t1");
        assert_eq!(stmts[0], "CREATE DATABASE IF NOT EXISTS db1");
        assert!(
            stmts[1].starts_with("CREATE TABLE IF NOT EXISTS db1.t1"),
            "{}",
            stmts[1]
        );
        assert!(stmts[1].contains("ReplacingMergeTree()") && !stmts[1].contains("--"));
        assert!(!stmts[1].ends_with(';'));
    }
}
