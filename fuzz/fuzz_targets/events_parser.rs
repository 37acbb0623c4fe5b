//! Any bytes as the body of `GET /events`: JSON parsing and validation, then every valid event through
//! the Avro wire format and back (what the poller and the Kafka producer/consumer do), and through JSON
//! again (the MinIO JSONL form). Parse errors are expected; a panic or a round-trip mismatch is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nrt_pipeline::event::{parse_each, parse_events};
use nrt_pipeline::event::Event;
use nrt_pipeline::fast_avro::Shape;
use nrt_pipeline::wire;

#[path = "common.rs"]
mod common;
use common::schema;

fuzz_target!(|data: &[u8]| {
    let Ok((events, invalid)) = parse_events(data) else {
        assert!(parse_each(data).is_err(), "only the element-by-element parser accepts the body");
        return;
    };
    // The one-pass parse must give what the element-by-element one gives.
    match parse_each(data) {
        Ok((each, each_invalid)) => {
            assert_eq!(each, events, "the two parsers give different events");
            assert_eq!(each_invalid.len(), invalid.len(), "the two parsers refuse different events");
        }
        Err(e) => panic!("only the one-pass parser accepts the body: {e}"),
    }
    // events.v2: the newest schema carries every field the events API may send.
    let schema = schema(Shape::V2);
    for event in &events {
        // The hand-written JSONL line is serde's.
        let mut line = Vec::new();
        event.write_json(&mut line);
        match serde_json::to_vec(event) {
            Ok(serde) => assert_eq!(line, serde, "write_json differs from serde for {event:?}"),
            Err(e) => panic!("event {event:?} does not serialize to JSON: {e}"),
        }
        // Avro: a validated event must encode, and decode to the same event.
        let bytes = match wire::encode(1, schema, event.to_avro_in(schema)) {
            Ok(b) => b,
            Err(e) => panic!("valid event {event:?} does not encode: {e}"),
        };
        // The producer's fast writer writes apache-avro's bytes.
        assert_eq!(wire::encode_fast(1, Shape::V2, std::slice::from_ref(event))[0], bytes, "encode_fast differs for {event:?}");
        let back = wire::split(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|(id, avro)| {
                assert_eq!(id, 1);
                wire::decode(id, avro, schema, Some(schema)).map_err(|e| e.to_string())
            })
            .and_then(|value| Event::from_avro(value).map_err(|e| e.to_string()));
        match back {
            Ok(back) => assert_eq!(&back, event, "Avro round trip changed the event"),
            Err(e) => panic!("encoded event {event:?} does not decode: {e}"),
        }
    }

    // JSON: what we write (JSONL) must read back as the same events, all valid.
    if !events.is_empty() {
        let json = match serde_json::to_vec(&events) {
            Ok(j) => j,
            Err(e) => panic!("events {events:?} do not serialize to JSON: {e}"),
        };
        match parse_events(&json) {
            Ok((again, invalid)) => {
                assert!(invalid.is_empty(), "re-serialized events are invalid: {invalid:?}");
                assert_eq!(again, events, "JSON round trip changed the events");
            }
            Err(e) => panic!("re-serialized events do not parse: {e}"),
        }
    }
});
