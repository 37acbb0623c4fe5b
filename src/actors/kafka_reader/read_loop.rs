//! The KafkaReader's read loop, on the reader's own arbiter (thread): read chunks, classify each record
//! (`decode.rs`), dead-letter poison, hand per-partition runs to the Batcher, and pause the partitions
//! while too much is in flight or while the registry seems wrong (`unknown_ids.rs`). Records are tagged
//! with the epoch their partition had when they arrived; a run whose partition was revoked or assigned
//! again meanwhile is dropped (its new owner reads it from the last commit).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, MessageStream, StreamConsumer};
use rdkafka::message::{Message as _, OwnedMessage, Timestamp};
use rdkafka::{Offset, TopicPartitionList};

use super::decode::{outage_of, Classified, Decoding, Incoming};
use super::holding::{BlockReason, HeldRecord, Holding, Settled};
use super::rebalance::ReaderContext;
use super::redelivery::Taken;
use super::unknown_ids::Verdict;
use super::{ReaderError, NAME};
use crate::actors::messages::Decoded;
use crate::actors::ownership::Epoch;
use crate::dead_letters::DeadLetter;
use crate::event::Millis;
use crate::internal_events::{ConsumerError, Retrying, Throttle, Undecodable};
use crate::poison::PoisonKind;
use crate::record::{Records, Shape};

/// Records gathered before handing them over, and how long to wait for more once one arrived.
pub const CHUNK_RECORDS: usize = 5_000;
const CHUNK_WAIT: Duration = Duration::from_millis(20);
/// How long an idle loop waits for a record before looking at its timers again.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Over the in-flight budget, how long the reader waits for a commit without polling before it pauses
/// its partitions (a commit comes every few hundred ms while the sinks take writes; librdkafka's
/// `max.poll.interval.ms` is far longer).
const UNPOLLED_WAIT: Duration = Duration::from_secs(2);

pub(super) type ReaderConsumer = StreamConsumer<ReaderContext>;
/// One stream for the life of the loop: `recv()` would build one (and register a waker) per record.
type Messages<'a> = MessageStream<'a, ReaderContext>;

pub(super) struct ReadLoop {
    pub(super) consumer: Arc<ReaderConsumer>,
    pub(super) wiring: super::Wiring,
    pub(super) decoding: Decoding,
    /// What waits instead of being classified, and the block, if any (`holding.rs`).
    holding: Holding<Held>,
    /// Ownership generation at which the partitions were paused (None: not paused).
    paused: Option<u64>,
    /// The last offset handed over, per partition and epoch (for the commit past transaction markers).
    last_read: HashMap<i32, (Epoch, i64)>,
    /// The highest offset classified per partition and epoch: what comes again below it is dropped.
    taken: Taken,
    /// The log lines of undecodable records and of the consumer's errors (`internal_events.rs`).
    undecodable: Throttle,
    consumer_errors: Throttle,
    tail_checked: Instant,
    /// The size of the records last handed over: each new run is given room for a chunk of them.
    shape: Shape,
}

/// A record kept for later, owned (it outlives the poll that returned it).
struct Held {
    epoch: Epoch,
    msg: OwnedMessage,
    why: String,
}

impl HeldRecord for Held {
    fn partition(&self) -> i32 {
        self.msg.partition()
    }

    fn epoch(&self) -> Epoch {
        self.epoch
    }
}

/// One partition's records in one chunk, all read under `epoch`.
struct Run {
    epoch: Epoch,
    first_offset: i64,
    last_offset: i64,
    records: Records,
    letters: Vec<DeadLetter>,
}

#[derive(Default)]
struct Chunk {
    runs: BTreeMap<i32, Run>,
    records: usize,
    /// Bytes of the record values read.
    bytes: u64,
    /// When the chunk was begun (ms): the event time of records whose schema has no timestamp field.
    now: i64,
}

impl ReadLoop {
    pub(super) fn new(
        consumer: Arc<ReaderConsumer>,
        wiring: super::Wiring,
        decoding: Decoding,
    ) -> Self {
        let long_ago = Instant::now() - Duration::from_secs(60);
        ReadLoop {
            consumer,
            wiring,
            decoding,
            holding: Holding::default(),
            paused: None,
            last_read: HashMap::new(),
            taken: Taken::default(),
            undecodable: Throttle::default(),
            consumer_errors: Throttle::default(),
            tail_checked: long_ago,
            shape: Shape::default(),
        }
    }

    /// Makes sure the topic and its dead-letter topic exist (a consumer may start first), then subscribes.
    async fn subscribe(&self) -> Result<(), ReaderError> {
        let s = &self.wiring.settings;
        let mut throttle = Throttle::default();
        for topic in [&s.topic, &s.dlq_topic] {
            let on_error = |error: &crate::kafka::KafkaSetupError, _| {
                let retrying = Retrying {
                    actor: NAME,
                    what: "",
                    error,
                };
                retrying.emit(&self.wiring.shared.health, &mut throttle)
            };
            crate::kafka::ensure_topic_retrying(&s.kafka, topic, s.partitions, s.replication, on_error).await;
        }
        self.consumer
            .subscribe(&[&s.topic])
            .map_err(|source| ReaderError::Kafka {
                brokers: s.kafka.brokers.clone(),
                what: "subscribe",
                source,
            })
    }

    pub(super) async fn run(mut self) -> Result<(), ReaderError> {
        self.subscribe().await?;
        let consumer = self.consumer.clone();
        let mut records = consumer.stream();
        loop {
            self.throttle(&mut records).await;
            let chunk = self.read_chunk(&mut records).await;
            self.hand_over(chunk, &mut records).await?;
            self.commit_tail();
        }
    }

    /// Returns at once while there is room in flight and the registry answers. Over the budget it
    /// first waits up to `UNPOLLED_WAIT` for the sinks to free room, without polling: pausing makes
    /// librdkafka drop what it prefetched for the partitions and fetch it again on resume, which costs
    /// more than the wait. Past that (a sink is down), or while blocked, it pauses every assigned
    /// partition and keeps polling (group membership, rebalances: records that still arrive are kept
    /// for later) until commits free room or the registry can tell again.
    async fn throttle(&mut self, records: &mut Messages<'_>) {
        let inflight = self.wiring.inflight.clone();
        let mut waiting_since = None;
        loop {
            let freed = inflight.freed();
            if self.holding.blocked().is_some() {
                self.try_unblock().await;
            }
            if !self.wiring.inflight.over() && self.holding.blocked().is_none() {
                if self.paused.take().is_some() {
                    self.set_paused(false);
                }
                return;
            }
            if self.holding.blocked().is_none() && self.paused.is_none() {
                let since = *waiting_since.get_or_insert_with(Instant::now);
                let left = UNPOLLED_WAIT.saturating_sub(since.elapsed());
                if !left.is_zero() {
                    let _ = tokio::time::timeout(left, freed).await;
                    continue;
                }
            }
            let generation = self.wiring.ownership.generation();
            if self.paused != Some(generation) {
                self.set_paused(true);
                self.paused = Some(generation);
            }
            tokio::select! {
                _ = freed => {}
                next = tokio::time::timeout(Duration::from_millis(500), records.next()) => {
                    if let Ok(Some(next)) = next {
                        self.keep_for_later(next);
                    }
                }
            }
        }
    }

    /// A record polled while the partitions are paused (it was fetched before): kept, in read order,
    /// for when reading goes on.
    fn keep_for_later(&mut self, next: rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>>) {
        match next {
            Err(e) => self.consumer_error(&e),
            Ok(m) => {
                if let Some(epoch) = self.wiring.ownership.epoch(m.partition()) {
                    let held = Held {
                        epoch,
                        msg: m.detach(),
                        why: String::new(),
                    };
                    self.holding.keep(held);
                }
            }
        }
    }

    /// Runs `work` to its end while this thread keeps polling: a write that waits for the broker (the
    /// dead-letter topic down, a letter retried) must not keep the member from the group
    /// (`max.poll.interval.ms`) or from a rebalance. Past `UNPOLLED_WAIT` the partitions are paused and
    /// what still arrives is kept for later; `throttle` resumes them.
    async fn while_polling(&mut self, work: impl std::future::Future<Output = ()>, records: &mut Messages<'_>) {
        tokio::pin!(work);
        let started = Instant::now();
        loop {
            let polling = started.elapsed() >= UNPOLLED_WAIT;
            let generation = self.wiring.ownership.generation();
            if polling && self.paused != Some(generation) {
                self.set_paused(true);
                self.paused = Some(generation);
            }
            tokio::select! {
                _ = &mut work => return,
                _ = tokio::time::sleep(UNPOLLED_WAIT.saturating_sub(started.elapsed())), if !polling => {}
                next = tokio::time::timeout(Duration::from_millis(500), records.next()), if polling => {
                    if let Ok(Some(next)) = next {
                        self.keep_for_later(next);
                    }
                }
            }
        }
    }

    async fn read_chunk(&mut self, records: &mut Messages<'_>) -> Chunk {
        let mut chunk = Chunk {
            now: Millis::now().0,
            ..Chunk::default()
        };
        let mut generation = self.wiring.ownership.generation();
        let mut epochs: rustc_hash::FxHashMap<i32, Epoch> = self.wiring.ownership.owned().into_iter().collect();
        let mut deadline = None;
        while chunk.records < CHUNK_RECORDS && self.holding.blocked().is_none() {
            if let Some(held) = self.holding.next_waiting() {
                if self.wiring.ownership.owns(held.msg.partition(), held.epoch) {
                    self.process(&mut chunk, held.epoch, &held.msg).await;
                }
                continue;
            }
            if self.holding.suspects_expired(Instant::now) {
                self.suspects_are_poison(&mut chunk);
            }
            // A timer only when librdkafka's queue is empty: most records are there already.
            let next = match records.next().now_or_never() {
                Some(next) => next,
                None => {
                    let wait = deadline.unwrap_or_else(|| tokio::time::Instant::now() + IDLE_WAIT);
                    match tokio::time::timeout_at(wait, records.next()).await {
                        Err(_) => break,
                        Ok(next) => next,
                    }
                }
            };
            let msg = match next {
                None => break,
                Some(Err(e)) => {
                    self.consumer_error(&e);
                    continue;
                }
                Some(Ok(m)) => m,
            };
            // Rebalance callbacks run inside `next`: a change of ownership shows in the generation.
            if self.wiring.ownership.generation() != generation {
                generation = self.wiring.ownership.generation();
                epochs = self.wiring.ownership.owned().into_iter().collect();
                self.drop_stale(&mut chunk);
            }
            deadline.get_or_insert_with(|| tokio::time::Instant::now() + CHUNK_WAIT);
            if let Some(&epoch) = epochs.get(&msg.partition()) {
                // The waiting part's future is made only for a record that needs it (see process_now).
                match self.process_now(&mut chunk, epoch, &msg) {
                    Left::Nothing => {}
                    left => self.process_asking(&mut chunk, epoch, &msg, left).await,
                }
            }
        }
        chunk
    }

    /// Classifies one record and puts it where it belongs: its partition's run (event or dead letter),
    /// the run of unknown ids, or — when the registry cannot tell — the queue of records that wait.
    async fn process(&mut self, chunk: &mut Chunk, epoch: Epoch, msg: &impl rdkafka::Message) {
        let left = self.process_now(chunk, epoch, msg);
        self.process_asking(chunk, epoch, msg, left).await;
    }

    /// What `process` does without waiting: all of it for a record whose writer schema is known (or
    /// that is not even framed), which is nearly every record. A plain call: the future of the part
    /// that asks the registry is large, and the read loop makes it only for the records that need it.
    fn process_now(&mut self, chunk: &mut Chunk, epoch: Epoch, msg: &impl rdkafka::Message) -> Left {
        if self.taken.is_repeat(msg.partition(), epoch, msg.offset()) {
            self.wiring.shared.metrics.records_redelivered.inc();
            log::debug!("{NAME}: p{} @{} handed over again: dropped", msg.partition(), msg.offset());
            return Left::Nothing;
        }
        chunk.records += 1;
        chunk.bytes += msg.payload().map_or(0, <[u8]>::len) as u64;
        // The decoder appends the record to its partition's records so far.
        let classified = match chunk.runs.get_mut(&msg.partition()) {
            Some(run) => self.decoding.classify_now(incoming(msg, chunk.now), &mut run.records),
            None => {
                let mut records = self.new_run();
                let classified = self.decoding.classify_now(incoming(msg, chunk.now), &mut records);
                match classified {
                    Some(Classified::Decoded) => run_of(chunk, epoch, msg).records = records,
                    // Not this record's run after all (poison, or the registry must be asked): the
                    // buffers go back for the next one.
                    _ => self.wiring.inflight.give_back(records),
                }
                classified
            }
        };
        match classified {
            None => Left::Classify,
            Some(classified) => self.place(chunk, epoch, msg, classified),
        }
    }

    /// Empty records for a partition's run: a spare one the Batcher gave back, else new, with room for
    /// a chunk of records like the last ones.
    fn new_run(&self) -> Records {
        self.wiring
            .inflight
            .spare_run()
            .unwrap_or_else(|| Records::with_room(CHUNK_RECORDS, self.shape))
    }

    /// What `process_now` left: the registry asked for the record's writer schema, or whether it has
    /// the topic's subjects at all.
    async fn process_asking(&mut self, chunk: &mut Chunk, epoch: Epoch, msg: &impl rdkafka::Message, left: Left) {
        let (id, message) = match left {
            Left::Nothing => return,
            Left::UnknownId { id, message } => (id, message),
            Left::Classify => {
                // The partition's records so far are lent to the decoder across the wait.
                let partition = msg.partition();
                let mut records = chunk
                    .runs
                    .get_mut(&partition)
                    .map(|r| std::mem::take(&mut r.records))
                    .unwrap_or_else(|| self.new_run());
                let classified = self.decoding.classify(incoming(msg, chunk.now), &mut records).await;
                if let Some(run) = chunk.runs.get_mut(&partition) {
                    run.records = records;
                } else if matches!(classified, Classified::Decoded) {
                    run_of(chunk, epoch, msg).records = records;
                }
                match self.place(chunk, epoch, msg, classified) {
                    Left::UnknownId { id, message } => (id, message),
                    _ => return,
                }
            }
        };
        let held = |why: String| Held {
            epoch,
            msg: owned(msg),
            why,
        };
        match self.decoding.subject_known().await {
            Ok(true) => {
                if self.holding.suspect(held(message), Instant::now()) == Verdict::RegistryWrong {
                    self.block(BlockReason::LacksSchemas, id, None);
                }
            }
            Ok(false) => {
                let why = format!(
                    "the schema registry knows no subject {}: is NRT_SCHEMA_REGISTRY_URL the registry of this topic?",
                    self.decoding.subjects()
                );
                self.block(BlockReason::LacksSchemas, id, Some((held(message), why)));
            }
            Err(e) => self.block(outage_of(&e).into(), id, Some((held(message), e.to_string()))),
        }
    }

    /// Puts a classified record where it belongs; one of an id the registry does not know is left to
    /// `process_asking`.
    fn place(&mut self, chunk: &mut Chunk, epoch: Epoch, msg: &impl rdkafka::Message, classified: Classified) -> Left {
        match classified {
            Classified::UnknownId { id, message } => return Left::UnknownId { id, message },
            Classified::Unresolved { id, message, outage } => {
                let held = Held {
                    epoch,
                    msg: owned(msg),
                    why: message.clone(),
                };
                self.block(Some(outage).into(), id, Some((held, message)))
            }
            Classified::Decoded => {
                self.suspects_are_poison(chunk);
                self.taken.take(msg.partition(), epoch, msg.offset());
                run_of(chunk, epoch, msg);
            }
            Classified::Poison { kind, message } => {
                self.suspects_are_poison(chunk);
                self.dead_letter(chunk, epoch, msg, kind, message);
            }
        }
        Left::Nothing
    }

    fn dead_letter(
        &mut self,
        chunk: &mut Chunk,
        epoch: Epoch,
        msg: &impl rdkafka::Message,
        kind: PoisonKind,
        message: String,
    ) {
        let undecodable = Undecodable {
            partition: msg.partition(),
            offset: msg.offset(),
            kind,
            message: &message,
            dead_letter_topic: &self.wiring.dlq.topic,
        };
        undecodable.emit(&self.wiring.shared.metrics, &mut self.undecodable);
        let letter = DeadLetter {
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().unwrap_or_default().to_vec(),
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            timestamp: match msg.timestamp() {
                Timestamp::NotAvailable => None,
                t => t.to_millis(),
            },
            kind,
            message,
            format: "confluent-avro",
        };
        self.taken.take(msg.partition(), epoch, msg.offset());
        run_of(chunk, epoch, msg).letters.push(letter);
    }

    /// The run of unknown ids ended (or expired) short of the threshold: its records are poison.
    fn suspects_are_poison(&mut self, chunk: &mut Chunk) {
        for held in self.holding.take_suspects() {
            if self.wiring.ownership.owns(held.msg.partition(), held.epoch) {
                self.dead_letter(chunk, held.epoch, &held.msg, PoisonKind::UnknownSchema, held.why);
            }
        }
    }

    /// Stops classifying: what was held (the run of unknown ids, then `also`) waits, first in line,
    /// until the registry can tell; the partitions are paused meanwhile and `/ready` says why.
    fn block(&mut self, reason: BlockReason, id: u32, also: Option<(Held, String)>) {
        let why = also.as_ref().map(|(_, w)| w.clone()).unwrap_or_else(|| {
            format!(
                "{} records in a row have schema ids the registry does not know (last: {id}): \
                 is NRT_SCHEMA_REGISTRY_URL the registry of this topic?",
                super::unknown_ids::RUN_THRESHOLD
            )
        });
        self.holding.block(reason, id, also.map(|(h, _)| h), Instant::now());
        let message = format!("paused: {why}");
        log::warn!("{NAME}: {message}");
        self.wiring.shared.health.blocked(NAME, message);
        self.wiring.shared
            .metrics
            .consumer_blocked
            .with_label_values(&[reason.label()])
            .set(1);
    }

    async fn try_unblock(&mut self) {
        let Some(due) = self.holding.recheck_due(Instant::now()) else {
            return;
        };
        // The held records' partitions moved to another member: they are its to judge now.
        let ownership = &self.wiring.ownership;
        self.holding.forget_unowned(|p, e| ownership.owns(p, e));
        if due.reason == BlockReason::SchemaChange {
            self.decoding.forget_plans();
        }
        let answer = match self.holding.holds_any() {
            true => Some(self.decoding.recheck(due.id).await),
            false => None,
        };
        let Settled::Resumed { reason, id, held } = self.holding.settle(answer, Instant::now()) else {
            return;
        };
        match held {
            0 => log::info!("{NAME}: the records held for schema {id} went with their partitions; resuming"),
            n => log::info!("{NAME}: the registry answers for schema {id} again; resuming with {n} held records"),
        }
        self.wiring.shared.health.running(NAME);
        self.wiring.shared
            .metrics
            .consumer_blocked
            .with_label_values(&[reason.label()])
            .set(0);
    }

    /// Forgets what was read from partitions revoked or assigned again since (their owner reads them
    /// again from the last commit).
    fn drop_stale(&mut self, chunk: &mut Chunk) {
        let ownership = &self.wiring.ownership;
        chunk.runs.retain(|p, run| ownership.owns(*p, run.epoch));
        self.holding.forget_unowned(|p, e| ownership.owns(p, e));
    }

    /// Dead letters first (a poison record's offset may move towards a commit only once the
    /// dead-letter topic has it), then each partition's run to the Batcher, without waiting for it: the
    /// bytes count in the budget from here, so the budget, not a reply, keeps the reader in step.
    async fn hand_over(&mut self, mut chunk: Chunk, records: &mut Messages<'_>) -> Result<(), ReaderError> {
        self.wiring.shared.metrics.bytes_consumed.inc_by(chunk.bytes);
        let mut dead_offsets: HashMap<i32, Vec<i64>> = HashMap::new();
        for (partition, run) in &chunk.runs {
            if !run.letters.is_empty() {
                dead_offsets.insert(*partition, run.letters.iter().map(|l| l.offset).collect());
            }
        }
        let letters: Vec<DeadLetter> = chunk
            .runs
            .values_mut()
            .flat_map(|r| r.letters.drain(..))
            .collect();
        if !letters.is_empty() {
            let n = letters.len() as u64;
            let (dlq, shared) = (self.wiring.dlq.clone(), self.wiring.shared.clone());
            let send = async move {
                let health = &shared.health;
                dlq.send_all(letters, &|e| health.error(NAME, e.to_owned())).await
            };
            self.while_polling(send, records).await;
            self.wiring.shared.metrics.dead_letters.inc_by(n);
        }
        for (partition, run) in chunk.runs {
            if !self.wiring.ownership.owns(partition, run.epoch) {
                continue;
            }
            self.wiring.shared
                .metrics
                .events_consumed
                .inc_by(run.records.len() as u64);
            self.last_read.insert(partition, (run.epoch, run.last_offset));
            if run.records.len() > 100 {
                self.shape = run.records.shape();
            }
            let bytes = run.records.bytes();
            let decoded = Decoded {
                partition,
                epoch: run.epoch,
                first_offset: run.first_offset,
                last_offset: run.last_offset,
                records: run.records,
                bytes,
                dead_letters: dead_offsets.remove(&partition).unwrap_or_default(),
            };
            if !self.wiring.batcher.decoded.connected() {
                return Err(ReaderError::BatcherGone);
            }
            self.wiring.inflight.add(bytes);
            // Not `send().await`: a reply per run would make this thread wait on the actors' thread.
            self.wiring.batcher.decoded.do_send(decoded);
        }
        Ok(())
    }

    /// A transactional producer leaves a marker after each transaction; it takes an offset but is never
    /// delivered, so committing "last record + 1" leaves the group one behind forever (lag 1). Once
    /// everything read from a partition is committed and librdkafka's position is past it (markers
    /// only: this thread is the one that polls, and nothing of that partition waits unread), commit
    /// the position instead.
    fn commit_tail(&mut self) {
        if self.tail_checked.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.tail_checked = Instant::now();
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        let waiting = self.holding.partitions();
        let ownership = &self.wiring.ownership;
        self.last_read.retain(|p, (epoch, _)| ownership.owns(*p, *epoch));
        for (&p, &(epoch, last)) in &self.last_read {
            if waiting.contains(&p) || ownership.committed(p) != Some(last + 1) {
                continue;
            }
            let position = positions
                .find_partition(&self.wiring.settings.topic, p)
                .map(|e| e.offset());
            let Some(Offset::Offset(next)) = position.filter(|o| matches!(o, Offset::Offset(n) if *n > last + 1))
            else {
                continue;
            };
            let mut tpl = TopicPartitionList::new();
            if tpl.add_partition_offset(&self.wiring.settings.topic, p, Offset::Offset(next)).is_err() {
                continue;
            }
            let consumer = &self.consumer;
            let _ = ownership.commit_if_owned(p, epoch, next, || consumer.commit(&tpl, CommitMode::Async));
        }
    }

    /// Broker hiccups surface here; librdkafka reconnects by itself.
    fn consumer_error(&mut self, error: &rdkafka::error::KafkaError) {
        ConsumerError { error }.emit(&self.wiring.shared.health, &mut self.consumer_errors);
    }

    fn set_paused(&self, pause: bool) {
        let assignment = match self.consumer.assignment() {
            Ok(a) => a,
            Err(e) => {
                log::warn!("{NAME}: no assignment to pause/resume: {e}");
                return;
            }
        };
        let done = match pause {
            true => self.consumer.pause(&assignment),
            false => self.consumer.resume(&assignment),
        };
        match done {
            Ok(()) => {
                let n = if pause { assignment.count() as i64 } else { 0 };
                self.wiring.shared.metrics.paused_partitions.set(n);
                log::info!(
                    "{NAME}: {} {} partitions ({} bytes in flight, bound {}{})",
                    if pause { "paused" } else { "resumed" },
                    assignment.count(),
                    self.wiring.inflight.bytes(),
                    self.wiring.inflight.bound(),
                    if self.holding.blocked().is_some() { "; waiting for the registry" } else { "" }
                );
            }
            Err(e) => log::warn!("{NAME}: pause/resume: {e}"),
        }
    }
}

/// The run of `msg`'s partition in this chunk (one is opened at its offset if needed).
fn run_of<'c>(chunk: &'c mut Chunk, epoch: Epoch, msg: &impl rdkafka::Message) -> &'c mut Run {
    let run = chunk.runs.entry(msg.partition()).or_insert_with(|| Run {
        epoch,
        first_offset: msg.offset(),
        last_offset: msg.offset(),
        records: Records::default(),
        letters: Vec::new(),
    });
    run.last_offset = msg.offset();
    run
}

/// What of a record's processing waits on the registry (`ReadLoop::process_asking`).
enum Left {
    Nothing,
    /// Its writer schema is not known yet.
    Classify,
    /// The registry said it does not know the id: does it have the topic's subjects at all?
    UnknownId { id: u32, message: String },
}

fn incoming(msg: &impl rdkafka::Message, now: i64) -> Incoming<'_> {
    Incoming {
        offset: msg.offset(),
        key: msg.key().unwrap_or_default(),
        payload: msg.payload().unwrap_or_default(),
        now,
    }
}

fn owned(msg: &impl rdkafka::Message) -> OwnedMessage {
    OwnedMessage::new(
        msg.payload().map(<[u8]>::to_vec),
        msg.key().map(<[u8]>::to_vec),
        msg.topic().to_owned(),
        msg.timestamp(),
        msg.partition(),
        msg.offset(),
        None,
    )
}
