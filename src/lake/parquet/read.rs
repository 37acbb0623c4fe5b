//! The lake's Parquet objects read back, for `nrt replay` and `nrt reconcile`: each row as the JSON
//! value of its writer schema's record (`avro::encode::from_json` makes its datum again, which the
//! reader decodes as the pipeline did). Which schema each row has, and in which order the schemas'
//! columns were merged, the file's key-value metadata says (`nrt-record-schemas`,
//! `nrt-column-schemas`); the columns are made again from those schemas (`Columns::new`), so a column
//! holding JSON text is told from one holding strings.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type, Time32MillisecondType, Time64MicrosecondType,
    Time64NanosecondType, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
};
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_schema::{DataType, TimeUnit};
use base64::Engine;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value as Json;

use super::columns::{Col, Columns};
use crate::avro::plan::{Named, Node, Plan};

/// The key-value metadata naming each row's writer schema, in runs: `id*count,id*count`.
pub const RECORD_SCHEMAS_META: &str = "nrt-record-schemas";
/// The key-value metadata naming the writer schemas in the order their columns were merged.
pub const COLUMN_SCHEMAS_META: &str = "nrt-column-schemas";

/// A Parquet object: its rows, and its key-value metadata.
pub struct File {
    pub batches: Vec<RecordBatch>,
    pub meta: HashMap<String, String>,
}

impl File {
    pub fn open(body: bytes::Bytes) -> Result<File, String> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(body).map_err(|e| e.to_string())?;
        let meta = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .map(|kv| kv.iter().filter_map(|e| Some((e.key.clone(), e.value.clone()?))).collect())
            .unwrap_or_default();
        let reader = builder.with_batch_size(64 * 1024).build().map_err(|e| e.to_string())?;
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
        Ok(File { batches, meta })
    }

    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Each row's writer schema id, from `nrt-record-schemas`.
    pub fn row_schemas(&self) -> Result<Vec<u32>, String> {
        let text = self
            .meta
            .get(RECORD_SCHEMAS_META)
            .ok_or_else(|| format!("no {RECORD_SCHEMAS_META} in its metadata"))?;
        let mut ids = Vec::with_capacity(self.rows());
        for run in text.split(',') {
            let parsed = run.split_once('*').and_then(|(id, n)| Some((id.parse::<u32>().ok()?, n.parse().ok()?)));
            let (id, n): (u32, usize) = parsed.ok_or_else(|| format!("{RECORD_SCHEMAS_META}: '{run}' is not id*count"))?;
            ids.extend(std::iter::repeat_n(id, n));
        }
        match ids.len() == self.rows() {
            true => Ok(ids),
            false => Err(format!("{RECORD_SCHEMAS_META} names {} rows, the file has {}", ids.len(), self.rows())),
        }
    }

    /// The writer schema ids in the order their columns were merged, from `nrt-column-schemas`.
    pub fn column_schemas(&self) -> Result<Vec<u32>, String> {
        let text = self
            .meta
            .get(COLUMN_SCHEMAS_META)
            .ok_or_else(|| format!("no {COLUMN_SCHEMAS_META} in its metadata"))?;
        text.split(',')
            .map(|id| id.parse().map_err(|_| format!("{COLUMN_SCHEMAS_META}: '{id}' is not a schema id")))
            .collect()
    }
}

/// Reads rows as JSON along their writer schemas' plans, the columns being those of `merged` (the
/// plans in `nrt-column-schemas` order).
pub struct RowReader {
    columns: Columns,
}

impl RowReader {
    pub fn new(merged: &[&Plan]) -> RowReader {
        RowReader {
            columns: Columns::new(merged),
        }
    }

    /// Row `row` of `root` (a batch of the file as one struct: `StructArray::from(batch)`) as the
    /// JSON of a record of `plan`.
    pub fn row(&self, root: &StructArray, row: usize, plan: &Plan) -> Result<Json, String> {
        self.value(0, root, row, &plan.root, plan)
    }

    fn value(&self, at: usize, array: &dyn Array, row: usize, node: &Node, plan: &Plan) -> Result<Json, String> {
        if array.is_null(row) {
            return Ok(Json::Null);
        }
        let col = self.columns.cols.get(at).ok_or("a column the schemas do not have")?;
        if let Col::Json(_) = col {
            let text = array.as_string_opt::<i32>().ok_or("JSON text that is not a string")?.value(row);
            return serde_json::from_str(text).map_err(|e| format!("JSON text: {e}"));
        }
        let kind = || format!("a {:?} column where the schema has {node:?}", array.data_type());
        Ok(match node {
            Node::Union(u) => {
                let mut others = u.branches.iter().filter(|b| **b != Node::Null);
                match (others.next(), others.next()) {
                    (Some(only), None) => return self.value(at, array, row, only, plan),
                    _ => return Err(kind()),
                }
            }
            Node::Null => Json::Null,
            Node::Boolean => Json::Bool(array.as_boolean_opt().ok_or_else(kind)?.value(row)),
            Node::Int | Node::Long | Node::Date => match array.data_type() {
                DataType::Int32 => Json::from(prim::<Int32Type>(array, row)?),
                DataType::Date32 => Json::from(prim::<Date32Type>(array, row)?),
                DataType::Int64 => Json::from(prim::<Int64Type>(array, row)?),
                _ => return Err(kind()),
            },
            Node::Float | Node::Double => match array.data_type() {
                DataType::Float32 => number(f64::from(prim::<Float32Type>(array, row)?)),
                DataType::Float64 => number(prim::<Float64Type>(array, row)?),
                _ => return Err(kind()),
            },
            Node::Bytes => base64(array.as_binary_opt::<i32>().ok_or_else(kind)?.value(row)),
            Node::String | Node::Uuid(_) => Json::from(array.as_string_opt::<i32>().ok_or_else(kind)?.value(row)),
            Node::Decimal { .. } => match array.data_type() {
                DataType::Decimal128(..) => match array.as_primitive_opt::<Decimal128Type>() {
                    Some(d) => Json::from(d.value_as_string(row)),
                    None => return Err(kind()),
                },
                DataType::Utf8 => Json::from(array.as_string_opt::<i32>().ok_or_else(kind)?.value(row)),
                _ => return Err(kind()),
            },
            Node::Time(_) => match array.data_type() {
                DataType::Time32(TimeUnit::Millisecond) => {
                    Json::from(prim::<Time32MillisecondType>(array, row)?)
                }
                DataType::Time64(TimeUnit::Microsecond) => {
                    Json::from(prim::<Time64MicrosecondType>(array, row)?)
                }
                DataType::Time64(TimeUnit::Nanosecond) => Json::from(prim::<Time64NanosecondType>(array, row)?),
                _ => return Err(kind()),
            },
            Node::Timestamp { .. } => match array.data_type() {
                DataType::Timestamp(TimeUnit::Millisecond, _) => {
                    Json::from(prim::<TimestampMillisecondType>(array, row)?)
                }
                DataType::Timestamp(TimeUnit::Microsecond, _) => {
                    Json::from(prim::<TimestampMicrosecondType>(array, row)?)
                }
                DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                    Json::from(prim::<TimestampNanosecondType>(array, row)?)
                }
                _ => return Err(kind()),
            },
            // Always a JSON column: answered above.
            Node::Duration => return Err(kind()),
            Node::Array(item) => {
                let (Col::List { child, .. }, Some(list)) = (col, array.as_list_opt::<i32>()) else {
                    return Err(kind());
                };
                let values = list.value(row);
                let items = (0..values.len()).map(|i| self.value(*child, values.as_ref(), i, item, plan));
                Json::Array(items.collect::<Result<_, _>>()?)
            }
            Node::Map(value) => {
                let (Col::Map { values, .. }, Some(map)) = (col, array.as_map_opt()) else {
                    return Err(kind());
                };
                let entries = map.value(row);
                let keys = entries.column(0).as_string_opt::<i32>().ok_or_else(kind)?;
                let mut out = serde_json::Map::with_capacity(entries.len());
                for i in 0..entries.len() {
                    let v = self.value(*values, entries.column(1).as_ref(), i, value, plan)?;
                    out.insert(keys.value(i).to_owned(), v);
                }
                Json::Object(out)
            }
            Node::Named(i) => match plan.named.get(*i) {
                Some(Named::Record(r)) => {
                    let (Col::Struct { names, children, .. }, Some(fields)) = (col, array.as_struct_opt()) else {
                        return Err(kind());
                    };
                    let mut out = serde_json::Map::with_capacity(r.fields.len());
                    for f in &r.fields {
                        let k = names.iter().position(|n| *n == f.name).ok_or_else(|| format!("no column {}", f.name))?;
                        let (child, values) = (children[k], fields.column(k));
                        let v = self.value(child, values.as_ref(), row, &f.node, plan).map_err(|e| format!("{}: {e}", f.name))?;
                        out.insert(f.name.clone(), v);
                    }
                    Json::Object(out)
                }
                Some(Named::Enum(_)) => Json::from(array.as_string_opt::<i32>().ok_or_else(kind)?.value(row)),
                Some(Named::Fixed(_)) => base64(array.as_fixed_size_binary_opt().ok_or_else(kind)?.value(row)),
                None => return Err(kind()),
            },
        })
    }
}

/// Value `row` of a primitive array of type `T` (an error, never a panic, if it is another).
fn prim<T: arrow_array::ArrowPrimitiveType>(array: &dyn Array, row: usize) -> Result<T::Native, String> {
    match array.as_primitive_opt::<T>() {
        Some(values) => Ok(values.value(row)),
        None => Err(format!("a {:?} column where {:?} was expected", array.data_type(), T::DATA_TYPE)),
    }
}

/// A float as the lake's JSON writes it: a number, or the text of what JSON has no number for.
fn number(v: f64) -> Json {
    match serde_json::Number::from_f64(v) {
        Some(n) => Json::Number(n),
        None if v.is_nan() => Json::from("NaN"),
        None if v > 0.0 => Json::from("Infinity"),
        None => Json::from("-Infinity"),
    }
}

fn base64(bytes: &[u8]) -> Json {
    Json::from(base64::engine::general_purpose::STANDARD.encode(bytes))
}
