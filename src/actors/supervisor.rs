//! Starts the actors of a role under actix supervisors: an actor that stops (a fatal error in it) is
//! restarted with the same address and state, counted in `nrt_actor_restarts_total` and `/actors`; the
//! others keep running.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Supervisor};
use apache_avro::Schema;

use super::batcher::{Batcher, Limits};
use super::clickhouse_writer::{self, ClickhouseWriter};
use super::encoder::{self, Encoder};
use super::kafka_publisher::{self, KafkaPublisher, TopicSettings};
use super::kafka_reader::{self, KafkaReader, ReaderSettings};
use super::minio_writer::{self, MinioWriter};
use super::poller::{self, PollSettings, Poller};
use super::{batcher, Shared};
use crate::config::{PipelineConfig, Role, ServicesConfig};
use crate::event::SCHEMA_V1;
use crate::registry::RegistryClient;
use crate::s3::ObjectStore;

/// The addresses of what was started (kept alive by the caller for the life of the process).
#[derive(Default)]
pub struct Started {
    pub poller: Option<Addr<Poller>>,
    pub reader: Option<Addr<KafkaReader>>,
    #[cfg(debug_assertions)]
    pub crashers: super::fault::Crashers,
}

impl Started {
    #[cfg(debug_assertions)]
    fn crashable<A>(&mut self, name: &'static str, addr: &Addr<A>)
    where
        A: Actor<Context = actix::Context<A>> + actix::Handler<super::fault::Crash>,
    {
        self.crashers.insert(name, addr.clone().recipient());
    }

    #[cfg(not(debug_assertions))]
    fn crashable<A: Actor>(&mut self, _: &'static str, _: &Addr<A>) {}
}

/// Starts the chains of `role` in the current actix System.
pub fn start(
    role: Role,
    services: &ServicesConfig,
    pipeline: &PipelineConfig,
    shared: &Shared,
) -> Result<Started, String> {
    let registry = RegistryClient::new(&services.registry, Duration::from_secs(10))
        .map_err(|e| e.to_string())?
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
        let minio = {
            let (store, prefix, sh) = (
                ObjectStore::new(&services.s3),
                pipeline.s3_prefix.clone(),
                shared.clone(),
            );
            Supervisor::start(move |_| MinioWriter::new(store, prefix, sh))
        };
        started.crashable(minio_writer::NAME, &minio);
        let clickhouse = {
            let w = ClickhouseWriter::new(
                &services.clickhouse,
                pipeline.clickhouse_table.clone(),
                shared.clone(),
            );
            Supervisor::start(move |_| w)
        };
        started.crashable(clickhouse_writer::NAME, &clickhouse);
        let limits = Limits {
            flush_interval: Duration::from_millis(pipeline.flush_interval_ms),
            max_records: pipeline.batch_max_records as usize,
            max_bytes: pipeline.batch_max_bytes as usize,
        };
        let b = Batcher::new(pipeline.topic.clone(), limits, minio, clickhouse, shared.clone());
        let batcher = Supervisor::start(move |_| b);
        started.crashable(batcher::NAME, &batcher);
        let reader_schema = Arc::new(Schema::parse_str(SCHEMA_V1).map_err(|e| format!("event schema: {e}"))?);
        let settings = ReaderSettings {
            kafka: services.kafka.clone(),
            topic: pipeline.topic.clone(),
            partitions: pipeline.partitions,
            replication: pipeline.replication,
            dlq_topic: pipeline.dead_letter_topic(),
            group_id: pipeline.group_id.clone(),
            max_inflight_bytes: pipeline.max_inflight_bytes,
        };
        let r = KafkaReader::new(settings, batcher, registry.clone(), reader_schema, shared.clone())?;
        let reader = Supervisor::start(move |_| r);
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
        };
        let publisher = start_supervised(KafkaPublisher::new(topic, shared.clone())?);
        let encoder = start_supervised(Encoder::new(
            registry,
            &pipeline.topic,
            SCHEMA_V1,
            publisher,
            shared.clone(),
        )?);
        let settings = PollSettings {
            api_url: pipeline.mock_api_url.clone(),
            batch: pipeline.poll_batch,
            interval: Duration::from_millis(pipeline.poll_interval_ms),
        };
        started.poller = Some(start_supervised(Poller::new(settings, encoder, shared.clone())?));
    }
    Ok(started)
}

fn start_supervised<A>(actor: A) -> Addr<A>
where
    A: Actor<Context = actix::Context<A>> + actix::Supervised,
{
    Supervisor::start(move |_| actor)
}
