//! What decoding a record may cost, checked before apache-avro decodes it. Any schema id in the
//! registry is decoded, so the writer schema is as hostile as the bytes: an array of arrays of null lets
//! a few bytes claim millions of items, and apache-avro reserves room for every item a block claims
//! (up to 512 MiB a collection) before it reads one. So a walk over the bytes along the writer schema
//! comes first, allocating nothing: every length and count is checked against the bytes left, nesting
//! is at most `MAX_DEPTH`, and items that take no bytes at all (null, empty records) are at most
//! `ZERO_WIDTH_ITEMS` per record. A record past any of these is a dead letter with its reason.

use std::collections::HashMap;

use apache_avro::schema::{InnerDecimalSchema, Name, Names, NamespaceRef, ResolvedSchema, UuidSchema};
use apache_avro::Schema;

/// How deep records, arrays, maps and unions may nest in one datum (apache-avro decodes recursively).
pub const MAX_DEPTH: usize = 64;
/// Items of zero encoded width one record may hold (they cost memory, not bytes).
pub const ZERO_WIDTH_ITEMS: u64 = 65_536;

/// One writer schema, with its named types resolved, ready to check records against.
pub struct Bounds {
    root: Schema,
    names: Names,
}

impl Bounds {
    pub fn new(writer: &Schema) -> Result<Bounds, String> {
        let resolved = ResolvedSchema::try_from(writer)
            .map_err(|e| format!("the writer schema's names do not resolve: {e}"))?;
        let names = resolved
            .get_names()
            .iter()
            .map(|(n, s)| (n.clone(), (*s).clone()))
            .collect();
        Ok(Bounds {
            root: writer.clone(),
            names,
        })
    }

    /// Ok when decoding `avro` costs no more than the bytes justify; else why not.
    pub fn check(&self, avro: &[u8]) -> Result<(), Exceeded> {
        let mut walk = Walk {
            names: &self.names,
            rest: avro,
            zero_width: 0,
            costly: false,
            widths: HashMap::new(),
        };
        walk.datum(&self.root, None, 0)
            .map_err(|message| match walk.costly {
                true => Exceeded::Cost(message),
                false => Exceeded::Bytes(message),
            })
    }
}

/// Why a record was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exceeded {
    /// It claims more than its bytes hold (a length, a count, a number running past the end): corrupt.
    Bytes(String),
    /// Its bytes may be valid, but they nest too deep or hold too many items that take no bytes.
    Cost(String),
}

struct Walk<'a> {
    names: &'a Names,
    rest: &'a [u8],
    zero_width: u64,
    /// The walk stopped on a cost limit, not on the bytes.
    costly: bool,
    /// The least number of bytes a value of a schema takes, by the schema's address.
    widths: HashMap<*const Schema, u64>,
}

impl<'a> Walk<'a> {
    fn datum(&mut self, schema: &'a Schema, ns: NamespaceRef<'a>, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            self.costly = true;
            return Err(format!("values nest deeper than {MAX_DEPTH} levels"));
        }
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => self.skip(1),
            Schema::Int
            | Schema::Long
            | Schema::Enum(_)
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.varint().map(drop),
            Schema::Float => self.skip(4),
            Schema::Double => self.skip(8),
            Schema::Bytes
            | Schema::String
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::String | UuidSchema::Bytes) => self.sized(),
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => self.sized(),
                InnerDecimalSchema::Fixed(f) => self.skip(f.size as u64),
            },
            Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => {
                self.skip(f.size as u64)
            }
            Schema::Union(u) => {
                let index = self.varint()?;
                let variant = usize::try_from(index)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| format!("union branch {index} does not exist"))?;
                self.datum(variant, ns, depth + 1)
            }
            Schema::Record(r) => {
                let inner = r.name.namespace().or(ns);
                for field in &r.fields {
                    self.datum(&field.schema, inner, depth + 1)?;
                }
                Ok(())
            }
            Schema::Array(a) => self.blocks(&a.items, None, ns, depth),
            Schema::Map(m) => self.blocks(&m.types, Some(&Schema::String), ns, depth),
            // The named type's own contents count the levels (as in `avro::walk`).
            Schema::Ref { name } => {
                let named = self.named(name, ns)?;
                self.datum(named, ns, depth)
            }
        }
    }

    /// The blocks of an array (`key: None`) or a map: each count checked before any item is walked.
    fn blocks(
        &mut self,
        item: &'a Schema,
        key: Option<&'a Schema>,
        ns: NamespaceRef<'a>,
        depth: usize,
    ) -> Result<(), String> {
        let width = self.width(item, ns, &mut Vec::new())? + key.map_or(0, |_| 1);
        loop {
            let mut count = self.varint()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                // A negative count is followed by the block's size in bytes.
                count = count.checked_neg().ok_or("a block count out of range")?;
                self.varint()?;
            }
            let count = count as u64;
            if width == 0 {
                self.zero_width += count;
                if self.zero_width > ZERO_WIDTH_ITEMS {
                    self.costly = true;
                    return Err(format!("more than {ZERO_WIDTH_ITEMS} items that take no bytes"));
                }
            } else if count > self.rest.len() as u64 / width {
                return Err(format!(
                    "a block claims {count} items of at least {width} bytes; {} bytes are left",
                    self.rest.len()
                ));
            }
            for _ in 0..count {
                if let Some(key) = key {
                    self.datum(key, ns, depth + 1)?;
                }
                self.datum(item, ns, depth + 1)?;
            }
        }
    }

    /// The least number of bytes a value of `schema` takes (a cycle through named types counts 0).
    fn width(
        &mut self,
        schema: &'a Schema,
        ns: NamespaceRef<'a>,
        visiting: &mut Vec<*const Schema>,
    ) -> Result<u64, String> {
        let key = schema as *const Schema;
        if let Some(w) = self.widths.get(&key) {
            return Ok(*w);
        }
        if visiting.contains(&key) || visiting.len() > MAX_DEPTH {
            return Ok(0);
        }
        visiting.push(key);
        let w = match schema {
            Schema::Null => 0,
            Schema::Float => 4,
            Schema::Double => 8,
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => 1,
                InnerDecimalSchema::Fixed(f) => f.size as u64,
            },
            Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => f.size as u64,
            Schema::Record(r) => {
                let inner = r.name.namespace().or(ns);
                let mut sum = 0u64;
                for field in &r.fields {
                    sum = sum.saturating_add(self.width(&field.schema, inner, visiting)?);
                }
                sum
            }
            Schema::Ref { name } => {
                let named = self.named(name, ns)?;
                self.width(named, ns, visiting)?
            }
            // A varint, a length, a union's branch, a collection's closing count: at least a byte.
            _ => 1,
        };
        visiting.pop();
        self.widths.insert(key, w);
        Ok(w)
    }

    fn named(&self, name: &Name, ns: NamespaceRef<'_>) -> Result<&'a Schema, String> {
        let full = name.fully_qualified_name(ns);
        self.names
            .get(full.as_ref())
            .ok_or_else(|| format!("the writer schema names {full:?} but does not define it"))
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        if n > self.rest.len() as u64 {
            return Err(format!("{n} bytes claimed, {} left", self.rest.len()));
        }
        self.rest = &self.rest[n as usize..];
        Ok(())
    }

    /// A length-prefixed value (bytes, string).
    fn sized(&mut self) -> Result<(), String> {
        let len = self.varint()?;
        let len = u64::try_from(len).map_err(|_| format!("a negative length {len}"))?;
        self.skip(len)
    }

    /// A zigzag varint (Avro's int and long).
    fn varint(&mut self) -> Result<i64, String> {
        let mut value = 0u64;
        for (i, byte) in self.rest.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err("a number runs past the end of the record (or past 10 bytes)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(schema: &str) -> Bounds {
        let schema = Schema::parse_str(schema).unwrap_or_else(|e| panic!("{e}"));
        Bounds::new(&schema).unwrap_or_else(|e| panic!("{e}"))
    }

    fn long(n: i64) -> Vec<u8> {
        let mut out = Vec::new();
        crate::fast_avro::put_long(&mut out, n);
        out
    }

    const NESTED_NULLS: &str = r#"{"type":"record","name":"R","fields":[
        {"name":"a","type":{"type":"array","items":{"type":"array","items":"null"}}}]}"#;

    #[test]
    fn a_few_bytes_claiming_millions_of_empty_items_are_refused() {
        let b = bounds(NESTED_NULLS);
        // One outer item holding an inner array of ten million nulls: 7 bytes.
        let hostile = [long(1), long(10_000_000), long(0), long(0)].concat();
        let err = b.check(&hostile).expect_err("accepted");
        assert!(
            matches!(&err, Exceeded::Cost(m) if m.contains("take no bytes")),
            "{err:?}"
        );
        // The same shape with a few nulls is fine, and exactly as many as the budget too.
        assert_eq!(
            b.check(&[long(2), long(3), long(0), long(0), long(0)].concat()),
            Ok(())
        );
        let at_budget = [long(1), long(ZERO_WIDTH_ITEMS as i64), long(0), long(0)].concat();
        assert_eq!(b.check(&at_budget), Ok(()));
    }

    #[test]
    fn counts_and_lengths_are_checked_against_the_bytes_left() {
        let longs = bounds(r#"{"type":"array","items":"long"}"#);
        let past = longs.check(&[long(1_000_000), vec![2; 10]].concat());
        assert!(
            matches!(past, Err(Exceeded::Bytes(_))),
            "a count past the bytes: {past:?}"
        );
        assert_eq!(
            longs.check(&[long(3), long(1), long(-2), long(3), long(0)].concat()),
            Ok(())
        );
        // A negative count brings the block's byte size along.
        assert_eq!(
            longs.check(&[long(-2), long(2), long(1), long(1), long(0)].concat()),
            Ok(())
        );
        let strings = bounds(r#"{"type":"map","values":"string"}"#);
        assert!(strings
            .check(&[long(1), long(1), b"k".to_vec(), long(1 << 40)].concat())
            .is_err());
        assert!(
            bounds(r#""bytes""#).check(&long(-1)).is_err(),
            "a negative length"
        );
        assert!(
            bounds(r#""long""#).check(&[0xff; 11]).is_err(),
            "a varint past 10 bytes"
        );
        assert!(bounds(r#"{"type":"fixed","name":"F","size":16}"#)
            .check(&[0; 15])
            .is_err());
    }

    #[test]
    fn nesting_is_bounded_even_for_a_recursive_schema() {
        let list =
            bounds(r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#);
        assert_eq!(list.check(&[2, 2, 2, 0]), Ok(()), "three nodes");
        let deep: Vec<u8> = std::iter::repeat_n(2, 10_000).chain([0]).collect();
        let err = list.check(&deep).expect_err("10,000 levels accepted");
        assert!(
            matches!(&err, Exceeded::Cost(m) if m.contains("deeper than")),
            "{err:?}"
        );
    }

    #[test]
    fn named_types_resolve_through_namespaces() {
        let b = bounds(
            r#"{"type":"record","name":"Outer","namespace":"a.b","fields":[
                {"name":"x","type":{"type":"fixed","name":"Id","size":2}},
                {"name":"y","type":"Id"},
                {"name":"z","type":{"type":"array","items":"a.b.Id"}}]}"#,
        );
        assert_eq!(b.check(&[1, 2, 3, 4, 2, 5, 6, 0]), Ok(()));
        assert!(
            b.check(&[1, 2, 3, 4, 40, 5, 6, 0]).is_err(),
            "20 two-byte items in 3 bytes"
        );
    }
}
