//! MinioWriter: one PutObject per batch, JSONL or Parquet (`NRT_LAKE_FORMAT`), under a key that is a
//! function of the batch alone (partition, first offset, first event's time; its extension the
//! format). A batch already in the lake in the other format (written before the pipeline switched) is
//! reused as it is, never written twice. The object is created only if the key is free
//! (`If-None-Match: *`) and carries its offset range as metadata; when the key is taken (the batch was
//! written before a crash, or by the partition's former owner), nothing is overwritten and the writer
//! answers with the range the existing object covers, for the Batcher to reuse. Whatever else an
//! object needs is written before it and never replaced: a reference under each other hour its events
//! are of (`lake::hours`), and a sidecar for an offset list too long for the metadata, named by its
//! content (a second writer's different list gets another name). The body is made from the records'
//! Avro datums when the batch is written, on a blocking thread, and counts in the in-flight budget
//! until the PUT is done with it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use actix::prelude::*;

use crate::actors::inflight::{Held, Inflight};
use crate::actors::messages::{Batch, Failure, SinkAck, SinkError, WriteBatch};
use crate::actors::Shared;
use crate::event::Millis;
use crate::lake::read::SCHEMA_IDS_META;
use crate::lake::key::{self, Format, ObjectKey};
use crate::lake::parquet::read::{COLUMN_SCHEMAS_META, RECORD_SCHEMAS_META};
use crate::lake::{self, hours, offsets, Hour};
use crate::s3::{ObjectStore, PutOutcome, S3Error};

pub const NAME: &str = "minio_writer";

pub struct MinioWriter {
    store: ObjectStore,
    prefix: String,
    format: Format,
    bucket_ready: bool,
    shared: Shared,
    /// The consumer's budget: a Parquet file's columns count in it while they are built.
    inflight: Arc<Inflight>,
}

impl MinioWriter {
    pub fn new(store: ObjectStore, (prefix, format): (String, Format), shared: Shared, inflight: Arc<Inflight>) -> Self {
        MinioWriter {
            store,
            prefix,
            format,
            bucket_ready: false,
            shared,
            inflight,
        }
    }
}

/// The batch's object key (`lake::key::ObjectKey`: under the hour of its first record's event time).
/// None for a batch without records (nothing to write) or whose first time has no calendar date (a
/// time the table cannot hold is dead-lettered before it gets here, so that is a bug, answered as an
/// error).
pub fn object_key(prefix: &str, format: Format, batch: &Batch) -> Option<ObjectKey> {
    let first = batch.records.first()?;
    ObjectKey::new(prefix, Millis(first.time), batch.partition, batch.first_offset, format)
}

/// One JSON record per line, in offset order: the JSONL object of the batch (what `jsonl_body` sends).
pub fn jsonl(batch: &Batch) -> Result<Vec<u8>, crate::record::LineError> {
    let mut out = Vec::with_capacity(batch.records.bytes() * 2);
    batch.records.write_jsonl(&mut out)?;
    Ok(out)
}

/// The batch's lines as the object's body, without a copy, when the records keep their lines (a table
/// routed by a field): their buffer of lines is the JSONL object.
fn kept_lines(batch: &Arc<Batch>) -> bytes::Bytes {
    struct Lines(Arc<Batch>);
    impl AsRef<[u8]> for Lines {
        fn as_ref(&self) -> &[u8] {
            self.0.records.jsonl()
        }
    }
    bytes::Bytes::from_owner(Lines(batch.clone()))
}

/// The batch's lines made from its records' datums (records that keep no line), on a blocking thread.
/// The body counts in the budget until it is dropped, after the write: an estimate while it is made,
/// then its length.
async fn jsonl_body(batch: &Arc<Batch>, inflight: &Arc<Inflight>) -> Result<bytes::Bytes, SinkError> {
    let estimate = inflight.hold(batch.records.bytes() * 2);
    let (batch, inflight) = (batch.clone(), inflight.clone());
    let made = tokio::task::spawn_blocking(move || {
        let out = jsonl(&batch)?;
        let held = inflight.hold(out.len());
        drop(estimate);
        Ok::<_, crate::record::LineError>(bytes::Bytes::from_owner(Body { bytes: out, _held: held }))
    })
    .await;
    match made {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(ours(format!("jsonl: {e}"))),
        Err(e) => Err(ours(format!("jsonl: the thread making the lines failed: {e}"))),
    }
}

/// A body made for the write, counted in the budget while it lives.
struct Body {
    bytes: Vec<u8>,
    _held: Held,
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A failure making a body: the datums were decoded along these plans already, so it is ours, never
/// the data's.
fn ours(message: String) -> SinkError {
    SinkError {
        sink: "minio",
        message,
        failure: Failure::Misconfigured,
    }
}

/// The batch as one Parquet file (`lake::parquet`), built on a blocking thread (a batch of 50,000 events
/// is ~25 ms of CPU: the actor's thread stays free). Its key-value metadata is the object's metadata,
/// with every record's offset and writer schema, so a file copied out of the lake still says what it
/// holds. While it is built, its columns (about the records' bytes again) count in the budget: with
/// every partition's batch encoding at once, the process would otherwise hold up to twice
/// `NRT_MAX_INFLIGHT_BYTES`.
async fn parquet_body(
    batch: &Arc<Batch>,
    meta: &BTreeMap<&'static str, String>,
    inflight: &Arc<Inflight>,
) -> Result<bytes::Bytes, SinkError> {
    let columns = inflight.hold(batch.records.bytes());
    let batch = batch.clone();
    let mut kv: Vec<(&str, String)> = meta.iter().map(|(k, v)| (*k, v.clone())).collect();
    kv.retain(|(k, _)| *k != lake::SIDECAR_META);
    if !kv.iter().any(|(k, _)| *k == "nrt-offsets") {
        kv.push(("nrt-offsets", offsets::encode(batch.first_offset, batch.records.iter().map(|r| r.offset))));
    }
    kv.push((RECORD_SCHEMAS_META, record_schemas(&batch)));
    let merged = batch.records.plans().iter().map(|p| p.schema_id.to_string());
    kv.push((COLUMN_SCHEMAS_META, merged.collect::<Vec<_>>().join(",")));
    let encoded = tokio::task::spawn_blocking(move || {
        // Released when the encoding ends, even if the write waiting for it was dropped meanwhile.
        let _columns = columns;
        let plans = batch.records.plans();
        let avro: Vec<&crate::avro::Plan> = plans.iter().map(|p| &p.plan).collect();
        let records = batch.records.iter().map(|r| {
            let which = plans.iter().position(|p| p.schema_id == r.schema_id).unwrap_or(usize::MAX);
            (which, r.datum)
        });
        crate::lake::parquet::encode_mixed(&avro, (batch.records.len(), records), &kv)
    })
    .await;
    match encoded {
        Ok(Ok(file)) => {
            let held = inflight.hold(file.len());
            Ok(bytes::Bytes::from_owner(Body { bytes: file, _held: held }))
        }
        Ok(Err(e)) => Err(ours(format!("parquet: {e}"))),
        Err(e) => Err(ours(format!("parquet: the encoding thread failed: {e}"))),
    }
}

fn record_schemas(batch: &Batch) -> String {
    let mut runs: Vec<(u32, usize)> = Vec::new();
    for r in batch.records.iter() {
        match runs.last_mut() {
            Some((id, n)) if *id == r.schema_id => *n += 1,
            _ => runs.push((r.schema_id, 1)),
        }
    }
    runs.iter().map(|(id, n)| format!("{id}*{n}")).collect::<Vec<_>>().join(",")
}

/// The hours the batch's records are of (by their own event time).
fn hours_of(batch: &Batch) -> BTreeSet<Hour> {
    let mut hours = BTreeSet::new();
    let mut last = None;
    // Records of a batch mostly share an hour: the set is asked only when it changes.
    for r in batch.records.iter() {
        let hour = Hour::of_millis(r.time);
        if last != Some(hour) {
            last = Some(hour);
            hours.insert(hour);
        }
    }
    hours
}

/// The writer schema ids of the batch's lines, ascending, comma-separated: with the registry, what a
/// reader needs to read every line back exactly.
fn schema_ids(batch: &Batch) -> String {
    let ids: BTreeSet<u32> = batch.records.iter().map(|r| r.schema_id).collect();
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// The object metadata that records which range of which partition an object holds, the offset of
/// every line, when it was ingested and the hours of its events: what `nrt replay` and `nrt reconcile`
/// need. An offset list too long for the metadata (S3 allows 2 KB in all) is returned apart, with the
/// digest that names its sidecar.
fn object_meta(batch: &Batch) -> (BTreeMap<&'static str, String>, Option<(String, String)>) {
    let breaks = offsets::encode(batch.first_offset, batch.records.iter().map(|r| r.offset));
    let mut meta = BTreeMap::from([
        ("nrt-topic", batch.topic.clone()),
        ("nrt-partition", batch.partition.to_string()),
        ("nrt-first-offset", batch.first_offset.to_string()),
        ("nrt-last-offset", batch.last_offset.to_string()),
        ("nrt-events", batch.records.len().to_string()),
        (SCHEMA_IDS_META, schema_ids(batch)),
        ("nrt-ingested-at", batch.ingested_at.0.to_string()),
        (hours::HOURS_META, hours::encode(&hours_of(batch))),
    ]);
    if breaks.len() <= offsets::METADATA_LIMIT {
        meta.insert("nrt-offsets", breaks);
        (meta, None)
    } else {
        let digest = digest(&breaks);
        meta.insert(lake::SIDECAR_META, digest.clone());
        (meta, Some((digest, breaks)))
    }
}

/// 16 hex digits of the SHA-256 of `text`: a name only this content gets.
fn digest(text: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(text.as_bytes());
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// What to do about an object already under the batch's key, from its metadata.
fn existing(batch: &Batch, key: &str, meta: &HashMap<String, String>) -> Result<SinkAck, SinkError> {
    let field = |name: &str| meta.get(name).map(String::as_str);
    let misconfigured = |message: String| SinkError {
        sink: "minio",
        message,
        failure: Failure::Misconfigured,
    };
    let (Some(topic), Some(partition), Some(first), Some(last)) = (
        field("nrt-topic"),
        field("nrt-partition"),
        field("nrt-first-offset"),
        field("nrt-last-offset"),
    ) else {
        // Not an object of ours (or of a layout before objects carried their range): never replaced.
        return Err(misconfigured(format!(
            "{key} exists without the nrt-* metadata of a lake object; move it away (it is never overwritten)"
        )));
    };
    let same_start = topic == batch.topic
        && partition.parse() == Ok(batch.partition)
        && first.parse() == Ok(batch.first_offset);
    match (same_start, last.parse::<i64>()) {
        (true, Ok(last_offset)) if last_offset >= batch.first_offset => Ok(SinkAck::Covered {
            last_offset,
            ingested_at: field("nrt-ingested-at").and_then(|t| t.parse().ok()).map(Millis),
        }),
        _ => Err(misconfigured(format!(
            "{key} exists and holds {topic} p{partition} o{first}..{last}, not a batch of {} p{} o{}: \
             give each topic its own NRT_S3_PREFIX",
            batch.topic, batch.partition, batch.first_offset
        ))),
    }
}

/// The references to `object` under every hour of the batch's events but the object's own, and the
/// sidecar: written before the object (so an object never lacks them), each created once.
async fn write_companions(
    store: &ObjectStore,
    prefix: &str,
    object: &str,
    batch: &Batch,
    sidecar: Option<(String, String)>,
) -> Result<(), S3Error> {
    let own = batch.records.first().map(|r| Hour::of_millis(r.time));
    for hour in hours_of(batch).into_iter().filter(|h| Some(*h) != own) {
        if let Some(reference) = key::reference(prefix, hour, object) {
            let body = object.as_bytes().to_vec();
            store.put_if_absent(&reference, body, "text/plain", &BTreeMap::new()).await?;
        }
    }
    if let Some((digest, breaks)) = sidecar {
        let sidecar_key = key::sidecar(object, Some(&digest));
        store.put_if_absent(&sidecar_key, breaks.into_bytes(), "text/plain", &BTreeMap::new()).await?;
    }
    Ok(())
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
        if batch.records.is_empty() {
            // Nothing decodable in the range (all of it dead-lettered): no object to write.
            return Box::pin(fut::ready(Ok(SinkAck::Written)));
        }
        let Some(key) = object_key(&self.prefix, self.format, &batch) else {
            let err = SinkError {
                sink: "minio",
                message: format!(
                    "cannot write batch p{} o{}: the first event's time has no calendar date",
                    batch.partition, batch.first_offset
                ),
                failure: Failure::Misconfigured,
            };
            return Box::pin(fut::ready(Err(err)));
        };
        let (store, prefix, need_bucket, events, inflight) = (
            self.store.clone(),
            self.prefix.clone(),
            !self.bucket_ready,
            batch.records.len(),
            self.inflight.clone(),
        );
        let started = std::time::Instant::now();
        // Its acknowledgement and the bytes of the body written (none when an object was reused).
        let write = async move {
            if need_bucket {
                store.ensure_bucket().await.map_err(sink_error)?;
            }
            // The batch in the lake in the other format already (the pipeline switched): reused.
            for other in Format::ALL.into_iter().filter(|f| *f != key.format) {
                let other = key.in_format(other).to_string();
                if let Some(found) = store.metadata_if_present(&other).await.map_err(sink_error)? {
                    return existing(&batch, &other, &found).map(|ack| (ack, 0));
                }
            }
            let (format, key) = (key.format, key.to_string());
            let (meta, sidecar) = object_meta(&batch);
            let body = match format {
                Format::Jsonl if !batch.records.jsonl().is_empty() => kept_lines(&batch),
                Format::Jsonl => jsonl_body(&batch, &inflight).await?,
                Format::Parquet => parquet_body(&batch, &meta, &inflight).await?,
            };
            let bytes = body.len();
            write_companions(&store, &prefix, &key, &batch, sidecar).await.map_err(sink_error)?;
            let created = store
                .put_if_absent(&key, body, format.content_type(), &meta)
                .await
                .map_err(sink_error)?;
            match created {
                PutOutcome::Created => Ok((SinkAck::Written, bytes)),
                PutOutcome::Exists(found) => existing(&batch, &key, &found).map(|ack| (ack, 0)),
            }
        };
        Box::pin(write.into_actor(self).map(move |res, act, _| {
            let m = &act.shared.metrics;
            match &res {
                Ok((ack, bytes)) => {
                    act.bucket_ready = true;
                    if *ack == SinkAck::Written {
                        m.events_written
                            .with_label_values(&["minio"])
                            .inc_by(events as u64);
                        m.sink_bytes.with_label_values(&["minio"]).inc_by(*bytes as u64);
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
            res.map(|(ack, _)| ack)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::messages::LakePart;

    fn batch(first: i64, last: i64) -> Batch {
        Batch {
            topic: "events.v1".into(),
            partition: 2,
            epoch: 1,
            first_offset: first,
            last_offset: last,
            records: crate::record::Records::default(),
            dead_letters: Vec::new(),
            bytes: 0,
            ingested_at: Millis(1_795_771_800_000),
            lake: LakePart::Write,
        }
    }

    fn owned(meta: BTreeMap<&'static str, String>) -> HashMap<String, String> {
        meta.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// A body made for the write counts in the budget for as long as it exists (the PUT holds it), and
    /// only its own length once made.
    #[actix::test]
    async fn a_made_body_counts_in_the_budget_until_it_is_dropped() {
        let mut b = batch(0, 99);
        b.records = crate::record::Records::of((0..100).map(|o| (o, 1_795_771_800_000 + o)));
        let (batch, inflight) = (Arc::new(b), Arc::new(Inflight::bounded(1 << 20)));
        let body = jsonl_body(&batch, &inflight).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&body[..], batch.records.jsonl(), "the batch's lines, each with its newline");
        assert_eq!(inflight.bytes(), body.len() as u64, "the body, not the estimate made before it");
        let sent = body.clone();
        drop(body);
        assert_eq!(inflight.bytes(), sent.len() as u64, "held while any handle to it lives");
        drop(sent);
        assert_eq!(inflight.bytes(), 0);
    }

    #[test]
    fn an_existing_object_is_reused_only_when_it_starts_where_the_batch_does() {
        let b = batch(100, 140);
        let meta = owned(object_meta(&batch(100, 199)).0);
        let covered = SinkAck::Covered {
            last_offset: 199,
            ingested_at: Some(Millis(1_795_771_800_000)),
        };
        assert_eq!(existing(&b, "k", &meta).ok(), Some(covered));
        let refused = |meta: &HashMap<String, String>| existing(&b, "k", meta).map_err(|e| e.failure);
        assert_eq!(refused(&HashMap::new()), Err(Failure::Misconfigured), "not ours: never overwritten");
        let mut other_topic = meta.clone();
        other_topic.insert("nrt-topic".into(), "other".into());
        assert_eq!(refused(&other_topic), Err(Failure::Misconfigured));
    }

    /// What replay reads back is what was written: partition, every line's offset (also when the batch
    /// starts with a dead letter), ingestion time; from the metadata, or from a sidecar named by its
    /// content when the offsets do not fit.
    #[test]
    fn the_metadata_gives_back_every_lines_origin() {
        for gaps in [3, 1_000] {
            let mut b = batch(98, 0);
            let mut o = 98;
            let mut offsets = Vec::new();
            for i in 0..3_000 {
                o += if i % gaps == 0 { 2 } else { 1 };
                offsets.push(o);
            }
            b.records = crate::record::Records::of(offsets.iter().map(|&o| (o, 1_795_771_800_000)));
            b.last_offset = o;
            let (meta, sidecar) = object_meta(&b);
            let size: usize = meta.iter().map(|(k, v)| "x-amz-meta-".len() + k.len() + v.len()).sum();
            assert!(size <= 2_048, "{size} bytes of metadata");
            assert_eq!(sidecar.is_some(), gaps == 3, "sidecar for {gaps}");
            let meta = owned(meta);
            let sidecar_key = lake::sidecar_key("k", &meta);
            assert_eq!(sidecar_key, sidecar.as_ref().map(|(d, _)| format!("k.{d}.offsets")));
            let origin = lake::Origin::of(&meta, sidecar.as_ref().map(|(_, text)| text.as_str()), b.records.len());
            assert_eq!(offsets[0], 100, "the first record, 99, went to the dead-letter topic");
            assert_eq!(
                origin,
                Ok(lake::Origin {
                    partition: 2,
                    offsets,
                    ingested_at: Some(Millis(1_795_771_800_000))
                })
            );
        }
    }

    #[test]
    fn a_sidecar_is_named_by_what_it_holds_and_the_hours_are_recorded() {
        let mut long = batch(0, 0);
        let mut short = batch(0, 0);
        let at = |i: i64| (i * 2, 1_795_771_800_000 + i * 3_600_000 / 1_000);
        long.records = crate::record::Records::of((0..3_000).map(at));
        short.records = crate::record::Records::of((0..2_000).map(at));
        let (long_meta, long_sidecar) = object_meta(&long);
        let (_, short_sidecar) = object_meta(&short);
        let name = |s: Option<(String, String)>| s.map(|(digest, _)| digest);
        let (a, b) = (name(long_sidecar), name(short_sidecar));
        assert!(a.is_some() && b.is_some() && a != b, "two writers of one key: two sidecars, {a:?} {b:?}");
        // 3,000 events over three hours from 1_795_771_800_000 (an hour's start plus 30 minutes).
        let hours = hours::decode(&owned(long_meta)).unwrap_or_default();
        let first = Hour::of_millis(1_795_771_800_000);
        assert_eq!(hours.into_iter().collect::<Vec<_>>(), vec![first, Hour(first.0 + 1), Hour(first.0 + 2), Hour(first.0 + 3)]);
    }
}
