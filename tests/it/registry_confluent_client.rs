//! The independent reference: Confluent's own Python client (SchemaRegistryClient, AvroSerializer,
//! AvroDeserializer from PyPI) against a real `nrt registry`, and bytes crossing between its codec and
//! ours in both directions.
#![cfg(feature = "integration")]

use crate::common;

use std::process::Command;
use std::time::Duration;

use apache_avro::types::Value;
use apache_avro::Decimal;
use serde_json::{json, Value as Json};

use common::RegistryProcess;
use nrt_pipeline::config::RegistryConfig;
use nrt_pipeline::registry::RegistryClient;
use nrt_pipeline::wire;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/confluent_compat.py");

fn python(args: &[&str]) -> Json {
    let python = std::env::var("NRT_PYTHON").unwrap_or_else(|_| {
        panic!(
            "NRT_PYTHON is not set: it must name a python with confluent-kafka[avro,schemaregistry] \
             (tests/python/requirements.txt); scripts/test.sh installs one and sets it"
        )
    });
    let out = Command::new(&python)
        .arg(SCRIPT)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        out.status.success(),
        "{SCRIPT} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// EVENT of the Python script, as apache-avro values.
fn expected_event() -> Value {
    let id = uuid::Uuid::parse_str("6f1c2a4e-8b0d-4c8e-9a57-3f4f1d2e7b10").unwrap_or_default();
    Value::Record(vec![
        ("event_id".into(), Value::Uuid(id)),
        ("type".into(), Value::String("purchase".into())),
        ("user_id".into(), Value::Long(42)),
        // 123.45 at scale 2: unscaled 12345 = 0x3039, minimal two's complement.
        ("amount".into(), Value::Decimal(Decimal::from(vec![0x30, 0x39]))),
        ("currency".into(), Value::String("EUR".into())),
        ("created_at".into(), Value::TimestampMillis(1_795_771_800_123)),
        (
            "note".into(),
            Value::Union(1, Box::new(Value::String("é and ü".into()))),
        ),
    ])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("bad hex {s}: {e}")))
        .collect()
}

#[tokio::test]
async fn confluent_python_client_and_serializer_interoperate() {
    let reg = RegistryProcess::start();
    let subject = "events.v1-value";
    let seen = python(&["produce", &reg.url, subject]);

    assert_eq!(seen["id"], 1, "{seen}");
    assert_eq!(
        seen["id_again"], 1,
        "re-registering a reformatted schema must return its id: {seen}"
    );
    assert_eq!(seen["lookup"], json!({"id": 1, "version": 1, "subject": subject}));
    assert_eq!(seen["latest"], json!({"id": 1, "version": 1}));
    assert_eq!(seen["subjects"], json!([subject]));
    assert_eq!(seen["versions"], json!([1]));
    assert_eq!(seen["compat_global"], "BACKWARD");
    assert_eq!(seen["compatible"], true);
    assert_eq!(seen["incompatible"], false);
    assert_eq!(
        seen["register_incompatible"],
        json!({"http_status": 409, "error_code": 409})
    );
    assert_eq!(
        seen["missing_id"],
        json!({"http_status": 404, "error_code": 40403})
    );
    assert_eq!(seen["compat_subject"], "FULL");

    // Their bytes, our decoder (writer schema fetched by id through our client).
    let bytes = unhex(seen["serialized_hex"].as_str().unwrap_or_default());
    let (id, avro) = wire::split(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(id, 1);
    let cfg = RegistryConfig::at(reg.url.clone());
    let client = RegistryClient::new(&cfg, Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
    let writer = client.schema_by_id(id).await.unwrap_or_else(|e| panic!("{e}"));
    let decoded = wire::decode(id, avro, &writer, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decoded, expected_event());

    // Our bytes, their deserializer; and ours are byte-identical to theirs.
    let ours = wire::encode(id, &writer, expected_event()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hex(&ours), seen["serialized_hex"].as_str().unwrap_or_default());
    let theirs = python(&["consume", &reg.url, &hex(&ours)]);
    assert_eq!(
        theirs["deserialized"],
        json!({
            "event_id": "6f1c2a4e-8b0d-4c8e-9a57-3f4f1d2e7b10",
            "type": "purchase",
            "user_id": 42,
            "amount": "123.45",
            "currency": "EUR",
            "created_at": 1_795_771_800_123_i64,
            "note": "é and ü",
        })
    );

    // Our client sees what theirs registered.
    let latest = client.latest(subject).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((latest.id, latest.version), (1, 1));
    let same = serde_json::to_string(&*writer).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(client.register(subject, &same).await.ok(), Some(1));
}
