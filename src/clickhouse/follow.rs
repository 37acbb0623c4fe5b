//! A table that follows the registry: made from the first writer schema met, given a column for each
//! field a newer writer schema adds before any row of that schema is written, and a change it cannot
//! take (a field retyped beyond widening) reported as such, for the partitions to hold, never written.
//! Safe when several consumers meet the same new schema at once: an ALTER a twin made first is found in
//! `system.columns` and taken as done. Each column added is recorded in `<database>.schema_changes`.

use super::ddl::Ddl;
use super::row::{Mismatch, RowPlan};
use super::table::{self, Key};
use super::types::Server;
use crate::avro::Plan;

/// The table records go to, and how it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub database: String,
    pub table: String,
    pub key: Key,
    /// The field naming the event time; None: the first timestamp field.
    pub time: Option<String>,
    /// A table per value of this field (`table` is then the template all of them follow).
    pub route: Option<super::route::Route>,
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("clickhouse: {statement}: {source}")]
    Server {
        statement: String,
        #[source]
        source: clickhouse::error::Error,
    },
    /// The schema and the table disagree in a way no statement of ours settles: an operator decides.
    #[error("{0}")]
    Mismatch(#[from] Mismatch),
}

fn server_error(statement: &str) -> impl FnOnce(clickhouse::error::Error) -> FollowError + '_ {
    move |source| FollowError::Server {
        statement: statement.to_owned(),
        source,
    }
}

/// Makes `t` able to take records of `plan` (created, or widened by the columns it lacks) and returns
/// how they are written into it, `schema_id` being the writer schema's id in the registry.
pub async fn follow(
    ddl: &Ddl,
    server: Server,
    t: &Table,
    plan: &Plan,
    schema_id: u32,
) -> Result<RowPlan, FollowError> {
    let client = ddl.client();
    let mut columns = read(ddl, t).await?;
    if columns.is_empty() {
        let create = table::create(&t.database, &t.table, plan, server, &t.key, t.time.as_deref())?;
        create_if_absent(ddl, t, &create).await?;
        columns = read(ddl, t).await?;
    }
    let key = table::key_columns(client, &t.database, &t.table)
        .await
        .map_err(server_error(
            "SELECT name FROM system.columns … is_in_sorting_key",
        ))?;
    table::fills_key(plan, &key)?;
    let missing = table::missing(plan, &columns, server)?;
    if !missing.is_empty() {
        for (column, ty) in &missing {
            let alter = table::add_column(&t.database, &t.table, plan, column, ty);
            if let Err(e) = ddl.execute(&alter, &t.database, &t.table).await {
                // A twin meeting the same schema may have added it between our read and our ALTER.
                if !read(ddl, t).await?.contains_key(column) {
                    return Err(server_error(&alter)(e));
                }
                continue;
            }
            log::info!("clickhouse: {alter} (writer schema {schema_id})");
            record(ddl, t, schema_id, &alter).await?;
        }
        columns = read(ddl, t).await?;
    }
    Ok(RowPlan::new(plan, &columns, server, t.time.as_deref())?)
}

/// Records a statement applied to `t` for writer schema `schema_id` in `<database>.schema_changes`.
pub async fn record(ddl: &Ddl, t: &Table, schema_id: u32, statement: &str) -> Result<(), FollowError> {
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {}.schema_changes (table_name String, schema_id UInt32, statement String, \
         applied_at DateTime) ENGINE = MergeTree() ORDER BY (table_name, applied_at)",
        t.database
    );
    create_if_absent(ddl, t, &create).await?;
    let note = format!(
        "INSERT INTO {}.schema_changes (table_name, schema_id, statement, applied_at) VALUES ('{}', {schema_id}, '{}', now())",
        t.database,
        t.table.replace('\'', ""),
        statement.replace('\\', "\\\\").replace('\'', "\\'")
    );
    ddl.client()
        .query(&note)
        .execute()
        .await
        .map_err(server_error(&note))
}

async fn read(ddl: &Ddl, t: &Table) -> Result<super::row::Columns, FollowError> {
    ddl.columns(&t.database, &t.table)
        .await
        .map_err(server_error("SELECT name, type FROM system.columns"))
}

/// Runs a `CREATE … IF NOT EXISTS` for `t` (on every node of a cluster).
async fn create_if_absent(ddl: &Ddl, t: &Table, sql: &str) -> Result<(), FollowError> {
    retry_raced_create(sql, || ddl.execute(sql, &t.database, &t.table)).await
}

/// Runs a `CREATE … IF NOT EXISTS` with `run`: 18.16 checks and creates in two steps, so a twin
/// creating the same table at the same moment can make it fail once ("already exists"); the next
/// attempt is a no-op.
pub(super) async fn retry_raced_create<F, R>(sql: &str, run: F) -> Result<(), FollowError>
where
    F: Fn() -> R,
    R: std::future::Future<Output = Result<(), clickhouse::error::Error>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match run().await {
            Ok(()) => return Ok(()),
            Err(_) if tries < 3 => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            Err(e) => return Err(server_error(sql)(e)),
        }
    }
}
