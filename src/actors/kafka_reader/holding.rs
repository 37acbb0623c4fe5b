//! What the reader holds instead of classifying, and why: the records that wait (read while paused,
//! or behind a block), the run of unknown schema ids (`unknown_ids.rs`), and the block itself — the
//! registry cannot tell what the records are, or the table cannot take them yet. No Kafka and no clock
//! of its own here (the loop passes `now`), so every transition is a unit test; `read_loop.rs` does the
//! asking, the pausing and the telling (health, metrics, logs).

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::decode::{Outage, Recheck};
use super::unknown_ids::{UnknownRun, Verdict};
use crate::actors::ownership::Epoch;

/// How often a blocked reader asks the registry (or the table) again.
pub const RECHECK_EVERY: Duration = Duration::from_secs(5);

/// A record held, as far as holding it goes: which partition, read under which epoch.
pub trait HeldRecord {
    fn partition(&self) -> i32;
    fn epoch(&self) -> Epoch;
}

/// Why everything waits; the label of `nrt_consumer_blocked{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockReason {
    Unreachable,
    /// The registry answers, but refuses us (credentials, rights) or answers nonsense.
    Refuses,
    LacksSchemas,
    /// ClickHouse did not answer when asked for the table's columns.
    Warehouse,
    /// The table cannot take a writer schema (a field retyped beyond widening).
    SchemaChange,
}

impl BlockReason {
    pub fn label(self) -> &'static str {
        match self {
            BlockReason::Unreachable => "registry_unreachable",
            BlockReason::Refuses => "registry_refuses",
            BlockReason::LacksSchemas => "registry_lacks_schemas",
            BlockReason::Warehouse => "clickhouse_unreachable",
            BlockReason::SchemaChange => "schema_change",
        }
    }

    /// Whether `answer` to a recheck of the blocking schema id ends the block: an unreachable
    /// registry needs any answer; a missing schema, a silent or unready table need the schema known.
    pub fn ended_by(self, answer: Recheck) -> bool {
        match self {
            BlockReason::Unreachable | BlockReason::Refuses => answer != Recheck::Unreachable,
            BlockReason::LacksSchemas | BlockReason::Warehouse | BlockReason::SchemaChange => answer == Recheck::Known,
        }
    }
}

impl From<Option<Outage>> for BlockReason {
    fn from(outage: Option<Outage>) -> Self {
        match outage {
            Some(Outage::Refused) => BlockReason::Refuses,
            Some(Outage::Warehouse) => BlockReason::Warehouse,
            Some(Outage::SchemaChange) => BlockReason::SchemaChange,
            _ => BlockReason::Unreachable,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    pub reason: BlockReason,
    /// The schema id that could not be told.
    pub id: u32,
    next_check: Instant,
}

/// How a recheck left the block.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// Not blocked, or no recheck due yet.
    Nothing,
    /// Still blocked; asked again in `RECHECK_EVERY`.
    Still,
    /// Reading goes on with `held` records first in line.
    Resumed { reason: BlockReason, id: u32, held: usize },
}

pub struct Holding<H> {
    /// Records received and not yet classified (while paused or blocked), in read order.
    pending: VecDeque<H>,
    /// Records with ids the registry does not know, held while they come in a row.
    suspects: UnknownRun<H>,
    blocked: Option<Blocked>,
}

impl<H> Default for Holding<H> {
    fn default() -> Self {
        Holding {
            pending: VecDeque::new(),
            suspects: UnknownRun::default(),
            blocked: None,
        }
    }
}

impl<H: HeldRecord> Holding<H> {
    /// A record read while reading is paused: it waits, behind those already waiting.
    pub fn keep(&mut self, record: H) {
        self.pending.push_back(record);
    }

    /// The next record that waits, unless a block stops classifying.
    pub fn next_waiting(&mut self) -> Option<H> {
        match self.blocked {
            Some(_) => None,
            None => self.pending.pop_front(),
        }
    }

    /// A record whose schema id the registry does not know; `RegistryWrong` when it makes the run
    /// long enough to mean the registry is wrong.
    pub fn suspect(&mut self, record: H, now: Instant) -> Verdict {
        self.suspects.push(record, now)
    }

    /// The run of unknown ids has been open too long: it should be judged (poison). Asked for every
    /// record read, so the clock (`now`) is read only while a run is open.
    pub fn suspects_expired(&self, now: impl FnOnce() -> Instant) -> bool {
        self.suspects.is_open() && self.suspects.expired(now())
    }

    /// Ends the run of unknown ids: its records, in read order, to be dead-lettered.
    pub fn take_suspects(&mut self) -> Vec<H> {
        self.suspects.take()
    }

    /// Stops classifying: the run of unknown ids, then `also`, go first in line, in read order, and wait
    /// with the rest until a recheck ends the block.
    pub fn block(&mut self, reason: BlockReason, id: u32, also: Option<H>, now: Instant) {
        let mut front = self.suspects.take();
        front.extend(also);
        for held in front.into_iter().rev() {
            self.pending.push_front(held);
        }
        self.blocked = Some(Blocked {
            reason,
            id,
            next_check: now + RECHECK_EVERY,
        });
    }

    pub fn blocked(&self) -> Option<Blocked> {
        self.blocked
    }

    /// The block whose recheck is due at `now`, if any.
    pub fn recheck_due(&self, now: Instant) -> Option<Blocked> {
        self.blocked.filter(|b| now >= b.next_check)
    }

    /// Whether a recheck needs asking at all: once every held record went with its partition, there is
    /// nothing left to tell.
    pub fn holds_any(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The answer to the due recheck (None: nothing was held, nothing asked).
    pub fn settle(&mut self, answer: Option<Recheck>, now: Instant) -> Settled {
        let Some(b) = self.recheck_due(now) else {
            return Settled::Nothing;
        };
        if answer.is_some_and(|a| !b.reason.ended_by(a)) {
            self.blocked = Some(Blocked {
                next_check: now + RECHECK_EVERY,
                ..b
            });
            return Settled::Still;
        }
        self.blocked = None;
        Settled::Resumed {
            reason: b.reason,
            id: b.id,
            held: self.pending.len(),
        }
    }

    /// Forgets the records of partitions no longer ours under the epoch they were read in (their new
    /// owner reads them again from the last commit).
    pub fn forget_unowned(&mut self, owns: impl Fn(i32, Epoch) -> bool) {
        self.suspects.retain(|h| owns(h.partition(), h.epoch()));
        self.pending.retain(|h| owns(h.partition(), h.epoch()));
    }

    /// The partitions with records held: nothing of them may be committed past what was read.
    pub fn partitions(&self) -> BTreeSet<i32> {
        self.pending.iter().chain(self.suspects.iter()).map(|h| h.partition()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct R(i32, u64, i64);

    impl HeldRecord for R {
        fn partition(&self) -> i32 {
            self.0
        }
        fn epoch(&self) -> Epoch {
            self.1
        }
    }

    fn drain(h: &mut Holding<R>) -> Vec<R> {
        std::iter::from_fn(|| h.next_waiting()).collect()
    }

    #[test]
    fn a_block_puts_the_unknown_run_and_its_record_first_in_read_order() {
        let (mut h, t0) = (Holding::default(), Instant::now());
        h.keep(R(0, 1, 50));
        assert_eq!(h.suspect(R(1, 1, 10), t0), Verdict::Hold);
        assert_eq!(h.suspect(R(1, 1, 11), t0), Verdict::Hold);
        h.block(BlockReason::Unreachable, 7, Some(R(1, 1, 12)), t0);
        assert_eq!(h.next_waiting(), None, "nothing is classified while blocked");
        assert_eq!(h.partitions(), BTreeSet::from([0, 1]));
        assert_eq!(h.settle(Some(Recheck::NotFound), t0 + RECHECK_EVERY), Settled::Resumed {
            reason: BlockReason::Unreachable,
            id: 7,
            held: 4
        });
        assert_eq!(drain(&mut h), vec![R(1, 1, 10), R(1, 1, 11), R(1, 1, 12), R(0, 1, 50)]);
        assert!(h.take_suspects().is_empty());
    }

    #[test]
    fn rechecks_come_every_five_seconds_until_the_answer_ends_the_block() {
        let (mut h, t0) = (Holding::default(), Instant::now());
        h.block(BlockReason::LacksSchemas, 3, Some(R(0, 1, 1)), t0);
        assert_eq!(h.recheck_due(t0 + RECHECK_EVERY - Duration::from_millis(1)), None);
        assert_eq!(h.settle(Some(Recheck::Known), t0), Settled::Nothing, "not due yet");
        let t1 = t0 + RECHECK_EVERY;
        assert_eq!(h.settle(Some(Recheck::NotFound), t1), Settled::Still, "a missing schema is still missing");
        assert_eq!(h.recheck_due(t1 + Duration::from_secs(4)), None, "asked again 5 s later");
        let t2 = t1 + RECHECK_EVERY;
        assert!(matches!(h.settle(Some(Recheck::Known), t2), Settled::Resumed { held: 1, .. }));
        assert_eq!(h.blocked(), None);
    }

    #[test]
    fn which_answers_end_which_blocks() {
        use BlockReason as B;
        let answers = [Recheck::Known, Recheck::NotFound, Recheck::Unreachable];
        for reason in [B::Unreachable, B::Refuses] {
            assert_eq!(answers.map(|a| reason.ended_by(a)), [true, true, false], "{reason:?}: any answer");
        }
        for reason in [B::LacksSchemas, B::Warehouse, B::SchemaChange] {
            assert_eq!(answers.map(|a| reason.ended_by(a)), [true, false, false], "{reason:?}: the schema known");
        }
    }

    #[test]
    fn records_whose_partition_went_elsewhere_are_forgotten_and_end_the_block_unasked() {
        let (mut h, t0) = (Holding::default(), Instant::now());
        h.suspect(R(2, 1, 5), t0);
        h.block(BlockReason::SchemaChange, 9, Some(R(2, 1, 6)), t0);
        h.keep(R(3, 2, 7));
        h.forget_unowned(|p, e| p == 3 && e == 1);
        assert!(!h.holds_any(), "partition 3 was assigned again (epoch 2), partition 2 went elsewhere");
        let t1 = t0 + RECHECK_EVERY;
        assert_eq!(h.settle(None, t1), Settled::Resumed {
            reason: BlockReason::SchemaChange,
            id: 9,
            held: 0
        });
        assert!(h.partitions().is_empty());
    }

    #[test]
    fn an_expired_run_of_unknown_ids_is_taken_whole() {
        let (mut h, t0) = (Holding::default(), Instant::now());
        assert!(!h.suspects_expired(|| unreachable!("no run is open: the clock is not read")));
        h.suspect(R(0, 1, 1), t0);
        h.suspect(R(0, 1, 2), t0);
        assert!(!h.suspects_expired(|| t0 + super::super::unknown_ids::RUN_TIMEOUT - Duration::from_millis(1)));
        assert!(h.suspects_expired(|| t0 + super::super::unknown_ids::RUN_TIMEOUT));
        assert_eq!(h.take_suspects(), vec![R(0, 1, 1), R(0, 1, 2)]);
        assert_eq!(h.next_waiting(), None);
    }
}
