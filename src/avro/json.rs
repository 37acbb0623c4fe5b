//! The lake's line: a datum as one JSON object, every field the writer wrote (docs/data.md, "The lake's
//! JSON"). A record field whose value is null is left out; decimals are exact strings; bytes and fixed
//! are base64; timestamps are ISO-8601 at their precision (`Z` unless local); dates `YYYY-MM-DD`; times
//! of day `HH:MM:SS.fff`; uuids lowercase; enums their symbol; durations `{"months","days","millis"}`;
//! a union its branch's value, or `{"<branch>": value}` when two branches would look alike; floats that
//! JSON cannot hold (NaN, ±infinity) the strings `"NaN"`, `"Infinity"`, `"-Infinity"`; a date or time
//! outside the years 0–9999 its number. `events.v1` and `events.v2` lines are byte for byte what the
//! pipeline wrote before (`Event::write_json`).

use base64::Engine;

use super::plan::{Field, Record, Unit};
use super::walk::Visitor;

/// Writes JSON text into `out` as a datum is walked.
pub struct JsonLine<'o> {
    out: &'o mut Vec<u8>,
    /// Per open object or array: whether the next member is its first (no comma before it).
    first: Vec<bool>,
}

impl<'o> JsonLine<'o> {
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        JsonLine {
            out,
            first: Vec::with_capacity(8),
        }
    }

    /// Goes on writing a value begun by an earlier `JsonLine` (`into_open`): the containers it left open.
    pub fn resume(out: &'o mut Vec<u8>, open: Vec<bool>) -> Self {
        JsonLine { out, first: open }
    }

    /// The containers still open, for `resume`.
    pub fn into_open(self) -> Vec<bool> {
        self.first
    }

    /// A comma unless the next member is the first of its container.
    fn member(&mut self) {
        if let Some(first) = self.first.last_mut() {
            if !std::mem::replace(first, false) {
                self.out.push(b',');
            }
        }
    }

    fn open(&mut self, bracket: u8) {
        self.out.push(bracket);
        self.first.push(true);
    }

    fn close(&mut self, bracket: u8) {
        self.first.pop();
        self.out.push(bracket);
    }

    /// Bytes that are their own JSON string's text (no byte JSON escapes), between quotes.
    pub fn raw_string(&mut self, text: &[u8]) {
        self.out.reserve(text.len() + 2);
        self.out.push(b'"');
        self.out.extend_from_slice(text);
        self.out.push(b'"');
    }

    fn quoted(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.out.push(b'"');
        write(self.out);
        self.out.push(b'"');
    }
}

impl Visitor for JsonLine<'_> {
    fn null(&mut self) {
        self.out.extend_from_slice(b"null");
    }

    fn boolean(&mut self, v: bool) {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
    }

    fn int(&mut self, v: i32) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    fn long(&mut self, v: i64) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    fn float(&mut self, v: f32) {
        number(self.out, v.is_finite(), v.is_nan(), v.is_sign_negative(), &v);
    }

    fn double(&mut self, v: f64) {
        number(self.out, v.is_finite(), v.is_nan(), v.is_sign_negative(), &v);
    }

    fn bytes(&mut self, v: &[u8]) {
        self.quoted(|out| {
            let start = out.len();
            out.resize(start + base64::encoded_len(v.len(), true).unwrap_or(0), 0);
            let written = base64::engine::general_purpose::STANDARD.encode_slice(v, &mut out[start..]);
            out.truncate(start + written.unwrap_or(0));
        });
    }

    fn string(&mut self, v: &str) {
        string(self.out, v);
    }

    fn uuid(&mut self, v: uuid::Uuid) {
        let mut buf = uuid::Uuid::encode_buffer();
        let text = v.hyphenated().encode_lower(&mut buf);
        self.quoted(|out| out.extend_from_slice(text.as_bytes()));
    }

    fn decimal(&mut self, unscaled: &[u8], scale: u32) {
        self.quoted(|out| decimal(out, unscaled, scale));
    }

    fn date(&mut self, days: i32) {
        match civil(days.into()) {
            Some(ymd) => self.quoted(|out| write_date(out, ymd)),
            None => self.int(days),
        }
    }

    fn time(&mut self, v: i64, unit: Unit) {
        let (per_second, digits) = unit_scale(unit);
        let day = 86_400 * per_second;
        if !(0..day).contains(&v) {
            return self.long(v);
        }
        let secs = (v / per_second) as u32;
        self.quoted(|out| {
            push_2_digits(out, secs / 3600);
            out.push(b':');
            push_2_digits(out, secs / 60 % 60);
            out.push(b':');
            push_2_digits(out, secs % 60);
            push_fraction(out, (v % per_second) as u64, digits);
        });
    }

    fn timestamp(&mut self, v: i64, unit: Unit, local: bool) {
        let (per_second, digits) = unit_scale(unit);
        let (secs, sub) = (v.div_euclid(per_second), v.rem_euclid(per_second) as u64);
        // Written in place (write_datetime writes nothing when it cannot): no buffer per value.
        self.out.push(b'"');
        if write_datetime(self.out, secs, sub, digits, !local) {
            self.out.push(b'"');
        } else {
            self.out.pop();
            self.long(v);
        }
    }

    fn duration(&mut self, months: u32, days: u32, millis: u32) {
        let mut int = itoa::Buffer::new();
        self.out.extend_from_slice(b"{\"months\":");
        self.out.extend_from_slice(int.format(months).as_bytes());
        self.out.extend_from_slice(b",\"days\":");
        self.out.extend_from_slice(int.format(days).as_bytes());
        self.out.extend_from_slice(b",\"millis\":");
        self.out.extend_from_slice(int.format(millis).as_bytes());
        self.out.push(b'}');
    }

    fn fixed(&mut self, v: &[u8]) {
        self.bytes(v);
    }

    fn symbol(&mut self, _: usize, symbol: &str) {
        string(self.out, symbol);
    }

    fn begin_array(&mut self) {
        self.open(b'[');
    }

    fn item(&mut self) {
        self.member();
    }

    fn end_array(&mut self) {
        self.close(b']');
    }

    fn begin_map(&mut self) {
        self.open(b'{');
    }

    fn key(&mut self, key: &str) {
        self.member();
        string(self.out, key);
        self.out.push(b':');
    }

    fn end_map(&mut self) {
        self.close(b'}');
    }

    fn begin_record(&mut self, _: &Record) {
        self.open(b'{');
    }

    fn field(&mut self, field: &Field) {
        self.member();
        self.out.extend_from_slice(&field.json_key);
    }

    fn null_field(&mut self, _: &Field) {}

    fn end_record(&mut self) {
        self.close(b'}');
    }

    fn begin_branch(&mut self, name: &str) {
        self.open(b'{');
        self.key(name);
    }

    fn end_branch(&mut self) {
        self.close(b'}');
    }
}

/// A JSON string as serde_json writes it: as is, unless it holds a byte serde_json escapes.
pub fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        // Writing a str into a Vec cannot fail; were it to, the line would not parse and the round-trip
        // tests would say so.
        out.extend_from_slice(b"null");
    }
}

/// A finite float as serde_json writes it; NaN and the infinities, which JSON has no number for, as
/// strings.
fn number(out: &mut Vec<u8>, finite: bool, nan: bool, negative: bool, v: &impl serde::Serialize) {
    match (finite, nan, negative) {
        (true, ..) => {
            if serde_json::to_writer(&mut *out, v).is_err() {
                out.extend_from_slice(b"null");
            }
        }
        (false, true, _) => out.extend_from_slice(b"\"NaN\""),
        (false, false, false) => out.extend_from_slice(b"\"Infinity\""),
        (false, false, true) => out.extend_from_slice(b"\"-Infinity\""),
    }
}

/// The exact decimal text of a big-endian two's complement unscaled value with `scale` digits after the
/// point: `-0.50`, `12`, `0.000`.
pub fn decimal(out: &mut Vec<u8>, unscaled: &[u8], scale: u32) {
    let negative = unscaled.first().is_some_and(|b| b & 0x80 != 0);
    if unscaled.len() <= 16 {
        // The common case, without allocating: sign-extended into an i128.
        let mut bytes = [if negative { 0xff } else { 0 }; 16];
        bytes[16 - unscaled.len()..].copy_from_slice(unscaled);
        let n = i128::from_be_bytes(bytes);
        let mut buf = itoa::Buffer::new();
        // Most decimals (money) fit 64 bits, whose digits are cheaper to write than 128 bits'.
        let digits = match u64::try_from(n.unsigned_abs()) {
            Ok(small) => buf.format(small),
            Err(_) => buf.format(n.unsigned_abs()),
        };
        return place_point(out, n < 0, digits.as_bytes(), scale as usize);
    }
    // The magnitude, big-endian: the two's complement negated for a negative value.
    let mut magnitude: Vec<u8> = unscaled.iter().map(|b| if negative { !b } else { *b }).collect();
    if negative {
        for b in magnitude.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
    }
    place_point(out, negative, &base10(&magnitude), scale as usize);
}

/// `digits` (a magnitude, no leading zeros but `0` itself) with `scale` of them after the point,
/// zeros in front as needed; `-` when negative and not zero.
fn place_point(out: &mut Vec<u8>, negative: bool, digits: &[u8], scale: usize) {
    if negative && digits.iter().any(|d| *d != b'0') {
        out.push(b'-');
    }
    if digits.len() <= scale {
        out.push(b'0');
        if scale > 0 {
            out.push(b'.');
        }
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits);
        return;
    }
    let point = digits.len() - scale;
    out.extend_from_slice(&digits[..point]);
    if scale > 0 {
        out.push(b'.');
        out.extend_from_slice(&digits[point..]);
    }
}

/// The decimal digits of a big-endian unsigned integer (`0` for none).
fn base10(magnitude: &[u8]) -> Vec<u8> {
    let significant = magnitude
        .iter()
        .position(|b| *b != 0)
        .map_or(&[][..], |i| &magnitude[i..]);
    if significant.len() <= 16 {
        let mut n = 0u128;
        for b in significant {
            n = n << 8 | u128::from(*b);
        }
        return itoa::Buffer::new().format(n).as_bytes().to_vec();
    }
    // Wider than 128 bits: schoolbook division by 10 on the bytes.
    let mut n = significant.to_vec();
    let mut digits = Vec::new();
    while n.iter().any(|b| *b != 0) {
        let mut remainder = 0u32;
        for b in n.iter_mut() {
            let acc = remainder << 8 | u32::from(*b);
            *b = (acc / 10) as u8;
            remainder = acc % 10;
        }
        digits.push(b'0' + remainder as u8);
    }
    digits.reverse();
    digits
}

fn unit_scale(unit: Unit) -> (i64, u8) {
    match unit {
        Unit::Millis => (1_000, 3),
        Unit::Micros => (1_000_000, 6),
        Unit::Nanos => (1_000_000_000, 9),
    }
}

/// `YYYY-MM-DDTHH:MM:SS` and `digits` digits of the fraction `sub`, then `Z` when `zulu`, digit by digit
/// (chrono's strftime parses its pattern on every call: it was a tenth of the consumer's CPU when it wrote
/// every event's time; its calendar, a few percent more). False, writing nothing, outside the years
/// 0–9999.
pub fn write_datetime(out: &mut Vec<u8>, secs: i64, sub: u64, digits: u8, zulu: bool) -> bool {
    let Some(date) = date_text(secs.div_euclid(86_400)) else {
        return false;
    };
    let of_day = secs.rem_euclid(86_400) as u32;
    // Into a buffer on the stack, then one copy: a push per digit was a capacity check per digit.
    let mut text = *b"0000-00-00T00:00:00.000000000Z";
    let two = |text: &mut [u8; 30], at: usize, n: u32| {
        text[at] = b'0' + (n / 10 % 10) as u8;
        text[at + 1] = b'0' + (n % 10) as u8;
    };
    text[..10].copy_from_slice(&date);
    two(&mut text, 11, of_day / 3600);
    two(&mut text, 14, of_day / 60 % 60);
    two(&mut text, 17, of_day % 60);
    let digits = usize::from(digits.min(9));
    let mut n = sub;
    for i in (20..20 + digits).rev() {
        text[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let end = 20 + digits;
    if zulu {
        text[end] = b'Z';
    }
    out.extend_from_slice(&text[..end + usize::from(zulu)]);
    true
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01, remembered for the next call on this thread: a
/// stream's timestamps mostly fall on the day the last one fell on.
fn date_text(days: i64) -> Option<[u8; 10]> {
    thread_local! {
        static LAST: std::cell::Cell<(i64, [u8; 10])> = const { std::cell::Cell::new((i64::MIN, [0; 10])) };
    }
    let (last, text) = LAST.get();
    if last == days {
        return Some(text);
    }
    let ymd = civil(days)?;
    let mut out = Vec::with_capacity(10);
    write_date(&mut out, ymd);
    let text: [u8; 10] = out.as_slice().try_into().ok()?;
    LAST.set((days, text));
    Some(text)
}

/// The proleptic Gregorian (year, month, day) of a day counted from 1970-01-01, for the years 0–9999
/// (Howard Hinnant's `civil_from_days`: integer arithmetic only).
fn civil(days: i64) -> Option<(u32, u32, u32)> {
    // Outside ±4 million days the year is far outside 0–9999; bounding first keeps the sums in range.
    if !(-4_000_000..=4_000_000).contains(&days) {
        return None;
    }
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    u32::try_from(year)
        .ok()
        .filter(|y| *y <= 9999)
        .map(|y| (y, month as u32, day as u32))
}

fn write_date(out: &mut Vec<u8>, (year, month, day): (u32, u32, u32)) {
    push_2_digits(out, year / 100);
    push_2_digits(out, year % 100);
    out.push(b'-');
    push_2_digits(out, month);
    out.push(b'-');
    push_2_digits(out, day);
}

/// `.` and `digits` digits of `sub` (zero-padded).
fn push_fraction(out: &mut Vec<u8>, sub: u64, digits: u8) {
    out.push(b'.');
    let mut buf = [b'0'; 9];
    let mut n = sub;
    for i in (0..digits as usize).rev() {
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buf[..digits as usize]);
}

fn push_2_digits(out: &mut Vec<u8>, n: u32) {
    out.push(b'0' + (n / 10 % 10) as u8);
    out.push(b'0' + (n % 10) as u8);
}

#[cfg(test)]
mod tests {
    use chrono::Datelike;

    /// The calendar arithmetic agrees with chrono's on every day of the years 0–9999 and just past them.
    #[test]
    fn civil_dates_are_chronos() {
        for days in -719_530..=2_932_900i64 {
            let chrono = chrono::NaiveDate::from_num_days_from_ce_opt(days as i32 + 719_163)
                .filter(|d| (0..=9999).contains(&d.year()))
                .map(|d| (d.year() as u32, d.month(), d.day()));
            assert_eq!(super::civil(days), chrono, "day {days}");
        }
        assert_eq!(super::civil(i64::MIN / 86_400), None);
        assert_eq!(super::civil(i64::MAX / 86_400), None);
    }
}
