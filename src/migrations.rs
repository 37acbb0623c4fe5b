//! ClickHouse migrations: `schemas/clickhouse/NNN_name.sql`, applied in order, once per table, and
//! recorded in `<database>.schema_migrations`. Several consumers may start at once, so every statement
//! is safe to run twice at the same moment: `IF NOT EXISTS`, and `ADD COLUMN` only when
//! `system.columns` lacks the column (ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`), an "already
//! exists" answer from a racing twin being checked against `system.columns` again.
//!
//! The files name `analytics.events_raw`, so compose loads them as they are; they are applied to the
//! configured database and table.

use crate::clickhouse::ddl::Ddl;

/// One file of `schemas/clickhouse/`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order (a unit test checks this list against the directory).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "001_database.sql",
        sql: include_str!("../schemas/clickhouse/001_database.sql"),
    },
    Migration {
        version: 2,
        name: "002_events_raw.sql",
        sql: include_str!("../schemas/clickhouse/002_events_raw.sql"),
    },
    Migration {
        version: 3,
        name: "003_events_v2_fields.sql",
        sql: include_str!("../schemas/clickhouse/003_events_v2_fields.sql"),
    },
];

/// What one statement needs before it runs.
#[derive(Debug, PartialEq, Eq)]
pub enum Statement {
    /// Idempotent as written.
    Plain(String),
    /// `ALTER TABLE … ADD COLUMN <column> …`: run only if the column is missing.
    AddColumn { sql: String, column: String },
}

impl Statement {
    pub fn sql(&self) -> &str {
        match self {
            Statement::Plain(sql) | Statement::AddColumn { sql, .. } => sql,
        }
    }
}

/// The statements of a migration for `database.table`: comments dropped, split at `;`.
pub fn statements(m: &Migration, database: &str, table: &str) -> Vec<Statement> {
    let body: String = m
        .sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    body.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let sql = s
                .replace("analytics.events_raw", &format!("{database}.{table}"))
                .replace("EXISTS analytics", &format!("EXISTS {database}"));
            match added_column(&sql) {
                Some(column) => Statement::AddColumn { sql, column },
                None => Statement::Plain(sql),
            }
        })
        .collect()
}

/// Every statement of every migration for `database.table`, as SQL (tests build tables from it).
pub fn ddl(database: &str, table: &str) -> Vec<String> {
    MIGRATIONS
        .iter()
        .flat_map(|m| statements(m, database, table))
        .map(|s| s.sql().to_owned())
        .collect()
}

/// The column an `ALTER TABLE t ADD COLUMN c …` statement adds.
fn added_column(sql: &str) -> Option<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    if upper.first().map(String::as_str) != Some("ALTER") {
        return None;
    }
    let at = upper.windows(2).position(|w| w[0] == "ADD" && w[1] == "COLUMN")?;
    words.get(at + 2).map(|c| c.trim_matches('`').to_owned())
}

/// A statement ClickHouse did not take; `source` says whether trying again may help.
#[derive(Debug, thiserror::Error)]
#[error("{statement}: {source}")]
pub struct MigrationError {
    pub statement: String,
    #[source]
    pub source: clickhouse::error::Error,
}

fn err(statement: &str, source: clickhouse::error::Error) -> MigrationError {
    MigrationError {
        statement: statement.to_owned(),
        source,
    }
}

/// Applies `MIGRATIONS` to `database.table` (on every node of a cluster: `clickhouse::ddl`).
pub async fn migrate(ddl: &Ddl, database: &str, table: &str) -> Result<(), MigrationError> {
    migrate_with(ddl, database, table, MIGRATIONS).await
}

/// Applies what `migrations` has that `schema_migrations` does not record for this table, in order.
pub async fn migrate_with(
    ddl: &Ddl,
    database: &str,
    table: &str,
    migrations: &[Migration],
) -> Result<(), MigrationError> {
    let server = ddl.client();
    // The database holds the record, so it comes first, whatever is recorded.
    let create_db = format!("CREATE DATABASE IF NOT EXISTS {database}");
    run(ddl, database, table, &Statement::Plain(create_db)).await?;
    let record = format!(
        "CREATE TABLE IF NOT EXISTS {database}.schema_migrations \
         (table_name String, version UInt32, name String, applied_at DateTime) \
         ENGINE = ReplacingMergeTree() ORDER BY (table_name, version)"
    );
    run(ddl, database, table, &Statement::Plain(record)).await?;
    // A table dropped since (to be rebuilt by `nrt replay`, say) is made again from the start: its
    // record stays, but every statement is safe to run again.
    let done = match table_exists(server, database, table).await? {
        true => applied(server, database, table).await?,
        false => Vec::new(),
    };
    for m in migrations.iter().filter(|m| !done.contains(&m.version)) {
        for statement in statements(m, database, table) {
            run(ddl, database, table, &statement).await?;
        }
        let insert = format!(
            "INSERT INTO {database}.schema_migrations (table_name, version, name, applied_at) \
             VALUES ('{table}', {}, '{}', now())",
            m.version,
            m.name.replace('\'', "")
        );
        server.query(&insert).execute().await.map_err(|e| err(&insert, e))?;
        log::info!("clickhouse: migration {} applied to {database}.{table}", m.name);
    }
    Ok(())
}

/// The versions recorded as applied to `database.table`.
pub async fn applied(server: &clickhouse::Client, database: &str, table: &str) -> Result<Vec<u32>, MigrationError> {
    let sql = format!(
        "SELECT DISTINCT version FROM {database}.schema_migrations WHERE table_name = '{table}' ORDER BY version"
    );
    server.query(&sql).fetch_all::<u32>().await.map_err(|e| err(&sql, e))
}

async fn table_exists(server: &clickhouse::Client, database: &str, table: &str) -> Result<bool, MigrationError> {
    let sql = format!("SELECT count() FROM system.tables WHERE database = '{database}' AND name = '{table}'");
    let n = server.query(&sql).fetch_one::<u64>().await.map_err(|e| err(&sql, e))?;
    Ok(n > 0)
}

/// Whether the table has the column (on a cluster: on every node, `Ddl::columns`).
async fn has_column(ddl: &Ddl, database: &str, table: &str, column: &str) -> Result<bool, MigrationError> {
    let columns = ddl.columns(database, table).await.map_err(|e| err("SELECT name FROM system.columns", e))?;
    Ok(columns.contains_key(column))
}

async fn run(ddl: &Ddl, database: &str, table: &str, statement: &Statement) -> Result<(), MigrationError> {
    if let Statement::AddColumn { column, .. } = statement {
        if has_column(ddl, database, table, column).await? {
            return Ok(());
        }
    }
    let mut tries = 0;
    loop {
        tries += 1;
        let e = match ddl.execute(statement.sql(), database, table).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        match statement {
            // A twin added it between our check and our ALTER.
            Statement::AddColumn { column, .. } if has_column(ddl, database, table, column).await? => return Ok(()),
            // Old ClickHouse checks IF NOT EXISTS and creates in two steps: a twin creating the same
            // table at the same moment makes one of them fail ("already exists"); once more is a no-op.
            Statement::Plain(sql) if sql.contains("IF NOT EXISTS") && tries < 3 => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            _ => return Err(err(statement.sql(), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_the_directory_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/clickhouse");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(files, listed);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.name);
            assert!(m.name.starts_with(&format!("{:03}_", m.version)), "{}", m.name);
        }
    }

    #[test]
    fn statements_target_the_configured_table_and_guard_added_columns() {
        let all: Vec<Statement> = MIGRATIONS.iter().flat_map(|m| statements(m, "db1", "t1")).collect();
        assert_eq!(all[0], Statement::Plain("CREATE DATABASE IF NOT EXISTS db1".into()));
        assert!(all[1].sql().starts_with("CREATE TABLE IF NOT EXISTS db1.t1"), "{}", all[1].sql());
        assert!(all.iter().all(|s| !s.sql().contains("--") && !s.sql().ends_with(';')));
        let extra = Migration {
            version: 9,
            name: "009_x.sql",
            sql: "-- why\nALTER TABLE analytics.events_raw ADD COLUMN `country` Nullable(String);\n\
                  alter table analytics.events_raw add column session_id Nullable(String);",
        };
        assert_eq!(
            statements(&extra, "db1", "t1"),
            [
                Statement::AddColumn {
                    sql: "ALTER TABLE db1.t1 ADD COLUMN `country` Nullable(String)".into(),
                    column: "country".into()
                },
                Statement::AddColumn {
                    sql: "alter table db1.t1 add column session_id Nullable(String)".into(),
                    column: "session_id".into()
                },
            ]
        );
    }
}
