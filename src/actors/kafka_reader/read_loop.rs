//! The KafkaReader's read loop: subscribe, read chunks, decode through the writer schema of each record,
//! dead-letter what cannot be decoded, hand per-partition runs to the Batcher, and pause the partitions
//! while too much is in flight.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message as _, Timestamp};
use tokio::sync::Notify;

use super::{ReaderSettings, NAME};
use crate::actors::batcher::{Batcher, Decoded, Reset};
use crate::actors::Shared;
use crate::dead_letters::{DeadLetter, DeadLetterQueue};
use crate::event::Event;
use crate::kafka::StatsContext;
use crate::registry::RegistryClient;
use crate::retry::Backoff;
use crate::wire::{self, WireError};

/// Records gathered before handing them over, and how long to wait for more once one arrived.
const CHUNK_RECORDS: usize = 5_000;
const CHUNK_WAIT: Duration = Duration::from_millis(20);

/// Bytes read but not committed, and a bell rung at each commit.
#[derive(Default)]
pub(super) struct Inflight {
    pub(super) bytes: AtomicU64,
    pub(super) freed: Notify,
}

pub(super) struct ReadLoop {
    pub(super) consumer: Arc<StreamConsumer<StatsContext>>,
    pub(super) assignments: Arc<AtomicU64>,
    pub(super) dlq: Arc<DeadLetterQueue>,
    pub(super) settings: Arc<ReaderSettings>,
    pub(super) inflight: Arc<Inflight>,
    pub(super) batcher: Addr<Batcher>,
    pub(super) registry: Arc<RegistryClient>,
    /// One decoder per writer schema id, built on the id's first record (never borrowed across an await).
    pub(super) decoders: RefCell<wire::Decoders>,
    pub(super) shared: Shared,
}

#[derive(Default)]
struct Run {
    first_offset: i64,
    last_offset: i64,
    events: Vec<(i64, Event)>,
    bytes: usize,
}

impl ReadLoop {
    /// Makes sure the topic and its dead-letter topic exist (a consumer may start first), then subscribes.
    async fn subscribe(&self) -> Result<(), String> {
        let s = &self.settings;
        for topic in [&s.topic, &s.dlq_topic] {
            let on_error = |e: &crate::kafka::KafkaSetupError, attempts: u32| {
                if attempts % 10 == 0 {
                    log::warn!("{NAME}: {e}; retrying");
                }
                self.shared.health.error(NAME, e.to_string());
            };
            crate::kafka::ensure_topic_retrying(&s.kafka, topic, s.partitions, s.replication, on_error).await;
        }
        self.consumer
            .subscribe(&[&s.topic])
            .map_err(|e| format!("kafka at {}: subscribe {}: {e}", s.kafka.brokers, s.topic))
    }

    pub(super) async fn run(self) -> Result<(), String> {
        self.subscribe().await?;
        let mut errors_logged = Instant::now() - Duration::from_secs(60);
        let mut generation = self.assignments.load(Ordering::SeqCst);
        let mut paused = None;
        loop {
            let mut held = self.hold(&mut paused, &mut errors_logged).await;
            let mut runs: BTreeMap<i32, Run> = BTreeMap::new();
            let mut letters = Vec::new();
            let mut count = 0;
            let mut deadline = None;
            while count < CHUNK_RECORDS {
                let next = match (held.take(), deadline) {
                    (Some(m), _) => Ok(Ok(m)),
                    (None, None) => Ok(self.consumer.recv().await),
                    (None, Some(d)) => tokio::time::timeout_at(d, self.consumer.recv()).await,
                };
                let msg = match next {
                    Err(_) => break,
                    Ok(Err(e)) => {
                        self.consumer_error(&e, &mut errors_logged);
                        continue;
                    }
                    Ok(Ok(m)) => m,
                };
                let now_generation = self.assignments.load(Ordering::SeqCst);
                if now_generation != generation {
                    // Partitions were (re)assigned during this recv: fetching restarted from the committed
                    // offsets, so everything read before it (this chunk, the Batcher's open batches) will
                    // come again. Drop it rather than write it twice.
                    generation = now_generation;
                    runs.clear();
                    letters.clear();
                    count = 0;
                    self.forget_open_batches().await?;
                }
                deadline.get_or_insert_with(|| tokio::time::Instant::now() + CHUNK_WAIT);
                count += 1;
                let payload = msg.payload().unwrap_or_default();
                let run = runs.entry(msg.partition()).or_insert_with(|| Run {
                    first_offset: msg.offset(),
                    ..Run::default()
                });
                run.last_offset = msg.offset();
                run.bytes += payload.len();
                match self.decode(payload).await {
                    Ok(event) => run.events.push((msg.offset(), event)),
                    Err((kind, message)) => {
                        self.shared.metrics.decode_errors.with_label_values(&[kind]).inc();
                        if errors_logged.elapsed() > Duration::from_secs(10) {
                            log::warn!(
                                "{NAME}: p{} @{}: undecodable record ({kind}: {message}): to {}",
                                msg.partition(),
                                msg.offset(),
                                self.dlq.topic
                            );
                            errors_logged = Instant::now();
                        }
                        letters.push(DeadLetter {
                            key: msg.key().map(<[u8]>::to_vec),
                            payload: payload.to_vec(),
                            topic: msg.topic().to_owned(),
                            partition: msg.partition(),
                            offset: msg.offset(),
                            timestamp: match msg.timestamp() {
                                Timestamp::NotAvailable => None,
                                t => t.to_millis(),
                            },
                            kind,
                            message,
                            format: "confluent-avro",
                        });
                    }
                }
            }
            // Poison records are handled once the dead-letter topic has them: only then may their
            // offsets move towards a commit (with the batch their range belongs to).
            if !letters.is_empty() {
                let n = letters.len() as u64;
                let shared = &self.shared;
                self.dlq
                    .send_all(letters, |e| shared.health.error(NAME, e.to_owned()))
                    .await;
                shared.metrics.dead_letters.inc_by(n);
            }
            for (partition, run) in runs {
                self.shared
                    .metrics
                    .events_consumed
                    .inc_by(run.events.len() as u64);
                let now =
                    self.inflight.bytes.fetch_add(run.bytes as u64, Ordering::SeqCst) + run.bytes as u64;
                self.shared.metrics.inflight_bytes.set(now as i64);
                let decoded = Decoded {
                    partition,
                    first_offset: run.first_offset,
                    last_offset: run.last_offset,
                    events: run.events,
                    bytes: run.bytes,
                };
                self.batcher
                    .send(decoded)
                    .await
                    .map_err(|e| format!("batcher unavailable: {e}"))?;
            }
        }
    }

    /// Tells the Batcher to drop its open batches and takes their bytes off the in-flight count.
    async fn forget_open_batches(&self) -> Result<(), String> {
        let dropped = self
            .batcher
            .send(Reset)
            .await
            .map_err(|e| format!("batcher unavailable: {e}"))?;
        let release = |b: u64| Some(b.saturating_sub(dropped as u64));
        let _ = self
            .inflight
            .bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, release);
        self.shared
            .metrics
            .inflight_bytes
            .set(self.inflight.bytes.load(Ordering::SeqCst) as i64);
        if dropped > 0 {
            log::warn!("{NAME}: partitions reassigned; dropped {dropped} uncommitted bytes, re-reading them from the committed offsets");
        }
        Ok(())
    }

    /// Broker hiccups surface here; librdkafka reconnects by itself.
    fn consumer_error(&self, e: &rdkafka::error::KafkaError, errors_logged: &mut Instant) {
        if errors_logged.elapsed() > Duration::from_secs(10) {
            log::warn!("{NAME}: {e}");
            *errors_logged = Instant::now();
        }
        self.shared.health.error(NAME, e.to_string());
    }

    /// Returns at once while there is room for more in flight. Otherwise pauses every assigned partition
    /// and keeps polling (group membership, rebalances) until commits free room, then resumes them.
    /// A record can still arrive meanwhile, from a partition assigned after the pause: it is returned,
    /// to be handled like any other (the bound is exceeded by one chunk at most).
    async fn hold<'a>(
        &'a self,
        paused: &mut Option<u64>,
        errors_logged: &mut Instant,
    ) -> Option<BorrowedMessage<'a>> {
        loop {
            let freed = self.inflight.freed.notified();
            if self.inflight.bytes.load(Ordering::SeqCst) < self.settings.max_inflight_bytes {
                if paused.take().is_some() {
                    self.set_paused(false);
                }
                return None;
            }
            let generation = self.assignments.load(Ordering::SeqCst);
            if *paused != Some(generation) {
                self.set_paused(true);
                *paused = Some(generation);
            }
            tokio::select! {
                _ = freed => {}
                next = tokio::time::timeout(Duration::from_millis(500), self.consumer.recv()) => match next {
                    Err(_) => {}
                    Ok(Err(e)) => self.consumer_error(&e, errors_logged),
                    Ok(Ok(m)) => return Some(m),
                },
            }
        }
    }

    fn set_paused(&self, pause: bool) {
        let assignment = match self.consumer.assignment() {
            Ok(a) => a,
            Err(e) => {
                log::warn!("{NAME}: no assignment to pause/resume: {e}");
                return;
            }
        };
        let done = match pause {
            true => self.consumer.pause(&assignment),
            false => self.consumer.resume(&assignment),
        };
        match done {
            Ok(()) => {
                let n = if pause { assignment.count() as i64 } else { 0 };
                self.shared.metrics.paused_partitions.set(n);
                log::info!(
                    "{NAME}: {} {} partitions ({} bytes in flight, bound {})",
                    if pause { "paused" } else { "resumed" },
                    assignment.count(),
                    self.inflight.bytes.load(Ordering::SeqCst),
                    self.settings.max_inflight_bytes
                );
            }
            Err(e) => log::warn!("{NAME}: pause/resume: {e}"),
        }
    }

    /// The event in one record, or the kind of reason it has none. An unreachable registry is waited
    /// for (a record whose schema we cannot fetch yet is not a bad record).
    async fn decode(&self, payload: &[u8]) -> Result<Event, (&'static str, String)> {
        let (id, avro) = wire::split(payload).map_err(|e| match e {
            WireError::TooShort(_) => ("too_short", e.to_string()),
            _ => ("bad_magic", e.to_string()),
        })?;
        if !self.decoders.borrow().knows(id) {
            let mut backoff = Backoff::service();
            let writer = loop {
                match self.registry.schema_by_id(id).await {
                    Ok(s) => break s,
                    Err(e) if e.is_transient() => {
                        self.shared.health.error(NAME, e.to_string());
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                    Err(e) => return Err(("unknown_schema", e.to_string())),
                }
            };
            self.decoders.borrow_mut().learn(id, writer);
        }
        let value = self.decoders.borrow().decode(id, avro).map_err(|e| match e {
            WireError::Resolve { .. } => ("schema_resolution", e.to_string()),
            _ => ("corrupt", e.to_string()),
        })?;
        Event::from_avro(value).map_err(|e| ("invalid_event", e.to_string()))
    }
}
