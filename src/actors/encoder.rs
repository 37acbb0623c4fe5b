//! Encoder: registers the producer's schema under its subject (`SubjectStrategy`) on first use,
//! keeps its id, and turns each polled batch into Confluent-framed Avro records for the KafkaPublisher:
//! events straight from `Event` (`fast_avro`), records of any other schema from their JSON (the lake's
//! mapping read back, `avro::encode`). A record that does not fit the schema goes to the dead-letter
//! topic with the field and the reason, before its batch is published.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use apache_avro::Schema;

use super::kafka_publisher::{KafkaPublisher, Publish, Record};
use super::messages::PublishError;
use super::Shared;
use crate::dead_letters::{DeadLetter, DeadLetterSink};
use crate::event::Event;
use crate::fast_avro::Shape;
use crate::registry::{RegistryClient, SubjectStrategy};
use crate::internal_events::{Retrying, Throttle};
use crate::retry::{Next, RetryPolicy};

pub const NAME: &str = "encoder";

/// Encode and publish these events as one transaction; replies once Kafka committed all of them.
/// `batch` is the Poller's number for this batch, the same on every resend (see `Publish`).
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, PublishError>")]
pub struct Events {
    pub batch: u64,
    pub events: Arc<Polled>,
}

/// What one poll brought: events of the built-in record, or JSON records of the producer's schema.
#[derive(Debug)]
pub enum Polled {
    Events(Vec<Event>),
    Records(Vec<serde_json::Value>),
}

impl Polled {
    pub fn len(&self) -> usize {
        match self {
            Polled::Events(e) => e.len(),
            Polled::Records(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The producer's event schema: its text, and the file it came from (read again while it is refused).
pub struct SchemaSource {
    pub text: String,
    pub file: Option<PathBuf>,
}

/// Why the Encoder cannot be made: its schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("event schema does not parse: {0}")]
    Parse(String),
    #[error(transparent)]
    Subject(#[from] crate::registry::subject::NotARecord),
}

pub struct Encoder {
    registry: Arc<RegistryClient>,
    topic: Arc<str>,
    strategy: SubjectStrategy,
    /// The schema's subject under `strategy` (a record strategy names it after the schema's record).
    subject: Arc<str>,
    schema_file: Option<PathBuf>,
    schema_text: Arc<str>,
    schema: Arc<Schema>,
    /// The schema is `events.v1` or `events.v2`: records are written by `fast_avro`, not through
    /// apache-avro's tree.
    shape: Option<Shape>,
    schema_id: Option<u32>,
    publisher: Addr<KafkaPublisher>,
    /// Where records that do not fit the schema go.
    dlq: Arc<dyn DeadLetterSink>,
    /// Test-only fault injection (debug builds arm it): panic once a batch is published, before replying.
    panic_mid_batch: Arc<AtomicBool>,
    shared: Shared,
}

impl Encoder {
    pub fn new(
        registry: Arc<RegistryClient>,
        topic: &str,
        strategy: SubjectStrategy,
        schema: SchemaSource,
        publisher: Addr<KafkaPublisher>,
        dlq: Arc<dyn DeadLetterSink>,
        shared: Shared,
    ) -> Result<Self, SchemaError> {
        let parsed = Schema::parse_str(&schema.text).map_err(|e| SchemaError::Parse(e.to_string()))?;
        let subject = strategy.subject(topic, &parsed)?;
        Ok(Encoder {
            shape: crate::wire::shape(&parsed),
            registry,
            topic: topic.into(),
            strategy,
            subject: subject.into(),
            schema_file: schema.file,
            schema_text: schema.text.into(),
            schema: Arc::new(parsed),
            schema_id: None,
            publisher,
            dlq,
            panic_mid_batch: Arc::default(),
            shared,
        })
    }

    /// Until the schema is registered: takes the schema file's text again if it changed (the operator's
    /// fix for a refused schema). A file that cannot be read or parsed now keeps the schema in hand.
    fn reread_schema_file(&mut self) {
        let Some(path) = self.schema_file.as_deref().filter(|_| self.schema_id.is_none()) else {
            return;
        };
        let text = match crate::config::read_schema("NRT_SCHEMA_FILE", path) {
            Ok(text) if *text != *self.schema_text => text,
            Ok(_) => return,
            Err(e) => return log::warn!("{NAME}: {e}; keeping the schema read before"),
        };
        let Ok(parsed) = Schema::parse_str(&text) else {
            return;
        };
        match self.strategy.subject(&self.topic, &parsed) {
            Ok(subject) => self.subject = subject.into(),
            Err(e) => return log::warn!("{NAME}: {}: {e}; keeping the schema read before", path.display()),
        }
        log::info!("{NAME}: {} changed; registering it under {}", path.display(), self.subject);
        self.shape = crate::wire::shape(&parsed);
        self.schema = Arc::new(parsed);
        self.schema_text = text.into();
    }
}

impl Actor for Encoder {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.shared.health.running(NAME);
    }
}

impl Supervised for Encoder {}

#[cfg(debug_assertions)]
impl super::fault::MidBatch for Encoder {
    fn arm_mid_batch(&mut self) -> bool {
        self.panic_mid_batch.store(true, Ordering::SeqCst);
        true
    }
}

impl Handler<Events> for Encoder {
    type Result = ResponseActFuture<Self, Result<usize, PublishError>>;

    fn handle(&mut self, Events { batch, events }: Events, _: &mut Self::Context) -> Self::Result {
        self.reread_schema_file();
        let known_id = self.schema_id;
        let (registry, subject, text, topic) = (
            self.registry.clone(),
            self.subject.clone(),
            self.schema_text.clone(),
            self.topic.clone(),
        );
        let (schema, shape) = (self.schema.clone(), self.shape);
        let (publisher, shared, dlq) = (self.publisher.clone(), self.shared.clone(), self.dlq.clone());
        let panic_mid_batch = self.panic_mid_batch.clone();
        let job = async move {
            let id = match known_id {
                Some(id) => id,
                None => register(&registry, &subject, &text, &shared).await?,
            };
            // Encoding is CPU work (0.1-1 µs per event): off the actors' thread.
            let (records, rejected) = tokio::task::spawn_blocking(move || encode(id, &schema, shape, &events))
                .await
                .map_err(|e| PublishError::Encode(format!("stopped: {e}")))??;
            if !rejected.is_empty() {
                dead_letter(&*dlq, rejected, &topic, &shared).await;
            }
            shared.metrics.events_encoded.inc_by(records.len() as u64);
            let published = publisher
                .send(Publish { batch, records })
                .await
                .map_err(|e| PublishError::actor_gone(super::kafka_publisher::NAME, e))??;
            if panic_mid_batch.swap(false, Ordering::SeqCst) {
                panic!("fault injection: Encoder panics with batch {batch} published, not yet answered");
            }
            Ok((id, published))
        };
        Box::pin(job.into_actor(self).map(|res, act, _| {
            res.map(|(id, published)| {
                act.schema_id = Some(id);
                published
            })
        }))
    }
}

/// A polled record that does not fit the schema: its JSON and why.
struct Rejected {
    json: Vec<u8>,
    why: String,
}

/// The Kafka records of a batch (value = the Confluent-framed Avro datum; key = event_id for events,
/// none for records of another schema), and the records that do not fit the schema.
fn encode(
    id: u32,
    schema: &Schema,
    shape: Option<Shape>,
    polled: &Polled,
) -> Result<(Vec<Record>, Vec<Rejected>), PublishError> {
    let events = match polled {
        Polled::Events(events) => events,
        Polled::Records(values) => return Ok(encode_json(id, schema, values)),
    };
    let payloads = match shape {
        Some(shape) => crate::wire::encode_fast(id, shape, events),
        None => crate::wire::encode_all(id, schema, events.iter().map(|e| e.to_avro_in(schema)))
            .map_err(|e| PublishError::Encode(e.to_string()))?,
    };
    let records = payloads
        .into_iter()
        .zip(events.iter())
        .map(|(payload, e)| Record {
            key: Some(e.event_id),
            payload,
        })
        .collect();
    Ok((records, Vec::new()))
}

/// Records of any schema from their JSON: each read back into Avro along the schema, strictly (a
/// field the schema lacks, a value of the wrong kind, a decimal finer than its scale are refused).
fn encode_json(id: u32, schema: &Schema, values: &[serde_json::Value]) -> (Vec<Record>, Vec<Rejected>) {
    let plan = match crate::avro::Plan::new(schema) {
        Ok(plan) => plan,
        Err(e) => {
            let why = format!("the producer's schema cannot be read: {e}");
            let rejected = values.iter().map(|v| Rejected {
                json: v.to_string().into_bytes(),
                why: why.clone(),
            });
            return (Vec::new(), rejected.collect());
        }
    };
    let (mut records, mut rejected) = (Vec::with_capacity(values.len()), Vec::new());
    for v in values {
        let mut payload = crate::wire::header(id, crate::wire::HEADER_LEN + 128);
        match crate::avro::encode::from_json(&plan, v, &mut payload) {
            Ok(()) => records.push(Record { key: None, payload }),
            Err(e) => rejected.push(Rejected {
                json: v.to_string().into_bytes(),
                why: e.to_string(),
            }),
        }
    }
    (records, rejected)
}

/// Writes the records that do not fit the schema to the dead-letter topic (kind `invalid_record`,
/// the record's JSON as the payload), counted; waits until the topic has them.
async fn dead_letter(dlq: &dyn DeadLetterSink, rejected: Vec<Rejected>, topic: &str, shared: &Shared) {
    let n = rejected.len() as u64;
    if let Some(first) = rejected.first() {
        log::warn!("{NAME}: {n} polled records do not fit the schema (first: {}): to {}", first.why, dlq.topic());
    }
    let letters = rejected
        .into_iter()
        .map(|r| DeadLetter {
            key: None,
            payload: r.json,
            // Not read from Kafka: the topic it was meant for, no partition or offset.
            topic: topic.to_owned(),
            partition: -1,
            offset: -1,
            timestamp: None,
            kind: crate::poison::PoisonKind::InvalidRecord,
            message: r.why,
            format: "json",
        })
        .collect();
    let health = &shared.health;
    dlq.send_all(letters, &|e| health.error(NAME, e.to_owned())).await;
    shared.metrics.poll_errors.with_label_values(&["invalid_record"]).inc_by(n);
    shared.metrics.dead_letters.inc_by(n);
}

/// Registers the schema, waiting out registry outages; a refusal (invalid or incompatible schema) is
/// an error the operator must fix, so it is returned, not retried here: the Poller keeps its batch and
/// sends it again, and `/ready`, `nrt_schema_refused` and the `NrtSchemaRefused` alert say why.
async fn register(
    registry: &RegistryClient,
    subject: &str,
    text: &str,
    shared: &Shared,
) -> Result<u32, PublishError> {
    let mut throttle = Throttle::default();
    let registered = RetryPolicy::SERVICE
        .run(
            || registry.register(subject, text),
            |e, _| {
                if !e.is_transient() {
                    shared.health.error(NAME, e.to_string());
                    return Next::Stop;
                }
                let retrying = Retrying {
                    actor: NAME,
                    what: "",
                    error: e,
                };
                retrying.emit(&shared.health, &mut throttle);
                Next::Retry
            },
        )
        .await;
    match registered {
        Ok(id) => {
            log::info!("{NAME}: schema of {subject} has id {id}");
            shared.metrics.schema_refused.set(0);
            shared.health.running(NAME);
            Ok(id)
        }
        Err(e) => {
            let why = match e.error_code() {
                Some(409) => "is not compatible with the versions before it",
                Some(422 | 42201) => "is not a valid schema",
                _ => "was refused",
            };
            // 409 and 422 are about the schema; anything else refuses this client (credentials, rights).
            let about_the_schema = matches!(e.error_code(), Some(409 | 422 | 42201));
            let message = format!(
                "the event schema {why} under {subject} ({e}); nothing is published until it is fixed \
                 (NRT_SCHEMA_FILE is read again on every retry), the polled batch is kept"
            );
            shared.metrics.schema_refused.set(1);
            shared.health.blocked(NAME, message.clone());
            Err(match about_the_schema {
                true => PublishError::SchemaRefused(message),
                false => PublishError::Registry(message),
            })
        }
    }
}
