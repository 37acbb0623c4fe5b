//! Every metric nrt exposes, defined once, all named `nrt_…`.
//!
//! Each server owns a `prometheus::Registry` (no process-wide global), so two components in one process
//! or one test never register the same name twice.

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Metrics of `nrt registry`.
#[derive(Clone)]
pub struct RegistryMetrics {
    pub registry: Registry,
    /// Requests by matched route pattern (low cardinality: never the raw path), method and status.
    pub requests: IntCounterVec,
}

impl RegistryMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "nrt_registry_requests_total",
                "Schema registry HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        register_process(&registry)?;
        Ok(RegistryMetrics { registry, requests })
    }
}

/// CPU, memory and file-descriptor figures of this process (`process_*`).
fn register_process(registry: &Registry) -> Result<(), prometheus::Error> {
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(())
}

/// The Prometheus text exposition of `registry`.
pub fn encode(registry: &Registry) -> Result<String, prometheus::Error> {
    let mut buf = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buf)?;
    String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

/// Label values of `nrt_poll_errors_total{kind}`.
pub const POLL_ERROR_KINDS: [&str; 14] = [
    "connect",
    "timeout",
    "request",
    "body",
    "http_status",
    "bad_json",
    "invalid_event",
    "invalid_record",
    "invalid_batch",
    // A polled batch not in Kafka yet (`PublishError::kind`), counted per attempt.
    "schema_refused",
    "registry",
    "encode",
    "kafka",
    "actor_gone",
];


/// Label values of `nrt_consumer_blocked{reason}`.
pub const BLOCK_REASONS: [&str; 5] = [
    "registry_unreachable",
    "registry_refuses",
    "registry_lacks_schemas",
    "schema_change",
    "clickhouse_unreachable",
];

/// Label values of `nrt_rebalance_partitions_total{event}`.
pub const REBALANCE_EVENTS: [&str; 3] = ["assigned", "revoked", "lost"];

/// Metrics of `nrt run` (every role).
#[derive(Clone)]
pub struct PipelineMetrics {
    pub registry: Registry,
    pub events_polled: IntCounter,
    /// Poll failures by kind: connect, timeout, http_status, bad_json, invalid_event, invalid_record, ….
    pub poll_errors: IntCounterVec,
    pub events_encoded: IntCounter,
    /// Events the broker acknowledged (acks=all).
    pub events_published: IntCounter,
    pub publish_errors: IntCounter,
    pub events_consumed: IntCounter,
    pub bytes_consumed: IntCounter,
    /// Records the reader could not turn into events, by kind.
    pub decode_errors: IntCounterVec,
    /// Events a sink acknowledged, by sink (minio, clickhouse).
    pub events_written: IntCounterVec,
    pub sink_bytes: IntCounterVec,
    pub sink_errors: IntCounterVec,
    pub batches_committed: IntCounter,
    pub actor_restarts: IntCounterVec,
    /// Bytes read from Kafka and not yet committed.
    pub inflight_bytes: IntGauge,
    /// This pipeline's share of `NRT_MAX_INFLIGHT_BYTES` (the reader stops at it).
    pub inflight_bound: IntGauge,
    pub paused_partitions: IntGauge,
    pub sink_refused: IntCounterVec,
    /// Events per batch written, by sink.
    pub batch_events: HistogramVec,
    /// Time to write one batch to a sink (until acknowledged), by sink.
    pub flush_seconds: HistogramVec,
    /// Event `created_at` → ClickHouse insert acknowledged.
    pub freshness_seconds: Histogram,
    /// Consumer lag per partition, from librdkafka statistics.
    pub consumer_lag: IntGaugeVec,
    /// Messages in librdkafka's producer queue (not yet acknowledged), from its statistics.
    pub producer_queue: IntGauge,
    /// Writer-schema lookups by id: `hit` (cached) or `miss` (asked the registry).
    pub registry_cache: IntCounterVec,
    /// Records sent to the dead-letter topic.
    pub dead_letters: IntCounter,
    /// Unix time of the last offset commit (alerts: no flush for 3 × the flush interval).
    pub last_commit: prometheus::Gauge,
    /// The configured flush interval, so alerts can compare against it.
    pub flush_interval: prometheus::Gauge,
    /// 1 while the reader holds back because the registry cannot tell what the records are, by reason.
    pub consumer_blocked: IntGaugeVec,
    /// Partitions assigned to, revoked from or lost by this consumer.
    pub rebalances: IntCounterVec,
    /// How long revocations waited for the revoked partitions' batches in flight.
    pub revoke_seconds: Histogram,
    /// Revocations that gave up waiting (their batches were abandoned to the next owner).
    pub revocations_timed_out: IntCounter,
    /// Batches whose MinIO object existed already (written before a crash or by a former owner) and
    /// whose boundaries were reused instead of writing again.
    pub lake_reused: IntCounter,
    /// Records librdkafka handed over a second time within one ownership epoch, dropped by the reader.
    pub records_redelivered: IntCounter,
    /// Producer transactions (one per published batch), by outcome: committed, aborted, or `replayed`
    /// (a batch sent again after its transaction committed: answered without producing it twice).
    pub transactions: IntCounterVec,
    /// 1 while the registry refuses the producer's event schema (nothing is published meanwhile).
    pub schema_refused: IntGauge,
}

impl PipelineMetrics {
    /// The metrics of the one pipeline of the process, with the process's own (`process_*`, the build).
    pub fn new() -> Result<Self, prometheus::Error> {
        let m = PipelineMetrics::in_registry(Registry::new())?;
        register_build_and_process(&m.registry)?;
        Ok(m)
    }

    /// The metrics of pipeline `name` of a pipelines file: each carries `pipeline="<name>"`. The
    /// process's own are in `process_registry()`, once.
    pub fn of_pipeline(name: &str) -> Result<Self, prometheus::Error> {
        let labels = std::collections::HashMap::from([("pipeline".to_owned(), name.to_owned())]);
        PipelineMetrics::in_registry(Registry::new_custom(None, Some(labels))?)
    }

    fn in_registry(registry: Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let m = PipelineMetrics {
            events_polled: counter("nrt_events_polled_total", "Events received from the events API")?,
            poll_errors: counter_vec(
                "nrt_poll_errors_total",
                "Failed polls of the events API by kind",
                &["kind"],
            )?,
            events_encoded: counter(
                "nrt_events_encoded_total",
                "Events encoded to the Confluent Avro wire format",
            )?,
            events_published: counter(
                "nrt_events_published_total",
                "Events acknowledged by Kafka (acks=all)",
            )?,
            publish_errors: counter(
                "nrt_publish_errors_total",
                "Kafka deliveries that failed and were retried",
            )?,
            events_consumed: counter("nrt_events_consumed_total", "Events read from Kafka and decoded")?,
            bytes_consumed: counter(
                "nrt_consumed_bytes_total",
                "Bytes of Kafka record values read (Confluent framing and Avro), decodable or not",
            )?,
            decode_errors: counter_vec(
                "nrt_decode_errors_total",
                "Kafka records that could not be decoded, by kind",
                &["kind"],
            )?,
            events_written: counter_vec(
                "nrt_events_written_total",
                "Events acknowledged by a sink",
                &["sink"],
            )?,
            sink_bytes: counter_vec("nrt_sink_bytes_total", "Bytes sent to a sink", &["sink"])?,
            sink_errors: counter_vec(
                "nrt_sink_errors_total",
                "Failed sink writes (retried), by sink",
                &["sink"],
            )?,
            batches_committed: counter(
                "nrt_batches_committed_total",
                "Batches whose offsets were committed after both sinks acknowledged",
            )?,
            actor_restarts: counter_vec(
                "nrt_actor_restarts_total",
                "Actor restarts by the supervisor",
                &["actor"],
            )?,
            inflight_bytes: {
                let g = IntGauge::new(
                    "nrt_inflight_bytes",
                    "Bytes read from Kafka and not yet committed",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            inflight_bound: {
                let g = IntGauge::new(
                    "nrt_inflight_bound_bytes",
                    "This pipeline's share of the in-flight budget: reading stops at it",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            sink_refused: counter_vec(
                "nrt_sink_refused_total",
                "Events a sink refused for good, dead-lettered, by sink",
                &["sink"],
            )?,
            paused_partitions: {
                let g = IntGauge::new(
                    "nrt_consumer_paused_partitions",
                    "Partitions the reader paused because too many bytes are in flight (backpressure)",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            batch_events: {
                let opts = HistogramOpts::new("nrt_batch_events", "Events per batch written, by sink")
                    .buckets(exponential_buckets(1.0, 4.0, 10)?);
                let h = HistogramVec::new(opts, &["sink"])?;
                registry.register(Box::new(h.clone()))?;
                h
            },
            flush_seconds: {
                let opts = HistogramOpts::new(
                    "nrt_flush_duration_seconds",
                    "Time to write one batch to a sink, by sink",
                )
                .buckets(exponential_buckets(0.001, 2.5, 12)?);
                let h = HistogramVec::new(opts, &["sink"])?;
                registry.register(Box::new(h.clone()))?;
                h
            },
            freshness_seconds: {
                let opts = HistogramOpts::new(
                    "nrt_freshness_seconds",
                    "End-to-end freshness: event created_at to ClickHouse insert acknowledged",
                )
                .buckets(vec![
                    // Fine around the default flush interval (1 s): the freshness target is
                    // "p99 within the flush interval + 250 ms".
                    0.1, 0.25, 0.5, 0.75, 1.0, 1.1, 1.2, 1.25, 1.3, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
                    300.0, 3600.0,
                ]);
                let h = Histogram::with_opts(opts)?;
                registry.register(Box::new(h.clone()))?;
                h
            },
            consumer_lag: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "nrt_consumer_lag",
                        "Consumer lag in records per partition (librdkafka statistics)",
                    ),
                    &["topic", "partition"],
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            schema_refused: {
                let g = IntGauge::new(
                    "nrt_schema_refused",
                    "1 while the schema registry refuses the producer's event schema (incompatible or invalid); the polled batch is kept",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            producer_queue: {
                let g = IntGauge::new(
                    "nrt_producer_queue_messages",
                    "Messages in the producer queue, not yet acknowledged",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            registry_cache: counter_vec(
                "nrt_registry_cache_total",
                "Writer-schema lookups by id, by result (hit, miss)",
                &["result"],
            )?,
            dead_letters: counter("nrt_dead_letters_total", "Records sent to the dead-letter topic")?,
            last_commit: {
                let g = prometheus::Gauge::new(
                    "nrt_last_commit_timestamp_seconds",
                    "Unix time of the last offset commit",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            flush_interval: {
                let g = prometheus::Gauge::new(
                    "nrt_flush_interval_seconds",
                    "Configured time-based flush interval",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            consumer_blocked: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "nrt_consumer_blocked",
                        "1 while the reader pauses because the schema registry cannot tell what the records are",
                    ),
                    &["reason"],
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            rebalances: counter_vec(
                "nrt_rebalance_partitions_total",
                "Partitions assigned to, revoked from or lost by this consumer",
                &["event"],
            )?,
            revoke_seconds: {
                let opts = HistogramOpts::new(
                    "nrt_revoke_wait_seconds",
                    "Time a revocation waited for the revoked partitions' batches in flight",
                )
                .buckets(exponential_buckets(0.001, 4.0, 10)?);
                let h = Histogram::with_opts(opts)?;
                registry.register(Box::new(h.clone()))?;
                h
            },
            revocations_timed_out: counter(
                "nrt_revocations_timed_out_total",
                "Revocations that stopped waiting for batches in flight (abandoned to the next owner)",
            )?,
            lake_reused: counter(
                "nrt_lake_objects_reused_total",
                "Batches whose MinIO object already existed; its offset range was reused, nothing overwritten",
            )?,
            records_redelivered: counter(
                "nrt_records_redelivered_total",
                "Records the Kafka client handed over twice within one assignment, dropped before batching",
            )?,
            transactions: counter_vec(
                "nrt_producer_transactions_total",
                "Producer transactions (one per published batch) by outcome: committed, aborted, replayed",
                &["outcome"],
            )?,
            registry,
        };
        // Known label values exist from the start, so dashboards show 0 instead of "no data".
        for sink in ["minio", "clickhouse"] {
            m.events_written.with_label_values(&[sink]);
            m.sink_bytes.with_label_values(&[sink]);
            m.sink_errors.with_label_values(&[sink]);
        }
        for result in ["hit", "miss"] {
            m.registry_cache.with_label_values(&[result]);
        }
        m.sink_refused.with_label_values(&["clickhouse"]);
        for kind in POLL_ERROR_KINDS {
            m.poll_errors.with_label_values(&[kind]);
        }
        for kind in crate::poison::PoisonKind::DECODED.map(|k| k.label()) {
            m.decode_errors.with_label_values(&[kind]);
        }
        for reason in BLOCK_REASONS {
            m.consumer_blocked.with_label_values(&[reason]);
        }
        for outcome in ["committed", "aborted", "replayed"] {
            m.transactions.with_label_values(&[outcome]);
        }
        for event in REBALANCE_EVENTS {
            m.rebalances.with_label_values(&[event]);
        }
        Ok(m)
    }
}

/// The process's own metrics beside a pipelines file's pipelines: its build, CPU, memory.
pub fn process_registry() -> Result<Registry, prometheus::Error> {
    let registry = Registry::new();
    register_build_and_process(&registry)?;
    Ok(registry)
}

fn register_build_and_process(registry: &Registry) -> Result<(), prometheus::Error> {
    let info = IntGaugeVec::new(
        Opts::new("nrt_build_info", "Build of this nrt binary"),
        &["version"],
    )?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry.register(Box::new(info))?;
    register_process(registry)
}

/// The Prometheus text exposition of several registries as one: a metric of several pipelines is one
/// family (its samples told apart by their `pipeline` label), as the format requires.
pub fn encode_all(registries: &[&Registry]) -> Result<String, prometheus::Error> {
    let mut families: Vec<prometheus::proto::MetricFamily> = Vec::new();
    for registry in registries {
        for mut family in registry.gather() {
            match families.iter_mut().find(|f| f.name() == family.name()) {
                Some(same) => same.mut_metric().extend(family.take_metric()),
                None => families.push(family),
            }
        }
    }
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut buf = Vec::new();
    TextEncoder::new().encode(&families, &mut buf)?;
    String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
}
