//! What a Kafka record becomes for the sinks, decoded once along its writer schema when it is read: its
//! ClickHouse row (`clickhouse::row`), its event time, and what its lake object is made from (`Keep`):
//! its Avro datum, from which the MinioWriter makes the JSONL lines (`write_jsonl`) or the Parquet
//! columns when the batch is written; or, for a table routed by a field's value, its lake line
//! (`avro::json`) written in the same walk, each with its newline, so that buffer is the JSONL object.
//! `Records` keeps a run of them in flat buffers (keys, lines, rows, datums, an index), so a batch of a
//! million records is a few allocations, not millions, and what it holds in memory is exactly its
//! bytes.

use crate::poison::PoisonKind;
use std::sync::Arc;

use crate::avro::json::JsonLine;
use crate::avro::{walk, DecodeError, Plan};
use crate::clickhouse::row::{Both, LineOnly, Mismatch, RowFault, RowOnly, RowPlan, RowWriter, Scratch, Steps};

/// How records of one writer schema are decoded for one table (built once per schema id).
#[derive(Debug, Clone)]
pub struct RecordPlan {
    pub schema_id: u32,
    pub plan: Plan,
    pub rows: RowPlan,
    /// The same decoding, field by field: what `Records::decode` runs.
    steps: Option<Steps>,
    /// What each record keeps besides its row.
    pub keep: Keep,
}

/// What a record keeps besides its row, by what the lake is written from: its lake line (the JSONL
/// object; a route's field is read from it) or its Avro datum (a Parquet object is walked from them;
/// a line is made from it only when one is needed, for a dead letter). A kept line is never empty
/// (`{}` at least) and ends with a newline; a line not kept is empty, without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    pub line: bool,
    pub datum: bool,
}

impl Keep {
    /// The line only: what replay decodes lines back with (it compares them), and a routed JSONL lake.
    pub const LINE: Keep = Keep { line: true, datum: false };

    /// For a lake of `format`; `route`: the table is named by a field's value, read from the line.
    /// The datum, not the line, for the lake itself: an `events.v1` datum is ~60 bytes where its line
    /// is ~158, so the in-flight budget holds ~1.5 times the records and a backlog is written in two
    /// thirds of the batches (each an INSERT and a PUT), for ~0.1 µs more per event to make the lines
    /// when written (docs/benchmarks.md, "2026-12-07, late").
    pub fn for_lake(format: crate::lake::key::Format, route: bool) -> Keep {
        match (format, route) {
            // The JSONL object is then the buffer of lines: no datum needed.
            (crate::lake::key::Format::Jsonl, true) => Keep::LINE,
            _ => Keep { line: route, datum: true },
        }
    }
}

impl RecordPlan {
    pub fn new(schema_id: u32, plan: Plan, rows: RowPlan) -> RecordPlan {
        RecordPlan {
            steps: Steps::new(&plan, &rows),
            schema_id,
            plan,
            rows,
            keep: Keep::LINE,
        }
    }

    /// The same plan, its records keeping `keep`.
    pub fn keeping(mut self, keep: Keep) -> RecordPlan {
        self.keep = keep;
        self
    }

    /// The name of the field holding the event time, if the schema has one.
    pub fn time_name(&self) -> Option<&str> {
        let record = crate::clickhouse::row::root_record(&self.plan).ok()?;
        Some(record.fields.get(self.rows.time_field?)?.name.as_str())
    }
}

/// Why a record is not one the sinks can take: it goes to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Poison {
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Row(#[from] RowFault),
    /// The writer schema is not one of the table's records (it lacks a key column, is not a record).
    #[error("writer schema {schema_id}: {why}")]
    Unfit { schema_id: u32, why: Mismatch },
}

impl Poison {
    /// The dead letter's kind (`nrt_decode_errors_total{kind}`).
    pub fn kind(&self, time_field: Option<&str>) -> PoisonKind {
        match self {
            Poison::Decode(e) if e.is_cost() => PoisonKind::BeyondLimits,
            Poison::Decode(_) => PoisonKind::Corrupt,
            Poison::Row(f) => f.kind(time_field),
            Poison::Unfit { .. } => PoisonKind::SchemaResolution,
        }
    }

    /// The poison a datum of a writer schema the table cannot take is: it is walked first, so a datum
    /// that is itself corrupt or beyond the limits is named as such.
    pub fn unfit(plan: &Plan, schema_id: u32, why: &Mismatch, datum: &[u8], scratch: &mut Vec<u8>) -> Poison {
        scratch.clear();
        let walked = walk(plan, datum, &mut JsonLine::new(scratch));
        scratch.clear();
        match walked {
            Err(e) => Poison::Decode(e),
            Ok(()) => Poison::Unfit {
                schema_id,
                why: why.clone(),
            },
        }
    }
}

/// A record's line and row in one walk of the whole datum (what `Steps` does field by field).
fn walk_whole(
    plan: &RecordPlan,
    datum: &[u8],
    (lines, rows): (&mut Vec<u8>, &mut Vec<u8>),
    scratch: &mut Scratch,
) -> (Result<(), DecodeError>, Option<RowFault>, Option<i64>) {
    let mut open = std::mem::take(&mut scratch.line_open);
    open.clear();
    let mut both = (JsonLine::resume(lines, open), RowWriter::new(&plan.rows, rows, scratch));
    let walked = walk(&plan.plan, datum, &mut both);
    let (line, mut row) = both;
    let (fault, time) = (row.fault.take(), row.time_millis);
    drop(row);
    scratch.line_open = line.into_open();
    (walked, fault, time)
}

/// Why `Records::write_jsonl` could not make a line: never the data's fault (each datum was decoded
/// along its plan when it was read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("record at offset {0}: no plan for its writer schema {1}")]
    NoPlan(i64, u32),
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

/// One record of a `Records`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: i64,
    /// Event time, ms since the epoch (the ingestion time when the schema has no timestamp field).
    pub time: i64,
    pub schema_id: u32,
    /// The Kafka record's key (empty: none), for a dead letter of its row.
    pub key: &'a [u8],
    pub line: &'a [u8],
    pub row: &'a [u8],
    /// Its Avro datum, when its plan keeps it (else empty).
    pub datum: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    offset: i64,
    time: i64,
    schema_id: u32,
    key_end: usize,
    line_end: usize,
    row_end: usize,
    datum_end: usize,
}

/// Where a record's parts end in each buffer: where the next record's start.
#[derive(Debug, Clone, Copy, Default)]
struct Ends {
    key: usize,
    line: usize,
    row: usize,
    datum: usize,
}

impl Ends {
    fn of(e: &Entry) -> Ends {
        Ends {
            key: e.key_end,
            line: e.line_end,
            row: e.row_end,
            datum: e.datum_end,
        }
    }
}

/// Records in offset order, in flat buffers, with the plans their rows were written along (the rows and
/// the columns they are for travel together: a plan learnt again later never renames older rows).
#[derive(Debug, Clone, Default)]
pub struct Records {
    plans: Vec<Arc<RecordPlan>>,
    keys: Vec<u8>,
    lines: Vec<u8>,
    rows: Vec<u8>,
    datums: Vec<u8>,
    index: Vec<Entry>,
}

/// Bytes per record of each part, on average.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    pub key: usize,
    pub line: usize,
    pub row: usize,
    pub datum: usize,
}

/// The same records, bytes and all (plans compared by schema id).
impl PartialEq for Records {
    fn eq(&self, other: &Records) -> bool {
        let ids = |r: &Records| r.plans.iter().map(|p| p.schema_id).collect::<Vec<_>>();
        (&self.keys, &self.lines, &self.rows, &self.datums, &self.index)
            == (&other.keys, &other.lines, &other.rows, &other.datums, &other.index)
            && ids(self) == ids(other)
    }
}

impl Records {
    /// What a record holds at least: its index entry, a line of `{}` and its newline, a row of its meta
    /// columns.
    pub const MIN_RECORD_BYTES: usize = std::mem::size_of::<Entry>() + 3 + 16;

    /// Every line, each followed by a newline: the lake object of these records (JSONL), as it is.
    pub fn jsonl(&self) -> &[u8] {
        &self.lines
    }

    /// Decodes `datum` (offset `offset`) and appends it; on an error nothing is appended. `now` is the
    /// event time of a schema without a timestamp field.
    pub fn decode(
        &mut self,
        plan: &Arc<RecordPlan>,
        (offset, key): (i64, &[u8]),
        datum: &[u8],
        now: i64,
        scratch: &mut Scratch,
    ) -> Result<(), Poison> {
        let (line_start, row_start) = (self.lines.len(), self.rows.len());
        let (walked, fault, time) = match &plan.steps {
            Some(steps) => {
                let out = (&mut self.lines, &mut self.rows);
                let w = match plan.keep.line {
                    true => steps.run::<Both>(&plan.plan, &plan.rows, datum, out, scratch),
                    false => steps.run::<RowOnly>(&plan.plan, &plan.rows, datum, out, scratch),
                };
                (w.walked, w.fault, w.time_millis)
            }
            None => walk_whole(plan, datum, (&mut self.lines, &mut self.rows), scratch),
        };
        let failed = match (walked, fault) {
            (Err(e), _) => Some(Poison::Decode(e)),
            (Ok(()), Some(f)) => Some(Poison::Row(f)),
            (Ok(()), None) => None,
        };
        if let Some(poison) = failed {
            self.lines.truncate(line_start);
            self.rows.truncate(row_start);
            return Err(poison);
        }
        if plan.keep.line {
            self.lines.push(b'\n');
        } else {
            self.lines.truncate(line_start);
        }
        self.keys.extend_from_slice(key);
        if plan.keep.datum {
            self.datums.extend_from_slice(datum);
        }
        self.keep_plan(plan);
        self.index.push(Entry {
            offset,
            time: time.unwrap_or(now),
            schema_id: plan.schema_id,
            key_end: self.keys.len(),
            line_end: self.lines.len(),
            row_end: self.rows.len(),
            datum_end: self.datums.len(),
        });
        Ok(())
    }

    /// The plans these records were decoded along, one per writer schema.
    pub fn plans(&self) -> &[Arc<RecordPlan>] {
        &self.plans
    }

    /// The plan the rows of writer schema `schema_id` were written along.
    pub fn plan(&self, schema_id: u32) -> Option<&Arc<RecordPlan>> {
        self.plans.iter().find(|p| p.schema_id == schema_id)
    }

    /// Record `r`'s lake line: the one it keeps, or one made from its datum (records that keep their
    /// datums keep none); empty when it has neither.
    pub fn line_of(&self, r: &Record<'_>) -> Vec<u8> {
        if !r.line.is_empty() || r.datum.is_empty() {
            return r.line.to_vec();
        }
        let mut line = Vec::with_capacity(r.datum.len() * 2);
        let made = self.make_line(r, &mut line, &mut Scratch::default());
        if made.is_err() {
            line.clear();
        }
        line
    }

    /// Appends the line of record `r`, which keeps its datum: the steps with the line only (the bytes
    /// `decode` writes, proven equal by the differential test), or the whole walk for a root that is not
    /// a record.
    fn make_line(&self, r: &Record<'_>, out: &mut Vec<u8>, scratch: &mut Scratch) -> Result<(), LineError> {
        let plan = self.plan(r.schema_id).ok_or(LineError::NoPlan(r.offset, r.schema_id))?;
        match &plan.steps {
            // The line-only pass writes no row: nothing goes to this buffer.
            Some(steps) => Ok(steps
                .run::<LineOnly>(&plan.plan, &plan.rows, r.datum, (out, &mut Vec::new()), scratch)
                .walked?),
            None => Ok(crate::avro::json_line(&plan.plan, r.datum, out)?),
        }
    }

    /// Every record's lake line, each followed by a newline, in order: the JSONL object of records
    /// that keep their datums (a line kept is copied), each line made as `decode` makes it. Fails only
    /// if a datum no longer decodes along its plan, which `decode` has checked: a bug, not the data.
    pub fn write_jsonl(&self, out: &mut Vec<u8>) -> Result<(), LineError> {
        let mut scratch = Scratch::default();
        for r in self.iter() {
            match r.line.is_empty() {
                false => out.extend_from_slice(r.line),
                true => self.make_line(&r, out, &mut scratch)?,
            }
            out.push(b'\n');
        }
        Ok(())
    }

    fn keep_plan(&mut self, plan: &Arc<RecordPlan>) {
        if !self.plans.iter().any(|p| Arc::ptr_eq(p, plan)) {
            self.plans.retain(|p| p.schema_id != plan.schema_id);
            self.plans.push(plan.clone());
        }
    }

    /// The average size of these records' parts: room for more like them (`with_room`).
    pub fn shape(&self) -> Shape {
        let n = self.len().max(1);
        Shape {
            key: self.keys.len() / n,
            line: self.lines.len() / n,
            row: self.rows.len() / n,
            datum: self.datums.len() / n,
        }
    }

    /// Empty, with room for `records` of `shape`: a batch given its room when it opens never grows by
    /// copying itself (which held two copies at once); room not filled is never touched, so not
    /// resident.
    pub fn with_room(records: usize, shape: Shape) -> Records {
        Records {
            plans: Vec::new(),
            keys: Vec::with_capacity(shape.key * records),
            lines: Vec::with_capacity(shape.line * records),
            rows: Vec::with_capacity(shape.row * records),
            datums: Vec::with_capacity(shape.datum * records),
            index: Vec::with_capacity(records),
        }
    }

    pub fn clear(&mut self) {
        self.plans.clear();
        self.keys.clear();
        self.lines.clear();
        self.rows.clear();
        self.datums.clear();
        self.index.clear();
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// What these records hold (the in-flight budget counts it): the bytes written, not the room
    /// reserved for more, which is never touched until written.
    pub fn bytes(&self) -> usize {
        self.keys.len()
            + self.lines.len()
            + self.rows.len()
            + self.datums.len()
            + self.index.len() * std::mem::size_of::<Entry>()
    }

    pub fn get(&self, i: usize) -> Option<Record<'_>> {
        let e = self.index.get(i)?;
        let starts = i.checked_sub(1).and_then(|p| self.index.get(p)).map_or(Ends::default(), Ends::of);
        self.record(e, starts)
    }

    /// Every record in order: each one's parts start where the one before ended, so no entry is looked
    /// up twice (what `get` does for one record).
    pub fn iter(&self) -> impl Iterator<Item = Record<'_>> + '_ {
        let mut starts = Ends::default();
        self.index.iter().filter_map(move |e| {
            let record = self.record(e, starts);
            starts = Ends::of(e);
            record
        })
    }

    fn record(&self, e: &Entry, starts: Ends) -> Option<Record<'_>> {
        Some(Record {
            offset: e.offset,
            time: e.time,
            schema_id: e.schema_id,
            key: self.keys.get(starts.key..e.key_end)?,
            // Without its newline; a line not kept is empty.
            line: self.lines.get(starts.line..e.line_end.saturating_sub(1).max(starts.line))?,
            row: self.rows.get(starts.row..e.row_end)?,
            datum: self.datums.get(starts.datum..e.datum_end)?,
        })
    }

    pub fn first(&self) -> Option<Record<'_>> {
        self.get(0)
    }

    pub fn last(&self) -> Option<Record<'_>> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// Appends `other`'s records after these; `other` is given back emptied when its bytes were copied
    /// (its buffers can be filled again), None when it was taken whole.
    pub fn extend(&mut self, mut other: Records) -> Option<Records> {
        // Taken whole only when it is at least the room these have: room given up front (`with_room`)
        // must not be thrown away for a run's small buffers, which would then grow by copying.
        if self.is_empty() && other.room() >= self.room() {
            *self = other;
            return None;
        }
        for plan in &other.plans {
            self.keep_plan(plan);
        }
        let (keys, lines, rows, datums) = (self.keys.len(), self.lines.len(), self.rows.len(), self.datums.len());
        self.keys.extend_from_slice(&other.keys);
        self.lines.extend_from_slice(&other.lines);
        self.rows.extend_from_slice(&other.rows);
        self.datums.extend_from_slice(&other.datums);
        self.index.extend(other.index.iter().map(|e| Entry {
            key_end: e.key_end + keys,
            line_end: e.line_end + lines,
            row_end: e.row_end + rows,
            datum_end: e.datum_end + datums,
            ..*e
        }));
        other.clear();
        Some(other)
    }

    /// The bytes these buffers have room for.
    pub fn room(&self) -> usize {
        self.keys.capacity() + self.lines.capacity() + self.rows.capacity() + self.datums.capacity()
    }

    /// The records `keep` accepts, in order (a copy).
    pub fn select(&self, keep: impl Fn(&Record<'_>) -> bool) -> Records {
        let mut out = self.empty_like();
        for r in self.iter().filter(|r| keep(r)) {
            out.push(r);
        }
        out
    }

    /// Moves the records from index `at` on into a `Records` of their own.
    pub fn split_off(&mut self, at: usize) -> Records {
        let tail = self.select_range(at..self.len());
        self.truncate(at);
        tail
    }

    /// Keeps the first `len` records (their plans stay).
    pub fn truncate(&mut self, len: usize) {
        let (keys, lines, rows, datums) = match len.checked_sub(1).and_then(|i| self.index.get(i)) {
            Some(last) => (last.key_end, last.line_end, last.row_end, last.datum_end),
            None => (0, 0, 0, 0),
        };
        if len < self.index.len() {
            self.keys.truncate(keys);
            self.lines.truncate(lines);
            self.rows.truncate(rows);
            self.datums.truncate(datums);
            self.index.truncate(len);
        }
    }

    fn select_range(&self, range: std::ops::Range<usize>) -> Records {
        let mut out = self.empty_like();
        for r in range.filter_map(|i| self.get(i)) {
            out.push(r);
        }
        out
    }

    /// No records, the same plans.
    fn empty_like(&self) -> Records {
        Records {
            plans: self.plans.clone(),
            ..Records::default()
        }
    }

    /// Records of plain values, for tests of what moves them: `(offset, time)` each, its line
    /// `{"n":offset}` and its row the offset's bytes.
    #[cfg(test)]
    pub(crate) fn of(records: impl IntoIterator<Item = (i64, i64)>) -> Records {
        let mut out = Records::default();
        for (offset, time) in records {
            let line = format!("{{\"n\":{offset}}}");
            out.push(Record {
                offset,
                time,
                schema_id: 1,
                key: b"k",
                line: line.as_bytes(),
                row: &offset.to_le_bytes(),
                datum: &[],
            });
        }
        out
    }

    fn push(&mut self, r: Record<'_>) {
        self.keys.extend_from_slice(r.key);
        if !r.line.is_empty() {
            self.lines.extend_from_slice(r.line);
            self.lines.push(b'\n');
        }
        self.rows.extend_from_slice(r.row);
        self.datums.extend_from_slice(r.datum);
        self.index.push(Entry {
            offset: r.offset,
            time: r.time,
            schema_id: r.schema_id,
            key_end: self.keys.len(),
            line_end: self.lines.len(),
            row_end: self.rows.len(),
            datum_end: self.datums.len(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clickhouse::types::Server;
    use crate::event::{Event, Millis, Money, SCHEMA_V1};
    use crate::fast_avro::{self, Shape};

    fn events_plan() -> Arc<RecordPlan> {
        let schema = apache_avro::Schema::parse_str(SCHEMA_V1).unwrap_or_else(|e| panic!("{e}"));
        let plan = Plan::new(&schema).unwrap_or_else(|e| panic!("{e}"));
        let columns = crate::clickhouse::table::columns_of(&plan, Server::LEGACY).unwrap_or_else(|e| panic!("{e}"));
        let rows = RowPlan::new(&plan, &columns, Server::LEGACY, None).unwrap_or_else(|e| panic!("{e}"));
        Arc::new(RecordPlan::new(7, plan, rows))
    }

    fn datum(n: u128, created_at: i64) -> Vec<u8> {
        let e = Event {
            event_id: uuid::Uuid::from_u128(n),
            kind: "view".into(),
            user_id: n as i64,
            amount: Money(n as i64),
            currency: "EUR".into(),
            created_at: Millis(created_at),
            extra: None,
        };
        let mut out = Vec::new();
        fast_avro::encode_event(&e, Shape::V1, &mut out);
        out
    }

    #[test]
    fn records_are_kept_whole_and_poison_leaves_nothing_behind() {
        let plan = events_plan();
        let mut scratch = Scratch::default();
        let mut records = Records::default();
        for o in 0..10 {
            let at = if o == 4 { -5 } else { 1_795_771_800_000 + o };
            let decoded = records.decode(&plan, (o, b"k"), &datum(o as u128, at), 0, &mut scratch);
            assert_eq!(decoded.is_err(), o == 4, "offset {o}");
            if let Err(poison) = decoded {
                assert_eq!(poison.kind(Some("created_at")), PoisonKind::CreatedAtOutOfRange);
            }
        }
        assert!(records.decode(&plan, (10, b""), &[1, 2], 0, &mut scratch).is_err_and(|p| p.kind(None) == PoisonKind::Corrupt));
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [0, 1, 2, 3, 5, 6, 7, 8, 9]);
        let three = records.get(3).unwrap_or_else(|| panic!("record 3"));
        assert_eq!(three.time, 1_795_771_800_003);
        assert_eq!(three.schema_id, 7);
        let line: serde_json::Value = serde_json::from_slice(three.line).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(line["user_id"], 3);
        let (high, low) = uuid::Uuid::from_u128(3).as_u64_pair();
        assert_eq!((&three.row[..8], &three.row[8..16]), (&high.to_le_bytes()[..], &low.to_le_bytes()[..]));

        let mut head = records.clone();
        let tail = head.split_off(4);
        assert_eq!(head.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(tail.iter().map(|r| r.offset).collect::<Vec<_>>(), [5, 6, 7, 8, 9]);
        head.extend(tail);
        assert_eq!(head, records, "split and joined again: the same bytes");
        let odd = records.select(|r| r.offset % 2 == 1);
        assert_eq!(odd.iter().map(|r| r.offset).collect::<Vec<_>>(), [1, 3, 5, 7, 9]);
        assert_eq!(odd.get(2).map(|r| r.line), records.get(4).map(|r| r.line));
        assert_eq!(records.first().map(|r| r.offset), Some(0));
        assert_eq!(records.last().map(|r| r.offset), Some(9));
        let mut none = records.clone();
        assert_eq!(none.split_off(0), records);
        assert!(none.is_empty() && none.iter().next().is_none());
    }

    /// A batch given room up front keeps it when runs are added: the first run does not replace it, so
    /// the batch never grows by copying itself (which held two copies at once).
    #[test]
    fn an_open_batch_keeps_the_room_it_was_given() {
        let shape = super::Shape {
            key: 16,
            line: 64,
            row: 32,
            datum: 0,
        };
        let mut batch = Records::with_room(1_000, shape);
        let room = (batch.keys.capacity(), batch.lines.capacity(), batch.rows.capacity());
        let lines = batch.lines.as_ptr();
        for first in [0i64, 100, 200] {
            batch.extend(Records::of((first..first + 100).map(|o| (o, o))));
        }
        assert_eq!(batch.len(), 300);
        assert_eq!((batch.keys.capacity(), batch.lines.capacity(), batch.rows.capacity()), room);
        assert_eq!(batch.lines.as_ptr(), lines, "the same buffer, never moved");
        assert_eq!(batch.iter().map(|r| r.offset).collect::<Vec<_>>(), (0..300).collect::<Vec<_>>());

        // With no room given, the first run is taken whole (nothing copied).
        let run = Records::of((0..10).map(|o| (o, o)));
        let taken = run.lines.as_ptr();
        let mut empty = Records::default();
        empty.extend(run);
        assert_eq!(empty.lines.as_ptr(), taken);
    }

    /// A Parquet lake's records keep their datums and no line: the same rows, an empty line each, and
    /// `line_of` (what a refused row's dead letter carries) makes the very line a JSONL lake's record
    /// keeps. A batch given room for datums keeps it as runs without lines are added.
    #[test]
    fn records_keeping_datums_make_their_lines_only_when_asked() {
        let with_line = events_plan();
        let with_datum = Arc::new(
            (*with_line)
                .clone()
                .keeping(Keep::for_lake(crate::lake::key::Format::Parquet, false)),
        );
        let (mut lines, mut scratch) = (Records::default(), Scratch::default());
        let mut runs = Vec::new();
        for o in 0..6 {
            let d = datum(o as u128, 1_795_771_800_000 + o);
            let mut run = Records::default();
            for (records, plan) in [(&mut lines, &with_line), (&mut run, &with_datum)] {
                records
                    .decode(plan, (o, b"k"), &d, 0, &mut scratch)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            runs.push(run);
        }
        let mut batch = Records::with_room(6, runs[0].shape());
        let room = batch.room();
        for run in runs {
            batch.extend(run);
        }
        assert_eq!(batch.room(), room, "the room given up front is kept");
        let mut datums = batch;
        assert_eq!(datums.len(), 6);
        assert!(datums.jsonl().is_empty(), "no line kept");
        for (a, b) in lines.iter().zip(datums.iter()) {
            assert_eq!((a.offset, a.time, a.row), (b.offset, b.time, b.row));
            assert!(b.line.is_empty() && !b.datum.is_empty());
            assert_eq!(datums.line_of(&b), a.line, "offset {}", a.offset);
            assert_eq!(lines.line_of(&a), a.line);
        }
        let mut made = Vec::new();
        datums.write_jsonl(&mut made).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(made, lines.jsonl(), "the JSONL object made from the datums is the one the lines make");
        let mut copied = Vec::new();
        lines.write_jsonl(&mut copied).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(copied, lines.jsonl(), "kept lines are copied");
        let tail = datums.split_off(4);
        assert_eq!(tail.iter().map(|r| r.offset).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(tail.get(1).map(|r| tail.line_of(&r)), lines.get(5).map(|r| r.line.to_vec()));
    }
}
