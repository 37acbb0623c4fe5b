//! A ClickHouse cluster's probe: every shard must have a replica that answers and whose replicated
//! tables take rows. A shard whose replicas are all down, or all read-only (their ZooKeeper session
//! lost), holds its partitions' batches: the pipeline is not ready, and says which shard and why.

use std::time::Duration;

use super::diagnose::{self, Failure, Stage};
use crate::clickhouse::cluster::ClusterError;
use crate::clickhouse::Node;
use crate::config::ClickhouseConfig;

/// Each shard's replicas.
pub struct ShardClients(Vec<Vec<Node>>);

/// Why the probe has no clients: the settings, or a node's TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum ClientsError {
    #[error(transparent)]
    Settings(#[from] ClusterError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

impl ShardClients {
    /// None on one server.
    pub fn new(cfg: &ClickhouseConfig) -> Result<Option<ShardClients>, ClientsError> {
        let Some(cluster) = cfg.cluster()? else {
            return Ok(None);
        };
        let shards = crate::clickhouse::shard_nodes(cfg, &cluster, crate::clickhouse::server_client)?;
        Ok(Some(ShardClients(shards)))
    }

    /// How many shards take rows; the first that does not, as a failure. Each replica is given its share
    /// of `timeout`, so one that hangs leaves time to ask the next.
    pub async fn probe(&self, timeout: Duration) -> Result<String, Failure> {
        for (i, replicas) in self.0.iter().enumerate() {
            let mut said = Vec::new();
            let mut writable = false;
            let each = timeout / replicas.len().max(1) as u32;
            for Node { url, client } in replicas {
                let readonly = client
                    .query("SELECT count() FROM system.replicas WHERE is_readonly")
                    .fetch_one::<u64>();
                match tokio::time::timeout(each, readonly).await {
                    Ok(Ok(0)) => {
                        writable = true;
                        break;
                    }
                    Ok(Ok(n)) => said.push(format!("{url}: {n} replicated table(s) read-only (ZooKeeper unreachable?)")),
                    Ok(Err(e)) => said.push(format!("{url}: {}", super::chain(&e))),
                    Err(_) => said.push(format!("{url}: no answer in {} ms", each.as_millis())),
                }
            }
            if !writable {
                return Err(diagnose::failure(
                    Stage::Service,
                    format!("shard {} takes no rows: {}", i + 1, said.join("; ")),
                    "bring a replica of the shard back (its partitions' batches wait for it)",
                ));
            }
        }
        Ok(format!("{} shard(s) take rows", self.0.len()))
    }
}
