//! The lake's JSON mapping the slow way, through apache-avro's `Value` tree: the reference the walker is
//! proven against (unit tests, the `any_schema` fuzz target). Not on any hot path.

use apache_avro::schema::NamespaceRef;
use apache_avro::types::Value;
use apache_avro::Schema;
use serde_json::{json, Map, Value as Json};

use super::plan::{Node, Plan, Unit};

/// `value` (decoded with `schema`, no resolution) as the lake's JSON; `plan` is `schema`'s, for the
/// names an ambiguous union's branches are written under. None where value and schema disagree.
pub fn json(value: &Value, schema: &Schema, plan: &Plan) -> Option<Json> {
    Mapper {
        plan,
        names: names(schema),
    }
    .map(value, schema, &plan.root, None)
}

struct Mapper<'a> {
    plan: &'a Plan,
    names: std::collections::HashMap<String, Schema>,
}

fn names(schema: &Schema) -> std::collections::HashMap<String, Schema> {
    apache_avro::schema::ResolvedSchema::try_from(schema)
        .map(|r| {
            r.get_names()
                .iter()
                .map(|(n, s)| (n.fullname(None), (*s).clone()))
                .collect()
        })
        .unwrap_or_default()
}

impl Mapper<'_> {
    fn map(&self, value: &Value, schema: &Schema, node: &Node, ns: NamespaceRef<'_>) -> Option<Json> {
        let text = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            f(&mut out);
            serde_json::from_slice::<Json>(&out).ok()
        };
        let line =
            |f: &dyn Fn(&mut super::json::JsonLine<'_>)| text(&|out| f(&mut super::json::JsonLine::new(out)));
        use super::walk::Visitor;
        Some(match (value, schema) {
            (Value::Null, _) => Json::Null,
            (Value::Boolean(b), _) => json!(b),
            (Value::Int(i), _) => json!(i),
            (Value::Long(l), _) => json!(l),
            (Value::Float(f), _) => line(&|v| v.float(*f))?,
            (Value::Double(f), _) => line(&|v| v.double(*f))?,
            (Value::Bytes(b), _) | (Value::Fixed(_, b), _) => line(&|v| v.bytes(b))?,
            (Value::String(s), _) => json!(s),
            (Value::Uuid(u), _) => json!(u.hyphenated().to_string()),
            (Value::Decimal(d), Schema::Decimal(ds)) => {
                let bytes = Vec::<u8>::try_from(d).ok()?;
                line(&|v| v.decimal(&bytes, ds.scale as u32))?
            }
            (Value::Date(d), _) => line(&|v| v.date(*d))?,
            (Value::TimeMillis(t), _) => line(&|v| v.time((*t).into(), Unit::Millis))?,
            (Value::TimeMicros(t), _) => line(&|v| v.time(*t, Unit::Micros))?,
            (Value::TimestampMillis(t), _) => line(&|v| v.timestamp(*t, Unit::Millis, false))?,
            (Value::TimestampMicros(t), _) => line(&|v| v.timestamp(*t, Unit::Micros, false))?,
            (Value::TimestampNanos(t), _) => line(&|v| v.timestamp(*t, Unit::Nanos, false))?,
            (Value::LocalTimestampMillis(t), _) => line(&|v| v.timestamp(*t, Unit::Millis, true))?,
            (Value::LocalTimestampMicros(t), _) => line(&|v| v.timestamp(*t, Unit::Micros, true))?,
            (Value::LocalTimestampNanos(t), _) => line(&|v| v.timestamp(*t, Unit::Nanos, true))?,
            (Value::Duration(d), _) => {
                let (months, days, millis): (u32, u32, u32) =
                    (d.months().into(), d.days().into(), d.millis().into());
                json!({"months": months, "days": days, "millis": millis})
            }
            (Value::Enum(_, s), _) => json!(s),
            (Value::Array(items), Schema::Array(a)) => {
                let Node::Array(item) = node else { return None };
                let mapped: Option<Vec<Json>> =
                    items.iter().map(|i| self.map(i, &a.items, item, ns)).collect();
                Json::Array(mapped?)
            }
            (Value::Map(entries), Schema::Map(m)) => {
                let Node::Map(item) = node else { return None };
                let mut out = Map::new();
                for (k, v) in entries {
                    out.insert(k.clone(), self.map(v, &m.types, item, ns)?);
                }
                Json::Object(out)
            }
            (Value::Union(i, v), Schema::Union(u)) => {
                let Node::Union(un) = node else { return None };
                let i = *i as usize;
                let mapped = self.map(v, u.variants().get(i)?, un.branches.get(i)?, ns)?;
                match (&un.wrap, mapped) {
                    (_, Json::Null) => Json::Null,
                    (Some(names), mapped) => json!({ names.get(i)?.clone(): mapped }),
                    (None, mapped) => mapped,
                }
            }
            (Value::Record(fields), Schema::Record(r)) => {
                let Node::Named(index) = node else { return None };
                let Some(super::plan::Named::Record(plan_record)) = self.plan.named.get(*index) else {
                    return None;
                };
                let inner = r.name.namespace().or(ns);
                let mut out = Map::new();
                for ((name, v), (f, pf)) in fields.iter().zip(r.fields.iter().zip(plan_record.fields.iter()))
                {
                    let mapped = self.map(v, &f.schema, &pf.node, inner)?;
                    if mapped != Json::Null {
                        out.insert(name.clone(), mapped);
                    }
                }
                Json::Object(out)
            }
            (value, Schema::Ref { name }) => {
                let named = self.names.get(&name.fullname(ns))?;
                return self.map(value, named, node, ns);
            }
            _ => return None,
        })
    }
}
