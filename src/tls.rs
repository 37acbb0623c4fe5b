//! Client TLS for the HTTP services (registry, ClickHouse, S3): the system's trust store plus, when
//! configured, a CA bundle of the operator's (an internal CA, a test CA). Kafka's TLS is librdkafka's
//! (`ssl.ca.location` in NRT_KAFKA_PROPERTIES).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{setting}: cannot read CA bundle {path}: {reason}")]
    CaFile {
        setting: &'static str,
        path: String,
        reason: String,
    },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// The certificates of a PEM bundle; an unreadable file or one without a certificate is an error.
pub fn read_ca_bundle(setting: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::CaFile {
        setting,
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate in it".into()));
    }
    Ok(certs)
}

/// The system's roots; a machine without any is not an error here (a custom CA may be all it needs),
/// the handshake will say which certificate it could not verify.
fn system_roots() -> Vec<CertificateDer<'static>> {
    rustls_native_certs::load_native_certs().certs
}

/// A rustls 0.23 client config (reqwest, the ClickHouse client) trusting the system and `ca`.
pub fn client_config(setting: &'static str, ca: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(system_roots());
    if let Some(path) = ca {
        for cert in read_ca_bundle(setting, path)? {
            roots.add(cert).map_err(|e| TlsError::CaFile {
                setting,
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The same trust for rusoto's rustls 0.20 stack.
pub fn client_config_020(setting: &'static str, ca: Option<&Path>) -> Result<rustls_020::ClientConfig, TlsError> {
    let mut roots = rustls_020::RootCertStore::empty();
    if let Ok(native) = rustls_native_certs_06::load_native_certs() {
        for cert in native {
            // A system root rustls cannot parse is skipped, as add_parsable_certificates does.
            let _ = roots.add(&rustls_020::Certificate(cert.0));
        }
    }
    if let Some(path) = ca {
        for cert in read_ca_bundle(setting, path)? {
            roots
                .add(&rustls_020::Certificate(cert.to_vec()))
                .map_err(|e| TlsError::CaFile {
                    setting,
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
        }
    }
    Ok(rustls_020::ClientConfig::builder()
        .with_safe_defaults()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_bundle_is_refused_naming_the_setting() {
        let missing = Path::new("/nonexistent/ca.pem");
        let err = client_config("NRT_CLICKHOUSE_CA_FILE", Some(missing)).unwrap_err().to_string();
        assert!(err.starts_with("NRT_CLICKHOUSE_CA_FILE: cannot read CA bundle /nonexistent/ca.pem"), "{err}");
        let empty = std::env::temp_dir().join(format!("nrt-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config_020("NRT_S3_CA_FILE", Some(&empty)).unwrap_err().to_string();
        assert!(err.contains("no certificate in it"), "{err}");
        std::fs::remove_file(empty).unwrap();
    }

    #[test]
    fn without_a_bundle_the_system_roots_are_enough() {
        assert!(client_config("X", None).is_ok());
        assert!(client_config_020("X", None).is_ok());
    }
}
