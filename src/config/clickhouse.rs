//! ClickHouse: URL, database, credentials, compression, and the shards of a cluster.

use clap::Args;

use super::Secret;
use crate::clickhouse::cluster::{Cluster, ClusterError};

/// ClickHouse, over its HTTP interface.
#[derive(Debug, Clone, Args)]
pub struct ClickhouseConfig {
    /// HTTP endpoint.
    #[arg(
        id = "clickhouse-url",
        long = "clickhouse-url",
        env = "NRT_CLICKHOUSE_URL",
        default_value = "http://127.0.0.1:8123"
    )]
    pub url: String,
    /// User name.
    #[arg(
        id = "clickhouse-user",
        long = "clickhouse-user",
        env = "NRT_CLICKHOUSE_USER",
        default_value = "default"
    )]
    pub user: String,
    /// Password. Prefer the environment: flags show up in `ps`.
    #[arg(
        id = "clickhouse-password",
        long = "clickhouse-password",
        env = "NRT_CLICKHOUSE_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    pub password: Secret,
    /// Database holding `events_raw`.
    #[arg(
        id = "clickhouse-database",
        long = "clickhouse-database",
        env = "NRT_CLICKHOUSE_DATABASE",
        default_value = "analytics"
    )]
    pub database: String,
    /// Compression of insert bodies. `none` by default: next to ClickHouse (or on a LAN) lz4 costs
    /// CPU on both ends (~8 % of the consumer's) and saves bandwidth nobody lacks (~25 MB/s of
    /// RowBinary at 350,000 events/s); across a slow link, `lz4`.
    #[arg(
        id = "clickhouse-compression",
        long = "clickhouse-compression",
        env = "NRT_CLICKHOUSE_COMPRESSION",
        value_enum,
        default_value_t = ClickhouseCompression::None
    )]
    pub compression: ClickhouseCompression,
    /// PEM bundle of the CA(s) that signed ClickHouse's certificate (an `https://` URL), beside the
    /// system's.
    #[arg(
        id = "clickhouse-ca-file",
        long = "clickhouse-ca-file",
        env = "NRT_CLICKHOUSE_CA_FILE"
    )]
    pub ca_file: Option<std::path::PathBuf>,
    /// A ClickHouse cluster's name in its servers' `remote_servers`: tables are made on every node
    /// (`ON CLUSTER`), rows go to each shard's local replicated table, reads go through a Distributed
    /// table of the configured name (docs/deployment.md, "A ClickHouse cluster"). Needs
    /// NRT_CLICKHOUSE_SHARDS. Empty: one server.
    #[arg(
        id = "clickhouse-cluster",
        long = "clickhouse-cluster",
        env = "NRT_CLICKHOUSE_CLUSTER",
        default_value = ""
    )]
    pub cluster: String,
    /// The cluster's nodes, HTTP URLs: shards separated by `;`, each shard's replicas by `,`, in the
    /// order of `remote_servers` (`http://a1:8123,http://a2:8123;http://b1:8123,http://b2:8123`).
    /// NRT_CLICKHOUSE_URL stays the node (or balancer) DDL and reads go through.
    #[arg(
        id = "clickhouse-shards",
        long = "clickhouse-shards",
        env = "NRT_CLICKHOUSE_SHARDS",
        default_value = ""
    )]
    pub shards: String,
}

impl ClickhouseConfig {
    /// The cluster configured, if any (checked by `ServicesConfig::validate`).
    pub fn cluster(&self) -> Result<Option<Cluster>, ClusterError> {
        match (self.cluster.is_empty(), self.shards.is_empty()) {
            (true, true) => Ok(None),
            (false, false) => Cluster::parse(&self.cluster, &self.shards).map(Some),
            (false, true) => Err(ClusterError::NoShards),
            (true, false) => Err(ClusterError::NoName),
        }
    }

    /// The cluster, once `ServicesConfig::validate` accepted the settings (which refuses a wrong one
    /// before anything starts): None on one server.
    pub fn validated_cluster(&self) -> Option<Cluster> {
        self.cluster().ok().flatten()
    }

    /// The same settings for one node of the cluster.
    pub fn node(&self, url: &str) -> ClickhouseConfig {
        ClickhouseConfig {
            url: url.to_owned(),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClickhouseCompression {
    None,
    Lz4,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_needs_its_name_and_its_shards() {
        let cfg = |cluster: &str, shards: &str| ClickhouseConfig {
            url: "http://127.0.0.1:8123".into(),
            user: "default".into(),
            password: Secret::default(),
            database: "analytics".into(),
            compression: ClickhouseCompression::None,
            ca_file: None,
            cluster: cluster.into(),
            shards: shards.into(),
        };
        assert_eq!(cfg("", "").cluster(), Ok(None));
        let two = cfg("nrt", "http://a:1,http://b:1;http://c:1").cluster();
        assert_eq!(two.map(|c| c.map(|c| c.shards.len())), Ok(Some(2)));
        assert_eq!(cfg("nrt", "").cluster(), Err(ClusterError::NoShards));
        assert_eq!(cfg("", "http://a:1").cluster(), Err(ClusterError::NoName));
        assert_eq!(cfg("", "").node("http://x:1").url, "http://x:1");
    }
}
