//! Random datums of any writer schema, written straight along its plan: what `nrt mock-api --schema`
//! serves (as lake JSON) so that a pipeline of any record type can be run and checked from a seed.
//! Values stay where every sink holds them (dates and decimals within their columns), timestamps lie
//! within a second after the time given (as a stream's records do: a batch spans few hours), and
//! recursion ends (past a few levels a union takes its null branch, an array or map is empty).

use rand::Rng;

use super::plan::{Named, Node, Plan, Unit, UuidForm};

/// How deep values nest before recursion is cut short.
const DEEP: usize = 4;

/// Appends a random datum of `plan` to `out`, its timestamps within a second after `at_ms`.
pub fn datum(plan: &Plan, rng: &mut impl Rng, at_ms: i64, out: &mut Vec<u8>) {
    Draw { plan, at_ms }.value(&plan.root, rng, 0, out);
}

struct Draw<'a> {
    plan: &'a Plan,
    at_ms: i64,
}

fn long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push(z as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    long(out, b.len() as i64);
    out.extend_from_slice(b);
}

impl Draw<'_> {
    fn value(&self, node: &Node, rng: &mut impl Rng, depth: usize, out: &mut Vec<u8>) {
        let plan = self.plan;
        let per_second = |unit| match unit {
            Unit::Millis => 1_000,
            Unit::Micros => 1_000_000,
            Unit::Nanos => 1_000_000_000,
        };
        match node {
            Node::Null => {}
            Node::Boolean => out.push(rng.gen_range(0..2)),
            Node::Int => long(out, rng.gen::<i32>() as i64),
            Node::Long => long(out, rng.gen()),
            Node::Float => out.extend_from_slice(&(rng.gen_range(-1e6f32..1e6)).to_le_bytes()),
            Node::Double => out.extend_from_slice(&(rng.gen_range(-1e12f64..1e12)).to_le_bytes()),
            Node::Bytes => {
                let b: Vec<u8> = (0..rng.gen_range(0..12)).map(|_| rng.gen()).collect();
                bytes(out, &b);
            }
            Node::String => {
                // Short and odd ones for the JSON mapping's escapes, and long ones of the length real
                // text fields have (a URL, a user agent), so that wide records weigh what real ones do.
                let words = [
                    "",
                    "plain",
                    "quote \" and \\",
                    "ünïcödé ✓",
                    "tab\tnew\nline",
                    "https://shop.example.org/catalog/items/4711?ref=newsletter&utm_source=mail",
                    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
                ];
                bytes(out, words[rng.gen_range(0..words.len())].as_bytes());
            }
            Node::Uuid(form) => {
                let u = uuid::Uuid::from_u128(rng.gen());
                match form {
                    UuidForm::String => bytes(out, u.hyphenated().to_string().as_bytes()),
                    UuidForm::Bytes => bytes(out, u.as_bytes()),
                    UuidForm::Fixed => out.extend_from_slice(u.as_bytes()),
                }
            }
            Node::Decimal { precision, fixed, .. } => {
                // An unscaled value of at most min(precision, 18) digits (fewer when a small fixed holds
                // fewer), big-endian two's complement.
                let held = fixed.map_or(18, |size| {
                    ((size.min(8) * 8 - 1) as f64 * std::f64::consts::LOG10_2) as u32
                });
                let digits = (*precision).min(held).clamp(1, 18);
                let bound = 10i64.pow(digits);
                let n = rng.gen_range(-bound + 1..bound);
                let be = n.to_be_bytes();
                match fixed {
                    Some(size) => {
                        let fill = if n < 0 { 0xff } else { 0 };
                        let pad = size.saturating_sub(8);
                        out.extend(std::iter::repeat_n(fill, pad));
                        out.extend_from_slice(&be[8 - (*size).min(8)..]);
                    }
                    None => bytes(out, &be),
                }
            }
            Node::Date => long(out, rng.gen_range(0..49_710)),
            Node::Time(unit) => long(out, rng.gen_range(0..86_400 * per_second(*unit))),
            Node::Timestamp { unit, .. } => {
                let ms = self.at_ms + rng.gen_range(0..1_000);
                let per_ms = per_second(*unit) / 1_000;
                long(out, ms * per_ms + rng.gen_range(0..per_ms));
            }
            Node::Duration => {
                for bound in [100u32, 1_000, u32::MAX] {
                    out.extend_from_slice(&rng.gen_range(0..bound).to_le_bytes());
                }
            }
            Node::Array(items) | Node::Map(items) => {
                let n = if depth >= DEEP { 0 } else { rng.gen_range(0..4) };
                if n > 0 {
                    long(out, n);
                    for i in 0..n {
                        if matches!(node, Node::Map(_)) {
                            // Keys out of sorted order: whatever reads a map back must keep its order.
                            bytes(out, format!("k{}", n - 1 - i).as_bytes());
                        }
                        self.value(items, rng, depth + 1, out);
                    }
                }
                long(out, 0);
            }
            Node::Union(u) => {
                let null = u.branches.iter().position(|b| *b == Node::Null);
                let i = match null {
                    Some(i) if depth >= DEEP => i,
                    _ => rng.gen_range(0..u.branches.len()),
                };
                long(out, i as i64);
                if let Some(branch) = u.branches.get(i) {
                    self.value(branch, rng, depth + 1, out);
                }
            }
            Node::Named(i) => match plan.named.get(*i) {
                Some(Named::Record(r)) => {
                    for f in r.fields.iter() {
                        self.value(&f.node, rng, depth + 1, out);
                    }
                }
                Some(Named::Enum(symbols)) => long(out, rng.gen_range(0..symbols.len().max(1)) as i64),
                Some(Named::Fixed(size)) => out.extend((0..*size).map(|_| rng.gen::<u8>())),
                None => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    /// Every random datum of the every-type schema walks, and its line reads back into the same record.
    #[test]
    fn random_datums_walk_and_read_back() {
        let text = include_str!("../../tests/fixtures/every_type.avsc");
        let schema = apache_avro::Schema::parse_str(text).unwrap_or_else(|e| panic!("{e}"));
        let plan = Plan::new(&schema).unwrap_or_else(|e| panic!("{e}"));
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..2_000 {
            let mut avro = Vec::new();
            datum(&plan, &mut rng, 1_767_225_600_000, &mut avro);
            let mut line = Vec::new();
            super::super::json_line(&plan, &avro, &mut line).unwrap_or_else(|e| panic!("{e}"));
            let json: serde_json::Value = serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}"));
            let mut back = Vec::new();
            super::super::encode::from_json(&plan, &json, &mut back)
                .unwrap_or_else(|e| panic!("{e}: {json}"));
            let mut again = Vec::new();
            super::super::json_line(&plan, &back, &mut again).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(again, line, "{json}");
        }
    }
}
