//! Messages several actors exchange. Messages with one handler live beside that handler.

use std::sync::Arc;

use actix::{Message, Recipient};

use super::ownership::Epoch;
use crate::event::Millis;
use crate::record::Records;

/// One partition's contiguous offset range `[first_offset, last_offset]` and the records decoded from it
/// (lake lines and ClickHouse rows), read while this member owned the partition under `epoch`. Records
/// that went to the dead-letter topic are inside the range but not in `records`: the range, not the
/// records, decides what gets committed.
#[derive(Debug, Clone)]
pub struct Batch {
    pub topic: String,
    pub partition: i32,
    pub epoch: Epoch,
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: Records,
    /// What the records take in memory (`Records::bytes`), for the in-flight budget.
    pub bytes: usize,
    /// The offsets of its range that went to the dead-letter topic (usually none).
    pub dead_letters: Vec<i64>,
    /// When the Batcher started writing it: the same in both sinks and on every retry (the rows'
    /// `ingested_at`, the object's `nrt-ingested-at`), so a replay from the lake gives the same rows.
    /// Inside an object written earlier, that object's.
    pub ingested_at: Millis,
    pub lake: LakePart,
}

/// What the lake does with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LakePart {
    /// Write its object (or find it written already: `SinkAck::Covered`).
    Write,
    /// An object written earlier (before a crash, or by the partition's former owner) holds this whole
    /// range already, up to offset `until`: nothing is written to the lake. A batch that reaches
    /// `until` is committed; one inside the object is written to ClickHouse and not committed (a
    /// commit inside an object would send the next owner to an offset no key starts at).
    Held { until: i64 },
}

impl Batch {
    /// The part of this batch after `offset`: a range of its own, starting at its first delivered
    /// offset (`first_delivered`).
    pub fn after(&self, offset: i64) -> Batch {
        let records = self.records.select(|r| r.offset > offset);
        let dead_letters: Vec<i64> = self.dead_letters.iter().copied().filter(|o| *o > offset).collect();
        Batch {
            topic: self.topic.clone(),
            partition: self.partition,
            epoch: self.epoch,
            first_offset: first_delivered(&records, &dead_letters, offset),
            last_offset: self.last_offset,
            records,
            dead_letters,
            bytes: 0,
            ingested_at: self.ingested_at,
            lake: LakePart::Write,
        }
    }

    /// The part of this batch up to `offset`, its rows stamped `ingested_at` (an object's, found in
    /// the lake): what ClickHouse must hold so that a replay of that object gives the same rows.
    pub fn up_to(&self, offset: i64, ingested_at: Millis) -> Batch {
        Batch {
            topic: self.topic.clone(),
            last_offset: offset.min(self.last_offset),
            records: self.records.select(|r| r.offset <= offset),
            dead_letters: self.dead_letters.iter().copied().filter(|o| *o <= offset).collect(),
            bytes: 0,
            ingested_at,
            ..*self
        }
    }
}

/// Where a range after `end` starts, holding `records` and `dead_letters` (all after `end`): at the
/// first offset delivered (a record's or a dead letter's), as a batch of a reading not cut at `end`
/// started. `end + 1` may be a transaction marker's offset (taken, never delivered): a key named for
/// it would miss the object another reading wrote for the same records, and the lake would hold them
/// twice. `end + 1` when nothing after `end` was delivered.
pub fn first_delivered(records: &Records, dead_letters: &[i64], end: i64) -> i64 {
    let delivered = records.first().map(|r| r.offset).into_iter().chain(dead_letters.first().copied());
    delivered.min().unwrap_or(end + 1)
}

/// Write this batch (shared by both writers, no copy). Ok means durable in that sink.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<SinkAck, SinkError>")]
pub struct WriteBatch(pub Arc<Batch>);

/// How a sink holds a batch it acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkAck {
    Written,
    /// The lake already has an object for this batch's first offset, written earlier (before a crash,
    /// or by the partition's former owner) and covering `[first_offset, last_offset]`, ingested at
    /// `ingested_at` (None: an object that does not say). It is never overwritten: the batch reuses its
    /// boundaries (see actors.md, "Rebalances").
    Covered {
        last_offset: i64,
        ingested_at: Option<Millis>,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{sink}: {message}")]
pub struct SinkError {
    pub sink: &'static str,
    pub message: String,
    pub failure: Failure,
}

/// What a sink error means for the batch; each writer decides it per error (documented there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Service down, timeout, overload: the same write may succeed later. Retried with backoff.
    Transient,
    /// The sink refuses this data (a row it will never take): the rows at fault are isolated and
    /// dead-lettered, the others written.
    Refused,
    /// The sink refuses every write (credentials, missing table or bucket, schema mismatch): retried with
    /// backoff and shown in `/actors`, never dead-lettered: the operator has to fix it, and no data is lost
    /// meanwhile (the partition waits, then the backlog in Kafka).
    Misconfigured,
}

/// Why a polled batch is not in Kafka yet (the Encoder's and the KafkaPublisher's answer to the
/// Poller, which keeps the batch and sends it again). Its `kind` labels `nrt_poll_errors_total`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// The registry refuses the producer's schema (not valid, not compatible): the operator's to fix;
    /// `/ready` and `nrt_schema_refused` say so.
    #[error("{0}")]
    SchemaRefused(String),
    /// The registry answers, but not to this client (credentials, permissions): registering cannot
    /// succeed until that is fixed. (An unreachable registry is waited out inside the Encoder.)
    #[error("{0}")]
    Registry(String),
    /// The batch could not be encoded along the schema.
    #[error("encoding: {0}")]
    Encode(String),
    /// Kafka did not commit the batch's transaction and the producer could not go on.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The next actor of the chain is not there (stopped, restarting).
    #[error("{actor} unavailable: {why}")]
    ActorGone { actor: &'static str, why: String },
}

impl PublishError {
    /// The label of `nrt_poll_errors_total` (see `metrics::POLL_ERROR_KINDS`).
    pub fn kind(&self) -> &'static str {
        match self {
            PublishError::SchemaRefused(_) => "schema_refused",
            PublishError::Registry(_) => "registry",
            PublishError::Encode(_) => "encode",
            PublishError::Kafka(_) => "kafka",
            PublishError::ActorGone { .. } => "actor_gone",
        }
    }

    pub fn actor_gone(actor: &'static str, why: impl std::fmt::Display) -> Self {
        PublishError::ActorGone {
            actor,
            why: why.to_string(),
        }
    }
}

/// Stop and be restarted by the supervisor (`POST /actors/{name}/restart`): what a stuck actor needs.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Restart;

/// Both sinks have the batch: commit `next_offset` for the partition (sent by the Batcher to the
/// KafkaReader), unless the partition was revoked since the batch was read (`epoch`). The reply comes
/// once the commit is done, so the Batcher never writes a partition's next batch before the previous
/// one is committed.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), CommitError>")]
pub struct Commit {
    pub partition: i32,
    pub epoch: Epoch,
    pub next_offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Final: the partition belongs to another epoch or member now; the batch is abandoned (whoever
    /// owns the partition reads it again from the last commit).
    #[error("partition {partition} is no longer ours (epoch {epoch})")]
    NotOwned { partition: i32, epoch: Epoch },
    #[error("the consumer is not connected")]
    NotConnected,
    #[error("kafka: commit of p{partition} @{offset}: {source}")]
    Kafka {
        partition: i32,
        offset: i64,
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

// The KafkaReader's messages to the Batcher (it knows the Batcher by these only).

/// Records of one partition, read under `epoch`, contiguous after the previous `Decoded` of that
/// partition and epoch (offsets between them, if any, hold no records: transaction markers). Its
/// `bytes` were added to the in-flight budget by the sender; the Batcher releases them.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Decoded {
    pub partition: i32,
    pub epoch: Epoch,
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: Records,
    pub bytes: usize,
    /// The offsets in the range that went to the dead-letter topic, ascending (usually none): with the
    /// records', every offset delivered; the others are transaction markers.
    pub dead_letters: Vec<i64>,
}

/// The partitions (as assigned under these epochs) are being revoked (sent from the reader's rebalance
/// callback, which waits for `done`): drop their open batches, and say `done` once none of them has a
/// batch in flight any more.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Revoke {
    pub partitions: Vec<(i32, Epoch)>,
    pub done: std::sync::mpsc::SyncSender<()>,
}

/// Where commits go; set by the KafkaReader when it starts (it is created after the Batcher).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CommitTo(pub Recipient<Commit>);

/// The Batcher as the KafkaReader knows it: by the messages it sends there, so the reader never
/// names the Batcher's type (the supervisor wires the two).
#[derive(Clone)]
pub struct ToBatcher {
    pub decoded: Recipient<Decoded>,
    pub revoke: Recipient<Revoke>,
    pub commit_to: Recipient<CommitTo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The part of a batch after a reused object's end starts where that part's own first reading did:
    /// at the first record or dead letter after it, never at a transaction marker's offset.
    #[test]
    fn the_part_after_an_offset_starts_at_its_first_delivered_one() {
        let batch = |offsets: &[i64], dead_letters: Vec<i64>| Batch {
            topic: "t".into(),
            partition: 0,
            epoch: 1,
            first_offset: 0,
            last_offset: 30,
            records: Records::of(offsets.iter().map(|&o| (o, 1_795_771_800_000 + o))),
            dead_letters,
            bytes: 0,
            ingested_at: Millis(0),
            lake: LakePart::Write,
        };
        let starts = |b: &Batch| (b.after(9).first_offset, b.after(9).records.len());
        // 10 is a marker: the rest starts at 11.
        let gap: Vec<i64> = (0..=9).chain(11..=30).collect();
        assert_eq!(starts(&batch(&gap, vec![])), (11, 20));
        // 10 a marker, 11 a dead letter: at 11, holding the records from 12.
        let dead: Vec<i64> = (0..=9).chain(12..=30).collect();
        assert_eq!(starts(&batch(&dead, vec![11])), (11, 19));
        assert_eq!(batch(&dead, vec![11]).after(9).dead_letters, vec![11]);
        // No gap: at 10. Nothing delivered after: at 10 too.
        assert_eq!(starts(&batch(&(0..=30).collect::<Vec<_>>(), vec![])), (10, 21));
        assert_eq!(starts(&batch(&(0..=9).collect::<Vec<_>>(), vec![])), (10, 0));
        // The part up to an offset keeps its own dead letters only.
        assert_eq!(batch(&dead, vec![3, 11]).up_to(9, Millis(5)).dead_letters, vec![3]);
    }
}
