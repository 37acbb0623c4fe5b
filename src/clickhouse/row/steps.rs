//! A record's lake line and row in one pass over its top-level fields, planned once per writer schema
//! and table. A field holding a scalar, or an optional one (`["null", T]`), that its column holds as a
//! value is read and written straight to both: no `RowWriter` working out which field a value belongs
//! to, no pair of visitors telling each value twice (the two were a third of a record's decoding).
//! Any other field (a nested record, an array, a map, a union of several kinds, a value its column
//! holds as JSON or has no column for) is walked as before, into the same buffers. The bytes are the
//! walk's: `tests.rs` compares the two on every type, every column form and every truncated datum.

use super::pass::{Pass, Unwritten};
use super::value::{put, to_millis, Problem, RowFault, Scalar};
use super::writer::{RowWriter, Scratch};
use super::{root_record, single_value, Form, RowPlan};
use crate::avro::plan::{Named, Node, Plan, Record, Unit, UuidForm};
use crate::avro::walk::{Cursor, DecodeError, Visitor};
use crate::clickhouse::types::Type;

/// How each top-level field of a writer's record is decoded.
#[derive(Debug, Clone)]
pub struct Steps(Box<[Step]>);

#[derive(Debug, Clone)]
enum Step {
    /// Walked with the visitors: the field's index.
    Walk(usize),
    Leaf(Leaf),
}

#[derive(Debug, Clone)]
struct Leaf {
    field: usize,
    /// The null branch of an optional field's union.
    null_branch: Option<usize>,
    /// The column's type without Nullable.
    ty: Type,
    nullable: bool,
    /// A DateTime column's exact companion follows.
    exact: bool,
    /// The event time.
    time: bool,
}

/// What one record's pass wrote besides its bytes.
#[derive(Debug)]
pub struct Written {
    pub walked: Result<(), DecodeError>,
    /// The first value a column could not hold.
    pub fault: Option<RowFault>,
    /// The event time field's value, in milliseconds.
    pub time_millis: Option<i64>,
}

impl Steps {
    /// None when the root is not a record (no row plan is made for one either).
    pub fn new(plan: &Plan, rows: &RowPlan) -> Option<Steps> {
        let record = root_record(plan).ok()?;
        let steps = record.fields.iter().enumerate().map(|(i, f)| {
            let leaf = rows
                .slots
                .get(i)
                .filter(|s| s.form == Form::Value)
                .and_then(|slot| {
                    let null_branch = match &f.node {
                        Node::Union(u) if u.branches.len() == 2 && u.wrap.is_none() && slot.nullable => {
                            Some(u.branches.iter().position(|b| *b == Node::Null)?)
                        }
                        Node::Union(_) => return None,
                        _ => None,
                    };
                    is_leaf(single_value(&f.node), plan).then(|| Leaf {
                        field: i,
                        null_branch,
                        ty: slot.ty.clone(),
                        nullable: slot.nullable,
                        exact: slot.exact,
                        time: rows.time_field == Some(i),
                    })
                });
            leaf.map_or(Step::Walk(i), Step::Leaf)
        });
        Some(Steps(steps.collect()))
    }

    /// Decodes `datum` along `plan`, appending its line to `line` and its row's own columns to `row`,
    /// as far as `P` writes them (`pass`).
    pub fn run<P: Pass>(
        &self,
        plan: &Plan,
        rows: &RowPlan,
        datum: &[u8],
        (line, row): (&mut Vec<u8>, &mut Vec<u8>),
        scratch: &mut Scratch,
    ) -> Written {
        let mut written = Written {
            walked: Ok(()),
            fault: None,
            time_millis: None,
        };
        let Ok(record) = root_record(plan) else {
            return written;
        };
        let mut cursor = Cursor::new(plan, datum);
        if P::LINE {
            line.push(b'{');
        }
        let mut first = true;
        for step in self.0.iter() {
            let done = match step {
                Step::Walk(i) => walk_field::<P>(
                    record,
                    *i,
                    &mut cursor,
                    (line, row),
                    rows,
                    scratch,
                    &mut first,
                    &mut written,
                ),
                Step::Leaf(leaf) => leaf.run::<P>(record, &mut cursor, (line, row), &mut first, &mut written),
            };
            if let Err(e) = done {
                written.walked = Err(e);
                return written;
            }
        }
        if P::LINE {
            line.push(b'}');
        }
        written.walked = cursor.finish();
        written
    }
}

/// Values that are one scalar: what a leaf step reads.
fn is_leaf(node: &Node, plan: &Plan) -> bool {
    match node {
        Node::Boolean
        | Node::Int
        | Node::Long
        | Node::Float
        | Node::Double
        | Node::Bytes
        | Node::String
        | Node::Uuid(_)
        | Node::Decimal { .. }
        | Node::Date
        | Node::Time(_)
        | Node::Timestamp { .. } => true,
        Node::Named(i) => matches!(plan.named.get(*i), Some(Named::Enum(_) | Named::Fixed(_))),
        _ => false,
    }
}

/// One field of the root record through the visitors, as the whole walk would tell it.
#[allow(clippy::too_many_arguments)]
fn walk_field<'p, P: Pass>(
    record: &'p Record,
    i: usize,
    cursor: &mut Cursor<'p, '_>,
    (line, row): (&mut Vec<u8>, &mut Vec<u8>),
    rows: &RowPlan,
    scratch: &mut Scratch,
    first: &mut bool,
    written: &mut Written,
) -> Result<(), DecodeError> {
    let Some(f) = record.fields.get(i) else {
        return Ok(());
    };
    let mut open = std::mem::take(&mut scratch.line_open);
    open.clear();
    open.push(*first);
    let (walked, json) = if P::ROW {
        let mut both = (P::resume(line, open), RowWriter::at_field(rows, row, scratch, i));
        let walked = cursor.field(f, &mut both);
        let (json, mut w) = both;
        if let Some(fault) = w.fault.take() {
            written.fault.get_or_insert(fault);
        }
        if w.time_millis.is_some() {
            written.time_millis = w.time_millis;
        }
        (walked, json)
    } else {
        let mut both = (P::resume(line, open), Unwritten::default());
        let walked = cursor.field(f, &mut both);
        (walked, both.0)
    };
    let open = P::into_open(json);
    *first = open.first().copied().unwrap_or(*first);
    scratch.line_open = open;
    walked
}

impl Leaf {
    fn run<'p, P: Pass>(
        &self,
        record: &'p Record,
        cursor: &mut Cursor<'p, '_>,
        (line, row): (&mut Vec<u8>, &mut Vec<u8>),
        first: &mut bool,
        written: &mut Written,
    ) -> Result<(), DecodeError> {
        let Some(f) = record.fields.get(self.field) else {
            return Ok(());
        };
        let node = match (self.null_branch, &f.node) {
            (Some(null), Node::Union(u)) => {
                let branch = cursor.branch(u)?;
                if branch == null {
                    if P::ROW {
                        row.push(1);
                        if self.exact {
                            row.push(1);
                        }
                    }
                    return Ok(());
                }
                &u.branches[branch]
            }
            (_, node) => node,
        };
        if P::LINE {
            if !std::mem::replace(first, false) {
                line.push(b',');
            }
            line.extend_from_slice(&f.json_key);
        }
        if P::ROW && self.nullable {
            row.push(0);
        }
        let mut value = Value::<P> {
            line: P::resume(line, Vec::new()),
            row,
            ty: &self.ty,
            problem: None,
            timestamp: None,
        };
        match node {
            // Strings and uuids read here: most are plain ASCII, whose bytes are their JSON without a
            // UTF-8 check and an escape scan, and most uuids are canonical text, copied as they are.
            Node::String => string(cursor.sized()?, &mut value)?,
            Node::Uuid(UuidForm::String) => uuid(cursor.sized()?, &mut value)?,
            node => cursor.value(node, &mut value)?,
        }
        let (problem, timestamp) = (value.problem, value.timestamp);
        if let Some(problem) = problem {
            written.fault.get_or_insert_with(|| RowFault {
                field: f.name.clone(),
                problem,
            });
        }
        if P::ROW && self.exact {
            if self.nullable {
                row.push(0);
            }
            if let Some((t, _)) = timestamp {
                row.extend_from_slice(&t.to_le_bytes());
            }
        }
        if let (true, Some((t, unit))) = (self.time, timestamp) {
            written.time_millis = Some(to_millis(t, unit));
        }
        Ok(())
    }
}

/// Bytes JSON writes as they are, between quotes: printable ASCII but `"` and `\\`.
fn plain(b: &[u8]) -> bool {
    b.iter()
        .all(|&c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
}

/// A string's bytes, as `Walk` reads and tells them.
fn string<P: Pass>(b: &[u8], value: &mut Value<'_, '_, P>) -> Result<(), DecodeError> {
    if plain(b) {
        P::raw_string(&mut value.line, b);
        value.put(Scalar::Bytes(b));
        return Ok(());
    }
    let s = std::str::from_utf8(b).map_err(|_| DecodeError::Utf8)?;
    value.string(s);
    Ok(())
}

/// A uuid written as a string, as `Walk` reads and tells it.
fn uuid<P: Pass>(b: &[u8], value: &mut Value<'_, '_, P>) -> Result<(), DecodeError> {
    if let Some((u, lowercase)) = canonical_uuid(b) {
        match lowercase {
            true => P::raw_string(&mut value.line, b),
            false => value.line.uuid(u),
        }
        value.put(Scalar::Uuid(u));
        return Ok(());
    }
    let s = std::str::from_utf8(b).map_err(|_| DecodeError::Utf8)?;
    value.uuid(uuid::Uuid::parse_str(s).map_err(|_| DecodeError::Uuid)?);
    Ok(())
}

/// Each byte's value as a hex digit; `UPPER` marks `A`–`F`, `NOT_HEX` anything else.
const HEX: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = UPPER | (10 + i as u8);
        i += 1;
    }
    table
};
const UPPER: u8 = 0x40;
const NOT_HEX: u8 = 0x80;
/// Where the 32 hex digits of the canonical form are.
const DIGITS_AT: [usize; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17, 19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31,
    32, 33, 34, 35,
];

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, and whether its hex digits are all lowercase (then it is
/// its own JSON); None for any other text (`uuid::Uuid::parse_str` decides about those). A table per
/// digit, no branch on its kind: a branch per digit was a quarter of an event's decoding.
fn canonical_uuid(b: &[u8]) -> Option<(uuid::Uuid, bool)> {
    let b: &[u8; 36] = b.try_into().ok()?;
    if [b[8], b[13], b[18], b[23]] != [b'-'; 4] {
        return None;
    }
    let (mut high, mut low, mut kinds) = (0u64, 0u64, 0u8);
    for (half, at) in [(&mut high, &DIGITS_AT[..16]), (&mut low, &DIGITS_AT[16..])] {
        for &i in at {
            let v = HEX[usize::from(b[i])];
            kinds |= v;
            *half = *half << 4 | u64::from(v & 0x0f);
        }
    }
    (kinds & NOT_HEX == 0).then(|| (uuid::Uuid::from_u64_pair(high, low), kinds & UPPER == 0))
}

/// One scalar, to the line as JSON and to the row as its column holds it.
struct Value<'a, 'l, P: Pass> {
    line: P::Out<'l>,
    row: &'a mut Vec<u8>,
    ty: &'a Type,
    problem: Option<Problem>,
    timestamp: Option<(i64, Unit)>,
}

impl<P: Pass> Value<'_, '_, P> {
    fn put(&mut self, v: Scalar<'_>) {
        if !P::ROW {
            return;
        }
        if let Err(p) = put(self.row, self.ty, v) {
            self.problem.get_or_insert(p);
        }
    }
}

/// Only scalars are told to it (`is_leaf`): containers are never opened.
impl<P: Pass> Visitor for Value<'_, '_, P> {
    fn null(&mut self) {
        self.line.null();
        self.put(Scalar::Null)
    }
    fn boolean(&mut self, v: bool) {
        self.line.boolean(v);
        self.put(Scalar::Boolean(v))
    }
    fn int(&mut self, v: i32) {
        self.line.int(v);
        self.put(Scalar::Int(v))
    }
    fn long(&mut self, v: i64) {
        self.line.long(v);
        self.put(Scalar::Long(v))
    }
    fn float(&mut self, v: f32) {
        self.line.float(v);
        self.put(Scalar::Float(v))
    }
    fn double(&mut self, v: f64) {
        self.line.double(v);
        self.put(Scalar::Double(v))
    }
    fn bytes(&mut self, v: &[u8]) {
        self.line.bytes(v);
        self.put(Scalar::Bytes(v))
    }
    fn string(&mut self, v: &str) {
        self.line.string(v);
        self.put(Scalar::Str(v))
    }
    fn uuid(&mut self, v: uuid::Uuid) {
        self.line.uuid(v);
        self.put(Scalar::Uuid(v))
    }
    fn decimal(&mut self, unscaled: &[u8], scale: u32) {
        self.line.decimal(unscaled, scale);
        self.put(Scalar::Decimal(unscaled, scale))
    }
    fn date(&mut self, days: i32) {
        self.line.date(days);
        self.put(Scalar::Date(days))
    }
    fn time(&mut self, v: i64, unit: Unit) {
        self.line.time(v, unit);
        self.put(Scalar::Time(v, unit))
    }
    fn timestamp(&mut self, v: i64, unit: Unit, local: bool) {
        self.line.timestamp(v, unit, local);
        self.timestamp = Some((v, unit));
        self.put(Scalar::Timestamp(v, unit, local))
    }
    fn duration(&mut self, months: u32, days: u32, millis: u32) {
        self.line.duration(months, days, millis);
        self.put(Scalar::Duration(months, days, millis))
    }
    fn fixed(&mut self, v: &[u8]) {
        self.line.fixed(v);
        self.put(Scalar::Fixed(v))
    }
    fn symbol(&mut self, index: usize, symbol: &str) {
        self.line.symbol(index, symbol);
        self.put(Scalar::Symbol(index, symbol))
    }
    fn begin_array(&mut self) {}
    fn item(&mut self) {}
    fn end_array(&mut self) {}
    fn begin_map(&mut self) {}
    fn key(&mut self, _: &str) {}
    fn end_map(&mut self) {}
    fn begin_record(&mut self, _: &Record) {}
    fn field(&mut self, _: &crate::avro::plan::Field) {}
    fn null_field(&mut self, _: &crate::avro::plan::Field) {}
    fn end_record(&mut self) {}
    fn begin_branch(&mut self, _: &str) {}
    fn end_branch(&mut self) {}
}

#[cfg(test)]
mod tests {
    /// The canonical form is read as `uuid` reads it; any other text is left to `uuid`.
    #[test]
    fn canonical_uuids_parse_as_uuid_parses_them() {
        let texts = [
            "6f1c2a4e-8b0d-4c8e-9a57-3f4f1d2e7b10",
            "6F1C2A4E-8B0D-4C8E-9A57-3F4F1D2E7B10",
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "6f1c2a4e-8b0d-4c8e-9a57-3f4f1d2e7b1g",
            "6f1c2a4e08b0d-4c8e-9a57-3f4f1d2e7b10",
            "6f1c2a4e-8b0d-4c8e-9a5-73f4f1d2e7b10",
            "6f1c2a4e8b0d4c8e9a573f4f1d2e7b10",
            "{6f1c2a4e-8b0d-4c8e-9a57-3f4f1d2e7b10}",
            "6f1c2a4e-8b0d-4c8e-9a57-3f4f1d2e7b1",
        ];
        for text in texts {
            let theirs = uuid::Uuid::parse_str(text).ok();
            match super::canonical_uuid(text.as_bytes()) {
                Some((u, lowercase)) => {
                    assert_eq!(Some(u), theirs, "{text}");
                    assert_eq!(lowercase, u.hyphenated().to_string() == text, "{text}");
                }
                None => assert!(text.len() != 36 || theirs.is_none(), "{text}"),
            }
        }
    }
}
