//! KafkaPublisher: the transactional producer. Each `Publish` (one polled batch) is one Kafka
//! transaction — begun, every record produced, committed — and consumers read `read_committed`, so a
//! batch is visible whole or not at all: a restart of this actor or of the Encoder in the middle of a
//! batch leaves an open transaction that is aborted before the next one, and the Poller's resend is
//! the only copy anyone reads. A resend whose first attempt did commit (its reply was lost) is answered
//! from the batches already committed, by id, without producing again.
//!
//! The transaction state lives behind one async lock that outlives restarts. Blocking librdkafka calls
//! (init, begin, commit, abort) run off the actors' thread and carry the lock with them, so an attempt
//! dropped half-way can never race the next one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::messages::PublishError;
use super::Shared;
use crate::config::KafkaConfig;
use crate::kafka::{KafkaSetupError, StatsContext};
use crate::internal_events::{Retrying, Throttle};
use crate::retry::RetryPolicy;

pub const NAME: &str = "kafka_publisher";

/// How long one transaction may stay open before the broker aborts it (a producer that died with one
/// open and never comes back holds `read_committed` readers of its partitions at most this long).
const TRANSACTION_TIMEOUT_MS: u64 = 30_000;
/// Timeout of each blocking transaction call; a call that times out is retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Batches remembered as committed, for resends whose reply was lost.
const REMEMBERED: usize = 64;
/// How long producing waits for room in librdkafka's local queue before the attempt fails.
const QUEUE_FULL_TIMEOUT: Duration = Duration::from_secs(60);

/// One encoded event: key = event_id (so an event always lands on the same partition).
#[derive(Debug, Clone)]
pub struct Record {
    /// The event's id; none for records of another schema.
    pub key: Option<uuid::Uuid>,
    pub payload: Vec<u8>,
}

/// Publish these records as one transaction; `batch` identifies the polled batch across resends.
/// Replies with how many records are committed in Kafka (all of them), or an error.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, PublishError>")]
pub struct Publish {
    pub batch: u64,
    pub records: Vec<Record>,
}

pub struct TopicSettings {
    pub kafka: KafkaConfig,
    pub topic: String,
    pub partitions: i32,
    pub replication: i32,
    /// `transactional.id`: stable across restarts of this producer (so a successor aborts what it left
    /// open), different for every producer replica (two with one id fence each other).
    pub transactional_id: String,
}

struct Txn {
    producer: ThreadedProducer<StatsContext>,
    settings: Arc<TopicSettings>,
    /// `init_transactions` done for this producer.
    ready: bool,
    /// A transaction was begun and neither committed nor aborted (an attempt dropped half-way).
    open: bool,
    committed: VecDeque<u64>,
    shared: Shared,
}

impl Txn {
    fn new(settings: Arc<TopicSettings>, shared: Shared) -> KafkaResult<Self> {
        Ok(Txn {
            producer: producer(&settings, &shared)?,
            settings,
            ready: false,
            open: false,
            committed: VecDeque::new(),
            shared,
        })
    }

    /// Init once, abort what an earlier attempt left open, begin.
    fn begin(&mut self) -> KafkaResult<()> {
        if !self.ready {
            self.producer.init_transactions(CALL_TIMEOUT)?;
            self.ready = true;
            self.open = false;
        }
        if self.open {
            self.producer.abort_transaction(CALL_TIMEOUT)?;
            self.open = false;
            self.shared.metrics.transactions.with_label_values(&["aborted"]).inc();
        }
        self.producer.begin_transaction()?;
        self.open = true;
        Ok(())
    }

    /// Hands every record to librdkafka. No per-record delivery future: the commit is the
    /// acknowledgement (librdkafka flushes before committing, and a record that failed makes the
    /// transaction abortable, so the commit fails and the batch is produced again).
    fn produce(&mut self, records: &[Record]) -> KafkaResult<()> {
        let topic = self.settings.topic.as_str();
        let mut text = uuid::Uuid::encode_buffer();
        for r in records {
            let mut record = BaseRecord::to(topic).payload(&r.payload);
            if let Some(key) = &r.key {
                let key: &str = key.hyphenated().encode_lower(&mut text);
                record = record.key(key);
            }
            let mut waited = Duration::ZERO;
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    // The local queue is full (backpressure): the producer's poll thread empties it
                    // as the broker acknowledges.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if waited < QUEUE_FULL_TIMEOUT =>
                    {
                        record = back;
                        std::thread::sleep(Duration::from_millis(2));
                        waited += Duration::from_millis(2);
                    }
                    Err((e, _)) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Waits until every record is acknowledged. `commit_transaction` flushes too, but its flush
    /// competes with the poll thread for the last delivery event and then sleeps up to 100 ms in a poll
    /// that has nothing left to return; a zero-timeout flush only kicks the broker threads.
    fn flush(&self) -> KafkaResult<()> {
        let deadline = std::time::Instant::now() + CALL_TIMEOUT;
        loop {
            match self.producer.flush(Duration::ZERO) {
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut))
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                done => return done,
            }
        }
    }

    /// Commits; the batch counts as committed before anyone awaits the answer.
    fn commit(&mut self, batch: u64) -> KafkaResult<()> {
        self.flush()?;
        self.producer.commit_transaction(CALL_TIMEOUT)?;
        self.open = false;
        self.committed.push_back(batch);
        if self.committed.len() > REMEMBERED {
            self.committed.pop_front();
        }
        self.shared.metrics.transactions.with_label_values(&["committed"]).inc();
        Ok(())
    }

    /// After a fatal error (fenced by a newer producer of the same id, an unrecoverable state): start
    /// over with a new producer, whose `init_transactions` aborts whatever the old one left.
    fn renew(&mut self) -> KafkaResult<()> {
        self.producer = producer(&self.settings, &self.shared)?;
        self.ready = false;
        self.open = false;
        Ok(())
    }
}

fn producer(settings: &TopicSettings, shared: &Shared) -> KafkaResult<ThreadedProducer<StatsContext>> {
    let context = StatsContext {
        lag: None,
        queue: Some(shared.metrics.producer_queue.clone()),
        quiet: Default::default(),
    };
    crate::kafka::producer_config(&settings.kafka)?
        .set("transactional.id", &settings.transactional_id)
        .set("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS.to_string())
        .set("statistics.interval.ms", crate::kafka::STATS_INTERVAL_MS)
        .create_with_context(context)
}

/// Runs a blocking transaction call off the actors' thread, holding the lock until it returns (even
/// if the caller stops waiting).
async fn blocking<R: Send + 'static>(
    mut txn: OwnedMutexGuard<Txn>,
    call: impl FnOnce(&mut Txn) -> R + Send + 'static,
) -> Result<(OwnedMutexGuard<Txn>, R), PublishError> {
    tokio::task::spawn_blocking(move || {
        let r = call(&mut txn);
        (txn, r)
    })
    .await
    .map_err(|e| PublishError::Kafka(format!("transaction call failed: {e}")))
}

#[derive(Debug)]
enum Attempt {
    Done,
    /// The transaction cannot be committed: abort it (the next `begin` does) and produce again.
    Again(KafkaError),
    /// The producer is unusable: a new one, then produce again.
    Renew(KafkaError),
}

fn classify(e: KafkaError) -> Attempt {
    match &e {
        KafkaError::Transaction(t) if t.is_fatal() => Attempt::Renew(e),
        _ => Attempt::Again(e),
    }
}

/// One try at publishing the batch as one transaction.
async fn transact(
    txn: OwnedMutexGuard<Txn>,
    batch: u64,
    records: Arc<Vec<Record>>,
    panic_mid_batch: &AtomicBool,
) -> Result<(OwnedMutexGuard<Txn>, Attempt), PublishError> {
    let (txn, begun) = blocking(txn, Txn::begin).await?;
    if let Err(e) = begun {
        return Ok((txn, classify(e)));
    }
    let (txn, produced) = blocking(txn, move |t| t.produce(&records)).await?;
    if let Err(e) = produced {
        txn.shared.metrics.publish_errors.inc();
        return Ok((txn, classify(e)));
    }
    if panic_mid_batch.swap(false, Ordering::SeqCst) {
        panic!("fault injection: KafkaPublisher panics with batch {batch} produced, not committed");
    }
    // A commit that fails retriably may have happened: it is retried as it is, never aborted.
    let mut txn = txn;
    let mut backoff = RetryPolicy::SERVICE.backoff();
    loop {
        let (back, committed) = blocking(txn, move |t| t.commit(batch)).await?;
        txn = back;
        match committed {
            Ok(()) => return Ok((txn, Attempt::Done)),
            Err(KafkaError::Transaction(t)) if t.is_retriable() => {
                log::warn!("{NAME}: commit of batch {batch}: {t}; retrying the commit");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => return Ok((txn, classify(e))),
        }
    }
}

pub struct KafkaPublisher {
    txn: Arc<Mutex<Txn>>,
    /// Test-only fault injection (debug builds arm it): panic after producing a batch, before its commit.
    panic_mid_batch: Arc<AtomicBool>,
    settings: Arc<TopicSettings>,
    topic_ready: bool,
    shared: Shared,
}

impl KafkaPublisher {
    pub fn new(settings: TopicSettings, shared: Shared) -> Result<Self, KafkaSetupError> {
        let settings = Arc::new(settings);
        let txn = Txn::new(settings.clone(), shared.clone()).map_err(|source| KafkaSetupError::Client {
            brokers: settings.kafka.brokers.clone(),
            source,
        })?;
        Ok(KafkaPublisher {
            txn: Arc::new(Mutex::new(txn)),
            panic_mid_batch: Arc::default(),
            settings,
            topic_ready: false,
            shared,
        })
    }
}

impl Actor for KafkaPublisher {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.shared.health.running(NAME);
    }
}

impl Supervised for KafkaPublisher {}

#[cfg(debug_assertions)]
impl super::fault::MidBatch for KafkaPublisher {
    fn arm_mid_batch(&mut self) -> bool {
        self.panic_mid_batch.store(true, Ordering::SeqCst);
        true
    }
}

impl Handler<Publish> for KafkaPublisher {
    type Result = ResponseActFuture<Self, Result<usize, PublishError>>;

    fn handle(&mut self, Publish { batch, records }: Publish, _: &mut Self::Context) -> Self::Result {
        let (txn, settings, shared) = (self.txn.clone(), self.settings.clone(), self.shared.clone());
        let panic_mid_batch = self.panic_mid_batch.clone();
        let need_topic = !self.topic_ready;
        let job = async move {
            let mut throttle = Throttle::default();
            if need_topic {
                let s = &settings;
                let on_error = |error: &crate::kafka::KafkaSetupError, _| {
                    let retrying = Retrying {
                        actor: NAME,
                        what: "",
                        error,
                    };
                    retrying.emit(&shared.health, &mut throttle)
                };
                crate::kafka::ensure_topic_retrying(&s.kafka, &s.topic, s.partitions, s.replication, on_error).await;
                throttle.reset();
            }
            let total = records.len();
            let records = Arc::new(records);
            let mut guard = txn.lock_owned().await;
            let mut backoff = RetryPolicy::SERVICE.backoff();
            loop {
                if guard.committed.contains(&batch) {
                    shared.metrics.transactions.with_label_values(&["replayed"]).inc();
                    return Ok(total);
                }
                let (back, attempt) = transact(guard, batch, records.clone(), &panic_mid_batch).await?;
                guard = back;
                let e = match attempt {
                    Attempt::Done => {
                        shared.metrics.events_published.inc_by(total as u64);
                        return Ok(total);
                    }
                    Attempt::Again(e) => e,
                    Attempt::Renew(e) => {
                        let (back, renewed) = blocking(guard, Txn::renew).await?;
                        guard = back;
                        renewed.map_err(|e| PublishError::Kafka(format!("at {}: {e}", settings.kafka.brokers)))?;
                        e
                    }
                };
                let retrying = Retrying {
                    actor: NAME,
                    what: &format!("batch {batch} of {total} not committed, producing it again"),
                    error: &e,
                };
                retrying.emit(&shared.health, &mut throttle);
                tokio::time::sleep(backoff.next_delay()).await;
            }
        };
        Box::pin(job.into_actor(self).map(|res, act, _| {
            if res.is_ok() {
                act.topic_ready = true;
                act.shared.health.running(NAME);
            }
            res
        }))
    }
}
