//! KafkaPublisher: the idempotent producer (`enable.idempotence`, `acks=all`). An event counts as
//! published only once the broker acknowledged it; a delivery that fails is retried (only that one)
//! until it is acknowledged, so the reply to `Publish` means "all of them are in Kafka".

use std::time::Duration;

use actix::prelude::*;
use futures::future::join_all;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::Shared;
use crate::config::KafkaConfig;
use crate::kafka::StatsContext;
use crate::retry::Backoff;

pub const NAME: &str = "kafka_publisher";

/// One encoded event: key = event_id (so an event always lands on the same partition).
#[derive(Debug, Clone)]
pub struct Record {
    pub key: String,
    pub payload: Vec<u8>,
}

/// Publish these records; replies with how many the broker acknowledged (all of them, or an error).
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, String>")]
pub struct Publish(pub Vec<Record>);

pub struct TopicSettings {
    pub kafka: KafkaConfig,
    pub topic: String,
    pub partitions: i32,
    pub replication: i32,
}

pub struct KafkaPublisher {
    producer: FutureProducer<StatsContext>,
    settings: std::sync::Arc<TopicSettings>,
    topic_ready: bool,
    shared: Shared,
}

impl KafkaPublisher {
    pub fn new(settings: TopicSettings, shared: Shared) -> Result<Self, String> {
        let context = StatsContext {
            lag: None,
            queue: Some(shared.metrics.producer_queue.clone()),
            assignments: None,
        };
        let producer = crate::kafka::producer_config(&settings.kafka)
            .set("statistics.interval.ms", crate::kafka::STATS_INTERVAL_MS)
            .create_with_context(context)
            .map_err(|e| format!("kafka at {}: {e}", settings.kafka.brokers))?;
        Ok(KafkaPublisher {
            producer,
            settings: std::sync::Arc::new(settings),
            topic_ready: false,
            shared,
        })
    }
}

impl Actor for KafkaPublisher {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.shared.health.running(NAME);
    }
}

impl Supervised for KafkaPublisher {}

impl Handler<Publish> for KafkaPublisher {
    type Result = ResponseActFuture<Self, Result<usize, String>>;

    fn handle(&mut self, Publish(records): Publish, _: &mut Self::Context) -> Self::Result {
        let (producer, settings, shared) =
            (self.producer.clone(), self.settings.clone(), self.shared.clone());
        let need_topic = !self.topic_ready;
        let job = async move {
            if need_topic {
                let s = &settings;
                crate::kafka::ensure_topic_retrying(
                    &s.kafka,
                    &s.topic,
                    s.partitions,
                    s.replication,
                    |e, attempts| {
                        if attempts % 10 == 0 {
                            log::warn!("{NAME}: {e}; retrying");
                        }
                        shared.health.error(NAME, e.to_string());
                    },
                )
                .await;
            }
            let mut backoff = Backoff::service();
            let total = records.len();
            let mut pending = records;
            loop {
                let sends = pending.iter().map(|r| {
                    let record = FutureRecord::to(&settings.topic).key(&r.key).payload(&r.payload);
                    // Waits (backpressure) while librdkafka's local queue is full.
                    producer.send(record, Duration::from_secs(60))
                });
                let results = join_all(sends).await;
                let failed: Vec<_> = pending
                    .into_iter()
                    .zip(results)
                    .filter_map(|(r, res)| res.err().map(|(e, _)| (r, e)))
                    .collect();
                let acked = total - failed.len();
                if failed.is_empty() {
                    shared.metrics.events_published.inc_by(acked as u64);
                    return Ok(total);
                }
                shared.metrics.publish_errors.inc_by(failed.len() as u64);
                let first = failed[0].1.to_string();
                log::warn!(
                    "{NAME}: {} of {total} deliveries failed ({first}); retrying them",
                    failed.len()
                );
                shared.health.error(NAME, first);
                pending = failed.into_iter().map(|(r, _)| r).collect();
                tokio::time::sleep(backoff.next_delay()).await;
            }
        };
        Box::pin(job.into_actor(self).map(|res, act, _| {
            if res.is_ok() {
                act.topic_ready = true;
                act.shared.health.running(NAME);
            }
            res
        }))
    }
}
