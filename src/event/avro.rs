//! The event as an Avro `Value`: what apache-avro writes and reads for any schema other than the two
//! `fast_avro` knows (`events.v1`, `events.v2`), and the reference that fast path is tested against.

use apache_avro::schema::{RecordSchema, Schema};
use apache_avro::types::Value;
use compact_str::CompactString;
use uuid::Uuid;

use super::{invalid, Event, EventError, Extra, Millis, Money};

impl Event {
    /// The Avro value of this event under `SCHEMA_V1`.
    pub fn to_avro(&self) -> Value {
        Value::Record(vec![
            ("event_id".into(), Value::Uuid(self.event_id)),
            ("type".into(), Value::String(self.kind.to_string())),
            ("user_id".into(), Value::Long(self.user_id)),
            ("amount".into(), Value::Decimal(self.amount.to_decimal())),
            ("currency".into(), Value::String(self.currency.to_string())),
            ("created_at".into(), Value::TimestampMillis(self.created_at.0)),
        ])
    }

    /// The Avro value of this event under `schema`, field by field in the schema's order. A field the
    /// event does not know is left out, so writing the value fails naming it (a schema needing data
    /// the events API does not give is a configuration error, not something to fill in silently).
    pub fn to_avro_in(&self, schema: &Schema) -> Value {
        let Schema::Record(RecordSchema { fields, .. }) = schema else {
            return self.to_avro();
        };
        let extra = self.extra.as_deref();
        let fields = fields.iter().filter_map(|f| {
            let value = match f.name.as_str() {
                "event_id" => Value::Uuid(self.event_id),
                "type" => Value::String(self.kind.to_string()),
                "user_id" => Value::Long(self.user_id),
                "amount" => Value::Decimal(self.amount.to_decimal()),
                "currency" => Value::String(self.currency.to_string()),
                "created_at" => Value::TimestampMillis(self.created_at.0),
                "country" => optional(&f.schema, extra.and_then(|x| x.country.as_deref())),
                "session_id" => optional(&f.schema, extra.and_then(|x| x.session_id.as_deref())),
                _ => return None,
            };
            Some((f.name.clone(), value))
        });
        Value::Record(fields.collect())
    }

    /// The event in a decoded Avro record (already resolved into the reader schema, so fields a newer
    /// writer added are gone and the ones we know are present).
    pub fn from_avro(value: Value) -> Result<Event, EventError> {
        let Value::Record(fields) = value else {
            return Err(invalid("record", "the datum is not a record"));
        };
        let mut event_id = None;
        let mut kind = None;
        let mut user_id = None;
        let mut amount = None;
        let mut currency = None;
        let mut created_at = None;
        let (mut country, mut session_id) = (None, None);
        for (name, v) in fields {
            match (name.as_str(), v) {
                ("event_id", Value::Uuid(u)) => event_id = Some(u),
                ("event_id", Value::String(s)) => {
                    event_id = Some(Uuid::parse_str(&s).map_err(|e| invalid("event_id", e.to_string()))?)
                }
                ("type", Value::String(s)) => kind = Some(CompactString::from(s)),
                ("user_id", Value::Long(n)) => user_id = Some(n),
                ("amount", Value::Decimal(d)) => amount = Some(Money::from_decimal(&d)?),
                ("currency", Value::String(s)) => currency = Some(CompactString::from(s)),
                ("created_at", Value::TimestampMillis(ms) | Value::Long(ms)) => created_at = Some(Millis(ms)),
                ("country", v) => country = optional_string("country", v)?,
                ("session_id", v) => session_id = optional_string("session_id", v)?,
                ("event_id" | "type" | "user_id" | "amount" | "currency" | "created_at", other) => {
                    return Err(invalid(
                        "record",
                        format!("field {name} has unexpected value {other:?}"),
                    ))
                }
                _ => {}
            }
        }
        let event = Event {
            event_id: event_id.ok_or(EventError::Missing("event_id"))?,
            kind: kind.ok_or(EventError::Missing("type"))?,
            user_id: user_id.ok_or(EventError::Missing("user_id"))?,
            amount: amount.ok_or(EventError::Missing("amount"))?,
            currency: currency.ok_or(EventError::Missing("currency"))?,
            created_at: created_at.ok_or(EventError::Missing("created_at"))?,
            extra: Extra::boxed(country, session_id),
        };
        event.validate()?;
        Ok(event)
    }
}

/// A nullable string under `schema`: the union branch of null or of string, wherever the schema puts them.
fn optional(schema: &Schema, value: Option<&str>) -> Value {
    let plain = match value {
        Some(s) => Value::String(s.to_owned()),
        None => Value::Null,
    };
    let Schema::Union(union) = schema else {
        return plain;
    };
    let branch = union.variants().iter().position(|v| match value {
        Some(_) => matches!(v, Schema::String),
        None => matches!(v, Schema::Null),
    });
    match branch {
        Some(i) => Value::Union(i as u32, Box::new(plain)),
        None => plain,
    }
}

fn optional_string(field: &'static str, v: Value) -> Result<Option<CompactString>, EventError> {
    match v {
        Value::Union(_, inner) => optional_string(field, *inner),
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(CompactString::from(s))),
        other => Err(invalid(field, format!("unexpected value {other:?}"))),
    }
}
