//! Shared by the integration tests: service addresses (from `.env` and the environment, with the
//! native stack's defaults), a check that fails loudly when a service is missing, and unique names so
//! tests never see each other's topics, groups, buckets or tables.
#![allow(dead_code)] // each test file uses a different part of this module

pub use nrt_pipeline::probes::Service;

use std::time::Duration;

use nrt_pipeline::config::ServicesConfig;
use nrt_pipeline::probes;

pub const START_HINT: &str =
    "start the real services with `scripts/stack.sh up` (or run `scripts/test.sh`)";

/// The configuration the tests run against. A malformed `.env` fails here, by design.
pub fn services() -> ServicesConfig {
    if let Err(e) = dotenvy::dotenv() {
        assert!(e.not_found(), "cannot read .env: {e}");
    }
    match ServicesConfig::from_env() {
        Ok(cfg) => cfg,
        Err(e) => panic!("invalid service configuration in the environment: {e}"),
    }
}

/// Panics with the service name, the endpoint, what went wrong and how to start it, unless the service
/// answers. Integration tests never skip: a missing service is a failure.
pub async fn require(service: Service, cfg: &ServicesConfig) {
    let timeout = Duration::from_secs(5);
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}"));
    let probe = probes::probe(cfg, service, &http, timeout).await;
    assert!(
        probe.ok,
        "{service} is not reachable at {} ({}): {START_HINT}",
        probe.endpoint, probe.detail
    );
}

/// A name no other test run uses: `prefix` + 12 random hex digits (lowercase, valid for topics,
/// groups, buckets and ClickHouse tables alike).
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..12])
}
