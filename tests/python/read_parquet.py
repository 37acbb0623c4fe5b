"""Reads a Parquet file with pyarrow, or with DuckDB, and prints its rows as the JSONL lake writes
them (docs/data.md): the independent readers of tests/it/lake_parquet.rs.

    read_parquet.py pyarrow|duckdb FILE [JSON_COLUMN ...]

JSON_COLUMN: a column holding a value's JSON text (a union of several types, a duration), parsed back.
Where the readers differ from the lake's text, a number: timestamps in nanoseconds since the epoch,
times of day in microseconds since midnight; the schema printed says which zone each timestamp has.
"""
import base64
import datetime
import decimal
import json
import math
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def table(reader, path):
    if reader == "pyarrow":
        return pq.read_table(path)
    import duckdb

    return duckdb.sql(f"SELECT * FROM read_parquet('{path}')").to_arrow_table()


def text(value, field_type):
    """A value as the lake's JSON writes it."""
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, datetime.time):
        # Microseconds since midnight: DuckDB reads every time of day at microseconds.
        return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
    if pa.types.is_map(field_type):
        return {k: text(v, field_type.item_type) for k, v in value}
    if pa.types.is_struct(field_type):
        return {
            f.name: text(value[f.name], f.type) for f in field_type if value.get(f.name) is not None
        }
    if pa.types.is_list(field_type):
        return [text(v, field_type.value_type) for v in value]
    return value


def nanos(count, unit):
    """A timestamp's count in nanoseconds: DuckDB reads millisecond timestamps at microseconds."""
    return count * {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[unit]


def main():
    reader, path, json_columns = sys.argv[1], sys.argv[2], set(sys.argv[3:])
    t = table(reader, path)
    # Timestamps as their counts: Python's datetime holds no nanoseconds.
    counts = {}
    for i, f in enumerate(t.schema):
        if pa.types.is_timestamp(f.type):
            counts[f.name] = (t.column(i).cast(pa.int64()).to_pylist(), f.type.unit, f.type.tz)
    columns = {f.name: (t.column(f.name).to_pylist(), f.type) for f in t.schema}
    rows = []
    for r in range(t.num_rows):
        row = {}
        for name, (values, field_type) in columns.items():
            value = values[r]
            if value is None:
                continue
            if name in counts:
                c, unit, _ = counts[name]
                row[name] = nanos(c[r], unit)
            elif name in json_columns:
                row[name] = json.loads(value)
            else:
                row[name] = text(value, field_type)
        rows.append(row)
    print(json.dumps({"reader": reader, "rows": rows, "schema": str(t.schema)}))


main()
