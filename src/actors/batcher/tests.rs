//! The Batcher against fake writers, a fake dead-letter topic and a fake commit target that honours
//! `Ownership` like the real reader: commit order, one batch in flight per partition, revocation in
//! the middle of a write, new partitions beside old ones, drain, refused rows, the lake's boundaries.
//! No services: plain `cargo test`.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use futures::future::BoxFuture;

use super::*;
use crate::actors::health::Health;
use crate::actors::messages::{CommitError, Failure, SinkAck, SinkError};
use crate::actors::ownership::Epoch;
use crate::dead_letters::DeadLetter;
use crate::event::Millis;
use crate::metrics::PipelineMetrics;

type Answer = Arc<dyn Fn(&Batch) -> Result<SinkAck, SinkError> + Send + Sync>;
/// The (partition, first offset, last offset) of each batch a sink took.
type Written = Arc<Mutex<Vec<(i32, i64, i64)>>>;

/// A writer that records every batch it is given and answers as told, after `delay`.
struct FakeSink {
    delay: Duration,
    answer: Answer,
    log: Written,
    busy: Arc<Mutex<BTreeMap<i32, usize>>>,
    max_busy: Arc<AtomicUsize>,
}

impl Actor for FakeSink {
    type Context = Context<Self>;
}

impl Handler<WriteBatch> for FakeSink {
    type Result = ResponseFuture<Result<SinkAck, SinkError>>;

    fn handle(&mut self, WriteBatch(b): WriteBatch, _: &mut Self::Context) -> Self::Result {
        let (delay, answer, log, busy, max_busy) = (
            self.delay,
            self.answer.clone(),
            self.log.clone(),
            self.busy.clone(),
            self.max_busy.clone(),
        );
        Box::pin(async move {
            let now = {
                let mut busy = busy.lock().unwrap_or_else(|p| p.into_inner());
                let n = busy.entry(b.partition).or_default();
                *n += 1;
                *n
            };
            max_busy.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            *busy.lock().unwrap_or_else(|p| p.into_inner()).entry(b.partition).or_default() -= 1;
            let res = answer(&b);
            if res.is_ok() {
                log.lock().unwrap_or_else(|p| p.into_inner()).push((b.partition, b.first_offset, b.last_offset));
            }
            res
        })
    }
}

/// Commits the way the reader does: only while the partition is owned under the batch's epoch.
struct FakeCommits {
    ownership: Arc<Ownership>,
    log: Arc<Mutex<Vec<(i32, i64)>>>,
}

impl Actor for FakeCommits {
    type Context = Context<Self>;
}

impl Handler<Commit> for FakeCommits {
    type Result = Result<(), CommitError>;

    fn handle(&mut self, c: Commit, _: &mut Self::Context) -> Self::Result {
        let log = &self.log;
        self.ownership
            .commit_if_owned::<CommitError>(c.partition, c.epoch, c.next_offset, || {
                log.lock().unwrap_or_else(|p| p.into_inner()).push((c.partition, c.next_offset));
                Ok(())
            })
            .map_err(|_| CommitError::NotOwned {
                partition: c.partition,
                epoch: c.epoch,
            })
    }
}

#[derive(Default)]
struct FakeDlq(Mutex<Vec<DeadLetter>>);

impl DeadLetterSink for FakeDlq {
    fn topic(&self) -> &str {
        "fake.dlq"
    }

    fn send_all<'a>(&'a self, letters: Vec<DeadLetter>, _: &'a (dyn Fn(&str) + Sync)) -> BoxFuture<'a, ()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend(letters);
        Box::pin(async {})
    }
}

fn ok() -> Answer {
    Arc::new(|_| Ok(SinkAck::Written))
}

struct Rig {
    batcher: Addr<Batcher>,
    ownership: Arc<Ownership>,
    inflight: Arc<Inflight>,
    commits: Arc<Mutex<Vec<(i32, i64)>>>,
    minio: Written,
    clickhouse: Written,
    max_busy: Arc<AtomicUsize>,
    dlq: Arc<FakeDlq>,
    health: Arc<Health>,
}

impl Rig {
    fn start(limits: Limits, minio: (Duration, Answer), clickhouse: (Duration, Answer)) -> Rig {
        Rig::start_bounded(limits, u64::MAX, minio, clickhouse)
    }

    /// With an in-flight budget of `bound` bytes (`send` counts 100 per record).
    fn start_bounded(
        limits: Limits,
        bound: u64,
        minio: (Duration, Answer),
        clickhouse: (Duration, Answer),
    ) -> Rig {
        let max_busy = Arc::new(AtomicUsize::new(0));
        let sink = |(delay, answer): (Duration, Answer), log: &Written| {
            FakeSink {
                delay,
                answer,
                log: log.clone(),
                busy: Arc::default(),
                max_busy: max_busy.clone(),
            }
            .start()
        };
        let (minio_log, clickhouse_log) = (Arc::default(), Arc::default());
        let dlq = Arc::new(FakeDlq::default());
        let sinks = Sinks {
            minio: sink(minio, &minio_log).recipient(),
            clickhouse: sink(clickhouse, &clickhouse_log).recipient(),
            dlq: dlq.clone(),
            clickhouse_took_rows: AtomicBool::new(true),
        };
        let ownership = Arc::new(Ownership::default());
        let inflight = Arc::new(Inflight::bounded(bound));
        let health = Arc::new(Health::default());
        let shared = Shared {
            metrics: PipelineMetrics::new().unwrap_or_else(|e| panic!("{e}")),
            health: health.clone(),
        };
        let batcher = Batcher::new(
            "t".into(),
            limits,
            sinks,
            ownership.clone(),
            inflight.clone(),
            shared,
        )
        .start();
        let commits = Arc::new(Mutex::new(Vec::new()));
        let committer = FakeCommits {
            ownership: ownership.clone(),
            log: commits.clone(),
        }
        .start();
        batcher.do_send(CommitTo(committer.recipient()));
        Rig {
            batcher,
            ownership,
            inflight,
            commits,
            minio: minio_log,
            clickhouse: clickhouse_log,
            max_busy,
            dlq,
            health,
        }
    }

    fn assign(&self, partitions: &[i32]) -> BTreeMap<i32, Epoch> {
        self.ownership.assign(partitions).into_iter().collect()
    }

    async fn send(&self, partition: i32, epoch: Epoch, first: i64, last: i64) {
        let run = Decoded {
            partition,
            epoch,
            first_offset: first,
            last_offset: last,
            records: Records::of((first..=last).map(|o| (o, 1_795_771_800_000 + o))),
            bytes: (last - first + 1) as usize * 100,
            dead_letters: Vec::new(),
        };
        // The reader counts what it hands over; the Batcher releases it.
        self.inflight.add(run.bytes);
        self.batcher.send(run).await.unwrap_or_else(|e| panic!("{e}"));
    }

    fn commits(&self) -> Vec<(i32, i64)> {
        self.commits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits (at most 5 s) until `partition` is committed up to `next`.
    async fn committed(&self, partition: i32, next: i64) {
        for _ in 0..500 {
            if self.commits().contains(&(partition, next)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("p{partition} never committed {next}: {:?}", self.commits());
    }
}

fn limits(interval_ms: u64, max_records: usize) -> Limits {
    Limits {
        flush_interval: Duration::from_millis(interval_ms),
        quiet: Duration::ZERO,
        max_records,
        max_bytes: 1 << 30,
    }
}

#[actix::test]
async fn commits_in_offset_order_with_one_batch_in_flight_per_partition() {
    let slow = (Duration::from_millis(30), ok());
    let rig = Rig::start(limits(5, 10), slow.clone(), slow);
    let epochs = rig.assign(&[0, 1]);
    for k in 0..10 {
        for p in [0, 1] {
            rig.send(p, epochs[&p], k * 10, k * 10 + 9).await;
        }
    }
    rig.committed(0, 100).await;
    rig.committed(1, 100).await;
    for p in [0, 1] {
        let offsets: Vec<i64> = rig.commits().iter().filter(|(q, _)| *q == p).map(|(_, o)| *o).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "p{p}: {offsets:?}");
        // Every batch written starts where the previous commit ended: no range skipped or repeated.
        let written: Vec<(i64, i64)> = rig
            .minio
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(q, _, _)| *q == p)
            .map(|(_, f, l)| (*f, *l))
            .collect();
        let mut next = 0;
        for (first, last) in &written {
            assert_eq!(*first, next, "p{p}: {written:?}");
            next = last + 1;
        }
        assert_eq!(next, 100);
        // What the status page shows as the partition's last commit.
        assert_eq!(rig.health.commits().get(&p).map(|c| c.next_offset), Some(100), "p{p}");
    }
    assert_eq!(rig.max_busy.load(Ordering::SeqCst), 1, "two batches of a partition in one sink at once");
    assert_eq!(rig.inflight.bytes(), 0, "the budget balances once everything is committed");
}

#[actix::test]
async fn over_three_quarters_of_the_budget_open_batches_are_written_at_once() {
    // Neither the flush interval nor the size limits would ever make these batches due.
    let rig = Rig::start_bounded(limits(3_600_000, 1_000_000), 1_000, (Duration::ZERO, ok()), (Duration::ZERO, ok()));
    let e = rig.assign(&[0, 1]);
    rig.send(0, e[&0], 0, 3).await;
    rig.send(1, e[&1], 0, 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rig.commits().is_empty(), "700 of 1,000 bytes: the batches wait for their interval");
    rig.send(1, e[&1], 3, 3).await;
    rig.committed(0, 4).await;
    rig.committed(1, 4).await;
    assert_eq!(rig.inflight.bytes(), 0, "the budget balances once everything is committed");
}

#[actix::test]
async fn a_revocation_waits_for_the_batch_in_flight_and_drops_the_open_one() {
    let rig = Rig::start(limits(5, 1000), (Duration::from_millis(200), ok()), (Duration::ZERO, ok()));
    let e = rig.assign(&[0])[&0];
    rig.send(0, e, 0, 9).await;
    tokio::time::sleep(Duration::from_millis(50)).await; // written now, for 200 ms
    rig.send(0, e, 10, 19).await; // open behind it
    let (done, finished) = std::sync::mpsc::sync_channel(1);
    rig.batcher.do_send(Revoke {
        partitions: vec![(0, e)],
        done,
    });
    let waited = tokio::task::spawn_blocking(move || finished.recv_timeout(Duration::from_secs(5)).is_ok()).await;
    assert_eq!(waited.ok(), Some(true), "the revocation was never answered");
    assert_eq!(rig.commits(), vec![(0, 10)], "the batch in flight is committed before the answer");
    rig.ownership.revoke(&[(0, e)]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rig.commits(), vec![(0, 10)], "the open batch of a revoked partition is never written");
    assert_eq!(rig.inflight.bytes(), 0);
}

#[actix::test]
async fn a_batch_whose_partition_is_revoked_while_a_sink_is_down_is_never_committed() {
    let down: Answer = Arc::new(|_| {
        Err(SinkError {
            sink: "minio",
            message: "connection refused".into(),
            failure: Failure::Transient,
        })
    });
    let rig = Rig::start(limits(5, 1000), (Duration::from_millis(5), down), (Duration::ZERO, ok()));
    let e = rig.assign(&[4])[&4];
    rig.send(4, e, 0, 9).await;
    tokio::time::sleep(Duration::from_millis(50)).await; // in flight now, failing and retried
    let (done, finished) = std::sync::mpsc::sync_channel(1);
    rig.batcher.do_send(Revoke {
        partitions: vec![(4, e)],
        done,
    });
    // The reader's callback gives up after its timeout and revokes anyway.
    let waited = tokio::task::spawn_blocking(move || finished.recv_timeout(Duration::from_millis(300)).is_ok()).await;
    assert_eq!(waited.ok(), Some(false));
    rig.ownership.revoke(&[(4, e)]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(rig.commits().is_empty(), "{:?}", rig.commits());
    assert_eq!(rig.inflight.bytes(), 0, "the abandoned batch is released");
}

#[actix::test]
async fn partitions_assigned_later_do_not_disturb_the_batches_of_the_others() {
    let rig = Rig::start(limits(200, 1000), (Duration::ZERO, ok()), (Duration::ZERO, ok()));
    let e0 = rig.assign(&[0])[&0];
    rig.send(0, e0, 0, 4).await;
    // Cooperative rebalance: partition 1 joins, partition 0 stays (same epoch, open batch kept).
    let e1 = rig.assign(&[1])[&1];
    rig.send(1, e1, 50, 59).await;
    rig.send(0, e0, 5, 9).await;
    rig.committed(0, 10).await;
    rig.committed(1, 60).await;
    let minio = rig.minio.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(minio.contains(&(0, 0, 9)), "partition 0's batch kept its start: {minio:?}");
    // Partition 1 assigned again (eager style): what was open under the old epoch is dropped.
    rig.send(1, e1, 60, 64).await;
    let e1b = rig.assign(&[1])[&1];
    rig.send(1, e1b, 60, 69).await;
    rig.committed(1, 70).await;
    let minio = rig.minio.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(minio.contains(&(1, 60, 69)) && !minio.contains(&(1, 60, 64)), "{minio:?}");
}

#[actix::test]
async fn drain_writes_and_commits_every_open_batch() {
    let rig = Rig::start(limits(3_600_000, 1_000_000), (Duration::ZERO, ok()), (Duration::ZERO, ok()));
    let epochs = rig.assign(&[0, 1, 2]);
    for p in 0..3 {
        rig.send(p, epochs[&p], 0, 99).await;
    }
    assert!(rig.commits().is_empty(), "nothing is due before the drain");
    tokio::time::timeout(Duration::from_secs(5), rig.batcher.send(Drain))
        .await
        .unwrap_or_else(|_| panic!("drain did not finish"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut commits = rig.commits();
    commits.sort();
    assert_eq!(commits, vec![(0, 100), (1, 100), (2, 100)]);
}

#[actix::test]
async fn rows_clickhouse_refuses_are_isolated_and_dead_lettered() {
    let poison: HashSet<i64> = [3, 17, 18, 40].into();
    let refuse: Answer = Arc::new(move |b| {
        match b.records.iter().any(|r| poison.contains(&r.offset)) {
            true => Err(SinkError {
                sink: "clickhouse",
                message: "Code: 395, throwIf".into(),
                failure: Failure::Refused,
            }),
            false => Ok(SinkAck::Written),
        }
    });
    let rig = Rig::start(limits(5, 1000), (Duration::ZERO, ok()), (Duration::ZERO, refuse));
    let e = rig.assign(&[0])[&0];
    rig.send(0, e, 0, 49).await;
    rig.committed(0, 50).await;
    let mut dead: Vec<i64> = rig.dlq.0.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|l| l.offset).collect();
    dead.sort();
    assert_eq!(dead, vec![3, 17, 18, 40]);
    let written: usize = rig
        .clickhouse
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(_, f, l)| (l - f + 1) as usize)
        .sum();
    assert_eq!(written, 46, "every other row reached ClickHouse once");
    assert_eq!(rig.minio.lock().unwrap_or_else(|p| p.into_inner()).clone(), vec![(0, 0, 49)]);
}

#[actix::test]
async fn a_table_that_refuses_everything_is_retried_not_dead_lettered() {
    let refuse: Answer = Arc::new(|_| {
        Err(SinkError {
            sink: "clickhouse",
            message: "Code: 469, constraint".into(),
            failure: Failure::Refused,
        })
    });
    let rig = Rig::start(limits(5, 1000), (Duration::ZERO, ok()), (Duration::ZERO, refuse));
    let e = rig.assign(&[0, 1]);
    // One row: ClickHouse took rows before (as far as we know), so it is poison.
    rig.send(0, e[&0], 0, 0).await;
    rig.committed(0, 1).await;
    // The next one-row batch is refused with nothing taken since: the table, not the row.
    rig.send(1, e[&1], 0, 0).await;
    // Several rows, all refused: the table, not the rows.
    rig.send(0, e[&0], 1, 5).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rig.commits(), vec![(0, 1)]);
    assert_eq!(rig.dlq.0.lock().unwrap_or_else(|p| p.into_inner()).len(), 1);
}

#[actix::test]
async fn an_object_already_in_the_lake_keeps_its_boundaries() {
    // The lake has p0 [0, 14] and p0 [15, 29], written by a former owner at t1 and t2.
    let (t1, t2) = (Millis(1_795_000_000_000), Millis(1_795_000_000_500));
    let lake: Answer = Arc::new(move |b| match b.first_offset {
        0 => Ok(SinkAck::Covered { last_offset: 14, ingested_at: Some(t1) }),
        15 => Ok(SinkAck::Covered { last_offset: 29, ingested_at: Some(t2) }),
        _ => Ok(SinkAck::Written),
    });
    // What ClickHouse was given: the range and the rows' ingestion time.
    let rows: Arc<Mutex<Vec<(i64, i64, Millis)>>> = Arc::default();
    let seen = rows.clone();
    let clickhouse: Answer = Arc::new(move |b| {
        seen.lock().unwrap_or_else(|p| p.into_inner()).push((b.first_offset, b.last_offset, b.ingested_at));
        Ok(SinkAck::Written)
    });
    let rig = Rig::start(limits(5, 1000), (Duration::ZERO, lake), (Duration::ZERO, clickhouse));
    let e = rig.assign(&[0])[&0];
    // Read again shorter than the object: written to ClickHouse, released, not committed.
    rig.send(0, e, 0, 9).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rig.commits().is_empty(), "committed inside an object");
    assert_eq!(rig.inflight.bytes(), 0, "a batch inside an object held until its end");
    rig.send(0, e, 10, 40).await;
    rig.committed(0, 41).await;
    // [10, 40] was cut at 14 (the object's end: the commit), then 15..40 is covered to 29 and the
    // rest written as an object of its own.
    let minio = rig.minio.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(minio, vec![(0, 0, 9), (0, 15, 40), (0, 30, 40)]);
    assert_eq!(rig.commits(), vec![(0, 15), (0, 41)]);
    // Every row of an object carries the object's ingestion time, as a replay of it will.
    let rows = rows.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (own, later) = (rows[0].2, rows.get(3).map_or(t1, |r| r.2));
    assert!(own != t1 && later != t2);
    assert_eq!(
        rows,
        vec![(0, 9, own), (0, 9, t1), (10, 14, t1), (15, 40, later), (15, 29, t2), (30, 40, later)],
        "ClickHouse writes"
    );
}

#[actix::test]
async fn a_batch_partly_in_an_object_gets_every_row_into_clickhouse_even_after_a_failure() {
    let t1 = Millis(1_795_000_000_000);
    let lake: Answer = Arc::new(move |b| match b.first_offset {
        0 => Ok(SinkAck::Covered { last_offset: 14, ingested_at: Some(t1) }),
        _ => Ok(SinkAck::Written),
    });
    // ClickHouse fails the first write (the whole batch, with the batch's own time).
    let calls = Arc::new(AtomicUsize::new(0));
    let taken: Arc<Mutex<Vec<(i64, i64, Millis)>>> = Arc::default();
    let (counter, seen) = (calls.clone(), taken.clone());
    let clickhouse: Answer = Arc::new(move |b| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(SinkError {
                sink: "clickhouse",
                message: "down".into(),
                failure: Failure::Transient,
            });
        }
        seen.lock().unwrap_or_else(|p| p.into_inner()).push((b.first_offset, b.last_offset, b.ingested_at));
        Ok(SinkAck::Written)
    });
    let rig = Rig::start(limits(5, 1000), (Duration::ZERO, lake), (Duration::ZERO, clickhouse));
    let e = rig.assign(&[0])[&0];
    rig.send(0, e, 0, 20).await;
    rig.committed(0, 21).await;
    let taken = taken.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let own = taken.get(1).map_or(t1, |r| r.2);
    assert_ne!(own, t1);
    assert_eq!(taken, vec![(0, 14, t1), (15, 20, own)], "every row, the object's with its time");
    let minio = rig.minio.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(minio, vec![(0, 0, 20), (0, 15, 20)]);
}
