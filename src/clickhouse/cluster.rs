//! A ClickHouse cluster: shards of replicas. Each table nrt writes is, on a cluster, two: the rows in
//! `<table>_local` (ReplicatedReplacingMergeTree on every node, one replica set per shard) and
//! `<table>`, a Distributed table over them, which is what readers query (`FINAL` collapses a record's
//! copies, which always land on one shard: the shard is chosen by Kafka partition). nrt inserts into
//! the local tables itself, each batch whole into one replica of its partition's shard, so a retried
//! batch is the same block and the replicated table drops it (`insert_deduplicate`); a batch cut anew
//! after a restart holds other blocks, and FINAL collapses those rows as on one server.
//!
//! DDL goes `ON CLUSTER` (the server's distributed DDL queue, which also reaches a node that was down
//! once it is back), except an ALTER of the Distributed table on servers before 20.3, which refuse it
//! where shards replicate internally (ClickHouse #3268): there it runs on each node in turn.

/// `NRT_CLICKHOUSE_CLUSTER` and `NRT_CLICKHOUSE_SHARDS`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The cluster's name in the servers' `remote_servers`.
    pub name: String,
    /// Each shard's replicas, HTTP URLs; shard i is the cluster's shard i + 1.
    pub shards: Vec<Vec<String>>,
}

/// What is wrong with `NRT_CLICKHOUSE_CLUSTER` / `NRT_CLICKHOUSE_SHARDS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    #[error("shard {0} has no replica URL (shards are separated by ';', replicas by ',')")]
    EmptyShard(usize),
    #[error("NRT_CLICKHOUSE_CLUSTER needs NRT_CLICKHOUSE_SHARDS (the nodes' HTTP URLs)")]
    NoShards,
    #[error("NRT_CLICKHOUSE_SHARDS needs NRT_CLICKHOUSE_CLUSTER (the cluster's name)")]
    NoName,
}

impl Cluster {
    /// `shards`: shards separated by `;`, each shard's replicas by `,` (`http://a:8123,http://b:8123;…`).
    pub fn parse(name: &str, shards: &str) -> Result<Cluster, ClusterError> {
        let shards: Vec<Vec<String>> = shards
            .split(';')
            .map(|s| {
                s.split(',')
                    .map(|u| u.trim().to_owned())
                    .filter(|u| !u.is_empty())
                    .collect()
            })
            .collect();
        if let Some(i) = shards.iter().position(Vec::is_empty) {
            return Err(ClusterError::EmptyShard(i + 1));
        }
        Ok(Cluster {
            name: name.to_owned(),
            shards,
        })
    }

    /// The shard a Kafka partition's rows go to: as the Distributed table's sharding key
    /// (`kafka_partition`, every shard of weight 1) would send them.
    pub fn shard_of(&self, partition: i32) -> usize {
        partition.rem_euclid(self.shards.len().max(1) as i32) as usize
    }

    /// Every node's URL, shard by shard.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.shards.iter().flatten().map(String::as_str)
    }
}

/// The table holding a Distributed table's rows on each node.
pub fn local(table: &str) -> String {
    format!("{table}_local")
}

/// One statement of DDL on a cluster, and where it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub sql: String,
    /// Run on every node by itself (not through the distributed DDL queue).
    pub each_node: bool,
    /// `ALTER … ADD COLUMN`: `(database.table, column)`, skipped where the table has it already.
    pub adds: Option<(String, String)>,
}

impl Step {
    fn queued(sql: String) -> Step {
        Step {
            sql,
            each_node: false,
            adds: None,
        }
    }
}

/// The cluster's steps for a statement written for one server (`CREATE DATABASE`, `CREATE TABLE`,
/// `ALTER TABLE … ADD COLUMN`, as migrations and `table.rs` write them). `data` is the table records
/// go to: it becomes a local table plus a Distributed one; any other table (nrt's own records of
/// migrations and changes) becomes one replicated on every node, so each node reads it whole.
/// `distributed_alter`: the server takes `ALTER … ON CLUSTER` of a Distributed table (20.3 on).
pub fn steps(sql: &str, cluster: &Cluster, database: &str, data: &str, distributed_alter: bool) -> Vec<Step> {
    let on = format!("ON CLUSTER `{}`", cluster.name);
    let words: Vec<&str> = sql.split_whitespace().collect();
    let upper: Vec<String> = words.iter().take(6).map(|w| w.to_ascii_uppercase()).collect();
    let head: Vec<&str> = upper.iter().map(String::as_str).collect();
    match head.as_slice() {
        ["CREATE", "DATABASE", ..] => vec![Step::queued(format!("{sql} {on}"))],
        ["CREATE", "TABLE", "IF", "NOT", "EXISTS", _] => {
            let name = words.get(5).and_then(|w| w.split('(').next()).unwrap_or_default();
            let is_data = name.eq_ignore_ascii_case(&format!("{database}.{data}"));
            let Some(at) = sql.find(name).map(|at| at + name.len()) else {
                return vec![Step::queued(sql.to_owned())];
            };
            let (create, rest) = sql.split_at(at);
            if !is_data {
                let path = format!("/clickhouse/tables/all/{}", name.replace('.', "/"));
                return vec![Step::queued(format!("{create} {on}{}", replicated(rest, &path)))];
            }
            let local_name = format!("{database}.{}", local(data));
            let path = format!("/clickhouse/tables/{{shard}}/{database}/{}", local(data));
            vec![
                Step::queued(format!(
                    "CREATE TABLE IF NOT EXISTS {local_name} {on}{}",
                    replicated(rest, &path)
                )),
                Step::queued(format!(
                    "CREATE TABLE IF NOT EXISTS {database}.{data} {on} AS {local_name} \
                     ENGINE = Distributed(`{}`, `{database}`, `{}`, kafka_partition)",
                    cluster.name,
                    local(data)
                )),
            ]
        }
        ["ALTER", "TABLE", ..] => {
            let name = words.get(2).copied().unwrap_or_default();
            let column = added_column(&words);
            let is_data = name.eq_ignore_ascii_case(&format!("{database}.{data}"));
            let rest = &sql[sql.find(name).map_or(0, |at| at + name.len())..];
            if !is_data {
                return vec![Step::queued(format!("ALTER TABLE {name} {on}{rest}"))];
            }
            let local_name = format!("{database}.{}", local(data));
            let adds = |table: &str| column.clone().map(|c| (table.to_owned(), c));
            vec![
                Step {
                    sql: format!("ALTER TABLE {local_name} {on}{rest}"),
                    each_node: false,
                    adds: adds(&local_name),
                },
                match distributed_alter {
                    true => Step {
                        sql: format!("ALTER TABLE {name} {on}{rest}"),
                        each_node: false,
                        adds: adds(name),
                    },
                    false => Step {
                        sql: sql.to_owned(),
                        each_node: true,
                        adds: adds(name),
                    },
                },
            ]
        }
        _ => vec![Step::queued(sql.to_owned())],
    }
}

/// The rest of a `CREATE TABLE` (columns, engine, keys) with its MergeTree engine made the replicated
/// one, keeping the engine's own arguments (a ReplacingMergeTree's version column) after the path
/// and replica name.
fn replicated(rest: &str, path: &str) -> String {
    for engine in ["ReplacingMergeTree(", "MergeTree("] {
        let Some(at) = rest.find(&format!("ENGINE = {engine}")) else {
            continue;
        };
        let args_at = at + "ENGINE = ".len() + engine.len();
        let close = rest[args_at..].find(')').map_or(args_at, |c| args_at + c);
        let args = rest[args_at..close].trim();
        let more = if args.is_empty() {
            String::new()
        } else {
            format!(", {args}")
        };
        return format!(
            "{}ENGINE = Replicated{engine}'{path}', '{{replica}}'{more}{}",
            &rest[..at],
            &rest[close..]
        );
    }
    rest.to_owned()
}

/// The column an `ALTER TABLE t ADD COLUMN c …` adds.
fn added_column(words: &[&str]) -> Option<String> {
    let at = words
        .windows(2)
        .position(|w| w[0].eq_ignore_ascii_case("ADD") && w[1].eq_ignore_ascii_case("COLUMN"))?;
    words.get(at + 2).map(|c| c.trim_matches('`').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        Cluster::parse("nrt", "http://a:1,http://b:1; http://c:1,http://d:1")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn shards_are_parsed_and_chosen_by_partition() {
        let c = cluster();
        assert_eq!(
            c.shards,
            [vec!["http://a:1", "http://b:1"], vec!["http://c:1", "http://d:1"]]
        );
        assert_eq!([0, 1, 2, 3, 5].map(|p| c.shard_of(p)), [0, 1, 0, 1, 1]);
        assert_eq!(c.nodes().count(), 4);
        assert_eq!(
            Cluster::parse("nrt", "http://a:1;;http://b:1"),
            Err(ClusterError::EmptyShard(2))
        );
        assert_eq!(Cluster::parse("nrt", ""), Err(ClusterError::EmptyShard(1)));
    }

    #[test]
    fn the_data_table_becomes_local_replicated_plus_distributed() {
        let sql = "CREATE TABLE IF NOT EXISTS db.ev\n(\n    `id` UInt64,\n    `kafka_partition` Int32\n)\n\
                   ENGINE = ReplacingMergeTree()\nPARTITION BY toYYYYMM(`t`)\nORDER BY (`id`)";
        let s = steps(sql, &cluster(), "db", "ev", false);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].sql,
            "CREATE TABLE IF NOT EXISTS db.ev_local ON CLUSTER `nrt`\n(\n    `id` UInt64,\n    `kafka_partition` Int32\n)\n\
             ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/ev_local', '{replica}')\n\
             PARTITION BY toYYYYMM(`t`)\nORDER BY (`id`)"
        );
        assert_eq!(
            s[1].sql,
            "CREATE TABLE IF NOT EXISTS db.ev ON CLUSTER `nrt` AS db.ev_local \
             ENGINE = Distributed(`nrt`, `db`, `ev_local`, kafka_partition)"
        );
        assert!(s.iter().all(|s| !s.each_node && s.adds.is_none()));
    }

    #[test]
    fn other_tables_are_replicated_on_every_node_with_their_engine_arguments() {
        let sql = "CREATE TABLE IF NOT EXISTS db.schema_migrations (v UInt32) ENGINE = ReplacingMergeTree(v) ORDER BY v";
        assert_eq!(
            steps(sql, &cluster(), "db", "ev", false),
            [Step::queued(
                "CREATE TABLE IF NOT EXISTS db.schema_migrations ON CLUSTER `nrt` (v UInt32) ENGINE = \
                 ReplicatedReplacingMergeTree('/clickhouse/tables/all/db/schema_migrations', '{replica}', v) ORDER BY v"
                    .into()
            )]
        );
        let db = steps("CREATE DATABASE IF NOT EXISTS db", &cluster(), "db", "ev", false);
        assert_eq!(
            db,
            [Step::queued(
                "CREATE DATABASE IF NOT EXISTS db ON CLUSTER `nrt`".into()
            )]
        );
    }

    #[test]
    fn an_added_column_goes_to_both_tables_and_node_by_node_on_old_servers() {
        let sql = "ALTER TABLE db.ev ADD COLUMN `country` Nullable(String)";
        let old = steps(sql, &cluster(), "db", "ev", false);
        let local = Some(("db.ev_local".to_owned(), "country".to_owned()));
        let dist = Some(("db.ev".to_owned(), "country".to_owned()));
        assert_eq!(
            old,
            [
                Step {
                    sql: "ALTER TABLE db.ev_local ON CLUSTER `nrt` ADD COLUMN `country` Nullable(String)"
                        .into(),
                    each_node: false,
                    adds: local.clone(),
                },
                Step {
                    sql: sql.into(),
                    each_node: true,
                    adds: dist.clone(),
                },
            ]
        );
        let new = steps(sql, &cluster(), "db", "ev", true);
        assert_eq!(
            new[1].sql,
            "ALTER TABLE db.ev ON CLUSTER `nrt` ADD COLUMN `country` Nullable(String)"
        );
        assert!(!new[1].each_node);
    }
}
