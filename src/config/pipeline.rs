//! The pipeline's own knobs: its role, topic, group, batching, table and lake.

use clap::Args;

use super::{invalid, is_plain_name, Secret, SettingError};

/// Which chains `nrt run` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Poller → Encoder → KafkaPublisher.
    Producer,
    /// KafkaReader → Batcher → MinioWriter + ClickhouseWriter.
    Consumer,
    /// Both, in one process.
    All,
}

impl Role {
    pub fn produces(self) -> bool {
        matches!(self, Role::Producer | Role::All)
    }
    pub fn consumes(self) -> bool {
        matches!(self, Role::Consumer | Role::All)
    }
}

/// The pipeline's own knobs.
#[derive(Debug, Clone, Args)]
pub struct PipelineConfig {
    /// Kafka topic of the events.
    #[arg(id = "topic", long = "topic", env = "NRT_TOPIC", default_value = "events.v1")]
    pub topic: String,
    /// The registry subject of the topic's value schemas, as Confluent's strategies name it: `topic`
    /// (`<topic>-value`), `record` (the record's full name) or `topic-record` (`<topic>-<record name>`,
    /// several record types in one topic). The producer registers under it; a consumer decodes any
    /// record by its schema id whatever the strategy.
    #[arg(id = "subject-strategy", long = "subject-strategy", env = "NRT_SUBJECT_STRATEGY",
          value_enum, default_value_t = crate::registry::SubjectStrategy::Topic)]
    pub subject_strategy: crate::registry::SubjectStrategy,
    /// Partitions of the topic when the publisher creates it.
    #[arg(id = "topic-partitions", long = "topic-partitions", env = "NRT_TOPIC_PARTITIONS", default_value_t = 3,
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub partitions: i32,
    /// Replication factor of the topic when the publisher creates it.
    #[arg(id = "topic-replication", long = "topic-replication", env = "NRT_TOPIC_REPLICATION", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=16))]
    pub replication: i32,
    /// Dead-letter topic for records that cannot be decoded; empty means `<topic>.dlq`.
    #[arg(
        id = "dlq-topic",
        long = "dlq-topic",
        env = "NRT_DLQ_TOPIC",
        default_value = ""
    )]
    pub dlq_topic: String,
    /// The producer's Kafka `transactional.id`: stable across restarts of one producer, different for
    /// every producer replica. Empty means `nrt-<topic>-<hostname>`.
    #[arg(
        id = "transactional-id",
        long = "transactional-id",
        env = "NRT_TRANSACTIONAL_ID",
        default_value = ""
    )]
    pub transactional_id: String,
    /// Consumer group of the KafkaReader.
    #[arg(
        id = "group-id",
        long = "group-id",
        env = "NRT_GROUP_ID",
        default_value = "nrt-consumer"
    )]
    pub group_id: String,
    /// The producer's event schema, an Avro schema file; default: the built-in `schemas/events.v1.avsc`.
    /// Registered under its subject (`--subject-strategy`) when the producer starts. If the registry refuses it
    /// (incompatible, invalid), the producer keeps the batch it polled and reads this file again on
    /// every retry, so fixing the file resumes it.
    #[arg(id = "schema-file", long = "schema-file", env = "NRT_SCHEMA_FILE")]
    pub schema_file: Option<std::path::PathBuf>,
    /// Base URL of the events API the Poller polls.
    #[arg(
        id = "mock-api-url",
        long = "mock-api-url",
        env = "NRT_MOCK_API_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub mock_api_url: String,
    /// Events asked for per poll (`GET /events?n=`).
    #[arg(id = "poll-batch", long = "poll-batch", env = "NRT_POLL_BATCH", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub poll_batch: u32,
    /// Pause between polls when the API returned less than a full batch, in milliseconds.
    #[arg(
        id = "poll-interval-ms",
        long = "poll-interval-ms",
        env = "NRT_POLL_INTERVAL_MS",
        default_value_t = 100
    )]
    pub poll_interval_ms: u64,
    /// How long the Poller waits for the events API before counting a `timeout` and retrying.
    #[arg(id = "poll-timeout-ms", long = "poll-timeout-ms", env = "NRT_POLL_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub poll_timeout_ms: u64,
    /// Time-based flush: a partition's open batch is written at the latest this long after its first record.
    #[arg(id = "flush-interval-ms", long = "flush-interval-ms", env = "NRT_FLUSH_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub flush_interval_ms: u64,
    /// A batch of at least a tenth of `NRT_BATCH_MAX_RECORDS` whose partition brought nothing new for
    /// this long is written without waiting out the flush interval: the tail of a backlog or of a
    /// burst. Steady traffic keeps its batches growing, so it still flushes on time or size. 0: off.
    #[arg(id = "flush-quiet-ms", long = "flush-quiet-ms", env = "NRT_FLUSH_QUIET_MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub flush_quiet_ms: u64,
    /// Size-based flush: records per batch.
    #[arg(id = "batch-max-records", long = "batch-max-records", env = "NRT_BATCH_MAX_RECORDS", default_value_t = 50_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub batch_max_records: u64,
    /// Size-based flush: bytes a batch holds in memory (its decoded events).
    #[arg(id = "batch-max-bytes", long = "batch-max-bytes", env = "NRT_BATCH_MAX_BYTES", default_value_t = 16 << 20,
          value_parser = clap::value_parser!(u64).range(1024..=1 << 34))]
    pub batch_max_bytes: u64,
    /// Backpressure: the KafkaReader stops reading while the consumer holds this many bytes for what it
    /// read and has not committed (its records: lines, rows, index); open batches are
    /// written at once above three quarters of it. The process's RSS is about its base, plus this, plus
    /// librdkafka's prefetch (a quarter of this, 1–64 MiB).
    #[arg(id = "max-inflight-bytes", long = "max-inflight-bytes", env = "NRT_MAX_INFLIGHT_BYTES", default_value_t = 32 << 20,
          value_parser = clap::value_parser!(u64).range(1 << 16..=1 << 36))]
    pub max_inflight_bytes: u64,
    /// Rebalances: how long a revocation waits for the revoked partitions' batches in flight to be written
    /// and committed before leaving them to the next owner (who reads them again from the last commit).
    #[arg(id = "revoke-timeout-ms", long = "revoke-timeout-ms", env = "NRT_REVOKE_TIMEOUT_MS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(0..=120_000))]
    pub revoke_timeout_ms: u64,
    /// Graceful shutdown: on SIGTERM/SIGINT, how long to drain (publish what was polled, write and commit
    /// open batches) before exiting anyway; a second signal exits at once.
    #[arg(id = "shutdown-timeout-ms", long = "shutdown-timeout-ms", env = "NRT_SHUTDOWN_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub shutdown_timeout_ms: u64,
    /// A one-line summary in the log every this many seconds while the pipeline moves (throughput,
    /// lag, dead letters, errors); 0 turns it off. Per-batch detail is at `RUST_LOG=debug`.
    #[arg(id = "log-summary-secs", long = "log-summary-secs", env = "NRT_LOG_SUMMARY_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub log_summary_secs: u64,
    /// Where the dashboards are (Grafana's URL in the compose deployment), linked from the status page;
    /// empty: no link.
    #[arg(id = "dashboards-url", long = "dashboards-url", env = "NRT_DASHBOARDS_URL", default_value = "")]
    pub dashboards_url: String,
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub table: TableArgs,
    /// Address of the admin API (/health /ready /metrics /actors); port 0 picks a free port.
    #[arg(
        id = "admin-addr",
        long = "admin-addr",
        env = "NRT_ADMIN_ADDR",
        default_value = "127.0.0.1:9180"
    )]
    pub admin_addr: String,
    /// Bearer token for the admin API's mutating endpoints; without one they are switched off.
    #[arg(
        id = "admin-token",
        long = "admin-token",
        env = "NRT_ADMIN_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    pub admin_token: Secret,
}

/// Where a pipeline's objects sit in the bucket: `nrt run` writes there, `nrt replay` and `nrt
/// reconcile` read there (one declaration for all three).
#[derive(Debug, Clone, Args)]
pub struct LakeArgs {
    /// Key prefix of the lake's objects in the bucket (e.g. `prod/`); empty for the bucket root.
    #[arg(id = "s3-prefix", long = "s3-prefix", env = "NRT_S3_PREFIX", default_value = "")]
    pub s3_prefix: String,
    /// What `nrt run` writes each batch as: `jsonl` (a JSON record per line) or `parquet` (columns of
    /// the writer schemas, zstd). Replay and reconcile read both, whatever this says.
    #[arg(
        id = "lake-format",
        long = "lake-format",
        env = "NRT_LAKE_FORMAT",
        value_enum,
        default_value = "jsonl"
    )]
    pub lake_format: crate::lake::key::Format,
}

/// The table records go to and how nrt makes it: shared by `run`, `replay` and `reconcile`.
#[derive(Debug, Clone, clap::Args)]
pub struct TableArgs {
    /// ClickHouse table of the typed rows (in --clickhouse-database). `{field:NAME}` in it makes a table
    /// per value of the record's field `NAME` (one per tenant: `events_{field:tenant}`), each made from
    /// the template table that follows the registry (`events__template`).
    #[arg(
        id = "clickhouse-table",
        long = "clickhouse-table",
        visible_alias = "table",
        env = "NRT_CLICKHOUSE_TABLE",
        default_value = "events_raw"
    )]
    pub clickhouse_table: String,
    /// What identifies a record in a table nrt creates (its ReplacingMergeTree key): `coordinates`
    /// (the Kafka partition and offset: retries and replays collapse, for any record) or the
    /// comma-separated fields the producers guarantee unique per record (never null). A table that
    /// exists keeps its own key; the events table is made by its migrations.
    #[arg(
        id = "table-key",
        long = "table-key",
        env = "NRT_TABLE_KEY",
        default_value = "coordinates"
    )]
    pub table_key: String,
    /// The timestamp field naming a record's event time: its `dt=/hour=` in the lake and the month
    /// partition of a table nrt creates. Default: the schema's first timestamp field, else the
    /// ingestion time.
    #[arg(id = "event-time-field", long = "event-time-field", env = "NRT_EVENT_TIME_FIELD")]
    pub event_time_field: Option<String>,
}

impl TableArgs {
    /// The table records go to, as `NRT_CLICKHOUSE_TABLE`, `NRT_TABLE_KEY` and `NRT_EVENT_TIME_FIELD` say.
    pub fn table(&self, database: &str) -> crate::clickhouse::follow::Table {
        use crate::clickhouse::table::Key;
        let key = match self.table_key.as_str() {
            "coordinates" => Key::Coordinates,
            fields => Key::Fields(fields.split(',').map(|f| f.trim().to_owned()).collect()),
        };
        let route = self.route();
        crate::clickhouse::follow::Table {
            database: database.to_owned(),
            table: route.as_ref().map_or_else(|| self.clickhouse_table.clone(), |r| r.template()),
            key,
            time: self.event_time_field.clone(),
            route,
        }
    }

    /// The field whose value names each record's table (`{field:NAME}` in the table's name), if any.
    pub fn route(&self) -> Option<crate::clickhouse::route::Route> {
        crate::clickhouse::route::Route::parse(&self.clickhouse_table).ok().flatten()
    }

    /// Checks what clap's types cannot, naming the variable at fault.
    pub fn validate(&self) -> Result<(), SettingError> {
        if !self.table_key.split(',').all(|f| is_plain_name(f.trim())) {
            return Err(invalid(
                "NRT_TABLE_KEY / --table-key",
                format!("'{}' is not `coordinates` or a comma-separated list of field names", self.table_key),
            ));
        }
        if let Some(field) = self.event_time_field.as_deref().filter(|f| !is_plain_name(f)) {
            return Err(invalid(
                "NRT_EVENT_TIME_FIELD / --event-time-field",
                format!("'{field}' is not a field name"),
            ));
        }
        const TABLE: &str = "NRT_CLICKHOUSE_TABLE / --clickhouse-table";
        let route = crate::clickhouse::route::Route::parse(&self.clickhouse_table).map_err(|e| invalid(TABLE, e))?;
        if route.is_none() && !is_plain_name(&self.clickhouse_table) {
            return Err(invalid(
                TABLE,
                format!("'{}' is not a plain table name", self.clickhouse_table),
            ));
        }
        Ok(())
    }
}

impl PipelineConfig {
    /// Takes the settings of the process from `process` (the same for every pipeline of a file).
    pub fn take_process_settings(&mut self, process: &PipelineConfig) {
        self.max_inflight_bytes = process.max_inflight_bytes;
        self.revoke_timeout_ms = process.revoke_timeout_ms;
        self.shutdown_timeout_ms = process.shutdown_timeout_ms;
        self.log_summary_secs = process.log_summary_secs;
        self.dashboards_url = process.dashboards_url.clone();
        self.admin_addr = process.admin_addr.clone();
        self.admin_token = process.admin_token.clone();
    }

    /// The dead-letter topic: the configured one, or `<topic>.dlq`.
    pub fn dead_letter_topic(&self) -> String {
        if self.dlq_topic.is_empty() {
            format!("{}.dlq", self.topic)
        } else {
            self.dlq_topic.clone()
        }
    }

    /// The producer's `transactional.id`: the configured one, or `nrt-<topic>-<hostname>` (unique per
    /// container, so `docker compose --scale` replicas never fence each other).
    pub fn transactional_id(&self) -> String {
        if !self.transactional_id.is_empty() {
            return self.transactional_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("nrt-{}-{host}", self.topic)
    }

    /// The producer's schema text: `NRT_SCHEMA_FILE`'s, or `events.v1`.
    pub fn producer_schema(&self) -> Result<String, SettingError> {
        match &self.schema_file {
            Some(path) => read_schema("NRT_SCHEMA_FILE / --schema-file", path),
            None => Ok(crate::event::SCHEMA_V1.to_owned()),
        }
    }

    /// Checks what clap's types cannot, naming the variable at fault.
    pub fn validate(&self) -> Result<(), SettingError> {
        let schema = self.producer_schema()?;
        if self.subject_strategy != crate::registry::SubjectStrategy::Topic {
            apache_avro::Schema::parse_str(&schema)
                .map_err(|e| e.to_string())
                .and_then(|parsed| self.subject_strategy.subject(&self.topic, &parsed).map_err(|e| e.to_string()))
                .map_err(|e| invalid("NRT_SUBJECT_STRATEGY / --subject-strategy", e))?;
        }
        self.table.validate()?;
        let topic_ok = !self.topic.is_empty()
            && self.topic.len() <= 249
            && self
                .topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !topic_ok {
            return Err(invalid(
                "NRT_TOPIC / --topic",
                format!("'{}' is not a valid Kafka topic name", self.topic),
            ));
        }
        if self.group_id.is_empty() {
            return Err(invalid("NRT_GROUP_ID / --group-id", "must not be empty"));
        }
        if !self.mock_api_url.starts_with("http://") && !self.mock_api_url.starts_with("https://") {
            return Err(invalid(
                "NRT_MOCK_API_URL / --mock-api-url",
                format!("'{}' is not an http(s) URL", self.mock_api_url),
            ));
        }
        if self.admin_addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "NRT_ADMIN_ADDR / --admin-addr",
                format!("'{}' is not an address like 127.0.0.1:9180", self.admin_addr),
            ));
        }
        Ok(())
    }
}

/// An Avro schema file's text, checked to parse; errors name the setting and the file.
pub fn read_schema(setting: &'static str, path: &std::path::Path) -> Result<String, SettingError> {
    let text = std::fs::read_to_string(path).map_err(|e| SettingError::Unreadable {
        setting,
        path: path.to_owned(),
        error: e.to_string(),
    })?;
    apache_avro::Schema::parse_str(&text).map_err(|e| SettingError::NotAvro {
        setting,
        path: path.to_owned(),
        error: e.to_string(),
    })?;
    Ok(text)
}
