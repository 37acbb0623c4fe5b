//! rdkafka against the real broker: an idempotent producer, then a consumer group that stores offsets
//! by hand and commits them, and a second consumer that sees exactly those committed offsets.
#![cfg(feature = "integration")]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use nrt_pipeline::kafka::{consumer_config, ensure_topic, producer_config};

const RECORDS: usize = 300;
const PARTITIONS: i32 = 3;

#[tokio::test]
async fn produce_then_consume_in_a_group_with_committed_offsets() {
    let cfg = common::services();
    common::require(common::Service::Kafka, &cfg).await;
    let topic = common::unique("nrt-test-smoke-");
    let group = common::unique("nrt-test-group-");
    ensure_topic(&cfg.kafka, &topic, PARTITIONS, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("creating {topic}: {e}"));
    // Creating an existing topic again is not an error.
    ensure_topic(&cfg.kafka, &topic, PARTITIONS, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("re-creating {topic}: {e}"));

    let producer: FutureProducer = producer_config(&cfg.kafka)
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("producer: {e}"));
    let payloads: Vec<String> = (0..RECORDS).map(|i| format!("value-{i}")).collect();
    let sends = payloads.iter().enumerate().map(|(i, p)| {
        let key = format!("key-{i}");
        let producer = &producer;
        let topic = &topic;
        async move {
            producer
                .send(
                    FutureRecord::to(topic).key(&key).payload(p),
                    Duration::from_secs(10),
                )
                .await
        }
    });
    // Highest acked offset + 1 per partition: what the group must have committed in the end.
    let mut expected_next: BTreeMap<i32, i64> = BTreeMap::new();
    for delivery in join_all(sends).await {
        let d = delivery.unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
        let next = expected_next.entry(d.partition).or_default();
        *next = (*next).max(d.offset + 1);
    }
    assert_eq!(expected_next.values().sum::<i64>(), RECORDS as i64);

    let consumer: StreamConsumer = consumer_config(&cfg.kafka, &group)
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("consumer: {e}"));
    consumer
        .subscribe(&[&topic])
        .unwrap_or_else(|e| panic!("subscribe: {e}"));
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < RECORDS {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {RECORDS} records arrived within 60 s", seen.len()))
            .unwrap_or_else(|e| panic!("consume: {e}"));
        let payload = String::from_utf8(msg.payload().unwrap_or_default().to_vec())
            .unwrap_or_else(|e| panic!("payload is not UTF-8: {e}"));
        assert!(seen.insert(payload.clone()), "record delivered twice: {payload}");
        consumer
            .store_offset_from_message(&msg)
            .unwrap_or_else(|e| panic!("store offset: {e}"));
    }
    assert_eq!(seen, payloads.iter().cloned().collect::<BTreeSet<_>>());
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .unwrap_or_else(|e| panic!("commit: {e}"));

    // A fresh member of the same group reads the committed offsets back from the broker.
    let checker: StreamConsumer = consumer_config(&cfg.kafka, &group)
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("checker: {e}"));
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(&topic, p);
    }
    let committed = checker
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("committed offsets: {e}"));
    let mut got: BTreeMap<i32, i64> = BTreeMap::new();
    for el in committed.elements() {
        if let Offset::Offset(o) = el.offset() {
            got.insert(el.partition(), o);
        }
    }
    expected_next.retain(|_, v| *v > 0);
    assert_eq!(got, expected_next, "committed offsets differ from the acked ones");
}
