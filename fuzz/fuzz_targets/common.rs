//! What both targets share (included with `#[path]`: each target is its own binary).

use std::sync::OnceLock;

use apache_avro::Schema;
use nrt_pipeline::event::SCHEMA_V1;

/// The reader (and writer) schema, parsed once per process.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| match Schema::parse_str(SCHEMA_V1) {
        Ok(s) => s,
        Err(e) => panic!("SCHEMA_V1 does not parse: {e}"),
    })
}
