//! Every service the pipeline depends on, together, and their checks.

use clap::Args;

use super::{invalid, is_plain_name, ClickhouseConfig, KafkaConfig, RegistryConfig, S3Config, SettingError};

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
    /// Checks what clap's types cannot, naming the variable at fault.
    pub fn validate(&self) -> Result<(), SettingError> {
        let cluster = self
            .clickhouse
            .cluster()
            .map_err(|e| invalid("NRT_CLICKHOUSE_CLUSTER / NRT_CLICKHOUSE_SHARDS", e.to_string()))?;
        if !self.clickhouse.cluster.is_empty() && !is_plain_name(&self.clickhouse.cluster) {
            let name = &self.clickhouse.cluster;
            return Err(invalid("NRT_CLICKHOUSE_CLUSTER / --clickhouse-cluster", format!("'{name}' is not a plain name")));
        }
        let mut checks = vec![
            ("NRT_SCHEMA_REGISTRY_URL / --registry-url", self.registry.url.as_str()),
            ("NRT_S3_ENDPOINT / --s3-endpoint", &self.s3.endpoint),
            ("NRT_CLICKHOUSE_URL / --clickhouse-url", &self.clickhouse.url),
        ];
        for node in cluster.iter().flat_map(|c| c.nodes()) {
            checks.push(("NRT_CLICKHOUSE_SHARDS / --clickhouse-shards", node));
        }
        for (name, url) in checks {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(invalid(name, format!("'{url}' is not an http(s) URL")));
            }
            // A password in a URL ends up in logs and error messages; each service has its variable.
            let authority = url.split("://").nth(1).unwrap_or_default().split('/').next().unwrap_or_default();
            if authority.contains('@') {
                return Err(invalid(
                    name,
                    "credentials do not belong in the URL; use the service's user/password variables",
                ));
            }
        }
        self.registry.credentials()?;
        if !matches!(self.s3.sse.as_str(), "" | "AES256" | "aws:kms") {
            return Err(invalid("NRT_S3_SSE / --s3-sse", format!("'{}' is not AES256 or aws:kms", self.s3.sse)));
        }
        let db = &self.clickhouse.database;
        if !is_plain_name(db) {
            return Err(invalid(
                "NRT_CLICKHOUSE_DATABASE / --clickhouse-database",
                format!("'{db}' is not a plain name"),
            ));
        }
        if self.kafka.brokers.trim().is_empty() {
            return Err(invalid("NRT_KAFKA_BROKERS / --kafka-brokers", "must not be empty"));
        }
        self.kafka.properties().map_err(SettingError::KafkaProperties)?;
        Ok(())
    }

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
