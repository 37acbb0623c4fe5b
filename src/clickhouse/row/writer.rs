//! Writes a record's row while the datum is walked: the walker tells each value, and the field it
//! belongs to (a top-level field of the writer's record) decides where it goes. A value nested inside
//! a field (a record, a map, a union of several kinds) goes to that field's String column as the
//! lake's JSON; an array of scalars to its Array column. Nothing is allocated per record.

use super::value::{put, Problem, RowFault, Scalar};
use super::{Form, RowPlan, Slot};
use crate::avro::json::JsonLine;
use crate::avro::plan::{Field, Record, Unit};
use crate::avro::walk::Visitor;
use crate::clickhouse::types::Type;

/// What a row writer keeps between records, so that writing one allocates nothing.
#[derive(Debug, Default)]
pub struct Scratch {
    /// A JSON value, or an array's items, before its length prefix is known.
    buf: Vec<u8>,
    open: Vec<bool>,
    /// The lake line's open containers (`Records::decode`), kept so that a record allocates nothing.
    pub(crate) line_open: Vec<bool>,
}

/// Writes one record's row (its own columns, not the meta ones) as the datum is walked.
pub struct RowWriter<'a> {
    plan: &'a RowPlan,
    out: &'a mut Vec<u8>,
    scratch: &'a mut Scratch,
    /// Records open: 1 inside the root.
    depth: u32,
    next: usize,
    current: Option<usize>,
    /// Containers open inside the current field's value.
    nest: u32,
    items: u64,
    pub fault: Option<RowFault>,
    /// The event time field's value, in milliseconds.
    pub time_millis: Option<i64>,
}

impl<'a> RowWriter<'a> {
    pub fn new(plan: &'a RowPlan, out: &'a mut Vec<u8>, scratch: &'a mut Scratch) -> Self {
        RowWriter {
            plan,
            out,
            scratch,
            depth: 0,
            next: 0,
            current: None,
            nest: 0,
            items: 0,
            fault: None,
            time_millis: None,
        }
    }

    /// Writes the part of the row of one field of the root record, field `field`, as the walk of the
    /// whole record would when it gets there (`steps` walks some fields this way).
    pub(super) fn at_field(
        plan: &'a RowPlan,
        out: &'a mut Vec<u8>,
        scratch: &'a mut Scratch,
        field: usize,
    ) -> Self {
        RowWriter {
            depth: 1,
            next: field,
            ..RowWriter::new(plan, out, scratch)
        }
    }

    fn slot(&self) -> Option<(usize, &'a Slot)> {
        let i = self.current?;
        Some((i, self.plan.slots.get(i)?))
    }

    fn fail(&mut self, slot: &Slot, problem: Problem) {
        if self.fault.is_none() {
            self.fault = Some(RowFault {
                field: slot.name.clone(),
                problem,
            });
        }
    }

    fn json(&mut self, tell: impl FnOnce(&mut JsonLine<'_>)) {
        let open = std::mem::take(&mut self.scratch.open);
        let mut line = JsonLine::resume(&mut self.scratch.buf, open);
        tell(&mut line);
        self.scratch.open = line.into_open();
    }

    /// The current field's value is complete: its bytes go out after their length.
    fn finish_buffered(&mut self, count: u64) {
        super::value::put_varint(self.out, count);
        self.out.extend_from_slice(&self.scratch.buf);
        self.current = None;
    }

    fn scalar(&mut self, v: Scalar<'_>) {
        let Some((i, slot)) = self.slot() else { return };
        match slot.form {
            Form::Skip => {}
            Form::Json => {
                self.json(|j| v.tell(j));
                if self.nest == 0 {
                    let len = self.scratch.buf.len() as u64;
                    self.finish_buffered(len);
                }
            }
            Form::Array => {
                if let Type::Array(item) = &slot.ty {
                    if item.is_nullable() {
                        self.scratch.buf.push(0);
                    }
                    if let Err(p) = put(&mut self.scratch.buf, item.bare(), v) {
                        self.fail(slot, p);
                    }
                }
            }
            Form::Value => {
                if Some(i) == self.plan.time_field {
                    if let Scalar::Timestamp(t, unit, _) = v {
                        self.time_millis = Some(super::value::to_millis(t, unit));
                    }
                }
                if let Err(p) = put(self.out, &slot.ty, v) {
                    self.fail(slot, p);
                }
                if slot.exact {
                    if slot.nullable {
                        self.out.push(0);
                    }
                    if let Scalar::Timestamp(t, ..) = v {
                        self.out.extend_from_slice(&t.to_le_bytes());
                    }
                }
                self.current = None;
            }
        }
    }

    fn open(&mut self, tell: impl FnOnce(&mut JsonLine<'_>)) {
        let Some((_, slot)) = self.slot() else { return };
        self.nest += 1;
        match slot.form {
            Form::Json => self.json(tell),
            Form::Array if self.nest == 1 => {
                self.items = 0;
                self.scratch.buf.clear();
            }
            _ => {}
        }
    }

    fn close(&mut self, tell: impl FnOnce(&mut JsonLine<'_>)) {
        let Some((_, slot)) = self.slot() else { return };
        self.nest = self.nest.saturating_sub(1);
        match slot.form {
            Form::Json => {
                self.json(tell);
                if self.nest == 0 {
                    let len = self.scratch.buf.len() as u64;
                    self.finish_buffered(len);
                }
            }
            Form::Array if self.nest == 0 => self.finish_buffered(self.items),
            _ => {}
        }
    }
}

impl Visitor for RowWriter<'_> {
    fn null(&mut self) {
        self.scalar(Scalar::Null)
    }
    fn boolean(&mut self, v: bool) {
        self.scalar(Scalar::Boolean(v))
    }
    fn int(&mut self, v: i32) {
        self.scalar(Scalar::Int(v))
    }
    fn long(&mut self, v: i64) {
        self.scalar(Scalar::Long(v))
    }
    fn float(&mut self, v: f32) {
        self.scalar(Scalar::Float(v))
    }
    fn double(&mut self, v: f64) {
        self.scalar(Scalar::Double(v))
    }
    fn bytes(&mut self, v: &[u8]) {
        self.scalar(Scalar::Bytes(v))
    }
    fn string(&mut self, v: &str) {
        self.scalar(Scalar::Str(v))
    }
    fn uuid(&mut self, v: uuid::Uuid) {
        self.scalar(Scalar::Uuid(v))
    }
    fn decimal(&mut self, unscaled: &[u8], scale: u32) {
        self.scalar(Scalar::Decimal(unscaled, scale))
    }
    fn date(&mut self, days: i32) {
        self.scalar(Scalar::Date(days))
    }
    fn time(&mut self, v: i64, unit: Unit) {
        self.scalar(Scalar::Time(v, unit))
    }
    fn timestamp(&mut self, v: i64, unit: Unit, local: bool) {
        self.scalar(Scalar::Timestamp(v, unit, local))
    }
    fn duration(&mut self, months: u32, days: u32, millis: u32) {
        self.scalar(Scalar::Duration(months, days, millis))
    }
    fn fixed(&mut self, v: &[u8]) {
        self.scalar(Scalar::Fixed(v))
    }
    fn symbol(&mut self, index: usize, symbol: &str) {
        self.scalar(Scalar::Symbol(index, symbol))
    }
    fn begin_array(&mut self) {
        self.open(|j| j.begin_array())
    }
    fn item(&mut self) {
        match self.slot() {
            Some((_, slot)) if slot.form == Form::Json => self.json(|j| j.item()),
            Some(_) if self.nest == 1 => self.items += 1,
            _ => {}
        }
    }
    fn end_array(&mut self) {
        self.close(|j| j.end_array())
    }
    fn begin_map(&mut self) {
        self.open(|j| j.begin_map())
    }
    fn key(&mut self, key: &str) {
        if matches!(self.slot(), Some((_, slot)) if slot.form == Form::Json) {
            self.json(|j| j.key(key));
        }
    }
    fn end_map(&mut self) {
        self.close(|j| j.end_map())
    }
    fn begin_record(&mut self, record: &Record) {
        match self.current {
            None => self.depth += 1,
            Some(_) => self.open(|j| j.begin_record(record)),
        }
    }
    fn field(&mut self, field: &Field) {
        if self.current.is_some() {
            if matches!(self.slot(), Some((_, slot)) if slot.form == Form::Json) {
                self.json(|j| j.field(field));
            }
            return;
        }
        let i = self.next;
        self.next += 1;
        let Some(slot) = self.plan.slots.get(i) else {
            return;
        };
        self.current = Some(i);
        self.nest = 0;
        if slot.form == Form::Json {
            self.scratch.buf.clear();
            self.scratch.open.clear();
        }
        if slot.nullable && slot.form != Form::Skip {
            self.out.push(0);
        }
    }
    fn null_field(&mut self, _: &Field) {
        if self.current.is_some() {
            return; // inside a JSON value: a null field is left out
        }
        let i = self.next;
        self.next += 1;
        let Some(slot) = self.plan.slots.get(i) else {
            return;
        };
        match (slot.form, slot.nullable) {
            (Form::Skip, _) => {}
            (_, true) => {
                self.out.push(1);
                if slot.exact {
                    self.out.push(1);
                }
            }
            (_, false) => {
                let column = slot.ty.clone();
                self.fail(slot, Problem::Null(column));
            }
        }
    }
    fn end_record(&mut self) {
        match self.current {
            None => self.depth = self.depth.saturating_sub(1),
            Some(_) => self.close(|j| j.end_record()),
        }
    }
    fn begin_branch(&mut self, name: &str) {
        self.open(|j| j.begin_branch(name))
    }
    fn end_branch(&mut self) {
        self.close(|j| j.end_branch())
    }
}
