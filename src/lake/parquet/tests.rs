//! Records of every Avro type, random but seeded, written to Parquet and read back with the parquet
//! crate's own reader: as many rows as records, each field present exactly where the JSONL lake has
//! it, and the values equal to the lake line's (numbers, strings, symbols, uuids, decimals' exact
//! text, timestamps' counts, the JSON of what has no Parquet type).

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::SeedableRng;
use serde_json::Value as Json;

use super::{encode, EVERY_TYPE_SCHEMA as ALL};
use crate::avro::Plan;

const ROWS: usize = 700;

fn plan(text: &str) -> Plan {
    let schema = apache_avro::Schema::parse_str(text).unwrap_or_else(|e| panic!("{e}"));
    Plan::new(&schema).unwrap_or_else(|e| panic!("{e}"))
}

/// `ROWS` seeded datums of `plan`, their lake lines, and the Parquet file read back as one batch.
fn round_trip(plan: &Plan, seed: u64) -> (Vec<Json>, RecordBatch, Vec<u8>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let datums: Vec<Vec<u8>> = (0..ROWS)
        .map(|i| {
            let mut d = Vec::new();
            crate::avro::random::datum(plan, &mut rng, 1_767_225_600_000 + i as i64, &mut d);
            d
        })
        .collect();
    let lines: Vec<Json> = datums
        .iter()
        .map(|d| {
            let mut line = Vec::new();
            crate::avro::json_line(plan, d, &mut line).unwrap_or_else(|e| panic!("{e}"));
            serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let file = encode(plan, datums.iter().map(Vec::as_slice), &[("nrt.offsets", "5..704".into())])
        .unwrap_or_else(|e| panic!("{e}"));
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file.clone()))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_batch_size(ROWS * 2)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap_or_else(|e| panic!("{e}"))).collect();
    assert_eq!(batches.len(), 1, "one row group, one batch");
    (lines, batches.into_iter().next().unwrap_or_else(|| panic!("no batch")), file)
}

#[test]
fn every_type_reads_back_as_the_lake_wrote_it() {
    let plan = plan(ALL);
    let (lines, batch, file) = round_trip(&plan, 27);
    assert_eq!(batch.num_rows(), ROWS);
    let column = |name: &str| batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
    for (row, line) in lines.iter().enumerate() {
        let at = |name: &str| line.get(name).unwrap_or(&Json::Null);
        // Present exactly where the lake line has the field.
        for field in batch.schema().fields() {
            let present = line.get(field.name()).is_some();
            let array = column(field.name());
            let valid = array.logical_nulls().is_none_or(|n| n.is_valid(row));
            assert_eq!(valid, present, "row {row} field {}", field.name());
        }
        assert_eq!(Json::from(column("i").as_primitive::<Int32Type>().value(row)), *at("i"));
        assert_eq!(Json::from(column("l").as_primitive::<Int64Type>().value(row)), *at("l"));
        assert_eq!(Json::from(column("b").as_boolean().value(row)), *at("b"));
        assert_eq!(Json::from(column("s").as_string::<i32>().value(row)), *at("s"));
        assert_eq!(Json::from(column("e").as_string::<i32>().value(row)), *at("e"));
        assert_eq!(Json::from(column("uuid").as_string::<i32>().value(row)), *at("uuid"));
        let d = column("d").as_primitive::<Float64Type>().value(row);
        if d.is_finite() {
            assert_eq!(Json::from(d), *at("d"), "row {row}");
        }
        let dec = column("dec").as_primitive::<arrow_array::types::Decimal128Type>().value_as_string(row);
        assert_eq!(Json::from(dec), *at("dec"), "row {row}");
        assert_eq!(Json::from(column("wide").as_string::<i32>().value(row)), *at("wide"));
        // Timestamps keep their count; the lake writes the same instant as text.
        let ts = column("ts").as_primitive::<TimestampMillisecondType>().value(row);
        let mut text = Vec::new();
        crate::avro::json::write_datetime(&mut text, ts.div_euclid(1000), ts.rem_euclid(1000) as u64, 3, true);
        assert_eq!(Json::from(String::from_utf8_lossy(&text)), *at("ts"), "row {row}");
        // What Parquet has no type for is the lake's JSON of it.
        for json in ["amb", "dur"] {
            let text = column(json).as_string::<i32>().value(row);
            let value: Json = serde_json::from_str(text).unwrap_or_else(|e| panic!("{json}: {text}: {e}"));
            assert_eq!(value, *at(json), "row {row} {json}");
        }
        if column("many").is_valid(row) {
            let value: Json = serde_json::from_str(column("many").as_string::<i32>().value(row)).unwrap_or_default();
            assert_eq!(value, *at("many"), "row {row}");
        }
        // Lists, maps and nested records hold as many entries as the line.
        let len = |v: &Json| v.as_array().map_or(0, Vec::len);
        assert_eq!(column("a").as_list::<i32>().value(row).len(), len(at("a")), "row {row}");
        assert_eq!(column("recs").as_list::<i32>().value(row).len(), len(at("recs")), "row {row}");
        let map = column("m").as_map();
        assert_eq!(map.value_length(row) as usize, at("m").as_object().map_or(0, |m| m.len()));
        let inner = column("rec").as_struct();
        assert_eq!(Json::from(inner.column(0).as_primitive::<Int32Type>().value(row)), at("rec")["x"]);
    }
    let meta = parquet::file::reader::FileReader::metadata(
        &parquet::file::serialized_reader::SerializedFileReader::new(bytes::Bytes::from(file))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .file_metadata()
    .key_value_metadata()
    .cloned()
    .unwrap_or_default();
    assert!(meta.iter().any(|kv| kv.key == "nrt.offsets" && kv.value.as_deref() == Some("5..704")), "{meta:?}");
}

#[test]
fn events_take_a_fraction_of_their_lines_bytes() {
    let plan = plan(crate::event::SCHEMA_V2);
    let (lines, batch, file) = round_trip(&plan, 5);
    assert_eq!(batch.num_rows(), ROWS);
    let jsonl: usize = lines.iter().map(|l| l.to_string().len() + 1).sum();
    // Random values compress worst; the goal (a quarter of JSONL) is measured in scripts/bench.sh.
    assert!(file.len() * 2 < jsonl, "Parquet {} bytes against JSONL {jsonl}", file.len());
}

/// Columns of mostly distinct values (ids, millisecond times, user ids) are written without a
/// dictionary, those of repeating values (an event's type, its currency, the Mock API's amounts)
/// with one; the file reads back.
#[test]
fn a_dictionary_only_where_values_repeat() {
    let plan = plan(crate::event::SCHEMA_V1);
    let mut events = crate::mock_api::Generator::seeded(3, 1_767_225_600_000);
    let datums: Vec<Vec<u8>> = (0..5_000)
        .map(|_| {
            let mut d = Vec::new();
            crate::fast_avro::encode_event(&events.next_event(), crate::fast_avro::Shape::V1, &mut d);
            d
        })
        .collect();
    let file = encode(&plan, datums.iter().map(Vec::as_slice), &[]).unwrap_or_else(|e| panic!("{e}"));
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file)).unwrap_or_else(|e| panic!("{e}"));
    let group = reader.metadata().row_group(0);
    let dictionary: Vec<(String, bool)> = group
        .columns()
        .iter()
        .map(|c| (c.column_path().string(), c.dictionary_page_offset().is_some()))
        .collect();
    let want = [
        ("event_id", false),
        ("type", true),
        ("user_id", false),
        ("amount", true),
        ("currency", true),
        ("created_at", false),
    ];
    let want: Vec<(String, bool)> = want.iter().map(|(n, d)| ((*n).to_owned(), *d)).collect();
    assert_eq!(dictionary, want, "(column, has a dictionary)");
    let rows: usize = reader
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|b| b.map(|b| b.num_rows()).unwrap_or_else(|e| panic!("{e}")))
        .sum();
    assert_eq!(rows, 5_000);
}

/// Records of two writer schemas in one file (as a batch has them while producers move to a new
/// version): the columns of both, by name at any depth; each record's value where its schema has the
/// field and null where it does not; int and long as long, a field typed two unrelated ways as the
/// JSON text of each value.
#[test]
fn records_of_several_writer_schemas_share_one_file() {
    let v1 = plan(
        r#"{"type":"record","name":"E","fields":[{"name":"id","type":"int"},{"name":"name","type":"string"},
            {"name":"inner","type":{"type":"record","name":"I","fields":[{"name":"a","type":"int"}]}},
            {"name":"gone","type":"string"}]}"#,
    );
    let v2 = plan(
        r#"{"type":"record","name":"E","fields":[{"name":"id","type":"long"},{"name":"name","type":"int"},
            {"name":"inner","type":{"type":"record","name":"I","fields":[{"name":"a","type":"int"},
                {"name":"b","type":["null","string"]}]}},
            {"name":"added","type":["null","double"]}]}"#,
    );
    let value = |plan: &Plan, json: Json| {
        let mut out = Vec::new();
        crate::avro::encode::from_json(plan, &json, &mut out).unwrap_or_else(|e| panic!("{e}"));
        out
    };
    let records: Vec<(usize, Vec<u8>)> = (0..10i64)
        .map(|i| match i % 3 {
            0 => (0, value(&v1, serde_json::json!({"id": i, "name": format!("n{i}"), "inner": {"a": i}, "gone": "g"}))),
            _ => (
                1,
                value(&v2, serde_json::json!({"id": i << 40, "name": i, "inner": {"a": i, "b": "x"}, "added": 0.5})),
            ),
        })
        .collect();
    let file = super::encode_mixed(&[&v1, &v2], (records.len(), records.iter().map(|(w, d)| (*w, d.as_slice()))), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let batch = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file))
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("{e}"))
        .next()
        .unwrap_or_else(|| panic!("no rows"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(batch.num_rows(), 10);
    let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["id", "name", "inner", "gone", "added"]);
    let column = |name: &str| batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
    let inner = column("inner").as_struct();
    let b = inner.column_by_name("b").unwrap_or_else(|| panic!("no inner.b"));
    for (row, (writer, _)) in records.iter().enumerate() {
        let i = row as i64;
        let v1 = *writer == 0;
        let id = column("id").as_primitive::<Int64Type>().value(row);
        assert_eq!(id, if v1 { i } else { i << 40 }, "row {row}");
        let name = column("name").as_string::<i32>().value(row);
        assert_eq!(name, if v1 { format!("\"n{i}\"") } else { i.to_string() }, "row {row}: JSON text");
        assert_eq!(inner.column(0).as_primitive::<Int32Type>().value(row), row as i32);
        assert_eq!(b.is_valid(row), !v1, "row {row}: inner.b");
        assert_eq!(column("gone").is_valid(row), v1, "row {row}: gone");
        assert_eq!(column("added").is_valid(row), !v1, "row {row}: added");
        if !v1 {
            assert_eq!(column("added").as_primitive::<Float64Type>().value(row), 0.5);
        }
    }
}

/// What replay reads back: each row of a file, made JSON along its writer schema (`read.rs`) and that
/// made a datum again, gives the same lake line as the record written; for every Avro type, and for
/// two writer schemas merged in one file (a field one lacks, a long over an int, a JSON column).
#[test]
fn every_row_reads_back_as_the_record_written() {
    use super::read::{File, RowReader};
    let every = plan(ALL);
    let v1 = plan(
        r#"{"type":"record","name":"E","fields":[{"name":"id","type":"int"},{"name":"name","type":"string"},
            {"name":"m","type":{"type":"map","values":{"type":"array","items":"float"}}}]}"#,
    );
    let v2 = plan(
        r#"{"type":"record","name":"E","fields":[{"name":"id","type":"long"},{"name":"name","type":"int"},
            {"name":"m","type":{"type":"map","values":{"type":"array","items":"double"}}},
            {"name":"at","type":["null",{"type":"long","logicalType":"timestamp-micros"}]}]}"#,
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for plans in [vec![&every], vec![&v1, &v2]] {
        let records: Vec<(usize, Vec<u8>)> = (0..ROWS)
            .map(|i| {
                let which = (i * 7 / 3) % plans.len();
                let mut d = Vec::new();
                crate::avro::random::datum(plans[which], &mut rng, 1_767_225_600_000 + i as i64, &mut d);
                (which, d)
            })
            .collect();
        let file = super::encode_mixed(&plans, (ROWS, records.iter().map(|(w, d)| (*w, d.as_slice()))), &[])
            .unwrap_or_else(|e| panic!("{e}"));
        let file = File::open(bytes::Bytes::from(file)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.rows(), ROWS);
        let reader = RowReader::new(&plans);
        let mut n = 0;
        for batch in &file.batches {
            let root = arrow_array::StructArray::from(batch.clone());
            for row in 0..batch.num_rows() {
                let (which, datum) = &records[n];
                let plan = plans[*which];
                let json = reader.row(&root, row, plan).unwrap_or_else(|e| panic!("row {n}: {e}"));
                let mut again = Vec::new();
                crate::avro::encode::from_json(plan, &json, &mut again).unwrap_or_else(|e| panic!("row {n}: {e}: {json}"));
                let line = |d: &[u8]| {
                    let mut line = Vec::new();
                    crate::avro::json_line(plan, d, &mut line).unwrap_or_else(|e| panic!("row {n}: {e}"));
                    String::from_utf8_lossy(&line).into_owned()
                };
                assert_eq!(line(&again), line(datum), "row {n}");
                n += 1;
            }
        }
        assert_eq!(n, ROWS);
    }
}
