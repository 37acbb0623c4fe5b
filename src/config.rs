//! Every knob of the services nrt talks to: flag, environment variable, default, doc.
//!
//! Resolution order is clap's: command-line flag, then environment (a `.env` file is loaded into the
//! environment first by `main`), then the default shown here. Secrets are `Secret`, whose `Debug` and
//! `Display` never print the value, so a logged config cannot leak them.

use std::fmt;
use std::str::FromStr;

use clap::Args;

/// A credential. Its value is only reachable through [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Apache Kafka.
#[derive(Debug, Clone, Args)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated.
    #[arg(
        id = "kafka-brokers",
        long = "kafka-brokers",
        env = "NRT_KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,
}

/// The Confluent-compatible schema registry (`nrt registry` natively, Confluent's in compose).
#[derive(Debug, Clone, Args)]
pub struct RegistryConfig {
    /// Base URL of the schema registry.
    #[arg(
        id = "registry-url",
        long = "registry-url",
        env = "NRT_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub url: String,
}

/// S3-compatible object storage (MinIO).
#[derive(Debug, Clone, Args)]
pub struct S3Config {
    /// Endpoint URL; path-style addressing is always used, as MinIO expects.
    #[arg(
        id = "s3-endpoint",
        long = "s3-endpoint",
        env = "NRT_S3_ENDPOINT",
        default_value = "http://127.0.0.1:9000"
    )]
    pub endpoint: String,
    /// Region name sent in request signatures.
    #[arg(
        id = "s3-region",
        long = "s3-region",
        env = "NRT_S3_REGION",
        default_value = "us-east-1"
    )]
    pub region: String,
    /// Access key id. Prefer the environment: flags show up in `ps`.
    #[arg(
        id = "s3-access-key",
        long = "s3-access-key",
        env = "NRT_S3_ACCESS_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    pub access_key: Secret,
    /// Secret access key. Prefer the environment: flags show up in `ps`.
    #[arg(
        id = "s3-secret-key",
        long = "s3-secret-key",
        env = "NRT_S3_SECRET_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    pub secret_key: Secret,
    /// Bucket that receives the raw JSONL objects.
    #[arg(
        id = "s3-bucket",
        long = "s3-bucket",
        env = "NRT_S3_BUCKET",
        default_value = "raw-events"
    )]
    pub bucket: String,
}

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
}

/// Prometheus, only read by `nrt doctor` and the tests.
#[derive(Debug, Clone, Args)]
pub struct PrometheusConfig {
    /// Base URL of Prometheus.
    #[arg(
        id = "prometheus-url",
        long = "prometheus-url",
        env = "NRT_PROMETHEUS_URL",
        default_value = "http://127.0.0.1:9090"
    )]
    pub url: String,
}

/// The address of every service the pipeline depends on.
#[derive(Debug, Clone, Args)]
pub struct ServicesConfig {
    #[command(flatten)]
    pub kafka: KafkaConfig,
    #[command(flatten)]
    pub registry: RegistryConfig,
    #[command(flatten)]
    pub s3: S3Config,
    #[command(flatten)]
    pub clickhouse: ClickhouseConfig,
    #[command(flatten)]
    pub prometheus: PrometheusConfig,
}

impl ServicesConfig {
    /// The configuration from the environment and defaults alone, as tests and tools need it.
    pub fn from_env() -> Result<Self, clap::Error> {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            services: ServicesConfig,
        }
        <Only as clap::Parser>::try_parse_from(["nrt"]).map(|o| o.services)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"***\"");
        assert_eq!(format!("{s}"), "\"***\"");
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!(
            "{:?}",
            S3Config {
                endpoint: "e".into(),
                region: "r".into(),
                access_key: Secret::new("AKIA-visible"),
                secret_key: Secret::new("hunter2"),
                bucket: "b".into(),
            }
        )
        .contains("hunter2"));
    }

    #[test]
    fn defaults_resolve_without_environment() {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            services: ServicesConfig,
        }
        let o = <Only as clap::Parser>::try_parse_from(["nrt", "--kafka-brokers", "h:1"])
            .map(|o| o.services);
        let services = o.map_err(|e| e.to_string());
        assert_eq!(
            services.as_ref().map(|s| s.kafka.brokers.as_str()),
            Ok("h:1")
        );
        assert_eq!(
            services.map(|s| s.clickhouse.database),
            Ok("analytics".to_string())
        );
    }
}
