//! Encoder: registers the event schema under `<topic>-value` (TopicNameStrategy) on first use, keeps
//! its id, and turns each batch of events into Confluent-framed Avro records for the KafkaPublisher.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use apache_avro::Schema;

use super::kafka_publisher::{KafkaPublisher, Publish, Record};
use super::Shared;
use crate::event::Event;
use crate::registry::RegistryClient;
use crate::retry::{Next, RetryPolicy};

pub const NAME: &str = "encoder";

/// Encode and publish these events as one transaction; replies once Kafka committed all of them.
/// `batch` is the Poller's number for this batch, the same on every resend (see `Publish`).
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, String>")]
pub struct Events {
    pub batch: u64,
    pub events: Arc<Vec<Event>>,
}

pub struct Encoder {
    registry: Arc<RegistryClient>,
    subject: String,
    schema_text: Arc<str>,
    schema: Arc<Schema>,
    /// The schema is `events.v1`: records are written by `fast_avro`, not through apache-avro's tree.
    v1: bool,
    schema_id: Option<u32>,
    publisher: Addr<KafkaPublisher>,
    /// Test-only fault injection (debug builds arm it): panic once a batch is published, before replying.
    panic_mid_batch: Arc<AtomicBool>,
    shared: Shared,
}

impl Encoder {
    pub fn new(
        registry: Arc<RegistryClient>,
        topic: &str,
        schema_text: &str,
        publisher: Addr<KafkaPublisher>,
        shared: Shared,
    ) -> Result<Self, String> {
        let schema =
            Schema::parse_str(schema_text).map_err(|e| format!("event schema does not parse: {e}"))?;
        Ok(Encoder {
            v1: crate::wire::is_v1(&schema),
            registry,
            subject: format!("{topic}-value"),
            schema_text: schema_text.into(),
            schema: Arc::new(schema),
            schema_id: None,
            publisher,
            panic_mid_batch: Arc::default(),
            shared,
        })
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
    type Result = ResponseActFuture<Self, Result<usize, String>>;

    fn handle(&mut self, Events { batch, events }: Events, _: &mut Self::Context) -> Self::Result {
        let known_id = self.schema_id;
        let (registry, subject, text) = (
            self.registry.clone(),
            self.subject.clone(),
            self.schema_text.clone(),
        );
        let (schema, v1) = (self.schema.clone(), self.v1);
        let (publisher, shared) = (self.publisher.clone(), self.shared.clone());
        let panic_mid_batch = self.panic_mid_batch.clone();
        let job = async move {
            let id = match known_id {
                Some(id) => id,
                None => register(&registry, &subject, &text, &shared).await?,
            };
            // Encoding is CPU work (0.1-1 µs per event): off the actors' thread.
            let records = tokio::task::spawn_blocking(move || encode(id, &schema, v1, &events))
                .await
                .map_err(|e| format!("encoding stopped: {e}"))??;
            shared.metrics.events_encoded.inc_by(records.len() as u64);
            let published = publisher
                .send(Publish { batch, records })
                .await
                .map_err(|e| format!("publisher unavailable: {e}"))??;
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

/// The Kafka records of a batch: key = event_id, value = the Confluent-framed Avro datum.
fn encode(id: u32, schema: &Schema, v1: bool, events: &[Event]) -> Result<Vec<Record>, String> {
    let payloads = if v1 {
        crate::wire::encode_v1(id, events)
    } else {
        crate::wire::encode_all(id, schema, events.iter().map(Event::to_avro)).map_err(|e| e.to_string())?
    };
    Ok(payloads
        .into_iter()
        .zip(events)
        .map(|(payload, e)| Record {
            key: e.event_id,
            payload,
        })
        .collect())
}

/// Registers the schema, waiting out registry outages; a refusal (invalid or incompatible schema) is
/// an error the operator must fix, so it is returned, not retried.
async fn register(
    registry: &RegistryClient,
    subject: &str,
    text: &str,
    shared: &Shared,
) -> Result<u32, String> {
    let registered = RetryPolicy::SERVICE
        .run(
            || registry.register(subject, text),
            |e, failures| {
                shared.health.error(NAME, e.to_string());
                if !e.is_transient() {
                    return Next::Stop;
                }
                if failures % 10 == 0 {
                    log::warn!("{NAME}: {e}; retrying");
                }
                Next::Retry
            },
        )
        .await;
    match registered {
        Ok(id) => {
            log::info!("{NAME}: schema of {subject} has id {id}");
            Ok(id)
        }
        Err(e) => Err(e.to_string()),
    }
}
