//! Does each dependency answer, and if not, why? Used by `nrt doctor`, `nrt run`'s start (a
//! misconfiguration stops it before anything is consumed), the admin API's readiness, and the tests'
//! service check.
//!
//! Each probe goes through the same client, TLS and credentials the pipeline uses, and asks the
//! cheapest question that proves the service can do its job for us: Kafka returns cluster metadata
//! (and may create the topic), the registry lists subjects, S3 lists the bucket, ClickHouse says
//! whether the user may write.

mod cluster;
pub mod diagnose;
mod kafka;
mod peer;

use std::fmt;
use std::time::{Duration, Instant};

use crate::config::ServicesConfig;
use crate::registry::RegistryClient;
use crate::s3::ObjectStore;
pub use diagnose::{Failure, Stage};

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
    /// Why it failed, when it did.
    pub failure: Option<Failure>,
    pub elapsed: Duration,
}

/// The clients, built once from the configuration (a client that cannot be built is a probe failure
/// of stage `Config`, reported when that service is probed).
pub struct Probes {
    cfg: ServicesConfig,
    /// The Kafka topic whose existence (or creation right) is checked, if any.
    topic: Option<String>,
    timeout: Duration,
    registry: Result<RegistryClient, String>,
    s3: Result<ObjectStore, String>,
    clickhouse: Result<clickhouse::Client, String>,
    /// On a ClickHouse cluster, every shard's replicas (`cluster.rs`).
    shards: Result<Option<cluster::ShardClients>, String>,
    http: reqwest::Client,
    /// Every secret of the configuration, gathered once: replaced by `***` in what a probe says.
    secrets: Vec<String>,
}

type Outcome = Result<String, Failure>;

impl Probes {
    pub fn new(cfg: &ServicesConfig, topic: Option<String>, timeout: Duration) -> Self {
        Probes {
            cfg: cfg.clone(),
            topic,
            timeout,
            registry: RegistryClient::new(&cfg.registry, timeout).map_err(|e| e.to_string()),
            s3: ObjectStore::new(&cfg.s3).map_err(|e| e.to_string()),
            clickhouse: crate::clickhouse::server_client(&cfg.clickhouse).map_err(|e| e.to_string()),
            shards: cluster::ShardClients::new(&cfg.clickhouse).map_err(|e| e.to_string()),
            // Prometheus is only read by people and tests: the system's roots are enough.
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .unwrap_or_default(),
            secrets: secrets_of(cfg),
        }
    }

    /// Probes `services` concurrently; each one is bounded by the timeout.
    pub async fn all(&self, services: &[Service]) -> Vec<Probe> {
        futures::future::join_all(services.iter().map(|s| self.probe(*s))).await
    }

    pub async fn probe(&self, service: Service) -> Probe {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.timeout + Duration::from_secs(1), self.ask(service)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(diagnose::classify(service, "timed out")),
        };
        let outcome = match outcome {
            Err(f) if f.stage == Stage::Tls => Err(self.with_certificate(service, f).await),
            other => other,
        };
        let (ok, detail, failure) = match outcome {
            Ok(d) => (true, d, None),
            Err(f) => (false, f.to_string(), Some(f)),
        };
        Probe {
            service,
            endpoint: service.endpoint(&self.cfg).to_owned(),
            ok,
            detail: self.redact(&detail),
            failure: failure.map(|f| Failure {
                cause: self.redact(&f.cause),
                ..f
            }),
            elapsed: started.elapsed(),
        }
    }

    async fn ask(&self, service: Service) -> Outcome {
        let config = |e: &String| diagnose::failure(Stage::Config, e.clone(), "fix the setting named");
        match service {
            Service::Kafka => kafka::probe(&self.cfg.kafka, self.topic.as_deref(), self.timeout).await,
            Service::Registry => {
                let client = self.registry.as_ref().map_err(config)?;
                match client.subjects().await {
                    Ok(subjects) => Ok(format!("{} subject(s)", subjects.len())),
                    Err(e) => Err(diagnose::classify(service, &chain(&e))),
                }
            }
            Service::Minio => {
                let store = self.s3.as_ref().map_err(config)?;
                store.probe().await.map_err(|e| diagnose::classify(service, &chain(&e)))
            }
            Service::Clickhouse => {
                let client = self.clickhouse.as_ref().map_err(config)?;
                let node = clickhouse_probe(client, &self.cfg.clickhouse.database).await?;
                match self.shards.as_ref().map_err(config)? {
                    Some(shards) => Ok(format!("{node}; {}", shards.probe(self.timeout).await?)),
                    None => Ok(node),
                }
            }
            Service::Prometheus => {
                let url = format!("{}/-/ready", self.cfg.prometheus.url.trim_end_matches('/'));
                match self.http.get(&url).send().await {
                    Ok(resp) if resp.status().is_success() => Ok(format!("HTTP {}", resp.status().as_u16())),
                    Ok(resp) => Err(diagnose::classify(service, &format!("HTTP {}", resp.status().as_u16()))),
                    Err(e) => Err(diagnose::classify(service, &chain(&e))),
                }
            }
        }
    }

    /// A TLS failure says which certificate it is about (subject, issuer, end of validity).
    async fn with_certificate(&self, service: Service, f: Failure) -> Failure {
        let Some((host, port)) = peer::address(service.endpoint(&self.cfg)) else {
            return f;
        };
        match peer::describe(host, port).await {
            Some(cert) => Failure {
                cause: format!("{} (certificate {cert})", f.cause),
                ..f
            },
            None => f,
        }
    }

    fn redact(&self, text: &str) -> String {
        crate::config::redact(text, &self.secrets)
    }
}

fn secrets_of(cfg: &ServicesConfig) -> Vec<String> {
    let mut secrets: Vec<String> = vec![
        cfg.clickhouse.password.expose().to_owned(),
        cfg.s3.secret_key.expose().to_owned(),
        cfg.registry.basic_auth.expose().to_owned(),
    ];
    if let Some((_, pw)) = cfg.registry.credentials().ok().flatten() {
        secrets.push(pw.expose().to_owned());
    }
    if let Ok(props) = cfg.kafka.properties() {
        secrets.extend(props.secrets().map(str::to_owned));
    }
    secrets
}

/// An error and its sources, one after the other: the TLS or socket reason is usually at the end.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// `SELECT 1` would prove the password; the `readonly` setting also proves the user may write.
async fn clickhouse_probe(client: &clickhouse::Client, database: &str) -> Outcome {
    let service = Service::Clickhouse;
    let readonly: String = client
        .query("SELECT value FROM system.settings WHERE name = 'readonly'")
        .fetch_one()
        .await
        .map_err(|e| diagnose::classify(service, &chain(&e)))?;
    if readonly.trim() != "0" {
        return Err(diagnose::failure(
            Stage::Authorization,
            format!("the user is read-only (readonly={readonly}): inserts would be refused"),
            "give the user a profile with readonly=0 (NRT_CLICKHOUSE_USER)",
        ));
    }
    let present: u64 = client
        .query("SELECT count() FROM system.databases WHERE name = ?")
        .bind(database)
        .fetch_one()
        .await
        .map_err(|e| diagnose::classify(service, &chain(&e)))?;
    Ok(if present > 0 {
        format!("may write; database {database} present")
    } else {
        format!("may write; database {database} absent (created at start)")
    })
}
