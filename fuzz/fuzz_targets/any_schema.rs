//! Any writer schema, any bytes: the consumer decodes records of every schema id the registry holds,
//! so the schema is as hostile as the datum. The input's first bytes choose a schema (records, arrays,
//! maps, unions, named and recursive types, logical types), the rest is the datum. Decoding may fail;
//! it must not panic, recurse without bound, or allocate what the bytes do not justify (libFuzzer's
//! `-rss_limit_mb` stops a run that does). The schema-driven walker (`avro::walk`) must agree with
//! apache-avro: the same lake line as the reference mapping of apache-avro's value, or both refuse; and
//! the line must read back (`avro::encode::from_json`) into a datum whose line is the same; a table made
//! from the schema must take it, and writing the row in the same walk must not change the line.
#![no_main]

use apache_avro::Schema;
use libfuzzer_sys::fuzz_target;
use nrt_pipeline::wire;
use serde_json::{json, Value};

/// Turns bytes into a schema, one decision per byte (0 once they run out).
struct Gen<'a> {
    data: &'a [u8],
    names: usize,
    /// Records being defined around the current point: a field may refer back to one (recursion).
    enclosing: Vec<String>,
}

impl Gen<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn name(&mut self, kind: &str) -> String {
        self.names += 1;
        format!("{kind}{}", self.names)
    }

    fn schema(&mut self, depth: usize) -> Value {
        let choices = if depth >= 6 { 8 } else { 24 };
        match self.byte() % choices {
            0 => json!("null"),
            1 => json!("boolean"),
            2 => json!("int"),
            3 => json!("long"),
            4 => json!("float"),
            5 => json!("double"),
            6 => json!("bytes"),
            7 => json!("string"),
            8 | 9 => json!({"type": "array", "items": self.schema(depth + 1)}),
            10 => json!({"type": "map", "values": self.schema(depth + 1)}),
            11 | 12 => {
                let name = self.name("R");
                self.enclosing.push(name.clone());
                let fields: Vec<Value> = (0..self.byte() % 4)
                    .map(|i| json!({"name": format!("f{i}"), "type": self.schema(depth + 1)}))
                    .collect();
                self.enclosing.pop();
                json!({"type": "record", "name": name, "fields": fields})
            }
            13 => {
                let symbols: Vec<String> = (0..=self.byte() % 4).map(|i| format!("S{i}")).collect();
                json!({"type": "enum", "name": self.name("E"), "symbols": symbols})
            }
            14 => json!({"type": "fixed", "name": self.name("F"), "size": self.byte() % 20}),
            // Unions: null and one other branch, or a few branches (duplicates make the schema invalid,
            // which the parser refuses: the fuzzer moves on).
            15 => json!(["null", self.schema(depth + 1)]),
            16 => {
                let branches: Vec<Value> = (0..=self.byte() % 3).map(|_| self.schema(depth + 1)).collect();
                Value::Array(branches)
            }
            // A reference back to an enclosing record, behind a union so a value can end.
            17 => match self.enclosing.last() {
                Some(name) => json!(["null", name]),
                None => json!("null"),
            },
            18 => {
                let logical = ["timestamp-millis", "timestamp-micros", "timestamp-nanos", "local-timestamp-millis",
                    "local-timestamp-micros", "local-timestamp-nanos", "time-micros"];
                json!({"type": "long", "logicalType": logical[self.byte() as usize % logical.len()]})
            }
            19 => {
                let logical = ["date", "time-millis"];
                json!({"type": "int", "logicalType": logical[self.byte() as usize % logical.len()]})
            }
            20 => {
                let precision = 1 + self.byte() % 38;
                let scale = self.byte() % (precision + 1);
                json!({"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale})
            }
            21 => {
                let size = 1 + self.byte() % 16;
                json!({"type": "fixed", "name": self.name("D"), "size": size, "logicalType": "decimal",
                    "precision": 1 + self.byte() % 30, "scale": 0})
            }
            22 => json!({"type": "string", "logicalType": "uuid"}),
            _ => json!({"type": "fixed", "name": self.name("Dur"), "size": 12, "logicalType": "duration"}),
        }
    }
}

/// A table made from the schema (for 18.16 and for current releases) takes it, and the row written in the
/// same walk as the line neither panics nor changes the line.
fn rows(text: &str, plan: &nrt_pipeline::avro::Plan, datum: &[u8], walked: bool, line: &[u8]) {
    use nrt_pipeline::clickhouse::row::{RowPlan, RowWriter, Scratch};
    use nrt_pipeline::clickhouse::table::{self, Key};
    use nrt_pipeline::clickhouse::types::Server;
    for server in [Server::LEGACY, Server::CURRENT] {
        let _ = table::create("d", "t", plan, server, &Key::Coordinates, None);
        let Ok(columns) = table::columns_of(plan, server) else { continue };
        let rows = match RowPlan::new(plan, &columns, server, None) {
            Ok(r) => r,
            Err(e) => panic!("{text}: a table made from the schema does not take it: {e}"),
        };
        let (mut l, mut r, mut scratch) = (Vec::new(), Vec::new(), Scratch::default());
        let mut both = (nrt_pipeline::avro::json::JsonLine::new(&mut l), RowWriter::new(&rows, &mut r, &mut scratch));
        let w = nrt_pipeline::avro::walk(plan, datum, &mut both);
        assert_eq!(w.is_ok(), walked, "{text}");
        if w.is_ok() {
            assert_eq!(l, line, "{text}: the row changes the line");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte says how many of the next bytes describe the schema.
    let Some((&split, rest)) = data.split_first() else { return };
    let split = (split as usize).min(rest.len());
    let (shape, datum) = rest.split_at(split);
    let mut gen = Gen { data: shape, names: 0, enclosing: Vec::new() };
    let text = gen.schema(0).to_string();
    let Ok(schema) = Schema::parse_str(&text) else { return };
    let decoded = wire::decode(1, datum, &schema, None);

    let Ok(plan) = nrt_pipeline::avro::Plan::new(&schema) else { return };
    let mut line = Vec::new();
    let walked = nrt_pipeline::avro::json_line(&plan, datum, &mut line);
    rows(&text, &plan, datum, walked.is_ok(), &line);
    match (walked, decoded) {
        (Ok(()), Ok(value)) => {
            let ours: serde_json::Value = match serde_json::from_slice(&line) {
                Ok(v) => v,
                Err(e) => panic!("{text}: the line is not JSON ({e}): {}", String::from_utf8_lossy(&line)),
            };
            if let Some(expected) = nrt_pipeline::avro::reference::json(&value, &schema, &plan) {
                assert_eq!(ours, expected, "{text}: {value:?}");
            }
            // The line reads back into a datum whose line is the same (the producer's and replay's way).
            let mut back = Vec::new();
            if let Err(e) = nrt_pipeline::avro::encode::from_json(&plan, &ours, &mut back) {
                panic!("{text}: the line does not read back ({e}): {ours}");
            }
            let mut again = Vec::new();
            if let Err(e) = nrt_pipeline::avro::json_line(&plan, &back, &mut again) {
                panic!("{text}: the datum read back does not walk ({e}): {ours}");
            }
            let again: serde_json::Value = serde_json::from_slice(&again).unwrap_or_default();
            assert_eq!(again, ours, "{text}: read back");
        }
        (Err(_), Err(_)) => {}
        (walked, decoded) => panic!("{text}: walker {walked:?}, apache-avro {decoded:?}"),
    }
});
