//! What a record's pass (`Steps::run`) writes: its lake line, its ClickHouse row, or both. Records that
//! keep their Avro datum (`record::Keep`) are read with the row only and their lake lines are made from
//! the datums when the batch is written, with the line only; a table routed by a field's value reads
//! the line, so its records get both in one pass. Chosen per call, at compile time: a pass has no
//! branch for what it does not write.

use crate::avro::json::JsonLine;
use crate::avro::plan::{Field, Record, Unit};
use crate::avro::walk::Visitor;

/// What a pass writes, and how it writes the line: `Both` (the line as JSON and the row: a table
/// routed by a field's value reads the line), `RowOnly` (when read, for records that keep their datum:
/// formatting a line nobody keeps was a third of the decoding), `LineOnly` (when the batch is written,
/// the lake's lines from those datums).
pub trait Pass {
    type Out<'l>: Visitor;
    /// False: nothing is written to the line's buffer.
    const LINE: bool;
    /// False: nothing is written to the row's buffer, and no value is checked against its column.
    const ROW: bool;
    fn resume(out: &mut Vec<u8>, open: Vec<bool>) -> Self::Out<'_>;
    fn into_open(out: Self::Out<'_>) -> Vec<bool>;
    /// Text that is its own JSON string, between quotes.
    fn raw_string(out: &mut Self::Out<'_>, text: &[u8]);
}

/// The line as JSON, with the row (`ROW`) or without.
pub enum WithLine<const ROW: bool> {}

/// The line as JSON, and the row.
pub type Both = WithLine<true>;

/// The line as JSON only.
pub type LineOnly = WithLine<false>;

impl<const R: bool> Pass for WithLine<R> {
    type Out<'l> = JsonLine<'l>;
    const LINE: bool = true;
    const ROW: bool = R;
    fn resume(out: &mut Vec<u8>, open: Vec<bool>) -> JsonLine<'_> {
        JsonLine::resume(out, open)
    }
    fn into_open(out: JsonLine<'_>) -> Vec<bool> {
        out.into_open()
    }
    fn raw_string(out: &mut JsonLine<'_>, text: &[u8]) {
        out.raw_string(text)
    }
}

/// The row only.
pub enum RowOnly {}

/// What a pass without a line tells the line: nothing is done with it (the open containers are carried back).
#[derive(Default)]
pub struct Unwritten(Vec<bool>);

impl Visitor for Unwritten {
    fn null(&mut self) {}
    fn boolean(&mut self, _: bool) {}
    fn int(&mut self, _: i32) {}
    fn long(&mut self, _: i64) {}
    fn float(&mut self, _: f32) {}
    fn double(&mut self, _: f64) {}
    fn bytes(&mut self, _: &[u8]) {}
    fn string(&mut self, _: &str) {}
    fn uuid(&mut self, _: uuid::Uuid) {}
    fn decimal(&mut self, _: &[u8], _: u32) {}
    fn date(&mut self, _: i32) {}
    fn time(&mut self, _: i64, _: Unit) {}
    fn timestamp(&mut self, _: i64, _: Unit, _: bool) {}
    fn duration(&mut self, _: u32, _: u32, _: u32) {}
    fn fixed(&mut self, _: &[u8]) {}
    fn symbol(&mut self, _: usize, _: &str) {}
    fn begin_array(&mut self) {}
    fn item(&mut self) {}
    fn end_array(&mut self) {}
    fn begin_map(&mut self) {}
    fn key(&mut self, _: &str) {}
    fn end_map(&mut self) {}
    fn begin_record(&mut self, _: &Record) {}
    fn field(&mut self, _: &Field) {}
    fn null_field(&mut self, _: &Field) {}
    fn end_record(&mut self) {}
    fn begin_branch(&mut self, _: &str) {}
    fn end_branch(&mut self) {}
}

impl Pass for RowOnly {
    type Out<'l> = Unwritten;
    const LINE: bool = false;
    const ROW: bool = true;
    fn resume(_: &mut Vec<u8>, open: Vec<bool>) -> Unwritten {
        Unwritten(open)
    }
    fn into_open(out: Unwritten) -> Vec<bool> {
        out.0
    }
    fn raw_string(_: &mut Unwritten, _: &[u8]) {}
}
