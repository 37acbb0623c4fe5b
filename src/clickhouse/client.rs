//! The ClickHouse client, built the way both ClickHouse 18.16 (Debian) and current releases accept.

use std::time::Duration;

use hyper_rustls_027::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::cluster::Cluster;
use crate::config::{ClickhouseCompression, ClickhouseConfig};
use crate::tls::TlsError;

/// A client bound to the configured database.
///
/// `with_database` + bare table names: the crate quotes a dotted `db.table` as one identifier.
pub fn client(cfg: &ClickhouseConfig) -> Result<clickhouse::Client, TlsError> {
    Ok(server_client(cfg)?.with_database(&cfg.database))
}

/// A client with no database selected, for `CREATE DATABASE` and other server-level statements.
///
/// `with_validation(false)`: the crate's schema validation asks for `RowBinaryWithNamesAndTypes`,
/// which ClickHouse 18.16 does not have; plain `RowBinary` works on every version.
///
/// The password travels in a header, never in the URL (which shows up in errors and logs).
pub fn server_client(cfg: &ClickhouseConfig) -> Result<clickhouse::Client, TlsError> {
    // The crate's default settings (keep-alive, a pool idle timeout below ClickHouse's 3 s keep-alive),
    // with our TLS. The crate names neither its client trait nor its body type: built in place.
    let http = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(2))
        .build(connector(cfg)?);
    let client = clickhouse::Client::with_http_client(http)
        .with_url(&cfg.url)
        .with_user(&cfg.user)
        .with_compression(match cfg.compression {
            ClickhouseCompression::None => clickhouse::Compression::None,
            ClickhouseCompression::Lz4 => clickhouse::Compression::Lz4,
        })
        .with_validation(false);
    Ok(if cfg.password.is_empty() {
        client
    } else {
        client.with_password(cfg.password.expose())
    })
}

/// One node of a cluster: its URL (what logs and `/ready` name) and a client to it.
pub struct Node {
    pub url: String,
    pub client: clickhouse::Client,
}

/// Each shard's replicas, with clients made by `make` (`client` or `server_client`) from the
/// configuration's settings with the node's URL: the writer's inserts, the probe and the DDL reach the
/// nodes the same way.
pub fn shard_nodes(
    cfg: &ClickhouseConfig,
    cluster: &Cluster,
    make: fn(&ClickhouseConfig) -> Result<clickhouse::Client, TlsError>,
) -> Result<Vec<Vec<Node>>, TlsError> {
    cluster
        .shards
        .iter()
        .map(|urls| {
            urls.iter()
                .map(|url| {
                    Ok(Node {
                        url: url.clone(),
                        client: make(&cfg.node(url))?,
                    })
                })
                .collect()
        })
        .collect()
}

/// TLS trusting the system's roots plus NRT_CLICKHOUSE_CA_FILE; plain `http://` URLs work through it too.
fn connector(cfg: &ClickhouseConfig) -> Result<HttpsConnector<HttpConnector>, TlsError> {
    let tls = crate::tls::client_config("NRT_CLICKHOUSE_CA_FILE", cfg.ca_file.as_deref())?;
    let mut http = HttpConnector::new();
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.enforce_http(false);
    Ok(hyper_rustls_027::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}
