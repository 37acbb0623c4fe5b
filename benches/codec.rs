//! The CPU cost of each stage an event goes through, single-threaded, on a seeded stream, with
//! Criterion: `cargo bench --bench codec` (release profile). Throughput is per event (elements/s);
//! Criterion keeps the last run in `target/criterion` and prints the change against it, which is how
//! the before/after figures in docs/benchmarks.md were taken. No timing thresholds here.

use std::hint::black_box;
use std::sync::Arc;

use apache_avro::Schema;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nrt_pipeline::actors::messages::Batch;
use nrt_pipeline::avro::Plan;
use nrt_pipeline::clickhouse::row::{RowPlan, Scratch};
use nrt_pipeline::clickhouse::table;
use nrt_pipeline::clickhouse::types::Server;
use nrt_pipeline::event::{Event, EventRow, Millis, SCHEMA_V1};
use nrt_pipeline::fast_avro::Shape;
use nrt_pipeline::mock_api::Generator;
use nrt_pipeline::record::{RecordPlan, Records};
use nrt_pipeline::wire;

const EVENTS: usize = 50_000;
const CHUNK: usize = 5_000;

fn schema(text: &str) -> Arc<Schema> {
    match Schema::parse_str(text) {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("the bench's schema does not parse: {e}"),
    }
}

fn stages(c: &mut Criterion) {
    let v1 = schema(SCHEMA_V1);
    let mut generator = Generator::seeded(1, 1_767_225_600_000);
    let events: Vec<Event> = (0..EVENTS).map(|_| generator.next_event()).collect();
    let records = match wire::encode_all(7, &v1, events.iter().map(Event::to_avro)) {
        Ok(r) => r,
        Err(e) => panic!("seeded events do not encode: {e}"),
    };
    let wire_bytes: usize = records.iter().map(Vec::len).sum();
    println!(
        "{EVENTS} seeded events, {:.1} bytes each on the wire (Confluent framing + Avro)",
        wire_bytes as f64 / EVENTS as f64
    );
    let bodies: Vec<Vec<u8>> = events
        .chunks(CHUNK)
        .map(|chunk| serde_json::to_vec(chunk).unwrap_or_default())
        .collect();
    // The same records read through an evolved writer schema (resolution on every record).
    let evolved = schema(&SCHEMA_V1.replacen("\"doc\"", "\"aliases\": [], \"doc\"", 1));
    let events_plan = record_plan(7, &v1);
    let datum_plan = std::sync::Arc::new((*events_plan).clone().keeping(nrt_pipeline::record::Keep {
        line: false,
        datum: true,
    }));
    let (mut decoded, mut scratch) = (Records::default(), Scratch::default());
    decode_all(&records, &datum_plan, &mut decoded, &mut scratch);
    let batch = Batch {
        topic: "t".into(),
        partition: 0,
        epoch: 1,
        first_offset: 0,
        last_offset: EVENTS as i64 - 1,
        records: decoded,
        dead_letters: Vec::new(),
        bytes: 0,
        ingested_at: Millis(1_767_225_600_000),
        lake: nrt_pipeline::actors::messages::LakePart::Write,
    };

    let mut g = c.benchmark_group("per_event");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(8));
    g.bench_function("poller: parse /events JSON", |b| {
        b.iter(|| {
            for body in &bodies {
                black_box(nrt_pipeline::event::parse_events(body).map(|(e, _)| e.len()).ok());
            }
        })
    });
    g.bench_function("encoder: to_avro + encode_all", |b| {
        b.iter(|| {
            for chunk in events.chunks(CHUNK) {
                black_box(wire::encode_all(7, &v1, chunk.iter().map(Event::to_avro)).ok());
            }
        })
    });
    g.bench_function("encoder: encode_v1 (fast path)", |b| {
        b.iter(|| {
            for chunk in events.chunks(CHUNK) {
                black_box(wire::encode_fast(7, Shape::V1, chunk));
            }
        })
    });
    // apache-avro's Value tree: the reference the walker is proven against, for comparison.
    g.bench_function("apache-avro: split + decode + from_avro", |b| {
        b.iter(|| {
            for record in &records {
                let decoded = wire::split(record).and_then(|(id, avro)| wire::decode(id, avro, &v1, None));
                black_box(decoded.ok().map(Event::from_avro));
            }
        })
    });
    g.bench_function("apache-avro, writer schema differs: + resolve", |b| {
        b.iter(|| {
            for record in &records {
                let decoded =
                    wire::split(record).and_then(|(id, avro)| wire::decode(id, avro, &evolved, Some(&v1)));
                black_box(decoded.ok().map(Event::from_avro));
            }
        })
    });
    // The lines made from the records' datums when the batch is written.
    let jsonl = |batch: &Batch| nrt_pipeline::lake::writer::jsonl(batch).unwrap_or_default();
    g.bench_function("minio: JSONL body", |b| b.iter(|| black_box(jsonl(&batch).len())));
    // The same batch as a Parquet object (issue 27): a second walk of the Avro datums into Arrow
    // columns, then zstd. Bytes per event of both bodies printed once.
    let datums: Vec<&[u8]> = records
        .iter()
        .filter_map(|r| wire::split(r).ok())
        .map(|(_, a)| a)
        .collect();
    let parquet =
        |d: &[&[u8]]| nrt_pipeline::lake::parquet::encode(&events_plan.plan, d.iter().copied(), &[]);
    match parquet(&datums) {
        Ok(body) => println!(
            "lake body per event: JSONL {:.1} bytes, Parquet {:.1} bytes ({:.0} %)",
            jsonl(&batch).len() as f64 / EVENTS as f64,
            body.len() as f64 / EVENTS as f64,
            body.len() as f64 * 100.0 / jsonl(&batch).len() as f64
        ),
        Err(e) => panic!("seeded events do not encode to Parquet: {e}"),
    }
    g.bench_function("minio: Parquet body (walk → Arrow → zstd)", |b| {
        b.iter(|| black_box(parquet(&datums).map(|p| p.len()).unwrap_or_default()))
    });
    // The row the clickhouse crate serializes to RowBinary (its serializer is private to it; the
    // insert as a whole is in scripts/bench.sh's per-process CPU figures).
    g.bench_function("clickhouse: EventRow", |b| {
        b.iter(|| {
            let now = Millis::now();
            for (o, e) in events.iter().enumerate() {
                black_box(EventRow::new(e, now, 0, o as i64));
            }
        })
    });
    // A table routed by a field's value: the walker writes the line and the RowBinary row in one pass.
    g.bench_function("reader+sinks: walk → line + row", |b| {
        let (mut out, mut scratch) = (Records::default(), Scratch::default());
        b.iter(|| decode_all(&records, &events_plan, &mut out, &mut scratch))
    });
    // What the consumer does for a JSONL or Parquet lake (records keep their datums): the reader's
    // pass writes the row only; the lines or columns are made from the datums when written (above).
    g.bench_function("reader: walk → row, datum kept", |b| {
        let (mut out, mut scratch) = (Records::default(), Scratch::default());
        b.iter(|| decode_all(&records, &datum_plan, &mut out, &mut scratch))
    });
    g.finish();
    wide(c);
}

/// Decodes every framed record into `out` (emptied first) as the KafkaReader does.
fn decode_all(records: &[Vec<u8>], plan: &Arc<RecordPlan>, out: &mut Records, scratch: &mut Scratch) {
    out.clear();
    for (o, record) in records.iter().enumerate() {
        if let Ok((_, avro)) = wire::split(record) {
            black_box(out.decode(plan, (o as i64, b""), avro, 0, scratch).is_ok());
        }
    }
}

/// The plan of records of `schema` into the table made from it on ClickHouse 18.16.
fn record_plan(schema_id: u32, schema: &Schema) -> std::sync::Arc<RecordPlan> {
    let plan = Plan::new(schema).unwrap_or_else(|e| panic!("{e}"));
    let columns = table::columns_of(&plan, Server::LEGACY).unwrap_or_else(|e| panic!("{e}"));
    let rows = RowPlan::new(&plan, &columns, Server::LEGACY, None).unwrap_or_else(|e| panic!("{e}"));
    std::sync::Arc::new(RecordPlan::new(schema_id, plan, rows))
}

/// The wide record of `benches/wide.avsc` (48 fields: scalars, timestamps, decimals, optional strings, a
/// nested record, an array and a map; about 1 KB of Avro) through the schema-driven path: MB/s of Avro
/// per core.
fn wide(c: &mut Criterion) {
    let schema = schema(include_str!("wide.avsc"));
    let Schema::Record(r) = &*schema else {
        panic!("not a record")
    };
    let mut rng = 1u64;
    let mut next = move || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        rng >> 11
    };
    let words = [
        "alpha",
        "a somewhat longer value of text",
        "x",
        "Zürich",
        "2026-12-06",
        "ok",
    ];
    let records: Vec<Vec<u8>> = (0..20_000)
        .map(|_| {
            use apache_avro::types::Value;
            let values: Vec<(String, Value)> = r
                .fields
                .iter()
                .map(|f| {
                    let n = next();
                    let word = words[(n % words.len() as u64) as usize].to_owned();
                    let v = match &f.schema {
                        Schema::Long => Value::Long(n as i64 >> 8),
                        Schema::Double => Value::Double(n as f64 / 7.0),
                        Schema::String => Value::String(format!("{word} {n}")),
                        Schema::Union(_) => Value::Union(1, Box::new(Value::String(word))),
                        Schema::TimestampMillis => {
                            Value::TimestampMillis(1_795_771_800_000 + (n % 86_400_000) as i64)
                        }
                        Schema::Decimal(_) => Value::Decimal(apache_avro::Decimal::from(
                            ((n % 100_000_000) as i64).to_be_bytes().to_vec(),
                        )),
                        Schema::Boolean => Value::Boolean(n % 2 == 0),
                        Schema::Uuid(_) => Value::Uuid(uuid::Uuid::from_u64_pair(n, n ^ 0xabc)),
                        Schema::Array(_) => {
                            Value::Array((0..10).map(|k| Value::Long((n >> k) as i64)).collect())
                        }
                        Schema::Map(_) => Value::Map(
                            (0..5)
                                .map(|k| (format!("key{k}"), Value::String(words[k].into())))
                                .collect(),
                        ),
                        _ => Value::Record(vec![
                            ("name".into(), Value::String(word)),
                            ("age".into(), Value::Int((n % 100) as i32)),
                            (
                                "email".into(),
                                Value::Union(1, Box::new(Value::String(format!("u{n}@example.org")))),
                            ),
                        ]),
                    };
                    (f.name.clone(), v)
                })
                .collect();
            wire::encode(9, &schema, Value::Record(values)).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let bytes: usize = records.iter().map(|r| r.len() - wire::HEADER_LEN).sum();
    println!(
        "wide records: {} fields, {:.0} bytes of Avro each",
        r.fields.len(),
        bytes as f64 / records.len() as f64
    );
    let plan = record_plan(9, &schema);
    let mut g = c.benchmark_group("wide_record");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(8));
    g.bench_function("walk → line + row (bytes of Avro)", |b| {
        let (mut out, mut scratch) = (Records::default(), Scratch::default());
        b.iter(|| decode_all(&records, &plan, &mut out, &mut scratch))
    });
    // What the consumer does: the row when read (the datum kept), the lake's lines when written.
    let kept = std::sync::Arc::new((*plan).clone().keeping(nrt_pipeline::record::Keep {
        line: false,
        datum: true,
    }));
    g.bench_function("walk → row, then lines from datums (bytes of Avro)", |b| {
        let (mut out, mut scratch, mut lines) = (Records::default(), Scratch::default(), Vec::new());
        b.iter(|| {
            decode_all(&records, &kept, &mut out, &mut scratch);
            lines.clear();
            black_box(out.write_jsonl(&mut lines).is_ok());
        })
    });
    g.bench_function("apache-avro decode to Value (bytes of Avro)", |b| {
        b.iter(|| {
            for record in &records {
                black_box(
                    wire::split(record)
                        .and_then(|(id, avro)| wire::decode(id, avro, &schema, None))
                        .is_ok(),
                );
            }
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
