"""An independent writer and decoder of every Avro type: Confluent's Python Producer + AvroSerializer
writes N seeded records of tests/fixtures/every_type.avsc; fastavro decodes each record's bytes again,
and from that decoding this script computes, on its own, what nrt must make of it: the lake line (the
mapping of docs/data.md, "The lake's JSON") and the ClickHouse values of "The warehouse's columns"
(18.16), as the test's SELECT renders them.

    produce_every_type.py BROKERS REGISTRY_URL TOPIC SCHEMA_PATH N SEED
        -> JSON {"schema_id": id, "lines": [...], "clickhouse": [...]}, in the order produced

Called by tests/it/pipeline_python_producer.rs (one partition: produced order is offset order).
"""
import base64
import datetime
import decimal
import io
import json
import random
import struct
import sys
import uuid

import fastavro
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
AT = 1_767_225_600_000  # 2026-01-01T00:00:00Z, ms


def record(rng, i):
    # A stream's times: a few ms apart (a batch spans few hours; each hour more costs the lake a reference).
    at_ms = AT + i * 10 + rng.randrange(10)
    scale = lambda v, s: decimal.Decimal(v).scaleb(-s)
    return {
        "id": i,
        "nothing": None,
        "flag": rng.random() < 0.5,
        "small": rng.randrange(-2**31, 2**31),
        "big": rng.randrange(-2**63, 2**63),
        "ratio": struct.unpack("<f", struct.pack("<f", rng.uniform(-1e6, 1e6)))[0],
        "precise": rng.uniform(-1e12, 1e12),
        "blob": bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12))),
        "label": rng.choice(["", "plain", "quote \" and \\ backslash", "ünïcödé ✓", "tab\tnew\nline"]),
        "inner": {"a": rng.randrange(-1000, 1000), "b": rng.choice([None, "x", "why"])},
        "colour": rng.choice(["RED", "GREEN", "BLUE"]),
        "tags": [rng.randrange(-10**12, 10**12) for _ in range(rng.randrange(0, 4))],
        "attrs": {f"k{j}": f"v{rng.randrange(100)}" for j in range(rng.randrange(0, 3))},
        "either": rng.choice([None, rng.randrange(-10**6, 10**6), f"s{rng.randrange(100)}"]),
        "code": bytes(rng.randrange(256) for _ in range(4)),
        "price": scale(rng.randrange(-10**12 + 1, 10**12), 3),
        "price_fixed": scale(rng.randrange(-10**18 + 1, 10**18), 2),
        "uid": str(uuid.UUID(int=rng.getrandbits(128))),
        "day": rng.randrange(0, 49_711),
        "t_ms": rng.randrange(0, 86_400_000),
        "t_us": rng.randrange(0, 86_400_000_000),
        "at_ms": at_ms,
        "at_us": at_ms * 1000 + rng.randrange(1000),
        "at_ns": at_ms * 1_000_000 + rng.randrange(1_000_000),
        "local_ms": at_ms,
        "local_us": at_ms * 1000 + rng.randrange(1000),
        "local_ns": at_ms * 1_000_000 + rng.randrange(1_000_000),
        "span": struct.pack("<III", rng.randrange(100), rng.randrange(1000), rng.randrange(2**32)),
        "maybe_at": rng.choice([None, at_ms + 1]),
    }


def iso(count, per_second, digits, zone):
    """A count of units since the epoch, as the lake writes it (docs/data.md)."""
    seconds, fraction = divmod(count, per_second)
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + "." + str(fraction).zfill(digits) + zone


def count_of(value, per_second):
    """fastavro gives timestamps back as datetimes (or, for types it does not know, as the count)."""
    if isinstance(value, int):
        return value
    naive = value.replace(tzinfo=None)
    delta = naive - datetime.datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * per_second + delta.microseconds * per_second // 1_000_000


def time_of_day(value, per_second, digits):
    if isinstance(value, datetime.time):
        value = ((value.hour * 60 + value.minute) * 60 + value.second) * per_second + \
            value.microsecond * per_second // 1_000_000
    seconds, fraction = divmod(value, per_second)
    return f"{seconds // 3600:02}:{seconds // 60 % 60:02}:{seconds % 60:02}.{str(fraction).zfill(digits)}"


def b64(b):
    return base64.b64encode(b).decode()


def line(d):
    """The lake line of a decoded record: null record fields left out."""
    months, days, millis = struct.unpack("<III", d["span"])
    out = {
        "id": d["id"],
        "flag": d["flag"],
        "small": d["small"],
        "big": d["big"],
        "ratio": d["ratio"],
        "precise": d["precise"],
        "blob": b64(d["blob"]),
        "label": d["label"],
        "inner": {k: v for k, v in d["inner"].items() if v is not None},
        "colour": d["colour"],
        "tags": d["tags"],
        "attrs": d["attrs"],
        "either": d["either"],
        "code": b64(d["code"]),
        "price": f"{d['price']:.3f}",
        "price_fixed": f"{d['price_fixed']:.2f}",
        "uid": str(d["uid"]),
        "day": (EPOCH.date() + datetime.timedelta(days=d["day"])).isoformat() if isinstance(d["day"], int)
        else d["day"].isoformat(),
        "t_ms": time_of_day(d["t_ms"], 1000, 3),
        "t_us": time_of_day(d["t_us"], 1_000_000, 6),
        "at_ms": iso(count_of(d["at_ms"], 1000), 1000, 3, "Z"),
        "at_us": iso(count_of(d["at_us"], 1_000_000), 1_000_000, 6, "Z"),
        "at_ns": iso(count_of(d["at_ns"], 10**9), 10**9, 9, "Z"),
        "local_ms": iso(count_of(d["local_ms"], 1000), 1000, 3, ""),
        "local_us": iso(count_of(d["local_us"], 1_000_000), 1_000_000, 6, ""),
        "local_ns": iso(count_of(d["local_ns"], 10**9), 10**9, 9, ""),
        "span": {"months": months, "days": days, "millis": millis},
        "maybe_at": None if d["maybe_at"] is None else iso(count_of(d["maybe_at"], 1000), 1000, 3, "Z"),
    }
    return {k: v for k, v in out.items() if v is not None}


def clickhouse(d, lake):
    """The test's SELECT of the row, every value as a string (see the test for each expression)."""
    return {
        "id": str(d["id"]),
        "flag": "1" if d["flag"] else "0",
        "small": str(d["small"]),
        "big": str(d["big"]),
        "blob": d["blob"].hex().upper(),
        "label": d["label"],
        "colour": d["colour"],
        "tags": "[" + ",".join(str(t) for t in d["tags"]) + "]",
        "code": d["code"].hex().upper(),
        "price": lake["price"],
        "price_fixed": lake["price_fixed"],
        "uid": lake["uid"],
        "day": lake["day"],
        "t_ms": str(count_of(d["t_ms"], 1000) if isinstance(d["t_ms"], int)
                    else (d["t_ms"].hour * 3600 + d["t_ms"].minute * 60 + d["t_ms"].second) * 1000
                    + d["t_ms"].microsecond // 1000),
        "at_ms": str(count_of(d["at_ms"], 1000) // 1000),
        "at_ms_ms": str(count_of(d["at_ms"], 1000)),
        "at_us_us": str(count_of(d["at_us"], 1_000_000)),
        "at_ns_ns": str(count_of(d["at_ns"], 10**9)),
        "local_ns_ns": str(count_of(d["local_ns"], 10**9)),
        "maybe_at_ms": "NULL" if d["maybe_at"] is None else str(count_of(d["maybe_at"], 1000)),
        # Columns holding the value's JSON: compared as JSON.
        "either": None if d["either"] is None else lake["either"],
        "inner": lake["inner"],
        "attrs": lake["attrs"],
        "span": lake["span"],
    }


def main(argv):
    if len(argv) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    brokers, registry_url, topic, schema_path, n, seed = argv[1:7]
    with open(schema_path, encoding="utf-8") as f:
        text = f.read()
    parsed = fastavro.parse_schema(json.loads(text))
    client = SchemaRegistryClient({"url": registry_url})
    serializer = AvroSerializer(client, text)
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all"})
    ctx = SerializationContext(topic, MessageField.VALUE)
    rng = random.Random(int(seed))
    failures, lines, rows = [], [], []
    for i in range(int(n)):
        value = serializer(record(rng, i), ctx)
        # What an independent decoder reads back from the bytes on the wire (after the 5-byte header).
        decoded = fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed)
        lake = line(decoded)
        lines.append(lake)
        rows.append(clickhouse(decoded, lake))
        producer.produce(topic, key=str(i), value=value,
                         on_delivery=lambda err, msg: err and failures.append(str(err)))
        producer.poll(0)
    left = producer.flush(30)
    if left or failures:
        print(f"undelivered: {left}, failures: {failures[:3]}", file=sys.stderr)
        return 1
    schema_id = client.get_latest_version(f"{topic}-value").schema_id
    print(json.dumps({"schema_id": schema_id, "lines": lines, "clickhouse": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
