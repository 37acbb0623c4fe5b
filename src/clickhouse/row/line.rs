//! Whether a record's pass (`Steps::run`) writes its lake line: a JSONL lake whose records keep their
//! lines (a table routed by a field's value reads it from the line) writes it as JSON; records that keep
//! their Avro datum instead (`record::Keep`) get none, and their lake object is made from the datums
//! when it is written. Chosen per call, at compile time: the pass without a line has no branch for it.

use crate::avro::json::JsonLine;
use crate::avro::plan::{Field, Record, Unit};
use crate::avro::walk::Visitor;

/// Whether a pass writes the record's lake line, and with what: `Json` (the line a JSONL lake keeps)
/// or `NoLine` (a record that keeps its datum instead: formatting a line nobody keeps was a third of
/// its decoding).
pub trait Line {
    type Out<'l>: Visitor;
    /// False: nothing is written to the line's buffer.
    const ON: bool;
    fn resume(out: &mut Vec<u8>, open: Vec<bool>) -> Self::Out<'_>;
    fn into_open(out: Self::Out<'_>) -> Vec<bool>;
    /// Text that is its own JSON string, between quotes.
    fn raw_string(out: &mut Self::Out<'_>, text: &[u8]);
}

/// The lake line, as JSON.
pub enum Json {}

impl Line for Json {
    type Out<'l> = JsonLine<'l>;
    const ON: bool = true;
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

/// No line at all.
pub enum NoLine {}

/// What a `NoLine` pass is told: nothing is done with it (the open containers are carried back).
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

impl Line for NoLine {
    type Out<'l> = Unwritten;
    const ON: bool = false;
    fn resume(_: &mut Vec<u8>, open: Vec<bool>) -> Unwritten {
        Unwritten(open)
    }
    fn into_open(out: Unwritten) -> Vec<bool> {
        out.0
    }
    fn raw_string(_: &mut Unwritten, _: &[u8]) {}
}
