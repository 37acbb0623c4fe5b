//! Batcher: per-partition batches, flushed on time or size, written to both sinks, then committed.
//!
//! The commit rule lives here: a partition has at most one batch in flight; its offsets are committed
//! only after MinioWriter and ClickhouseWriter both said Ok, only while the partition is still ours
//! (`Ownership`), and its next batch is written only after that commit returned. So at most one
//! written-but-uncommitted batch exists per partition, and whoever reads it again starts at its first
//! offset, where the lake's object (never overwritten) and the ClickHouse rows (collapsed) expect it.
//!
//! `slots.rs` keeps the per-partition state, `write.rs` is one batch's write-and-commit job.

mod slots;
#[cfg(test)]
mod tests;
mod write;

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::inflight::Inflight;
pub use super::messages::{CommitTo, Decoded, Revoke};
use super::messages::{Batch, Commit, WriteBatch};
use super::ownership::Ownership;
use super::Shared;
use crate::dead_letters::DeadLetterSink;
use crate::record::Records;
pub use slots::JobEnd;
use slots::Slots;

pub const NAME: &str = "batcher";

/// `POST /flush`: write every open batch now, whatever its age (a partition with a batch in flight
/// writes its open one right after). Replies with the number of open batches.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct FlushNow;

/// Graceful shutdown: write every open batch now, whatever its age, and reply once all of them are
/// written and committed. Records that still arrive are flushed the same way.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Where batches go: both writers, and the dead-letter topic for rows a sink refuses.
pub struct Sinks {
    pub minio: Recipient<WriteBatch>,
    pub clickhouse: Recipient<WriteBatch>,
    pub dlq: Arc<dyn DeadLetterSink>,
    /// Whether ClickHouse took a row since the last batch it refused whole (see `write_isolating`).
    pub clickhouse_took_rows: AtomicBool,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub flush_interval: Duration,
    /// A batch big enough (a tenth of `max_records`) that got nothing new for this long is due; zero: off.
    pub quiet: Duration,
    pub max_records: usize,
    pub max_bytes: usize,
}

/// A revocation waiting for the batches in flight of its partitions.
struct Revocation {
    waiting: BTreeSet<i32>,
    done: std::sync::mpsc::SyncSender<()>,
}

pub struct Batcher {
    limits: Limits,
    slots: Slots,
    sinks: Arc<Sinks>,
    ownership: Arc<Ownership>,
    inflight: Arc<Inflight>,
    commit_to: Option<Recipient<Commit>>,
    revocations: Vec<Revocation>,
    /// Set by `Drain`: every batch is due, and these are told once nothing is open or in flight.
    draining: bool,
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
    shared: Shared,
}

impl Batcher {
    pub fn new(
        topic: String,
        limits: Limits,
        sinks: Sinks,
        ownership: Arc<Ownership>,
        inflight: Arc<Inflight>,
        shared: Shared,
    ) -> Self {
        // A batch reaches one of its limits first (a record holds at least its index entry and a few
        // bytes of line and row); see `with_reader_chunk` for what may come after.
        let room = limits.max_records.min(limits.max_bytes / Records::MIN_RECORD_BYTES);
        Batcher {
            slots: Slots::new(topic).with_room(room),
            limits,
            sinks: Arc::new(sinks),
            ownership,
            inflight,
            commit_to: None,
            revocations: Vec::new(),
            draining: false,
            drained: Vec::new(),
            shared,
        }
    }

    /// A batch is found due after the run that reached its limit was added: room for one more run of
    /// the reader's, `chunk` records at most (set where the supervisor wires the two).
    pub fn with_reader_chunk(mut self, chunk: usize) -> Self {
        self.slots.add_room(chunk);
        self
    }

    /// Starts writing `partition`'s open batch if it is due and the partition has nothing in flight.
    fn try_flush(&mut self, partition: i32, ctx: &mut Context<Self>) {
        if self.commit_to.is_none() {
            return;
        }
        // Under memory pressure a batch is written as soon as its partition has none in flight: the
        // events it holds are released only once it is committed.
        let all_due = self.draining || self.inflight.pressed();
        if let Some(batch) = self.slots.start(partition, &self.limits, all_due) {
            self.spawn_write(batch, ctx);
        }
    }

    fn spawn_write(&mut self, batch: Arc<Batch>, ctx: &mut Context<Self>) {
        let Some(commit_to) = self.commit_to.clone() else {
            return;
        };
        let partition = batch.partition;
        let job = write::Job {
            sinks: self.sinks.clone(),
            commit_to,
            ownership: self.ownership.clone(),
            shared: self.shared.clone(),
        };
        ctx.spawn(job.run(batch).into_actor(self).map(move |end, act, ctx| {
            act.job_ended(partition, end, ctx);
        }));
    }

    fn job_ended(&mut self, partition: i32, end: JobEnd, ctx: &mut Context<Self>) {
        self.inflight.release(self.slots.finish(partition, end));
        if self.ownership.epoch(partition).is_none() {
            self.inflight.release(self.slots.forget_if_idle(partition));
        }
        if !self.slots.has_in_flight(partition) {
            self.revocations.retain_mut(|r| {
                r.waiting.remove(&partition);
                let waiting = !r.waiting.is_empty();
                if !waiting {
                    let _ = r.done.try_send(());
                }
                waiting
            });
        }
        self.try_flush(partition, ctx);
        self.tell_if_drained();
    }

    fn flush_all_due(&mut self, ctx: &mut Context<Self>) {
        for p in self.slots.partitions() {
            self.try_flush(p, ctx);
        }
    }

    fn tell_if_drained(&mut self) {
        if self.draining && self.slots.is_idle() {
            for done in self.drained.drain(..) {
                let _ = done.send(());
            }
        }
    }
}

impl Actor for Batcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.shared.health.running(NAME);
        // After a restart: the jobs of in-flight batches died with the old context; resume them, so no
        // range is skipped and the commit order holds (a revoked partition's job ends at once).
        for batch in self.slots.in_flight() {
            self.spawn_write(batch, ctx);
        }
        // A batch is written at most a tick after it is due: the tick is part of the freshness.
        let tick =
            (self.limits.flush_interval / 20).clamp(Duration::from_millis(5), Duration::from_millis(25));
        ctx.run_interval(tick, |act, ctx| act.flush_all_due(ctx));
    }
}

impl Supervised for Batcher {
    fn restarting(&mut self, _: &mut Self::Context) {
        // Open and in-flight batches are kept: they are exactly what was read and not committed.
    }
}

impl Handler<Decoded> for Batcher {
    type Result = ();

    fn handle(&mut self, msg: Decoded, ctx: &mut Self::Context) {
        // Read before a revocation or reassignment: whoever owns the partition now reads it again.
        if !self.ownership.owns(msg.partition, msg.epoch) {
            self.inflight.release(msg.bytes);
            return;
        }
        let partition = msg.partition;
        let dropped = self.slots.add(msg);
        self.inflight.release(dropped);
        for run in self.slots.take_spares() {
            self.inflight.give_back(run);
        }
        // Under pressure every open batch is due at once, not at the next tick: by then a commit may
        // have eased the pressure and left the others waiting for their interval.
        if self.inflight.pressed() {
            self.flush_all_due(ctx);
        } else {
            self.try_flush(partition, ctx);
        }
    }
}

impl Handler<Revoke> for Batcher {
    type Result = ();

    fn handle(&mut self, msg: Revoke, _: &mut Self::Context) {
        let mut waiting = BTreeSet::new();
        for (p, epoch) in msg.partitions {
            let (dropped, busy) = self.slots.revoke(p, epoch);
            self.inflight.release(dropped);
            if busy {
                waiting.insert(p);
            }
        }
        match waiting.is_empty() {
            true => {
                let _ = msg.done.try_send(());
            }
            false => self.revocations.push(Revocation {
                waiting,
                done: msg.done,
            }),
        }
        self.tell_if_drained();
    }
}

impl Handler<FlushNow> for Batcher {
    type Result = usize;

    fn handle(&mut self, _: FlushNow, ctx: &mut Self::Context) -> usize {
        let n = self.slots.flush_all();
        self.flush_all_due(ctx);
        n
    }
}

impl Handler<Drain> for Batcher {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        let (done, drained) = tokio::sync::oneshot::channel();
        self.drained.push(done);
        self.flush_all_due(ctx);
        self.tell_if_drained();
        Box::pin(async move {
            let _ = drained.await;
        })
    }
}

impl Handler<CommitTo> for Batcher {
    type Result = ();

    fn handle(&mut self, CommitTo(to): CommitTo, ctx: &mut Self::Context) {
        self.commit_to = Some(to);
        self.flush_all_due(ctx);
    }
}
