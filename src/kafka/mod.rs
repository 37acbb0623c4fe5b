//! rdkafka client settings in one place, so every producer and consumer of the project is configured
//! the same way, plus topic creation.

pub mod properties;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::internal_events::Throttle;

#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    #[error("kafka at {brokers}: {source}")]
    Client {
        brokers: String,
        #[source]
        source: KafkaError,
    },
    #[error("kafka at {brokers}: creating topic {topic}: {code}")]
    CreateTopic {
        brokers: String,
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Settings shared by every client: where the brokers are, how fast to notice they are gone, and the
/// operator's properties (security, tuning). The properties come after our defaults, so they may change
/// those, and before each client's own settings, which `properties` refuses to override.
pub fn base_config(kafka: &KafkaConfig) -> KafkaResult<ClientConfig> {
    let props = kafka.properties().map_err(KafkaError::ClientCreation)?;
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &kafka.brokers)
        .set("socket.keepalive.enable", "true")
        .set("reconnect.backoff.max.ms", "5000");
    for (k, v) in props.iter() {
        cfg.set(k, v);
    }
    Ok(cfg)
}

/// An idempotent producer: `acks=all` and `enable.idempotence` mean a retried send can neither be lost
/// nor written twice by the broker.
pub fn producer_config(kafka: &KafkaConfig) -> KafkaResult<ClientConfig> {
    let mut cfg = base_config(kafka)?;
    cfg.set("enable.idempotence", "true").set("acks", "all");
    // Defaults the operator may change (compression.type=zstd across a slow link, say).
    for (k, v) in [("compression.type", "lz4"), ("linger.ms", "5")] {
        if cfg.get(k).is_none() {
            cfg.set(k, v);
        }
    }
    Ok(cfg)
}

/// An at-least-once consumer, the rust-rdkafka way: offsets are stored by the application only once a
/// record is durable in every sink, and the background auto-commit only commits what was stored.
/// `read_committed`: records of a transaction the publisher aborted (a batch interrupted half-way and
/// published again) are never seen.
pub fn consumer_config(kafka: &KafkaConfig, group: &str) -> KafkaResult<ClientConfig> {
    let mut cfg = base_config(kafka)?;
    cfg.set("group.id", group)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    Ok(cfg)
}

/// How often librdkafka reports statistics (consumer lag, producer queue) to `StatsContext`.
pub const STATS_INTERVAL_MS: &str = "5000";

/// A client context that turns librdkafka's periodic statistics into our gauges, and its errors and
/// logs into a few lines: a broker that refuses connections makes librdkafka report the same failure
/// several times a second.
#[derive(Clone, Default)]
pub struct StatsContext {
    /// Consumers: lag per topic and partition.
    pub lag: Option<prometheus::IntGaugeVec>,
    /// Producers: messages waiting for acknowledgement.
    pub queue: Option<prometheus::IntGauge>,
    pub quiet: Quiet,
}

/// At most one line per kind of message a minute (`internal_events::Throttle`, per kind); the next one
/// says how many it stood for.
#[derive(Clone, Default)]
pub struct Quiet(Arc<Mutex<HashMap<String, Throttle>>>);

impl Quiet {
    pub const EVERY: Duration = Duration::from_secs(60);

    /// `Some(n)`: say it (n like it were held back since the last time); `None`: stay quiet.
    pub fn allow(&self, kind: &str, now: Instant) -> Option<u64> {
        let mut kinds = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match kinds.get_mut(kind) {
            Some(throttle) => throttle.pass(now),
            None => {
                let mut throttle = Throttle::new(Self::EVERY);
                let said = throttle.pass(now);
                kinds.insert(kind.to_owned(), throttle);
                said
            }
        }
    }

    /// librdkafka's log callback, rate-limited per facility and level.
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let lvl = match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                log::Level::Error
            }
            RDKafkaLogLevel::Warning => log::Level::Warn,
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => log::Level::Info,
            RDKafkaLogLevel::Debug => log::Level::Debug,
        };
        if let Some(held) = self.allow(&format!("log {fac} {lvl}"), Instant::now()) {
            log::log!(target: "librdkafka", lvl, "librdkafka: {fac} {message}{}", Throttle::held_back(held));
        }
    }

    /// librdkafka's error callback: client-wide errors (brokers down, transport failures) that it
    /// retries by itself. A warning: the pipeline waits, `/ready` says so.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        let kind = format!("error {:?}", error.rdkafka_error_code());
        if let Some(held) = self.allow(&kind, Instant::now()) {
            log::warn!(target: "librdkafka", "librdkafka: {error}: {reason}{}", Throttle::held_back(held));
        }
    }
}

impl ClientContext for StatsContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.quiet.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.quiet.error(&error, reason);
    }

    fn stats(&self, stats: Statistics) {
        if let Some(queue) = &self.queue {
            queue.set(stats.msg_cnt as i64);
        }
        if let Some(lag) = &self.lag {
            for (topic, t) in &stats.topics {
                // Partition -1 is librdkafka's internal UA partition; -1 lag means "not known yet".
                for (p, part) in t
                    .partitions
                    .iter()
                    .filter(|(p, part)| **p >= 0 && part.consumer_lag >= 0)
                {
                    lag.with_label_values(&[topic.as_str(), &p.to_string()])
                        .set(part.consumer_lag);
                }
            }
        }
    }
}

/// Producers that learn the outcome from the transaction's commit need no per-record report.
impl ProducerContext for StatsContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

fn client_error(kafka: &KafkaConfig, source: KafkaError) -> KafkaSetupError {
    KafkaSetupError::Client {
        brokers: kafka.brokers.clone(),
        source,
    }
}

/// An admin client, and options that give each request `timeout`.
fn admin(kafka: &KafkaConfig, timeout: Duration) -> Result<(AdminClient<DefaultClientContext>, AdminOptions), KafkaSetupError> {
    let admin = base_config(kafka)
        .and_then(|c| c.create())
        .map_err(|source| client_error(kafka, source))?;
    let opts = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    Ok((admin, opts))
}

/// Creates `topic` if it does not exist yet; an existing topic is left as it is (its partition count
/// included: changing it would move keys between partitions).
pub async fn ensure_topic(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: i32,
    replication: i32,
    timeout: Duration,
) -> Result<(), KafkaSetupError> {
    let (admin, opts) = admin(kafka, timeout)?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let results = admin
        .create_topics([&new_topic], &opts)
        .await
        .map_err(|source| client_error(kafka, source))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaSetupError::CreateTopic {
                    brokers: kafka.brokers.clone(),
                    topic: name,
                    code,
                })
            }
        }
    }
    Ok(())
}

/// The names of the cluster's topics (for a pipeline's `topic_pattern`), asked in a blocking call.
pub async fn topic_names(kafka: &KafkaConfig, timeout: Duration) -> Result<Vec<String>, KafkaSetupError> {
    let (admin, _) = admin(kafka, timeout)?;
    let listed = tokio::task::spawn_blocking(move || {
        let md = admin.inner().fetch_metadata(None, timeout)?;
        Ok(md.topics().iter().map(|t| t.name().to_owned()).collect())
    })
    .await;
    // A join error: the blocking task did not finish (the runtime is shutting down).
    listed
        .unwrap_or(Err(KafkaError::Canceled))
        .map_err(|source| client_error(kafka, source))
}

/// The largest record batch `topic` accepts (its `max.message.bytes`, the broker's default when the
/// topic sets none). `Ok(None)`: the broker answered but would not say (no right to describe the topic).
pub async fn topic_max_message_bytes(kafka: &KafkaConfig, topic: &str) -> Result<Option<usize>, KafkaSetupError> {
    let (admin, opts) = admin(kafka, Duration::from_secs(10))?;
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &opts)
        .await
        .map_err(|source| client_error(kafka, source))?;
    Ok(results
        .into_iter()
        .flatten()
        .find_map(|r| r.get("max.message.bytes")?.value.as_deref()?.parse().ok()))
}

/// Waits until `topic` exists, creating it if needed, through broker outages; `on_error` hears each
/// failure with the number of attempts so far (to log without flooding).
pub async fn ensure_topic_retrying(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: i32,
    replication: i32,
    mut on_error: impl FnMut(&KafkaSetupError, u32),
) {
    let attempt = || ensure_topic(kafka, topic, partitions, replication, Duration::from_secs(10));
    let created = crate::retry::RetryPolicy::SERVICE.run(attempt, |e, failures| {
        on_error(e, failures);
        crate::retry::Next::Retry
    });
    // Never gives up, so it never fails.
    let _ = created.await;
}

#[cfg(test)]
mod tests {
    use super::Quiet;
    use std::time::{Duration, Instant};

    #[test]
    fn one_line_per_kind_a_minute_then_the_count_of_what_was_held_back() {
        let quiet = Quiet::default();
        let t0 = Instant::now();
        assert_eq!(quiet.allow("down", t0), Some(0));
        for s in 1..=9 {
            assert_eq!(quiet.allow("down", t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(quiet.allow("refused", t0), Some(0), "another kind has its own minute");
        assert_eq!(quiet.allow("down", t0 + Quiet::EVERY), Some(9));
        assert_eq!(quiet.allow("down", t0 + Quiet::EVERY + Duration::from_secs(1)), None);
    }
}
