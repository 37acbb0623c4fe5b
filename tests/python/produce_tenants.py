"""Sales of several tenants in one topic, written by Confluent's client: record i belongs to tenant
TENANTS[i % len(TENANTS)], except every 50th, which has none (null). Version 2 of the schema adds an
optional `region` field ("eu" when i is even).

    produce_tenants.py BROKERS REGISTRY_URL TOPIC START N VERSION TENANTS(comma-separated)
        -> JSON {"by_tenant": {tenant: count}, "none": count, "eu": {tenant: count}}

Called by tests/it/pipeline_python_producer.rs.
"""
import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

FIELDS = [
    {"name": "sale_id", "type": "long"},
    {"name": "tenant", "type": ["null", "string"], "default": None},
    {"name": "cents", "type": "long"},
    {"name": "sold_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
]
REGION = {"name": "region", "type": ["null", "string"], "default": None}
AT = 1_767_225_600_000  # 2026-01-01T00:00:00Z, ms


def main():
    brokers, registry_url, topic, start, n, version, tenants = sys.argv[1:8]
    start, n, tenants = int(start), int(n), tenants.split(",")
    fields = FIELDS + ([REGION] if version == "2" else [])
    schema = {"type": "record", "name": "Sale", "namespace": "shop.v1", "fields": fields}
    serialize = AvroSerializer(SchemaRegistryClient({"url": registry_url}), json.dumps(schema))
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    ctx = SerializationContext(topic, MessageField.VALUE)
    failed = []

    def delivered(err, _msg):
        if err is not None:
            failed.append(str(err))

    out = {"by_tenant": {}, "none": 0, "eu": {}}
    for i in range(start, start + n):
        tenant = None if i % 50 == 0 else tenants[i % len(tenants)]
        sale = {"sale_id": i, "tenant": tenant, "cents": i * 3, "sold_at": AT + i}
        if version == "2":
            sale["region"] = "eu" if i % 2 == 0 else None
        producer.produce(topic, key=str(i), value=serialize(sale, ctx), on_delivery=delivered)
        producer.poll(0)
        if tenant is None:
            out["none"] += 1
            continue
        out["by_tenant"][tenant] = out["by_tenant"].get(tenant, 0) + 1
        if sale.get("region") == "eu":
            out["eu"][tenant] = out["eu"].get(tenant, 0) + 1
    producer.flush(60)
    if failed:
        sys.exit(f"not delivered: {failed[:3]}")
    print(json.dumps(out))


main()
