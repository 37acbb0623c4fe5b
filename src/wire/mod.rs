//! Confluent's wire format: magic byte 0, the writer schema's global id (4 bytes, big-endian), then the
//! Avro binary encoding of one datum. What decoding a datum may cost is checked first (`bounds.rs`).

pub mod bounds;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;

use crate::fast_avro::Shape;
use bounds::Bounds;

pub const MAGIC: u8 = 0;
pub const HEADER_LEN: usize = 5;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("record of {0} bytes is shorter than the 5-byte Confluent header")]
    TooShort(usize),
    #[error("record starts with byte {0:#04x}, not the Confluent magic byte 0")]
    BadMagic(u8),
    #[error("Avro payload of schema {schema_id} does not decode: {message}")]
    Corrupt { schema_id: u32, message: String },
    #[error("Avro payload of schema {schema_id} is beyond what a record may cost to decode: {message}")]
    BeyondLimits { schema_id: u32, message: String },
    #[error("Avro payload of schema {schema_id} has {extra} bytes after the datum")]
    TrailingBytes { schema_id: u32, extra: usize },
    #[error("data of schema {schema_id} cannot be read with the reader schema: {message}")]
    Resolve { schema_id: u32, message: String },
    #[error("value does not match schema {schema_id}: {message}")]
    Encode { schema_id: u32, message: String },
}

/// The schema id and the Avro bytes of a framed record.
pub fn split(record: &[u8]) -> Result<(u32, &[u8]), WireError> {
    if record.len() < HEADER_LEN {
        return Err(WireError::TooShort(record.len()));
    }
    if record[0] != MAGIC {
        return Err(WireError::BadMagic(record[0]));
    }
    let id = u32::from_be_bytes([record[1], record[2], record[3], record[4]]);
    Ok((id, &record[HEADER_LEN..]))
}

/// Frames `value` (which must match `schema`) as schema `schema_id`.
pub fn encode(schema_id: u32, schema: &Schema, value: Value) -> Result<Vec<u8>, WireError> {
    let datum = GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(value))
        .map_err(|e| WireError::Encode {
            schema_id,
            message: e.to_string(),
        })?;
    let mut out = header(schema_id, HEADER_LEN + datum.len());
    out.extend_from_slice(&datum);
    Ok(out)
}

/// A record's buffer with the Confluent header written: magic byte, then the schema id big-endian.
/// The Confluent header of a record of schema `schema_id`, in a buffer of `capacity`.
pub fn header(schema_id: u32, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out
}

/// Frames many values of one schema; resolves the schema once for all of them.
pub fn encode_all(
    schema_id: u32,
    schema: &Schema,
    values: impl IntoIterator<Item = Value>,
) -> Result<Vec<Vec<u8>>, WireError> {
    let err = |e: apache_avro::Error| WireError::Encode {
        schema_id,
        message: e.to_string(),
    };
    let writer = GenericDatumWriter::builder(schema).build().map_err(err)?;
    values
        .into_iter()
        .map(|value| {
            let mut out = header(schema_id, 64);
            writer.write_value(&mut out, value).map_err(err)?;
            Ok(out)
        })
        .collect()
}

/// A schema field for field, logical types and defaults included (the Parsing Canonical Form drops them).
fn as_json(s: &Schema) -> Option<serde_json::Value> {
    serde_json::to_value(s).ok()
}

/// Whether `schema` is exactly `events.v1` or `events.v2`, logical types and defaults included: then
/// events are written and read by `fast_avro`.
pub fn shape(schema: &Schema) -> Option<Shape> {
    let json = as_json(schema)?;
    let is = |text: &str| Schema::parse_str(text).ok().as_ref().and_then(as_json) == Some(json.clone());
    if is(crate::event::SCHEMA_V1) {
        Some(Shape::V1)
    } else if is(crate::event::SCHEMA_V2) {
        Some(Shape::V2)
    } else {
        None
    }
}

/// Confluent-framed records of these events under `shape`'s schema, written by `fast_avro` (what
/// `encode_all` writes for the same events and schema).
pub fn encode_fast(schema_id: u32, shape: Shape, events: &[crate::event::Event]) -> Vec<Vec<u8>> {
    events
        .iter()
        .map(|e| {
            let mut out = header(schema_id, 80);
            crate::fast_avro::encode_event(e, shape, &mut out);
            out
        })
        .collect()
}

/// Decodes the Avro bytes written with `writer`, resolved into `reader` when given (schema evolution).
/// Every byte must belong to the datum: trailing garbage means a corrupt record, not a valid one.
pub fn decode(
    schema_id: u32,
    avro: &[u8],
    writer: &Schema,
    reader: Option<&Schema>,
) -> Result<Value, WireError> {
    let bounds = Bounds::new(writer).map_err(|message| WireError::Corrupt { schema_id, message })?;
    decode_bounded(schema_id, avro, writer, &bounds, reader)
}

/// `decode` with the writer schema's `Bounds` made already (once per schema, not per record).
fn decode_bounded(
    schema_id: u32,
    avro: &[u8],
    writer: &Schema,
    bounds: &Bounds,
    reader: Option<&Schema>,
) -> Result<Value, WireError> {
    let corrupt = |message: String| WireError::Corrupt { schema_id, message };
    bounds.check(avro).map_err(|e| match e {
        bounds::Exceeded::Bytes(message) => corrupt(message),
        bounds::Exceeded::Cost(message) => WireError::BeyondLimits { schema_id, message },
    })?;
    let mut rest = avro;
    let value = GenericDatumReader::builder(writer)
        .build()
        .and_then(|r| r.read_value(&mut rest))
        .map_err(|e| corrupt(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes {
            schema_id,
            extra: rest.len(),
        });
    }
    // apache-avro 0.22 decodes a string cut short by the end of input as Null instead of failing, so a
    // truncated record would pass as valid; checking the value against the writer schema catches it.
    if !value.validate(writer) {
        return Err(corrupt(
            "datum does not match its writer schema (truncated record?)".into(),
        ));
    }
    match reader {
        Some(reader) => widen_decimals(value)
            .resolve(reader)
            .map_err(|e| WireError::Resolve {
                schema_id,
                message: e.to_string(),
            }),
        None => Ok(value),
    }
}

/// Sign-extends every decimal in `value` to 32 bytes. apache-avro 0.22's resolution refuses a
/// bytes-backed decimal whose byte length could not hold the schema's full precision (it applies the
/// rule for `fixed` decimals to `bytes` ones), so a minimal encoding such as Java's or fastavro's (123.45
/// is two bytes) fails to resolve against precision 18. 32 bytes hold any precision up to 76 digits.
fn widen_decimals(value: Value) -> Value {
    match value {
        Value::Decimal(d) => match Vec::<u8>::try_from(&d) {
            Ok(bytes) if bytes.len() < 32 => {
                let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                    0xff
                } else {
                    0
                };
                let mut wide = vec![fill; 32 - bytes.len()];
                wide.extend_from_slice(&bytes);
                Value::Decimal(apache_avro::Decimal::from(wide))
            }
            _ => Value::Decimal(d),
        },
        Value::Record(fields) => {
            Value::Record(fields.into_iter().map(|(n, v)| (n, widen_decimals(v))).collect())
        }
        Value::Union(i, v) => Value::Union(i, Box::new(widen_decimals(*v))),
        Value::Array(items) => Value::Array(items.into_iter().map(widen_decimals).collect()),
        Value::Map(map) => Value::Map(map.into_iter().map(|(k, v)| (k, widen_decimals(v))).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        match Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"n","type":"long"},{"name":"s","type":"string"}]}"#,
        ) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn value() -> Value {
        Value::Record(vec![
            ("n".into(), Value::Long(-3)),
            ("s".into(), Value::String("é".into())),
        ])
    }

    #[test]
    fn frames_and_round_trips() {
        let s = schema();
        let bytes = encode(0x01020304, &s, value()).map_err(|e| e.to_string());
        let bytes = bytes.as_deref().unwrap_or_default();
        // magic, id big-endian, zigzag(-3)=5, len 2 (zigzag 4), "é" in UTF-8
        assert_eq!(bytes, [0, 1, 2, 3, 4, 5, 4, 0xc3, 0xa9]);
        let (id, avro) = split(bytes).map_err(|e| e.to_string()).unwrap_or_default();
        assert_eq!(id, 0x01020304);
        assert_eq!(decode(id, avro, &s, None), Ok(value()));
    }

    #[test]
    fn an_older_writer_is_resolved_into_the_reader() {
        let bytes = [5, 4, 0xc3, 0xa9];
        assert_eq!(decode(1, &bytes, &schema(), Some(&schema())), Ok(value()));
        // An older writer without `s`: resolution fills the reader's default.
        let older =
            Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"n","type":"long"}]}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        let with_default = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"n","type":"long"},{"name":"s","type":"string","default":"d"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let expected = Value::Record(vec![
            ("n".into(), Value::Long(-3)),
            ("s".into(), Value::String("d".into())),
        ]);
        assert_eq!(decode(2, &[5], &older, Some(&with_default)), Ok(expected));
    }

    #[test]
    fn rejects_bad_frames() {
        let s = schema();
        assert_eq!(split(&[0, 0, 0]), Err(WireError::TooShort(3)));
        assert_eq!(split(&[7, 0, 0, 0, 1, 2]), Err(WireError::BadMagic(7)));
        let truncated = decode(1, &[5, 10, b'a'], &s, None);
        assert!(
            matches!(truncated, Err(WireError::Corrupt { .. })),
            "{truncated:?}"
        );
        assert_eq!(
            decode(1, &[5, 2, b'a', 9, 9], &s, None),
            Err(WireError::TrailingBytes {
                schema_id: 1,
                extra: 2
            })
        );
    }
}
