//! A record's ClickHouse row, written in RowBinary while the datum is walked: one column per top-level
//! field of the writer's record (docs/data.md, "The warehouse's columns"), each value written as the
//! table's column holds it, so a table created from an older schema, or widened by an operator, takes
//! a newer writer's values. A value the column cannot hold (a time past its range, a decimal wider than
//! its precision, a null where the column has none) is a `RowFault`: that record is dead-lettered with
//! the field and the reason, never stored wrapped or clamped.

use std::collections::HashMap;

use super::types::{self, Server, Type};
use crate::avro::plan::{Field, Named, Node, Plan, Record};

mod pass;
mod steps;
mod value;
mod writer;

pub use pass::{Both, LineOnly, Pass, RowOnly};
pub use steps::{Steps, Written};
pub use value::{put_meta, Problem, RowFault};
pub use writer::{RowWriter, Scratch};

/// The columns nrt writes after a record's own in every row: when, and from where in Kafka.
pub const META_COLUMNS: [&str; 3] = ["ingested_at", "kafka_partition", "kafka_offset"];

/// A table's columns by name.
pub type Columns = HashMap<String, Type>;

/// Why a writer schema's records cannot go into the table as it is.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Mismatch {
    #[error("the schema is a {0}, not a record: a table needs fields")]
    NotARecord(String),
    #[error("field {0} is named like a column nrt writes itself ({META_COLUMNS:?})")]
    Reserved(String),
    #[error("field {0}, named as the event time, is not a timestamp of the schema")]
    TimeField(String),
    #[error("field {0}, named in the table's key, is not a field of the schema that is never null")]
    KeyField(String),
    /// A column to add (`ALTER TABLE … ADD COLUMN`) before the first row that carries the field.
    #[error("the table has no column {column} for field {field} ({want})")]
    Missing {
        field: String,
        column: String,
        want: Type,
    },
    #[error("field {field} needs {want}, and column {field} is {have}: a change the table cannot take")]
    Incompatible { field: String, have: Type, want: Type },
}

impl Mismatch {
    /// Whether the schema's records wait for an operator (a change the table cannot take, a setting
    /// naming a field the schema lacks) rather than being no records of this table at all (not a
    /// record, no field for a key column, a field named like a meta column: dead letters).
    pub fn holds(&self) -> bool {
        matches!(
            self,
            Mismatch::Incompatible { .. } | Mismatch::TimeField(_) | Mismatch::Missing { .. }
        )
    }
}

/// What a writer schema's records become in one table: which column each field goes to, and how.
#[derive(Debug, Clone)]
pub struct RowPlan {
    slots: Box<[Slot]>,
    /// The INSERT's column list, in the order each row's bytes come; the meta columns last.
    pub columns: Vec<String>,
    /// The field whose timestamp is the record's event time (its hour in the lake); None: the
    /// ingestion time is.
    pub time_field: Option<usize>,
}

#[derive(Debug, Clone)]
struct Slot {
    name: String,
    /// The column's type without Nullable/LowCardinality: what its bytes are.
    ty: Type,
    nullable: bool,
    form: Form,
    /// A `DateTime` column's companion holding the exact count (`created_at_ms`), written next.
    exact: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Value,
    /// A String column holding the value's JSON (the lake's mapping).
    Json,
    /// An Array column of scalars.
    Array,
    /// No column: a field that is always null.
    Skip,
}

impl RowPlan {
    /// The plan for records of `plan` into a table with `columns`. `time`: the field naming the event
    /// time; None picks the first timestamp field, if any.
    pub fn new(
        plan: &Plan,
        columns: &Columns,
        server: Server,
        time: Option<&str>,
    ) -> Result<RowPlan, Mismatch> {
        let record = root_record(plan)?;
        let mut slots = Vec::with_capacity(record.fields.len());
        let mut names = Vec::with_capacity(record.fields.len() + META_COLUMNS.len());
        for f in record.fields.iter() {
            if META_COLUMNS.contains(&f.name.as_str()) {
                return Err(Mismatch::Reserved(f.name.clone()));
            }
            let Some(want) = types::wanted(&f.name, &f.node, plan, server) else {
                slots.push(Slot {
                    name: f.name.clone(),
                    ty: Type::String,
                    nullable: true,
                    form: Form::Skip,
                    exact: false,
                });
                continue;
            };
            let missing = |column: &str, want: &Type| Mismatch::Missing {
                field: f.name.clone(),
                column: column.to_owned(),
                want: want.clone(),
            };
            let have = columns.get(&f.name).ok_or_else(|| missing(&f.name, &want.ty))?;
            if !types::takes(have, &want.ty) {
                return Err(Mismatch::Incompatible {
                    field: f.name.clone(),
                    have: have.clone(),
                    want: want.ty,
                });
            }
            if let Some((column, ty)) = &want.exact {
                if !columns.contains_key(column) {
                    return Err(missing(column, ty));
                }
            }
            let value = single_value(&f.node);
            let exact = match (have.bare(), value) {
                (Type::DateTime, Node::Timestamp { unit, .. }) => {
                    let column = format!("{}{}", f.name, types::exact_suffix(*unit));
                    let exact = columns.get(&column).is_some_and(|t| {
                        *t.bare()
                            == Type::Int {
                                bits: 64,
                                signed: true,
                            }
                    });
                    exact.then_some(column)
                }
                _ => None,
            };
            let form = match have.bare() {
                Type::Array(_) => Form::Array,
                Type::String if !text_of_its_own(value, plan) => Form::Json,
                _ => Form::Value,
            };
            names.push(f.name.clone());
            names.extend(exact.clone());
            slots.push(Slot {
                name: f.name.clone(),
                ty: have.bare().clone(),
                nullable: have.is_nullable(),
                form,
                exact: exact.is_some(),
            });
        }
        names.extend(META_COLUMNS.iter().map(|c| c.to_string()));
        let is_time = |f: &Field| matches!(single_value(&f.node), Node::Timestamp { .. });
        let time_field = match time {
            Some(name) => Some(
                record
                    .fields
                    .iter()
                    .position(|f| f.name == name && is_time(f))
                    .ok_or_else(|| Mismatch::TimeField(name.to_owned()))?,
            ),
            None => record.fields.iter().position(is_time),
        };
        Ok(RowPlan {
            slots: slots.into(),
            columns: names,
            time_field,
        })
    }
}

/// The writer's record (the root of a table's schema).
pub fn root_record(plan: &Plan) -> Result<&Record, Mismatch> {
    match &plan.root {
        Node::Named(i) => match plan.named.get(*i) {
            Some(Named::Record(r)) => Ok(r),
            Some(Named::Enum(_)) => Err(Mismatch::NotARecord("enum".into())),
            _ => Err(Mismatch::NotARecord("fixed".into())),
        },
        other => Err(Mismatch::NotARecord(format!("{other:?}").to_lowercase())),
    }
}

/// A union's one non-null branch; any other node as it is.
pub fn single_value(node: &Node) -> &Node {
    match node {
        Node::Union(u) => {
            let mut values = u.branches.iter().filter(|b| **b != Node::Null);
            match (values.next(), values.next()) {
                (Some(one), None) => one,
                _ => node,
            }
        }
        node => node,
    }
}

/// Values a String column holds as their own text rather than as JSON.
fn text_of_its_own(node: &Node, plan: &Plan) -> bool {
    match node {
        Node::String | Node::Bytes | Node::Uuid(_) | Node::Decimal { .. } => true,
        Node::Named(i) => matches!(plan.named.get(*i), Some(Named::Enum(_) | Named::Fixed(_))),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
