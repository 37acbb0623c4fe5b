"""Two record types in one topic, as Confluent's clients write them under a record subject strategy:
N orders (shop.v1.Order) and N payments (shop.v1.Payment), interleaved, each serialized by its own
AvroSerializer with `subject.name.strategy` = topic_record (subjects `<topic>-shop.v1.Order`, ...) or
record (`shop.v1.Order`, ...).

    produce_two_records.py BROKERS REGISTRY_URL TOPIC N STRATEGY START
        (records START .. START+N)
        -> JSON {"subjects": [...], "orders": [order_id...], "payments": [payment_id...]}

Called by tests/it/pipeline_e2e.rs.
"""
import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import (
    SchemaRegistryClient,
    record_subject_name_strategy,
    topic_record_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

ORDER = {
    "type": "record",
    "name": "Order",
    "namespace": "shop.v1",
    "fields": [
        {"name": "order_id", "type": "long"},
        {"name": "customer", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
PAYMENT = {
    "type": "record",
    "name": "Payment",
    "namespace": "shop.v1",
    "fields": [
        {"name": "payment_id", "type": "string"},
        {"name": "order_id", "type": "long"},
        {"name": "cents", "type": "long"},
        {"name": "paid_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
AT = 1_767_225_600_000  # 2026-01-01T00:00:00Z, ms


def main():
    brokers, registry_url, topic, n, strategy, start = sys.argv[1:7]
    n, start = int(n), int(start)
    naming = {"record": record_subject_name_strategy, "topic_record": topic_record_subject_name_strategy}[strategy]
    registry = SchemaRegistryClient({"url": registry_url})
    conf = {"subject.name.strategy": naming}
    orders = AvroSerializer(registry, json.dumps(ORDER), conf=conf)
    payments = AvroSerializer(registry, json.dumps(PAYMENT), conf=conf)
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    ctx = SerializationContext(topic, MessageField.VALUE)
    failed = []

    def delivered(err, _msg):
        if err is not None:
            failed.append(str(err))

    out = {"orders": [], "payments": []}
    for i in range(start, start + n):
        order = {"order_id": i, "customer": f"c{i % 17}", "amount": i * 1.25, "placed_at": AT + i * 10}
        producer.produce(topic, key=f"o{i}", value=orders(order, ctx), on_delivery=delivered)
        payment = {"payment_id": f"p{i}", "order_id": i, "cents": i * 125, "paid_at": AT + i * 10 + 5}
        producer.produce(topic, key=f"p{i}", value=payments(payment, ctx), on_delivery=delivered)
        out["orders"].append(i)
        out["payments"].append(f"p{i}")
        producer.poll(0)
    producer.flush(60)
    if failed:
        sys.exit(f"not delivered: {failed[:3]}")
    out["subjects"] = sorted(s for s in registry.get_subjects() if "shop.v1." in s)
    print(json.dumps(out))


main()
