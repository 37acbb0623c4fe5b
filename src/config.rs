//! Every knob of the services nrt talks to: flag, environment variable, default, doc. A file per
//! service (kafka.rs, registry.rs, s3.rs, clickhouse.rs; services.rs gathers them and checks them),
//! pipeline.rs for the pipeline's own knobs, file.rs for the pipelines file; here what they share:
//! `Secret`, `SettingError`.
//!
//! Resolution order is clap's: command-line flag, then environment (a `.env` file is loaded into the
//! environment first by `main`), then the default shown here. Secrets are `Secret`, whose `Debug` and
//! `Display` never print the value, so a logged config cannot leak them.

use std::fmt;
use std::str::FromStr;

mod clickhouse;
pub mod file;
mod kafka;
mod pipeline;
mod registry;
mod s3;
mod services;

pub use clickhouse::{ClickhouseCompression, ClickhouseConfig};
pub use kafka::KafkaConfig;
pub use pipeline::{read_schema, LakeArgs, PipelineConfig, Role, TableArgs};
pub use registry::RegistryConfig;
pub use s3::{S3Config, S3Credentials};
pub use services::{PrometheusConfig, ServicesConfig};

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

/// `text` with every secret of `secrets` replaced by `***` (a server may quote a value back). Values
/// shorter than 3 characters are left alone: replacing them would garble the text, not protect it.
pub fn redact<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    secrets
        .iter()
        .map(AsRef::as_ref)
        .filter(|s| s.len() >= 3)
        .fold(text.to_owned(), |t, s| t.replace(s, "***"))
}

/// A setting clap's types cannot check, at fault: `nrt` exits with code 2 and the message names the
/// variable and the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// A value the setting does not take.
    #[error("{setting}: {why}")]
    Invalid { setting: &'static str, why: String },
    /// The file the setting names cannot be read.
    #[error("{setting}: cannot read {}: {error}", path.display())]
    Unreadable {
        setting: &'static str,
        path: std::path::PathBuf,
        error: String,
    },
    /// The file the setting names is not an Avro schema.
    #[error("{setting}: {} is not an Avro schema: {error}", path.display())]
    NotAvro {
        setting: &'static str,
        path: std::path::PathBuf,
        error: String,
    },
    /// The librdkafka properties (their message names the property).
    #[error("{0}")]
    KafkaProperties(String),
}

pub(crate) fn invalid(setting: &'static str, why: impl Into<String>) -> SettingError {
    SettingError::Invalid {
        setting,
        why: why.into(),
    }
}

/// A ClickHouse database or table name that goes into SQL as it is: letters, digits, `_`.
pub fn is_plain_name(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
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
                ca_file: None,
                credentials: S3Credentials::Auto,
                profile: "default".into(),
                sse: String::new(),
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
        let o = <Only as clap::Parser>::try_parse_from(["nrt", "--kafka-brokers", "h:1"]).map(|o| o.services);
        let services = o.map_err(|e| e.to_string());
        assert_eq!(services.as_ref().map(|s| s.kafka.brokers.as_str()), Ok("h:1"));
        assert_eq!(
            services.map(|s| s.clickhouse.database),
            Ok("analytics".to_string())
        );
    }
}
