"""Drives nrt registry with Confluent's Python client, the reference for wire compatibility.

    confluent_compat.py produce URL SUBJECT   -> JSON: what the registry client saw, and the bytes the
                                                 AvroSerializer produced for EVENT (hex)
    confluent_compat.py consume URL HEX       -> JSON: what the AvroDeserializer made of HEX
    confluent_compat.py refused URL SUBJECT   -> JSON: the outcome of a read and of a register

A secured registry: NRT_PY_REGISTRY_BASIC_AUTH (user:password) and NRT_PY_REGISTRY_CA (a PEM file).

Called by tests/it/registry_confluent_client.rs, which checks both directions against our own codec.
"""
import datetime
import decimal
import json
import os
import sys
import uuid

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

SCHEMA = json.dumps({
    "type": "record", "name": "Event", "namespace": "nrt.events",
    "fields": [
        {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "type", "type": "string"},
        {"name": "user_id", "type": "long"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
        {"name": "currency", "type": "string"},
        {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
})
# Adds a field with a default: compatible under BACKWARD and FULL.
COMPATIBLE = json.loads(SCHEMA)
COMPATIBLE["fields"].append({"name": "channel", "type": "string", "default": "web"})
# Adds a field without a default: not BACKWARD compatible.
INCOMPATIBLE = json.loads(SCHEMA)
INCOMPATIBLE["fields"].append({"name": "channel", "type": "string"})

EVENT = {
    "event_id": "6f1c2a4e-8b0d-4c8e-9a57-3f4f1d2e7b10",
    "type": "purchase",
    "user_id": 42,
    "amount": decimal.Decimal("123.45"),
    "currency": "EUR",
    "created_at": datetime.datetime(2026, 11, 27, 9, 30, 0, 123000, tzinfo=datetime.timezone.utc),
    "note": "é and ü",
}


def plain(value):
    """JSON-friendly form of a decoded record (Decimal as text, datetime as epoch millis)."""
    out = {}
    for k, v in value.items():
        if isinstance(v, decimal.Decimal):
            v = str(v)
        elif isinstance(v, datetime.datetime):
            v = int(v.timestamp() * 1000)
        elif isinstance(v, uuid.UUID):
            v = str(v)
        out[k] = v
    return out


def registry(url):
    """Confluent's client settings; a secured registry's come from the environment."""
    conf = {"url": url}
    if os.environ.get("NRT_PY_REGISTRY_BASIC_AUTH"):
        conf["basic.auth.user.info"] = os.environ["NRT_PY_REGISTRY_BASIC_AUTH"]
    if os.environ.get("NRT_PY_REGISTRY_CA"):
        conf["ssl.ca.location"] = os.environ["NRT_PY_REGISTRY_CA"]
    return SchemaRegistryClient(conf)


def produce(url, subject):
    client = registry(url)
    out = {}
    out["id"] = client.register_schema(subject, Schema(SCHEMA, "AVRO"))
    out["id_again"] = client.register_schema(subject, Schema(json.dumps(json.loads(SCHEMA), indent=2), "AVRO"))
    found = client.lookup_schema(subject, Schema(SCHEMA, "AVRO"))
    out["lookup"] = {"id": found.schema_id, "version": found.version, "subject": found.subject}
    latest = client.get_latest_version(subject)
    out["latest"] = {"id": latest.schema_id, "version": latest.version}
    out["subjects"] = client.get_subjects()
    out["versions"] = client.get_versions(subject)
    out["compat_global"] = client.get_compatibility()
    out["compatible"] = client.test_compatibility(subject, Schema(json.dumps(COMPATIBLE), "AVRO"))
    out["incompatible"] = client.test_compatibility(subject, Schema(json.dumps(INCOMPATIBLE), "AVRO"))
    try:
        client.register_schema(subject, Schema(json.dumps(INCOMPATIBLE), "AVRO"))
        out["register_incompatible"] = "accepted"
    except SchemaRegistryError as e:
        out["register_incompatible"] = {"http_status": e.http_status_code, "error_code": e.error_code}
    try:
        client.get_schema(987654)
        out["missing_id"] = "found"
    except SchemaRegistryError as e:
        out["missing_id"] = {"http_status": e.http_status_code, "error_code": e.error_code}
    client.set_compatibility(subject_name=subject, level="FULL")
    out["compat_subject"] = client.get_compatibility(subject)

    serializer = AvroSerializer(client, SCHEMA, conf={"auto.register.schemas": False, "use.latest.version": False})
    ctx = SerializationContext(subject.removesuffix("-value"), MessageField.VALUE)
    out["serialized_hex"] = serializer(EVENT, ctx).hex()
    return out


def refused(url, subject):
    """What the registry answers to a read and to a register, as Confluent's client reports it."""
    client = registry(url)
    out = {}
    for name, call in (("read", lambda: client.get_subjects()),
                       ("write", lambda: client.register_schema(subject, Schema(SCHEMA, "AVRO")))):
        try:
            out[name] = {"ok": call()}
        except SchemaRegistryError as e:
            out[name] = {"http_status": e.http_status_code, "error_code": e.error_code}
    return out


def consume(url, hex_bytes):
    client = registry(url)
    deserializer = AvroDeserializer(client)
    ctx = SerializationContext("events.v1", MessageField.VALUE)
    return {"deserialized": plain(deserializer(bytes.fromhex(hex_bytes), ctx))}


def main(argv):
    modes = {"produce": produce, "consume": consume, "refused": refused}
    if len(argv) != 4 or argv[1] not in modes:
        print(__doc__, file=sys.stderr)
        return 2
    result = modes[argv[1]](argv[2], argv[3])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
