//! Reads one datum's bytes along its plan and tells a `Visitor` each value as it goes: no value tree,
//! nothing allocated per value. The only place that knows Avro's binary encoding. Every length and count
//! is checked against the bytes left before anything is read or reserved; nesting and items that take no
//! bytes at all are bounded (`wire::bounds`' limits), so a hostile writer schema costs a dead letter.

use super::plan::{Field, Named, Node, Plan, Record, Union, Unit, UuidForm};
use crate::wire::bounds::{MAX_DEPTH, ZERO_WIDTH_ITEMS};

/// What is told, in order, while a datum is read. Records, arrays and maps open and close around their
/// contents; a record field whose value is null is told as `null_field`, before its value would be.
pub trait Visitor {
    fn null(&mut self);
    fn boolean(&mut self, v: bool);
    fn int(&mut self, v: i32);
    fn long(&mut self, v: i64);
    fn float(&mut self, v: f32);
    fn double(&mut self, v: f64);
    fn bytes(&mut self, v: &[u8]);
    fn string(&mut self, v: &str);
    fn uuid(&mut self, v: uuid::Uuid);
    /// The unscaled value, big-endian two's complement (any length, empty is 0).
    fn decimal(&mut self, unscaled: &[u8], scale: u32);
    /// Days since 1970-01-01.
    fn date(&mut self, days: i32);
    /// Since midnight.
    fn time(&mut self, v: i64, unit: Unit);
    /// Since 1970-01-01T00:00 (UTC, or local time when `local`).
    fn timestamp(&mut self, v: i64, unit: Unit, local: bool);
    fn duration(&mut self, months: u32, days: u32, millis: u32);
    fn fixed(&mut self, v: &[u8]);
    fn symbol(&mut self, index: usize, symbol: &str);
    fn begin_array(&mut self);
    fn item(&mut self);
    fn end_array(&mut self);
    fn begin_map(&mut self);
    fn key(&mut self, key: &str);
    fn end_map(&mut self);
    fn begin_record(&mut self, record: &Record);
    fn field(&mut self, field: &Field);
    fn null_field(&mut self, field: &Field);
    fn end_record(&mut self);
    /// Around the value of a union branch that is written under its name (`Union::wrap`).
    fn begin_branch(&mut self, name: &str);
    fn end_branch(&mut self);
}

/// Two visitors told the same datum in one walk (a record's lake line and its row at once).
impl<A: Visitor, B: Visitor> Visitor for (A, B) {
    fn null(&mut self) {
        self.0.null();
        self.1.null();
    }
    fn boolean(&mut self, v: bool) {
        self.0.boolean(v);
        self.1.boolean(v);
    }
    fn int(&mut self, v: i32) {
        self.0.int(v);
        self.1.int(v);
    }
    fn long(&mut self, v: i64) {
        self.0.long(v);
        self.1.long(v);
    }
    fn float(&mut self, v: f32) {
        self.0.float(v);
        self.1.float(v);
    }
    fn double(&mut self, v: f64) {
        self.0.double(v);
        self.1.double(v);
    }
    fn bytes(&mut self, v: &[u8]) {
        self.0.bytes(v);
        self.1.bytes(v);
    }
    fn string(&mut self, v: &str) {
        self.0.string(v);
        self.1.string(v);
    }
    fn uuid(&mut self, v: uuid::Uuid) {
        self.0.uuid(v);
        self.1.uuid(v);
    }
    fn decimal(&mut self, unscaled: &[u8], scale: u32) {
        self.0.decimal(unscaled, scale);
        self.1.decimal(unscaled, scale);
    }
    fn date(&mut self, days: i32) {
        self.0.date(days);
        self.1.date(days);
    }
    fn time(&mut self, v: i64, unit: Unit) {
        self.0.time(v, unit);
        self.1.time(v, unit);
    }
    fn timestamp(&mut self, v: i64, unit: Unit, local: bool) {
        self.0.timestamp(v, unit, local);
        self.1.timestamp(v, unit, local);
    }
    fn duration(&mut self, months: u32, days: u32, millis: u32) {
        self.0.duration(months, days, millis);
        self.1.duration(months, days, millis);
    }
    fn fixed(&mut self, v: &[u8]) {
        self.0.fixed(v);
        self.1.fixed(v);
    }
    fn symbol(&mut self, index: usize, symbol: &str) {
        self.0.symbol(index, symbol);
        self.1.symbol(index, symbol);
    }
    fn begin_array(&mut self) {
        self.0.begin_array();
        self.1.begin_array();
    }
    fn item(&mut self) {
        self.0.item();
        self.1.item();
    }
    fn end_array(&mut self) {
        self.0.end_array();
        self.1.end_array();
    }
    fn begin_map(&mut self) {
        self.0.begin_map();
        self.1.begin_map();
    }
    fn key(&mut self, key: &str) {
        self.0.key(key);
        self.1.key(key);
    }
    fn end_map(&mut self) {
        self.0.end_map();
        self.1.end_map();
    }
    fn begin_record(&mut self, record: &Record) {
        self.0.begin_record(record);
        self.1.begin_record(record);
    }
    fn field(&mut self, field: &Field) {
        self.0.field(field);
        self.1.field(field);
    }
    fn null_field(&mut self, field: &Field) {
        self.0.null_field(field);
        self.1.null_field(field);
    }
    fn end_record(&mut self) {
        self.0.end_record();
        self.1.end_record();
    }
    fn begin_branch(&mut self, name: &str) {
        self.0.begin_branch(name);
        self.1.begin_branch(name);
    }
    fn end_branch(&mut self) {
        self.0.end_branch();
        self.1.end_branch();
    }
}

/// Why a datum was not read. `is_cost`: the bytes may be valid, but decoding them would cost more than
/// a record may (a dead letter of kind `beyond_limits`); else they are not a datum of the schema.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the datum ends inside a value")]
    Truncated,
    #[error("a number runs past 10 bytes")]
    LongVarint,
    #[error("an int out of range: {0}")]
    IntRange(i64),
    #[error("a negative length: {0}")]
    NegativeLength(i64),
    #[error("a length of {claimed} bytes with {left} left")]
    Length { claimed: u64, left: usize },
    #[error("a block claims {count} items of at least {width} bytes with {left} bytes left")]
    Count { count: u64, width: u64, left: usize },
    #[error("a boolean byte {0:#04x}")]
    Boolean(u8),
    #[error("union branch {index} of {branches}")]
    Branch { index: i64, branches: usize },
    #[error("enum symbol {index} of {symbols}")]
    Symbol { index: i64, symbols: usize },
    #[error("a string that is not UTF-8")]
    Utf8,
    #[error("a uuid that does not parse")]
    Uuid,
    #[error("{0} bytes after the datum")]
    Trailing(usize),
    #[error("values nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("more than {ZERO_WIDTH_ITEMS} items that take no bytes")]
    TooManyEmpty,
}

impl DecodeError {
    pub fn is_cost(&self) -> bool {
        matches!(self, DecodeError::TooDeep | DecodeError::TooManyEmpty)
    }
}

/// Reads `datum` (every byte of it) along `plan`, telling `visitor`.
pub fn walk<V: Visitor>(plan: &Plan, datum: &[u8], visitor: &mut V) -> Result<(), DecodeError> {
    let mut w = Walk {
        plan,
        rest: datum,
        zero_width: 0,
    };
    w.value(&plan.root, visitor, 0)?;
    match w.rest.len() {
        0 => Ok(()),
        n => Err(DecodeError::Trailing(n)),
    }
}

/// A datum read field by field of its root record, by a caller that handles some fields itself
/// (`clickhouse::row::steps`): the same reading, limits and errors as `walk`.
pub struct Cursor<'p, 'b>(Walk<'p, 'b>);

impl<'p, 'b> Cursor<'p, 'b> {
    pub fn new(plan: &'p Plan, datum: &'b [u8]) -> Self {
        Cursor(Walk {
            plan,
            rest: datum,
            zero_width: 0,
        })
    }

    /// The next field of the root record, told as `walk` tells it (`field` or `null_field`, then its
    /// value).
    pub fn field<V: Visitor>(&mut self, f: &'p Field, v: &mut V) -> Result<(), DecodeError> {
        self.0.field(f, v, 0)
    }

    /// A value of `node` inside a root field.
    pub fn value<V: Visitor>(&mut self, node: &'p Node, v: &mut V) -> Result<(), DecodeError> {
        self.0.value(node, v, 1)
    }

    /// The index of the union branch that follows.
    pub fn branch(&mut self, u: &Union) -> Result<usize, DecodeError> {
        self.0.branch(u)
    }

    /// A length-prefixed value's bytes (a string's, unchecked).
    pub fn sized(&mut self) -> Result<&'b [u8], DecodeError> {
        self.0.sized()
    }

    /// The end of the datum: an error if bytes are left.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.0.rest.len() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

struct Walk<'p, 'b> {
    plan: &'p Plan,
    rest: &'b [u8],
    zero_width: u64,
}

impl<'p, 'b> Walk<'p, 'b> {
    fn value<V: Visitor>(&mut self, node: &'p Node, v: &mut V, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        match node {
            Node::Null => v.null(),
            Node::Boolean => match self.take(1)?[0] {
                0 => v.boolean(false),
                1 => v.boolean(true),
                b => return Err(DecodeError::Boolean(b)),
            },
            Node::Int => v.int(self.int()?),
            Node::Long => v.long(self.long()?),
            Node::Float => v.float(f32::from_le_bytes(self.array::<4>()?)),
            Node::Double => v.double(f64::from_le_bytes(self.array::<8>()?)),
            Node::Bytes => v.bytes(self.sized()?),
            Node::String => v.string(self.str()?),
            Node::Uuid(form) => {
                let uuid = match form {
                    UuidForm::String => uuid::Uuid::parse_str(self.str()?).map_err(|_| DecodeError::Uuid)?,
                    UuidForm::Bytes => {
                        uuid::Uuid::from_slice(self.sized()?).map_err(|_| DecodeError::Uuid)?
                    }
                    UuidForm::Fixed => uuid::Uuid::from_bytes(self.array::<16>()?),
                };
                v.uuid(uuid)
            }
            Node::Decimal { scale, fixed, .. } => {
                let unscaled = match fixed {
                    Some(size) => self.take(*size as u64)?,
                    None => self.sized()?,
                };
                v.decimal(unscaled, *scale)
            }
            Node::Date => v.date(self.int()?),
            Node::Time(Unit::Millis) => v.time(self.int()?.into(), Unit::Millis),
            Node::Time(unit) => v.time(self.long()?, *unit),
            Node::Timestamp { unit, local } => v.timestamp(self.long()?, *unit, *local),
            Node::Duration => {
                let b = self.array::<12>()?;
                let part = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                v.duration(part(0), part(4), part(8))
            }
            Node::Array(item) => {
                v.begin_array();
                self.blocks(item, false, v, depth)?;
                v.end_array()
            }
            Node::Map(value) => {
                v.begin_map();
                self.blocks(value, true, v, depth)?;
                v.end_map()
            }
            Node::Union(u) => {
                let branch = self.branch(u)?;
                self.branch_value(u, branch, v, depth)?
            }
            Node::Named(i) => match self.plan.named.get(*i) {
                Some(Named::Record(r)) => self.record(r, v, depth)?,
                Some(Named::Enum(symbols)) => {
                    let index = self.long()?;
                    let symbol = usize::try_from(index)
                        .ok()
                        .and_then(|i| Some((i, symbols.get(i)?)));
                    let (i, s) = symbol.ok_or(DecodeError::Symbol {
                        index,
                        symbols: symbols.len(),
                    })?;
                    v.symbol(i, s)
                }
                Some(Named::Fixed(size)) => v.fixed(self.take(*size as u64)?),
                None => return Err(DecodeError::Truncated),
            },
        }
        Ok(())
    }

    fn record<V: Visitor>(&mut self, r: &'p Record, v: &mut V, depth: usize) -> Result<(), DecodeError> {
        v.begin_record(r);
        for f in r.fields.iter() {
            self.field(f, v, depth)?;
        }
        v.end_record();
        Ok(())
    }

    fn field<V: Visitor>(&mut self, f: &'p Field, v: &mut V, depth: usize) -> Result<(), DecodeError> {
        // A null field is left out of the line, but its value still counts its levels, as `bounds`
        // counts them (the field's value one level down, a union's branch one more).
        let too_deep = |levels: usize| match depth + levels > MAX_DEPTH {
            true => Err(DecodeError::TooDeep),
            false => Ok(()),
        };
        match &f.node {
            Node::Null => {
                too_deep(1)?;
                v.null_field(f)
            }
            Node::Union(u) => {
                let branch = self.branch(u)?;
                if u.branches[branch] == Node::Null {
                    too_deep(2)?;
                    v.null_field(f);
                } else {
                    v.field(f);
                    self.branch_value(u, branch, v, depth + 1)?;
                }
            }
            node => {
                v.field(f);
                self.value(node, v, depth + 1)?;
            }
        }
        Ok(())
    }

    /// The index of the union branch that follows.
    fn branch(&mut self, u: &Union) -> Result<usize, DecodeError> {
        let index = self.long()?;
        usize::try_from(index)
            .ok()
            .filter(|i| *i < u.branches.len())
            .ok_or(DecodeError::Branch {
                index,
                branches: u.branches.len(),
            })
    }

    fn branch_value<V: Visitor>(
        &mut self,
        u: &'p Union,
        branch: usize,
        v: &mut V,
        depth: usize,
    ) -> Result<(), DecodeError> {
        let node = &u.branches[branch];
        match u
            .wrap
            .as_ref()
            .and_then(|names| names.get(branch))
            .filter(|_| *node != Node::Null)
        {
            Some(name) => {
                v.begin_branch(name);
                self.value(node, v, depth + 1)?;
                v.end_branch();
                Ok(())
            }
            None => self.value(node, v, depth + 1),
        }
    }

    /// The blocks of an array, or of a map (`keys`): each count checked before an item is read.
    fn blocks<V: Visitor>(
        &mut self,
        item: &'p Node,
        keys: bool,
        v: &mut V,
        depth: usize,
    ) -> Result<(), DecodeError> {
        let width = self.plan.width(item) + u64::from(keys);
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                // A negative count is followed by the block's size in bytes.
                count = count.checked_neg().ok_or(DecodeError::NegativeLength(count))?;
                self.long()?;
            }
            let count = count as u64;
            if width == 0 {
                self.zero_width += count;
                if self.zero_width > ZERO_WIDTH_ITEMS {
                    return Err(DecodeError::TooManyEmpty);
                }
            } else if count > self.rest.len() as u64 / width {
                return Err(DecodeError::Count {
                    count,
                    width,
                    left: self.rest.len(),
                });
            }
            for _ in 0..count {
                match keys {
                    true => v.key(self.str()?),
                    false => v.item(),
                }
                self.value(item, v, depth + 1)?;
            }
        }
    }

    fn take(&mut self, n: u64) -> Result<&'b [u8], DecodeError> {
        if n > self.rest.len() as u64 {
            return Err(match n {
                1 => DecodeError::Truncated,
                _ => DecodeError::Length {
                    claimed: n,
                    left: self.rest.len(),
                },
            });
        }
        let (head, rest) = self.rest.split_at(n as usize);
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn sized(&mut self) -> Result<&'b [u8], DecodeError> {
        let len = self.long()?;
        let len = u64::try_from(len).map_err(|_| DecodeError::NegativeLength(len))?;
        self.take(len)
    }

    fn str(&mut self) -> Result<&'b str, DecodeError> {
        std::str::from_utf8(self.sized()?).map_err(|_| DecodeError::Utf8)
    }

    fn int(&mut self) -> Result<i32, DecodeError> {
        let n = self.long()?;
        i32::try_from(n).map_err(|_| DecodeError::IntRange(n))
    }

    /// Little-endian base-128, at most 10 bytes, then zigzag (bits past 64 dropped, as apache-avro does).
    fn long(&mut self) -> Result<i64, DecodeError> {
        let mut z: u64 = 0;
        for (i, &b) in self.rest.iter().take(10).enumerate() {
            z |= u64::from(b & 0x7f).wrapping_shl(7 * i as u32);
            if b & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err(match self.rest.len() < 10 {
            true => DecodeError::Truncated,
            false => DecodeError::LongVarint,
        })
    }
}
