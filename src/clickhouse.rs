//! The ClickHouse client, built the way both ClickHouse 18.16 (Debian) and current releases accept.

use crate::config::{ClickhouseCompression, ClickhouseConfig};

/// A client bound to the configured database.
///
/// `with_database` + bare table names: the crate quotes a dotted `db.table` as one identifier.
pub fn client(cfg: &ClickhouseConfig) -> clickhouse::Client {
    server_client(cfg).with_database(&cfg.database)
}

/// A client with no database selected, for `CREATE DATABASE` and other server-level statements.
///
/// `with_validation(false)`: the crate's schema validation asks for `RowBinaryWithNamesAndTypes`,
/// which ClickHouse 18.16 does not have; plain `RowBinary` works on every version.
pub fn server_client(cfg: &ClickhouseConfig) -> clickhouse::Client {
    let client = clickhouse::Client::default()
        .with_url(&cfg.url)
        .with_user(&cfg.user)
        .with_compression(match cfg.compression {
            ClickhouseCompression::None => clickhouse::Compression::None,
            ClickhouseCompression::Lz4 => clickhouse::Compression::Lz4,
        })
        .with_validation(false);
    if cfg.password.is_empty() {
        client
    } else {
        client.with_password(cfg.password.expose())
    }
}
