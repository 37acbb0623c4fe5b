//! What both targets share (included with `#[path]`: each target is its own binary).

use std::sync::OnceLock;

use apache_avro::Schema;
use nrt_pipeline::event::{SCHEMA_V1, SCHEMA_V2};
use nrt_pipeline::fast_avro::Shape;

/// The schema of `shape` (reader and writer alike), parsed once per process.
pub fn schema(shape: Shape) -> &'static Schema {
    static V1: OnceLock<Schema> = OnceLock::new();
    static V2: OnceLock<Schema> = OnceLock::new();
    let (cell, text) = match shape {
        Shape::V1 => (&V1, SCHEMA_V1),
        Shape::V2 => (&V2, SCHEMA_V2),
    };
    cell.get_or_init(|| match Schema::parse_str(text) {
        Ok(s) => s,
        Err(e) => panic!("{shape:?} does not parse: {e}"),
    })
}
