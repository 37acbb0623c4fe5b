//! The lake's JSON mapping read backwards: a JSON value (as the lake writes it, or as a producer's API
//! serves it) written as the Avro datum of a schema. What the producer encodes with for any
//! `NRT_SCHEMA_FILE`, and what a replay of the lake decodes lines with. Strict: a key the record does not
//! have, a value of the wrong kind, a decimal with more digits after the point than its scale, a
//! timestamp finer than its unit, are errors naming the field — a record that does not fit is never
//! written with a part of it dropped.

use base64::Engine;
use serde_json::Value as Json;

use super::plan::{Named, Node, Plan, Record, Unit, UuidForm};
use crate::fast_avro::put_long;

/// Why a JSON value is not a datum of the schema: where (`rec.items[2]`), and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", if .path.is_empty() { "the record" } else { .path.as_str() })]
pub struct EncodeError {
    pub path: String,
    pub reason: String,
}

/// Appends the Avro datum of `value` along `plan` to `out`; on an error `out` is left as it was.
pub fn from_json(plan: &Plan, value: &Json, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    let mut path = String::new();
    let written = Encoder {
        plan,
        path: &mut path,
    }
    .value(&plan.root, value, out, 0);
    if written.is_err() {
        out.truncate(start);
    }
    written
}

struct Encoder<'a> {
    plan: &'a Plan,
    path: &'a mut String,
}

/// Nesting beyond this is refused: twice what the walker reads, so every line it wrote reads back.
const MAX_DEPTH: usize = 2 * crate::wire::bounds::MAX_DEPTH;

impl Encoder<'_> {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, EncodeError> {
        Err(EncodeError {
            path: self.path.clone(),
            reason: reason.into(),
        })
    }

    fn expected<T>(&self, what: &str, got: &Json) -> Result<T, EncodeError> {
        let mut shown = got.to_string();
        if shown.len() > 60 {
            shown.truncate(57);
            shown.push_str("...");
        }
        self.fail(format!("expected {what}, got {shown}"))
    }

    /// `f` with `suffix` added to the path while it runs (written into it: no string made per value).
    fn at<T>(
        &mut self,
        suffix: std::fmt::Arguments<'_>,
        f: impl FnOnce(&mut Self) -> Result<T, EncodeError>,
    ) -> Result<T, EncodeError> {
        let len = self.path.len();
        // Writing into a String cannot fail.
        let _ = std::fmt::Write::write_fmt(self.path, suffix);
        let r = f(self);
        self.path.truncate(len);
        r
    }

    fn value(&mut self, node: &Node, v: &Json, out: &mut Vec<u8>, depth: usize) -> Result<(), EncodeError> {
        if depth > MAX_DEPTH {
            return self.fail(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        match (node, v) {
            (Node::Null, Json::Null) => {}
            (Node::Boolean, Json::Bool(b)) => out.push(u8::from(*b)),
            (Node::Int, _) => match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
                Some(n) => put_long(out, n.into()),
                None => return self.expected("an int", v),
            },
            (Node::Long, _) => match v.as_i64() {
                Some(n) => put_long(out, n),
                None => return self.expected("a long", v),
            },
            (Node::Float, _) => out.extend_from_slice(&(self.float(v)? as f32).to_le_bytes()),
            (Node::Double, _) => out.extend_from_slice(&self.float(v)?.to_le_bytes()),
            (Node::Bytes, _) => put_bytes(out, &self.base64(v)?),
            (Node::String, Json::String(s)) => put_bytes(out, s.as_bytes()),
            (Node::Uuid(form), Json::String(s)) => match (uuid::Uuid::parse_str(s), form) {
                (Ok(u), UuidForm::String) => put_bytes(out, u.hyphenated().to_string().as_bytes()),
                (Ok(u), UuidForm::Bytes) => put_bytes(out, u.as_bytes()),
                (Ok(u), UuidForm::Fixed) => out.extend_from_slice(u.as_bytes()),
                (Err(_), _) => return self.expected("a uuid", v),
            },
            (Node::Decimal { scale, fixed, .. }, _) => self.decimal(v, *scale, *fixed, out)?,
            (Node::Date, _) => {
                let days = match v {
                    Json::String(s) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .ok()
                        .and_then(|d| i32::try_from((d - chrono::NaiveDate::default()).num_days()).ok()),
                    _ => v.as_i64().and_then(|n| i32::try_from(n).ok()),
                };
                match days {
                    Some(d) => put_long(out, d.into()),
                    None => return self.expected("a date (YYYY-MM-DD)", v),
                }
            }
            (Node::Time(unit), _) => {
                let count = match v {
                    Json::String(s) => {
                        chrono::NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
                            .ok()
                            .and_then(|t| {
                                let nanos = i64::from(chrono::Timelike::num_seconds_from_midnight(&t))
                                    * 1_000_000_000
                                    + i64::from(chrono::Timelike::nanosecond(&t));
                                in_unit(nanos, *unit)
                            })
                    }
                    _ => v.as_i64(),
                };
                match (count, unit) {
                    (Some(c), Unit::Millis) if i32::try_from(c).is_ok() => put_long(out, c),
                    (Some(c), Unit::Micros | Unit::Nanos) => put_long(out, c),
                    _ => return self.expected("a time of day (HH:MM:SS.fff) in the unit's precision", v),
                }
            }
            (Node::Timestamp { unit, local }, _) => {
                let count = match v {
                    Json::String(s) => timestamp_in(s, *local, *unit),
                    _ => v.as_i64(),
                };
                match count {
                    Some(c) => put_long(out, c),
                    None => {
                        let form = if *local {
                            "YYYY-MM-DDTHH:MM:SS.fff"
                        } else {
                            "YYYY-MM-DDTHH:MM:SS.fffZ"
                        };
                        return self.expected(&format!("a timestamp ({form}) in the unit's precision"), v);
                    }
                }
            }
            (Node::Duration, Json::Object(o)) => {
                for part in ["months", "days", "millis"] {
                    match o
                        .get(part)
                        .and_then(Json::as_u64)
                        .and_then(|n| u32::try_from(n).ok())
                    {
                        Some(n) => out.extend_from_slice(&n.to_le_bytes()),
                        None => return self.expected("a duration {months, days, millis}", v),
                    }
                }
                if o.len() != 3 {
                    return self.expected("a duration {months, days, millis} and nothing else", v);
                }
            }
            (Node::Array(item), Json::Array(items)) => {
                if !items.is_empty() {
                    put_long(out, items.len() as i64);
                    for (i, x) in items.iter().enumerate() {
                        self.at(format_args!("[{i}]"), |e| e.value(item, x, out, depth + 1))?;
                    }
                }
                out.push(0);
            }
            (Node::Map(values), Json::Object(entries)) => {
                if !entries.is_empty() {
                    put_long(out, entries.len() as i64);
                    for (k, x) in entries {
                        put_bytes(out, k.as_bytes());
                        self.at(format_args!("[{k:?}]"), |e| e.value(values, x, out, depth + 1))?;
                    }
                }
                out.push(0);
            }
            (Node::Union(u), _) => {
                // Wrapped unions say their branch; others are told apart by the value's JSON kind.
                let named = u.wrap.as_ref().and_then(|names| match v {
                    Json::Object(o) if o.len() == 1 => {
                        let (k, x) = o.iter().next()?;
                        Some((names.iter().position(|n| n == k)?, x))
                    }
                    _ => None,
                });
                let candidates: Vec<(usize, &Json)> = match (named, v) {
                    (Some(pick), _) => vec![pick],
                    (None, Json::Null) => u
                        .branches
                        .iter()
                        .position(|b| *b == Node::Null)
                        .map(|i| (i, v))
                        .into_iter()
                        .collect(),
                    (None, _) if u.wrap.is_some() => Vec::new(),
                    (None, _) => (0..u.branches.len()).map(|i| (i, v)).collect(),
                };
                // The error worth telling: the only non-null branch's, for an optional value.
                let mut first = None;
                let start = out.len();
                for (i, x) in candidates {
                    // Straight into `out`, taken back if the branch does not fit: no buffer per try.
                    put_long(out, i as i64);
                    match self.value(&u.branches[i], x, out, depth + 1) {
                        Ok(()) => return Ok(()),
                        Err(e) if u.branches[i] != Node::Null => {
                            out.truncate(start);
                            first.get_or_insert(e);
                        }
                        Err(_) => out.truncate(start),
                    }
                }
                return match first {
                    Some(e) if u.branches.len() == 2 && u.branches.contains(&Node::Null) => Err(e),
                    _ => self.expected("a value of one of the union's branches", v),
                };
            }
            (Node::Named(i), _) => match self.plan.named.get(*i) {
                Some(Named::Record(r)) => self.record(r, v, out, depth)?,
                Some(Named::Enum(symbols)) => {
                    match v.as_str().and_then(|s| symbols.iter().position(|x| x == s)) {
                        Some(k) => put_long(out, k as i64),
                        None => return self.expected(&format!("one of the symbols {symbols:?}"), v),
                    }
                }
                Some(Named::Fixed(size)) => {
                    let bytes = self.base64(v)?;
                    if bytes.len() != *size {
                        return self.fail(format!("a fixed of {size} bytes, got {}", bytes.len()));
                    }
                    out.extend_from_slice(&bytes);
                }
                None => return self.fail("a type the schema does not define"),
            },
            (Node::Null, _) => return self.expected("null", v),
            (Node::Boolean, _) => return self.expected("true or false", v),
            (Node::String, _) => return self.expected("a string", v),
            (Node::Uuid(_), _) => return self.expected("a uuid", v),
            (Node::Duration, _) => return self.expected("a duration {months, days, millis}", v),
            (Node::Array(_), _) => return self.expected("an array", v),
            (Node::Map(_), _) => return self.expected("an object (a map)", v),
        }
        Ok(())
    }

    fn record(&mut self, r: &Record, v: &Json, out: &mut Vec<u8>, depth: usize) -> Result<(), EncodeError> {
        let Json::Object(fields) = v else {
            return self.expected(&format!("an object (record {})", r.name), v);
        };
        // A key that names no field: counted first (a lookup per field), searched only when there is
        // one (comparing every key with every field was a fifth of a wide record's encoding).
        let known = r.fields.iter().filter(|f| fields.contains_key(&f.name)).count();
        if known < fields.len() {
            if let Some(extra) = fields.keys().find(|k| !r.fields.iter().any(|f| f.name == **k)) {
                return self.fail(format!("{extra:?} is not a field of {}", r.name));
            }
        }
        for f in r.fields.iter() {
            let given = fields.get(&f.name).unwrap_or(&Json::Null);
            // Left out (or null): the null branch where there is one, else the schema's default.
            let value = match (given, &f.default) {
                (Json::Null, Some(default)) if !accepts_null(&f.node) => default,
                _ => given,
            };
            let dot = if self.path.is_empty() { "" } else { "." };
            self.at(format_args!("{dot}{}", f.name), |e| {
                if matches!(value, Json::Null) && !accepts_null(&f.node) {
                    return e.fail("is missing");
                }
                e.value(&f.node, value, out, depth + 1)
            })?;
        }
        Ok(())
    }

    fn float(&self, v: &Json) -> Result<f64, EncodeError> {
        match v {
            Json::Number(n) => n.as_f64().map_or_else(|| self.expected("a number", v), Ok),
            Json::String(s) if s == "NaN" => Ok(f64::NAN),
            Json::String(s) if s == "Infinity" => Ok(f64::INFINITY),
            Json::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => self.expected("a number", v),
        }
    }

    fn base64(&self, v: &Json) -> Result<Vec<u8>, EncodeError> {
        match v
            .as_str()
            .map(|s| base64::engine::general_purpose::STANDARD.decode(s))
        {
            Some(Ok(bytes)) => Ok(bytes),
            _ => self.expected("base64", v),
        }
    }

    /// A decimal's exact text (`"-12.30"`; a JSON number is read as its text) as the two's complement
    /// of its unscaled value: minimal for bytes, sign-extended to `fixed`'s size.
    fn decimal(
        &self,
        v: &Json,
        scale: u32,
        fixed: Option<usize>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let text = match v {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            _ => return self.expected("a decimal (an exact string)", v),
        };
        let Some(bytes) = unscaled(&text, scale) else {
            return self.expected(
                &format!("a decimal with at most {scale} digits after the point"),
                v,
            );
        };
        match fixed {
            None => put_bytes(out, &bytes),
            Some(size) if bytes.len() <= size => {
                let sign = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                    0xff
                } else {
                    0
                };
                out.extend(std::iter::repeat_n(sign, size - bytes.len()));
                out.extend_from_slice(&bytes);
            }
            Some(size) => return self.fail(format!("{text} does not fit a decimal of {size} bytes")),
        }
        Ok(())
    }
}

fn accepts_null(node: &Node) -> bool {
    match node {
        Node::Null => true,
        Node::Union(u) => u.branches.contains(&Node::Null),
        _ => false,
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// Nanoseconds in `unit`, if there is no finer part left over.
fn in_unit(nanos: i64, unit: Unit) -> Option<i64> {
    let per = nanos_per(unit);
    (nanos % per == 0).then_some(nanos / per)
}

/// An ISO-8601 timestamp (zoned, or local: without a zone) as a count of `unit` since the epoch, if it
/// has nothing finer than the unit.
fn timestamp_in(s: &str, local: bool, unit: Unit) -> Option<i64> {
    let t = match local {
        false => chrono::DateTime::parse_from_rfc3339(s).ok()?.naive_utc(),
        true => chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()?,
    };
    let (secs, nanos) = (
        t.and_utc().timestamp(),
        i64::from(t.and_utc().timestamp_subsec_nanos()),
    );
    let per_second = 1_000_000_000 / nanos_per(unit);
    secs.checked_mul(per_second)?.checked_add(in_unit(nanos, unit)?)
}

fn nanos_per(unit: Unit) -> i64 {
    match unit {
        Unit::Millis => 1_000_000,
        Unit::Micros => 1_000,
        Unit::Nanos => 1,
    }
}

/// The minimal big-endian two's complement of `text` × 10^scale, if `text` is a decimal with at most
/// `scale` digits after the point. Any width: digits are folded into base 256 one at a time.
fn unscaled(text: &str, scale: u32) -> Option<Vec<u8>> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    if whole.is_empty()
        || fraction.len() > scale as usize
        || !(whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let padding = std::iter::repeat_n(b'0', scale as usize - fraction.len());
    // The magnitude, little-endian base 256.
    let mut magnitude: Vec<u8> = vec![0];
    for d in whole.bytes().chain(fraction.bytes()).chain(padding) {
        let mut carry = u32::from(d - b'0');
        for byte in magnitude.iter_mut() {
            let acc = u32::from(*byte) * 10 + carry;
            *byte = acc as u8;
            carry = acc >> 8;
        }
        if carry > 0 {
            magnitude.push(carry as u8);
        }
    }
    let negative = negative && magnitude.iter().any(|b| *b != 0);
    if negative {
        // Two's complement: invert, add one.
        let mut carry = true;
        for byte in magnitude.iter_mut() {
            let (sum, over) = (!*byte).overflowing_add(u8::from(carry));
            *byte = sum;
            carry = over;
        }
    }
    let mut bytes: Vec<u8> = magnitude.into_iter().rev().collect();
    // Room for the sign bit.
    let sign = if negative { 0xff } else { 0 };
    if bytes.first().is_some_and(|b| (b & 0x80 != 0) != negative) {
        bytes.insert(0, sign);
    }
    // Minimal: drop leading bytes that only repeat the sign.
    while bytes.len() > 1 && bytes[0] == sign && (bytes[1] & 0x80 != 0) == negative {
        bytes.remove(0);
    }
    Some(bytes)
}
