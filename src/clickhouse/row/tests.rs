use super::*;
use crate::avro::json::JsonLine;
use crate::avro::walk::{walk, DecodeError};
use crate::event::{Event, Extra, Millis, Money, SCHEMA_V1, SCHEMA_V2};
use crate::fast_avro::{self, Shape};

fn plan(text: &str) -> Plan {
    let schema = apache_avro::Schema::parse_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    Plan::new(&schema).unwrap_or_else(|e| panic!("{e}"))
}

fn columns(list: &[(&str, &str)]) -> Columns {
    list.iter()
        .map(|(n, t)| (n.to_string(), Type::parse(t)))
        .collect()
}

/// `analytics.events_raw` as `system.columns` shows it after migrations 002 and 003.
fn events_raw() -> Columns {
    columns(&[
        ("event_id", "UUID"),
        ("type", "String"),
        ("user_id", "Int64"),
        ("amount", "Decimal(18, 2)"),
        ("currency", "String"),
        ("created_at", "DateTime"),
        ("created_at_ms", "Int64"),
        ("ingested_at", "DateTime"),
        ("kafka_partition", "Int32"),
        ("kafka_offset", "Int64"),
        ("country", "Nullable(String)"),
        ("session_id", "Nullable(String)"),
    ])
}

/// The row's own bytes and what the walk found, or the fault.
fn row(rows: &RowPlan, p: &Plan, datum: &[u8]) -> Result<(Vec<u8>, Option<i64>), RowFault> {
    let (mut out, mut scratch) = (Vec::new(), Scratch::default());
    let mut w = RowWriter::new(rows, &mut out, &mut scratch);
    walk(p, datum, &mut w).unwrap_or_else(|e| panic!("{e}"));
    if let Some(fault) = w.fault {
        return Err(fault);
    }
    let time = w.time_millis;
    Ok((out, time))
}

fn sample(extra: Option<Box<Extra>>, created_at: i64) -> Event {
    Event {
        event_id: uuid::Uuid::from_u128(0x6f1c2a4e_8b0d_4c8e_9a57_3f4f1d2e7b10),
        kind: "refund".into(),
        user_id: 42,
        amount: Money(-12_345),
        currency: "EUR".into(),
        created_at: Millis(created_at),
        extra,
    }
}

/// RowBinary of an event as the hand-written path (`EventRow`) writes it, columns in `RowPlan` order.
fn event_row_bytes(e: &Event, with_v2: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let (high, low) = e.event_id.as_u64_pair();
    out.extend_from_slice(&high.to_le_bytes());
    out.extend_from_slice(&low.to_le_bytes());
    let string = |out: &mut Vec<u8>, s: &str| {
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    };
    string(&mut out, &e.kind);
    out.extend_from_slice(&e.user_id.to_le_bytes());
    out.extend_from_slice(&e.amount.0.to_le_bytes());
    string(&mut out, &e.currency);
    out.extend_from_slice(&e.created_at.to_clickhouse_datetime().to_le_bytes());
    out.extend_from_slice(&e.created_at.0.to_le_bytes());
    if with_v2 {
        let extra = e.extra.as_deref();
        for v in [
            extra.and_then(|x| x.country.as_deref()),
            extra.and_then(|x| x.session_id.as_deref()),
        ] {
            match v {
                None => out.push(1),
                Some(s) => {
                    out.push(0);
                    string(&mut out, s);
                }
            }
        }
    }
    out
}

#[test]
fn events_rows_are_what_the_hand_written_path_writes() {
    let at = 1_795_771_800_123;
    for (text, shape, with_v2) in [(SCHEMA_V1, Shape::V1, false), (SCHEMA_V2, Shape::V2, true)] {
        let p = plan(text);
        for server in [Server::LEGACY, Server::CURRENT] {
            let rows = RowPlan::new(&p, &events_raw(), server, None).unwrap_or_else(|e| panic!("{e}"));
            let mut want = vec![
                "event_id",
                "type",
                "user_id",
                "amount",
                "currency",
                "created_at",
                "created_at_ms",
            ];
            if with_v2 {
                want.extend(["country", "session_id"]);
            }
            want.extend(META_COLUMNS);
            assert_eq!(rows.columns, want, "{server:?}");
            for extra in [
                None,
                Extra::boxed(Some("DE".into()), None),
                Extra::boxed(None, Some("s".into())),
            ] {
                let e = sample(if with_v2 { extra } else { None }, at);
                let mut avro = Vec::new();
                fast_avro::encode_event(&e, shape, &mut avro);
                let (bytes, time) = row(&rows, &p, &avro).unwrap_or_else(|f| panic!("{f}"));
                assert_eq!(bytes, event_row_bytes(&e, with_v2), "{e:?}");
                assert_eq!(time, Some(at), "created_at names the hour");
            }
        }
    }
}

#[test]
fn a_new_field_needs_its_column_and_a_retyped_one_is_refused() {
    let v3 = SCHEMA_V2.replace(
        r#""fields": ["#,
        r#""fields": [{"name":"channel","type":["null","string"],"default":null},"#,
    );
    let p = plan(&v3);
    assert_eq!(
        RowPlan::new(&p, &events_raw(), Server::LEGACY, None).err(),
        Some(Mismatch::Missing {
            field: "channel".into(),
            column: "channel".into(),
            want: Type::parse("Nullable(String)"),
        })
    );
    let retyped = SCHEMA_V2.replace(
        r#""name": "user_id",
      "type": "long""#,
        r#""name": "user_id",
      "type": "string""#,
    );
    assert_ne!(retyped, SCHEMA_V2);
    let err = RowPlan::new(&plan(&retyped), &events_raw(), Server::LEGACY, None).err();
    assert!(
        matches!(err, Some(Mismatch::Incompatible { ref field, .. }) if field == "user_id"),
        "{err:?}"
    );
    // The operator's way out: the column made a String, which takes both, the long as its text.
    let mut as_text = events_raw();
    as_text.insert("user_id".into(), Type::String);
    let retyped_rows = RowPlan::new(&plan(&retyped), &as_text, Server::LEGACY, None);
    assert!(retyped_rows.is_ok(), "{:?}", retyped_rows.err());
    let p1 = plan(SCHEMA_V1);
    let v1_rows = RowPlan::new(&p1, &as_text, Server::LEGACY, None).unwrap_or_else(|e| panic!("{e}"));
    let mut avro = Vec::new();
    fast_avro::encode_event(&sample(None, 1_795_771_800_123), Shape::V1, &mut avro);
    let (bytes, _) = row(&v1_rows, &p1, &avro).unwrap_or_else(|e| panic!("{e}"));
    let e = sample(None, 1_795_771_800_123);
    let text = e.user_id.to_string();
    let at = 16 + 1 + e.kind.len();
    assert_eq!(bytes[at] as usize, text.len(), "user_id as a String: its length");
    assert_eq!(
        &bytes[at + 1..at + 1 + text.len()],
        text.as_bytes(),
        "… and its digits"
    );
    let ms = "created_at_ms";
    let mut without_exact = events_raw();
    without_exact.remove(ms);
    let err = RowPlan::new(&plan(SCHEMA_V1), &without_exact, Server::LEGACY, None).err();
    assert!(
        matches!(err, Some(Mismatch::Missing { ref column, .. }) if column == ms),
        "{err:?}"
    );
    let current = RowPlan::new(&plan(SCHEMA_V1), &without_exact, Server::CURRENT, None);
    assert!(
        current.is_ok_and(|r| !r.columns.iter().any(|c| c == ms)),
        "DateTime alone, when that is all there is"
    );
    let err = RowPlan::new(&plan(SCHEMA_V1), &events_raw(), Server::LEGACY, Some("user_id")).err();
    assert_eq!(err, Some(Mismatch::TimeField("user_id".into())));
}

#[test]
fn values_a_column_cannot_hold_are_faults_naming_the_field() {
    let p = plan(SCHEMA_V1);
    let rows = RowPlan::new(&p, &events_raw(), Server::LEGACY, None).unwrap_or_else(|e| panic!("{e}"));
    for at in [-1, 4_294_967_296_000, i64::MAX] {
        let mut avro = Vec::new();
        fast_avro::encode_event(&sample(None, at), Shape::V1, &mut avro);
        let fault = row(&rows, &p, &avro)
            .err()
            .unwrap_or_else(|| panic!("{at} taken"));
        assert_eq!(fault.field, "created_at");
        assert_eq!(
            fault.kind(Some("created_at")),
            crate::poison::PoisonKind::CreatedAtOutOfRange
        );
    }
    let mut avro = Vec::new();
    fast_avro::encode_event(&sample(None, 4_294_967_295_999), Shape::V1, &mut avro);
    assert!(row(&rows, &p, &avro).is_ok(), "the last second DateTime holds");

    let narrow = columns(&[("d", "Decimal(4, 2)"), ("s", "String")]);
    let p = plan(
        r#"{"type":"record","name":"R","fields":[
        {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}},
        {"name":"s","type":["null","string"]}]}"#,
    );
    let rows = RowPlan::new(
        &p,
        &columns(&[("d", "Decimal(6, 2)"), ("s", "Nullable(String)")]),
        Server::LEGACY,
        None,
    );
    assert!(rows.is_ok(), "a wider decimal column takes it");
    let err = RowPlan::new(&p, &narrow, Server::LEGACY, None).err();
    assert!(
        matches!(err, Some(Mismatch::Incompatible { ref field, .. }) if field == "s"),
        "a null has nowhere to go"
    );
    let p2 = plan(
        r#"{"type":"record","name":"R","fields":[
        {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}}]}"#,
    );
    let err = RowPlan::new(&p2, &narrow, Server::LEGACY, None).err();
    assert!(matches!(err, Some(Mismatch::Incompatible { .. })), "{err:?}");
    // Written with precision 4, a 5-digit value: the writer lied; the column would overflow.
    let p3 = plan(
        r#"{"type":"record","name":"R","fields":[
        {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}},
        {"name":"s","type":"string"}]}"#,
    );
    let rows = RowPlan::new(&p3, &narrow, Server::LEGACY, None).unwrap_or_else(|e| panic!("{e}"));
    let datum = [4, 0x30, 0x39, 0]; // 12345 → 123.45, then ""
    let fault = row(&rows, &p3, &datum).err();
    assert_eq!(
        fault.as_ref().map(|f| (f.field.as_str(), f.kind(None))),
        Some(("d", crate::poison::PoisonKind::OutOfRange))
    );
    assert_eq!(
        fault.map(|f| f.to_string()),
        Some("field d: 123.45 has more than the 4 digits of its column".into())
    );
    let datum = [4, 0x27, 0x0f, 0]; // 9999 → 99.99
    assert_eq!(
        row(&rows, &p3, &datum).map(|(b, _)| b),
        Ok(vec![0x0f, 0x27, 0, 0, 0])
    );
    // A Date column: up to 2106-02-07 (18.16 reads a later day as 1970-01-01), not to 2149.
    let pd = plan(
        r#"{"type":"record","name":"D","fields":[{"name":"day","type":{"type":"int","logicalType":"date"}}]}"#,
    );
    let rows = RowPlan::new(&pd, &columns(&[("day", "Date")]), Server::LEGACY, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let zigzag = |d: i32| {
        let mut out = Vec::new();
        let mut n = ((d << 1) ^ (d >> 31)) as u32;
        while n >= 0x80 {
            out.push(n as u8 | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out
    };
    assert_eq!(
        row(&rows, &pd, &zigzag(49_710)).map(|(b, _)| b),
        Ok(49_710u16.to_le_bytes().to_vec())
    );
    let fault = row(&rows, &pd, &zigzag(49_711)).err();
    assert_eq!(
        fault.map(|f| (f.kind(None), f.to_string().contains("2106-02-07"))),
        Some((crate::poison::PoisonKind::OutOfRange, true))
    );
}

/// A schema with a field of every kind, the table created for it, and one datum's row, byte by byte.
#[test]
fn every_kind_of_field_has_a_column_and_its_bytes() {
    let p = plan(
        r#"{"type":"record","name":"All","fields":[
        {"name":"n","type":"null"},{"name":"b","type":"boolean"},{"name":"i","type":"int"},
        {"name":"f","type":"float"},{"name":"by","type":"bytes"},
        {"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
        {"name":"fx","type":{"type":"fixed","name":"Two","size":2}},
        {"name":"a","type":{"type":"array","items":"long"}},
        {"name":"m","type":{"type":"map","values":"int"}},
        {"name":"u","type":["null","int","string"]},
        {"name":"rec","type":{"type":"record","name":"Inner","fields":[{"name":"x","type":"int"}]}},
        {"name":"date","type":{"type":"int","logicalType":"date"}},
        {"name":"tsu","type":["null",{"type":"long","logicalType":"timestamp-micros"}]}]}"#,
    );
    let record = root_record(&p).unwrap_or_else(|e| panic!("{e}"));
    let mut datum = vec![1, 4, 0, 0, 0x80, 0x3f, 6, b'a', b'b', b'c', 2, b'x', b'y'];
    datum.extend([4, 2, 3, 0]); // a: [1, -2]
    datum.extend([2, 2, b'k', 14, 0]); // m: {"k": 7}
    datum.extend([4, 4, b'h', b'i']); // u: "hi" (branch 2)
    datum.extend([10]); // rec: {x: 5}
    datum.extend([2]); // date: 1970-01-02
    datum.extend([2, 0x80, 0x89, 0x7a]); // tsu: 1,000,000 µs
    let same = [
        ("b", "UInt8"),
        ("i", "Int32"),
        ("f", "Float32"),
        ("by", "String"),
        ("e", "String"),
        ("fx", "FixedString(2)"),
        ("a", "Array(Int64)"),
        ("m", "String"),
        ("u", "Nullable(String)"),
        ("rec", "String"),
    ];
    let legacy = [
        ("date", "Date"),
        ("tsu", "Nullable(DateTime)"),
        ("tsu_us", "Nullable(Int64)"),
    ];
    let current = [("date", "Date32"), ("tsu", "Nullable(DateTime64(6))")];
    for (server, table) in [
        (Server::LEGACY, [&same[..], &legacy[..]].concat()),
        (Server::CURRENT, [&same[..], &current[..]].concat()),
    ] {
        for f in record.fields.iter() {
            let want = types::wanted(&f.name, &f.node, &p, server);
            let have = table
                .iter()
                .find(|(n, _)| *n == f.name)
                .map(|(_, t)| Type::parse(t));
            assert_eq!(want.map(|w| w.ty), have, "{server:?} {}", f.name);
        }
        let rows = RowPlan::new(&p, &columns(&table), server, None).unwrap_or_else(|e| panic!("{e}"));
        let (bytes, time) = row(&rows, &p, &datum).unwrap_or_else(|f| panic!("{f}"));
        let mut want = vec![
            1, 2, 0, 0, 0, 0, 0, 0x80, 0x3f, 3, b'a', b'b', b'c', 5, b'G', b'R', b'E', b'E', b'N', b'x', b'y',
        ];
        want.push(2);
        want.extend(1i64.to_le_bytes());
        want.extend((-2i64).to_le_bytes());
        want.extend([7, b'{', b'"', b'k', b'"', b':', b'7', b'}']);
        want.extend([0, 4, b'"', b'h', b'i', b'"']);
        want.extend([7, b'{', b'"', b'x', b'"', b':', b'5', b'}']);
        match server {
            Server::LEGACY => {
                want.extend(1u16.to_le_bytes());
                want.extend([0, 1, 0, 0, 0, 0]);
                want.extend(1_000_000i64.to_le_bytes());
            }
            _ => {
                want.extend(1i32.to_le_bytes());
                want.push(0);
                want.extend(1_000_000i64.to_le_bytes());
            }
        }
        assert_eq!(bytes, want, "{server:?}");
        assert_eq!(time, Some(1_000), "the first timestamp field names the hour");
    }
}

/// What one record's decoding gave: the walk's result, the first fault, the time, and — when all went
/// well — the line and the row.
type Outcome = (
    Result<(), DecodeError>,
    Option<RowFault>,
    Option<i64>,
    Vec<u8>,
    Vec<u8>,
);

fn by_walk(rows: &RowPlan, p: &Plan, datum: &[u8]) -> Outcome {
    let (mut line, mut out, mut scratch) = (Vec::new(), Vec::new(), Scratch::default());
    let mut both = (
        JsonLine::new(&mut line),
        RowWriter::new(rows, &mut out, &mut scratch),
    );
    let walked = walk(p, datum, &mut both);
    let (fault, time) = (both.1.fault.take(), both.1.time_millis);
    drop(both);
    finished(walked, fault, time, line, out)
}

/// The pass writing both; the row-only pass (records keeping their datums, when read) must write the
/// same row, fault and time and nothing to the line's buffer; the line-only pass (their lines, when
/// written) the same line for every datum that decodes, and nothing to the row's.
fn by_steps(steps: &Steps, rows: &RowPlan, p: &Plan, datum: &[u8]) -> Outcome {
    let (mut line, mut out, mut scratch) = (Vec::new(), Vec::new(), Scratch::default());
    let w = steps.run::<super::Both>(p, rows, datum, (&mut line, &mut out), &mut scratch);
    let whole_line = line.clone();
    let with = finished(w.walked, w.fault, w.time_millis, line, out);
    let (mut none, mut out, mut scratch) = (Vec::new(), Vec::new(), Scratch::default());
    let w = steps.run::<super::RowOnly>(p, rows, datum, (&mut none, &mut out), &mut scratch);
    assert!(none.is_empty(), "a pass without a line writes none");
    let without = finished(w.walked, w.fault, w.time_millis, Vec::new(), out);
    assert_eq!(
        (&without.0, &without.1, &without.2, &without.4),
        (&with.0, &with.1, &with.2, &with.4)
    );
    let (mut line, mut none, mut scratch) = (Vec::new(), Vec::new(), Scratch::default());
    let w = steps.run::<super::LineOnly>(p, rows, datum, (&mut line, &mut none), &mut scratch);
    assert!(none.is_empty(), "a pass without a row writes none");
    assert_eq!(w.walked, with.0);
    if w.walked.is_ok() {
        assert_eq!(
            line, whole_line,
            "the line-only pass writes the line the pass of both writes"
        );
    }
    with
}

/// Bytes count only when the record is taken (a failed one is truncated away).
fn finished(
    walked: Result<(), DecodeError>,
    fault: Option<RowFault>,
    time: Option<i64>,
    line: Vec<u8>,
    row: Vec<u8>,
) -> Outcome {
    match (&walked, &fault) {
        (Ok(()), None) => (walked, fault, time, line, row),
        (Err(_), _) => (walked, None, None, Vec::new(), Vec::new()),
        (Ok(()), Some(_)) => (walked, fault, None, Vec::new(), Vec::new()),
    }
}

/// The field-by-field pass writes what the walk of the whole datum writes: every type, tables as nrt
/// creates them on either server, every column made Nullable or String (what an operator may do),
/// values past a column's range, and every datum cut short at every length.
#[test]
fn steps_write_what_the_walk_writes() {
    use rand::SeedableRng;
    let schemas = [
        include_str!("../../../tests/fixtures/every_type.avsc"),
        include_str!("../../../benches/wide.avsc"),
        SCHEMA_V1,
        SCHEMA_V2,
    ];
    let nullable = |t: &Type| match t {
        Type::Nullable(_) | Type::Array(_) | Type::LowCardinality(_) => t.clone(),
        t => Type::Nullable(Box::new(t.clone())),
    };
    let text = |t: &Type| match t {
        Type::Nullable(_) => Type::Nullable(Box::new(Type::String)),
        _ => Type::String,
    };
    let mut compared = (0, 0, 0);
    for text_of in schemas {
        let p = plan(text_of);
        for server in [Server::LEGACY, Server::CURRENT] {
            let made = crate::clickhouse::table::columns_of(&p, server).unwrap_or_else(|e| panic!("{e}"));
            let tables: Vec<Columns> = [
                &(|t: &Type| t.clone()) as &dyn Fn(&Type) -> Type,
                &nullable,
                &text,
            ]
            .iter()
            .map(|f| made.iter().map(|(n, t)| (n.clone(), f(t))).collect())
            .collect();
            for columns in &tables {
                let Ok(rows) = RowPlan::new(&p, columns, server, None) else {
                    continue;
                };
                let steps = Steps::new(&p, &rows).unwrap_or_else(|| panic!("a record has steps"));
                let mut rng = rand::rngs::StdRng::seed_from_u64(11);
                for (n, at_ms) in (0..240).zip(
                    [1_767_225_600_000i64, -3_000_000_000_000, 5_000_000_000_000]
                        .iter()
                        .cycle(),
                ) {
                    let mut datum = Vec::new();
                    crate::avro::random::datum(&p, &mut rng, *at_ms, &mut datum);
                    let cuts = if n < 4 {
                        0..datum.len()
                    } else {
                        datum.len()..datum.len() + 1
                    };
                    for cut in cuts {
                        let d = &datum[..cut];
                        let (walked, steps_out) = (by_walk(&rows, &p, d), by_steps(&steps, &rows, &p, d));
                        assert_eq!(
                            steps_out,
                            walked,
                            "{server:?}, datum {n} cut at {cut} of {}",
                            datum.len()
                        );
                        match &walked {
                            (Ok(()), None, ..) => compared.0 += 1,
                            (Ok(()), Some(_), ..) => compared.1 += 1,
                            (Err(_), ..) => compared.2 += 1,
                        }
                    }
                    let mut longer = datum.clone();
                    longer.push(0);
                    assert_eq!(by_steps(&steps, &rows, &p, &longer), by_walk(&rows, &p, &longer));
                }
            }
        }
    }
    let (taken, faults, errors) = compared;
    assert!(
        taken > 1_000 && faults > 100 && errors > 1_000,
        "{compared:?}: every outcome was compared"
    );
}
