//! The lake's objects in Parquet. A batch's records are walked from their Avro datums straight into
//! Arrow columns (`columns.rs`, `visitor.rs`: no JSON, no value tree), then written as one Parquet
//! file: zstd, statistics on, dictionary encoding on except for columns of mostly distinct values
//! (`dictionary.rs`), key-value metadata beside the schema (the offsets the object holds, its
//! writer schemas). `read.rs` reads such a file back as the lake's lines.

mod columns;
mod dictionary;
pub mod read;
mod visitor;

use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StructArray};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::avro::walk::walk;
use crate::avro::Plan;
use columns::Columns;
use visitor::ArrowVisitor;

#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    #[error("record {index}: {source}")]
    Datum {
        index: usize,
        #[source]
        source: crate::avro::walk::DecodeError,
    },
    /// The columns did not follow the walk: a bug of ours, never the data.
    #[error("record {0}: a value met a column of another kind")]
    Mismatch(usize),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// The rows of a row group: a batch of up to 50,000 records is one.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// One Parquet file of the `datums` (Avro, all of writer schema `plan`), with `metadata` as its
/// key-value metadata.
pub fn encode<'d>(
    plan: &Plan,
    datums: impl IntoIterator<Item = &'d [u8]>,
    metadata: &[(&str, String)],
) -> Result<Vec<u8>, ParquetError> {
    let datums = datums.into_iter();
    let rows = datums.size_hint().0;
    encode_mixed(&[plan], (rows, datums.map(|d| (0, d))), metadata)
}

/// One Parquet file of `records` of several writer schemas (each `(index into plans, datum)`; `rows`:
/// how many, room made for them up front), its columns those of every schema together
/// (`Columns::new`).
pub fn encode_mixed<'d>(
    plans: &[&Plan],
    (rows, records): (usize, impl IntoIterator<Item = (usize, &'d [u8])>),
    metadata: &[(&str, String)],
) -> Result<Vec<u8>, ParquetError> {
    let mut columns = Columns::with_capacity(plans, rows);
    for (index, (which, datum)) in records.into_iter().enumerate() {
        let plan = plans.get(which).ok_or(ParquetError::Mismatch(index))?;
        let mut visitor = ArrowVisitor::new(&mut columns);
        walk(plan, datum, &mut visitor).map_err(|source| ParquetError::Datum { index, source })?;
        if visitor.mismatch {
            return Err(ParquetError::Mismatch(index));
        }
    }
    let root = columns.finish(0)?;
    let Some(root) = root.as_any().downcast_ref::<StructArray>() else {
        return Err(ParquetError::Mismatch(0));
    };
    let batch = RecordBatch::from(root.clone());
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_key_value_metadata(Some(
            metadata
                .iter()
                .map(|(k, v)| KeyValue::new((*k).to_owned(), v.clone()))
                .collect(),
        ));
    for column in dictionary::plain_columns(&batch) {
        properties = properties.set_column_dictionary_enabled(column, false);
    }
    let properties = properties.build();
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let mut writer = ArrowWriter::try_new(&mut out, Arc::new(batch.schema().as_ref().clone()), Some(properties))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(out)
}

/// A record of every Avro type the lake maps (each logical type, unions of one and of several types,
/// nested records, arrays of records, maps): what the Parquet tests write and read back.
pub const EVERY_TYPE_SCHEMA: &str = r#"{"type":"record","name":"All","namespace":"t","fields":[
    {"name":"n","type":"null"},{"name":"b","type":"boolean"},{"name":"i","type":"int"},
    {"name":"l","type":"long"},{"name":"f","type":"float"},{"name":"d","type":"double"},
    {"name":"by","type":"bytes"},{"name":"s","type":"string"},
    {"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
    {"name":"fx","type":{"type":"fixed","name":"Three","size":3}},
    {"name":"a","type":{"type":"array","items":"long"}},
    {"name":"m","type":{"type":"map","values":"string"}},
    {"name":"u1","type":["null","string"]},
    {"name":"amb","type":["int","long"]},
    {"name":"many","type":["null","int","string"]},
    {"name":"rec","type":{"type":"record","name":"Inner","fields":[{"name":"x","type":"int"},
        {"name":"tags","type":{"type":"array","items":"string"}}]}},
    {"name":"recs","type":{"type":"array","items":"Inner"}},
    {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":30,"scale":4}},
    {"name":"decf","type":{"type":"fixed","name":"D8","size":8,"logicalType":"decimal","precision":18,"scale":0}},
    {"name":"wide","type":{"type":"bytes","logicalType":"decimal","precision":50,"scale":2}},
    {"name":"uuid","type":{"type":"string","logicalType":"uuid"}},
    {"name":"date","type":{"type":"int","logicalType":"date"}},
    {"name":"tms","type":{"type":"int","logicalType":"time-millis"}},
    {"name":"tus","type":{"type":"long","logicalType":"time-micros"}},
    {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"tsn","type":{"type":"long","logicalType":"timestamp-nanos"}},
    {"name":"lts","type":{"type":"long","logicalType":"local-timestamp-millis"}},
    {"name":"dur","type":{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}}]}"#;

#[cfg(test)]
mod tests;
