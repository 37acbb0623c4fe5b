"""Hostile but valid Avro: Confluent's Python Producer + AvroSerializer writes N ordinary events with
`created_at` values interleaved that no careful producer would send but any buggy one may: nanoseconds
or microseconds in a timestamp-millis field, times before 1970, after ClickHouse DateTime's end
(2106-02-07 06:28:15 UTC), the extremes of long, and the exact edges that are still fine.

    produce_hostile.py BROKERS REGISTRY_URL TOPIC SCHEMA_PATH N
        -> JSON {"good": [ids], "hostile": [{"id": id, "created_at": ms}, ...]}

Called by tests/it/hostile_input.rs, which checks where each of them ends up.
"""
import decimal
import json
import sys
import uuid

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

LAST_DATETIME_MS = 4_294_967_295_999  # 2106-02-07T06:28:15.999Z
HOSTILE = [
    1_767_225_600_000_000_000,  # nanoseconds (2026)
    1_767_225_600_123_456_789,
    1_767_225_600_000_000,  # microseconds (2026)
    -1,
    -86_400_000,
    -62_135_596_800_000,  # year 1
    LAST_DATETIME_MS + 1,
    4_398_046_511_104_000,
    253_402_300_800_000,  # year 10000
    2**63 - 1,
    -(2**63),
    2**62,
    -(2**62),
    9_999_999_999_999_999,
    # Still representable: these must land in both sinks with the exact value.
    0,
    1,
    LAST_DATETIME_MS,
    LAST_DATETIME_MS - 999,
]


def main(argv):
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    brokers, registry_url, topic, schema_path, n = argv[1], argv[2], argv[3], argv[4], int(argv[5])
    with open(schema_path, encoding="utf-8") as f:
        schema = f.read()
    serializer = AvroSerializer(SchemaRegistryClient({"url": registry_url}), schema)
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all"})
    ctx = SerializationContext(topic, MessageField.VALUE)
    failures, good, hostile = [], [], []
    every = max(1, n // len(HOSTILE))

    def send(created_at):
        event_id = str(uuid.uuid4())
        event = {"event_id": event_id, "type": "view", "user_id": 7, "amount": decimal.Decimal("0.00"),
                 "currency": "EUR", "created_at": created_at}
        producer.produce(topic, key=event_id, value=serializer(event, ctx),
                         on_delivery=lambda err, msg: err and failures.append(str(err)))
        producer.poll(0)
        return event_id

    start_ms = 1_767_225_600_000
    for i in range(n):
        if i % every == every // 2 and len(hostile) < len(HOSTILE):
            value = HOSTILE[len(hostile)]
            hostile.append({"id": send(value), "created_at": value})
        good.append(send(start_ms + i))
    left = producer.flush(30)
    if left or failures or len(hostile) != len(HOSTILE):
        print(f"undelivered: {left}, failures: {failures[:3]}, hostile: {len(hostile)}", file=sys.stderr)
        return 1
    print(json.dumps({"good": good, "hostile": hostile}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
