"""An independent producer: Confluent's Python Producer + AvroSerializer writes N events to a topic,
with a writer schema that is events.v1 plus one optional field, as a newer upstream service would.

    produce_evolved.py BROKERS REGISTRY_URL TOPIC SCHEMA_PATH N   -> JSON {"ids": [...], "schema_id": id}

Called by tests/it/pipeline_python_producer.rs, which checks that our consumer lands every event.
"""
import datetime
import decimal
import json
import sys
import uuid

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main(argv):
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    brokers, registry_url, topic, schema_path, n = argv[1], argv[2], argv[3], argv[4], int(argv[5])
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    schema["fields"].append({"name": "channel", "type": ["null", "string"], "default": None,
                             "doc": "Added by a newer writer; unknown to nrt's reader schema."})
    client = SchemaRegistryClient({"url": registry_url})
    serializer = AvroSerializer(client, json.dumps(schema))
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all"})
    ctx = SerializationContext(topic, MessageField.VALUE)
    failures = []
    ids = []
    start = datetime.datetime(2026, 2, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
    for i in range(n):
        event_id = str(uuid.uuid4())
        event = {
            "event_id": event_id,
            "type": "purchase" if i % 2 else "view",
            "user_id": 1000 + i,
            "amount": decimal.Decimal(i * 7) / 100 if i % 2 else decimal.Decimal("0.00"),
            "currency": "EUR",
            "created_at": start + datetime.timedelta(milliseconds=i),
            "channel": "mobile" if i % 3 else None,
        }
        producer.produce(topic, key=event_id, value=serializer(event, ctx),
                         on_delivery=lambda err, msg: err and failures.append(str(err)))
        ids.append(event_id)
        producer.poll(0)
    left = producer.flush(30)
    if left or failures:
        print(f"undelivered: {left}, failures: {failures[:3]}", file=sys.stderr)
        return 1
    print(json.dumps({"ids": ids, "schema_id": client.get_latest_version(f"{topic}-value").schema_id}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
