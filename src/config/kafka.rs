//! Apache Kafka: the brokers and the operator's librdkafka properties.

use clap::Args;

use super::Secret;

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
    /// Extra librdkafka properties for every client, `key=value,…` (security.protocol, sasl.*, ssl.*,
    /// tuning). A value may be `${env:NAME}` or `${file:/path}`. See docs/configuration.md.
    #[arg(
        id = "kafka-properties",
        long = "kafka-properties",
        env = "NRT_KAFKA_PROPERTIES",
        hide_env_values = true,
        default_value = ""
    )]
    pub properties: Secret,
    /// A file of librdkafka properties, `key=value` per line; NRT_KAFKA_PROPERTIES overrides it.
    #[arg(
        id = "kafka-properties-file",
        long = "kafka-properties-file",
        env = "NRT_KAFKA_PROPERTIES_FILE"
    )]
    pub properties_file: Option<std::path::PathBuf>,
}

impl KafkaConfig {
    /// The operator's librdkafka properties, resolved and checked.
    pub fn properties(&self) -> Result<crate::kafka::properties::KafkaProperties, String> {
        crate::kafka::properties::KafkaProperties::resolve(
            self.properties.expose(),
            self.properties_file.as_deref(),
        )
    }
}
