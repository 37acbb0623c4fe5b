//! Tables that follow the registry, on the real ClickHouse: a table made from a schema with every kind
//! of field takes the rows nrt writes, and gives back the same bytes; rows of the events schemas are
//! the ones the hand-written `EventRow` insert writes; a newer writer's field becomes a column.
#![cfg(feature = "integration")]

use crate::common;

use apache_avro::types::Value;
use apache_avro::Schema;
use nrt_pipeline::avro::{json::JsonLine, walk, Plan};
use nrt_pipeline::clickhouse::row::{put_meta, RowPlan, RowWriter, Scratch};
use nrt_pipeline::clickhouse::table::{self, Key};
use rand::{Rng, SeedableRng};

const EVERY_KIND: &str = r#"{"type":"record","name":"Every","namespace":"t","fields":[
  {"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":"long"},
  {"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"by","type":"bytes"},
  {"name":"s","type":"string"},
  {"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN","BLUE"]}},
  {"name":"fx","type":{"type":"fixed","name":"Four","size":4}},
  {"name":"a","type":{"type":"array","items":"long"}},
  {"name":"as","type":{"type":"array","items":"string"}},
  {"name":"m","type":{"type":"map","values":"double"}},
  {"name":"u","type":["null","string"]},{"name":"ul","type":["null","long"]},
  {"name":"multi","type":["null","int","string"]},
  {"name":"rec","type":{"type":"record","name":"Inner","fields":[{"name":"x","type":"int"},{"name":"y","type":["null","string"]}]}},
  {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":4}},
  {"name":"decw","type":{"type":"fixed","name":"D16","size":16,"logicalType":"decimal","precision":30,"scale":2}},
  {"name":"big","type":{"type":"bytes","logicalType":"decimal","precision":50,"scale":0}},
  {"name":"id","type":{"type":"string","logicalType":"uuid"}},
  {"name":"day","type":{"type":"int","logicalType":"date"}},
  {"name":"tms","type":{"type":"int","logicalType":"time-millis"}},
  {"name":"tus","type":{"type":"long","logicalType":"time-micros"}},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"tsu","type":{"type":"long","logicalType":"timestamp-micros"}},
  {"name":"tsn","type":["null",{"type":"long","logicalType":"timestamp-nanos"}]},
  {"name":"lts","type":{"type":"long","logicalType":"local-timestamp-millis"}},
  {"name":"dur","type":{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}}]}"#;

const ROWS: usize = 3_000;

async fn server_client() -> (clickhouse::Client, String) {
    let cfg = common::services();
    common::require(common::Service::Clickhouse, &cfg).await;
    let server = nrt_pipeline::clickhouse::server_client(&cfg.clickhouse).unwrap_or_else(|e| panic!("{e}"));
    let db = "nrt_test".to_owned();
    server
        .query(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
        .execute()
        .await
        .unwrap_or_else(|e| panic!("create database: {e}"));
    (server, db)
}

fn decimal(n: i128, size: Option<usize>) -> Value {
    let bytes = n.to_be_bytes();
    let bytes = match size {
        Some(size) => bytes[16 - size..].to_vec(),
        // Minimal two's complement: drop leading bytes that only repeat the sign.
        None => {
            let sign = if n < 0 { 0xff } else { 0 };
            let skip = bytes
                .windows(2)
                .take_while(|w| w[0] == sign && (w[1] & 0x80 == sign & 0x80))
                .count();
            bytes[skip..].to_vec()
        }
    };
    Value::Decimal(apache_avro::Decimal::from(bytes))
}

fn random_every(rng: &mut impl Rng, i: usize) -> Value {
    let text =
        |rng: &mut dyn rand::RngCore| ["", "x", "é\"\\\t", "a longer string"][rng.gen_range(0..4)].to_owned();
    let some = |rng: &mut dyn rand::RngCore| rng.gen_range(0..3) > 0;
    let fields: Vec<(&str, Value)> = vec![
        ("b", Value::Boolean(rng.gen())),
        ("i", Value::Int(rng.gen())),
        ("l", Value::Long(rng.gen())),
        ("f", Value::Float(rng.gen_range(-1e6..1e6))),
        ("d", Value::Double(rng.gen_range(-1e300..1e300))),
        (
            "by",
            Value::Bytes((0..rng.gen_range(0..9)).map(|_| rng.gen()).collect()),
        ),
        ("s", Value::String(text(rng))),
        ("e", {
            let k = rng.gen_range(0..3);
            Value::Enum(k, ["RED", "GREEN", "BLUE"][k as usize].into())
        }),
        ("fx", Value::Fixed(4, rng.gen::<[u8; 4]>().to_vec())),
        (
            "a",
            Value::Array((0..rng.gen_range(0..4)).map(|_| Value::Long(rng.gen())).collect()),
        ),
        (
            "as",
            Value::Array(
                (0..rng.gen_range(0..3))
                    .map(|_| Value::String(text(rng)))
                    .collect(),
            ),
        ),
        (
            "m",
            Value::Map(
                (0..rng.gen_range(0..3))
                    .map(|k| (format!("k{k}"), Value::Double(0.5 * k as f64)))
                    .collect(),
            ),
        ),
        (
            "u",
            if some(rng) {
                Value::Union(1, Box::new(Value::String(text(rng))))
            } else {
                Value::Union(0, Box::new(Value::Null))
            },
        ),
        (
            "ul",
            if some(rng) {
                Value::Union(1, Box::new(Value::Long(rng.gen())))
            } else {
                Value::Union(0, Box::new(Value::Null))
            },
        ),
        (
            "multi",
            match rng.gen_range(0..3) {
                0 => Value::Union(0, Box::new(Value::Null)),
                1 => Value::Union(1, Box::new(Value::Int(rng.gen()))),
                _ => Value::Union(2, Box::new(Value::String(text(rng)))),
            },
        ),
        (
            "rec",
            Value::Record(vec![
                ("x".into(), Value::Int(rng.gen())),
                ("y".into(), Value::Union(1, Box::new(Value::String(text(rng))))),
            ]),
        ),
        (
            "dec",
            decimal(
                rng.gen_range(-999_999_999_999_999_999i128..=999_999_999_999_999_999),
                None,
            ),
        ),
        (
            "decw",
            decimal(rng.gen_range(-(10i128.pow(30) - 1)..10i128.pow(30)), Some(16)),
        ),
        ("big", decimal(rng.gen::<i128>(), None)),
        ("id", Value::Uuid(uuid::Uuid::from_u128(rng.gen()))),
        ("day", Value::Date(rng.gen_range(0..49_711))),
        ("tms", Value::TimeMillis(rng.gen_range(0..86_400_000))),
        ("tus", Value::TimeMicros(rng.gen_range(0..86_400_000_000))),
        // Row 0 at the edges of what DateTime holds.
        (
            "ts",
            Value::TimestampMillis(if i == 0 {
                4_294_967_295_999
            } else {
                rng.gen_range(1_795_000_000_000..1_797_000_000_000) // a month or so: a part each
            }),
        ),
        (
            "tsu",
            Value::TimestampMicros(if i == 0 {
                0
            } else {
                rng.gen_range(0..4_000_000_000_000_000)
            }),
        ),
        (
            "tsn",
            if some(rng) {
                Value::Union(
                    1,
                    Box::new(Value::TimestampNanos(rng.gen_range(0..4_000_000_000_000_000_000))),
                )
            } else {
                Value::Union(0, Box::new(Value::Null))
            },
        ),
        (
            "lts",
            Value::LocalTimestampMillis(rng.gen_range(0..4_000_000_000_000)),
        ),
        (
            "dur",
            Value::Duration(apache_avro::Duration::new(
                apache_avro::Months::new(rng.gen()),
                apache_avro::Days::new(rng.gen()),
                apache_avro::Millis::new(rng.gen()),
            )),
        ),
    ];
    Value::Record(fields.into_iter().map(|(n, v)| (n.to_owned(), v)).collect())
}

/// Rows (with their meta columns) of `datums` as nrt writes them, and each datum's lake line.
fn rows(plan: &Plan, rows: &RowPlan, datums: &[Vec<u8>]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let (mut out, mut scratch, mut lines) = (Vec::new(), Scratch::default(), Vec::new());
    for (offset, datum) in datums.iter().enumerate() {
        let mut line = Vec::new();
        let mut both = (
            JsonLine::new(&mut line),
            RowWriter::new(rows, &mut out, &mut scratch),
        );
        walk(plan, datum, &mut both).unwrap_or_else(|e| panic!("datum {offset}: {e}"));
        if let Some(fault) = both.1.fault {
            panic!("datum {offset}: {fault}");
        }
        put_meta(&mut out, 1_795_771_800, 3, offset as i64);
        lines.push(line);
    }
    (out, lines)
}

async fn insert(server: &clickhouse::Client, db: &str, t: &str, columns: &[String], body: Vec<u8>) {
    let list: Vec<String> = columns.iter().map(|c| format!("`{c}`")).collect();
    let sql = format!("INSERT INTO {db}.{t} ({}) FORMAT RowBinary", list.join(", "));
    let mut insert = server.insert_formatted_with(sql);
    insert
        .send(body.into())
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    insert.end().await.unwrap_or_else(|e| panic!("insert: {e}"));
}

async fn select_bytes(server: &clickhouse::Client, sql: &str) -> Vec<u8> {
    let mut cursor = server
        .query(sql)
        .fetch_bytes("RowBinary")
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    cursor
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .to_vec()
}

async fn text(server: &clickhouse::Client, sql: &str) -> String {
    let mut cursor = server
        .query(sql)
        .fetch_bytes("TabSeparated")
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let bytes = cursor.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    String::from_utf8_lossy(&bytes).trim_end().to_owned()
}

#[tokio::test]
async fn a_table_made_from_any_schema_takes_every_value_exactly() {
    let (server, db) = server_client().await;
    let kind = table::server(&server)
        .await
        .unwrap_or_else(|e| panic!("version: {e}"));
    let schema = Schema::parse_str(EVERY_KIND).unwrap_or_else(|e| panic!("{e}"));
    let plan = Plan::new(&schema).unwrap_or_else(|e| panic!("{e}"));
    let t = common::unique("every_");
    let create =
        table::create(&db, &t, &plan, kind, &Key::Coordinates, None).unwrap_or_else(|e| panic!("{e}"));
    server
        .query(&create)
        .execute()
        .await
        .unwrap_or_else(|e| panic!("{create}: {e}"));
    let columns = table::columns(&server, &db, &t)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let row_plan = RowPlan::new(&plan, &columns, kind, None).unwrap_or_else(|e| panic!("{e}"));

    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    let datums: Vec<Vec<u8>> = (0..ROWS)
        .map(|i| datum(&schema, random_every(&mut rng, i)))
        .collect();
    let (body, lines) = rows(&plan, &row_plan, &datums);
    insert(&server, &db, &t, &row_plan.columns, body.clone()).await;

    let list: Vec<String> = row_plan.columns.iter().map(|c| format!("`{c}`")).collect();
    let back = select_bytes(
        &server,
        &format!("SELECT {} FROM {db}.{t} ORDER BY kafka_offset", list.join(", ")),
    )
    .await;
    assert_eq!(back.len(), body.len(), "{ROWS} rows back, byte for byte");
    assert!(
        back == body,
        "ClickHouse gave back other bytes than the rows nrt wrote"
    );

    // The values, as ClickHouse itself reads them, against the lake's line of the same datum.
    let line0: serde_json::Value = serde_json::from_slice(&lines[0]).unwrap_or_else(|e| panic!("{e}"));
    let row0 = text(
        &server,
        &format!(
            // 18.16 prints some Decimal128 values wrongly (bytes of the value): compared inside ClickHouse.
            "SELECT dec = toDecimal64('{}', 4), decw = toDecimal128('{}', 2), big, toString(id), e, rec, \
             toUnixTimestamp(ts), ts_ms, toString(a), m FROM {db}.{t} WHERE kafka_offset = 0",
            str_of(&line0["dec"]),
            str_of(&line0["decw"]),
        ),
    )
    .await;
    let field = |name: &str| line0[name].clone();
    let unquoted = |v: serde_json::Value| str_of(&v);
    let expected = [
        "1".to_owned(),
        "1".to_owned(),
        unquoted(field("big")),
        unquoted(field("id")),
        unquoted(field("e")),
        field("rec")
            .to_string()
            .replace('\\', "\\\\")
            .replace('\t', "\\t"),
        "4294967295".to_owned(),
        "4294967295999".to_owned(),
        field("a").to_string(),
        field("m").to_string(),
    ];
    let got: Vec<&str> = row0.split('\t').collect();
    for (i, want) in expected.iter().enumerate() {
        let got = got.get(i).copied().unwrap_or("<missing>");
        assert!(
            got == want,
            "column {i}: ClickHouse says {got:?}, the lake {want:?} (row {row0})"
        );
    }
    println!(
        "{ROWS} rows of {} fields into {} columns on {kind:?}: bytes identical",
        schema_fields(&plan),
        row_plan.columns.len()
    );
    server
        .query(&format!("DROP TABLE {db}.{t}"))
        .execute()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Four consumers meet a new table, then a newer schema, at the same moment: the table is made once,
/// each new column added once and recorded once, every one of them gets the same row plan; a field
/// retyped beyond widening is refused with the field named, and nothing is altered for it.
#[tokio::test]
async fn consumers_meeting_a_new_schema_at_once_add_each_column_once() {
    use nrt_pipeline::clickhouse::follow::{follow, FollowError, Table};
    use nrt_pipeline::clickhouse::row::Mismatch;
    use nrt_pipeline::event::{SCHEMA_V1, SCHEMA_V2};
    let (server, db) = server_client().await;
    let ddl = nrt_pipeline::clickhouse::ddl::Ddl::new(&common::services().clickhouse)
        .unwrap_or_else(|e| panic!("{e}"));
    let kind = table::server(&server)
        .await
        .unwrap_or_else(|e| panic!("version: {e}"));
    let t = Table {
        database: db.clone(),
        table: common::unique("follow_"),
        key: Key::Fields(vec!["created_at".into(), "event_id".into()]),
        time: None,
        route: None,
    };
    let plan = |text: &str| {
        Plan::new(&Schema::parse_str(text).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let v3 = v3();
    for (text, id) in [(SCHEMA_V1, 1), (SCHEMA_V2, 2), (v3.as_str(), 3)] {
        let p = plan(text);
        let at_once = (0..4).map(|_| follow(&ddl, kind, &t, &p, id));
        let plans = futures::future::join_all(at_once).await;
        let columns: Vec<Vec<String>> = plans
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("schema {id}: {e}")).columns)
            .collect();
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "{columns:?}");
    }
    let count = |sql: String| {
        let server = server.clone();
        async move {
            server
                .query(&sql)
                .fetch_one::<u64>()
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    };
    let (db_, table_) = (db.as_str(), t.table.as_str());
    let columns = count(format!(
        "SELECT count() FROM system.columns WHERE database = '{db_}' AND table = '{table_}'"
    ))
    .await;
    assert_eq!(
        columns, 14,
        "v1's 7 (with created_at_ms) + 3 meta + country, session_id, tier, channel"
    );
    let changes = count(format!(
        "SELECT count() FROM {db_}.schema_changes WHERE table_name = '{table_}'"
    ))
    .await;
    assert_eq!(
        changes, 4,
        "country, session_id (schema 2), tier, channel (schema 3): once each"
    );
    let retyped = v3.replace(
        r#"{"name":"tier","type":"long","default":7}"#,
        r#"{"name":"tier","type":"string","default":"7"}"#,
    );
    match follow(&ddl, kind, &t, &plan(&retyped), 4).await {
        Err(FollowError::Mismatch(Mismatch::Incompatible { field, .. })) => assert_eq!(field, "tier"),
        other => panic!("a retyped field must be refused: {other:?}"),
    }
    let changes_after = count(format!(
        "SELECT count() FROM {db_}.schema_changes WHERE table_name = '{table_}'"
    ))
    .await;
    assert_eq!(changes_after, 4, "nothing altered for the refused schema");
    server
        .query(&format!("DROP TABLE {db}.{table_}"))
        .execute()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// events.v2 and two fields a newer writer adds: one with a non-null default, one optional.
fn v3() -> String {
    nrt_pipeline::event::SCHEMA_V2.replace(
        r#""fields": ["#,
        r#""fields": [{"name":"tier","type":"long","default":7},{"name":"channel","type":["null","string"],"default":null},"#,
    )
}

/// A datum (no framing) written by apache-avro.
fn datum(schema: &Schema, value: Value) -> Vec<u8> {
    let framed = nrt_pipeline::wire::encode(1, schema, value).unwrap_or_else(|e| panic!("{e}"));
    framed[nrt_pipeline::wire::HEADER_LEN..].to_vec()
}

/// The same schema's table and rows on a current ClickHouse release (chDB 26.x in-process): the
/// CREATE TABLE for a server with DateTime64 runs there, the columns it reports give the row plan, and
/// the rows nrt writes read back byte for byte.
#[tokio::test]
async fn a_current_release_takes_the_same_schema_table_and_rows() {
    use nrt_pipeline::clickhouse::row::Columns;
    use nrt_pipeline::clickhouse::types::{Server, Type};
    let schema = Schema::parse_str(EVERY_KIND).unwrap_or_else(|e| panic!("{e}"));
    let plan = Plan::new(&schema).unwrap_or_else(|e| panic!("{e}"));
    let work = std::env::temp_dir().join(common::unique("nrt_chdb_"));
    std::fs::create_dir_all(&work).unwrap_or_else(|e| panic!("{e}"));
    let dir = work.to_string_lossy().into_owned();
    let create = table::create("nrt", "every", &plan, Server::CURRENT, &Key::Coordinates, None)
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(work.join("create.sql"), &create).unwrap_or_else(|e| panic!("{e}"));
    // A tenant's table as nrt makes it from a template (a table per tenant), and a column given to it.
    use nrt_pipeline::clickhouse::tenants::{add_like, create_like};
    let tenant = [
        create_like("nrt", "every_acme", "every"),
        add_like("nrt", "every_acme", "region", "Nullable(String) DEFAULT 'eu'"),
    ];
    std::fs::write(work.join("tenant.sql"), tenant.join("\n")).unwrap_or_else(|e| panic!("{e}"));
    let made = common::python("chdb_table.py", &[&dir, "create"]);
    let tenant_columns = made["tenant"].as_array().map_or(0, Vec::len);
    let listed_n = made["columns"].as_array().map_or(0, Vec::len);
    assert_eq!(
        tenant_columns,
        listed_n + 1,
        "the tenant's table: the template's columns and one more"
    );
    assert!(
        made["tenant"]
            .to_string()
            .contains(r#"["region","Nullable(String)","'eu'"]"#),
        "{}",
        made["tenant"]
    );
    let version = made["version"].as_str().unwrap_or_default().to_owned();
    assert_eq!(Server::of_version(&version), Server::CURRENT, "chDB {version}");
    let listed: Vec<(String, String)> =
        serde_json::from_value(made["columns"].clone()).unwrap_or_else(|e| panic!("{e}"));
    let columns: Columns = listed.iter().map(|(n, t)| (n.clone(), Type::parse(t))).collect();
    assert_eq!(columns.get("ts"), Some(&Type::DateTime64(3)), "{listed:?}");
    assert_eq!(columns.get("day"), Some(&Type::Date32));
    let row_plan = RowPlan::new(&plan, &columns, Server::CURRENT, None).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(29);
    let datums: Vec<Vec<u8>> = (0..ROWS)
        .map(|i| datum(&schema, random_every(&mut rng, i)))
        .collect();
    let (body, _) = rows(&plan, &row_plan, &datums);
    let structure: Vec<String> = row_plan
        .columns
        .iter()
        .map(|c| format!("`{c}` {}", columns.get(c).map_or("?".to_owned(), Type::to_string)))
        .collect();
    std::fs::write(work.join("structure.txt"), structure.join(", ")).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = row_plan.columns.iter().map(|c| format!("`{c}`")).collect();
    std::fs::write(work.join("columns.txt"), names.join(", ")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(work.join("rows.bin"), &body).unwrap_or_else(|e| panic!("{e}"));
    let inserted = common::python("chdb_table.py", &[&dir, "insert"]);
    assert_eq!(inserted["rows"].as_u64(), Some(ROWS as u64));
    let back = std::fs::read(work.join("back.bin")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.len(), body.len());
    assert!(
        back == body,
        "chDB {version} gave back other bytes than the rows nrt wrote"
    );
    println!(
        "chDB {version}: {ROWS} rows into {} columns, bytes identical",
        row_plan.columns.len()
    );
    let _ = std::fs::remove_dir_all(&work);
}

fn str_of(v: &serde_json::Value) -> String {
    v.as_str().map_or(v.to_string(), str::to_owned)
}

fn schema_fields(plan: &Plan) -> usize {
    nrt_pipeline::clickhouse::row::root_record(plan).map_or(0, |r| r.fields.len())
}

fn random_event(rng: &mut impl Rng) -> nrt_pipeline::event::Event {
    use nrt_pipeline::event::{Event, Extra, Millis, Money};
    let pick = |rng: &mut dyn rand::RngCore| {
        (rng.gen_range(0..3) > 0).then(|| ["DE", "", "é\"x"][rng.gen_range(0..3)].into())
    };
    Event {
        event_id: uuid::Uuid::from_u128(rng.gen()),
        kind: ["purchase", "refund", "view"][rng.gen_range(0..3)].into(),
        user_id: rng.gen(),
        amount: Money(rng.gen_range(-999_999_999_999_999_999..=999_999_999_999_999_999)),
        currency: "EUR".into(),
        // One month: the table is partitioned by month, and a part per month is slow to write.
        created_at: Millis(rng.gen_range(1_795_000_000_000..1_797_000_000_000)),
        extra: Extra::boxed(pick(rng), pick(rng)),
    }
}

/// The events rows nrt writes from the schema are the ones `EventRow` writes: both inserted into
/// tables the migrations made, read back byte for byte. Then a v3 writer adds two fields: the columns
/// are added with their Avro defaults, older rows read them as Avro would.
#[tokio::test]
async fn events_rows_are_the_hand_written_ones_and_a_new_field_becomes_a_column() {
    use nrt_pipeline::event::{EventRow, Millis, SCHEMA_V1, SCHEMA_V2};
    use nrt_pipeline::fast_avro::{self, Shape};
    let (server, db) = server_client().await;
    let kind = table::server(&server)
        .await
        .unwrap_or_else(|e| panic!("version: {e}"));
    let (by_hand, by_schema) = (common::unique("events_hand_"), common::unique("events_schema_"));
    let ddl = nrt_pipeline::clickhouse::ddl::Ddl::new(&common::services().clickhouse)
        .unwrap_or_else(|e| panic!("{e}"));
    for t in [&by_hand, &by_schema] {
        nrt_pipeline::migrations::migrate(&ddl, &db, t)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let ingested = Millis(1_795_771_800_000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut events: Vec<_> = (0..2_000).map(|_| random_event(&mut rng)).collect();
    // The first half is written with v1, which has no v2 fields.
    let half = events.len() / 2;
    for e in &mut events[..half] {
        e.extra = None;
    }
    let client = server.clone().with_database(&db);
    let mut hand = client
        .insert::<EventRow>(&by_hand)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (offset, e) in events.iter().enumerate() {
        hand.write(&EventRow::new(e, ingested, 3, offset as i64))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    hand.end().await.unwrap_or_else(|e| panic!("{e}"));

    let columns = table::columns(&server, &db, &by_schema)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (text, shape, range) in [
        (SCHEMA_V1, Shape::V1, 0..half),
        (SCHEMA_V2, Shape::V2, half..events.len()),
    ] {
        let plan = Plan::new(&Schema::parse_str(text).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let row_plan = RowPlan::new(&plan, &columns, kind, None).unwrap_or_else(|e| panic!("{e}"));
        let (mut body, mut scratch) = (Vec::new(), Scratch::default());
        for offset in range {
            let mut avro = Vec::new();
            fast_avro::encode_event(&events[offset], shape, &mut avro);
            let mut row = RowWriter::new(&row_plan, &mut body, &mut scratch);
            walk(&plan, &avro, &mut row).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(row.fault, None);
            put_meta(&mut body, ingested.to_clickhouse_datetime(), 3, offset as i64);
        }
        insert(&server, &db, &by_schema, &row_plan.columns, body).await;
    }
    let rows_of = |t: &str| format!("SELECT * FROM {db}.{t} ORDER BY kafka_offset");
    let (hand, schema) = (
        select_bytes(&server, &rows_of(&by_hand)).await,
        select_bytes(&server, &rows_of(&by_schema)).await,
    );
    assert_eq!(hand.len(), schema.len(), "the same rows");
    assert!(hand == schema, "the rows differ from the hand-written path's");

    // v3: a field with a non-null default and an optional one, added by a newer writer.
    let v3 = v3();
    let v3_schema = Schema::parse_str(&v3).unwrap_or_else(|e| panic!("{e}"));
    let plan = Plan::new(&v3_schema).unwrap_or_else(|e| panic!("{e}"));
    let missing = table::missing(&plan, &columns, kind).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["tier", "channel"]);
    assert!(
        RowPlan::new(&plan, &columns, kind, None).is_err(),
        "no row before its columns"
    );
    for (column, ty) in &missing {
        let alter = table::add_column(&db, &by_schema, &plan, column, ty);
        server
            .query(&alter)
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{alter}: {e}"));
    }
    let columns = table::columns(&server, &db, &by_schema)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let row_plan = RowPlan::new(&plan, &columns, kind, None).unwrap_or_else(|e| panic!("{e}"));
    let mut event = Value::Record(vec![
        ("tier".into(), Value::Long(3)),
        (
            "channel".into(),
            Value::Union(1, Box::new(Value::String("web".into()))),
        ),
    ]);
    let mut v2_datum = Vec::new();
    fast_avro::encode_event(&events[0], Shape::V2, &mut v2_datum);
    let v2 = Schema::parse_str(SCHEMA_V2).unwrap_or_else(|e| panic!("{e}"));
    let v2_value = nrt_pipeline::wire::decode(1, &v2_datum, &v2, None);
    if let (Value::Record(fields), Ok(Value::Record(rest))) = (&mut event, v2_value) {
        fields.extend(rest);
    }
    let (body, _) = rows(&plan, &row_plan, &[datum(&v3_schema, event)]);
    let mut body = body;
    // `rows` numbers from offset 0: this one is offset 9,999.
    let len = body.len();
    body[len - 8..].copy_from_slice(&9_999i64.to_le_bytes());
    insert(&server, &db, &by_schema, &row_plan.columns, body).await;
    let seen = text(
        &server,
        &format!(
            "SELECT kafka_offset, tier, ifNull(channel, 'NULL') FROM {db}.{by_schema} \
             WHERE kafka_offset IN (0, {half}, 9999) ORDER BY kafka_offset"
        ),
    )
    .await;
    assert_eq!(
        seen,
        format!("0\t7\tNULL\n{half}\t7\tNULL\n9999\t3\tweb"),
        "older rows read the Avro default"
    );
    for t in [&by_hand, &by_schema] {
        server
            .query(&format!("DROP TABLE {db}.{t}"))
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
