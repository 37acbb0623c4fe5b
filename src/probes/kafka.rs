//! The Kafka probe: librdkafka reports why it cannot connect only through its error and log callbacks,
//! so a context collects them while the metadata request runs. OpenSSL's "certificate verify failed"
//! does not say why; a handshake of our own (rustls, with the configured CA) does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::diagnose::{classify, failure, Failure, Stage};
use super::{Outcome, Service};
use crate::config::KafkaConfig;

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

impl Collect {
    fn push(&self, text: String) {
        let mut said = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if said.len() < 50 {
            said.push(text);
        }
    }

    fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).join("; ")
    }
}

impl ClientContext for Collect {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            self.push(format!("{fac}: {message}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.push(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for Collect {}

pub async fn probe(kafka: &KafkaConfig, topic: Option<&str>, timeout: Duration) -> Outcome {
    let service = Service::Kafka;
    let cfg = crate::kafka::base_config(kafka)
        .map_err(|e| failure(Stage::Config, e.to_string(), "fix NRT_KAFKA_PROPERTIES"))?;
    let collect = Collect::default();
    let (consumer_cfg, said) = (cfg.clone(), collect.clone());
    let metadata = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer<Collect> = consumer_cfg
            .create_with_context(said)
            .map_err(|e| e.to_string())?;
        // Errors reach the context only when the client is polled: ask in short rounds, polling between.
        let deadline = std::time::Instant::now() + timeout;
        let md = loop {
            let round = timeout.min(Duration::from_millis(500));
            match consumer.fetch_metadata(None, round) {
                Ok(md) => break md,
                Err(e) if std::time::Instant::now() >= deadline => return Err(e.to_string()),
                Err(e) => {
                    let _ = consumer.poll(Duration::from_millis(100));
                    // A refusal (credentials, certificate) will not change by waiting longer.
                    let said = consumer.context().text();
                    if classify(Service::Kafka, &said).stage.is_misconfiguration() {
                        return Err(e.to_string());
                    }
                }
            }
        };
        let topics: Vec<String> = md.topics().iter().map(|t| t.name().to_owned()).collect();
        Ok::<_, String>((md.brokers().len(), topics))
    })
    .await
    .unwrap_or_else(|e| Err(format!("probe task failed: {e}")));
    let (brokers, topics) = match metadata {
        Ok(found) => found,
        Err(e) => {
            let text = format!("{}; {e}", collect.text());
            let mut f = classify(service, &text);
            if f.stage == Stage::Tls {
                if let Some(precise) = rustls_reason(&kafka.brokers, cfg.get("ssl.ca.location")).await {
                    f = precise;
                }
            }
            return Err(f);
        }
    };
    let Some(topic) = topic else {
        return Ok(format!("{brokers} broker(s), {} topic(s)", topics.len()));
    };
    if topics.iter().any(|t| t == topic) {
        return Ok(format!("{brokers} broker(s), topic {topic} present"));
    }
    // Absent: the pipeline creates it at start. May it? Asked without creating anything.
    let admin: AdminClient<Collect> = cfg
        .create_with_context(Collect::default())
        .map_err(|e| classify(service, &e.to_string()))?;
    let opts = AdminOptions::new()
        .validate_only(true)
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&new_topic], &opts)
        .await
        .map_err(|e| classify(service, &e.to_string()))?;
    match results.into_iter().next() {
        Some(Err((_, code @ (RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed)))) => {
            Err(failure(
                Stage::Authorization,
                format!("topic {topic} does not exist and this user may not create it ({code})"),
                "create the topic, or grant the user CREATE on it (Kafka ACLs)",
            ))
        }
        _ => Ok(format!("{brokers} broker(s), topic {topic} absent (created at start)")),
    }
}

/// Handshakes with the first broker with rustls and the configured CA, for the reason OpenSSL's
/// message leaves out (expired, unknown issuer, wrong name). `None` when it cannot tell.
async fn rustls_reason(brokers: &str, ca: Option<&str>) -> Option<Failure> {
    let first = brokers.split(',').next()?.trim();
    let (host, _) = first.rsplit_once(':')?;
    let config = crate::tls::client_config("ssl.ca.location", ca.map(std::path::Path::new)).ok()?;
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned()).ok()?;
    let tcp = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(first))
        .await
        .ok()?
        .ok()?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match tokio::time::timeout(Duration::from_secs(3), connector.connect(name, tcp)).await {
        Ok(Err(e)) => {
            let text = super::chain(&e);
            let f = classify(Service::Kafka, &text);
            if f.stage == Stage::Tls {
                return Some(f);
            }
            // A plaintext listener hangs up on a TLS hello.
            let t = text.to_ascii_lowercase();
            (t.contains("eof") || t.contains("reset") || t.contains("closed")).then(|| {
                failure(
                    Stage::Tls,
                    "the broker does not speak TLS on this port",
                    "use the broker's SSL/SASL_SSL listener in NRT_KAFKA_BROKERS, or security.protocol to match",
                )
            })
        }
        _ => None,
    }
}
