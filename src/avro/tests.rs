//! The walker and the lake's JSON against what they must equal: `Event::write_json` for the events
//! schemas (byte for byte), the documented mapping for every type, and the reference mapping through
//! apache-avro's values.

use apache_avro::types::Value;
use apache_avro::Schema;
use rand::{Rng, SeedableRng};

use super::{json_line, reference, DecodeError, Plan};
use crate::event::{Event, Extra, Millis, Money, SCHEMA_V1, SCHEMA_V2};
use crate::fast_avro::{self, Shape};

/// Arrays of a union, a map of decimals, an enum, a timestamp, and itself.
const RECURSIVE: &str = r#"{"type":"record","name":"R","fields":[
    {"name":"a","type":{"type":"array","items":["null","long",{"type":"record","name":"P","fields":[{"name":"s","type":"string"}]}]}},
    {"name":"m","type":{"type":"map","values":{"type":"bytes","logicalType":"decimal","precision":20,"scale":3}}},
    {"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y","Z"]}},
    {"name":"t","type":{"type":"long","logicalType":"timestamp-micros"}},
    {"name":"next","type":["null","R"]}]}"#;

fn schema(text: &str) -> Schema {
    Schema::parse_str(text).unwrap_or_else(|e| panic!("{e}"))
}

fn plan(s: &Schema) -> Plan {
    Plan::new(s).unwrap_or_else(|e| panic!("{e}"))
}

/// The line of `value` written with `s` (encoded by apache-avro).
fn line(s: &Schema, value: Value) -> String {
    let framed = crate::wire::encode(1, s, value).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    json_line(&plan(s), &framed[crate::wire::HEADER_LEN..], &mut out).unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"))
}

fn random_event(rng: &mut impl Rng, shape: Shape) -> Event {
    let texts = [
        "DE",
        "",
        "é\"\\\u{1}x",
        "a session id longer than twenty-four bytes",
    ];
    let pick = |rng: &mut dyn rand::RngCore| {
        (rng.gen_range(0..3) > 0).then(|| texts[rng.gen_range(0..texts.len())].into())
    };
    let extra = match shape {
        Shape::V1 => None,
        Shape::V2 => Extra::boxed(pick(rng), pick(rng)),
    };
    Event {
        event_id: uuid::Uuid::from_u128(rng.gen()),
        kind: ["view", "purchase", "a \"quoted\" kind"][rng.gen_range(0..3)].into(),
        user_id: rng.gen_range(-5..1_000_000_000_000),
        amount: Money(rng.gen_range(-999_999_999_999_999_999..1_000_000_000_000_000_000)),
        currency: "EUR".into(),
        created_at: Millis(rng.gen_range(Millis::SINKABLE)),
        extra,
    }
}

#[test]
fn events_lines_are_byte_for_byte_what_the_pipeline_wrote() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    for (shape, text) in [(Shape::V1, SCHEMA_V1), (Shape::V2, SCHEMA_V2)] {
        let p = plan(&schema(text));
        for _ in 0..5_000 {
            let event = random_event(&mut rng, shape);
            let mut avro = Vec::new();
            fast_avro::encode_event(&event, shape, &mut avro);
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            json_line(&p, &avro, &mut ours).unwrap_or_else(|e| panic!("{event:?}: {e}"));
            event.write_json(&mut theirs);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{shape:?}"
            );
        }
    }
}

#[test]
fn every_type_is_written_as_documented() {
    let s = schema(
        r#"{"type":"record","name":"All","namespace":"t","fields":[
        {"name":"n","type":"null"},{"name":"b","type":"boolean"},{"name":"i","type":"int"},
        {"name":"l","type":"long"},{"name":"f","type":"float"},{"name":"d","type":"double"},
        {"name":"nan","type":"double"},{"name":"by","type":"bytes"},{"name":"s","type":"string"},
        {"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
        {"name":"fx","type":{"type":"fixed","name":"Three","size":3}},
        {"name":"a","type":{"type":"array","items":"long"}},
        {"name":"m","type":{"type":"map","values":"string"}},
        {"name":"u1","type":["null","string"]},{"name":"u2","type":["null","string"]},
        {"name":"amb","type":["int","long"]},
        {"name":"rec","type":{"type":"record","name":"Inner","fields":[{"name":"x","type":"int"}]}},
        {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":30,"scale":4}},
        {"name":"decf","type":{"type":"fixed","name":"D8","size":8,"logicalType":"decimal","precision":18,"scale":0}},
        {"name":"uuid","type":{"type":"string","logicalType":"uuid"}},
        {"name":"date","type":{"type":"int","logicalType":"date"}},
        {"name":"tms","type":{"type":"int","logicalType":"time-millis"}},
        {"name":"tus","type":{"type":"long","logicalType":"time-micros"}},
        {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"tsu","type":{"type":"long","logicalType":"timestamp-micros"}},
        {"name":"tsn","type":{"type":"long","logicalType":"timestamp-nanos"}},
        {"name":"lts","type":{"type":"long","logicalType":"local-timestamp-millis"}},
        {"name":"far","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"dur","type":{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}}]}"#,
    );
    let dec = apache_avro::Decimal::from(vec![0xff, 0x85]); // -123 unscaled, scale 4: -0.0123
    let decf = apache_avro::Decimal::from(1_234_567_890_123i64.to_be_bytes().to_vec());
    let uuid = uuid::Uuid::parse_str("6f1c2d3e-0000-4000-8000-00000000000a").unwrap_or_default();
    let duration = apache_avro::Duration::new(
        apache_avro::Months::new(1),
        apache_avro::Days::new(2),
        apache_avro::Millis::new(3),
    );
    let value = Value::Record(vec![
        ("n".into(), Value::Null),
        ("b".into(), Value::Boolean(true)),
        ("i".into(), Value::Int(-7)),
        ("l".into(), Value::Long(i64::MAX)),
        ("f".into(), Value::Float(0.1)),
        ("d".into(), Value::Double(-2.5e-300)),
        ("nan".into(), Value::Double(f64::NAN)),
        ("by".into(), Value::Bytes(vec![0, 255, 10])),
        ("s".into(), Value::String("é\"\n".into())),
        ("e".into(), Value::Enum(1, "GREEN".into())),
        ("fx".into(), Value::Fixed(3, vec![1, 2, 3])),
        ("a".into(), Value::Array(vec![Value::Long(1), Value::Long(-1)])),
        (
            "m".into(),
            Value::Map(
                [("k".to_owned(), Value::String("v".into()))]
                    .into_iter()
                    .collect(),
            ),
        ),
        ("u1".into(), Value::Union(0, Box::new(Value::Null))),
        ("u2".into(), Value::Union(1, Box::new(Value::String("x".into())))),
        ("amb".into(), Value::Union(1, Box::new(Value::Long(5)))),
        ("rec".into(), Value::Record(vec![("x".into(), Value::Int(9))])),
        ("dec".into(), Value::Decimal(dec)),
        ("decf".into(), Value::Decimal(decf)),
        ("uuid".into(), Value::Uuid(uuid)),
        ("date".into(), Value::Date(20_454)),
        ("tms".into(), Value::TimeMillis(3_723_004)),
        ("tus".into(), Value::TimeMicros(3_723_000_005)),
        ("ts".into(), Value::TimestampMillis(1_767_225_600_123)),
        ("tsu".into(), Value::TimestampMicros(1_767_225_600_123_456)),
        ("tsn".into(), Value::TimestampNanos(-1)),
        ("lts".into(), Value::LocalTimestampMillis(0)),
        ("far".into(), Value::TimestampMillis(i64::MAX)),
        ("dur".into(), Value::Duration(duration)),
    ]);
    let expected = concat!(
        r#"{"b":true,"i":-7,"l":9223372036854775807,"f":0.1,"d":-2.5e-300,"nan":"NaN","by":"AP8K","s":"é\"\n","#,
        r#""e":"GREEN","fx":"AQID","a":[1,-1],"m":{"k":"v"},"u2":"x","amb":{"long":5},"rec":{"x":9},"#,
        r#""dec":"-0.0123","decf":"1234567890123","uuid":"6f1c2d3e-0000-4000-8000-00000000000a","#,
        r#""date":"2026-01-01","tms":"01:02:03.004","tus":"01:02:03.000005","ts":"2026-01-01T00:00:00.123Z","#,
        r#""tsu":"2026-01-01T00:00:00.123456Z","tsn":"1969-12-31T23:59:59.999999999Z","#,
        r#""lts":"1970-01-01T00:00:00.000","far":9223372036854775807,"dur":{"months":1,"days":2,"millis":3}}"#
    );
    assert_eq!(line(&s, value), expected);
}

#[test]
fn decimals_wider_than_128_bits_are_exact() {
    let mut out = Vec::new();
    // 2^136 = 87112285931760246646623899502532662132736, as 18 bytes.
    let mut big = vec![0u8; 18];
    big[0] = 1;
    super::json::decimal(&mut out, &big, 3);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "87112285931760246646623899502532662132.736"
    );
    out.clear();
    let negative: Vec<u8> = big.iter().map(|b| !b).collect(); // -(2^136) - 1
    super::json::decimal(&mut out, &negative, 0);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "-87112285931760246646623899502532662132737"
    );
    out.clear();
    super::json::decimal(&mut out, &[], 2);
    assert_eq!(String::from_utf8_lossy(&out), "0.00");
}

#[test]
fn hostile_data_is_refused_before_it_costs_anything() {
    let nested = plan(&schema(
        r#"{"type":"array","items":{"type":"array","items":"null"}}"#,
    ));
    let mut long = Vec::new();
    for n in [1, 9_000_000, 0, 0] {
        fast_avro::put_long(&mut long, n);
    }
    let mut out = b"kept".to_vec();
    let err = json_line(&nested, &long, &mut out);
    assert_eq!(err, Err(DecodeError::TooManyEmpty));
    assert!(err.is_err_and(|e| e.is_cost()));
    assert_eq!(out, b"kept", "a failed line leaves nothing behind");
    let list = plan(&schema(
        r#"{"type":"record","name":"N","fields":[{"name":"next","type":["null","N"]}]}"#,
    ));
    let deep: Vec<u8> = std::iter::repeat_n(2, 10_000).chain([0]).collect();
    assert_eq!(json_line(&list, &deep, &mut out), Err(DecodeError::TooDeep));
    let longs = plan(&schema(r#"{"type":"array","items":"long"}"#));
    let claims = [vec![0x80, 0x89, 0x7a], vec![2; 10]].concat(); // 1,000,000 longs claimed in 13 bytes
    assert!(matches!(
        json_line(&longs, &claims, &mut out),
        Err(DecodeError::Count { .. })
    ));
    assert_eq!(
        json_line(&longs, &[2, 2, 0, 7], &mut out),
        Err(DecodeError::Trailing(1))
    );
}

/// The walker and the bounds checked before apache-avro decodes count a datum's levels alike, a null
/// at the end included (found by the `any_schema` fuzz target: 32 nested records then a null field
/// passed the walker and not the bounds).
#[test]
fn the_walker_and_the_bounds_agree_on_depth() {
    for text in [
        r#"{"type":"record","name":"N","fields":[{"name":"next","type":["null","N"]}]}"#,
        r#"{"type":"record","name":"N","fields":[{"name":"next","type":["N","null"]}]}"#,
    ] {
        let s = schema(text);
        let bounds = crate::wire::bounds::Bounds::new(&s).unwrap_or_else(|e| panic!("{e}"));
        let (nest, end) = if text.contains(r#"["null""#) {
            (2, 0)
        } else {
            (0, 2)
        };
        for levels in 25..40 {
            let datum: Vec<u8> = std::iter::repeat_n(nest, levels).chain([end]).collect();
            let walked = json_line(&plan(&s), &datum, &mut Vec::new());
            assert_eq!(
                walked.is_ok(),
                bounds.check(&datum).is_ok(),
                "{text}, {levels} levels: {walked:?}"
            );
        }
    }
}

/// Random datums of a schema with every kind of value, read by the walker and by apache-avro then the
/// reference mapping: the same JSON, or both refuse the bytes.
#[test]
fn the_walker_agrees_with_apache_avro_on_mutated_datums() {
    let s = schema(RECURSIVE);
    let p = plan(&s);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let (mut agreed, mut refused) = (0, 0);
    for i in 0..20_000 {
        let value = random_value(&mut rng, &s, &s, 0);
        let framed = crate::wire::encode(1, &s, value).unwrap_or_else(|e| panic!("{e}"));
        let mut datum = framed[crate::wire::HEADER_LEN..].to_vec();
        match i % 4 {
            0 => {}
            1 if !datum.is_empty() => {
                let at = rng.gen_range(0..datum.len());
                datum[at] ^= 1 << rng.gen_range(0..8);
            }
            2 => datum.truncate(rng.gen_range(0..=datum.len())),
            _ => datum.push(rng.gen()),
        }
        let mut ours = Vec::new();
        let walked = json_line(&p, &datum, &mut ours);
        let theirs = crate::wire::decode(1, &datum, &s, None);
        match (walked, theirs) {
            (Ok(()), Ok(value)) => {
                let ours: serde_json::Value = serde_json::from_slice(&ours).unwrap_or_else(|e| panic!("{e}"));
                let expected = reference::json(&value, &s, &p).unwrap_or_else(|| panic!("{value:?}"));
                assert_eq!(ours, expected, "datum {datum:?}");
                agreed += 1;
            }
            (Err(_), Err(_)) => refused += 1,
            (ours, theirs) => panic!("datum {datum:?}: walker {ours:?}, apache-avro {theirs:?}"),
        }
    }
    assert!(
        agreed > 1_000 && refused > 1_000,
        "{agreed} agreed, {refused} refused"
    );
}

/// A random value of `schema` (the record `R` of the test above: arrays, unions, a nested and a
/// recursive record, a map of decimals, an enum, a timestamp).
fn random_value(rng: &mut impl Rng, schema: &Schema, root: &Schema, depth: usize) -> Value {
    match schema {
        Schema::Null => Value::Null,
        Schema::Long => Value::Long(rng.gen_range(-1_000_000..1_000_000)),
        Schema::String => Value::String(["", "x", "é\"", "a longer string"][rng.gen_range(0..4)].into()),
        Schema::TimestampMicros => Value::TimestampMicros(rng.gen_range(-1 << 60..1 << 60)),
        Schema::Decimal(_) => {
            let bytes: Vec<u8> = (0..rng.gen_range(1..9)).map(|_| rng.gen()).collect();
            Value::Decimal(apache_avro::Decimal::from(bytes))
        }
        Schema::Enum(e) => {
            let i = rng.gen_range(0..e.symbols.len());
            Value::Enum(i as u32, e.symbols[i].clone())
        }
        Schema::Array(a) => Value::Array(
            (0..rng.gen_range(0..4))
                .map(|_| random_value(rng, &a.items, root, depth))
                .collect(),
        ),
        Schema::Map(m) => Value::Map(
            (0..rng.gen_range(0..3))
                .map(|k| (format!("k{k}"), random_value(rng, &m.types, root, depth)))
                .collect(),
        ),
        Schema::Union(u) => {
            // Deep enough: the null branch, so a recursive value ends.
            let i = if depth > 3 {
                0
            } else {
                rng.gen_range(0..u.variants().len())
            };
            Value::Union(
                i as u32,
                Box::new(random_value(rng, &u.variants()[i], root, depth + 1)),
            )
        }
        Schema::Record(r) => Value::Record(
            r.fields
                .iter()
                .map(|f| (f.name.clone(), random_value(rng, &f.schema, root, depth + 1)))
                .collect(),
        ),
        Schema::Ref { .. } => random_value(rng, root, root, depth + 1),
        other => panic!("no random value of {other:?}"),
    }
}

/// The line read back into Avro (`encode::from_json`) walks to the same line, byte for byte: for every kind of value
/// of the every-type record above, for random values of the differential test's recursive schema, and
/// byte for byte for events.
#[test]
fn lines_read_back_into_avro_are_the_same_records() {
    use super::encode::from_json;
    let round_trip = |p: &Plan, datum: &[u8]| {
        let mut first = Vec::new();
        json_line(p, datum, &mut first).unwrap_or_else(|e| panic!("{e}"));
        let json: serde_json::Value = serde_json::from_slice(&first).unwrap_or_else(|e| panic!("{e}"));
        let mut back = Vec::new();
        from_json(p, &json, &mut back).unwrap_or_else(|e| panic!("{e}: {json}"));
        let mut second = Vec::new();
        json_line(p, &back, &mut second).unwrap_or_else(|e| panic!("{e}"));
        // Byte for byte: serde_json keeps a map's entries in the line's order (`preserve_order`), so
        // a replayed row's JSON of a map is the live row's.
        assert_eq!(String::from_utf8_lossy(&second), String::from_utf8_lossy(&first));
        back
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for shape in [Shape::V1, Shape::V2] {
        let s = schema(if shape == Shape::V1 {
            crate::event::SCHEMA_V1
        } else {
            crate::event::SCHEMA_V2
        });
        let p = plan(&s);
        for _ in 0..2_000 {
            let mut avro = Vec::new();
            fast_avro::encode_event(&random_event(&mut rng, shape), shape, &mut avro);
            assert_eq!(round_trip(&p, &avro), avro, "events: byte for byte");
        }
    }
    let s = schema(RECURSIVE);
    let p = plan(&s);
    for _ in 0..5_000 {
        let framed =
            crate::wire::encode(1, &s, random_value(&mut rng, &s, &s, 0)).unwrap_or_else(|e| panic!("{e}"));
        round_trip(&p, &framed[crate::wire::HEADER_LEN..]);
    }
}

#[test]
fn a_record_that_does_not_fit_is_refused_naming_the_field() {
    use super::encode::from_json;
    let p = plan(&schema(
        r#"{"type":"record","name":"R","fields":[
        {"name":"id","type":"long"},
        {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
        {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"note","type":["null","string"],"default":null},
        {"name":"tier","type":"int","default":3},
        {"name":"inner","type":{"type":"record","name":"I","fields":[{"name":"xs","type":{"type":"array","items":"int"}}]}}]}"#,
    ));
    let encode = |text: &str| {
        let json: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        let mut out = b"kept".to_vec();
        let r = from_json(&p, &json, &mut out).map_err(|e| e.to_string());
        if r.is_err() {
            assert_eq!(out, b"kept", "nothing written for a refused record");
        }
        r.map(|()| out[4..].to_vec())
    };
    let good = r#"{"id":1,"price":"-12.5","at":"2026-01-01T00:00:00.123Z","inner":{"xs":[1,2]}}"#;
    let datum = encode(good).unwrap_or_else(|e| panic!("{e}"));
    let mut line = Vec::new();
    json_line(&p, &datum, &mut line).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        String::from_utf8_lossy(&line),
        r#"{"id":1,"price":"-12.50","at":"2026-01-01T00:00:00.123Z","tier":3,"inner":{"xs":[1,2]}}"#,
        "a left-out field takes its default"
    );
    for (text, error) in [
        (
            r#"{"id":1,"price":"1.234","at":0,"inner":{"xs":[]}}"#,
            r#"price: expected a decimal with at most 2 digits after the point, got "1.234""#,
        ),
        (r#"{"id":1,"price":"1","inner":{"xs":[]}}"#, "at: is missing"),
        (
            r#"{"id":1,"price":"1","at":"2026-01-01T00:00:00.1234Z","inner":{"xs":[]}}"#,
            r#"at: expected a timestamp (YYYY-MM-DDTHH:MM:SS.fffZ) in the unit's precision, got "2026-01-01T00:00:00.1234Z""#,
        ),
        (
            r#"{"id":1,"price":"1","at":0,"inner":{"xs":[1,"2"]}}"#,
            r#"inner.xs[1]: expected an int, got "2""#,
        ),
        (
            r#"{"id":1,"price":"1","at":0,"inner":{"xs":[]},"color":"red"}"#,
            r#"the record: "color" is not a field of R"#,
        ),
        (
            r#"{"id":1,"price":"1","at":0,"note":5,"inner":{"xs":[]}}"#,
            "note: expected a string, got 5",
        ),
        (r#"[1]"#, "the record: expected an object (record R), got [1]"),
    ] {
        assert_eq!(encode(text), Err(error.to_owned()), "{text}");
    }
}
