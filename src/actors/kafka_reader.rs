//! KafkaReader: reads the topic in a consumer group, decodes each record through the writer schema
//! its id names (fetched from the registry once, then cached) into our reader schema, and hands
//! per-partition runs to the Batcher. Commits arrive back from the Batcher once both sinks have a batch.
//!
//! Backpressure: bytes read but not yet committed are counted; over `max_inflight_bytes` the reader
//! pauses its partitions (librdkafka stops fetching and drops what it prefetched) and keeps polling, so it
//! stays in the group however long a sink is down; it resumes them as soon as commits free room. Memory
//! is thus bounded by `max_inflight_bytes`, one chunk, and librdkafka's prefetch queue (sized from it).
//!
//! This file is the actor (connect, commit, stop); `kafka_reader/read_loop.rs` is the loop it runs.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use apache_avro::Schema;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use super::batcher::{Batcher, CommitTo, Reset};
use super::messages::Commit;
use super::Shared;
use crate::config::KafkaConfig;
use crate::dead_letters::DeadLetterQueue;
use crate::kafka::StatsContext;
use crate::registry::RegistryClient;
use crate::wire;

mod read_loop;

use read_loop::{Inflight, ReadLoop};

pub const NAME: &str = "kafka_reader";

pub struct ReaderSettings {
    pub kafka: KafkaConfig,
    pub topic: String,
    /// Used to create the topic if the consumer starts before any producer did.
    pub partitions: i32,
    pub replication: i32,
    /// Where undecodable records go (created like the topic).
    pub dlq_topic: String,
    pub group_id: String,
    pub max_inflight_bytes: u64,
}

/// Graceful shutdown, first step: stop reading (what was read stays with the Batcher, to be drained and
/// committed); the consumer stays in the group so those commits still go through.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopReading;

/// Stop reading and leave the group now (so a successor gets the partitions without waiting for the
/// session timeout). Uncommitted batches are simply re-read by whoever reads next.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

pub struct KafkaReader {
    settings: Arc<ReaderSettings>,
    /// Partition assignments seen by the consumer (see `StatsContext::assignments`).
    assignments: Arc<AtomicU64>,
    dlq: Arc<DeadLetterQueue>,
    consumer: Option<Arc<StreamConsumer<StatsContext>>>,
    read_loop: Option<SpawnHandle>,
    stopping: bool,
    inflight: Arc<Inflight>,
    batcher: Addr<Batcher>,
    registry: Arc<RegistryClient>,
    reader_schema: Arc<Schema>,
    shared: Shared,
}

impl KafkaReader {
    pub fn new(
        settings: ReaderSettings,
        batcher: Addr<Batcher>,
        dlq: Arc<DeadLetterQueue>,
        registry: Arc<RegistryClient>,
        reader_schema: Arc<Schema>,
        shared: Shared,
    ) -> Result<Self, String> {
        Ok(KafkaReader {
            settings: Arc::new(settings),
            assignments: Arc::default(),
            dlq,
            consumer: None,
            read_loop: None,
            stopping: false,
            inflight: Arc::default(),
            batcher,
            registry,
            reader_schema,
            shared,
        })
    }

    fn connect(&self) -> Result<Arc<StreamConsumer<StatsContext>>, String> {
        let s = &self.settings;
        let mut cfg = crate::kafka::consumer_config(&s.kafka, &s.group_id);
        // Commits are explicit and synchronous, per batch, after both sinks acknowledged it.
        cfg.set("enable.auto.commit", "false")
            // A crashed consumer's partitions move to a live one after this long.
            .set("session.timeout.ms", "10000")
            // What librdkafka prefetches is memory too: a quarter of the in-flight budget, 1–64 MiB.
            .set(
                "queued.max.messages.kbytes",
                prefetch_kbytes(s.max_inflight_bytes).to_string(),
            )
            // Once that queue is full librdkafka postpones the partition's next fetch by this much (1 s by
            // default); the queue drains in milliseconds here.
            .set("fetch.queue.backoff.ms", "20")
            // Notice partitions added to the topic soon.
            .set("topic.metadata.refresh.interval.ms", "10000")
            .set("statistics.interval.ms", crate::kafka::STATS_INTERVAL_MS);
        let context = StatsContext {
            lag: Some(self.shared.metrics.consumer_lag.clone()),
            queue: None,
            assignments: Some(self.assignments.clone()),
        };
        let consumer: StreamConsumer<StatsContext> = cfg
            .create_with_context(context)
            .map_err(|e| format!("kafka at {}: {e}", s.kafka.brokers))?;
        Ok(Arc::new(consumer))
    }
}

fn prefetch_kbytes(max_inflight_bytes: u64) -> u64 {
    (max_inflight_bytes / 4 / 1024).clamp(1024, 65536)
}

impl Actor for KafkaReader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.stopping {
            return;
        }
        self.shared.health.starting(NAME);
        self.batcher.do_send(CommitTo(ctx.address().recipient()));
        // A (re)started reader reads from the committed offsets: whatever the Batcher holds open is stale.
        self.batcher.do_send(Reset);
        self.inflight = Arc::default();
        self.shared.metrics.inflight_bytes.set(0);
        self.shared.metrics.paused_partitions.set(0);
        let consumer = match self.connect() {
            Ok(c) => c,
            Err(e) => {
                log::error!("{NAME}: {e}");
                self.shared.health.error(NAME, e);
                ctx.run_later(Duration::from_secs(1), |_, ctx| ctx.stop());
                return;
            }
        };
        self.consumer = Some(consumer.clone());
        self.shared.health.running(NAME);
        let job = ReadLoop {
            consumer,
            assignments: self.assignments.clone(),
            dlq: self.dlq.clone(),
            settings: self.settings.clone(),
            inflight: self.inflight.clone(),
            batcher: self.batcher.clone(),
            registry: self.registry.clone(),
            decoders: RefCell::new(wire::Decoders::new(self.reader_schema.clone())),
            shared: self.shared.clone(),
        };
        let handle = ctx.spawn(job.run().into_actor(self).map(|res, act, ctx| {
            if let Err(e) = res {
                log::error!("{NAME}: {e}; restarting");
                act.shared.health.error(NAME, e);
                ctx.stop();
            }
        }));
        self.read_loop = Some(handle);
    }
}

impl Handler<StopReading> for KafkaReader {
    type Result = ();

    fn handle(&mut self, _: StopReading, ctx: &mut Self::Context) {
        self.stopping = true;
        if let Some(h) = self.read_loop.take() {
            ctx.cancel_future(h);
        }
    }
}

impl Handler<Shutdown> for KafkaReader {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        if let Some(h) = self.read_loop.take() {
            ctx.cancel_future(h);
        }
        let consumer = self.consumer.take();
        Box::pin(async move {
            if let Some(c) = consumer {
                // Unsubscribing sends LeaveGroup; it blocks on the broker, so off the actor thread.
                let _ = tokio::task::spawn_blocking(move || c.unsubscribe()).await;
            }
        })
    }
}

impl Supervised for KafkaReader {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.consumer = None;
    }
}

impl Handler<Commit> for KafkaReader {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, msg: Commit, _: &mut Self::Context) -> Self::Result {
        let consumer = self.consumer.clone();
        let topic = self.settings.topic.clone();
        let inflight = self.inflight.clone();
        let gauge = self.shared.metrics.inflight_bytes.clone();
        Box::pin(async move {
            let consumer = consumer.ok_or("not connected")?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, msg.partition, Offset::Offset(msg.next_offset))
                .map_err(|e| e.to_string())?;
            // A synchronous commit blocks its thread until the broker answered: keep it off the actors'.
            tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("commit p{} @{}: {e}", msg.partition, msg.next_offset))?;
            // Saturating: a batch read before a reader restart is committed against the new counter.
            let release = |b: u64| Some(b.saturating_sub(msg.bytes as u64));
            let before = inflight
                .bytes
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, release)
                .unwrap_or_default();
            gauge.set(before.saturating_sub(msg.bytes as u64) as i64);
            inflight.freed.notify_waiters();
            Ok(())
        })
    }
}
