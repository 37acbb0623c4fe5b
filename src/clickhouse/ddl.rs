//! Runs the DDL nrt writes for one server where the table lives: as written on one server; on a
//! cluster as `cluster::steps` says (`ON CLUSTER` through the configured node, or node by node), an
//! `ADD COLUMN` skipped wherever the table has the column already, so a twin racing us, or a retry
//! after a node came back, finds it done.

use std::time::Duration;

use super::cluster::{self, Cluster, Step};
use super::row::Columns;
use super::types::Server;
use crate::config::ClickhouseConfig;

/// How long an `ON CLUSTER` statement waits for every node: past it the statement fails (and is asked
/// again later) while the server's queue still takes it to a node that is down once it returns.
const CLUSTER_WAIT: Duration = Duration::from_secs(30);

pub struct Ddl {
    /// The configured node, no database selected.
    client: clickhouse::Client,
    cluster: Option<Nodes>,
}

struct Nodes {
    cluster: Cluster,
    /// Every node, for the statements run on each.
    each: Vec<clickhouse::Client>,
    /// What the servers take, asked once.
    server: tokio::sync::OnceCell<Server>,
}

impl Ddl {
    pub fn new(cfg: &ClickhouseConfig) -> Result<Ddl, crate::tls::TlsError> {
        let client = super::server_client(cfg)?;
        let cluster = match cfg.validated_cluster() {
            Some(cluster) => {
                let each = super::shard_nodes(cfg, &cluster, super::server_client)?
                    .into_iter()
                    .flatten()
                    .map(|node| node.client)
                    .collect();
                Some(Nodes {
                    cluster,
                    each,
                    server: tokio::sync::OnceCell::new(),
                })
            }
            None => None,
        };
        let client = match cluster {
            Some(_) => {
                client.with_setting("distributed_ddl_task_timeout", CLUSTER_WAIT.as_secs().to_string())
            }
            None => client,
        };
        Ok(Ddl { client, cluster })
    }

    /// The configured node: what the table's columns are read from.
    pub fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    /// The table's columns as readers see them: on a cluster, only those the table has on every node
    /// (a node that was down when a column was added node by node lacks it until it is added again
    /// there), and an error while a node does not answer, so nothing is taken as done meanwhile.
    pub async fn columns(&self, database: &str, table: &str) -> Result<Columns, clickhouse::error::Error> {
        let mut columns = super::table::columns(&self.client, database, table).await?;
        if let Some(nodes) = &self.cluster {
            for node in &nodes.each {
                let there = super::table::columns(node, database, table).await?;
                columns.retain(|name, _| there.contains_key(name));
            }
        }
        Ok(columns)
    }

    /// Runs `sql`, written for one server; `data` is the table records go to (in `database`).
    pub async fn execute(
        &self,
        sql: &str,
        database: &str,
        data: &str,
    ) -> Result<(), clickhouse::error::Error> {
        let Some(nodes) = &self.cluster else {
            return self.client.query(sql).execute().await;
        };
        let server = nodes
            .server
            .get_or_try_init(|| super::table::server(&self.client))
            .await?;
        for step in cluster::steps(sql, &nodes.cluster, database, data, server.distributed_alter) {
            match step.each_node {
                false => run(&self.client, &step).await?,
                true => {
                    for node in &nodes.each {
                        run(node, &step).await?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs one step on `client`, unless it adds a column the table there has (before, or after it failed:
/// a twin's statement may have come first).
async fn run(client: &clickhouse::Client, step: &Step) -> Result<(), clickhouse::error::Error> {
    if has_column(client, step).await? {
        return Ok(());
    }
    match client.query(&step.sql).execute().await {
        Err(e) if !has_column(client, step).await? => Err(e),
        _ => Ok(()),
    }
}

async fn has_column(client: &clickhouse::Client, step: &Step) -> Result<bool, clickhouse::error::Error> {
    let Some((table, column)) = &step.adds else {
        return Ok(false);
    };
    let (database, table) = table.split_once('.').unwrap_or(("", table));
    let sql = format!(
        "SELECT count() FROM system.columns WHERE database = '{}' AND table = '{}' AND name = '{}'",
        database.replace('\'', ""),
        table.replace('\'', ""),
        column.replace('\'', "")
    );
    Ok(client.query(&sql).fetch_one::<u64>().await? > 0)
}
