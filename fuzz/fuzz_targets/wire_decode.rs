//! Any bytes as a Kafka record value: Confluent framing, Avro decoding (with and without a reader
//! schema), then the Event, and back through the producer's fast writer. Errors are expected; a panic
//! is a bug, and so is any disagreement between the paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nrt_pipeline::event::Event;
use nrt_pipeline::fast_avro::Shape;
use nrt_pipeline::wire;

#[path = "common.rs"]
mod common;
use common::schema;

fuzz_target!(|data: &[u8]| {
    let Ok((id, avro)) = wire::split(data) else {
        return;
    };
    // Odd schema ids stand for events.v2, even ones for events.v1: both fast writers get fuzzed.
    let shape = if id % 2 == 1 { Shape::V2 } else { Shape::V1 };
    let schema = schema(shape);

    // As the consumer reads: writer schema resolved into the reader schema.
    let resolved = wire::decode(id, avro, schema, Some(schema))
        .ok()
        .and_then(|value| Event::from_avro(value).ok());
    // The writer's datum as it is, without resolution.
    let raw = wire::decode(id, avro, schema, None)
        .ok()
        .and_then(|value| Event::from_avro(value).ok());

    if let (Some(a), Some(b)) = (&resolved, &raw) {
        assert_eq!(a, b, "the same record gives two events with and without the reader schema");
    }

    // An event that was read must come back unchanged through our own encoder.
    if let Some(event) = resolved.or(raw) {
        let bytes = match wire::encode(id, schema, event.to_avro_in(schema)) {
            Ok(b) => b,
            Err(e) => panic!("decoded event {event:?} does not encode again: {e}"),
        };
        // The producer's fast writer writes apache-avro's bytes.
        assert_eq!(wire::encode_fast(id, shape, std::slice::from_ref(&event))[0], bytes, "encode_fast differs for {event:?}");
        let again = wire::split(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|(id2, avro2)| {
                assert_eq!(id2, id);
                wire::decode(id2, avro2, schema, Some(schema)).map_err(|e| e.to_string())
            })
            .and_then(|value| Event::from_avro(value).map_err(|e| e.to_string()));
        match again {
            Ok(back) => assert_eq!(back, event, "re-encoded event decodes differently"),
            Err(e) => panic!("re-encoded event {event:?} does not decode: {e}"),
        }
    }
});
