//! Where a batch's rows go on a ClickHouse cluster (`cluster.rs`): into the local table of its Kafka
//! partition's shard, on one replica of it, whole. A replica that does not answer, or answers that it
//! cannot take rows now (ZooKeeper away, too many parts), is left for the shard's next one, which
//! stays the first tried until it fails in turn. Sent again to any replica of the shard, a block a
//! replica took already is dropped by the replicated table (its checksum is kept in ZooKeeper for the
//! last 100 blocks), so moving on never writes a row twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::cluster::{self, Cluster};
use super::insert::{insert_all_within, InsertError, Origin};
use super::Node;
use crate::actors::messages::Failure;
use crate::config::ClickhouseConfig;
use crate::record::Records;

/// How long a replica may take to take a send, or to answer the end of an insert, before the next
/// one is tried: a node that stops (frozen, its host gone) holds no batch longer.
const REPLICA_WAIT: Duration = Duration::from_secs(30);

pub struct Shards {
    cluster: Cluster,
    /// `database.<table>_local`.
    table: String,
    shards: Vec<Shard>,
}

struct Shard {
    replicas: Vec<Node>,
    /// The replica tried first: the last one that took rows.
    first: AtomicUsize,
}

impl Shards {
    /// `table`: the Distributed table's name (in `cfg.database`).
    pub fn new(
        cfg: &ClickhouseConfig,
        cluster: Cluster,
        table: &str,
    ) -> Result<Shards, crate::tls::TlsError> {
        let shards = super::shard_nodes(cfg, &cluster, super::client)?
            .into_iter()
            .map(|replicas| Shard {
                replicas,
                first: AtomicUsize::new(0),
            })
            .collect();
        Ok(Shards {
            table: format!("{}.{}", cfg.database, cluster::local(table)),
            cluster,
            shards,
        })
    }

    /// Inserts `records` (all of Kafka partition `origin.partition`) into their shard.
    pub async fn insert(&self, records: &Records, origin: Origin) -> Result<(), InsertError> {
        let Some(shard) = self.shards.get(self.cluster.shard_of(origin.partition)) else {
            return Ok(());
        };
        let mut last = None;
        for i in tried(shard.first.load(Ordering::Relaxed), shard.replicas.len()) {
            let Node { url, client } = &shard.replicas[i];
            match insert_all_within(client, &self.table, records, origin, Some(REPLICA_WAIT)).await {
                Ok(()) => {
                    shard.first.store(i, Ordering::Relaxed);
                    return Ok(());
                }
                Err(InsertError::Server(e)) if super::writer::failure_of(&e) == Failure::Transient => {
                    log::warn!(
                        "clickhouse: replica {url} did not take partition {}'s rows: {e}",
                        origin.partition
                    );
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.map_or(InsertError::NoReplica(origin.partition), InsertError::Server))
    }
}

/// The order a shard's `n` replicas are tried in: from the one that last took rows, each once, wrapping
/// around, so a replica that failed is asked again only after every other one.
fn tried(first: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |k| (first + k) % n)
}

#[cfg(test)]
mod tests {
    use super::tried;

    #[test]
    fn replicas_are_tried_from_the_last_that_took_rows_each_once() {
        assert_eq!(tried(0, 2).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(tried(1, 2).collect::<Vec<_>>(), [1, 0]);
        assert_eq!(tried(2, 3).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(tried(0, 1).collect::<Vec<_>>(), [0]);
        assert_eq!(tried(0, 0).count(), 0);
    }
}
