//! MinioWriter: one PutObject of JSONL per batch, under a key that is a function of the batch alone
//! (partition, first offset, first event's time). The object is created only if the key is free
//! (`If-None-Match: *`) and carries its offset range as metadata; when the key is taken (the batch was
//! written before a crash, or by the partition's former owner), nothing is overwritten and the writer
//! answers with the range the existing object covers, for the Batcher to reuse.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix::prelude::*;

use super::inflight::Inflight;
use super::messages::{Batch, Failure, SinkAck, SinkError, WriteBatch};
use super::Shared;
use crate::lake::{self, offsets};
use crate::s3::{ObjectStore, PutOutcome, S3Error};

pub const NAME: &str = "minio_writer";

pub struct MinioWriter {
    store: ObjectStore,
    prefix: String,
    bucket_ready: bool,
    /// The consumer's budget: a body counts in it while it is being written.
    inflight: Arc<Inflight>,
    shared: Shared,
}

impl MinioWriter {
    pub fn new(store: ObjectStore, prefix: String, inflight: Arc<Inflight>, shared: Shared) -> Self {
        MinioWriter {
            store,
            prefix,
            bucket_ready: false,
            inflight,
            shared,
        }
    }
}

/// `{prefix}dt=YYYY-MM-DD/hour=HH/events_YYYYMMDD_HHMMSS_p{partition}_o{first offset}.jsonl`, the time
/// being the first event's `created_at` (not the wall clock, which would differ on replay). None for a
/// batch without events (nothing to write) or whose first time has no calendar date (events are
/// validated against `Millis::SINKABLE` before they get here, so that is a bug, answered as an error).
pub fn object_key(prefix: &str, batch: &Batch) -> Option<String> {
    let (_, first) = batch.events.first()?;
    let t = first.created_at.to_datetime()?;
    Some(format!(
        "{prefix}dt={}/hour={}/events_{}_p{}_o{}.jsonl",
        t.format("%Y-%m-%d"),
        t.format("%H"),
        t.format("%Y%m%d_%H%M%S"),
        batch.partition,
        batch.first_offset
    ))
}

/// One JSON event per line, in offset order.
pub fn jsonl(batch: &Batch) -> Vec<u8> {
    let mut body = Vec::with_capacity(batch.events.len() * 192);
    for (_, event) in &batch.events {
        event.write_json(&mut body);
        body.push(b'\n');
    }
    body
}

/// The object metadata that records which range of which partition an object holds, the offset of
/// every line, and when it was ingested: what `nrt replay` needs to give back the rows ClickHouse had.
/// An offset list too long for the metadata (S3 allows 2 KB in all) is returned apart, for a sidecar.
fn object_meta(batch: &Batch) -> (BTreeMap<&'static str, String>, Option<String>) {
    let breaks = offsets::encode(batch.events.iter().map(|(o, _)| *o));
    let mut meta = BTreeMap::from([
        ("nrt-topic", batch.topic.clone()),
        ("nrt-partition", batch.partition.to_string()),
        ("nrt-first-offset", batch.first_offset.to_string()),
        ("nrt-last-offset", batch.last_offset.to_string()),
        ("nrt-events", batch.events.len().to_string()),
        ("nrt-ingested-at", batch.ingested_at.0.to_string()),
    ]);
    if breaks.len() <= offsets::METADATA_LIMIT {
        meta.insert("nrt-offsets", breaks);
        (meta, None)
    } else {
        meta.insert("nrt-offsets-sidecar", "1".into());
        (meta, Some(breaks))
    }
}

/// What to do about an object already under the batch's key, from its metadata.
fn existing(batch: &Batch, key: &str, meta: &HashMap<String, String>) -> Result<Option<SinkAck>, SinkError> {
    let field = |name: &str| meta.get(name).map(String::as_str);
    let (Some(topic), Some(partition), Some(first), Some(last)) = (
        field("nrt-topic"),
        field("nrt-partition"),
        field("nrt-first-offset"),
        field("nrt-last-offset"),
    ) else {
        // Written before objects carried their range: overwriting is what the old layout did.
        return Ok(None);
    };
    let same_start = topic == batch.topic
        && partition.parse() == Ok(batch.partition)
        && first.parse() == Ok(batch.first_offset);
    match (same_start, last.parse::<i64>()) {
        (true, Ok(last_offset)) if last_offset >= batch.first_offset => Ok(Some(SinkAck::Covered { last_offset })),
        _ => Err(SinkError {
            sink: "minio",
            message: format!(
                "{key} exists and holds {topic} p{partition} o{first}..{last}, not a batch of {} p{} o{}: \
                 give each topic its own NRT_S3_PREFIX",
                batch.topic, batch.partition, batch.first_offset
            ),
            failure: Failure::Misconfigured,
        }),
    }
}

fn sink_error(e: S3Error) -> SinkError {
    SinkError {
        sink: "minio",
        // S3 takes any bytes: a refusal (403, missing bucket, …) is about the setup, not the data.
        failure: match e.is_transient() {
            true => Failure::Transient,
            false => Failure::Misconfigured,
        },
        message: e.to_string(),
    }
}

impl Actor for MinioWriter {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.shared.health.running(NAME);
    }
}

impl Supervised for MinioWriter {}

impl Handler<WriteBatch> for MinioWriter {
    type Result = ResponseActFuture<Self, Result<SinkAck, SinkError>>;

    fn handle(&mut self, WriteBatch(batch): WriteBatch, _: &mut Self::Context) -> Self::Result {
        if batch.events.is_empty() {
            // Nothing decodable in the range (all of it dead-lettered): no object to write.
            return Box::pin(fut::ready(Ok(SinkAck::Written)));
        }
        let prepared = object_key(&self.prefix, &batch)
            .ok_or_else(|| "the first event's time has no calendar date".to_owned())
            .map(|key| (key, jsonl(&batch)));
        let (key, body) = match prepared {
            Ok(kb) => kb,
            Err(e) => {
                let err = SinkError {
                    sink: "minio",
                    message: format!("cannot write batch p{} o{}: {e}", batch.partition, batch.first_offset),
                    failure: Failure::Misconfigured,
                };
                return Box::pin(fut::ready(Err(err)));
            }
        };
        let (store, need_bucket, bytes, events) = (
            self.store.clone(),
            !self.bucket_ready,
            body.len(),
            batch.events.len(),
        );
        let started = std::time::Instant::now();
        let held = self.inflight.hold(body.capacity());
        let write = async move {
            let _held = held;
            if need_bucket {
                store.ensure_bucket().await.map_err(sink_error)?;
            }
            let (meta, sidecar) = object_meta(&batch);
            if let Some(breaks) = sidecar {
                // Before the object: an object whose metadata points at a sidecar always has one.
                store
                    .put(&lake::sidecar_key(&key), breaks.into_bytes(), "text/plain")
                    .await
                    .map_err(sink_error)?;
            }
            let created = store
                .put_if_absent(&key, body, "application/x-ndjson", &meta)
                .await
                .map_err(sink_error)?;
            match created {
                PutOutcome::Created => Ok(SinkAck::Written),
                PutOutcome::Exists(found) => match existing(&batch, &key, &found)? {
                    Some(ack) => Ok(ack),
                    None => {
                        log::warn!("{NAME}: {key} has no offset metadata (an older layout): overwriting it");
                        store
                            .put(&key, jsonl(&batch), "application/x-ndjson")
                            .await
                            .map(|()| SinkAck::Written)
                            .map_err(sink_error)
                    }
                },
            }
        };
        Box::pin(write.into_actor(self).map(move |res, act, _| {
            let m = &act.shared.metrics;
            match &res {
                Ok(ack) => {
                    act.bucket_ready = true;
                    if *ack == SinkAck::Written {
                        m.events_written
                            .with_label_values(&["minio"])
                            .inc_by(events as u64);
                        m.sink_bytes.with_label_values(&["minio"]).inc_by(bytes as u64);
                        m.batch_events
                            .with_label_values(&["minio"])
                            .observe(events as f64);
                    }
                    m.flush_seconds
                        .with_label_values(&["minio"])
                        .observe(started.elapsed().as_secs_f64());
                    act.shared.health.running(NAME);
                }
                Err(e) => {
                    m.sink_errors.with_label_values(&["minio"]).inc();
                    act.shared.health.error(NAME, e.to_string());
                }
            }
            res
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: i64, last: i64) -> Batch {
        Batch {
            topic: "events.v1".into(),
            partition: 2,
            epoch: 1,
            first_offset: first,
            last_offset: last,
            events: Vec::new(),
            bytes: 0,
            ingested_at: crate::event::Millis(1_795_771_800_000),
        }
    }

    #[test]
    fn an_existing_object_is_reused_only_when_it_starts_where_the_batch_does() {
        let b = batch(100, 140);
        let meta: HashMap<String, String> = object_meta(&batch(100, 199))
            .0
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(
            existing(&b, "k", &meta).ok(),
            Some(Some(SinkAck::Covered { last_offset: 199 }))
        );
        assert_eq!(existing(&b, "k", &HashMap::new()).ok(), Some(None), "older layout");
        let mut other_topic = meta.clone();
        other_topic.insert("nrt-topic".into(), "other".into());
        let refused = existing(&b, "k", &other_topic).map_err(|e| e.failure);
        assert_eq!(refused, Err(Failure::Misconfigured));
    }

    /// What replay reads back is what was written: partition, every line's offset, ingestion time;
    /// from the metadata, or from a sidecar when the offsets do not fit.
    #[test]
    fn the_metadata_gives_back_every_lines_origin() {
        for gaps in [3, 1_000] {
            let mut b = batch(100, 0);
            let mut o = 100;
            for i in 0..3_000u128 {
                o += if i % gaps as u128 == 0 { 2 } else { 1 };
                let e = crate::event::Event {
                    event_id: uuid::Uuid::from_u128(i),
                    kind: "view".into(),
                    user_id: 1,
                    amount: crate::event::Money(0),
                    currency: "EUR".into(),
                    created_at: crate::event::Millis(1_795_771_800_000),
                    extra: None,
                };
                b.events.push((o, e));
            }
            b.first_offset = b.events[0].0;
            let (meta, sidecar) = object_meta(&b);
            let size: usize = meta.iter().map(|(k, v)| "x-amz-meta-".len() + k.len() + v.len()).sum();
            assert!(size <= 2_048, "{size} bytes of metadata");
            assert_eq!(sidecar.is_some(), gaps == 3, "sidecar for {gaps}");
            let meta: HashMap<String, String> = meta.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            assert_eq!(lake::Origin::in_sidecar(&meta), sidecar.is_some());
            let origin = lake::Origin::of(&meta, sidecar.as_deref(), b.events.len());
            let offsets: Vec<i64> = b.events.iter().map(|(o, _)| *o).collect();
            assert_eq!(
                origin,
                Ok(lake::Origin {
                    partition: 2,
                    offsets,
                    ingested_at: Some(crate::event::Millis(1_795_771_800_000))
                })
            );
        }
    }
}
