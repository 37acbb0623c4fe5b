//! The producer's hot path for the events: an `Event` straight to the datum apache-avro would write
//! for `Event::to_avro_in` (proven byte-equal by `tests` and the `wire_decode` fuzz round-trip),
//! without building a `Value` tree and looking every field up by name. The consumer has one path for
//! every writer schema, events included (`avro::walk`, `clickhouse::row`); the hand-written decoder
//! that was here went when that path caught up with it (docs/benchmarks.md).

use crate::event::Event;

/// The schemas the fast path writes: exactly `events.v1` (six fields) or `events.v2` (the same, then
/// `country` and `session_id`, each a `["null", "string"]` union).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    V1,
    V2,
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
    use crate::event::{Extra, Millis, Money};
    use crate::event::{SCHEMA_V1, SCHEMA_V2};
    use crate::wire;
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
                let back = wire::decode(1, &fast, schema, None).map(Event::from_avro);
                assert_eq!(back, Ok(Ok(event)), "event {i}");
            }
        }
    }
}
