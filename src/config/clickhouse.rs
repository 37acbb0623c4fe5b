//! ClickHouse: URL, database, credentials, compression.

use clap::Args;

use super::Secret;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClickhouseCompression {
    None,
    Lz4,
}
