//! The schema registry: its URL, credentials and CA.

use clap::Args;

use super::{invalid, Secret, SettingError};

/// The Confluent-compatible schema registry (`nrt registry` natively, Confluent's in compose).
#[derive(Debug, Clone, Args)]
pub struct RegistryConfig {
    /// Base URL of the schema registry.
    #[arg(
        id = "registry-url",
        long = "registry-url",
        env = "NRT_SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub url: String,
    /// `user:password` for HTTP basic auth (Confluent's `basic.auth.user.info`).
    #[arg(
        id = "registry-basic-auth",
        long = "registry-basic-auth",
        env = "NRT_SCHEMA_REGISTRY_BASIC_AUTH",
        hide_env_values = true,
        default_value = ""
    )]
    pub basic_auth: Secret,
    /// PEM bundle of the CA(s) that signed the registry's certificate, beside the system's.
    #[arg(
        id = "registry-ca-file",
        long = "registry-ca-file",
        env = "NRT_SCHEMA_REGISTRY_CA_FILE"
    )]
    pub ca_file: Option<std::path::PathBuf>,
}

impl RegistryConfig {
    /// An open registry at `url` (no credentials, the system's CAs).
    pub fn at(url: impl Into<String>) -> Self {
        RegistryConfig {
            url: url.into(),
            basic_auth: Secret::default(),
            ca_file: None,
        }
    }

    /// The basic-auth user and password, if configured.
    pub fn credentials(&self) -> Result<Option<(String, Secret)>, SettingError> {
        if self.basic_auth.is_empty() {
            return Ok(None);
        }
        match self.basic_auth.expose().split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Some((user.to_owned(), Secret::new(password)))),
            _ => Err(invalid("NRT_SCHEMA_REGISTRY_BASIC_AUTH", "expected user:password")),
        }
    }
}
