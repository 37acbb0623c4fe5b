//! KafkaReader: reads the topic in a consumer group, decodes each record through the writer schema its
//! id names (fetched from the registry once, then cached) into our reader schema, and hands
//! per-partition runs to the Batcher. Commits arrive back from the Batcher once both sinks have a batch.
//!
//! The read loop runs on the reader's own arbiter (a thread of its own): decoding is CPU work kept off
//! the actors' thread, and rdkafka runs the rebalance callbacks on the polling thread, where they may
//! wait for the Batcher (`rebalance.rs`). The actor itself stays on the actors' thread: it starts and
//! stops the loop and performs commits, each only while the partition is still ours (`Ownership`).
//!
//! Backpressure: the Batcher and the writers count the bytes they hold (`Inflight`); over
//! `max_inflight_bytes` the loop stops polling for up to 2 s (librdkafka's bounded prefetch fills and
//! waits), then pauses its partitions (librdkafka stops fetching and drops what it prefetched) and
//! keeps polling, so it stays in the group however long a sink is down, and resumes them as soon as
//! commits free room.

mod decode;
mod holding;
mod read_loop;
mod rebalance;
mod redelivery;
mod unknown_ids;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::future::{AbortHandle, Abortable};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use super::messages::{CommitTo, ToBatcher};
use super::inflight::Inflight;
use super::messages::{Commit, CommitError};
use super::ownership::{CommitRefused, Ownership};
use super::Shared;
use crate::config::KafkaConfig;
use crate::dead_letters::DeadLetterQueue;
use crate::kafka::StatsContext;
use crate::registry::RegistryClient;
pub use read_loop::CHUNK_RECORDS;
use read_loop::{ReadLoop, ReaderConsumer};
use rebalance::ReaderContext;

pub const NAME: &str = "kafka_reader";

/// The assignment strategy, pinned: with cooperative-sticky a rebalance revokes only the partitions
/// that move, so the others keep their open batches and nothing is fetched twice; the callbacks in
/// `rebalance.rs` handle any strategy (eager revokes everything, then assigns it all again).
pub const ASSIGNMENT_STRATEGY: &str = "cooperative-sticky";
/// How long a member may take between polls before the group expels it; a revocation waits at most
/// `revoke_timeout`, far less (checked in config).
pub const MAX_POLL_INTERVAL_MS: u64 = 300_000;

pub struct ReaderSettings {
    pub kafka: KafkaConfig,
    pub topic: String,
    /// Which registry subjects hold the topic's schemas (to tell a wrong registry from a bad id).
    pub subject_strategy: crate::registry::SubjectStrategy,
    /// Used to create the topic if the consumer starts before any producer did.
    pub partitions: i32,
    pub replication: i32,
    /// Where undecodable records go (created like the topic).
    pub dlq_topic: String,
    pub group_id: String,
    pub max_inflight_bytes: u64,
    /// How long a revocation waits for the revoked partitions' batches in flight.
    pub revoke_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error("kafka at {brokers}: {what}: {source}")]
    Kafka {
        brokers: String,
        what: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("the batcher is gone")]
    BatcherGone,
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

/// The read loop ended with an error: the actor stops, and its supervisor starts it again.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct LoopFailed(ReaderError);

/// What the reader, its read loop and its rebalance callbacks share: wired once by the supervisor.
#[derive(Clone)]
pub struct Wiring {
    pub settings: Arc<ReaderSettings>,
    pub ownership: Arc<Ownership>,
    pub inflight: Arc<Inflight>,
    /// Where undecodable records go.
    pub dlq: Arc<DeadLetterQueue>,
    pub batcher: ToBatcher,
    pub shared: Shared,
}

pub struct KafkaReader {
    wiring: Wiring,
    consumer: Option<Arc<ReaderConsumer>>,
    read_loop: Option<AbortHandle>,
    /// The read loop's thread, for the life of the process.
    arbiter: Arbiter,
    stopping: bool,
    /// Shared with the consumer's callbacks: set once the process leaves the group.
    leaving: Arc<std::sync::atomic::AtomicBool>,
    registry: Arc<RegistryClient>,
    plans: Arc<crate::clickhouse::plans::Plans>,
}

/// Everything the reader is built from.
pub struct ReaderParts {
    pub wiring: Wiring,
    pub registry: Arc<RegistryClient>,
    pub plans: Arc<crate::clickhouse::plans::Plans>,
}

impl KafkaReader {
    pub fn new(p: ReaderParts) -> Self {
        KafkaReader {
            wiring: p.wiring,
            consumer: None,
            read_loop: None,
            arbiter: Arbiter::new(),
            stopping: false,
            leaving: Arc::default(),
            registry: p.registry,
            plans: p.plans,
        }
    }

    fn connect(&self) -> Result<Arc<ReaderConsumer>, ReaderError> {
        let s = &self.wiring.settings;
        let mut cfg = crate::kafka::consumer_config(&s.kafka, &s.group_id).map_err(|source| {
            ReaderError::Kafka {
                brokers: s.kafka.brokers.clone(),
                what: "configure consumer",
                source,
            }
        })?;
        let prefetch = prefetch(s.max_inflight_bytes);
        // Commits are explicit and synchronous, per batch, after both sinks acknowledged it.
        cfg.set("enable.auto.commit", "false")
            .set("partition.assignment.strategy", ASSIGNMENT_STRATEGY)
            .set("max.poll.interval.ms", MAX_POLL_INTERVAL_MS.to_string())
            // A crashed consumer's partitions move to a live one after this long.
            .set("session.timeout.ms", "10000")
            // What librdkafka prefetches is memory too, outside the budget: see `prefetch`.
            .set("queued.max.messages.kbytes", (prefetch / 1024).to_string())
            .set("fetch.max.bytes", prefetch.to_string())
            .set("max.partition.fetch.bytes", (prefetch / 8).clamp(64 << 10, 1 << 20).to_string())
            // librdkafka keeps up to this many records per partition queued whatever their size, each
            // with a few hundred bytes of bookkeeping of its own (100,000 by default: ~50 MiB for small
            // records): see `prefetch_records`.
            .set("queued.min.messages", prefetch_records(s.max_inflight_bytes).to_string())
            // Once that queue is full librdkafka postpones the partition's next fetch by this much (1 s by
            // default); the queue drains in milliseconds here.
            .set("fetch.queue.backoff.ms", "20")
            // Notice partitions added to the topic soon.
            .set("topic.metadata.refresh.interval.ms", "10000")
            .set("statistics.interval.ms", crate::kafka::STATS_INTERVAL_MS);
        let context = ReaderContext {
            stats: StatsContext {
                lag: Some(self.wiring.shared.metrics.consumer_lag.clone()),
                queue: None,
                quiet: Default::default(),
            },
            topic: s.topic.clone(),
            ownership: self.wiring.ownership.clone(),
            batcher: self.wiring.batcher.revoke.clone(),
            revoke_timeout: s.revoke_timeout,
            leaving: self.leaving.clone(),
            shared: self.wiring.shared.clone(),
            mine: Default::default(),
        };
        let consumer: StreamConsumer<ReaderContext> =
            cfg.create_with_context(context)
                .map_err(|source| ReaderError::Kafka {
                    brokers: s.kafka.brokers.clone(),
                    what: "create consumer",
                    source,
                })?;
        Ok(Arc::new(consumer))
    }

    /// Stops the read loop and closes the consumer (off this thread: closing runs the revocation
    /// callback, which waits for the Batcher, which runs here).
    fn disconnect(&mut self) {
        if let Some(h) = self.read_loop.take() {
            h.abort();
        }
        if let Some(consumer) = self.consumer.take() {
            tokio::task::spawn_blocking(move || drop(consumer));
        }
    }
}

/// Bytes librdkafka may prefetch (and fetch in one request): a sixteenth of the in-flight budget,
/// 1–64 MiB. Small fetches cost little throughput on one host (measured: consumer at 32 MiB in flight,
/// 2 MiB prefetch and 256 KiB per partition fetch: peak RSS 152 MiB against 250 MiB with librdkafka's
/// 64 MiB/1 MiB defaults, within the noise in events/s).
fn prefetch(max_inflight_bytes: u64) -> u64 {
    (max_inflight_bytes / 16).clamp(1 << 20, 64 << 20)
}

/// Records librdkafka may queue per partition: a sixteenth of the budget at ~200 bytes a record
/// (payload and bookkeeping), 1,000–10,000: 10,000 (tens of milliseconds of reading) at the default
/// 32 MiB. It follows the budget so that a process whose pipelines share the budget queues about what
/// one pipeline with all of it would: measured with 5 pipelines on 32 MiB, a fixed 10,000 held ~12 MiB
/// more per pipeline at peak (15 partitions × 10,000 records).
fn prefetch_records(max_inflight_bytes: u64) -> u64 {
    (max_inflight_bytes / 16 / 200).clamp(1_000, 10_000)
}

impl Actor for KafkaReader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.stopping {
            return;
        }
        self.wiring.shared.health.starting(NAME);
        self.wiring.batcher.commit_to.do_send(CommitTo(ctx.address().recipient()));
        // A new consumer owns nothing until the group assigns it partitions.
        self.wiring.ownership.revoke_all();
        let consumer = match self.connect() {
            Ok(c) => c,
            Err(e) => {
                log::error!("{NAME}: {e}");
                self.wiring.shared.health.error(NAME, e.to_string());
                ctx.run_later(Duration::from_secs(1), |_, ctx| ctx.stop());
                return;
            }
        };
        self.consumer = Some(consumer.clone());
        self.wiring.shared.health.running(NAME);
        let parts = self.wiring.clone();
        let decoding = decode::Decoding::new(
            self.registry.clone(),
            self.plans.clone(),
            &self.wiring.settings.topic,
            self.wiring.settings.subject_strategy,
        );
        let (handle, registration) = AbortHandle::new_pair();
        let me = ctx.address();
        self.arbiter.spawn_fn(move || {
            let job = ReadLoop::new(consumer, parts, decoding);
            actix::spawn(async move {
                if let Ok(Err(e)) = Abortable::new(job.run(), registration).await {
                    me.do_send(LoopFailed(e));
                }
            });
        });
        self.read_loop = Some(handle);
    }
}

impl Handler<LoopFailed> for KafkaReader {
    type Result = ();

    fn handle(&mut self, LoopFailed(e): LoopFailed, ctx: &mut Self::Context) {
        log::error!("{NAME}: {e}; restarting");
        self.wiring.shared.health.error(NAME, e.to_string());
        ctx.stop();
    }
}

impl Handler<StopReading> for KafkaReader {
    type Result = ();

    fn handle(&mut self, _: StopReading, _: &mut Self::Context) {
        self.stopping = true;
        if let Some(h) = self.read_loop.take() {
            h.abort();
        }
    }
}

impl Handler<Shutdown> for KafkaReader {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        self.leaving.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(h) = self.read_loop.take() {
            h.abort();
        }
        let consumer = self.consumer.take();
        Box::pin(async move {
            if let Some(c) = consumer {
                // Unsubscribing sends LeaveGroup (after the revocation callback); it blocks on the broker.
                let _ = tokio::task::spawn_blocking(move || c.unsubscribe()).await;
            }
        })
    }
}

impl Supervised for KafkaReader {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.disconnect();
        self.wiring.ownership.revoke_all();
    }
}

impl Handler<Commit> for KafkaReader {
    type Result = ResponseFuture<Result<(), CommitError>>;

    fn handle(&mut self, msg: Commit, _: &mut Self::Context) -> Self::Result {
        let consumer = self.consumer.clone();
        let topic = self.wiring.settings.topic.clone();
        let ownership = self.wiring.ownership.clone();
        Box::pin(async move {
            let consumer = consumer.ok_or(CommitError::NotConnected)?;
            let Commit {
                partition,
                epoch,
                next_offset,
            } = msg;
            // A synchronous commit blocks its thread until the broker answered: keep it off the actors'.
            let committed = tokio::task::spawn_blocking(move || {
                ownership.commit_if_owned(partition, epoch, next_offset, || {
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(&topic, partition, Offset::Offset(next_offset))?;
                    consumer.commit(&tpl, CommitMode::Sync)
                })
            })
            .await
            .map_err(|_| CommitError::NotConnected)?;
            committed.map_err(|e| match e {
                CommitRefused::NotOwned { partition, epoch } => CommitError::NotOwned { partition, epoch },
                CommitRefused::Failed(source) => CommitError::Kafka {
                    partition,
                    offset: next_offset,
                    source,
                },
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_librdkafka_prefetches_follows_the_budget() {
        use super::{prefetch, prefetch_records};
        assert_eq!((prefetch(32 << 20), prefetch_records(32 << 20)), (2 << 20, 10_000));
        // Five pipelines sharing 32 MiB queue about what one with all of it does.
        assert_eq!(prefetch_records((32 << 20) / 5), 2_097);
        assert_eq!((prefetch(1 << 20), prefetch_records(1 << 20)), (1 << 20, 1_000));
        assert_eq!((prefetch(1 << 36), prefetch_records(1 << 36)), (64 << 20, 10_000));
    }
}
