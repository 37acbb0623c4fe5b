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

/// `nrt run` with `NRT_LAKE_FORMAT=parquet` on the real stack: 20,000 events across an hour's end land
/// in ClickHouse and as Parquet objects only (no JSONL) under `dt=/hour=/`, which pyarrow's dataset API
/// and DuckDB read from the bucket's layout with Hive partitioning: as many rows as events, each id
/// once, the same sum of user ids as ClickHouse FINAL, each row under its own event time's date and
/// hour or (a batch across the hour's end, its object under its first event's hour) the hour before,
/// with a reference, and each file's key-value metadata counting its events.
#[tokio::test(flavor = "multi_thread")]
async fn a_parquet_lake_is_read_by_pyarrow_and_duckdb_with_hive_partitions() {
    use crate::common::{self, Names, NrtProcess};
    const EVENTS: u64 = 20_000;
    // 30 s before an hour's end: the events span two hours.
    const EPOCH_MS: i64 = 1_767_225_600_000 + 3_570_000;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("lake-parquet");
    let mock = common::spawn_mock(2_027, EVENTS, EPOCH_MS);
    let mut env = names.env(&mock.url);
    env.push(("NRT_LAKE_FORMAT", "parquet"));
    let mut nrt = NrtProcess::spawn(&["run", "--role", "all"], &env);
    common::wait_for(180, "every event in ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? == EVENTS).then_some(())
    })
    .await;
    let store = nrt_pipeline::s3::ObjectStore::new(&cfg.s3).unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("nrt-{}", names.prefix.trim_end_matches('/')));
    let _ = std::fs::remove_dir_all(&dir);
    let objects = common::wait_for(60, "every event in the lake", || async {
        let (objects, events) = crate::common::lake::objects(&store, &names.prefix).await?;
        (events == EVENTS).then_some(objects)
    })
    .await;
    // What the Parquet encoding held in the budget is released: nothing counted once all is committed.
    common::wait_for(60, "the in-flight budget back to 0 bytes", || async {
        (common::metric(&nrt.url, "nrt_inflight_bytes").await? == 0.0).then_some(())
    })
    .await;
    assert_eq!(nrt.terminate(), Some(0), "nrt run exits 0 on SIGTERM");
    assert!(
        objects.iter().all(|k| k.ends_with(".parquet")),
        "objects other than Parquet: {:?}",
        objects
            .iter()
            .filter(|k| !k.ends_with(".parquet"))
            .collect::<Vec<_>>()
    );
    for key in &objects {
        let body = store
            .get(key, std::time::Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e}"));
        assert!(
            body.starts_with(b"PAR1") && body.ends_with(b"PAR1"),
            "{key} is not a Parquet file"
        );
        let path = dir.join(key.strip_prefix(names.prefix.as_str()).unwrap_or(key));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
        }
        std::fs::write(&path, &body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    // An object whose events run into the next hour has a reference under it (how replay finds them).
    let references: Vec<String> = store
        .list(&format!("{}dt=2026-01-01/hour=01/", names.prefix))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|k| nrt_pipeline::lake::key::is_reference(k))
        .collect();
    let ch = test_database(&cfg);
    let (ids, user_ids) = ch
        .query(&format!(
            "SELECT uniqExact(event_id), sum(user_id) FROM {} FINAL",
            names.table
        ))
        .fetch_one::<(u64, i64)>()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids, EVENTS, "distinct ids in ClickHouse");

    let warehouse = warehouse_rows(&ch, &names.table).await;
    assert_eq!(warehouse.len() as u64, EVENTS, "rows of ClickHouse FINAL");
    let read = common::python("read_lake.py", &[&dir.to_string_lossy()]);
    assert_eq!(read["files"].as_u64(), Some(objects.len() as u64), "{read}");
    assert_eq!(read["events_in_metadata"].as_u64(), Some(EVENTS), "{read}");
    for reader in ["pyarrow", "duckdb"] {
        let r = &read[reader];
        assert_eq!(r["rows"].as_u64(), Some(EVENTS), "{reader}: rows: {r}");
        assert_eq!(
            r["distinct_ids"].as_u64(),
            Some(EVENTS),
            "{reader}: distinct ids: {r}"
        );
        assert_eq!(
            r["user_id_sum"].as_i64(),
            Some(user_ids),
            "{reader}: sum of user_id against ClickHouse: {r}"
        );
        assert_eq!(
            r["misplaced"].as_u64(),
            Some(0),
            "{reader}: rows under another hour than their own: {r}"
        );
        let in_next = r["in_next_hour"].as_u64().unwrap_or_default();
        assert!(
            in_next == 0 || !references.is_empty(),
            "{reader}: {in_next} rows of hour 01 sit in an hour-00 object, and no reference says so"
        );
        // Objects sit under their first event's hour: 00 always, 01 when a batch began after 01:00.
        let hours = common::strings(&r["hours"]);
        assert!(
            hours.contains("2026-01-01/00")
                && hours.iter().all(|h| h == "2026-01-01/00" || h == "2026-01-01/01"),
            "{reader}: {r}"
        );
        assert_values_equal(reader, &r["values"], &warehouse);
        let columns = common::strings(&r["columns"]);
        assert!(
            columns.contains("dt") && columns.contains("hour"),
            "{reader}: no Hive columns: {r}"
        );
    }
    println!(
        "lake_parquet: {EVENTS} events, {} Parquet objects ({} bytes); pyarrow and DuckDB read them with Hive \
         partitions {}: every row equals ClickHouse FINAL's value for value; {} rows under the hour before \
         theirs ({} references)",
        objects.len(),
        walk_bytes(&dir),
        read["pyarrow"]["hours"],
        read["pyarrow"]["in_next_hour"],
        references.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// One event's values as the test compares them: event id, type, user id, amount in hundredths
/// (exact; `Decimal(18, 2)`), currency, created_at in ms since the epoch.
type Values = (String, String, i64, i64, String, i64);

/// ClickHouse FINAL's rows of `table`, by event id.
async fn warehouse_rows(ch: &clickhouse::Client, table: &str) -> std::collections::HashMap<String, Values> {
    let sql = format!(
        "SELECT toString(event_id), type, user_id, toString(amount), currency, created_at_ms FROM {table} FINAL"
    );
    let rows = ch
        .query(&sql)
        .fetch_all::<(String, String, i64, String, String, i64)>()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter()
        .map(|(id, kind, user, amount, currency, ms)| {
            let cents = cents(&amount).unwrap_or_else(|| panic!("ClickHouse amount {amount:?} of {id}"));
            (id.clone(), (id, kind, user, cents, currency, ms))
        })
        .collect()
}

/// Each of a reader's rows (`[event_id, type, user_id, amount text, currency, created ms]`) equals
/// ClickHouse's row of its event id, and each event id is read once.
fn assert_values_equal(reader: &str, values: &Json, warehouse: &std::collections::HashMap<String, Values>) {
    let rows = values.as_array().unwrap_or_else(|| panic!("{reader}: no values"));
    assert_eq!(rows.len(), warehouse.len(), "{reader}: rows against ClickHouse's");
    let mut seen = std::collections::HashSet::new();
    for row in rows {
        let text = |i: usize| row[i].as_str().unwrap_or_default().to_owned();
        let number = |i: usize| {
            row[i]
                .as_i64()
                .unwrap_or_else(|| panic!("{reader}: field {i} of {row}"))
        };
        let amount = text(3);
        let read: Values = (
            text(0),
            text(1),
            number(2),
            cents(&amount)
                .unwrap_or_else(|| panic!("{reader}: amount {amount:?} is not an exact decimal: {row}")),
            text(4),
            number(5),
        );
        assert!(seen.insert(read.0.clone()), "{reader}: {} read twice", read.0);
        let want = warehouse
            .get(&read.0)
            .unwrap_or_else(|| panic!("{reader}: {row} has no row in ClickHouse"));
        assert_eq!(&read, want, "{reader}: the lake's row against ClickHouse FINAL's");
    }
}

/// A decimal's text (`"-12.3"`, `"12.30"`, `"7"`) in hundredths; None past two places or not a number.
fn cents(text: &str) -> Option<i64> {
    text.parse::<nrt_pipeline::event::Money>().ok().map(|m| m.0)
}

/// A ClickHouse client on the tests' database.
fn test_database(cfg: &nrt_pipeline::config::ServicesConfig) -> clickhouse::Client {
    let mut ch = cfg.clickhouse.clone();
    ch.database = crate::common::TEST_DATABASE.to_owned();
    nrt_pipeline::clickhouse::client(&ch).unwrap_or_else(|e| panic!("{e}"))
}

/// The bytes of every file under `dir`.
fn walk_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => walk_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// A lake of both formats (a pipeline switched from JSONL to Parquet while running on) is read whole:
/// `nrt reconcile` finds every hour equal to ClickHouse, and `nrt replay` of the range into a new
/// table writes every event of either format, that table then equal to the pipeline's.
#[tokio::test(flavor = "multi_thread")]
async fn a_lake_of_both_formats_reconciles_and_replays_completely() {
    use crate::common::{self, Names, NrtProcess};
    const FIRST: u64 = 4_000;
    const THEN: u64 = 5_000;
    const EPOCH_MS: i64 = 1_767_225_600_000;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("lake-both");
    let jsonl_mock = common::spawn_mock(2_029, FIRST, EPOCH_MS);
    let mut jsonl = NrtProcess::spawn(&["run", "--role", "all"], &names.env(&jsonl_mock.url));
    common::landed(&cfg, &names, FIRST).await;
    assert_eq!(jsonl.terminate(), Some(0), "nrt run exits 0 on SIGTERM");
    // The same pipeline, now writing Parquet, goes on with later events (another source's).
    let parquet_mock = common::spawn_mock(2_030, THEN, EPOCH_MS + 60_000);
    let mut env = names.env(&parquet_mock.url);
    env.push(("NRT_LAKE_FORMAT", "parquet"));
    let mut parquet = NrtProcess::spawn(&["run", "--role", "all"], &env);
    common::wait_for(180, "every event of both runs in ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? == FIRST + THEN).then_some(())
    })
    .await;
    let store = nrt_pipeline::s3::ObjectStore::new(&cfg.s3).unwrap_or_else(|e| panic!("{e}"));
    let (jsonl_objects, parquet_objects) = common::wait_for(60, "every event in the lake", || async {
        let (objects, events) = crate::common::lake::objects(&store, &names.prefix).await?;
        let parquet = objects.iter().filter(|k| k.ends_with(".parquet")).count();
        (events == FIRST + THEN).then_some((objects.len() - parquet, parquet))
    })
    .await;
    assert_eq!(parquet.terminate(), Some(0), "nrt run exits 0 on SIGTERM");
    assert!(
        jsonl_objects > 0 && parquet_objects > 0,
        "{jsonl_objects} JSONL and {parquet_objects} Parquet objects"
    );

    let range = ("2026-01-01T00", "2026-01-01T02");
    let (code, report) = common::lake::reconcile(&names, range.0, range.1);
    assert_eq!(code, 0, "reconcile of a lake of both formats: {report}");
    let replayed_table = format!("{}_replayed", names.table);
    let (_, _, replayed) = common::lake::replay(&names, &replayed_table, range, &[]);
    assert_eq!(replayed, FIRST + THEN, "events replayed from both formats");
    assert_eq!(
        common::clickhouse_count(&cfg, &replayed_table, true).await,
        Some(FIRST + THEN)
    );
    let ch = test_database(&cfg);
    let same = |table: &str| {
        format!("SELECT sum(cityHash64(toString(event_id), user_id, toString(amount), currency, created_at)) FROM {table} FINAL")
    };
    let fingerprint = |sql: String| {
        let ch = ch.clone();
        async move {
            ch.query(&sql)
                .fetch_one::<u64>()
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    };
    let (ours, theirs) = (
        fingerprint(same(&names.table)).await,
        fingerprint(same(&replayed_table)).await,
    );
    assert_eq!(
        ours, theirs,
        "the replayed table's rows differ from the pipeline's"
    );
    println!(
        "lake_parquet: {jsonl_objects} JSONL + {parquet_objects} Parquet objects, {} events: reconcile exit 0, \
         replay wrote every one, rows equal",
        FIRST + THEN
    );
}

/// A pipeline switched from JSONL to Parquet never writes a batch twice: 6,000 events land as JSONL,
/// then a Parquet pipeline in a new consumer group reads the topic again from its start: every batch
/// finds its JSONL object under its key (another extension) and reuses it, so the lake gains no Parquet
/// object, holds each event once, and ClickHouse FINAL stays exact.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_in_the_lake_as_jsonl_is_not_written_again_as_parquet() {
    use crate::common::{self, Names, NrtProcess};
    const EVENTS: u64 = 6_000;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("lake-switch");
    let mock = common::spawn_mock(2_028, EVENTS, 1_767_225_600_000);
    // Small transactions and small batches: many objects, some starting right after a transaction's
    // marker (an offset never delivered), where a batch cut at the end of the object before it must
    // start too.
    let mut small = names.env(&mock.url);
    small.extend([("NRT_POLL_BATCH", "250"), ("NRT_BATCH_MAX_RECORDS", "400")]);
    let mut jsonl = NrtProcess::spawn(&["run", "--role", "all"], &small);
    let lines = common::landed(&cfg, &names, EVENTS).await;
    assert_eq!(lines.len() as u64, EVENTS, "JSONL lines");
    assert_eq!(jsonl.terminate(), Some(0), "nrt run exits 0 on SIGTERM");
    let store = nrt_pipeline::s3::ObjectStore::new(&cfg.s3).unwrap_or_else(|e| panic!("{e}"));
    let mut ranges = Vec::new();
    for key in store.list(&names.prefix).await.unwrap_or_default() {
        if nrt_pipeline::lake::key::is_object(&key) {
            let meta = store
                .metadata(&key)
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            let field = |k: &str| meta.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(-1);
            ranges.push((
                field("nrt-partition"),
                field("nrt-first-offset"),
                field("nrt-last-offset"),
            ));
        }
    }
    ranges.sort();
    let after_markers = ranges
        .windows(2)
        .filter(|w| w[0].0 == w[1].0 && w[1].1 > w[0].2 + 1)
        .count();
    assert!(
        after_markers > 0,
        "no object starts after a transaction marker: {ranges:?}"
    );

    let group = format!("{}-parquet", names.group);
    let mut env = names.env(&mock.url);
    env.retain(|(k, _)| *k != "NRT_GROUP_ID");
    env.extend([("NRT_GROUP_ID", group.as_str()), ("NRT_LAKE_FORMAT", "parquet")]);
    let mut parquet = NrtProcess::spawn(&["run", "--role", "consumer"], &env);
    common::wait_for(
        120,
        "the Parquet pipeline's group to read the topic again",
        || async {
            let consumed = common::metric(&parquet.url, "nrt_events_consumed_total").await? as u64;
            let reused = common::metric(&parquet.url, "nrt_lake_objects_reused_total").await? as u64;
            (consumed == EVENTS && reused > 0).then_some(())
        },
    )
    .await;
    // Every batch of the second group reached the lake (reused) and ClickHouse before it is stopped.
    let second = Names {
        topic: names.topic.clone(),
        group: group.clone(),
        prefix: names.prefix.clone(),
        table: names.table.clone(),
    };
    common::wait_for(60, "every batch of the second group committed", || async {
        (common::kafka_lag(&cfg, &second) == 0).then_some(())
    })
    .await;
    let reused = common::metric(&parquet.url, "nrt_lake_objects_reused_total")
        .await
        .unwrap_or_default() as u64;
    assert_eq!(parquet.terminate(), Some(0), "nrt run exits 0 on SIGTERM");
    let keys = store.list(&names.prefix).await.unwrap_or_else(|e| panic!("{e}"));
    let parquet_objects: Vec<&String> = keys.iter().filter(|k| k.ends_with(".parquet")).collect();
    assert!(
        parquet_objects.is_empty(),
        "batches written again as Parquet: {parquet_objects:?}"
    );
    let objects = keys
        .iter()
        .filter(|k| nrt_pipeline::lake::key::is_object(k))
        .count();
    assert_eq!(reused as usize, objects, "each JSONL object reused once");
    let again = common::minio_lines(&cfg, &names.prefix).await;
    assert_eq!(again.len() as u64, EVENTS, "the lake holds each event once");
    assert_eq!(
        common::clickhouse_count(&cfg, &names.table, true).await,
        Some(EVENTS)
    );
    println!(
        "lake_parquet: {EVENTS} events as {} JSONL objects ({after_markers} starting after a transaction marker), \
         read again by a Parquet pipeline: {reused} reused, none written",
        ranges.len()
    );
}
