//! Decoding an `events.v1` or `events.v2` datum straight into an `Event`: the consumer's hot path when
//! the writer schema is exactly one of ours (the common case); and its mirror, the producer's: an
//! `Event` straight to the datum apache-avro would write for `Event::to_avro_in` (proven byte-equal by
//! `tests` and the fuzz round-trip). The general path (apache-avro's `Value` tree, then
//! `Event::from_avro`) builds a tree with owned field names and resolves schema names for every record,
//! most of the reader's CPU. This reads the fields in schema order and nothing else.
//!
//! It must agree with the general path on every input, event for event and failure for failure (same
//! kind and field; the wording of a message may differ):
//! `tests` below compare both on valid events and on mutations of them, and the `wire_decode` fuzz
//! target compares them on any bytes. So the rules are apache-avro 0.22's, quirks included: a varint
//! takes at most 10 bytes and the bits beyond 64 are dropped; lengths must be non-negative; strings
//! must be UTF-8; the uuid is parsed by `Uuid::parse_str`; a union index is a varint naming a branch.

use compact_str::CompactString;

use crate::event::{Event, EventError, Extra, Millis, Money};

/// The schemas the fast path writes and reads: exactly `events.v1` (six fields) or `events.v2` (the
/// same, then `country` and `session_id`, each a `["null", "string"]` union).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    V1,
    V2,
}

/// Why a datum did not become an event: the bytes (`Corrupt`, as the general decoder would fail) or the
/// event they hold (the same `EventError` the general path's `Event::from_avro` gives).
#[derive(Debug, PartialEq, Eq)]
pub enum FastError {
    Corrupt(&'static str),
    Event(EventError),
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, FastError> {
        let (&b, rest) = self
            .rest
            .split_first()
            .ok_or(FastError::Corrupt("unexpected end of input"))?;
        self.rest = rest;
        Ok(b)
    }

    /// apache-avro's `zag_i64`: little-endian base-128, at most 10 bytes, then zigzag.
    fn long(&mut self) -> Result<i64, FastError> {
        let mut z: u64 = 0;
        for j in 0..10u32 {
            let b = self.byte()?;
            z |= u64::from(b & 0x7f).wrapping_shl(j * 7);
            if b & 0x80 == 0 {
                return Ok(if z & 1 == 0 {
                    (z >> 1) as i64
                } else {
                    !(z >> 1) as i64
                });
            }
        }
        Err(FastError::Corrupt("varint longer than 10 bytes"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], FastError> {
        let len = usize::try_from(self.long()?).map_err(|_| FastError::Corrupt("negative length"))?;
        if len > self.rest.len() {
            return Err(FastError::Corrupt("length beyond the end of input"));
        }
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(head)
    }

    fn str(&mut self) -> Result<&'a str, FastError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| FastError::Corrupt("string is not UTF-8"))
    }

    fn nullable_str(&mut self) -> Result<Option<CompactString>, FastError> {
        // apache-avro alone would read a union index cut short by the end of the datum as branch 0
        // (null); the general path checks every record's bytes first (`wire::bounds`), so a cut datum
        // is corrupt on both paths.
        match self.long()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?.into())),
            _ => Err(FastError::Corrupt("union branch out of range")),
        }
    }
}

/// Decodes one datum written with `writer` (the bytes after the Confluent header) into a validated
/// `Event` as `reader` sees it: a v1 reader drops the v2 fields, a v2 reader of a v1 datum finds them
/// null (their default), as Avro's schema resolution has it.
pub fn decode_event(avro: &[u8], writer: Shape, reader: Shape) -> Result<Event, FastError> {
    let mut r = Reader { rest: avro };
    let event_id =
        uuid::Uuid::parse_str(r.str()?).map_err(|_| FastError::Corrupt("event_id is not a uuid"))?;
    let kind = r.str()?.into();
    let user_id = r.long()?;
    let amount = r.bytes()?;
    let currency = r.str()?.into();
    let created_at = r.long()?;
    let extra = match writer {
        Shape::V1 => None,
        Shape::V2 => {
            let (country, session_id) = (r.nullable_str()?, r.nullable_str()?);
            Extra::boxed(country, session_id).filter(|_| reader == Shape::V2)
        }
    };
    if !r.rest.is_empty() {
        return Err(FastError::Corrupt("bytes after the datum"));
    }
    let event = Event {
        event_id,
        kind,
        user_id,
        amount: Money::from_be_bytes(amount).map_err(FastError::Event)?,
        currency,
        created_at: Millis(created_at),
        extra,
    };
    event.validate().map_err(FastError::Event)?;
    Ok(event)
}

/// Appends the datum of `event` under `shape` to `out`: the bytes apache-avro's writer gives for
/// `event.to_avro_in(schema)`, without building the `Value` tree and looking every field up by name.
pub fn encode_event(event: &Event, shape: Shape, out: &mut Vec<u8>) {
    let mut id = uuid::Uuid::encode_buffer();
    put_bytes(out, event.event_id.hyphenated().encode_lower(&mut id).as_bytes());
    put_bytes(out, event.kind.as_bytes());
    put_long(out, event.user_id);
    let (amount, start) = event.amount.minimal_be();
    put_bytes(out, &amount[start..]);
    put_bytes(out, event.currency.as_bytes());
    put_long(out, event.created_at.0);
    if shape == Shape::V2 {
        let extra = event.extra.as_deref();
        put_nullable(out, extra.and_then(|x| x.country.as_deref()));
        put_nullable(out, extra.and_then(|x| x.session_id.as_deref()));
    }
}

/// A `["null", "string"]` union: branch 0 (null, nothing more) or branch 1 and the string.
fn put_nullable(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_long(out, 0),
        Some(s) => {
            put_long(out, 1);
            put_bytes(out, s.as_bytes());
        }
    }
}

/// Zigzag, then little-endian base-128 (Avro's int and long).
pub fn put_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{SCHEMA_V1, SCHEMA_V2};
    use crate::wire::{self, WireError};
    use rand::{Rng, SeedableRng};

    fn schema(shape: Shape) -> apache_avro::Schema {
        let text = match shape {
            Shape::V1 => SCHEMA_V1,
            Shape::V2 => SCHEMA_V2,
        };
        apache_avro::Schema::parse_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Even records are v1, odd ones v2 with a random mix of the optional fields.
    fn shape_of(i: usize) -> Shape {
        if i % 2 == 0 {
            Shape::V1
        } else {
            Shape::V2
        }
    }

    fn extra(rng: &mut impl Rng, shape: Shape) -> Option<Box<Extra>> {
        let texts = [
            "DE",
            "",
            "é-ü",
            "a session id longer than twenty-four bytes",
            "\u{0}\n\"",
        ];
        let mut pick = || (rng.gen_range(0..3) > 0).then(|| texts[rng.gen_range(0..texts.len())].into());
        match shape {
            Shape::V1 => None,
            Shape::V2 => Extra::boxed(pick(), pick()),
        }
    }

    /// What the general path makes of the same bytes, in the fast path's terms.
    fn general(schema: &apache_avro::Schema, avro: &[u8]) -> Result<Event, FastError> {
        match wire::decode(1, avro, schema, None) {
            Ok(value) => Event::from_avro(value).map_err(FastError::Event),
            Err(WireError::Resolve { .. }) => panic!("no resolution without a reader schema"),
            Err(_) => Err(FastError::Corrupt("")),
        }
    }

    fn same_class(a: &Result<Event, FastError>, b: &Result<Event, FastError>) -> bool {
        match (a, b) {
            (Ok(x), Ok(y)) => x == y,
            (Err(FastError::Corrupt(_)), Err(FastError::Corrupt(_))) => true,
            (Err(FastError::Event(x)), Err(FastError::Event(y))) => x.same_failure(y),
            _ => false,
        }
    }

    /// Valid events of the seeded stream, then each mutated: bytes flipped, cut short, extended,
    /// varints stretched. Every one must get the same answer from both paths.
    #[test]
    fn agrees_with_the_general_path_on_valid_and_mutated_records() {
        let schemas = [schema(Shape::V1), schema(Shape::V2)];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (mut ok, mut corrupt, mut invalid) = (0, 0, 0);
        for i in 0..20_000 {
            let (shape, schema) = (shape_of(i), &schemas[i % 2]);
            let mut event = Event {
                event_id: uuid::Uuid::from_u128(rng.gen()),
                kind: ["view", "purchase", "refund", "é-ü", ""][rng.gen_range(0..5)].into(),
                user_id: rng.gen_range(0..1_000_000),
                amount: Money(rng.gen_range(-100_000..100_000)),
                currency: ["EUR", "USD", "eur", "EURO"][rng.gen_range(0..4)].into(),
                created_at: Millis(rng.gen_range(0..4_000_000_000_000)),
                extra: extra(&mut rng, shape),
            };
            match i % 7 {
                1 => event.created_at = Millis(rng.gen()),
                2 => event.amount = Money(rng.gen_range(-(10i64.pow(18) - 1)..10i64.pow(18))),
                3 => event.user_id = rng.gen(),
                _ => {}
            }
            let framed = wire::encode(1, schema, event.to_avro_in(schema)).unwrap_or_else(|e| panic!("{e}"));
            let mut avro = framed[wire::HEADER_LEN..].to_vec();
            let fast = decode_event(&avro, shape, shape);
            assert!(same_class(&fast, &general(schema, &avro)), "record {i}: {fast:?}");
            match rng.gen_range(0..6) {
                0 => {
                    let at = rng.gen_range(0..avro.len());
                    avro[at] ^= 1 << rng.gen_range(0..8);
                }
                1 => avro.truncate(rng.gen_range(0..avro.len())),
                2 => avro.push(rng.gen()),
                3 => {
                    let at = rng.gen_range(0..avro.len());
                    avro[at] = rng.gen();
                }
                4 => {
                    // An overlong varint for the first length: the same value, more bytes.
                    let len = avro[0];
                    avro.splice(0..1, [len | 0x80, 0x80, 0x00]);
                }
                _ => avro = (0..rng.gen_range(0..80)).map(|_| rng.gen()).collect(),
            }
            let (fast, slow) = (decode_event(&avro, shape, shape), general(schema, &avro));
            assert!(
                same_class(&fast, &slow),
                "mutation of {shape:?} record {i} {avro:?}: fast {fast:?}, general {slow:?}"
            );
            match fast {
                Ok(_) => ok += 1,
                Err(FastError::Corrupt(_)) => corrupt += 1,
                Err(FastError::Event(_)) => invalid += 1,
            }
        }
        // The mutations must reach every class, or the comparison proves little.
        assert!(
            ok > 1_000 && corrupt > 1_000 && invalid > 1_000,
            "{ok} {corrupt} {invalid}"
        );
    }

    /// Any event, valid or not (the encoder is given validated ones, but equality must not depend on
    /// it): the fast writer's bytes are apache-avro's, and they decode back to the same event.
    #[test]
    fn encodes_byte_for_byte_what_apache_avro_writes() {
        let schemas = [schema(Shape::V1), schema(Shape::V2)];
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let kinds = [
            "view",
            "purchase",
            "",
            "é-ü",
            "a much longer kind of event than most",
            "\u{0}\n\"",
        ];
        for i in 0..20_000 {
            let (shape, schema) = (shape_of(i), &schemas[i % 2]);
            let event = Event {
                event_id: uuid::Uuid::from_u128(rng.gen()),
                kind: kinds[rng.gen_range(0..kinds.len())].into(),
                user_id: if i % 3 == 0 {
                    rng.gen()
                } else {
                    rng.gen_range(-200..200)
                },
                amount: Money(match i % 4 {
                    0 => rng.gen(),
                    1 => rng.gen_range(-300..300),
                    2 => [0, -1, 127, 128, -128, -129, i64::MAX, i64::MIN][rng.gen_range(0..8)],
                    _ => rng.gen_range(-(10i64.pow(18) - 1)..10i64.pow(18)),
                }),
                currency: ["EUR", "USD", "", "EURO"][rng.gen_range(0..4)].into(),
                created_at: Millis(if i % 2 == 0 {
                    rng.gen()
                } else {
                    rng.gen_range(0..4_000_000_000_000)
                }),
                extra: extra(&mut rng, shape),
            };
            let framed = wire::encode(1, schema, event.to_avro_in(schema)).unwrap_or_else(|e| panic!("{e}"));
            let mut fast = Vec::new();
            encode_event(&event, shape, &mut fast);
            assert_eq!(fast, framed[wire::HEADER_LEN..], "event {i}: {event:?}");
            if event.validate().is_ok() {
                assert_eq!(decode_event(&fast, shape, shape), Ok(event), "event {i}");
            }
        }
    }

    #[test]
    fn an_empty_decimal_is_the_same_failure_on_both_paths() {
        // Found by the fuzzer: apache-avro words it as a sign-extension error.
        let schema = apache_avro::Schema::parse_str(SCHEMA_V1).unwrap_or_else(|e| panic!("{e}"));
        let mut avro = vec![72];
        avro.extend_from_slice(b"51e23539-5dea-3bd6-9cac-26e8a417b553");
        avro.extend_from_slice(&[0, 0, 0, 6, b'E', b'U', b'R', 2]);
        let (fast, slow) = (decode_event(&avro, Shape::V1, Shape::V1), general(&schema, &avro));
        assert!(
            matches!(
                fast,
                Err(FastError::Event(EventError::Invalid { field: "amount", .. }))
            ),
            "{fast:?}"
        );
        assert!(same_class(&fast, &slow), "{slow:?}");
    }

    /// Across versions the fast path is Avro's schema resolution: a v1 datum read as v2 has null
    /// optional fields, a v2 datum read as v1 loses them.
    #[test]
    fn reading_across_versions_is_what_schema_resolution_gives() {
        let schemas = [schema(Shape::V1), schema(Shape::V2)];
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for i in 0..2_000 {
            let (writer, reader) = if i % 2 == 0 { (0, 1) } else { (1, 0) };
            let shapes = [Shape::V1, Shape::V2];
            let mut event = Event {
                event_id: uuid::Uuid::from_u128(rng.gen()),
                kind: "purchase".into(),
                user_id: rng.gen_range(1..100_000),
                amount: Money(rng.gen_range(-100_000..100_000)),
                currency: "EUR".into(),
                created_at: Millis(rng.gen_range(0..4_000_000_000_000)),
                extra: extra(&mut rng, shapes[writer]),
            };
            let w = &schemas[writer];
            let framed = wire::encode(1, w, event.to_avro_in(w)).unwrap_or_else(|e| panic!("{e}"));
            let avro = &framed[wire::HEADER_LEN..];
            let resolved = wire::decode(1, avro, w, Some(&schemas[reader])).map_err(|e| e.to_string());
            let slow = resolved.and_then(|v| Event::from_avro(v).map_err(|e| e.to_string()));
            let fast = decode_event(avro, shapes[writer], shapes[reader]).map_err(|e| format!("{e:?}"));
            event.extra = None;
            assert_eq!(fast, slow, "{:?} read as {:?}", shapes[writer], shapes[reader]);
            assert_eq!(fast, Ok(event));
        }
    }

    #[test]
    fn reads_varints_as_the_general_path_does() {
        // A 10-byte varint whose last byte carries bits beyond 64: apache-avro drops them.
        let mut r = Reader {
            rest: &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        };
        assert_eq!(r.long(), Ok(i64::MIN));
        let mut eleven = Reader { rest: &[0x80; 11] };
        assert!(eleven.long().is_err());
        let mut negative = Reader { rest: &[0x01] };
        assert!(negative.bytes().is_err(), "length -1");
        // A union index cut short by the end of the datum: corrupt (apache-avro alone would say null;
        // the general path's bounds check says corrupt, and so does this one).
        let mut cut = Reader { rest: &[0xe7] };
        assert!(cut.nullable_str().is_err());
        let mut out_of_range = Reader { rest: &[0x04] };
        assert!(out_of_range.nullable_str().is_err(), "branch 2 of two");
    }
}
