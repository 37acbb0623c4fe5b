//! One value in RowBinary, as a column of a given type holds it, and the values no column can hold
//! (`RowFault`: the record is dead-lettered with the field and the reason).

use crate::avro::json;
use crate::avro::plan::Unit;
use crate::avro::walk::Visitor;
use crate::clickhouse::types::{self, Type};
use crate::poison::PoisonKind;

/// A value a column cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {problem}")]
pub struct RowFault {
    pub field: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{value} {} is outside what ClickHouse {column} holds ({})", unit_name(*.unit), range_of(.column))]
    Time { value: i64, unit: Unit, column: Type },
    #[error("day {days} since 1970 is outside what ClickHouse {column} holds ({})", range_of(.column))]
    Date { days: i32, column: Type },
    #[error("{text} has more than the {precision} digits of its column")]
    Decimal { text: String, precision: u32 },
    #[error("null, and column is {0}")]
    Null(Type),
    #[error("a {value} for a {column} column (a writer schema the row plan was not made for)")]
    Unfit { value: &'static str, column: Type },
}

impl RowFault {
    /// The dead letter's kind: the event time out of range keeps the name it has always had.
    pub fn kind(&self, time_field: Option<&str>) -> PoisonKind {
        match &self.problem {
            Problem::Time { .. } if time_field == Some(self.field.as_str()) && self.field == "created_at" => {
                PoisonKind::CreatedAtOutOfRange
            }
            Problem::Time { .. } | Problem::Date { .. } | Problem::Decimal { .. } => PoisonKind::OutOfRange,
            Problem::Null(_) => PoisonKind::NullNotAllowed,
            Problem::Unfit { .. } => PoisonKind::SchemaResolution,
        }
    }
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Millis => "ms",
        Unit::Micros => "µs",
        Unit::Nanos => "ns",
    }
}

/// The last day a `Date` column takes: 2106-02-07. The type holds days up to 2149, but ClickHouse 18.16
/// reads a later one as 1970-01-01 (its calendar ends with DateTime's range), so no server is given one.
const DATE_LAST_DAY: u16 = 49_710;

fn range_of(column: &Type) -> &'static str {
    match column {
        Type::DateTime => "1970-01-01 to 2106-02-07 06:28:15 UTC",
        Type::DateTime64(_) => "1900-01-01 to 2299-12-31 23:59:59 UTC",
        Type::Date => "1970-01-01 to 2106-02-07",
        Type::Date32 => "1900-01-01 to 2299-12-31",
        _ => "its range",
    }
}

/// One value the walker told.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scalar<'a> {
    Null,
    Boolean(bool),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Bytes(&'a [u8]),
    Str(&'a str),
    Uuid(uuid::Uuid),
    Decimal(&'a [u8], u32),
    Date(i32),
    Time(i64, Unit),
    Timestamp(i64, Unit, bool),
    Duration(u32, u32, u32),
    Fixed(&'a [u8]),
    Symbol(usize, &'a str),
}

impl Scalar<'_> {
    pub(super) fn tell(self, v: &mut impl Visitor) {
        match self {
            Scalar::Null => v.null(),
            Scalar::Boolean(b) => v.boolean(b),
            Scalar::Int(n) => v.int(n),
            Scalar::Long(n) => v.long(n),
            Scalar::Float(x) => v.float(x),
            Scalar::Double(x) => v.double(x),
            Scalar::Bytes(b) => v.bytes(b),
            Scalar::Str(s) => v.string(s),
            Scalar::Uuid(u) => v.uuid(u),
            Scalar::Decimal(d, s) => v.decimal(d, s),
            Scalar::Date(d) => v.date(d),
            Scalar::Time(t, u) => v.time(t, u),
            Scalar::Timestamp(t, u, l) => v.timestamp(t, u, l),
            Scalar::Duration(m, d, ms) => v.duration(m, d, ms),
            Scalar::Fixed(b) => v.fixed(b),
            Scalar::Symbol(i, s) => v.symbol(i, s),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Boolean(_) => "boolean",
            Scalar::Int(_) => "int",
            Scalar::Long(_) => "long",
            Scalar::Float(_) => "float",
            Scalar::Double(_) => "double",
            Scalar::Bytes(_) => "bytes",
            Scalar::Str(_) => "string",
            Scalar::Uuid(_) => "uuid",
            Scalar::Decimal(..) => "decimal",
            Scalar::Date(_) => "date",
            Scalar::Time(..) => "time",
            Scalar::Timestamp(..) => "timestamp",
            Scalar::Duration(..) => "duration",
            Scalar::Fixed(_) => "fixed",
            Scalar::Symbol(..) => "enum",
        }
    }
}

/// The meta columns of a row, after its own: ingestion time (DateTime), partition, offset.
pub fn put_meta(out: &mut Vec<u8>, ingested_at_secs: u32, partition: i32, offset: i64) {
    out.extend_from_slice(&ingested_at_secs.to_le_bytes());
    out.extend_from_slice(&partition.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn per_second(unit: Unit) -> i64 {
    match unit {
        Unit::Millis => 1_000,
        Unit::Micros => 1_000_000,
        Unit::Nanos => 1_000_000_000,
    }
}

pub fn to_millis(v: i64, unit: Unit) -> i64 {
    v.div_euclid(per_second(unit) / 1_000)
}

/// 10^p for every precision a Decimal128 has (0–38): the values a `Decimal(p, s)` holds are below it.
const POW10: [u128; 39] = {
    let mut t = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// DateTime64's range in seconds: 1900-01-01 to 2299-12-31 23:59:59 UTC.
const DATETIME64_SECS: std::ops::RangeInclusive<i64> = -2_208_988_800..=10_413_791_999;
/// Date32's range in days: 1900-01-01 to 2299-12-31.
const DATE32_DAYS: std::ops::RangeInclusive<i32> = -25_567..=120_529;

/// `v` in RowBinary as a column of type `ty` (bare) holds it.
pub(super) fn put(out: &mut Vec<u8>, ty: &Type, v: Scalar<'_>) -> Result<(), Problem> {
    let unfit = || Problem::Unfit {
        value: v.name(),
        column: ty.clone(),
    };
    match (ty, v) {
        (
            Type::Bool
            | Type::Int {
                bits: 8,
                signed: false,
            },
            Scalar::Boolean(b),
        ) => out.push(u8::from(b)),
        (
            Type::Int { bits, .. },
            Scalar::Int(_) | Scalar::Long(_) | Scalar::Time(..) | Scalar::Timestamp(..),
        ) => {
            let n = match v {
                Scalar::Int(n) => i64::from(n),
                Scalar::Long(n) | Scalar::Time(n, _) | Scalar::Timestamp(n, ..) => n,
                _ => return Err(unfit()),
            };
            match bits {
                64 => out.extend_from_slice(&n.to_le_bytes()),
                32 => out.extend_from_slice(&(n as i32).to_le_bytes()),
                16 => out.extend_from_slice(&(n as i16).to_le_bytes()),
                _ => out.push(n as u8),
            }
        }
        (Type::Float32, Scalar::Int(n)) => out.extend_from_slice(&(n as f32).to_le_bytes()),
        (Type::Float32, Scalar::Long(n)) => out.extend_from_slice(&(n as f32).to_le_bytes()),
        (Type::Float32, Scalar::Float(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Type::Float64, Scalar::Int(n)) => out.extend_from_slice(&f64::from(n).to_le_bytes()),
        (Type::Float64, Scalar::Long(n)) => out.extend_from_slice(&(n as f64).to_le_bytes()),
        (Type::Float64, Scalar::Float(x)) => out.extend_from_slice(&f64::from(x).to_le_bytes()),
        (Type::Float64, Scalar::Double(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Type::String, Scalar::Str(s) | Scalar::Symbol(_, s)) => put_bytes(out, s.as_bytes()),
        (Type::String, Scalar::Bytes(b) | Scalar::Fixed(b)) => put_bytes(out, b),
        (Type::String, Scalar::Uuid(u)) => put_bytes(out, u.hyphenated().to_string().as_bytes()),
        (Type::String, Scalar::Decimal(d, scale)) => {
            let mut text = Vec::with_capacity(24);
            json::decimal(&mut text, d, scale);
            put_bytes(out, &text);
        }
        (Type::FixedString(n), Scalar::Fixed(b)) if b.len() == *n => out.extend_from_slice(b),
        (Type::Uuid, Scalar::Uuid(u)) => {
            // Two UInt64, high half first, each little-endian.
            let (high, low) = u.as_u64_pair();
            out.extend_from_slice(&high.to_le_bytes());
            out.extend_from_slice(&low.to_le_bytes());
        }
        (Type::Decimal { precision, scale }, Scalar::Decimal(d, s)) if s == *scale => {
            let limit = POW10.get(*precision as usize).copied().unwrap_or(u128::MAX);
            let n = unscaled(d).filter(|n| n.unsigned_abs() < limit);
            let Some(n) = n else {
                let mut text = Vec::new();
                json::decimal(&mut text, d, s);
                return Err(Problem::Decimal {
                    text: String::from_utf8_lossy(&text).into_owned(),
                    precision: *precision,
                });
            };
            let bytes = n.to_le_bytes();
            match precision {
                0..=9 => out.extend_from_slice(&bytes[..4]),
                10..=18 => out.extend_from_slice(&bytes[..8]),
                19..=38 => out.extend_from_slice(&bytes),
                // Decimal256: sign-extended to 32 bytes.
                _ => {
                    out.extend_from_slice(&bytes);
                    out.extend_from_slice(&[if n < 0 { 0xff } else { 0 }; 16]);
                }
            }
        }
        (Type::Date, Scalar::Date(days)) => match u16::try_from(days).ok().filter(|d| *d <= DATE_LAST_DAY) {
            Some(d) => out.extend_from_slice(&d.to_le_bytes()),
            None => {
                return Err(Problem::Date {
                    days,
                    column: ty.clone(),
                })
            }
        },
        (Type::Date32, Scalar::Date(days)) if DATE32_DAYS.contains(&days) => {
            out.extend_from_slice(&days.to_le_bytes())
        }
        (Type::Date32, Scalar::Date(days)) => {
            return Err(Problem::Date {
                days,
                column: ty.clone(),
            })
        }
        (Type::DateTime, Scalar::Timestamp(t, unit, _)) => {
            match u32::try_from(t.div_euclid(per_second(unit))) {
                Ok(secs) => out.extend_from_slice(&secs.to_le_bytes()),
                Err(_) => {
                    return Err(Problem::Time {
                        value: t,
                        unit,
                        column: ty.clone(),
                    })
                }
            }
        }
        (Type::DateTime64(p), Scalar::Timestamp(t, unit, _)) => {
            let out_of_range = || Problem::Time {
                value: t,
                unit,
                column: ty.clone(),
            };
            if !DATETIME64_SECS.contains(&t.div_euclid(per_second(unit))) {
                return Err(out_of_range());
            }
            let from = types::digits(unit);
            let ticks = match p.checked_sub(from) {
                Some(up) => t.checked_mul(10i64.pow(up)).ok_or_else(out_of_range)?,
                None => t.div_euclid(10i64.pow(from - p)),
            };
            out.extend_from_slice(&ticks.to_le_bytes());
        }
        _ => return Err(unfit()),
    }
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A big-endian two's complement integer of any length, if it fits 128 bits.
fn unscaled(d: &[u8]) -> Option<i128> {
    let negative = d.first().is_some_and(|b| b & 0x80 != 0);
    let sign = if negative { 0xff } else { 0 };
    let (head, tail) = d.split_at(d.len().saturating_sub(16));
    if head.iter().any(|b| *b != sign) {
        return None;
    }
    let mut bytes = [sign; 16];
    bytes[16 - tail.len()..].copy_from_slice(tail);
    let n = i128::from_be_bytes(bytes);
    // A 16-byte tail must agree with the sign the longer value had.
    ((n < 0) == negative).then_some(n)
}
