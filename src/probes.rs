//! Does each dependency answer? Used by `nrt doctor`, the tests' service check, and (later) the admin
//! API's readiness check.
//!
//! A probe asks the cheapest question that proves the service can do its job for us: Kafka returns
//! cluster metadata, the others answer their own health route.

use std::fmt;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::ServicesConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Kafka,
    Registry,
    Minio,
    Clickhouse,
    Prometheus,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Kafka,
        Service::Registry,
        Service::Minio,
        Service::Clickhouse,
        Service::Prometheus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Kafka => "kafka",
            Service::Registry => "registry",
            Service::Minio => "minio",
            Service::Clickhouse => "clickhouse",
            Service::Prometheus => "prometheus",
        }
    }

    /// Where the service is, as configured.
    pub fn endpoint(self, cfg: &ServicesConfig) -> &str {
        match self {
            Service::Kafka => &cfg.kafka.brokers,
            Service::Registry => &cfg.registry.url,
            Service::Minio => &cfg.s3.endpoint,
            Service::Clickhouse => &cfg.clickhouse.url,
            Service::Prometheus => &cfg.prometheus.url,
        }
    }

    fn health_path(self) -> &'static str {
        match self {
            Service::Kafka => "",
            Service::Registry => "/subjects",
            Service::Minio => "/minio/health/live",
            Service::Clickhouse => "/ping",
            Service::Prometheus => "/-/ready",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub service: Service,
    pub endpoint: String,
    pub ok: bool,
    /// What answered (or why nothing did), in a few words.
    pub detail: String,
    pub elapsed: Duration,
}

/// Probes every service concurrently; each one is bounded by `timeout`.
pub async fn probe_all(cfg: &ServicesConfig, timeout: Duration) -> Result<Vec<Probe>, reqwest::Error> {
    let http = reqwest::Client::builder().timeout(timeout).build()?;
    let probes = Service::ALL.map(|s| probe(cfg, s, &http, timeout));
    Ok(futures::future::join_all(probes).await)
}

/// Probes one service; HTTP services are asked through `http` (whose timeout bounds them).
pub async fn probe(
    cfg: &ServicesConfig,
    service: Service,
    http: &reqwest::Client,
    timeout: Duration,
) -> Probe {
    let started = Instant::now();
    let endpoint = service.endpoint(cfg).to_owned();
    let outcome = match service {
        Service::Kafka => kafka_metadata(&endpoint, timeout).await,
        _ => http_ok(http, &endpoint, service.health_path()).await,
    };
    let (ok, detail) = match outcome {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    Probe {
        service,
        endpoint,
        ok,
        detail,
        elapsed: started.elapsed(),
    }
}

async fn kafka_metadata(brokers: &str, timeout: Duration) -> Result<String, String> {
    let owned = brokers.to_owned();
    // fetch_metadata blocks its thread until the broker answers or the timeout passes.
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &owned)
            .create()
            .map_err(|e| e.to_string())?;
        let md = consumer
            .fetch_metadata(None, timeout)
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "{} broker(s), {} topic(s)",
            md.brokers().len(),
            md.topics().len()
        ))
    })
    .await
    .unwrap_or_else(|e| Err(format!("probe task failed: {e}")))
}

async fn http_ok(http: &reqwest::Client, base: &str, path: &str) -> Result<String, String> {
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    match http.get(&url).send().await {
        Ok(resp) if resp.status().is_success() => Ok(format!("HTTP {}", resp.status().as_u16())),
        Ok(resp) => Err(format!("HTTP {}", resp.status().as_u16())),
        Err(e) if e.is_timeout() => Err("timed out".to_owned()),
        Err(e) if e.is_connect() => Err("connection refused".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}
