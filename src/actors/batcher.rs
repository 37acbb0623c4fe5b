//! Batcher: per-partition batches, flushed on time or size, written to both sinks, then committed.
//!
//! The commit rule lives here: a partition has at most one batch in flight; its offsets are committed
//! only after MinioWriter and ClickhouseWriter both said Ok, and its next batch is written only after
//! that commit returned. So after a crash at most one written-but-uncommitted batch exists per
//! partition, and its replay starts at the same offset: same object key, same ClickHouse rows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::clickhouse_writer::{self, ClickhouseWriter, RefusedRows};
use super::messages::{Batch, Commit, Failure, SinkError, WriteBatch};
use super::minio_writer::MinioWriter;
use super::Shared;
use crate::dead_letters::{DeadLetter, DeadLetterQueue};
use crate::event::Event;
use crate::retry::Backoff;

pub const NAME: &str = "batcher";

/// Records of one partition, contiguous after the previous `Decoded` of that partition.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Decoded {
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub events: Vec<(i64, Event)>,
    pub bytes: usize,
}

/// The reader (re)started, or its partitions were (re)assigned: it will re-read from the committed
/// offsets, so open batches are forgotten. Replies with the bytes dropped (no longer in flight).
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct Reset;

/// Where commits go; set by the KafkaReader when it starts (it is created after the Batcher).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CommitTo(pub Recipient<Commit>);

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
    pub minio: Addr<MinioWriter>,
    pub clickhouse: Addr<ClickhouseWriter>,
    pub dlq: Arc<DeadLetterQueue>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub flush_interval: Duration,
    pub max_records: usize,
    pub max_bytes: usize,
}

struct Open {
    first_offset: i64,
    last_offset: i64,
    events: Vec<(i64, Event)>,
    bytes: usize,
    opened: Instant,
    flush_now: bool,
}

pub struct Batcher {
    topic: String,
    limits: Limits,
    open: HashMap<i32, Open>,
    /// The batch being written and committed, per partition (kept so a restart can resume it).
    in_flight: HashMap<i32, Arc<Batch>>,
    sinks: Arc<Sinks>,
    commit_to: Option<Recipient<Commit>>,
    /// Set by `Drain`: every batch is due, and these are told once nothing is open or in flight.
    draining: bool,
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
    shared: Shared,
}

impl Batcher {
    pub fn new(topic: String, limits: Limits, sinks: Sinks, shared: Shared) -> Self {
        Batcher {
            topic,
            limits,
            open: HashMap::new(),
            in_flight: HashMap::new(),
            sinks: Arc::new(sinks),
            commit_to: None,
            draining: false,
            drained: Vec::new(),
            shared,
        }
    }

    fn due(&self, open: &Open) -> bool {
        self.draining
            || open.flush_now
            || open.events.len() >= self.limits.max_records
            || open.bytes >= self.limits.max_bytes
            || open.opened.elapsed() >= self.limits.flush_interval
    }

    /// Starts writing `partition`'s open batch if it is due and the partition has nothing in flight.
    fn try_flush(&mut self, partition: i32, ctx: &mut Context<Self>) {
        if self.in_flight.contains_key(&partition) || !self.open.get(&partition).is_some_and(|o| self.due(o))
        {
            return;
        }
        if self.commit_to.is_none() {
            return;
        }
        let Some(open) = self.open.remove(&partition) else {
            return;
        };
        let batch = Arc::new(Batch {
            topic: self.topic.clone(),
            partition,
            first_offset: open.first_offset,
            last_offset: open.last_offset,
            events: open.events,
            bytes: open.bytes,
        });
        self.in_flight.insert(partition, batch.clone());
        self.spawn_write(batch, ctx);
    }

    fn spawn_write(&mut self, batch: Arc<Batch>, ctx: &mut Context<Self>) {
        let Some(commit_to) = self.commit_to.clone() else {
            return;
        };
        let partition = batch.partition;
        let job = write_and_commit(batch, self.sinks.clone(), commit_to, self.shared.clone());
        ctx.spawn(job.into_actor(self).map(move |_, act, ctx| {
            act.in_flight.remove(&partition);
            act.try_flush(partition, ctx);
            act.tell_if_drained();
        }));
    }

    fn tell_if_drained(&mut self) {
        if self.draining && self.open.is_empty() && self.in_flight.is_empty() {
            for done in self.drained.drain(..) {
                let _ = done.send(());
            }
        }
    }
}

/// Writes to both sinks until both acknowledged (retrying only the one that failed), dead-letters the
/// rows ClickHouse refused for good, then commits.
async fn write_and_commit(
    batch: Arc<Batch>,
    sinks: Arc<Sinks>,
    commit_to: Recipient<Commit>,
    shared: Shared,
) {
    let (mut minio_done, mut refused) = (false, None);
    let mut backoff = Backoff::service();
    let where_ = format!(
        "{} p{} o{}..{}",
        batch.topic, batch.partition, batch.first_offset, batch.last_offset
    );
    while !(minio_done && refused.is_some()) {
        let write_minio = async {
            match minio_done {
                true => Ok(()),
                false => flatten(sinks.minio.send(WriteBatch(batch.clone())).await, "minio"),
            }
        };
        let write_clickhouse = async {
            match refused {
                Some(_) => None,
                None => Some(clickhouse_writer::write_isolating(&sinks.clickhouse, &batch).await),
            }
        };
        let (m, c) = futures::join!(write_minio, write_clickhouse);
        let mut failures = Vec::new();
        match m {
            Ok(()) => minio_done = true,
            Err(e) => failures.push(e),
        }
        match c {
            Some(Ok(rows)) => refused = Some(rows),
            Some(Err(e)) => failures.push(e),
            None => {}
        }
        for e in &failures {
            if backoff.attempts() % 20 == 0 {
                log::warn!("batch {where_}: {e} ({:?}); retrying", e.failure);
            }
            shared.health.error(NAME, format!("batch {where_}: {e}"));
        }
        if !failures.is_empty() {
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
    if let Some(rows) = refused.filter(|r| !r.is_empty()) {
        dead_letter_refused(&batch, rows, &sinks.dlq, &shared).await;
    }
    let commit = || Commit {
        partition: batch.partition,
        next_offset: batch.last_offset + 1,
        bytes: batch.bytes,
    };
    backoff.reset();
    loop {
        match commit_to.send(commit()).await {
            Ok(Ok(())) => break,
            Ok(Err(e)) => log::warn!("batch {where_}: commit failed: {e}; retrying"),
            Err(e) => log::warn!("batch {where_}: reader unavailable for commit: {e}; retrying"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
    shared.metrics.batches_committed.inc();
    shared
        .metrics
        .last_commit
        .set(crate::event::Millis::now().0 as f64 / 1000.0);
}

fn flatten(sent: Result<Result<(), SinkError>, MailboxError>, sink: &'static str) -> Result<(), SinkError> {
    sent.unwrap_or_else(|e| {
        Err(SinkError {
            sink,
            message: format!("writer unavailable: {e}"),
            failure: Failure::Transient,
        })
    })
}

/// Events ClickHouse will never take go to the dead-letter topic as JSON (the decoded event; MinIO has
/// them too), before the batch's offsets are committed.
async fn dead_letter_refused(batch: &Batch, rows: RefusedRows, dlq: &DeadLetterQueue, shared: &Shared) {
    let letters: Vec<DeadLetter> = rows
        .into_iter()
        .map(|(offset, event, message)| DeadLetter {
            key: Some(event.event_id.to_string().into_bytes()),
            payload: serde_json::to_vec(&event).unwrap_or_default(),
            topic: batch.topic.clone(),
            partition: batch.partition,
            offset,
            timestamp: Some(event.created_at.0),
            kind: "refused_by_clickhouse",
            message,
            format: "json",
        })
        .collect();
    let n = letters.len() as u64;
    log::warn!(
        "batch {} p{} o{}..{}: ClickHouse refused {n} rows for good: to {}",
        batch.topic,
        batch.partition,
        batch.first_offset,
        batch.last_offset,
        dlq.topic
    );
    dlq.send_all(letters, |e| shared.health.error(NAME, e.to_owned()))
        .await;
    shared.metrics.dead_letters.inc_by(n);
    shared
        .metrics
        .sink_refused
        .with_label_values(&["clickhouse"])
        .inc_by(n);
}

impl Actor for Batcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.shared.health.running(NAME);
        // After a restart: the jobs of in-flight batches died with the old context; resume them, so no
        // range is skipped and the commit order holds.
        let resume: Vec<Arc<Batch>> = self.in_flight.values().cloned().collect();
        for batch in resume {
            self.spawn_write(batch, ctx);
        }
        let tick =
            (self.limits.flush_interval / 4).clamp(Duration::from_millis(5), Duration::from_millis(100));
        ctx.run_interval(tick, |act, ctx| {
            let partitions: Vec<i32> = act.open.keys().copied().collect();
            for p in partitions {
                act.try_flush(p, ctx);
            }
        });
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
        let open = self.open.entry(msg.partition).or_insert_with(|| Open {
            first_offset: msg.first_offset,
            last_offset: msg.first_offset,
            events: Vec::new(),
            bytes: 0,
            opened: Instant::now(),
            flush_now: false,
        });
        open.last_offset = msg.last_offset;
        open.bytes += msg.bytes;
        open.events.extend(msg.events);
        self.try_flush(msg.partition, ctx);
    }
}

impl Handler<FlushNow> for Batcher {
    type Result = usize;

    fn handle(&mut self, _: FlushNow, ctx: &mut Self::Context) -> usize {
        let partitions: Vec<i32> = self.open.keys().copied().collect();
        for p in &partitions {
            if let Some(open) = self.open.get_mut(p) {
                open.flush_now = true;
            }
            self.try_flush(*p, ctx);
        }
        partitions.len()
    }
}

impl Handler<Drain> for Batcher {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        let (done, drained) = tokio::sync::oneshot::channel();
        self.drained.push(done);
        let partitions: Vec<i32> = self.open.keys().copied().collect();
        for p in partitions {
            self.try_flush(p, ctx);
        }
        self.tell_if_drained();
        Box::pin(async move {
            let _ = drained.await;
        })
    }
}

impl Handler<Reset> for Batcher {
    type Result = usize;

    fn handle(&mut self, _: Reset, _: &mut Self::Context) -> usize {
        self.open.drain().map(|(_, o)| o.bytes).sum()
    }
}

impl Handler<CommitTo> for Batcher {
    type Result = ();

    fn handle(&mut self, CommitTo(to): CommitTo, _: &mut Self::Context) {
        self.commit_to = Some(to);
    }
}
