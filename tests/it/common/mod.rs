//! Shared by the integration tests: service addresses (from `.env` and the environment, with the
//! native stack's defaults), a check that fails loudly when a service is missing, and unique names so
//! tests never see each other's topics, groups, buckets or tables.
#![allow(dead_code)] // each test file uses a different part of this module

pub use nrt_pipeline::probes::Service;

use std::time::Duration;

use nrt_pipeline::config::ServicesConfig;
use nrt_pipeline::probes;

pub const START_HINT: &str = "start the real services with `scripts/stack.sh up` (or run `scripts/test.sh`)";

/// The configuration the tests run against. A malformed `.env` fails here, by design. (Also where a
/// test waits for its module's turn: `one_module.rs`.)
#[track_caller]
pub fn services() -> ServicesConfig {
    one_module::enter(std::panic::Location::caller());
    if let Err(e) = dotenvy::dotenv() {
        assert!(e.not_found(), "cannot read .env: {e}");
    }
    match ServicesConfig::from_env() {
        Ok(cfg) => cfg,
        Err(e) => panic!("invalid service configuration in the environment: {e}"),
    }
}

/// Panics with the service name, the endpoint, what went wrong and how to start it, unless the service
/// answers. Integration tests never skip: a missing service is a failure.
pub async fn require(service: Service, cfg: &ServicesConfig) {
    let probe = probes::Probes::new(cfg, None, Duration::from_secs(5))
        .probe(service)
        .await;
    assert!(
        probe.ok,
        "{service} is not reachable at {} ({}): {START_HINT}",
        probe.endpoint, probe.detail
    );
}

/// `require` for each of `services`.
pub async fn require_all(cfg: &ServicesConfig, services: &[Service]) {
    for s in services {
        require(*s, cfg).await;
    }
}

/// `nrt mock-api` on a free port serving `limit` events of the stream seeded with `seed`.
pub fn spawn_mock(seed: u64, limit: u64, epoch_ms: i64) -> NrtProcess {
    spawn_mock_at(seed, limit, epoch_ms, None)
}

/// `spawn_mock`, serving at most `rate` events per second when given.
pub fn spawn_mock_at(seed: u64, limit: u64, epoch_ms: i64, rate: Option<u64>) -> NrtProcess {
    spawn_mock_with(seed, limit, epoch_ms, rate, &[])
}

/// `spawn_mock_at` with more `nrt mock-api` flags (`--extra-fields`).
pub fn spawn_mock_with(
    seed: u64,
    limit: u64,
    epoch_ms: i64,
    rate: Option<u64>,
    flags: &[&str],
) -> NrtProcess {
    let (seed, limit, epoch) = (seed.to_string(), limit.to_string(), epoch_ms.to_string());
    let rate = rate.map(|r| r.to_string());
    let mut args = vec![
        "mock-api",
        "--listen",
        "127.0.0.1:0",
        "--seed",
        &seed,
        "--limit",
        &limit,
        "--epoch-ms",
        &epoch,
    ];
    if let Some(r) = &rate {
        args.extend(["--rate", r]);
    }
    args.extend_from_slice(flags);
    NrtProcess::spawn(&args, &[("RUST_LOG", "warn")])
}

/// Runs `tests/python/<script> BROKERS REGISTRY_URL TOPIC schemas/events.v1.avsc N` (an independent
/// producer on Confluent's Python client, from the venv scripts/test.sh sets up) and returns the JSON it
/// prints.
pub fn python_producer(script: &str, cfg: &ServicesConfig, topic: &str, n: usize) -> serde_json::Value {
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/events.v1.avsc");
    python(
        script,
        &[
            &cfg.kafka.brokers,
            &cfg.registry.url,
            topic,
            schema,
            &n.to_string(),
        ],
    )
}

/// Runs `tests/python/<script> ARGS…` with Confluent's client (the venv scripts/test.sh sets up) and
/// returns the JSON it prints.
pub fn python(script: &str, args: &[&str]) -> serde_json::Value {
    let python = std::env::var("NRT_PYTHON").unwrap_or_else(|_| {
        panic!("NRT_PYTHON is not set: scripts/test.sh installs Confluent's client and sets it")
    });
    let script = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(&python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{script} printed no JSON: {e}"))
}

/// The strings of a JSON array.
pub fn strings(v: &serde_json::Value) -> std::collections::HashSet<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The services every pipeline test needs.
pub const PIPELINE_SERVICES: [Service; 4] = [
    Service::Kafka,
    Service::Registry,
    Service::Minio,
    Service::Clickhouse,
];

/// `POST /chaos` on the mock API: the next `requests` event requests fail as `mode` says.
pub async fn arm_chaos(mock_url: &str, mode: &str, requests: u32, delay_ms: u64) {
    let status = reqwest::Client::new()
        .post(format!("{mock_url}/chaos"))
        .json(&serde_json::json!({"mode": mode, "requests": requests, "delay_ms": delay_ms}))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(status.ok(), Some(200), "arming chaos {mode}");
}

/// GET a JSON document, panicking with the URL on any failure.
pub async fn get_json(url: &str) -> serde_json::Value {
    let resp = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    resp.json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// The event_id of every JSONL line (one entry per line, duplicates kept).
pub fn event_ids(lines: &[(String, String)]) -> Vec<String> {
    lines
        .iter()
        .map(|(key, l)| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{key}: bad line {l}: {e}"));
            v["event_id"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

/// A name no other test run uses: `prefix` + 12 random hex digits (lowercase, valid for topics,
/// groups, buckets and ClickHouse tables alike).
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..12])
}

/// A real `nrt` subprocess that announces its address on stdout ("… listening on http://ADDR").
/// Killed on drop.
pub struct NrtProcess {
    child: std::process::Child,
    pub url: String,
}

impl NrtProcess {
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::spawn_with_stderr(args, envs, std::process::Stdio::inherit())
    }

    /// Like `spawn`, with the process's log (stderr) written to `log`.
    pub fn spawn_logging_to(args: &[&str], envs: &[(&str, &str)], log: &std::path::Path) -> Self {
        let file = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        Self::spawn_with_stderr(args, envs, std::process::Stdio::from(file))
    }

    fn spawn_with_stderr(args: &[&str], envs: &[(&str, &str)], stderr: std::process::Stdio) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nrt"))
            .args(args)
            .envs(envs.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `nrt {}`: {e}", args.join(" ")));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("no stdout from nrt"));
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        let read = reader.read_line(&mut line);
        let url = match (read, line.trim().rsplit_once(' ')) {
            (Ok(n), Some((_, url))) if n > 0 && url.starts_with("http") => url.to_owned(),
            _ => {
                let _ = child.kill();
                panic!(
                    "`nrt {}` did not report its address (stdout: {line:?})",
                    args.join(" ")
                );
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        NrtProcess { child, url }
    }

    /// SIGTERM, then wait (at most 60 s, then SIGKILL). Returns the exit code, if it exited by itself.
    pub fn terminate(&mut self) -> Option<i32> {
        self.signal("TERM");
        let code = self.wait_exit(std::time::Duration::from_secs(60));
        if code.is_none() {
            self.kill();
        }
        code
    }

    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status();
    }

    /// Waits at most `limit` for the process to exit; its exit code if it did.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL: no chance to flush anything that was not already durable.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size now and at its peak (VmRSS, VmHWM), in bytes.
    pub fn rss(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for NrtProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real `nrt registry` process on a free port with its own data directory.
pub struct RegistryProcess {
    process: NrtProcess,
    pub url: String,
    pub data_dir: std::path::PathBuf,
    owns_dir: bool,
}

impl RegistryProcess {
    /// Starts a registry on a fresh, empty data directory (removed on drop).
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("nrt-registry-test-"));
        let mut p = Self::start_in(&dir);
        p.owns_dir = true;
        p
    }

    /// Starts a registry on `dir` (kept on drop), e.g. to restart one on the same data.
    pub fn start_in(dir: &std::path::Path) -> Self {
        let dir_arg = dir.to_string_lossy().into_owned();
        let process = NrtProcess::spawn(
            &["registry", "--listen", "127.0.0.1:0", "--data-dir", &dir_arg],
            &[("RUST_LOG", "warn")],
        );
        RegistryProcess {
            url: process.url.clone(),
            process,
            data_dir: dir.to_owned(),
            owns_dir: false,
        }
    }

    /// SIGKILL; returns the data directory, now owned by the caller.
    pub fn kill(mut self) -> std::path::PathBuf {
        self.process.kill();
        self.owns_dir = false;
        self.data_dir.clone()
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        self.process.kill();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// Polls `check` every 250 ms until it returns `Some`, or panics after `secs` with `what`.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The value of one sample in a Prometheus text exposition (`name{labels}` exactly as printed).
pub async fn metric(admin_url: &str, sample: &str) -> Option<f64> {
    let text = reqwest::get(format!("{admin_url}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Names one pipeline test uses alone: topic, group, MinIO key prefix, ClickHouse table.
pub struct Names {
    pub topic: String,
    pub group: String,
    pub prefix: String,
    pub table: String,
}

pub const TEST_DATABASE: &str = "nrt_test";

impl Names {
    #[track_caller]
    pub fn new(test: &str) -> Self {
        one_module::enter(std::panic::Location::caller());
        let id = unique("");
        Names {
            topic: format!("nrt-test-{test}-{id}"),
            group: format!("nrt-test-{test}-{id}"),
            prefix: format!("test-{test}-{id}/"),
            table: format!("{}_{id}", test.replace('-', "_")),
        }
    }

    /// Environment for `nrt run` against these names (services come from the inherited environment).
    pub fn env<'a>(&'a self, mock_url: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("NRT_TOPIC", &self.topic),
            ("NRT_GROUP_ID", &self.group),
            ("NRT_S3_PREFIX", &self.prefix),
            ("NRT_CLICKHOUSE_DATABASE", TEST_DATABASE),
            ("NRT_CLICKHOUSE_TABLE", &self.table),
            ("NRT_MOCK_API_URL", mock_url),
            ("NRT_ADMIN_ADDR", "127.0.0.1:0"),
            ("NRT_FLUSH_INTERVAL_MS", "300"),
            ("RUST_LOG", "warn"),
        ]
    }
}

/// `SELECT count() FROM t FINAL` (rows after replay duplicates collapse); None if the table is not there yet.
pub async fn clickhouse_count(cfg: &ServicesConfig, table: &str, final_: bool) -> Option<u64> {
    let mut ch = cfg.clickhouse.clone();
    ch.database = TEST_DATABASE.to_owned();
    let client = nrt_pipeline::clickhouse::client(&ch).unwrap_or_else(|e| panic!("{e}"));
    let fin = if final_ { " FINAL" } else { "" };
    client
        .query(&format!("SELECT count() FROM {table}{fin}"))
        .fetch_one::<u64>()
        .await
        .ok()
}

/// Every JSONL line under `prefix` in the configured bucket, with the key of its object (the lake's
/// objects only: not their sidecars or references).
pub async fn minio_lines(cfg: &ServicesConfig, prefix: &str) -> Vec<(String, String)> {
    let store = nrt_pipeline::s3::ObjectStore::new(&cfg.s3).unwrap_or_else(|e| panic!("{e}"));
    let keys = store.list(prefix).await.unwrap_or_default();
    let keys = keys.into_iter().filter(|k| nrt_pipeline::lake::key::is_object(k));
    let mut lines = Vec::new();
    for key in keys {
        let body = store
            .get(&key, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e}"));
        let text = String::from_utf8(body).unwrap_or_else(|e| panic!("{key} is not UTF-8: {e}"));
        lines.extend(text.lines().map(|l| (key.clone(), l.to_owned())));
    }
    lines
}

/// Waits for `events` rows in ClickHouse (`FINAL`) and at least as many JSONL lines in MinIO; returns
/// the lines.
pub async fn landed(cfg: &ServicesConfig, names: &Names, events: u64) -> Vec<(String, String)> {
    wait_for(240, "every event in ClickHouse", || async {
        (clickhouse_count(cfg, &names.table, true).await? == events).then_some(())
    })
    .await;
    wait_for(120, "every event in MinIO", || async {
        let lines = minio_lines(cfg, &names.prefix).await;
        (lines.len() as u64 >= events).then_some(lines)
    })
    .await
}

/// The statements nrt recorded in `schema_changes` for `table` (`client` on the test database).
pub async fn schema_changes(client: &clickhouse::Client, table: &str) -> Vec<String> {
    let sql = format!("SELECT statement FROM schema_changes WHERE table_name = '{table}'");
    client
        .query(&sql)
        .fetch_all()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every event of the seeded stream exactly once in ClickHouse (FINAL) and in MinIO. Returns the
/// number of ClickHouse rows before merging (replayed duplicates not yet collapsed).
pub async fn assert_all_landed_once(
    cfg: &ServicesConfig,
    names: &Names,
    seed: u64,
    epoch_ms: i64,
    events: u64,
) -> u64 {
    let lines = landed(cfg, names, events).await;
    let mut generator = nrt_pipeline::mock_api::Generator::seeded(seed, epoch_ms);
    let expected: std::collections::HashSet<String> = (0..events)
        .map(|_| generator.next_event().event_id.to_string())
        .collect();
    let ids = event_ids(&lines);
    assert_eq!(ids.len() as u64, events, "an event sits in two MinIO objects");
    assert_eq!(
        ids.into_iter().collect::<std::collections::HashSet<_>>(),
        expected,
        "MinIO ids"
    );
    clickhouse_count(cfg, &names.table, false)
        .await
        .unwrap_or_default()
}

/// The group's lag summed over the topic's partitions, in offsets, as Kafka says: high watermark minus
/// committed offset (the whole partition when nothing is committed). Transaction markers take offsets
/// too: for "how many records are left" see `uncommitted_records`.
pub fn kafka_lag(cfg: &ServicesConfig, names: &Names) -> u64 {
    committed_and_high(cfg, names)
        .iter()
        .map(|(_, from, high)| (high - from).max(0) as u64)
        .sum()
}

/// Per partition: its id, the group's committed offset (the low watermark when none) and the high
/// watermark.
fn committed_and_high(cfg: &ServicesConfig, names: &Names) -> Vec<(i32, i64, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Offset;
    let consumer: BaseConsumer = nrt_pipeline::kafka::consumer_config(&cfg.kafka, &names.group)
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("kafka consumer: {e}"));
    let timeout = Duration::from_secs(10);
    let committed = consumer
        .committed_offsets(partitions_of(&consumer, &names.topic), timeout)
        .unwrap_or_else(|e| panic!("committed offsets of {}: {e}", names.group));
    committed
        .elements()
        .iter()
        .map(|e| {
            let (low, high) = consumer
                .fetch_watermarks(&names.topic, e.partition(), timeout)
                .unwrap_or_else(|err| panic!("watermarks: {err}"));
            let from = match e.offset() {
                Offset::Offset(o) => o,
                _ => low,
            };
            (e.partition(), from, high)
        })
        .collect()
}

fn partitions_of(consumer: &rdkafka::consumer::BaseConsumer, topic: &str) -> rdkafka::TopicPartitionList {
    use rdkafka::consumer::Consumer;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("metadata of {topic}: {e}"));
    let mut tpl = rdkafka::TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition(topic, p.id());
        }
    }
    tpl
}

/// The records the group has not committed yet, counted by reading them (`read_committed`, as the
/// pipeline does: aborted records and transaction markers are not records).
pub fn uncommitted_records(cfg: &ServicesConfig, names: &Names) -> u64 {
    count_records(cfg, &names.topic, &committed_and_high(cfg, names))
}

/// Every record of `topic` a `read_committed` consumer sees, counted by reading them.
pub fn topic_records(cfg: &ServicesConfig, topic: &str) -> u64 {
    use rdkafka::consumer::BaseConsumer;
    let consumer: BaseConsumer = nrt_pipeline::kafka::consumer_config(&cfg.kafka, &unique("nrt-test-count-"))
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("kafka consumer: {e}"));
    count_records(cfg, topic, &watermarks(&consumer, topic))
}

/// Records of `topic` from each partition's first offset up to its high watermark (read_committed).
fn count_records(cfg: &ServicesConfig, topic: &str, ranges: &[(i32, i64, i64)]) -> u64 {
    let mut count = 0;
    read_records(cfg, topic, ranges, |_| count += 1);
    count
}

/// The key of every record of `topic` a `read_committed` consumer sees (duplicates kept).
pub fn topic_keys(cfg: &ServicesConfig, topic: &str) -> Vec<String> {
    use rdkafka::message::Message;
    let mut keys = Vec::new();
    visit_topic(cfg, topic, |m| {
        keys.push(String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned())
    });
    keys
}

/// Every record of `topic` a `read_committed` consumer sees, whole (headers included).
pub fn topic_messages(cfg: &ServicesConfig, topic: &str) -> Vec<rdkafka::message::OwnedMessage> {
    let mut messages = Vec::new();
    visit_topic(cfg, topic, |m| messages.push(m.detach()));
    messages
}

fn visit_topic(cfg: &ServicesConfig, topic: &str, seen: impl FnMut(&rdkafka::message::BorrowedMessage<'_>)) {
    use rdkafka::consumer::BaseConsumer;
    let consumer: BaseConsumer = nrt_pipeline::kafka::consumer_config(&cfg.kafka, &unique("nrt-test-count-"))
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("kafka consumer: {e}"));
    read_records(cfg, topic, &watermarks(&consumer, topic), seen);
}

/// Each partition of `topic` with its low and high watermarks.
fn watermarks(consumer: &rdkafka::consumer::BaseConsumer, topic: &str) -> Vec<(i32, i64, i64)> {
    use rdkafka::consumer::Consumer;
    partitions_of(consumer, topic)
        .elements()
        .iter()
        .map(|e| {
            let (low, high) = consumer
                .fetch_watermarks(topic, e.partition(), Duration::from_secs(10))
                .unwrap_or_else(|err| panic!("watermarks: {err}"));
            (e.partition(), low, high)
        })
        .collect()
}

/// Calls `seen` with every record of `topic` in `ranges` (read_committed).
fn read_records(
    cfg: &ServicesConfig,
    topic: &str,
    ranges: &[(i32, i64, i64)],
    mut seen: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let mut tpl = TopicPartitionList::new();
    for (p, from, _) in ranges {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*from))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let reader: BaseConsumer = nrt_pipeline::kafka::consumer_config(&cfg.kafka, &unique("nrt-test-count-"))
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("kafka consumer: {e}"));
    reader.assign(&tpl).unwrap_or_else(|e| panic!("assign: {e}"));
    let done = |reader: &BaseConsumer| {
        let positions = reader.position().unwrap_or_else(|e| panic!("position: {e}"));
        ranges.iter().all(
            |(p, from, high)| match positions.find_partition(topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o >= *high,
                _ => from >= high,
            },
        )
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while !done(&reader) {
        assert!(
            std::time::Instant::now() < deadline,
            "reading the records of {topic} took too long"
        );
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(200)) {
            let high = ranges.iter().find(|(p, _, _)| *p == m.partition()).map(|r| r.2);
            if high.is_some_and(|h| m.offset() < h) {
                seen(&m);
            }
        }
    }
}

/// A Kafka record's headers as text, by key.
pub fn headers(msg: &impl rdkafka::message::Message) -> std::collections::BTreeMap<String, String> {
    use rdkafka::message::Headers;
    msg.headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    let value = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
                    (h.key.to_owned(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `scripts/stack.sh CMD SERVICE` (stop, kill, start one service of the shared stack).
pub fn stack(cmd: &str, service: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/stack.sh");
    let out = std::process::Command::new(script)
        .args([cmd, service])
        .output()
        .unwrap_or_else(|e| panic!("{script} {cmd} {service}: {e}"));
    assert!(
        out.status.success(),
        "stack.sh {cmd} {service} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills a service now (SIGKILL: a crash, not a polite shutdown) and starts it again when dropped, even
/// if the test fails in between.
pub struct Outage(&'static str);

impl Outage {
    pub fn begin(service: &'static str) -> Self {
        stack("kill", service);
        Outage(service)
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        stack("start", self.0);
    }
}

/// Freezes a service now (SIGSTOP: it hangs, holding whatever it was sent) and thaws it when dropped,
/// even if the test fails in between: then it carries on with the requests it held.
pub struct Freeze(&'static str);

impl Freeze {
    pub fn begin(service: &'static str) -> Self {
        stack("freeze", service);
        Freeze(service)
    }
}

impl Drop for Freeze {
    fn drop(&mut self) {
        stack("thaw", self.0);
    }
}

/// Runs a command to its end; a command that cannot start at all is a failed test.
pub fn run(cmd: &mut std::process::Command) -> std::process::Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// A finished command's stdout and stderr, for failure messages.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub mod lake;
mod one_module;
pub mod secure;

/// Puts `objects`, reads each back byte for byte, and checks that listing `prefix` finds exactly the
/// keys under it.
pub async fn s3_round_trip(
    store: &nrt_pipeline::s3::ObjectStore,
    objects: &[(String, Vec<u8>)],
    prefix: &str,
) {
    for (key, body) in objects {
        store
            .put(key, body.clone(), "application/x-ndjson")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for (key, body) in objects {
        let got = store
            .get(key, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&got, body, "{key} did not round-trip");
    }
    let mut listed = store.list(prefix).await.unwrap_or_else(|e| panic!("{e}"));
    listed.sort();
    let mut expected: Vec<String> = objects
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| k.starts_with(prefix))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
}

/// The figures of a stream that landed exactly (`landed_exactly`).
pub struct Landed {
    pub kafka: u64,
    pub clickhouse: u64,
    pub clickhouse_ids: u64,
    pub raw_rows: u64,
    pub minio_lines: u64,
    pub minio_ids: u64,
}

/// Every count agrees with the seeded stream's `events`: Kafka's records (read_committed), ClickHouse
/// rows (FINAL) and distinct ids there, lake lines and distinct ids there; the ids are the stream's.
pub async fn landed_exactly(
    cfg: &ServicesConfig,
    names: &Names,
    seed: u64,
    epoch_ms: i64,
    events: u64,
) -> Landed {
    let kafka = topic_records(cfg, &names.topic);
    assert_eq!(kafka, events, "records in Kafka (read_committed)");
    let raw_rows = assert_all_landed_once(cfg, names, seed, epoch_ms, events).await;
    let mut ch = cfg.clickhouse.clone();
    ch.database = TEST_DATABASE.to_owned();
    let (rows, ch_ids) = nrt_pipeline::clickhouse::client(&ch)
        .unwrap_or_else(|e| panic!("{e}"))
        .query(&format!(
            "SELECT count(), uniqExact(event_id) FROM {} FINAL",
            names.table
        ))
        .fetch_one::<(u64, u64)>()
        .await
        .unwrap_or_else(|e| panic!("counting ClickHouse: {e}"));
    assert_eq!(
        (rows, ch_ids),
        (events, events),
        "ClickHouse rows and distinct ids"
    );
    let lines = minio_lines(cfg, &names.prefix).await;
    let ids: std::collections::HashSet<String> = event_ids(&lines).into_iter().collect();
    assert_eq!(lines.len() as u64, events, "MinIO lines");
    assert_eq!(ids.len() as u64, events, "distinct ids in MinIO");
    Landed {
        kafka,
        clickhouse: rows,
        clickhouse_ids: ch_ids,
        raw_rows,
        minio_lines: lines.len() as u64,
        minio_ids: ids.len() as u64,
    }
}
