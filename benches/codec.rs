//! The CPU cost of each stage an event goes through, single-threaded, on a seeded stream:
//! `cargo bench --bench codec` (release profile). Prints events/s and ns/event per stage; no timing
//! thresholds here — the figures go into the README and the closing notes.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::Schema;
use nrt_pipeline::actors::messages::Batch;
use nrt_pipeline::event::{Event, EventRow, Millis, SCHEMA_V1};
use nrt_pipeline::mock_api::Generator;
use nrt_pipeline::wire;

const EVENTS: usize = 200_000;
const CHUNK: usize = 5_000;

fn measure(stage: &str, events: usize, mut f: impl FnMut()) {
    f(); // warm-up
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    let per_event = best.as_nanos() as f64 / events as f64;
    println!(
        "{stage:<40} {:>12.0} events/s {:>9.0} ns/event",
        events as f64 / best.as_secs_f64(),
        per_event
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schema = Schema::parse_str(SCHEMA_V1)?;
    let mut generator = Generator::seeded(1, 1_767_225_600_000);
    let events: Vec<Event> = (0..EVENTS).map(|_| generator.next_event()).collect();
    let records = wire::encode_all(7, &schema, events.iter().map(Event::to_avro))?;
    let wire_bytes: usize = records.iter().map(Vec::len).sum();
    println!(
        "{EVENTS} seeded events, {:.1} bytes each on the wire (Confluent framing + Avro)",
        wire_bytes as f64 / EVENTS as f64
    );

    measure("poller: parse /events JSON", EVENTS, || {
        for chunk in events.chunks(CHUNK) {
            let body = serde_json::to_vec(chunk).unwrap_or_default();
            black_box(
                nrt_pipeline::event::parse_events(&body)
                    .map(|(e, _)| e.len())
                    .ok(),
            );
        }
    });
    measure("encoder: to_avro + encode_all", EVENTS, || {
        for chunk in events.chunks(CHUNK) {
            black_box(wire::encode_all(7, &schema, chunk.iter().map(Event::to_avro)).ok());
        }
    });
    let mut decoders = wire::Decoders::new(Arc::new(schema.clone()));
    decoders.learn(7, Arc::new(schema.clone()));
    measure("reader: split + decode + from_avro", EVENTS, || {
        for record in &records {
            let decoded = wire::split(record).and_then(|(id, avro)| decoders.decode(id, avro));
            black_box(decoded.ok().map(Event::from_avro));
        }
    });
    measure("reader: split + decode_event (fast path)", EVENTS, || {
        for record in &records {
            let decoded = wire::split(record).map(|(id, avro)| decoders.decode_event(id, avro));
            black_box(decoded.ok());
        }
    });
    // The same records read through an evolved writer schema (resolution on every record).
    let mut evolved = wire::Decoders::new(Arc::new(Schema::parse_str(SCHEMA_V1)?));
    evolved.learn(
        7,
        Arc::new(Schema::parse_str(&SCHEMA_V1.replacen(
            "\"doc\"",
            "\"aliases\": [], \"doc\"",
            1,
        ))?),
    );
    measure("reader, writer schema differs: + resolve", EVENTS, || {
        for record in &records {
            let decoded = wire::split(record).and_then(|(id, avro)| evolved.decode(id, avro));
            black_box(decoded.ok().map(Event::from_avro));
        }
    });
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
        bytes: wire_bytes,
    };
    measure("minio: JSONL body", EVENTS, || {
        black_box(nrt_pipeline::actors::minio_writer::jsonl(&batch).len());
    });
    measure("clickhouse: EventRow", EVENTS, || {
        let now = Millis::now();
        let rows: Vec<EventRow> = batch
            .events
            .iter()
            .map(|(o, e)| EventRow::new(e, now, 0, *o))
            .collect();
        black_box(rows.len());
    });
    Ok(())
}
