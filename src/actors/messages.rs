//! Messages several actors exchange. Messages with one handler live beside that handler.

use std::sync::Arc;

use actix::Message;

use crate::event::Event;

/// One partition's contiguous offset range `[first_offset, last_offset]` and the events decoded from it.
/// Records that could not be decoded are inside the range but not in `events`: the range, not the
/// events, decides what gets committed.
#[derive(Debug)]
pub struct Batch {
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub events: Vec<(i64, Event)>,
    /// Kafka payload bytes of the range, for backpressure accounting.
    pub bytes: usize,
}

/// Write this batch (shared by both writers, no copy). Ok means durable in that sink.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), SinkError>")]
pub struct WriteBatch(pub Arc<Batch>);

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

/// Stop and be restarted by the supervisor (`POST /actors/{name}/restart`): what a stuck actor needs.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Restart;

/// Both sinks have the batch: commit `next_offset` for the partition (sent by the Batcher to the
/// KafkaReader). The reply comes once the commit is done, so the Batcher never writes a partition's
/// next batch before the previous one is committed.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct Commit {
    pub partition: i32,
    pub next_offset: i64,
    pub bytes: usize,
}
