//! The CPU cost of each stage an event goes through, single-threaded, on a seeded stream, with
//! Criterion: `cargo bench --bench codec` (release profile). Throughput is per event (elements/s);
//! Criterion keeps the last run in `target/criterion` and prints the change against it, which is how
//! the before/after figures in docs/benchmarks.md were taken. No timing thresholds here.

use std::hint::black_box;
use std::sync::Arc;

use apache_avro::Schema;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nrt_pipeline::actors::messages::Batch;
use nrt_pipeline::event::{Event, EventRow, Millis, SCHEMA_V1};
use nrt_pipeline::fast_avro::Shape;
use nrt_pipeline::mock_api::Generator;
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
    let mut decoders = wire::Decoders::new(v1.clone());
    decoders.learn(7, v1.clone());
    // The same records read through an evolved writer schema (resolution on every record).
    let mut evolved = wire::Decoders::new(v1.clone());
    evolved.learn(
        7,
        schema(&SCHEMA_V1.replacen("\"doc\"", "\"aliases\": [], \"doc\"", 1)),
    );
    let batch = Batch {
        topic: "t".into(),
        partition: 0,
        epoch: 1,
        first_offset: 0,
        last_offset: EVENTS as i64 - 1,
        events: events
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, e)| (i as i64, e))
            .collect(),
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
    g.bench_function("reader: split + decode + from_avro", |b| {
        b.iter(|| {
            for record in &records {
                let decoded = wire::split(record).and_then(|(id, avro)| decoders.decode(id, avro));
                black_box(decoded.ok().map(Event::from_avro));
            }
        })
    });
    g.bench_function("reader: split + decode_event (fast path)", |b| {
        b.iter(|| {
            for record in &records {
                let decoded = wire::split(record).map(|(id, avro)| decoders.decode_event(id, avro));
                black_box(decoded.ok());
            }
        })
    });
    g.bench_function("reader, writer schema differs: + resolve", |b| {
        b.iter(|| {
            for record in &records {
                let decoded = wire::split(record).and_then(|(id, avro)| evolved.decode(id, avro));
                black_box(decoded.ok().map(Event::from_avro));
            }
        })
    });
    g.bench_function("minio: JSONL body", |b| {
        b.iter(|| black_box(nrt_pipeline::actors::minio_writer::jsonl(&batch).len()))
    });
    // The row the clickhouse crate serializes to RowBinary (its serializer is private to it; the
    // insert as a whole is in scripts/bench.sh's per-process CPU figures).
    g.bench_function("clickhouse: EventRow", |b| {
        b.iter(|| {
            let now = Millis::now();
            for (o, e) in &batch.events {
                black_box(EventRow::new(e, now, 0, *o));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
