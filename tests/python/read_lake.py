"""Reads a lake directory of Parquet objects (`dt=YYYY-MM-DD/hour=HH/*.parquet`, copied from MinIO
as the bucket holds them) with pyarrow's dataset API and with DuckDB, each with Hive-style
partitioning, and prints what each saw: the independent readers of tests/it/lake_parquet.rs.

    read_lake.py DIR

For each reader: rows, distinct event ids, the sum of user_id, the partition columns it found, and
the rows under the hour before their own created_at's (UTC; an object sits under its first event's
hour, so a batch across an hour's end has such rows) and those anywhere else (none should be); and
every row's values, sorted by event id, for the test to compare with ClickHouse's value for value:
[event_id, type, user_id, amount as the decimal's exact text, currency, created_at in ms since the
epoch]. Also, from each file's key-value metadata, the events it says it holds.
"""
import datetime
import decimal
import glob
import json
import os
import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def summary(rows):
    """rows: a list of dicts with event_id, user_id, created_ms (ms since the epoch), dt, hour."""
    misplaced = later = 0
    for r in rows:
        at = datetime.datetime.fromtimestamp(r["created_ms"] / 1000, datetime.timezone.utc)
        part = datetime.datetime.strptime(f"{r['dt']} {int(r['hour']):02d}", "%Y-%m-%d %H")
        part = part.replace(tzinfo=datetime.timezone.utc)
        hours = (at - part).total_seconds() // 3600
        if hours == 1:
            # An object sits under its first event's hour: a batch across an hour's end.
            later += 1
        elif hours != 0:
            misplaced += 1
    return {
        "rows": len(rows),
        "distinct_ids": len({r["event_id"] for r in rows}),
        "user_id_sum": sum(r["user_id"] for r in rows),
        "misplaced": misplaced,
        "in_next_hour": later,
        "hours": sorted({f"{r['dt']}/{int(r['hour']):02d}" for r in rows}),
        "values": sorted(
            [str(r["event_id"]), r["type"], r["user_id"], exact(r["amount"]), r["currency"], r["created_ms"]]
            for r in rows
        ),
    }


def exact(amount):
    """A decimal as its exact text at its scale (both readers give Python Decimals; a float would be
    a reader losing the type)."""
    if not isinstance(amount, decimal.Decimal):
        return f"not a decimal: {amount!r}"
    return format(amount, "f")


def with_pyarrow(root):
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    table = dataset.to_table(columns=["event_id", "type", "user_id", "amount", "currency", "created_at", "dt", "hour"])
    rows = table.to_pylist()
    ms = table.column("created_at").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_pylist()
    for r, m in zip(rows, ms):
        r["created_ms"] = m
    out = summary(rows)
    out["columns"] = dataset.schema.names
    return out


def with_duckdb(root):
    import duckdb

    con = duckdb.connect()
    rel = con.sql(
        f'SELECT event_id, "type", user_id, amount, currency, epoch_ms(created_at) AS created_ms, dt, hour FROM '
        f"read_parquet('{root}/**/*.parquet', hive_partitioning = true)"
    )
    names = rel.columns
    out = summary([dict(zip(names, row)) for row in rel.fetchall()])
    out["columns"] = con.sql(
        f"SELECT * FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true) LIMIT 0"
    ).columns
    return out


def main():
    root = sys.argv[1]
    files = sorted(glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True))
    said = 0
    for f in files:
        meta = pq.read_metadata(f).metadata or {}
        said += int(meta.get(b"nrt-events", b"0"))
    print(json.dumps({
        "files": len(files),
        "events_in_metadata": said,
        "pyarrow": with_pyarrow(root),
        "duckdb": with_duckdb(root),
    }, default=str))


main()
