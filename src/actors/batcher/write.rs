//! One batch's job: write it to both sinks (retrying only the one that failed), dead-letter the rows
//! ClickHouse refuses for good, then commit its offsets, as long as the partition is still ours. An
//! object the lake already holds for the batch's first offset is never overwritten: its boundaries are
//! reused (the batch is covered up to there and the rest written after it; or the batch lies inside
//! it, and is written to ClickHouse without a commit until a batch reaches the object's end). Rows of
//! such an object carry its ingestion time. See actors.md, "Rebalances".

use std::sync::Arc;

use actix::MailboxError;

use super::slots::JobEnd;
use super::Sinks;
use crate::clickhouse::writer::{self as clickhouse_writer, RefusedRows};
use crate::actors::messages::{Batch, Commit, CommitError, Failure, LakePart, SinkAck, SinkError, WriteBatch};
use crate::actors::ownership::Ownership;
use crate::actors::Shared;
use crate::dead_letters::DeadLetter;
use crate::internal_events::{Retrying, SinkFailed, Throttle};
use crate::retry::{Next, RetryPolicy};

pub const NAME: &str = super::NAME;

/// What the job needs besides the batch.
pub struct Job {
    pub sinks: Arc<Sinks>,
    pub commit_to: actix::Recipient<Commit>,
    pub ownership: Arc<Ownership>,
    pub shared: Shared,
}

impl Job {
    pub async fn run(self, batch: Arc<Batch>) -> JobEnd {
        let where_ = format!(
            "{} p{} o{}..{}",
            batch.topic, batch.partition, batch.first_offset, batch.last_offset
        );
        let end = match self.write(&batch, &where_).await {
            Ok(()) => self.commit(&batch, &where_).await,
            Err(end) => end,
        };
        if end == JobEnd::Abandoned {
            log::info!("batch {where_}: partition revoked before its commit; left to its new owner");
        }
        end
    }

    fn owned(&self, batch: &Batch) -> bool {
        self.ownership.owns(batch.partition, batch.epoch)
    }

    /// Until both sinks hold the batch; `Err` ends the job without a commit (abandoned, or the batch
    /// lies inside an object of the lake that ends further on).
    async fn write(&self, batch: &Arc<Batch>, where_: &str) -> Result<(), JobEnd> {
        // The part MinIO still has to take (None: done); what ClickHouse is to hold, and its outcome.
        let mut lake = match batch.lake {
            LakePart::Write => Some(batch.clone()),
            LakePart::Held { .. } => None,
        };
        // What ClickHouse is to hold: the batch, or (inside an object written at another time) the
        // object's part with its ingestion time and the rest with the batch's.
        let mut rows = vec![batch.clone()];
        let mut refused: Option<RefusedRows> = None;
        let mut inside: Option<JobEnd> = None;
        let mut backoff = RetryPolicy::SERVICE.backoff();
        let mut throttle = Throttle::default();
        // Whether this job found a sink refusing every write (and said so in the health).
        let mut held = false;
        while lake.is_some() || refused.is_none() {
            if !self.owned(batch) {
                if held {
                    self.shared.health.running(NAME);
                }
                return Err(JobEnd::Abandoned);
            }
            let write_minio = async {
                match &lake {
                    Some(part) => Some(flatten(self.sinks.minio.send(WriteBatch(part.clone())).await, "minio")),
                    None => None,
                }
            };
            let write_clickhouse = async {
                match refused {
                    Some(_) => None,
                    None => Some(self.write_rows(&rows).await),
                }
            };
            let (m, c) = futures::join!(write_minio, write_clickhouse);
            let mut failures = Vec::new();
            match c {
                Some(Ok(r)) => refused = Some(r),
                Some(Err(e)) => failures.push(e),
                None => {}
            }
            match m {
                Some(Ok(SinkAck::Written)) => lake = None,
                Some(Ok(SinkAck::Covered { last_offset, ingested_at })) => {
                    self.shared.metrics.lake_reused.inc();
                    lake = lake
                        .filter(|part| last_offset < part.last_offset)
                        .map(|part| Arc::new(part.after(last_offset)));
                    // The object's rows as a replay of it gives them back: with its ingestion time. Written
                    // again, the rest too (ClickHouse may not have taken the first write).
                    let ingested_at = ingested_at.unwrap_or(batch.ingested_at);
                    if ingested_at != batch.ingested_at {
                        rows = vec![Arc::new(batch.up_to(last_offset, ingested_at))];
                        if last_offset < batch.last_offset {
                            rows.push(Arc::new(batch.after(last_offset)));
                        }
                        refused = None;
                    }
                    if last_offset > batch.last_offset {
                        inside = Some(JobEnd::Inside {
                            until: last_offset,
                            ingested_at,
                        });
                    }
                }
                Some(Err(e)) => failures.push(e),
                None => {}
            }
            for error in &failures {
                held |= SinkFailed { batch: where_, error }.emit(&self.shared.health, &mut throttle);
            }
            if !failures.is_empty() {
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
        if held {
            self.shared.health.running(NAME);
        }
        if let Some(refused_rows) = refused.filter(|r| !r.is_empty()) {
            self.dead_letter_refused(batch, refused_rows).await;
        }
        if let LakePart::Held { until } = batch.lake {
            if batch.last_offset < until {
                inside = Some(JobEnd::Inside {
                    until,
                    ingested_at: batch.ingested_at,
                });
            }
        }
        inside.map_or(Ok(()), Err)
    }

    /// Writes each part to ClickHouse (isolating the rows it refuses); the refused rows of all of them.
    async fn write_rows(&self, parts: &[Arc<Batch>]) -> Result<RefusedRows, SinkError> {
        let mut refused = RefusedRows::new();
        for part in parts {
            let sinks = &self.sinks;
            refused.extend(clickhouse_writer::write_isolating(&sinks.clickhouse, part, &sinks.clickhouse_took_rows).await?);
        }
        Ok(refused)
    }

    /// Commits the batch's range; a partition that is not ours any more is never committed.
    async fn commit(&self, batch: &Batch, where_: &str) -> JobEnd {
        let attempt = || async {
            if !self.owned(batch) {
                return Err(CommitError::NotOwned {
                    partition: batch.partition,
                    epoch: batch.epoch,
                });
            }
            let commit = Commit {
                partition: batch.partition,
                epoch: batch.epoch,
                next_offset: batch.last_offset + 1,
            };
            self.commit_to
                .send(commit)
                .await
                .unwrap_or(Err(CommitError::NotConnected))
        };
        let mut throttle = Throttle::default();
        let committed = RetryPolicy::SERVICE
            .run(attempt, |error, _| match error {
                CommitError::NotOwned { .. } => Next::Stop,
                _ => {
                    let retrying = Retrying {
                        actor: NAME,
                        what: &format!("commit of batch {where_}"),
                        error,
                    };
                    retrying.emit(&self.shared.health, &mut throttle);
                    Next::Retry
                }
            })
            .await;
        match committed {
            Ok(()) => {
                let m = &self.shared.metrics;
                m.batches_committed.inc();
                m.last_commit.set(crate::event::Millis::now().0 as f64 / 1000.0);
                self.shared.health.committed(batch.partition, batch.last_offset + 1);
                JobEnd::Committed
            }
            Err(_) => JobEnd::Abandoned,
        }
    }

    /// Records ClickHouse will never take go to the dead-letter topic as JSON (their lake line; MinIO
    /// has them too), with their Kafka key, before the batch's offsets are committed.
    async fn dead_letter_refused(&self, batch: &Batch, rows: RefusedRows) {
        let dlq = &self.sinks.dlq;
        let letters: Vec<DeadLetter> = rows
            .into_iter()
            .map(|r| DeadLetter {
                key: (!r.key.is_empty()).then_some(r.key),
                payload: r.line,
                topic: batch.topic.clone(),
                partition: batch.partition,
                offset: r.offset,
                timestamp: Some(r.time),
                kind: crate::poison::PoisonKind::RefusedByClickhouse,
                message: r.message,
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
            dlq.topic()
        );
        let health = &self.shared.health;
        dlq.send_all(letters, &|e| health.error(NAME, e.to_owned())).await;
        let m = &self.shared.metrics;
        m.dead_letters.inc_by(n);
        m.sink_refused.with_label_values(&["clickhouse"]).inc_by(n);
    }
}

fn flatten(sent: Result<Result<SinkAck, SinkError>, MailboxError>, sink: &'static str) -> Result<SinkAck, SinkError> {
    sent.unwrap_or_else(|e| {
        Err(SinkError {
            sink,
            message: format!("writer unavailable: {e}"),
            failure: Failure::Transient,
        })
    })
}
