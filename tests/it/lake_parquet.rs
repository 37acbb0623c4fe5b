//! The lake's Parquet files read by the tools analysts use, each on its own: pyarrow and DuckDB read a
//! file of seeded records of every Avro type, and every row equals the JSONL lake's line of the same
//! record, field for field (decimals exact, timestamps to their unit, nulls where the line leaves a
//! field out). Needs no service: Python with pyarrow and DuckDB (scripts/test.sh installs them).
#![cfg(feature = "integration")]

use rand::SeedableRng;
use serde_json::Value as Json;

use nrt_pipeline::avro::Plan;
use nrt_pipeline::lake::parquet::{encode, EVERY_TYPE_SCHEMA};

const ROWS: usize = 500;
/// Columns holding a value's JSON text (what Parquet has no type for).
const JSON_COLUMNS: [&str; 3] = ["amb", "many", "dur"];

#[test]
fn pyarrow_and_duckdb_read_every_row_as_the_lake_wrote_it() {
    let schema = apache_avro::Schema::parse_str(EVERY_TYPE_SCHEMA).unwrap_or_else(|e| panic!("{e}"));
    let plan = Plan::new(&schema).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(2027);
    let mut datums = Vec::new();
    let mut lines = Vec::new();
    for i in 0..ROWS {
        let mut datum = Vec::new();
        nrt_pipeline::avro::random::datum(&plan, &mut rng, 1_767_225_600_000 + i as i64 * 997, &mut datum);
        let mut line = Vec::new();
        nrt_pipeline::avro::json_line(&plan, &datum, &mut line).unwrap_or_else(|e| panic!("{e}"));
        lines.push(serde_json::from_slice::<Json>(&line).unwrap_or_else(|e| panic!("{e}")));
        datums.push(datum);
    }
    let file = encode(&plan, datums.iter().map(Vec::as_slice), &[]).unwrap_or_else(|e| panic!("{e}"));
    let path = std::env::temp_dir().join(format!("nrt-lake-parquet-{}.parquet", std::process::id()));
    std::fs::write(&path, &file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let path = path.to_string_lossy().into_owned();

    for reader in ["pyarrow", "duckdb"] {
        let mut args = vec![reader, path.as_str()];
        args.extend(JSON_COLUMNS);
        let read = crate::common::python("read_parquet.py", &args);
        let rows = read["rows"]
            .as_array()
            .unwrap_or_else(|| panic!("{reader}: no rows: {read}"));
        assert_eq!(rows.len(), ROWS, "{reader}: rows");
        for (i, (row, line)) in rows.iter().zip(&lines).enumerate() {
            assert_same(reader, i, row, &as_readers_show(line));
        }
        println!("lake_parquet: {reader} read {ROWS} rows of every Avro type, each equal to its lake line");
    }
    println!(
        "lake_parquet: {} bytes of Parquet for {} bytes of JSONL",
        file.len(),
        lines.iter().map(|l| l.to_string().len() + 1).sum::<usize>()
    );
    let _ = std::fs::remove_file(&path);
}

/// A lake line with its timestamps as nanoseconds since the epoch and its times of day as
/// microseconds since midnight, as `read_parquet.py` prints them.
fn as_readers_show(line: &Json) -> Json {
    let mut line = line.clone();
    if let Some(fields) = line.as_object_mut() {
        for name in ["ts", "tsn", "lts"] {
            if let Some(v) = fields.get_mut(name) {
                *v = Json::from(nanos(v.as_str().unwrap_or_default()));
            }
        }
        for name in ["tms", "tus"] {
            if let Some(v) = fields.get_mut(name) {
                *v = Json::from(micros_of_day(v.as_str().unwrap_or_default()));
            }
        }
    }
    line
}

/// Equal, floats to their width (`f` is a float: a reader shows it widened to a double).
fn assert_same(reader: &str, i: usize, row: &Json, line: &Json) {
    let (Some(row), Some(line)) = (row.as_object(), line.as_object()) else {
        panic!("{reader} row {i}: not objects: {row} / {line}");
    };
    let names =
        |o: &serde_json::Map<String, Json>| o.keys().cloned().collect::<std::collections::BTreeSet<_>>();
    assert_eq!(names(row), names(line), "{reader} row {i}: the fields present");
    for (name, want) in line {
        let got = &row[name];
        let same = match (name.as_str(), got.as_f64(), want.as_f64()) {
            ("f", Some(g), Some(w)) => g as f32 == w as f32,
            (_, Some(g), Some(w)) if got.is_f64() || want.is_f64() => g == w,
            _ => got == want,
        };
        assert!(
            same,
            "{reader} row {i} field {name}: read {got}, the lake wrote {want}"
        );
    }
}

/// `"2026-01-01T00:00:00.123Z"` (3, 6 or 9 digits, `Z` or not) as nanoseconds since the epoch.
fn nanos(text: &str) -> i64 {
    let n = |range: std::ops::Range<usize>| text.get(range).and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let secs = days_from_civil(y, m, d) * 86_400 + n(11..13) * 3_600 + n(14..16) * 60 + n(17..19);
    let fraction = text.get(20..).unwrap_or_default().trim_end_matches('Z');
    let sub = format!("{fraction:0<9}").parse::<i64>().unwrap_or(0);
    secs * 1_000_000_000 + sub
}

/// `"HH:MM:SS.fff"` or `"HH:MM:SS.ffffff"` as microseconds since midnight.
fn micros_of_day(text: &str) -> i64 {
    let n = |range: std::ops::Range<usize>| text.get(range).and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    let sub = format!("{:0<6}", text.get(9..).unwrap_or_default())
        .parse::<i64>()
        .unwrap_or(0);
    ((n(0..2) * 60 + n(3..5)) * 60 + n(6..8)) * 1_000_000 + sub
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
