//! Avro driven by the writer schema: a schema is compiled once into a plan (`plan.rs`), and each datum
//! is read along it straight into what the sinks write (`walk.rs` tells a visitor each value; `json.rs`
//! is the lake's line), with no value tree in between.

pub mod encode;
pub mod json;
pub mod plan;
pub mod random;
pub mod reference;
#[cfg(test)]
mod tests;
pub mod walk;

pub use plan::{Plan, PlanError};
pub use walk::{walk, DecodeError, Visitor};

/// Appends `datum`'s lake line (no newline) to `out`; on an error `out` is left as it was.
pub fn json_line(plan: &Plan, datum: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let start = out.len();
    let walked = walk(plan, datum, &mut json::JsonLine::new(out));
    if walked.is_err() {
        out.truncate(start);
    }
    walked
}
