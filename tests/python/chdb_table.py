"""A current ClickHouse release, in-process (chDB), takes the tables and rows nrt makes for it.

  chdb_table.py DIR create   runs DIR/create.sql, then DIR/tenant.sql's statements (one a line) if
                             there is one, prints {"version", "columns": [[name, type], ...],
                             "tenant": [[name, type, default], ...] of nrt.every_acme}
  chdb_table.py DIR insert   inserts DIR/rows.bin (RowBinary: its columns in DIR/columns.txt, with their
                             types in DIR/structure.txt),
                             writes the table read back (same columns, by kafka_offset) to DIR/back.bin,
                             prints {"rows": n}

The database lives in DIR/chdb between the two steps. No server: chDB is ClickHouse as a library.
"""
import json
import sys

from chdb import session

work, step = sys.argv[1], sys.argv[2]
s = session.Session(f"{work}/chdb")
try:
    if step == "create":
        s.query("CREATE DATABASE IF NOT EXISTS nrt")
        with open(f"{work}/create.sql") as f:
            s.query(f.read())
        version = s.query("SELECT version()", "CSV").bytes().decode().strip().strip('"')
        rows = s.query(
            "SELECT name, type FROM system.columns WHERE database = 'nrt' AND table = 'every'", "JSONEachRow"
        ).bytes().decode()
        columns = [[c["name"], c["type"]] for c in map(json.loads, rows.splitlines())]
        # A tenant's table as nrt makes it from the template (tenants.rs), when the test gives it.
        tenant = []
        try:
            with open(f"{work}/tenant.sql") as f:
                statements = [line for line in f.read().splitlines() if line.strip()]
        except FileNotFoundError:
            statements = []
        for statement in statements:
            s.query(statement)
        if statements:
            rows = s.query(
                "SELECT name, type, default_expression FROM system.columns WHERE database = 'nrt' AND table = 'every_acme'",
                "JSONEachRow",
            ).bytes().decode()
            tenant = [[c["name"], c["type"], c["default_expression"]] for c in map(json.loads, rows.splitlines())]
        print(json.dumps({"version": version, "columns": columns, "tenant": tenant}))
    else:
        with open(f"{work}/structure.txt") as f:
            structure = f.read()
        with open(f"{work}/columns.txt") as f:
            names = f.read()
        s.query(f"INSERT INTO nrt.every ({names}) SELECT * FROM file('{work}/rows.bin', RowBinary, '{structure}')")
        back = s.query(f"SELECT {names} FROM nrt.every ORDER BY kafka_offset", "RowBinary").bytes()
        with open(f"{work}/back.bin", "wb") as f:
            f.write(back)
        count = int(s.query("SELECT count() FROM nrt.every", "CSV").bytes())
        print(json.dumps({"rows": count}))
finally:
    s.close()
