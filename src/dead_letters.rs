//! The dead-letter topic: records the consumer cannot turn into events (no magic byte, unknown schema
//! id, corrupt Avro, schema resolution failure) go there untouched, with headers saying why and where
//! they came from. A poison record then counts as handled: it never blocks its partition, and its
//! offset is committed only after the dead-letter write was acknowledged.

use std::sync::Mutex;
use std::time::Duration;

use futures::future::{join_all, BoxFuture};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

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
    /// Why (the `nrt.error.kind` header: `PoisonKind::label`).
    pub kind: crate::poison::PoisonKind,
    pub message: String,
    /// What the payload is: the original record (`confluent-avro`) or the decoded event (`json`).
    pub format: &'static str,
}

impl DeadLetter {
    /// The headers that say why and where from (and, for a letter cut to fit, what was cut).
    fn header_pairs(&self, cut: Option<&Cut>) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("nrt.error.kind", self.kind.label().to_owned()),
            ("nrt.error.message", self.message.clone()),
            ("nrt.original.topic", self.topic.clone()),
            ("nrt.original.partition", self.partition.to_string()),
            ("nrt.original.offset", self.offset.to_string()),
            ("nrt.payload.format", self.format.to_owned()),
            ("nrt.dead_lettered_at", Millis::now().0.to_string()),
        ];
        if let Some(t) = self.timestamp {
            h.push(("nrt.original.timestamp", t.to_string()));
        }
        if let Some(cut) = cut {
            h.push(("nrt.payload.truncated", "true".to_owned()));
            h.push(("nrt.original.size", cut.payload.to_string()));
            if let Some(key) = cut.key {
                h.push(("nrt.original.key_size", key.to_string()));
            }
        }
        h
    }

    /// What it takes in a record on the wire, near enough (an overestimate: the framing of each part
    /// is counted at its largest).
    fn wire_size(&self, headers: &[(&'static str, String)]) -> usize {
        let header_bytes: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 10).sum();
        RECORD_FRAMING + self.payload.len() + self.key.as_ref().map_or(0, Vec::len) + header_bytes
    }
}

/// What was cut from a dead letter so that it fits the topic: the original sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    payload: usize,
    key: Option<usize>,
}

/// The framing of one record (lengths, offsets, attributes) at its largest.
const RECORD_FRAMING: usize = 64;
/// Left of a topic's limit for the record batch's own header (61 bytes) and a margin.
const BATCH_FRAMING: usize = 512;
/// A key or error message of a letter cut to fit is cut to this many bytes.
const CUT_TEXT: usize = 1024;
/// The limit assumed when the broker will not say (librdkafka's default `message.max.bytes`).
const ASSUMED_LIMIT: usize = 1_000_000;

/// A letter on its way, cut to at most `room` bytes on the wire if it is larger.
struct Sized {
    letter: DeadLetter,
    cut: Option<Cut>,
    room: usize,
}

impl Sized {
    fn new(letter: DeadLetter, room: usize) -> Self {
        let mut sized = Sized { letter, cut: None, room };
        sized.fit();
        sized
    }

    /// Cuts the payload (and, when the rest alone is too large, the key and message) to fit `room`.
    fn fit(&mut self) {
        let size = |s: &Sized| s.letter.wire_size(&s.letter.header_pairs(s.cut.as_ref()));
        if size(self) <= self.room {
            return;
        }
        self.cut.get_or_insert(Cut {
            payload: self.letter.payload.len(),
            key: None,
        });
        let without_payload = |s: &Sized| size(s) - s.letter.payload.len();
        if without_payload(self) > self.room {
            if let Some(key) = self.letter.key.as_mut().filter(|k| k.len() > CUT_TEXT) {
                if let Some(cut) = self.cut.as_mut() {
                    cut.key = Some(key.len());
                }
                key.truncate(CUT_TEXT);
            }
            let mut end = self.letter.message.len().min(CUT_TEXT);
            while !self.letter.message.is_char_boundary(end) {
                end -= 1;
            }
            self.letter.message.truncate(end);
        }
        let keep = self.room.saturating_sub(without_payload(self));
        self.letter.payload.truncate(keep);
    }

    /// The broker refused it as too large: try again with half the room.
    fn shrink(&mut self) {
        self.room /= 2;
        self.fit();
    }

    fn headers(&self) -> OwnedHeaders {
        let pairs = self.letter.header_pairs(self.cut.as_ref());
        pairs.iter().fold(OwnedHeaders::new_with_capacity(pairs.len()), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        })
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
    kafka: KafkaConfig,
    pub topic: String,
    /// Partitions and replication to create the topic with, if missing (a producer may run alone).
    creates: Option<(i32, i32)>,
    /// Made on first use, sized to what the topic accepts (known only once the topic exists).
    producer: tokio::sync::OnceCell<SizedProducer>,
}

struct SizedProducer {
    producer: FutureProducer<crate::kafka::StatsContext>,
    /// The topic's `max.message.bytes`.
    limit: usize,
}

impl DeadLetterQueue {
    /// Checks the producer settings now (a bad property fails the start, not the first dead letter).
    pub fn new(kafka: &KafkaConfig, topic: String) -> Result<Self, crate::kafka::KafkaSetupError> {
        drop(Self::producer_with(kafka, ASSUMED_LIMIT)?);
        Ok(DeadLetterQueue {
            kafka: kafka.clone(),
            topic,
            creates: None,
            producer: tokio::sync::OnceCell::new(),
        })
    }

    /// Creates the topic before the first letter if it is missing (the consumer makes it otherwise).
    pub fn creating(mut self, partitions: i32, replication: i32) -> Self {
        self.creates = Some((partitions, replication));
        self
    }

    /// A producer that sends records of up to `limit` bytes in batches no larger than that: a poison
    /// record near the broker's limit must be accepted here too, or it could never leave its partition.
    fn producer_with(
        kafka: &KafkaConfig,
        limit: usize,
    ) -> Result<FutureProducer<crate::kafka::StatsContext>, crate::kafka::KafkaSetupError> {
        let limit = limit.clamp(1_000, 1_000_000_000);
        crate::kafka::producer_config(kafka)
            .and_then(|mut c| {
                c.set("message.max.bytes", limit.to_string())
                    .set("batch.size", limit.min(1_000_000).to_string());
                c.create_with_context(crate::kafka::StatsContext::default())
            })
            .map_err(|source| crate::kafka::KafkaSetupError::Client {
                brokers: kafka.brokers.clone(),
                source,
            })
    }

    async fn sized_producer(&self) -> Result<&SizedProducer, String> {
        self.producer
            .get_or_try_init(|| async {
                if let Some((partitions, replication)) = self.creates {
                    let wait = std::time::Duration::from_secs(10);
                    crate::kafka::ensure_topic(&self.kafka, &self.topic, partitions, replication, wait)
                        .await
                        .map_err(|e| format!("dead-letter topic {}: {e}", self.topic))?;
                }
                let said = crate::kafka::topic_max_message_bytes(&self.kafka, &self.topic)
                    .await
                    .map_err(|e| format!("dead-letter topic {}: its size limit: {e}", self.topic))?;
                let limit = said.unwrap_or_else(|| {
                    log::warn!(
                        "dead-letter topic {}: the broker does not say its max.message.bytes; assuming {ASSUMED_LIMIT}",
                        self.topic
                    );
                    ASSUMED_LIMIT
                });
                let producer = Self::producer_with(&self.kafka, limit).map_err(|e| e.to_string())?;
                Ok(SizedProducer { producer, limit })
            })
            .await
    }

    /// Writes every letter, retrying the failed ones, and returns once the broker acknowledged all. A
    /// letter larger than the topic takes is cut to fit (headers say what was cut); one the broker
    /// still finds too large is cut to half as much and sent again.
    pub async fn send_all(&self, letters: Vec<DeadLetter>, on_error: &(dyn Fn(&str) + Sync)) {
        // Sized once the topic's limit is known (the first attempt may not get that far).
        let letters = letters.into_iter().map(|l| Sized::new(l, usize::MAX)).collect();
        let pending: Mutex<Vec<Sized>> = Mutex::new(letters);
        let attempt = || {
            let pending = &pending;
            async move {
                let p = self.sized_producer().await?;
                let mut batch = std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
                let room = p.limit.saturating_sub(BATCH_FRAMING);
                for s in &mut batch {
                    s.room = s.room.min(room);
                    s.fit();
                }
                let sends = batch.iter().map(|s| {
                    let headers = s.headers();
                    let mut record = FutureRecord::to(&self.topic).payload(&s.letter.payload).headers(headers);
                    if let Some(key) = &s.letter.key {
                        record = record.key(key);
                    }
                    p.producer.send(record, Duration::from_secs(60))
                });
                let results = join_all(sends).await;
                let mut failed = Vec::new();
                let mut first_error = None;
                for (mut sized, result) in batch.into_iter().zip(results) {
                    let Err((e, _)) = result else { continue };
                    first_error.get_or_insert_with(|| format!("dead-letter write to {}: {e}", self.topic));
                    if matches!(
                        e.rdkafka_error_code(),
                        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge)
                    ) {
                        sized.shrink();
                    }
                    failed.push(sized);
                }
                *pending.lock().unwrap_or_else(|e| e.into_inner()) = failed;
                first_error.map_or(Ok(()), Err)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(payload: usize, key: usize) -> DeadLetter {
        DeadLetter {
            key: Some(vec![b'k'; key]),
            payload: (0..payload).map(|i| i as u8).collect(),
            topic: "events".into(),
            partition: 3,
            offset: 77,
            timestamp: Some(1),
            kind: crate::poison::PoisonKind::Corrupt,
            message: "é".repeat(2_000),
            format: "confluent-avro",
        }
    }

    fn size(s: &Sized) -> usize {
        s.letter.wire_size(&s.letter.header_pairs(s.cut.as_ref()))
    }

    #[test]
    fn a_letter_that_fits_is_sent_whole() {
        let s = Sized::new(letter(1_000, 36), 1_000_000);
        assert_eq!((s.cut, s.letter.payload.len()), (None, 1_000));
        assert!(!s.letter.header_pairs(None).iter().any(|(k, _)| k.contains("truncated")));
    }

    #[test]
    fn a_letter_too_large_is_cut_to_fit_and_says_how_large_it_was() {
        let room = 1_048_588 - BATCH_FRAMING;
        let s = Sized::new(letter(1_048_000, 36), room);
        assert!(size(&s) <= room, "{} > {room}", size(&s));
        assert_eq!(s.cut, Some(Cut { payload: 1_048_000, key: None }));
        let original = letter(1_048_000, 36).payload;
        assert!(s.letter.payload.len() > 1_040_000, "cut more than needed: {}", s.letter.payload.len());
        assert_eq!(s.letter.payload[..], original[..s.letter.payload.len()], "a prefix of the original");
        let headers: std::collections::BTreeMap<_, _> = s.letter.header_pairs(s.cut.as_ref()).into_iter().collect();
        assert_eq!(headers["nrt.payload.truncated"], "true");
        assert_eq!(headers["nrt.original.size"], "1048000");
        assert_eq!(headers["nrt.original.offset"], "77");
    }

    #[test]
    fn a_refused_letter_shrinks_until_even_its_key_and_message_are_cut() {
        let mut s = Sized::new(letter(10_000, 5_000), 12_000);
        let mut sizes = vec![size(&s)];
        for _ in 0..6 {
            s.shrink();
            sizes.push(size(&s));
        }
        assert!(sizes.windows(2).all(|w| w[1] <= w[0]), "{sizes:?}");
        assert!(s.letter.payload.is_empty());
        assert_eq!(s.letter.key.as_ref().map(Vec::len), Some(CUT_TEXT));
        assert_eq!(s.cut.and_then(|c| c.key), Some(5_000));
        assert!(s.letter.message.len() <= CUT_TEXT && s.letter.message.chars().all(|c| c == 'é'));
    }
}
