//! The pipeline's registry client against a real `nrt registry`: caching that outlives a registry
//! outage, and errors that say whether a retry can help.
#![cfg(feature = "integration")]

use crate::common;

use std::time::Duration;

use common::RegistryProcess;
use nrt_pipeline::config::RegistryConfig;
use nrt_pipeline::registry::RegistryClient;

const SCHEMA: &str = r#"{"type":"record","name":"E","namespace":"t","fields":[{"name":"a","type":"long"}]}"#;

#[tokio::test]
async fn known_schemas_survive_a_registry_outage() {
    let reg = RegistryProcess::start();
    let cfg = RegistryConfig::at(reg.url.clone());
    let client = RegistryClient::new(&cfg, Duration::from_secs(2)).unwrap_or_else(|e| panic!("{e}"));

    let id = client
        .register("e-value", SCHEMA)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(id, 1);
    let fetched = client.schema_by_id(id).await.unwrap_or_else(|e| panic!("{e}"));
    let latest = client.latest("e-value").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((latest.id, latest.version), (1, 1));
    assert_eq!(*latest.schema, *fetched);

    // Unknown id while the registry is up: a permanent 40403.
    let missing = client.schema_by_id(99).await.expect_err("id 99 does not exist");
    assert_eq!(missing.error_code(), Some(40403));
    assert!(!missing.is_transient(), "{missing}");

    let _dir = reg.kill();
    // Cached: registering the same schema and resolving its id need no registry.
    assert_eq!(client.register("e-value", SCHEMA).await.ok(), Some(1));
    let cached = client
        .schema_by_id(id)
        .await
        .unwrap_or_else(|e| panic!("cache miss while down: {e}"));
    assert_eq!(*cached, *fetched);
    // Not cached: an unknown id fails, and the failure is transient (worth retrying).
    let down = client.schema_by_id(2).await.expect_err("registry is down");
    assert!(down.is_transient(), "{down}");
    assert!(
        down.to_string().contains(&cfg.url),
        "the error names the registry: {down}"
    );
}

#[tokio::test]
async fn invalid_schema_is_a_permanent_error() {
    let reg = RegistryProcess::start();
    let cfg = RegistryConfig::at(reg.url.clone());
    let client = RegistryClient::new(&cfg, Duration::from_secs(2)).unwrap_or_else(|e| panic!("{e}"));
    let err = client
        .register("e-value", "{not avro")
        .await
        .expect_err("invalid schema");
    assert_eq!(err.error_code(), Some(42201));
    assert!(!err.is_transient());
    assert!(RegistryClient::new(&RegistryConfig::at("nonsense"), Duration::from_secs(1)).is_err());
}
