"""Reads a whole topic with Confluent's Python consumer and AvroDeserializer, the reference client.

    read_topic.py BOOTSTRAP REGISTRY_URL TOPIC   -> JSON on stdout:
        {"records": N, "schema_ids": {"1": n1, ...}, "with_country": k, "with_session_id": s,
         "ids": [event_id, ...], "errors": ["..."]}

Every record goes through the deserializer with the schema its own id names (no reader schema): a v1
record comes out without the v2 fields, a v2 record with them. Committed records only (read_committed).
Called by tests/it/evolution.rs.
"""
import json
import sys
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap, registry, topic = argv[1:]
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry}))
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "read-topic-" + uuid.uuid4().hex,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
    })
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    # Skip empty partitions up front: they never report EOF when nothing is in them.
    pending = set()
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            pending.add(p)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    out = {"records": 0, "schema_ids": {}, "with_country": 0, "with_session_id": 0, "ids": [], "errors": []}
    idle = 0
    while pending and idle < 30:
        msg = consumer.poll(1.0)
        if msg is None:
            idle += 1
            continue
        idle = 0
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                pending.discard(msg.partition())
            else:
                out["errors"].append(str(msg.error()))
            continue
        value = msg.value()
        schema_id = str(int.from_bytes(value[1:5], "big"))
        out["schema_ids"][schema_id] = out["schema_ids"].get(schema_id, 0) + 1
        try:
            record = deserializer(value, SerializationContext(topic, MessageField.VALUE))
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails on any
            out["errors"].append(f"p{msg.partition()} o{msg.offset()}: {e}")
            continue
        out["records"] += 1
        out["ids"].append(str(record["event_id"]))
        out["with_country"] += record.get("country") is not None
        out["with_session_id"] += record.get("session_id") is not None
    if pending:
        out["errors"].append(f"partitions {sorted(pending)} not read to their end")
    consumer.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
