//! MinioWriter: one PutObject of JSONL per batch, under a key that is a function of the batch alone
//! (partition, first offset, first event's time), so a batch replayed after a crash overwrites its own
//! object instead of adding a duplicate.

use actix::prelude::*;

use super::messages::{Batch, Failure, SinkError, WriteBatch};
use super::Shared;
use crate::s3::{ObjectStore, S3Error};

pub const NAME: &str = "minio_writer";

pub struct MinioWriter {
    store: ObjectStore,
    prefix: String,
    bucket_ready: bool,
    shared: Shared,
}

impl MinioWriter {
    pub fn new(store: ObjectStore, prefix: String, shared: Shared) -> Self {
        MinioWriter {
            store,
            prefix,
            bucket_ready: false,
            shared,
        }
    }
}

/// `{prefix}dt=YYYY-MM-DD/hour=HH/events_YYYYMMDD_HHMMSS_p{partition}_o{first offset}.jsonl`, the time
/// being the first event's `created_at` (not the wall clock, which would differ on replay).
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
pub fn jsonl(batch: &Batch) -> Result<Vec<u8>, serde_json::Error> {
    let mut body = Vec::with_capacity(batch.events.len() * 192);
    for (_, event) in &batch.events {
        serde_json::to_writer(&mut body, event)?;
        body.push(b'\n');
    }
    Ok(body)
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
    type Result = ResponseActFuture<Self, Result<(), SinkError>>;

    fn handle(&mut self, WriteBatch(batch): WriteBatch, _: &mut Self::Context) -> Self::Result {
        let Some(key) = object_key(&self.prefix, &batch) else {
            // Nothing decodable in the range: no object to write.
            return Box::pin(fut::ready(Ok(())));
        };
        let body = match jsonl(&batch) {
            Ok(b) => b,
            Err(e) => {
                let err = SinkError {
                    sink: "minio",
                    message: format!(
                        "cannot serialize batch p{} o{}: {e}",
                        batch.partition, batch.first_offset
                    ),
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
        let write = async move {
            if need_bucket {
                store.ensure_bucket().await.map_err(sink_error)?;
            }
            store
                .put(&key, body, "application/x-ndjson")
                .await
                .map_err(sink_error)
        };
        Box::pin(write.into_actor(self).map(move |res, act, _| {
            let m = &act.shared.metrics;
            match &res {
                Ok(()) => {
                    act.bucket_ready = true;
                    m.events_written
                        .with_label_values(&["minio"])
                        .inc_by(events as u64);
                    m.sink_bytes.with_label_values(&["minio"]).inc_by(bytes as u64);
                    m.batch_events
                        .with_label_values(&["minio"])
                        .observe(events as f64);
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
