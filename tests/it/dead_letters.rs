//! Poison records: 10,000 undecodable records among 100,000 good events. Exactly the poison lands in the
//! dead-letter topic (with headers saying why and from where), every good event lands in both sinks,
//! and the consumer's lag returns to 0: no partition is stuck.
#![cfg(feature = "integration")]

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Names, NrtProcess};
use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

const GOOD: u64 = 100_000;
const POISON: u64 = 10_000;

/// Four kinds of poison, as a broken or hostile producer would write them.
fn poison(i: u64, schema_id: u32) -> (Vec<u8>, &'static str) {
    match i % 4 {
        0 => (format!("not avro at all {i}").into_bytes(), "bad_magic"),
        1 => (vec![0, 0, 0], "too_short"),
        2 => (
            [&[0u8][..], &999_999u32.to_be_bytes(), &[2, 4, 6]].concat(),
            "unknown_schema",
        ),
        // The right schema id, then an event_id string cut short: corrupt Avro.
        _ => (
            [&[0u8][..], &schema_id.to_be_bytes(), &[72, b'6', b'f']].concat(),
            "corrupt",
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_goes_to_the_dead_letter_topic_and_nothing_else_does() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("dlq");
    let dlq_topic = format!("{}.dlq", names.topic);
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, 3, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The id the pipeline's encoder will get for the same schema (registering is idempotent).
    let registry = nrt_pipeline::registry::RegistryClient::new(&cfg.registry, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    let schema_id = registry
        .register(&format!("{}-value", names.topic), nrt_pipeline::event::SCHEMA_V1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let mock = common::spawn_mock(21, GOOD, 1_767_225_600_000);
    let pipeline = NrtProcess::spawn(&["run", "--role", "all"], &names.env(&mock.url));
    let admin = pipeline.url.clone();

    // Poison interleaved with the good stream, in ten waves.
    let producer: FutureProducer = nrt_pipeline::kafka::producer_config(&cfg.kafka)
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for wave in 0..10 {
        let batch: Vec<(Vec<u8>, &str)> = (0..POISON / 10)
            .map(|i| poison(wave * 1000 + i, schema_id))
            .collect();
        for (_, kind) in &batch {
            *kinds.entry(kind).or_default() += 1;
        }
        let sends = batch.iter().enumerate().map(|(i, (payload, _))| {
            let key = format!("poison-{wave}-{i}");
            let producer = &producer;
            let topic = &names.topic;
            async move {
                producer
                    .send(
                        FutureRecord::to(topic).key(&key).payload(payload),
                        Duration::from_secs(30),
                    )
                    .await
            }
        });
        for r in join_all(sends).await {
            r.unwrap_or_else(|(e, _)| panic!("producing poison: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    common::wait_for(240, "every good event in ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? == GOOD).then_some(())
    })
    .await;
    common::wait_for(60, "every poison record dead-lettered", || async {
        (common::metric(&admin, "nrt_dead_letters_total").await? as u64 == POISON).then_some(())
    })
    .await;
    let lines = common::wait_for(60, "every good event in MinIO", || async {
        let lines = common::minio_lines(&cfg, &names.prefix).await;
        (lines.len() as u64 >= GOOD).then_some(lines)
    })
    .await;
    assert_eq!(lines.len() as u64, GOOD);
    for (kind, n) in &kinds {
        let sample = format!("nrt_decode_errors_total{{kind=\"{kind}\"}}");
        assert_eq!(common::metric(&admin, &sample).await, Some(*n as f64), "{sample}");
    }

    // The dead-letter topic holds exactly the poison: count by watermarks, then read a few back.
    let watcher: BaseConsumer =
        nrt_pipeline::kafka::consumer_config(&cfg.kafka, &common::unique("nrt-test-dlq-read-"))
            .and_then(|c| c.create())
            .unwrap_or_else(|e| panic!("{e}"));
    let mut in_dlq = 0;
    for p in 0..3 {
        let (low, high) = watcher
            .fetch_watermarks(&dlq_topic, p, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("watermarks of {dlq_topic}: {e}"));
        in_dlq += high - low;
    }
    assert_eq!(in_dlq as u64, POISON, "records in {dlq_topic}");
    let reader: StreamConsumer =
        nrt_pipeline::kafka::consumer_config(&cfg.kafka, &common::unique("nrt-test-dlq-"))
            .and_then(|c| c.create())
            .unwrap_or_else(|e| panic!("{e}"));
    reader.subscribe(&[&dlq_topic]).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..20 {
        let msg = tokio::time::timeout(Duration::from_secs(30), reader.recv())
            .await
            .unwrap_or_else(|_| panic!("no record in {dlq_topic}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let headers = common::headers(&msg);
        assert_eq!(
            headers.get("nrt.original.topic"),
            Some(&names.topic),
            "{headers:?}"
        );
        assert!(
            kinds.contains_key(headers.get("nrt.error.kind").map(String::as_str).unwrap_or("?")),
            "{headers:?}"
        );
        assert!(
            headers
                .get("nrt.original.offset")
                .is_some_and(|o| o.parse::<i64>().is_ok()),
            "{headers:?}"
        );
        assert!(
            headers.get("nrt.error.message").is_some_and(|m| !m.is_empty()),
            "{headers:?}"
        );
        assert!(
            msg.key().is_some_and(|k| k.starts_with(b"poison-")),
            "the original key is kept"
        );
    }

    // No partition is stuck: the consumer's lag (librdkafka statistics, every 5 s) returns to 0.
    common::wait_for(60, "consumer lag back to 0", || async {
        let text = reqwest::get(format!("{admin}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let lags: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("nrt_consumer_lag{") && l.contains(&names.topic))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (lags.len() == 3 && lags.iter().all(|l| *l == 0.0)).then_some(())
    })
    .await;
    println!("dead letters: {POISON} poison ({kinds:?}) among {GOOD} good events: {POISON} in {dlq_topic}, {GOOD} landed");
}

/// Poison records of every size up to the broker's limit (1,048,588 bytes per record batch, Kafka's
/// default `max.message.bytes`), on a one-partition topic among good events: each one is dead-lettered
/// (whole when it fits with its headers, else cut to fit and saying so) and the partition moves on.
#[tokio::test(flavor = "multi_thread")]
async fn poison_of_any_size_the_broker_takes_never_stalls_its_partition() {
    const EVENTS: u64 = 20_000;
    const SIZES: [usize; 6] = [10_000, 500_000, 999_000, 1_000_100, 1_040_000, 1_048_000];
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("dlqsize");
    let dlq_topic = format!("{}.dlq", names.topic);
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, 1, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let limit = nrt_pipeline::kafka::topic_max_message_bytes(&cfg.kafka, &names.topic)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(limit, Some(1_048_588), "the broker's default record batch limit");

    let mock = common::spawn_mock_at(23, EVENTS, 1_767_225_600_000, Some(4_000));
    let mut pipeline = NrtProcess::spawn(&["run", "--role", "all"], &names.env(&mock.url));
    let admin = pipeline.url.clone();
    common::wait_for(60, "good events before the poison", || async {
        (common::metric(&admin, "nrt_events_published_total").await? >= 2_000.0).then_some(())
    })
    .await;
    // An uncompressed producer that may write records as large as the broker takes.
    let producer: FutureProducer = nrt_pipeline::kafka::producer_config(&cfg.kafka)
        .and_then(|mut c| {
            c.set("message.max.bytes", "1048588")
                .set("compression.type", "none");
            c.create()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    for (i, size) in SIZES.iter().enumerate() {
        let payload: Vec<u8> = (0..*size).map(|b| if b == 0 { b'x' } else { b as u8 }).collect();
        let key = format!("poison-{i}");
        producer
            .send(
                FutureRecord::to(&names.topic).key(&key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("producing a poison record of {size} bytes: {e}"));
    }

    common::wait_for(240, "every good event in ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? == EVENTS).then_some(())
    })
    .await;
    common::wait_for(60, "every poison record dead-lettered", || async {
        (common::metric(&admin, "nrt_dead_letters_total").await? as usize == SIZES.len()).then_some(())
    })
    .await;
    let lines = common::landed(&cfg, &names, EVENTS).await;
    assert_eq!(lines.len() as u64, EVENTS);
    common::wait_for(60, "every record committed", || async {
        (common::uncommitted_records(&cfg, &names) == 0).then_some(())
    })
    .await;

    let mut letters: Vec<(usize, BTreeMap<String, String>)> = common::topic_messages(&cfg, &dlq_topic)
        .iter()
        .map(|m| (m.payload().map_or(0, <[u8]>::len), common::headers(m)))
        .collect();
    letters.sort_by_key(|(_, h)| h.get("nrt.original.offset").and_then(|o| o.parse::<i64>().ok()));
    assert_eq!(letters.len(), SIZES.len(), "records in {dlq_topic}");
    let mut cut = 0;
    for ((len, headers), size) in letters.iter().zip(SIZES) {
        assert_eq!(
            headers.get("nrt.error.kind").map(String::as_str),
            Some("bad_magic"),
            "{headers:?}"
        );
        match headers.get("nrt.payload.truncated") {
            None => assert_eq!(*len, size, "a letter that fits is whole"),
            Some(_) => {
                cut += 1;
                assert_eq!(
                    headers.get("nrt.original.size"),
                    Some(&size.to_string()),
                    "{headers:?}"
                );
                assert!(*len < size && *len > size - 4_096, "cut to {len} of {size}");
            }
        }
    }
    assert_eq!(
        cut, 1,
        "only the record at the broker's limit needs cutting: {letters:?}"
    );
    assert_eq!(pipeline.terminate(), Some(0));
    println!(
        "dead letters by size: poison of {SIZES:?} bytes among {EVENTS} good events on one partition: \
         {EVENTS} landed, {} dead letters ({cut} cut to fit, {} bytes of {})",
        letters.len(),
        letters.last().map_or(0, |l| l.0),
        SIZES[SIZES.len() - 1]
    );
}
