//! Fills the columns (`columns.rs`) as a datum is walked: each value goes to the column of where it
//! is (a record's field, a list's item, a map's value); a column that holds JSON takes the value's
//! JSON text, written by the lake's own `JsonLine` as the value is walked.

use arrow_array::builder::StringBuilder;
use arrow_schema::DataType;

use super::columns::{Col, Columns};
use crate::avro::json::JsonLine;
use crate::avro::plan::{Field, Record, Unit};
use crate::avro::walk::Visitor;

enum Frame {
    /// A record being filled: its column, the index of the child its next field likely is, the child
    /// column of the field being read, and how many of its children were filled.
    Record { col: usize, next: usize, at: Option<usize>, filled: usize },
    List { col: usize, child: usize, items: i32 },
    Map { col: usize, values: usize, entries: i32 },
    /// A value being written as JSON into column `col`: its text so far and the containers open.
    Json { col: usize, text: Vec<u8>, open: Vec<bool>, depth: usize },
}

pub struct ArrowVisitor<'c> {
    columns: &'c mut Columns,
    stack: Vec<Frame>,
    /// A value met where its column takes another kind: a bug in the mapping, never data (the
    /// columns follow the plan the walk follows).
    pub mismatch: bool,
}

impl<'c> ArrowVisitor<'c> {
    pub fn new(columns: &'c mut Columns) -> Self {
        ArrowVisitor {
            columns,
            stack: Vec::with_capacity(8),
            mismatch: false,
        }
    }

    /// Whether a value is being written as JSON: a field, an item or a key then belongs to it (and
    /// never starts one: those mark where the next value goes).
    fn capturing(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Json { .. }))
    }

    /// The column the next value goes to.
    fn target(&self) -> Option<usize> {
        match self.stack.last()? {
            Frame::Record { at, .. } => *at,
            Frame::List { child, .. } => Some(*child),
            Frame::Map { values, .. } => Some(*values),
            Frame::Json { col, .. } => Some(*col),
        }
    }

    /// Writes through `JsonLine` when the value is (inside) one its column keeps as JSON; true if so.
    /// `opens`: +1 for a container begun, -1 for one ended, 0 for anything else.
    fn json(&mut self, opens: i32, write: impl FnOnce(&mut JsonLine)) -> bool {
        if !self.capturing() {
            match self.target() {
                Some(col) if matches!(self.columns.cols[col], Col::Json(_)) && opens >= 0 => {
                    self.stack.push(Frame::Json {
                        col,
                        text: Vec::with_capacity(64),
                        open: Vec::new(),
                        depth: 0,
                    });
                }
                _ => return false,
            }
        }
        let Some(Frame::Json { col, text, open, depth }) = self.stack.last_mut() else {
            return false;
        };
        let mut line = JsonLine::resume(text, std::mem::take(open));
        write(&mut line);
        *open = line.into_open();
        *depth = (*depth as i32 + opens).max(0) as usize;
        if *depth == 0 {
            let (col, text) = (*col, std::mem::take(text));
            self.stack.pop();
            match (&mut self.columns.cols[col], String::from_utf8(text)) {
                (Col::Json(b), Ok(text)) => b.append_value(text),
                _ => self.mismatch = true,
            }
        }
        true
    }

    /// The column of the value that follows, for a scalar.
    fn leaf(&mut self) -> Option<&mut Col> {
        let at = self.target()?;
        self.columns.cols.get_mut(at)
    }

    fn text(&mut self, write: impl FnOnce(&mut StringBuilder)) {
        match self.leaf() {
            Some(Col::Text(b)) => write(b),
            _ => self.mismatch = true,
        }
    }
}

impl Visitor for ArrowVisitor<'_> {
    fn null(&mut self) {
        // Inside a value kept as JSON it is JSON's null; a whole value that is null is a null.
        if self.capturing() && self.json(0, |j| j.null()) {
            return;
        }
        match self.target() {
            Some(at) => self.columns.append_null(at),
            None => self.mismatch = true,
        }
    }

    fn boolean(&mut self, v: bool) {
        if !self.json(0, |j| j.boolean(v)) {
            match self.leaf() {
                Some(Col::Bool(b)) => b.append_value(v),
                _ => self.mismatch = true,
            }
        }
    }

    fn int(&mut self, v: i32) {
        if !self.json(0, |j| j.int(v)) {
            match self.leaf() {
                Some(Col::I32(b, _)) => b.append_value(v),
                // Another writer schema has a long here.
                Some(Col::I64(b, DataType::Int64)) => b.append_value(i64::from(v)),
                _ => self.mismatch = true,
            }
        }
    }

    fn long(&mut self, v: i64) {
        if !self.json(0, |j| j.long(v)) {
            match self.leaf() {
                Some(Col::I64(b, _)) => b.append_value(v),
                _ => self.mismatch = true,
            }
        }
    }

    fn float(&mut self, v: f32) {
        if !self.json(0, |j| j.float(v)) {
            match self.leaf() {
                Some(Col::F32(b)) => b.append_value(v),
                // Another writer schema has a double here.
                Some(Col::F64(b)) => b.append_value(f64::from(v)),
                _ => self.mismatch = true,
            }
        }
    }

    fn double(&mut self, v: f64) {
        if !self.json(0, |j| j.double(v)) {
            match self.leaf() {
                Some(Col::F64(b)) => b.append_value(v),
                _ => self.mismatch = true,
            }
        }
    }

    fn bytes(&mut self, v: &[u8]) {
        if !self.json(0, |j| j.bytes(v)) {
            match self.leaf() {
                Some(Col::Bytes(b)) => b.append_value(v),
                _ => self.mismatch = true,
            }
        }
    }

    fn string(&mut self, v: &str) {
        if !self.json(0, |j| j.string(v)) {
            self.text(|b| b.append_value(v));
        }
    }

    fn uuid(&mut self, v: uuid::Uuid) {
        if !self.json(0, |j| j.uuid(v)) {
            let mut buf = uuid::Uuid::encode_buffer();
            let text = v.hyphenated().encode_lower(&mut buf);
            self.text(|b| b.append_value(&*text));
        }
    }

    fn decimal(&mut self, unscaled: &[u8], scale: u32) {
        if self.json(0, |j| j.decimal(unscaled, scale)) {
            return;
        }
        match self.leaf() {
            Some(Col::Decimal(b, ..)) => match i128_of(unscaled) {
                Some(v) => b.append_value(v),
                None => b.append_null(),
            },
            Some(Col::Text(b)) => {
                let mut text = Vec::new();
                crate::avro::json::decimal(&mut text, unscaled, scale);
                b.append_value(String::from_utf8_lossy(&text));
            }
            _ => self.mismatch = true,
        }
    }

    fn date(&mut self, days: i32) {
        self.int(days)
    }

    fn time(&mut self, v: i64, unit: Unit) {
        if self.json(0, |j| j.time(v, unit)) {
            return;
        }
        match self.leaf() {
            Some(Col::I32(b, _)) => match i32::try_from(v) {
                Ok(v) => b.append_value(v),
                Err(_) => b.append_null(),
            },
            Some(Col::I64(b, _)) => b.append_value(v),
            _ => self.mismatch = true,
        }
    }

    fn timestamp(&mut self, v: i64, unit: Unit, local: bool) {
        if !self.json(0, |j| j.timestamp(v, unit, local)) {
            match self.leaf() {
                Some(Col::I64(b, _)) => b.append_value(v),
                _ => self.mismatch = true,
            }
        }
    }

    fn duration(&mut self, months: u32, days: u32, millis: u32) {
        if !self.json(0, |j| j.duration(months, days, millis)) {
            self.mismatch = true;
        }
    }

    fn fixed(&mut self, v: &[u8]) {
        if !self.json(0, |j| j.fixed(v)) {
            match self.leaf() {
                Some(Col::Fixed(b, _)) => {
                    if b.append_value(v).is_err() {
                        self.mismatch = true;
                    }
                }
                _ => self.mismatch = true,
            }
        }
    }

    fn symbol(&mut self, index: usize, symbol: &str) {
        if !self.json(0, |j| j.symbol(index, symbol)) {
            self.text(|b| b.append_value(symbol));
        }
    }

    fn begin_array(&mut self) {
        if self.json(1, |j| j.begin_array()) {
            return;
        }
        match self.target().map(|col| (col, &mut self.columns.cols[col])) {
            Some((col, Col::List { child, valid, .. })) => {
                valid.push(true);
                let child = *child;
                self.stack.push(Frame::List { col, child, items: 0 });
            }
            _ => self.mismatch = true,
        }
    }

    fn item(&mut self) {
        if self.capturing() && self.json(0, |j| j.item()) {
            return;
        }
        if let Some(Frame::List { items, .. }) = self.stack.last_mut() {
            *items += 1;
        }
    }

    fn end_array(&mut self) {
        if self.json(-1, |j| j.end_array()) {
            return;
        }
        match self.stack.pop() {
            Some(Frame::List { col, items, .. }) => match &mut self.columns.cols[col] {
                Col::List { offsets, .. } => offsets.push(offsets.last().copied().unwrap_or(0) + items),
                _ => self.mismatch = true,
            },
            _ => self.mismatch = true,
        }
    }

    fn begin_map(&mut self) {
        if self.json(1, |j| j.begin_map()) {
            return;
        }
        match self.target().map(|col| (col, &mut self.columns.cols[col])) {
            Some((col, Col::Map { values, valid, .. })) => {
                valid.push(true);
                let values = *values;
                self.stack.push(Frame::Map { col, values, entries: 0 });
            }
            _ => self.mismatch = true,
        }
    }

    fn key(&mut self, key: &str) {
        if self.capturing() && self.json(0, |j| j.key(key)) {
            return;
        }
        match self.stack.last_mut() {
            Some(Frame::Map { col, entries, .. }) => {
                *entries += 1;
                match &mut self.columns.cols[*col] {
                    Col::Map { keys, .. } => keys.append_value(key),
                    _ => self.mismatch = true,
                }
            }
            _ => self.mismatch = true,
        }
    }

    fn end_map(&mut self) {
        if self.json(-1, |j| j.end_map()) {
            return;
        }
        match self.stack.pop() {
            Some(Frame::Map { col, entries, .. }) => match &mut self.columns.cols[col] {
                Col::Map { offsets, .. } => offsets.push(offsets.last().copied().unwrap_or(0) + entries),
                _ => self.mismatch = true,
            },
            _ => self.mismatch = true,
        }
    }

    fn begin_record(&mut self, record: &Record) {
        if self.json(1, |j| j.begin_record(record)) {
            return;
        }
        // The root record is column 0; any other is the column of where it is.
        let col = match self.stack.is_empty() {
            true => Some(0),
            false => self.target(),
        };
        match col.map(|col| (col, &mut self.columns.cols[col])) {
            Some((col, Col::Struct { valid, .. })) => {
                valid.push(true);
                self.stack.push(Frame::Record {
                    col,
                    next: 0,
                    at: None,
                    filled: 0,
                });
            }
            _ => self.mismatch = true,
        }
    }

    fn field(&mut self, field: &Field) {
        if self.capturing() && self.json(0, |j| j.field(field)) {
            return;
        }
        let child = self.child(&field.name);
        if let Some(Frame::Record { at, .. }) = self.stack.last_mut() {
            *at = child;
        }
    }

    fn null_field(&mut self, field: &Field) {
        if self.capturing() && self.json(0, |j| j.null_field(field)) {
            return;
        }
        match self.child(&field.name) {
            Some(child) => self.columns.append_null(child),
            None => self.mismatch = true,
        }
    }

    fn end_record(&mut self) {
        if self.json(-1, |j| j.end_record()) {
            return;
        }
        match self.stack.pop() {
            Some(Frame::Record { col, filled, .. }) => self.fill_missing(col, filled),
            _ => self.mismatch = true,
        }
    }

    fn begin_branch(&mut self, name: &str) {
        if !self.json(1, |j| j.begin_branch(name)) {
            self.mismatch = true;
        }
    }

    fn end_branch(&mut self) {
        if !self.json(-1, |j| j.end_branch()) {
            self.mismatch = true;
        }
    }
}

impl ArrowVisitor<'_> {
    /// The column of the record's field `name`. Fields come in order, each by `field` or `null_field`:
    /// for the schema the columns were made from, the next child is it; for another, it is found by
    /// name.
    fn child(&mut self, name: &str) -> Option<usize> {
        let Some(Frame::Record { col, next, filled, .. }) = self.stack.last_mut() else {
            return None;
        };
        let Col::Struct { names, children, .. } = &self.columns.cols[*col] else {
            return None;
        };
        let i = match names.get(*next) {
            Some(n) if n == name => *next,
            _ => names.iter().position(|n| n == name)?,
        };
        *next = i + 1;
        *filled += 1;
        children.get(i).copied()
    }

    /// A null in each child of struct `col` its record did not fill (a field its writer schema lacks).
    fn fill_missing(&mut self, col: usize, filled: usize) {
        let (children, rows) = match &self.columns.cols[col] {
            Col::Struct { children, valid, .. } if children.len() > filled => (children.clone(), valid.len()),
            _ => return,
        };
        for child in children {
            if self.columns.len(child) < rows {
                self.columns.append_null(child);
            }
        }
    }
}

/// A big-endian two's complement integer of up to 16 bytes (longer ones if their extra bytes only
/// extend the sign), as an i128.
fn i128_of(unscaled: &[u8]) -> Option<i128> {
    let negative = unscaled.first().is_some_and(|b| b & 0x80 != 0);
    let sign = if negative { 0xff } else { 0 };
    let extra = unscaled.len().saturating_sub(16);
    let body = &unscaled[extra..];
    let body_negative = body.first().is_some_and(|b| b & 0x80 != 0);
    if unscaled[..extra].iter().any(|b| *b != sign) || (extra > 0 && body_negative != negative) {
        return None;
    }
    let mut bytes = [sign; 16];
    bytes[16 - body.len()..].copy_from_slice(body);
    Some(i128::from_be_bytes(bytes))
}
