//! A table that follows the registry: the CREATE TABLE made from a writer schema, the ALTER adding a
//! newer schema's fields, and the table's columns as the server has them (docs/data.md, "The
//! warehouse's columns"). Statements are valid on ClickHouse 18.16 and on current releases.

use super::row::{root_record, Columns, Mismatch, META_COLUMNS};
use super::types::{self, Server, Type};
use crate::avro::plan::{Node, Plan, Unit};

/// What identifies a record in the table: rows with the same key collapse (ReplacingMergeTree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// Where the record is in Kafka: a retry or a replay of it writes the same key, for any record.
    Coordinates,
    /// Fields the producers guarantee unique per record (`event_id`, with the event time first, as
    /// `analytics.events_raw` has it), which also collapses a producer's own duplicates.
    Fields(Vec<String>),
}

/// `CREATE TABLE IF NOT EXISTS` for records of `plan`: a column per field (and the exact count beside a
/// timestamp where the server has no DateTime64), then the meta columns; partitioned by month of the
/// event time (`time`, else the first non-null timestamp field, else the ingestion time).
pub fn create(
    database: &str,
    table: &str,
    plan: &Plan,
    server: Server,
    key: &Key,
    time: Option<&str>,
) -> Result<String, Mismatch> {
    let record = root_record(plan)?;
    let mut columns = Vec::new();
    for f in record.fields.iter() {
        if META_COLUMNS.contains(&f.name.as_str()) {
            return Err(Mismatch::Reserved(f.name.clone()));
        }
        let Some(want) = types::wanted(&f.name, &f.node, plan, server) else {
            continue;
        };
        columns.push(definition(&f.name, &want.ty, f.default.as_ref()));
        if let Some((exact, ty)) = &want.exact {
            columns.push(definition(exact, ty, None));
        }
    }
    columns.extend([
        "`ingested_at` DateTime".into(),
        "`kafka_partition` Int32".into(),
        "`kafka_offset` Int64".into(),
    ]);
    let is_time = |name: &str| {
        record.fields.iter().any(|f| {
            f.name == name && matches!(f.node, Node::Timestamp { .. }) // not Nullable: a partition key
        })
    };
    let time = match time {
        Some(name) if is_time(name) => name.to_owned(),
        Some(name) => return Err(Mismatch::TimeField(name.to_owned())),
        None => record
            .fields
            .iter()
            .find(|f| matches!(f.node, Node::Timestamp { .. }))
            .map_or("ingested_at".to_owned(), |f| f.name.clone()),
    };
    let order = match key {
        Key::Coordinates => "`kafka_partition`, `kafka_offset`".to_owned(),
        Key::Fields(names) => {
            for name in names {
                let field = record.fields.iter().find(|f| f.name == *name);
                if field.is_none_or(|f| matches!(f.node, Node::Union(_) | Node::Null)) {
                    return Err(Mismatch::KeyField(name.clone()));
                }
            }
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    Ok(format!(
        "CREATE TABLE IF NOT EXISTS {database}.{table}\n(\n    {}\n)\nENGINE = ReplacingMergeTree()\n\
         PARTITION BY toYYYYMM(`{time}`)\nORDER BY ({order})",
        columns.join(",\n    ")
    ))
}

/// `ALTER TABLE … ADD COLUMN` for a column a newer writer schema's field needs (`Mismatch::Missing`),
/// with the field's Avro default as the column's default, so rows of older writers read as Avro would.
pub fn add_column(database: &str, table: &str, plan: &Plan, column: &str, ty: &Type) -> String {
    let default = root_record(plan)
        .ok()
        .and_then(|r| r.fields.iter().find(|f| f.name == column))
        .and_then(|f| f.default.as_ref());
    format!(
        "ALTER TABLE {database}.{table} ADD COLUMN {}",
        definition(column, ty, default)
    )
}

fn definition(name: &str, ty: &Type, default: Option<&serde_json::Value>) -> String {
    match default.and_then(|d| literal(ty, d)) {
        Some(lit) => format!("`{name}` {ty} DEFAULT {lit}"),
        None => format!("`{name}` {ty}"),
    }
}

/// A field's Avro default as a ClickHouse literal of the column's type; None where the type's own
/// zero (or NULL) is the default, or the default is not a plain value.
fn literal(ty: &Type, default: &serde_json::Value) -> Option<String> {
    use serde_json::Value as J;
    let bare = ty.bare();
    match (bare, default) {
        (_, J::Null) => None,
        (Type::Int { .. } | Type::Float32 | Type::Float64, J::Number(n)) => Some(n.to_string()),
        (
            Type::Int {
                bits: 8,
                signed: false,
            }
            | Type::Bool,
            J::Bool(b),
        ) => Some(u8::from(*b).to_string()),
        (Type::String, J::String(s)) => Some(format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))),
        _ => None,
    }
}

/// The server's kind, from `SELECT version()`.
#[cfg(feature = "runtime")]
pub async fn server(client: &clickhouse::Client) -> Result<Server, clickhouse::error::Error> {
    let version: String = client.query("SELECT version()").fetch_one().await?;
    Ok(Server::of_version(&version))
}

/// The table's columns as the server has them; empty when there is no such table.
#[cfg(feature = "runtime")]
pub async fn columns(
    client: &clickhouse::Client,
    database: &str,
    table: &str,
) -> Result<Columns, clickhouse::error::Error> {
    let sql = format!(
        "SELECT name, type FROM system.columns WHERE database = '{}' AND table = '{}'",
        database.replace('\'', ""),
        table.replace('\'', "")
    );
    let rows: Vec<(String, String)> = client.query(&sql).fetch_all().await?;
    Ok(rows.into_iter().map(|(n, t)| (n, Type::parse(&t))).collect())
}

/// The table's sorting-key columns (what its ReplacingMergeTree collapses rows by).
#[cfg(feature = "runtime")]
pub async fn key_columns(
    client: &clickhouse::Client,
    database: &str,
    table: &str,
) -> Result<Vec<String>, clickhouse::error::Error> {
    columns_where(client, database, table, "is_in_sorting_key").await
}

/// The columns of the table's partition key (the event time, in the tables nrt makes).
#[cfg(feature = "runtime")]
pub async fn partition_columns(
    client: &clickhouse::Client,
    database: &str,
    table: &str,
) -> Result<Vec<String>, clickhouse::error::Error> {
    columns_where(client, database, table, "is_in_partition_key").await
}

#[cfg(feature = "runtime")]
async fn columns_where(
    client: &clickhouse::Client,
    database: &str,
    table: &str,
    flag: &str,
) -> Result<Vec<String>, clickhouse::error::Error> {
    // A Distributed table has no keys: those of the table holding its rows on a cluster count.
    let (database, table) = (database.replace('\'', ""), table.replace('\'', ""));
    let local = super::cluster::local(&table);
    let sql = format!(
        "SELECT name FROM system.columns WHERE database = '{database}' AND {flag} AND (table = '{table}' OR \
         (table = '{local}' AND (SELECT count() FROM system.tables WHERE database = '{database}' \
         AND name = '{table}' AND engine = 'Distributed') = 1))"
    );
    client.query(&sql).fetch_all().await
}

/// Whether records of `plan` fill every key column of the table (besides the meta columns): a record
/// without them would be given the columns' defaults, and every such record would collapse into one.
pub fn fills_key(plan: &Plan, key: &[String]) -> Result<(), Mismatch> {
    let record = root_record(plan)?;
    let filled = |column: &str| {
        META_COLUMNS.contains(&column)
            || record.fields.iter().any(|f| {
                f.name == column
                    || [Unit::Millis, Unit::Micros, Unit::Nanos]
                        .iter()
                        .any(|u| column.strip_suffix(types::exact_suffix(*u)) == Some(f.name.as_str()))
            })
    };
    match key.iter().find(|c| !filled(c)) {
        Some(column) => Err(Mismatch::KeyField(column.clone())),
        None => Ok(()),
    }
}

/// The columns a table created from `plan` on `server` has (meta columns included).
pub fn columns_of(plan: &Plan, server: Server) -> Result<Columns, Mismatch> {
    let mut columns = Columns::new();
    for f in root_record(plan)?.fields.iter() {
        let Some(want) = types::wanted(&f.name, &f.node, plan, server) else {
            continue;
        };
        columns.extend(want.exact);
        columns.insert(f.name.clone(), want.ty);
    }
    let meta = [
        Type::DateTime,
        Type::Int {
            bits: 32,
            signed: true,
        },
        Type::Int {
            bits: 64,
            signed: true,
        },
    ];
    columns.extend(META_COLUMNS.iter().map(|c| c.to_string()).zip(meta));
    Ok(columns)
}

/// The columns a record of `plan` needs that `have` lacks, in field order, with their types.
pub fn missing(plan: &Plan, have: &Columns, server: Server) -> Result<Vec<(String, Type)>, Mismatch> {
    let record = root_record(plan)?;
    let mut out = Vec::new();
    for f in record.fields.iter() {
        let Some(want) = types::wanted(&f.name, &f.node, plan, server) else {
            continue;
        };
        if !have.contains_key(&f.name) {
            out.push((f.name.clone(), want.ty.clone()));
        }
        // The exact count beside a DateTime: wanted on a server without DateTime64, and on any server
        // beside a DateTime column that came from one.
        let datetime = have.get(&f.name).is_none_or(|t| *t.bare() == Type::DateTime);
        if let (Some((exact, ty)), true) = (&want.exact, datetime) {
            if !have.contains_key(exact) {
                out.push((exact.clone(), ty.clone()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SCHEMA_V2;

    fn plan(text: &str) -> Plan {
        let schema = apache_avro::Schema::parse_str(text).unwrap_or_else(|e| panic!("{e}"));
        Plan::new(&schema).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn events_table_is_the_one_the_migrations_make() {
        let key = Key::Fields(vec!["created_at".into(), "event_id".into()]);
        let sql = create(
            "analytics",
            "events_raw",
            &plan(SCHEMA_V2),
            Server::LEGACY,
            &key,
            None,
        );
        let sql = sql.unwrap_or_else(|e| panic!("{e}"));
        for column in [
            "`event_id` UUID",
            "`amount` Decimal(18, 2)",
            "`created_at` DateTime",
            "`created_at_ms` Int64",
            "`country` Nullable(String)",
            "`kafka_offset` Int64",
        ] {
            assert!(sql.contains(column), "{column} in {sql}");
        }
        assert!(
            sql.ends_with("PARTITION BY toYYYYMM(`created_at`)\nORDER BY (`created_at`, `event_id`)"),
            "{sql}"
        );
        let current = create(
            "analytics",
            "events_raw",
            &plan(SCHEMA_V2),
            Server::CURRENT,
            &Key::Coordinates,
            None,
        );
        let current = current.unwrap_or_else(|e| panic!("{e}"));
        assert!(current.contains("`created_at` DateTime64(3),\n"), "{current}");
        assert!(!current.contains("created_at_ms"), "{current}");
        assert!(
            current.ends_with("ORDER BY (`kafka_partition`, `kafka_offset`)"),
            "{current}"
        );
        let nullable_key = Key::Fields(vec!["country".into()]);
        let err = create("a", "t", &plan(SCHEMA_V2), Server::LEGACY, &nullable_key, None).err();
        assert_eq!(err, Some(Mismatch::KeyField("country".into())));
    }

    #[test]
    fn added_columns_carry_the_avro_default() {
        let p = plan(
            r#"{"type":"record","name":"R","fields":[
            {"name":"n","type":"long","default":7},{"name":"s","type":"string","default":"it's"},
            {"name":"o","type":["null","string"],"default":null},{"name":"b","type":"boolean","default":true}]}"#,
        );
        let add = |c: &str, t: &str| add_column("db", "t", &p, c, &Type::parse(t));
        assert_eq!(
            add("n", "Int64"),
            "ALTER TABLE db.t ADD COLUMN `n` Int64 DEFAULT 7"
        );
        assert_eq!(
            add("s", "String"),
            "ALTER TABLE db.t ADD COLUMN `s` String DEFAULT 'it\\'s'"
        );
        assert_eq!(
            add("o", "Nullable(String)"),
            "ALTER TABLE db.t ADD COLUMN `o` Nullable(String)"
        );
        assert_eq!(
            add("b", "UInt8"),
            "ALTER TABLE db.t ADD COLUMN `b` UInt8 DEFAULT 1"
        );
        let have: Columns = [("n".to_owned(), Type::parse("Int64"))].into();
        let names: Vec<String> = missing(&p, &have, Server::LEGACY)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["s", "o", "b"]);
    }
}
