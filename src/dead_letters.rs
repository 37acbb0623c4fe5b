//! The dead-letter topic: records the consumer cannot turn into events (no magic byte, unknown schema
//! id, corrupt Avro, schema resolution failure) go there untouched, with headers saying why and where
//! they came from. A poison record then counts as handled: it never blocks its partition, and its
//! offset is committed only after the dead-letter write was acknowledged.

use std::sync::Mutex;
use std::time::Duration;

use futures::future::{join_all, BoxFuture};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::config::KafkaConfig;
use crate::event::Millis;
use crate::retry::{Next, RetryPolicy};

/// One record on its way to the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's own timestamp (ms), if it had one.
    pub timestamp: Option<i64>,
    /// Short machine-readable reason: too_short, bad_magic, unknown_schema, corrupt, ..., or
    /// `refused_by_<sink>` for an event a sink will not take.
    pub kind: &'static str,
    pub message: String,
    /// What the payload is: the original record (`confluent-avro`) or the decoded event (`json`).
    pub format: &'static str,
}

impl DeadLetter {
    fn headers(&self) -> OwnedHeaders {
        let (partition, offset) = (self.partition.to_string(), self.offset.to_string());
        let (timestamp, now) = (self.timestamp.map(|t| t.to_string()), Millis::now().0.to_string());
        let mut h = OwnedHeaders::new()
            .insert(Header {
                key: "nrt.error.kind",
                value: Some(self.kind),
            })
            .insert(Header {
                key: "nrt.error.message",
                value: Some(&self.message),
            })
            .insert(Header {
                key: "nrt.original.topic",
                value: Some(&self.topic),
            })
            .insert(Header {
                key: "nrt.original.partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "nrt.original.offset",
                value: Some(&offset),
            })
            .insert(Header {
                key: "nrt.payload.format",
                value: Some(self.format),
            })
            .insert(Header {
                key: "nrt.dead_lettered_at",
                value: Some(&now),
            });
        if let Some(t) = &timestamp {
            h = h.insert(Header {
                key: "nrt.original.timestamp",
                value: Some(t),
            });
        }
        h
    }
}

/// Where dead letters go: the Kafka topic in the pipeline, a collecting fake in the Batcher's unit tests.
pub trait DeadLetterSink: Send + Sync {
    fn topic(&self) -> &str;

    /// Writes every letter and returns once all are acknowledged (retrying as long as it takes);
    /// `on_error` hears each failure.
    fn send_all<'a>(&'a self, letters: Vec<DeadLetter>, on_error: &'a (dyn Fn(&str) + Sync)) -> BoxFuture<'a, ()>;
}

pub struct DeadLetterQueue {
    producer: FutureProducer<crate::kafka::StatsContext>,
    pub topic: String,
}

impl DeadLetterQueue {
    pub fn new(kafka: &KafkaConfig, topic: String) -> Result<Self, crate::kafka::KafkaSetupError> {
        let producer = crate::kafka::producer_config(kafka)
            .and_then(|c| c.create_with_context(crate::kafka::StatsContext::default()))
            .map_err(|source| crate::kafka::KafkaSetupError::Client {
                brokers: kafka.brokers.clone(),
                source,
            })?;
        Ok(DeadLetterQueue { producer, topic })
    }

    /// Writes every letter, retrying the failed ones, and returns once the broker acknowledged all.
    pub async fn send_all(&self, letters: Vec<DeadLetter>, on_error: &(dyn Fn(&str) + Sync)) {
        let pending = Mutex::new(letters);
        let attempt = || async {
            let batch = std::mem::take(&mut *pending.lock().unwrap_or_else(|p| p.into_inner()));
            let sends = batch.iter().map(|l| {
                let mut record = FutureRecord::to(&self.topic)
                    .payload(&l.payload)
                    .headers(l.headers());
                if let Some(key) = &l.key {
                    record = record.key(key);
                }
                self.producer.send(record, Duration::from_secs(60))
            });
            let results = join_all(sends).await;
            let mut failed = Vec::new();
            let mut first_error = None;
            for (letter, result) in batch.into_iter().zip(results) {
                if let Err((e, _)) = result {
                    first_error.get_or_insert_with(|| format!("dead-letter write to {}: {e}", self.topic));
                    failed.push(letter);
                }
            }
            *pending.lock().unwrap_or_else(|p| p.into_inner()) = failed;
            first_error.map_or(Ok(()), Err)
        };
        // Dead letters are what lets a partition move past a poison record: they are never given up.
        let _ = RetryPolicy::SERVICE
            .run(attempt, |e: &String, _| {
                on_error(e);
                Next::Retry
            })
            .await;
    }
}

impl DeadLetterSink for DeadLetterQueue {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn send_all<'a>(&'a self, letters: Vec<DeadLetter>, on_error: &'a (dyn Fn(&str) + Sync)) -> BoxFuture<'a, ()> {
        Box::pin(DeadLetterQueue::send_all(self, letters, on_error))
    }
}
