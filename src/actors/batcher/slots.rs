//! The Batcher's per-partition bookkeeping as plain data: the open batch, the one batch in flight, and
//! the object of the lake the next batches lie inside. No actor and no I/O here, so the rules are
//! unit-tested with plain values: one batch in flight per partition, epochs, cutting at an object's end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::{Decoded, Limits};
use crate::actors::messages::{Batch, LakePart};
use crate::actors::ownership::Epoch;
use crate::event::Millis;
use crate::lake::{hours, Hour};
use crate::record::Records;

/// How a batch's write-and-commit job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    /// Both sinks have it and its offsets are committed.
    Committed,
    /// The partition was revoked (or assigned again) meanwhile: nothing was committed; the owner reads
    /// the range again from the last commit.
    Abandoned,
    /// Written to ClickHouse, not committed: the batch lies inside an object the lake already holds
    /// (written at `ingested_at`) that ends at `until`, further on. The next batches are written to
    /// ClickHouse only until one reaches `until`; that one commits the whole object.
    Inside { until: i64, ingested_at: Millis },
}

/// An object of the lake, written earlier, that the partition's next batches lie inside: it ends at
/// `until`. Its rows are written with its `ingested_at` so that a replay of it gives the same rows.
/// Batches are not held until they reach its end (that can be more than the memory budget), only their
/// commit is: the first commit is the one at `until + 1`, an object's boundary, as a replay expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cover {
    until: i64,
    ingested_at: Millis,
}

#[derive(Debug)]
pub struct Open {
    /// Its first delivered offset (a record's or a dead letter's, never a transaction marker's): the
    /// offset its object's key names, the same however the partition's records were cut into batches.
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: Records,
    /// The offsets of its range that went to the dead-letter topic.
    pub dead_letters: Vec<i64>,
    pub bytes: usize,
    pub opened: Instant,
    /// When records were last added: a batch that stopped growing may be due early (`Limits::quiet`).
    pub grown: Instant,
    pub flush_now: bool,
}

#[derive(Debug)]
struct Slot {
    epoch: Epoch,
    open: Option<Open>,
    in_flight: Option<Arc<Batch>>,
    cover: Option<Cover>,
}

#[derive(Debug, Default)]
pub struct Slots {
    topic: String,
    map: BTreeMap<i32, Slot>,
    /// Records a new open batch has room for from the start (its size limit).
    room: usize,
    /// Runs whose records were copied into a batch, emptied: the Batcher gives them back to the
    /// reader (`Inflight::give_back`).
    spares: Vec<Records>,
}

impl Slots {
    pub fn new(topic: String) -> Self {
        Slots {
            topic,
            map: BTreeMap::new(),
            room: 0,
            spares: Vec::new(),
        }
    }

    /// The runs emptied since last asked.
    pub fn take_spares(&mut self) -> Vec<Records> {
        std::mem::take(&mut self.spares)
    }

    /// Open batches are given room for `events` when they open, so they never grow by copying
    /// themselves into twice the space (which held the old and the new copy at once, and up to twice
    /// the bytes the budget counts). Pages of room not filled are never touched, so not resident.
    pub fn with_room(mut self, events: usize) -> Self {
        self.room = events;
        self
    }

    pub fn add_room(&mut self, events: usize) {
        self.room += events;
    }

    /// Adds a run read under `d.epoch`; returns the bytes dropped. A run of an older epoch than the
    /// partition's is dropped whole; a newer epoch drops the open batch of the older one (the partition
    /// was assigned again and is read again from the last commit). A batch in flight stays until its
    /// job ends: the partition keeps one batch in flight, whatever its epoch.
    pub fn add(&mut self, d: Decoded) -> usize {
        let slot = self.map.entry(d.partition).or_insert(Slot {
            epoch: d.epoch,
            open: None,
            in_flight: None,
            cover: None,
        });
        let mut dropped = 0;
        if d.epoch < slot.epoch {
            return d.bytes;
        }
        if d.epoch > slot.epoch {
            dropped = slot.open.take().map_or(0, |o| o.bytes);
            slot.cover = None;
            slot.epoch = d.epoch;
        }
        match &mut slot.open {
            Some(open) => {
                open.grown = Instant::now();
                open.last_offset = d.last_offset;
                open.bytes += d.bytes;
                self.spares.extend(open.records.extend(d.records));
                open.dead_letters.extend(d.dead_letters);
            }
            None => {
                let mut records = Records::with_room(self.room.max(d.records.len()), d.records.shape());
                self.spares.extend(records.extend(d.records));
                slot.open = Some(Open {
                    first_offset: d.first_offset,
                    last_offset: d.last_offset,
                    records,
                    dead_letters: d.dead_letters,
                    bytes: d.bytes,
                    opened: Instant::now(),
                    grown: Instant::now(),
                    flush_now: false,
                })
            }
        }
        dropped
    }

    /// Marks every open batch due now (`POST /flush`); returns how many there are.
    pub fn flush_all(&mut self) -> usize {
        let opens = self.map.values_mut().filter_map(|s| s.open.as_mut());
        opens.fold(0, |n, o| {
            o.flush_now = true;
            n + 1
        })
    }

    /// Takes `partition`'s open batch as its batch in flight, if it has none in flight and the open one
    /// is due (or reaches the end of the object it lies inside, where it is cut). `all_due`: every open
    /// batch is due whatever its age and size (draining, or the in-flight budget is pressed).
    pub fn start(&mut self, partition: i32, limits: &Limits, all_due: bool) -> Option<Arc<Batch>> {
        let topic = &self.topic;
        let slot = self.map.get_mut(&partition)?;
        if slot.in_flight.is_some() {
            return None;
        }
        let open = slot.open.as_ref()?;
        let reaches_cover_end = slot.cover.is_some_and(|c| open.last_offset >= c.until);
        if !(reaches_cover_end || all_due || open.flush_now || limits.is_due(open)) {
            return None;
        }
        let mut open = slot.open.take()?;
        let (ingested_at, lake) = match slot.cover {
            None => {
                if let Some(end) = last_within_hours(&open) {
                    slot.open = Some(cut_after(&mut open, end));
                }
                (Millis::now(), LakePart::Write)
            }
            Some(c) => {
                if c.until < open.last_offset {
                    slot.open = Some(cut_after(&mut open, c.until));
                }
                if open.last_offset >= c.until {
                    slot.cover = None;
                }
                (c.ingested_at, LakePart::Held { until: c.until })
            }
        };
        let batch = Arc::new(Batch {
            topic: topic.clone(),
            partition,
            epoch: slot.epoch,
            first_offset: open.first_offset,
            last_offset: open.last_offset,
            records: open.records,
            dead_letters: open.dead_letters,
            bytes: open.bytes,
            ingested_at,
            lake,
        });
        slot.in_flight = Some(batch.clone());
        Some(batch)
    }

    /// The job of `partition`'s batch in flight ended; returns the bytes no longer held (all of the
    /// batch's: a batch inside an object is in ClickHouse, and the object holds it in the lake).
    pub fn finish(&mut self, partition: i32, end: JobEnd) -> usize {
        let Some(slot) = self.map.get_mut(&partition) else {
            return 0;
        };
        let Some(batch) = slot.in_flight.take() else {
            return 0;
        };
        if let JobEnd::Inside { until, ingested_at } = end {
            if batch.epoch == slot.epoch {
                slot.cover = Some(Cover { until, ingested_at });
            }
        }
        batch.bytes
    }

    /// Revocation of `partition` as assigned under `epoch`: drops its open batch. Returns the bytes
    /// dropped and whether a batch is still in flight (the revocation then waits for its job). A slot
    /// of a newer epoch (the partition was assigned again since) is left alone.
    pub fn revoke(&mut self, partition: i32, epoch: Epoch) -> (usize, bool) {
        let Some(slot) = self.map.get_mut(&partition).filter(|s| s.epoch <= epoch) else {
            return (0, false);
        };
        let dropped = slot.open.take().map_or(0, |o| o.bytes);
        slot.cover = None;
        let busy = slot.in_flight.is_some();
        if !busy {
            self.map.remove(&partition);
        }
        (dropped, busy)
    }

    /// Forgets a partition that is no longer owned, once its last job ended. Returns the bytes dropped.
    pub fn forget_if_idle(&mut self, partition: i32) -> usize {
        match self.map.get(&partition) {
            Some(slot) if slot.in_flight.is_none() => self
                .map
                .remove(&partition)
                .and_then(|s| s.open)
                .map_or(0, |o| o.bytes),
            _ => 0,
        }
    }

    pub fn partitions(&self) -> Vec<i32> {
        self.map.keys().copied().collect()
    }

    pub fn in_flight(&self) -> Vec<Arc<Batch>> {
        self.map.values().filter_map(|s| s.in_flight.clone()).collect()
    }

    pub fn has_in_flight(&self, partition: i32) -> bool {
        self.map.get(&partition).is_some_and(|s| s.in_flight.is_some())
    }

    /// Nothing open and nothing in flight.
    pub fn is_idle(&self) -> bool {
        self.map
            .values()
            .all(|s| s.open.is_none() && s.in_flight.is_none())
    }
}

impl Limits {
    fn is_due(&self, open: &Open) -> bool {
        open.records.len() >= self.max_records
            || open.bytes >= self.max_bytes
            || open.opened.elapsed() >= self.flush_interval
            || (!self.quiet.is_zero()
                && open.records.len() >= self.max_records.div_ceil(10)
                && open.grown.elapsed() >= self.quiet)
    }
}

/// Where a batch must end so that its object holds records of at most `hours::MAX_HOURS` distinct
/// hours (the lake writes a reference under each): the offset of the last record before the one that
/// brings in one hour more; None when the whole batch is within the bound.
fn last_within_hours(open: &Open) -> Option<i64> {
    let mut seen = std::collections::BTreeSet::new();
    let mut last_hour = None;
    let mut previous = None;
    for record in open.records.iter() {
        let hour = Hour::of_millis(record.time);
        // Events of a batch mostly share an hour: the set is asked only when it changes.
        if last_hour != Some(hour) {
            last_hour = Some(hour);
            if seen.insert(hour) && seen.len() > hours::MAX_HOURS {
                return previous;
            }
        }
        previous = Some(record.offset);
    }
    None
}

/// Splits `open` after offset `end`: `open` keeps `[first, end]`, the rest is returned. Bytes are shared
/// in proportion to the offsets (the total is kept exact: the budget must balance).
fn cut_after(open: &mut Open, end: i64) -> Open {
    let at = open.records.iter().position(|r| r.offset > end);
    let later = match at {
        Some(i) => open.records.split_off(i),
        None => Records::default(),
    };
    let dead_later = match open.dead_letters.iter().position(|o| *o > end) {
        Some(i) => open.dead_letters.split_off(i),
        None => Vec::new(),
    };
    let first_offset = crate::actors::messages::first_delivered(&later, &dead_later, end);
    let span = (open.last_offset - open.first_offset + 1).max(1) as u128;
    let kept = (end - open.first_offset + 1).clamp(0, span as i64) as u128;
    let kept_bytes = (open.bytes as u128 * kept / span) as usize;
    let rest = Open {
        first_offset,
        last_offset: open.last_offset,
        records: later,
        dead_letters: dead_later,
        bytes: open.bytes - kept_bytes,
        opened: open.opened,
        grown: open.grown,
        flush_now: open.flush_now,
    };
    open.last_offset = end;
    open.bytes = kept_bytes;
    rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run(partition: i32, epoch: Epoch, first: i64, last: i64) -> Decoded {
        Decoded {
            partition,
            epoch,
            first_offset: first,
            last_offset: last,
            records: Records::of((first..=last).map(|o| (o, 1_795_771_800_000 + o))),
            bytes: (last - first + 1) as usize * 10,
            dead_letters: Vec::new(),
        }
    }

    fn limits() -> Limits {
        Limits {
            flush_interval: Duration::from_secs(3600),
            quiet: Duration::ZERO,
            max_records: 100,
            max_bytes: 1 << 30,
        }
    }

    #[test]
    fn one_batch_in_flight_per_partition() {
        let mut s = Slots::new("t".into());
        assert_eq!(s.add(run(0, 1, 0, 149)), 0);
        let first = s.start(0, &limits(), false).map(|b| (b.first_offset, b.last_offset));
        assert_eq!(first, Some((0, 149)), "due by size: the whole open batch goes");
        s.add(run(0, 1, 150, 299));
        assert!(s.start(0, &limits(), false).is_none(), "a second batch while one is in flight");
        assert_eq!(s.finish(0, JobEnd::Committed), 1500);
        let next = s.start(0, &limits(), false).map(|b| (b.first_offset, b.last_offset));
        assert_eq!(next, Some((150, 299)));
    }

    #[test]
    fn runs_copied_into_an_open_batch_are_given_back_empty() {
        let mut s = Slots::new("t".into());
        s.add_room(1_000);
        s.add(run(0, 1, 0, 9));
        s.add(run(0, 1, 10, 19));
        let spares = s.take_spares();
        assert_eq!(spares.len(), 2, "both runs were copied into the batch's room");
        assert!(spares.iter().all(|r| r.is_empty() && r.bytes() == 0));
        assert!(s.take_spares().is_empty(), "each given back once");
        let batch = s.start(0, &limits(), true).map(|b| (b.first_offset, b.last_offset, b.records.len()));
        assert_eq!(batch, Some((0, 19, 20)), "the batch holds every record");
    }

    #[test]
    fn a_batch_that_stopped_growing_is_due_once_it_holds_a_tenth_of_its_limit() {
        let quiet = Limits {
            quiet: Duration::from_millis(30),
            ..limits()
        };
        let mut s = Slots::new("t".into());
        s.add(run(0, 1, 0, 8));
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.start(0, &quiet, false).is_none(), "9 records: below a tenth of 100");
        s.add(run(0, 1, 9, 9));
        assert!(s.start(0, &quiet, false).is_none(), "10 records, but it just grew");
        assert!(s.start(0, &limits(), false).is_none(), "quiet off: not due");
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.start(0, &limits(), false).is_none(), "quiet off: still not due");
        let batch = s.start(0, &quiet, false).map(|b| (b.first_offset, b.last_offset));
        assert_eq!(batch, Some((0, 9)));
    }

    #[test]
    fn a_new_epoch_drops_the_open_batch_of_the_old_one() {
        let mut s = Slots::new("t".into());
        s.add(run(2, 1, 0, 9));
        // Assigned again: the same range comes again from the last commit.
        assert_eq!(s.add(run(2, 5, 0, 4)), 100);
        assert_eq!(s.add(run(2, 1, 10, 19)), 100, "a late run of the old epoch is dropped whole");
        let b = s.start(2, &limits(), true);
        assert_eq!(b.map(|b| (b.epoch, b.first_offset, b.last_offset)), Some((5, 0, 4)));
    }

    #[test]
    fn batches_inside_an_object_are_released_and_only_its_end_is_committed() {
        let mut s = Slots::new("t".into());
        s.add(run(1, 1, 100, 140));
        let b = s.start(1, &limits(), true).map(|b| (b.last_offset, b.lake));
        assert_eq!(b, Some((140, LakePart::Write)));
        s.add(run(1, 1, 141, 160));
        // The lake has [100, 199] already, written at t0: the batch is released, not held until 199.
        let t0 = Millis(1_795_000_000_000);
        assert_eq!(s.finish(1, JobEnd::Inside { until: 199, ingested_at: t0 }), 410);
        let inside = s.start(1, &limits(), true).unwrap_or_else(|| panic!("a batch inside the object is due"));
        assert_eq!((inside.first_offset, inside.last_offset), (141, 160));
        assert_eq!((inside.lake, inside.ingested_at), (LakePart::Held { until: 199 }, t0));
        assert_eq!(s.finish(1, JobEnd::Inside { until: 199, ingested_at: t0 }), 200);
        s.add(run(1, 1, 161, 230));
        let b = s.start(1, &limits(), false).unwrap_or_else(|| panic!("due at the object's end"));
        assert_eq!((b.first_offset, b.last_offset, b.records.len()), (161, 199, 39));
        assert_eq!((b.lake, b.ingested_at), (LakePart::Held { until: 199 }, t0));
        // Bytes balance: what the cut batch and the rest hold is what was added.
        assert_eq!(s.finish(1, JobEnd::Committed), b.bytes);
        let rest = s.start(1, &limits(), true).unwrap_or_else(|| panic!("the rest is open"));
        assert_eq!((rest.first_offset, rest.last_offset, rest.lake), (200, 230, LakePart::Write));
        assert_eq!(b.bytes + rest.bytes, 700);
        assert_ne!(rest.ingested_at, t0, "after the object, a batch of its own");
    }

    /// The rest after an object's end starts at its first delivered offset, as a batch of the first
    /// reading did: past a transaction marker (never delivered), at a dead letter (delivered, and
    /// counted in its batch's range).
    #[test]
    fn the_rest_after_an_object_starts_at_its_first_delivered_offset() {
        let t0 = Millis(1_795_000_000_000);
        // (records after the object's end at 199, dead letters there, where the rest starts)
        let cases = [
            (201..=230, vec![], 201, "a marker at 200"),
            (202..=230, vec![201], 201, "a marker at 200, a dead letter at 201"),
            (201..=230, vec![200], 200, "a dead letter at 200"),
            (200..=230, vec![], 200, "no gap"),
        ];
        for (later, dead_letters, start, case) in cases {
            let mut s = Slots::new("t".into());
            s.add(run(1, 1, 100, 140));
            let _ = s.start(1, &limits(), true);
            s.finish(1, JobEnd::Inside { until: 199, ingested_at: t0 });
            let offsets: Vec<i64> = (141..=199).chain(later).collect();
            s.add(Decoded {
                records: Records::of(offsets.iter().map(|&o| (o, 1_795_771_800_000 + o))),
                bytes: offsets.len() * 10,
                dead_letters,
                ..run(1, 1, 141, 230)
            });
            let b = s.start(1, &limits(), false).map(|b| (b.first_offset, b.last_offset));
            assert_eq!(b, Some((141, 199)), "{case}: cut at the object's end");
            s.finish(1, JobEnd::Committed);
            let rest = s.start(1, &limits(), true).map(|b| (b.first_offset, b.last_offset));
            assert_eq!(rest, Some((start, 230)), "{case}");
        }
    }

    #[test]
    fn a_new_epoch_forgets_the_object_it_was_inside() {
        let mut s = Slots::new("t".into());
        s.add(run(1, 1, 100, 140));
        let _ = s.start(1, &limits(), true);
        let t0 = Millis(1);
        s.finish(1, JobEnd::Inside { until: 199, ingested_at: t0 });
        s.add(run(1, 2, 100, 120));
        let b = s.start(1, &limits(), true).map(|b| (b.first_offset, b.lake));
        assert_eq!(b, Some((100, LakePart::Write)), "read again from the commit: asks the lake again");
    }

    #[test]
    fn a_batch_is_cut_before_its_events_reach_one_hour_too_many() {
        let mut s = Slots::new("t".into());
        let mut d = run(0, 1, 0, 99);
        // Records an hour apart (a backfill): 100 hours in one run.
        d.records = Records::of((0..=99).map(|o| (o, 1_795_771_800_000 + o * 3_600_000)));
        s.add(d);
        let mut ends = Vec::new();
        while let Some(b) = s.start(0, &limits(), true) {
            ends.push((b.first_offset, b.last_offset));
            s.finish(0, JobEnd::Committed);
        }
        assert_eq!(ends, vec![(0, 23), (24, 47), (48, 71), (72, 95), (96, 99)]);
    }

    #[test]
    fn revocation_drops_open_and_waits_for_in_flight() {
        let mut s = Slots::new("t".into());
        s.add(run(0, 1, 0, 9));
        s.add(run(1, 1, 0, 9));
        assert!(s.start(1, &limits(), true).is_some());
        s.add(run(1, 1, 10, 19));
        assert_eq!(s.revoke(0, 0), (0, false), "an older epoch's revocation");
        assert_eq!(s.revoke(0, 1), (100, false));
        assert_eq!(s.revoke(1, 1), (100, true));
        assert!(s.has_in_flight(1));
        assert_eq!(s.finish(1, JobEnd::Abandoned), 100);
        assert_eq!(s.forget_if_idle(1), 0);
        assert!(s.partitions().is_empty());
    }
}
