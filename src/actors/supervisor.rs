//! Starts the actors of a role, each under a supervisor: an actor that stops (a fatal error in it) or
//! panics (a bug) is restarted with the same address, mailbox and state, counted in
//! `nrt_actor_restarts_total` and `/actors`; the others keep running.
//!
//! actix's own `Supervisor` restarts an actor that stops, but a panic unwinds through it and the actor
//! is gone for good (its address dead, its senders failing forever). `Supervise` below is the same loop
//! with the panic caught, and with a backoff: the first restart is immediate, the next ones inside a
//! minute wait 100 ms, 200 ms, … up to 30 s, so a crash-looping actor neither spins nor floods the logs
//! (`health.rs` shows it in `/ready` and `/actors`).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix::dev::ContextFut;
use std::collections::BTreeMap;

use actix::{Actor, Addr, AsyncContext, Context, Recipient, Supervised};
use apache_avro::Schema;

use super::batcher::{Batcher, Limits};
use crate::clickhouse::writer::{self as clickhouse_writer, ClickhouseWriter};
use super::encoder::{self, Encoder, SchemaSource};
use super::kafka_publisher::{self, KafkaPublisher, TopicSettings};
use super::inflight::Inflight;
use super::kafka_reader::{self, KafkaReader, ReaderParts, ReaderSettings, Wiring};
use super::ownership::Ownership;
use super::messages::{Restart, ToBatcher};
use crate::lake::writer::{self as minio_writer, MinioWriter};
use super::poller::{self, PollSettings, Poller};
use super::{batcher, Shared};
use crate::config::{PipelineConfig, Role, ServicesConfig};
use crate::dead_letters::DeadLetterQueue;
use crate::kafka::KafkaSetupError;
use crate::registry::RegistryClient;
use crate::retry::Backoff;
use crate::s3::ObjectStore;

/// Runs one actor and restarts it whenever it stops or panics, as long as anyone holds its address.
struct Supervise<A: Actor<Context = Context<A>> + Supervised> {
    name: &'static str,
    actor: ContextFut<A, Context<A>>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    shared: Shared,
}

impl<A: Actor<Context = Context<A>> + Supervised> Supervise<A> {
    /// Starts `actor` on the current arbiter; its address outlives any number of restarts.
    fn start(name: &'static str, actor: A, shared: &Shared) -> Addr<A> {
        let ctx = Context::new();
        let addr = ctx.address();
        actix::spawn(Supervise {
            name,
            actor: ctx.into_future(actor),
            pause: None,
            shared: shared.clone(),
        });
        addr
    }
}

/// How long to wait before the `recent`-th restart inside the window.
pub fn restart_delay(recent: usize) -> Duration {
    match recent {
        0 | 1 => Duration::ZERO,
        n => Backoff::new(Duration::from_millis(100), Duration::from_secs(30))
            .after((n - 2) as u32)
            .next_delay(),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

impl<A: Actor<Context = Context<A>> + Supervised> Future for Supervise<A> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            if let Some(pause) = this.pause.as_mut() {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.pause = None;
            }
            // A panic leaves the actor's state as the unwinding found it; `restart()` then clears its
            // context and calls `Supervised::restarting`, exactly as after a stop.
            let polled = std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut this.actor).poll(cx)));
            match polled {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(())) => {}
                Err(payload) => {
                    let message = format!("panicked: {}", panic_message(payload.as_ref()));
                    log::error!("{}: {message}", this.name);
                    this.shared.health.error(this.name, message);
                }
            }
            // False once nobody holds the address any more: then the actor is done for good. Otherwise the
            // context is reset now, and `started` runs when the pause is over (messages wait meanwhile).
            if !this.actor.restart() {
                return Poll::Ready(());
            }
            let recent = this.shared.restarting(this.name);
            let delay = restart_delay(recent);
            if !delay.is_zero() {
                log::warn!(
                    "{}: {recent} restarts in the last minute; next one in {delay:?}",
                    this.name
                );
            }
            this.pause = Some(Box::pin(tokio::time::sleep(delay)));
        }
    }
}

/// The addresses of what was started (kept alive by the caller for the life of the process).
#[derive(Default)]
pub struct Started {
    pub poller: Option<Addr<Poller>>,
    pub reader: Option<Addr<KafkaReader>>,
    pub batcher: Option<Addr<Batcher>>,
    /// The consumer's in-flight budget (its bound changes when a file's pipelines share it out anew).
    pub inflight: Option<Arc<Inflight>>,
    /// Every actor, by name, for `POST /actors/{name}/restart`.
    pub restarters: BTreeMap<&'static str, Recipient<Restart>>,
    #[cfg(debug_assertions)]
    pub crashers: super::fault::Crashers,
}

impl Started {
    #[cfg(debug_assertions)]
    fn crashable<A>(&mut self, name: &'static str, addr: &Addr<A>)
    where
        A: Actor<Context = Context<A>> + actix::Handler<super::fault::Panic> + actix::Handler<Restart>,
    {
        self.restarters.insert(name, addr.clone().recipient());
        self.crashers.insert(name, addr.clone().recipient());
    }

    #[cfg(not(debug_assertions))]
    fn crashable<A>(&mut self, name: &'static str, addr: &Addr<A>)
    where
        A: Actor<Context = Context<A>> + actix::Handler<Restart>,
    {
        self.restarters.insert(name, addr.clone().recipient());
    }
}

/// What the admin API can ask of any actor: stop (its supervisor restarts it) and, in debug builds,
/// panic (the fault-injection hook).
macro_rules! admin_handlers {
    ($($actor:ty),*) => {$(
        impl actix::Handler<Restart> for $actor {
            type Result = ();
            fn handle(&mut self, _: Restart, ctx: &mut Self::Context) {
                log::warn!("{}: restart requested through the admin API", stringify!($actor));
                actix::ActorContext::stop(ctx);
            }
        }

        #[cfg(debug_assertions)]
        impl actix::Handler<super::fault::Panic> for $actor {
            type Result = ();
            fn handle(&mut self, p: super::fault::Panic, _: &mut Self::Context) {
                if p.mid_batch && super::fault::MidBatch::arm_mid_batch(self) {
                    log::warn!("{}: will panic in the middle of its next batch", stringify!($actor));
                    return;
                }
                panic!("fault injection: {} panics", stringify!($actor));
            }
        }
    )*};
}

#[cfg(debug_assertions)]
mod between_batches {
    use super::*;
    impl super::super::fault::MidBatch for Poller {}
    impl super::super::fault::MidBatch for KafkaReader {}
    impl super::super::fault::MidBatch for Batcher {}
    impl super::super::fault::MidBatch for MinioWriter {}
    impl super::super::fault::MidBatch for ClickhouseWriter {}
}

admin_handlers!(
    Poller,
    Encoder,
    KafkaPublisher,
    KafkaReader,
    Batcher,
    MinioWriter,
    ClickhouseWriter
);

/// Why a pipeline's actors could not be made: a client that cannot be built from its settings (a CA
/// file, a property, a schema). Nothing runs yet; `nrt run` exits with it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Registry(#[from] crate::registry::ClientError),
    #[error(transparent)]
    Lake(#[from] crate::s3::S3Error),
    #[error(transparent)]
    Clickhouse(#[from] crate::tls::TlsError),
    #[error("dead-letter producer: {0}")]
    DeadLetters(#[source] KafkaSetupError),
    #[error(transparent)]
    Publisher(KafkaSetupError),
    #[error(transparent)]
    Setting(#[from] crate::config::SettingError),
    #[error(transparent)]
    Schema(#[from] encoder::SchemaError),
    #[error("events API: cannot build HTTP client: {0}")]
    Poller(#[from] reqwest::Error),
}

/// Starts the chains of `role` in the current actix System.
pub fn start(
    role: Role,
    services: &ServicesConfig,
    pipeline: &PipelineConfig,
    shared: &Shared,
) -> Result<Started, StartError> {
    let registry = RegistryClient::new(&services.registry, Duration::from_secs(10))?
        .with_cache_metrics(shared.metrics.registry_cache.clone());
    let registry = Arc::new(registry);
    let mut started = Started::default();
    shared
        .metrics
        .flush_interval
        .set(pipeline.flush_interval_ms as f64 / 1000.0);
    if role.consumes() {
        for name in [
            kafka_reader::NAME,
            batcher::NAME,
            minio_writer::NAME,
            clickhouse_writer::NAME,
        ] {
            shared.health.starting(name);
            shared.metrics.actor_restarts.with_label_values(&[name]);
        }
        // What the consumer holds, counted against NRT_MAX_INFLIGHT_BYTES: the records read and not yet
        // committed (see inflight.rs).
        let inflight = Arc::new(Inflight::new(
            pipeline.max_inflight_bytes,
            shared.metrics.inflight_bytes.clone(),
            shared.metrics.inflight_bound.clone(),
        ));
        let minio = {
            let (store, prefix, sh) = (
                ObjectStore::new(&services.s3)?,
                pipeline.lake.s3_prefix.clone(),
                shared.clone(),
            );
            let w = MinioWriter::new(store, (prefix, pipeline.lake.lake_format), sh, inflight.clone());
            Supervise::start(minio_writer::NAME, w, shared)
        };
        started.crashable(minio_writer::NAME, &minio);
        // How each writer schema's records go into the table: learnt by the reader before it decodes
        // the first of them; kept across its restarts.
        let plans = {
            let table = pipeline.table.table(&services.clickhouse.database);
            let ddl = crate::clickhouse::ddl::Ddl::new(&services.clickhouse)?;
            Arc::new(crate::clickhouse::plans::Plans::new(ddl, table).for_lake(pipeline.lake.lake_format))
        };
        let clickhouse = {
            let w = ClickhouseWriter::new(&services.clickhouse, &pipeline.table.table(&services.clickhouse.database), shared.clone())?;
            Supervise::start(clickhouse_writer::NAME, w, shared)
        };
        started.crashable(clickhouse_writer::NAME, &clickhouse);
        let limits = Limits {
            flush_interval: Duration::from_millis(pipeline.flush_interval_ms),
            quiet: Duration::from_millis(pipeline.flush_quiet_ms),
            max_records: pipeline.batch_max_records as usize,
            max_bytes: pipeline.batch_max_bytes as usize,
        };
        // Shared by the reader (undecodable records) and the Batcher (rows a sink refuses).
        let dlq = DeadLetterQueue::new(&services.kafka, pipeline.dead_letter_topic()).map_err(StartError::DeadLetters)?;
        let dlq = Arc::new(dlq);
        let sinks = batcher::Sinks {
            minio: minio.recipient(),
            clickhouse: clickhouse.recipient(),
            dlq: dlq.clone(),
            clickhouse_took_rows: std::sync::atomic::AtomicBool::new(true),
        };
        // Shared by the reader (rebalances, commits) and the Batcher: which partitions are ours.
        let ownership = Arc::new(Ownership::default());
        let b = Batcher::new(
            pipeline.topic.clone(),
            limits,
            sinks,
            ownership.clone(),
            inflight.clone(),
            shared.clone(),
        )
        .with_reader_chunk(kafka_reader::CHUNK_RECORDS);
        let batcher = Supervise::start(batcher::NAME, b, shared);
        started.crashable(batcher::NAME, &batcher);
        started.batcher = Some(batcher.clone());
        started.inflight = Some(inflight.clone());
        let settings = ReaderSettings {
            kafka: services.kafka.clone(),
            topic: pipeline.topic.clone(),
            subject_strategy: pipeline.subject_strategy,
            partitions: pipeline.partitions,
            replication: pipeline.replication,
            dlq_topic: pipeline.dead_letter_topic(),
            group_id: pipeline.group_id.clone(),
            max_inflight_bytes: pipeline.max_inflight_bytes,
            revoke_timeout: Duration::from_millis(pipeline.revoke_timeout_ms),
        };
        let r = KafkaReader::new(ReaderParts {
            wiring: Wiring {
                settings: Arc::new(settings),
                ownership,
                inflight,
                dlq,
                batcher: ToBatcher {
                    decoded: batcher.clone().recipient(),
                    revoke: batcher.clone().recipient(),
                    commit_to: batcher.recipient(),
                },
                shared: shared.clone(),
            },
            registry: registry.clone(),
            plans,
        });
        let reader = Supervise::start(kafka_reader::NAME, r, shared);
        started.crashable(kafka_reader::NAME, &reader);
        started.reader = Some(reader);
    }
    if role.produces() {
        for name in [poller::NAME, encoder::NAME, kafka_publisher::NAME] {
            shared.health.starting(name);
            shared.metrics.actor_restarts.with_label_values(&[name]);
        }
        let topic = TopicSettings {
            kafka: services.kafka.clone(),
            topic: pipeline.topic.clone(),
            partitions: pipeline.partitions,
            replication: pipeline.replication,
            transactional_id: pipeline.transactional_id(),
        };
        let publisher = Supervise::start(
            kafka_publisher::NAME,
            KafkaPublisher::new(topic, shared.clone()).map_err(StartError::Publisher)?,
            shared,
        );
        started.crashable(kafka_publisher::NAME, &publisher);
        let schema = SchemaSource {
            text: pipeline.producer_schema()?,
            file: pipeline.schema_file.clone(),
        };
        // Records of another schema than the events' come as JSON, read along the schema; a misfit
        // goes to the dead-letter topic.
        let records = match Schema::parse_str(&schema.text) {
            Ok(Schema::Record(r)) => r.name.fullname(None) != crate::clickhouse::plans::MIGRATED_RECORD,
            _ => false,
        };
        let dlq = DeadLetterQueue::new(&services.kafka, pipeline.dead_letter_topic())
            .map_err(StartError::DeadLetters)?
            .creating(pipeline.partitions, pipeline.replication);
        let encoder = Encoder::new(
            registry,
            &pipeline.topic,
            pipeline.subject_strategy,
            schema,
            publisher,
            Arc::new(dlq),
            shared.clone(),
        )?;
        let encoder = Supervise::start(encoder::NAME, encoder, shared);
        started.crashable(encoder::NAME, &encoder);
        let settings = PollSettings {
            api_url: pipeline.mock_api_url.clone(),
            batch: pipeline.poll_batch,
            interval: Duration::from_millis(pipeline.poll_interval_ms),
            timeout: Duration::from_millis(pipeline.poll_timeout_ms),
            records,
        };
        let poller = Poller::new(settings, encoder, shared.clone())?;
        let poller = Supervise::start(poller::NAME, poller, shared);
        started.crashable(poller::NAME, &poller);
        started.poller = Some(poller);
    }
    Ok(started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_up_to_thirty_seconds() {
        assert_eq!(restart_delay(1), Duration::ZERO);
        let second = restart_delay(2);
        assert!(second >= Duration::from_millis(50) && second <= Duration::from_millis(100));
        let fifth = restart_delay(5);
        assert!(fifth >= Duration::from_millis(400) && fifth <= Duration::from_millis(800));
        assert!(restart_delay(100) <= Duration::from_secs(30));
        assert!(restart_delay(100) >= Duration::from_secs(15));
    }
}
