//! Which columns of a file are written without a dictionary. Dictionary encoding pays for columns of
//! few distinct values (an event's type, a currency) and only costs for columns of unique ones (ids,
//! millisecond timestamps): the writer hashes and interns every value, then, past its dictionary
//! size limit, falls back to plain pages anyway. It was a fifth of the encoder's CPU on events.v1.
//! So each top-level column is sampled: where most of the first values differ, the column is plain.

use std::collections::HashSet;

use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::schema::types::ColumnPath;

/// Values looked at per column: enough to tell ids from categories, cheap beside the batch.
const SAMPLE: usize = 1_024;

/// The top-level columns of `batch` whose sampled non-null values are more than half distinct.
/// Nested columns (records, arrays, maps) keep the dictionary: their leaves are not sampled.
pub fn plain_columns(batch: &RecordBatch) -> Vec<ColumnPath> {
    batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(_, array)| mostly_distinct(array.as_ref()))
        .map(|(field, _)| ColumnPath::from(field.name().as_str()))
        .collect()
}

/// More than half of the first `SAMPLE` non-null values differ (false for types not sampled).
pub fn mostly_distinct(array: &dyn Array) -> bool {
    let data = array.to_data();
    let Some(value) = reader(&data) else {
        return false;
    };
    let mut seen = HashSet::with_capacity(SAMPLE);
    let mut sampled = 0usize;
    for i in (0..data.len()).filter(|&i| data.is_valid(i)).take(SAMPLE) {
        sampled += 1;
        if let Some(bytes) = value(i) {
            seen.insert(bytes);
        }
    }
    sampled > 0 && seen.len() * 2 > sampled
}

type ValueAt<'a> = Box<dyn Fn(usize) -> Option<&'a [u8]> + 'a>;

/// The bytes of value `i` of a column of fixed-width numbers, fixed-size binary or 32-bit-offset
/// strings and bytes; None for other types (booleans have no dictionary; nested columns are not sampled).
fn reader(data: &arrow_data::ArrayData) -> Option<ValueAt<'_>> {
    let offset = data.offset();
    let width = match data.data_type() {
        DataType::Boolean => return None,
        DataType::FixedSizeBinary(w) => usize::try_from(*w).ok(),
        DataType::Utf8 | DataType::Binary => {
            let offsets = data.buffers().first()?.typed_data::<i32>();
            let values = data.buffers().get(1)?.as_slice();
            return Some(Box::new(move |i| {
                let start = usize::try_from(*offsets.get(offset + i)?).ok()?;
                let end = usize::try_from(*offsets.get(offset + i + 1)?).ok()?;
                values.get(start..end)
            }));
        }
        t => t.primitive_width(),
    }?;
    let values = data.buffers().first()?.as_slice();
    Some(Box::new(move |i| values.get((offset + i) * width..(offset + i + 1) * width)))
}
