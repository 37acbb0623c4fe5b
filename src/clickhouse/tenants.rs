//! The tables of a route (`route.rs`): a batch's records are split by the table their field names,
//! each table made `AS` the template when first met and given the template's columns its rows need
//! before they are inserted (`ADD COLUMN` with the template's type and default), then each table's
//! share is inserted as the batch would be. Safe when several consumers meet a new tenant or column at
//! once: a `CREATE … IF NOT EXISTS` or an `ALTER` a twin made first is found done.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use super::insert::{insert_chosen, InsertError, Origin};
use super::route::Route;
use crate::record::Records;

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error(transparent)]
    Insert(#[from] InsertError),
    #[error(transparent)]
    Follow(#[from] super::follow::FollowError),
    #[error("clickhouse: {statement}: {source}")]
    Server {
        statement: String,
        #[source]
        source: clickhouse::error::Error,
    },
    /// Decoding dead-letters such records; one here was written before the table had a route.
    #[error("the record at offset {offset} names no table by field `{field}`")]
    NoTable { offset: i64, field: String },
    #[error("{database}.{template}: the template table is gone (it follows the registry; it is made again when the consumer restarts)")]
    NoTemplate { database: String, template: String },
}

pub struct Tenants {
    database: String,
    route: Route,
    /// The columns each tenant table is known to have.
    known: Mutex<HashMap<String, HashSet<String>>>,
}

impl Tenants {
    pub fn new(database: &str, route: Route) -> Self {
        Tenants {
            database: database.to_owned(),
            route,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Inserts each record into its tenant's table; returns the tables written and their row counts.
    pub async fn insert(
        &self,
        client: &clickhouse::Client,
        records: &Records,
        origin: Origin,
    ) -> Result<BTreeMap<String, usize>, TenantError> {
        let mut by_table: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            let table = self.route.table_of(r.line).ok_or_else(|| TenantError::NoTable {
                offset: r.offset,
                field: self.route.field.clone(),
            })?;
            by_table.entry(table).or_default().push(i);
        }
        let mut written = BTreeMap::new();
        for (table, at) in by_table {
            let mut needed = HashSet::new();
            for r in at.iter().filter_map(|&i| records.get(i)) {
                if let Some(plan) = records.plan(r.schema_id) {
                    needed.extend(plan.rows.columns.iter().cloned());
                }
            }
            self.ensure(client, &table, &needed).await?;
            insert_chosen(
                client,
                &format!("{}.{table}", self.database),
                records,
                &at,
                origin,
            )
            .await?;
            written.insert(table, at.len());
        }
        Ok(written)
    }

    /// Makes `table` exist with at least the columns `needed`.
    async fn ensure(
        &self,
        client: &clickhouse::Client,
        table: &str,
        needed: &HashSet<String>,
    ) -> Result<(), TenantError> {
        let has_all = |known: &HashSet<String>| needed.iter().all(|c| known.contains(c));
        if self.known_columns(table).is_some_and(|k| has_all(&k)) {
            return Ok(());
        }
        let db = &self.database;
        let mut columns = self.columns(client, table).await?;
        if columns.is_empty() {
            let create = create_like(db, table, &self.route.template());
            super::follow::retry_raced_create(&create, || client.query(&create).execute()).await?;
            log::info!("clickhouse: {create}");
            columns = self.columns(client, table).await?;
        }
        if !has_all(&columns) {
            let template = self.definitions(client).await?;
            for (name, definition) in template.iter().filter(|(n, _)| !columns.contains(n)) {
                let alter = add_like(db, table, name, definition);
                if let Err(source) = client.query(&alter).execute().await {
                    // A twin may have added it between our read and our ALTER.
                    if !self.columns(client, table).await?.contains(name) {
                        return Err(TenantError::Server {
                            statement: alter,
                            source,
                        });
                    }
                    continue;
                }
                log::info!("clickhouse: {alter}");
            }
            columns = self.columns(client, table).await?;
        }
        if let Ok(mut known) = self.known.lock() {
            known.insert(table.to_owned(), columns);
        }
        Ok(())
    }

    fn known_columns(&self, table: &str) -> Option<HashSet<String>> {
        self.known.lock().ok()?.get(table).cloned()
    }

    async fn columns(
        &self,
        client: &clickhouse::Client,
        table: &str,
    ) -> Result<HashSet<String>, TenantError> {
        let sql = format!(
            "SELECT name FROM system.columns WHERE database = '{}' AND table = '{table}'",
            self.database.replace('\'', "")
        );
        let names: Vec<String> = client.query(&sql).fetch_all().await.map_err(server_error(&sql))?;
        Ok(names.into_iter().collect())
    }

    /// The template's columns as `ADD COLUMN` writes them: type and default.
    async fn definitions(&self, client: &clickhouse::Client) -> Result<Vec<(String, String)>, TenantError> {
        let sql = format!(
            "SELECT name, type, default_kind, default_expression FROM system.columns \
             WHERE database = '{}' AND table = '{}'",
            self.database.replace('\'', ""),
            self.route.template()
        );
        let rows: Vec<(String, String, String, String)> =
            client.query(&sql).fetch_all().await.map_err(server_error(&sql))?;
        if rows.is_empty() {
            return Err(TenantError::NoTemplate {
                database: self.database.clone(),
                template: self.route.template(),
            });
        }
        Ok(rows
            .into_iter()
            .map(|(name, ty, kind, expr)| match kind.as_str() {
                "" => (name, ty),
                kind => (name, format!("{ty} {kind} {expr}")),
            })
            .collect())
    }
}

/// A tenant's table, made as the template is (engine, keys, partitioning, columns).
pub fn create_like(database: &str, table: &str, template: &str) -> String {
    format!("CREATE TABLE IF NOT EXISTS {database}.{table} AS {database}.{template}")
}

/// A template's column given to a tenant's table: `definition` is its type and default as
/// `system.columns` gives them (`Nullable(String) DEFAULT 'x'`).
pub fn add_like(database: &str, table: &str, column: &str, definition: &str) -> String {
    format!("ALTER TABLE {database}.{table} ADD COLUMN `{column}` {definition}")
}

fn server_error(statement: &str) -> impl FnOnce(clickhouse::error::Error) -> TenantError + '_ {
    move |source| TenantError::Server {
        statement: statement.to_owned(),
        source,
    }
}
