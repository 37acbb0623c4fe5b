//! The Arrow columns a writer schema's records become (docs/data.md, "The lake in Parquet"): one
//! column per node of the schema, kept in an arena (children by index), filled as datums are walked
//! (`visitor.rs`) and turned into Arrow arrays once the batch is whole.
//!
//! The mapping: boolean, int, long, float, double, bytes, string as themselves; fixed as
//! FixedSizeBinary; enum and uuid as strings (the symbol; lowercase hyphenated, as the JSONL lake
//! writes them and every reader shows without an extension type); decimal(P ≤ 38) as Decimal128(P, S),
//! wider ones as their exact text; date as Date32; time-millis/-micros as Time32(ms)/Time64(µs);
//! timestamps at their unit, UTC ("UTC" time zone) or local (none); records as structs, arrays as
//! lists, maps as maps of string keys; `["null", T]` as a nullable T. What Parquet has no type for —
//! a union of several types, a duration, a record that contains itself — is the value's JSON text,
//! exactly as the JSONL lake writes it.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Decimal128Builder, FixedSizeBinaryBuilder, Float32Builder,
    Float64Builder, Int32Builder, Int64Builder, NullBuilder, StringBuilder,
};
use arrow_array::{make_array, Array, ArrayRef, ListArray, MapArray, StructArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{ArrowError, DataType, Field, Fields, TimeUnit};

use crate::avro::plan::{Named, Node, Plan, Unit};

pub enum Col {
    Null(NullBuilder),
    Bool(BooleanBuilder),
    /// Int32, Date32, Time32(ms): the values, and the type they are.
    I32(Int32Builder, DataType),
    /// Int64, Time64, Timestamp.
    I64(Int64Builder, DataType),
    F32(Float32Builder),
    F64(Float64Builder),
    Bytes(BinaryBuilder),
    /// Strings, enum symbols, uuids, wide decimals' text, and the JSON of what has no Parquet type.
    Text(StringBuilder),
    Json(StringBuilder),
    /// The values, and their width.
    Fixed(FixedSizeBinaryBuilder, i32),
    /// The values, and their precision and scale.
    Decimal(Decimal128Builder, u8, i8),
    Struct {
        names: Vec<String>,
        children: Vec<usize>,
        valid: Vec<bool>,
    },
    List {
        child: usize,
        offsets: Vec<i32>,
        valid: Vec<bool>,
    },
    Map {
        keys: StringBuilder,
        values: usize,
        offsets: Vec<i32>,
        valid: Vec<bool>,
    },
}

/// The columns of one or more writer schemas; column 0 is the root record.
pub struct Columns {
    pub cols: Vec<Col>,
    /// The values each column gets room for up front: a batch's records, so that builders do not grow
    /// by copying themselves (which, with the fresh pages each copy touches, was most of the cost).
    rows: usize,
}

impl Columns {
    /// The columns for records of `plans` (each root must be a record): the first's, then every field
    /// another adds, by name, at any depth (records of a schema without it have it null there). A field
    /// two schemas type differently takes both: int and long as long, float and double as double,
    /// anything else as each value's JSON text (what a union of several types is).
    pub fn new(plans: &[&Plan]) -> Columns {
        Columns::with_capacity(plans, 0)
    }

    /// `new`, each column with room for `rows` values.
    pub fn with_capacity(plans: &[&Plan], rows: usize) -> Columns {
        let mut columns = Columns { cols: Vec::new(), rows };
        if let Some((first, rest)) = plans.split_first() {
            columns.add(&first.root, first, &mut Vec::new());
            for plan in rest {
                columns.merge(0, &plan.root, plan, &mut Vec::new());
            }
        }
        columns
    }

    /// Fits column `at` (made for another schema, still empty) to also take `node` of `plan`.
    fn merge(&mut self, at: usize, node: &Node, plan: &Plan, path: &mut Vec<usize>) {
        let node = match node {
            Node::Union(u) => {
                let mut others = u.branches.iter().filter(|b| **b != Node::Null);
                match (others.next(), others.next()) {
                    (Some(only), None) => only,
                    _ => node,
                }
            }
            _ => node,
        };
        let record = match node {
            Node::Named(i) if !path.contains(i) => match plan.named.get(*i) {
                Some(Named::Record(r)) => Some((*i, r)),
                _ => None,
            },
            _ => None,
        };
        match (&self.cols[at], node, record) {
            (Col::Json(_), ..) => {}
            (Col::Struct { .. }, _, Some((i, r))) => {
                path.push(i);
                for f in &r.fields {
                    let known = match &self.cols[at] {
                        Col::Struct { names, children, .. } => {
                            names.iter().position(|n| *n == f.name).and_then(|k| children.get(k).copied())
                        }
                        _ => None,
                    };
                    match known {
                        Some(child) => self.merge(child, &f.node, plan, path),
                        None => {
                            let child = self.add(&f.node, plan, path);
                            if let Col::Struct { names, children, .. } = &mut self.cols[at] {
                                names.push(f.name.clone());
                                children.push(child);
                            }
                        }
                    }
                }
                path.pop();
            }
            (Col::List { child, .. }, Node::Array(item), _) => self.merge(*child, item, plan, path),
            (Col::Map { values, .. }, Node::Map(value), _) => self.merge(*values, value, plan, path),
            _ => {
                // A leaf (or containers of different kinds): the same type, a wider one, or JSON.
                let mark = self.cols.len();
                let probe = self.add(node, plan, path);
                let (ours, theirs) = (leaf_type(&self.cols[at]), leaf_type(&self.cols[probe]));
                if ours == Some(DataType::Null) {
                    // A field only ever null so far: it takes the other's column (children and all).
                    self.cols.swap(at, probe);
                    return;
                }
                self.cols.truncate(mark);
                let wider = match (ours, theirs) {
                    (Some(a), Some(b)) if a == b => return,
                    (_, Some(DataType::Null)) => return,
                    (Some(DataType::Int32), Some(DataType::Int64)) => Col::I64(Int64Builder::with_capacity(self.rows), DataType::Int64),
                    (Some(DataType::Int64), Some(DataType::Int32)) => return,
                    (Some(DataType::Float32), Some(DataType::Float64)) => Col::F64(Float64Builder::with_capacity(self.rows)),
                    (Some(DataType::Float64), Some(DataType::Float32)) => return,
                    _ => Col::Json(StringBuilder::with_capacity(self.rows, self.rows * 16)),
                };
                self.cols[at] = wider;
            }
        }
    }

    /// How many values column `at` holds.
    pub fn len(&self, at: usize) -> usize {
        match &self.cols[at] {
            Col::Null(b) => b.len(),
            Col::Bool(b) => b.len(),
            Col::I32(b, _) => b.len(),
            Col::I64(b, _) => b.len(),
            Col::F32(b) => b.len(),
            Col::F64(b) => b.len(),
            Col::Bytes(b) => b.len(),
            Col::Text(b) | Col::Json(b) => b.len(),
            Col::Fixed(b, _) => b.len(),
            Col::Decimal(b, ..) => b.len(),
            Col::Struct { valid, .. } | Col::List { valid, .. } | Col::Map { valid, .. } => valid.len(),
        }
    }

    fn add(&mut self, node: &Node, plan: &Plan, path: &mut Vec<usize>) -> usize {
        let col = match node {
            Node::Null => Col::Null(NullBuilder::new()),
            Node::Boolean => Col::Bool(BooleanBuilder::with_capacity(self.rows)),
            Node::Int => Col::I32(Int32Builder::with_capacity(self.rows), DataType::Int32),
            Node::Long => Col::I64(Int64Builder::with_capacity(self.rows), DataType::Int64),
            Node::Float => Col::F32(Float32Builder::with_capacity(self.rows)),
            Node::Double => Col::F64(Float64Builder::with_capacity(self.rows)),
            Node::Bytes => Col::Bytes(BinaryBuilder::with_capacity(self.rows, self.rows * 16)),
            Node::String => Col::Text(StringBuilder::with_capacity(self.rows, self.rows * 16)),
            // Hyphenated: 36 bytes each, known up front (growing by doubling copied the column twice).
            Node::Uuid(_) => Col::Text(StringBuilder::with_capacity(self.rows, self.rows * 36)),
            Node::Decimal { precision, scale, .. } => match (u8::try_from(*precision), i8::try_from(*scale)) {
                (Ok(p @ 1..=38), Ok(s)) => match Decimal128Builder::with_capacity(self.rows).with_precision_and_scale(p, s) {
                    Ok(b) => Col::Decimal(b, p, s),
                    Err(_) => Col::Text(StringBuilder::with_capacity(self.rows, self.rows * 16)),
                },
                _ => Col::Text(StringBuilder::with_capacity(self.rows, self.rows * 16)),
            },
            Node::Date => Col::I32(Int32Builder::with_capacity(self.rows), DataType::Date32),
            Node::Time(Unit::Millis) => Col::I32(Int32Builder::with_capacity(self.rows), DataType::Time32(TimeUnit::Millisecond)),
            Node::Time(unit) => Col::I64(Int64Builder::with_capacity(self.rows), DataType::Time64(time_unit(*unit))),
            Node::Timestamp { unit, local } => {
                let zone = (!local).then(|| Arc::from("UTC"));
                Col::I64(Int64Builder::with_capacity(self.rows), DataType::Timestamp(time_unit(*unit), zone))
            }
            Node::Duration => Col::Json(StringBuilder::with_capacity(self.rows, self.rows * 16)),
            Node::Array(item) => {
                let child = self.add(item, plan, path);
                Col::List {
                    child,
                    offsets: vec![0],
                    valid: Vec::with_capacity(self.rows),
                }
            }
            Node::Map(value) => {
                let values = self.add(value, plan, path);
                Col::Map {
                    keys: StringBuilder::with_capacity(self.rows, self.rows * 16),
                    values,
                    offsets: vec![0],
                    valid: Vec::with_capacity(self.rows),
                }
            }
            Node::Union(u) => {
                let mut others = u.branches.iter().filter(|b| **b != Node::Null);
                match (others.next(), others.next()) {
                    (Some(only), None) => return self.add(only, plan, path),
                    _ => Col::Json(StringBuilder::with_capacity(self.rows, self.rows * 16)),
                }
            }
            Node::Named(i) => match plan.named.get(*i) {
                Some(Named::Record(r)) if !path.contains(i) => {
                    path.push(*i);
                    let at = self.reserve();
                    let children = r.fields.iter().map(|f| self.add(&f.node, plan, path)).collect();
                    path.pop();
                    self.cols[at] = Col::Struct {
                        names: r.fields.iter().map(|f| f.name.clone()).collect(),
                        children,
                        valid: Vec::with_capacity(self.rows),
                    };
                    return at;
                }
                Some(Named::Enum(_)) => Col::Text(StringBuilder::with_capacity(self.rows, self.rows * 16)),
                Some(Named::Fixed(size)) => match i32::try_from(*size) {
                    Ok(size) => Col::Fixed(FixedSizeBinaryBuilder::with_capacity(self.rows, size), size),
                    Err(_) => Col::Json(StringBuilder::with_capacity(self.rows, self.rows * 16)),
                },
                // A record inside itself (or a name the plan lacks): its JSON.
                _ => Col::Json(StringBuilder::with_capacity(self.rows, self.rows * 16)),
            },
        };
        self.cols.push(col);
        self.cols.len() - 1
    }

    /// A place for a struct whose children are added after it (so the root is column 0).
    fn reserve(&mut self) -> usize {
        self.cols.push(Col::Null(NullBuilder::new()));
        self.cols.len() - 1
    }

    /// Appends a null to `at` (and to every child of a struct, whose lengths follow its own).
    pub fn append_null(&mut self, at: usize) {
        let mut children = Vec::new();
        match &mut self.cols[at] {
            Col::Null(b) => b.append_null(),
            Col::Bool(b) => b.append_null(),
            Col::I32(b, _) => b.append_null(),
            Col::I64(b, _) => b.append_null(),
            Col::F32(b) => b.append_null(),
            Col::F64(b) => b.append_null(),
            Col::Bytes(b) => b.append_null(),
            Col::Text(b) | Col::Json(b) => b.append_null(),
            Col::Fixed(b, _) => b.append_null(),
            Col::Decimal(b, ..) => b.append_null(),
            Col::Struct { children: c, valid, .. } => {
                valid.push(false);
                children.extend_from_slice(c);
            }
            Col::List { offsets, valid, .. } | Col::Map { offsets, valid, .. } => {
                valid.push(false);
                offsets.push(offsets.last().copied().unwrap_or(0));
            }
        }
        for child in children {
            self.append_null(child);
        }
    }

    /// Column `at` as an Arrow array (its builders emptied), and its type.
    pub fn finish(&mut self, at: usize) -> Result<ArrayRef, ArrowError> {
        let col = std::mem::replace(&mut self.cols[at], Col::Null(NullBuilder::new()));
        let array: ArrayRef = match col {
            Col::Null(mut b) => Arc::new(b.finish()),
            Col::Bool(mut b) => Arc::new(b.finish()),
            Col::I32(mut b, ty) => retyped(&b.finish(), ty)?,
            Col::I64(mut b, ty) => retyped(&b.finish(), ty)?,
            Col::F32(mut b) => Arc::new(b.finish()),
            Col::F64(mut b) => Arc::new(b.finish()),
            Col::Bytes(mut b) => Arc::new(b.finish()),
            Col::Text(mut b) | Col::Json(mut b) => Arc::new(b.finish()),
            Col::Fixed(mut b, _) => Arc::new(b.finish()),
            Col::Decimal(mut b, ..) => Arc::new(b.finish()),
            Col::Struct { names, children, valid } => {
                let arrays = children.iter().map(|&c| self.finish(c)).collect::<Result<Vec<_>, _>>()?;
                let fields: Fields = names
                    .iter()
                    .zip(&arrays)
                    .map(|(n, a)| Field::new(n, a.data_type().clone(), true))
                    .collect();
                Arc::new(StructArray::try_new(fields, arrays, Some(valid.into()))?)
            }
            Col::List { child, offsets, valid } => {
                let values = self.finish(child)?;
                let item = Arc::new(Field::new("item", values.data_type().clone(), true));
                let offsets = offset_buffer(offsets)?;
                Arc::new(ListArray::try_new(item, offsets, values, Some(valid.into()))?)
            }
            Col::Map {
                mut keys,
                values,
                offsets,
                valid,
            } => {
                let values = self.finish(values)?;
                let keys: ArrayRef = Arc::new(keys.finish());
                let entries = StructArray::try_new(
                    Fields::from(vec![
                        Field::new("key", DataType::Utf8, false),
                        Field::new("value", values.data_type().clone(), true),
                    ]),
                    vec![keys, values],
                    None,
                )?;
                let field = Arc::new(Field::new("entries", entries.data_type().clone(), false));
                let offsets = offset_buffer(offsets)?;
                Arc::new(MapArray::try_new(field, offsets, entries, Some(valid.into()), false)?)
            }
        };
        Ok(array)
    }
}

/// The Arrow type of a leaf column (None for containers and JSON).
fn leaf_type(col: &Col) -> Option<DataType> {
    Some(match col {
        Col::Null(_) => DataType::Null,
        Col::Bool(_) => DataType::Boolean,
        Col::I32(_, ty) | Col::I64(_, ty) => ty.clone(),
        Col::F32(_) => DataType::Float32,
        Col::F64(_) => DataType::Float64,
        Col::Bytes(_) => DataType::Binary,
        Col::Text(_) => DataType::Utf8,
        Col::Fixed(_, size) => DataType::FixedSizeBinary(*size),
        Col::Decimal(_, p, s) => DataType::Decimal128(*p, *s),
        Col::Json(_) | Col::Struct { .. } | Col::List { .. } | Col::Map { .. } => return None,
    })
}

/// Offsets from the ends each list or map closed at (what `Col::List::offsets` holds).
fn offset_buffer(ends: Vec<i32>) -> Result<OffsetBuffer<i32>, ArrowError> {
    if ends.windows(2).any(|w| w[1] < w[0]) {
        return Err(ArrowError::InvalidArgumentError("offsets go backwards".into()));
    }
    Ok(OffsetBuffer::new(ends.into()))
}

/// The same values as another primitive type of their width (a date, a time, a timestamp).
fn retyped(array: &dyn Array, ty: DataType) -> Result<ArrayRef, ArrowError> {
    Ok(make_array(array.to_data().into_builder().data_type(ty).build()?))
}

fn time_unit(unit: Unit) -> TimeUnit {
    match unit {
        Unit::Millis => TimeUnit::Millisecond,
        Unit::Micros => TimeUnit::Microsecond,
        Unit::Nanos => TimeUnit::Nanosecond,
    }
}
