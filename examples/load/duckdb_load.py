"""Load dapctl's output files into a DuckDB file as each table's current rows.

Prefer a database target (examples/warehouse.toml) to keep a DuckDB file in sync: dapctl
then loads each table with its watermark. This script is for files an apply writes anyway:

    pip install 'dapctl[duckdb]'
    python3 examples/load/duckdb_load.py data canvas.duckdb

The first argument is the output root (``data`` with the default output template, relative
to where you run it). Every table folder under it becomes a table named by its path there:
data/univ_a/canvas/accounts -> univ_a_canvas_accounts. Each run rebuilds every table, all in
one transaction, from the table's newest snapshot on (or from its first file when it has
none: a target with ``since``): the newest version of each key, deletions left out, the key
and value fields as columns plus ``dap_ts`` (meta.ts). Reads JSON Lines, CSV and plain
Parquet files, gzipped or not (not ``.parquet.gz``, nor TSV): a folder holds one format.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dapfiles import DapFile, LayoutError, current, table_folders

# sample_size = -1: infer the column types from every row, not the first 20480, so a column
# that is null early and typed later does not fail halfway through a load.
READERS = {
    "jsonl": "read_json({files}, format = 'newline_delimited', sample_size = -1, "
    "union_by_name = true, filename = true)",
    "csv": "read_csv({files}, header = true, delim = ',', quote = '\"', escape = '\"', "
    "nullstr = ['NULL', ''], allow_quoted_nulls = false, sample_size = -1, "
    "union_by_name = true, filename = true)",
    "parquet": "read_parquet({files}, union_by_name = true, filename = true)",
}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def fields(con: Any, struct: str) -> list[str]:
    """The field names of a STRUCT column of dap_raw (none when the column is missing)."""
    if struct not in con.sql("SELECT * FROM dap_raw LIMIT 0").columns:
        return []
    return list(con.sql(f"SELECT {quote(struct)}.* FROM dap_raw LIMIT 0").columns)  # noqa: S608


def shape(con: Any, fmt: str) -> tuple[list[str], list[str], str, str]:
    """Key expressions, output columns (``expr AS name``), action and ts expressions."""
    if fmt == "jsonl":  # nested: key, value and meta are structs
        names = fields(con, "key")
        keys = [f"key.{quote(k)}" for k in names]
        values = [(f"value.{quote(v)}", v) for v in fields(con, "value")]
        meta = {m: f"meta.{quote(m)}" for m in fields(con, "meta")}
    else:  # flattened: columns named key.id, value.x (value.x.y), meta.action, meta.ts
        columns = con.sql("SELECT * FROM dap_raw LIMIT 0").columns
        names = [c.removeprefix("key.") for c in columns if c.startswith("key.")]
        keys = [quote("key." + k) for k in names]
        values = [(quote(c), c[6:].replace(".", "_")) for c in columns if c.startswith("value.")]
        meta = {c[5:]: quote(c) for c in columns if c.startswith("meta.")}
    if not keys:
        raise LayoutError("the files have no key columns: are they dapctl output?")
    outputs = [f"{k} AS {quote(n)}" for k, n in zip(keys, names, strict=True)]
    outputs += [f"{e} AS {quote('value_' + n if n in names else n)}" for e, n in values]
    return keys, outputs, meta.get("action", "NULL"), meta.get("ts", "NULL")


def load_table(con: Any, name: str, files: list[DapFile]) -> int:
    """Replace table ``name`` with the current rows of ``files`` (in apply order)."""
    formats = {f.format + (".gz" if f.path.suffix == ".gz" else "") for f in files}
    fmt = files[0].format
    if len({f.format for f in files}) > 1 or fmt not in READERS or "parquet.gz" in formats:
        raise LayoutError(
            f"{files[0].path.parent}: holds {', '.join(sorted(formats))}; this script reads "
            "one of jsonl, csv or parquet (not gzipped) per folder"
        )
    con.execute("CREATE OR REPLACE TEMP TABLE dap_order (filename VARCHAR, dap_order INTEGER)")
    con.executemany(
        "INSERT INTO dap_order VALUES (?, ?)", [(str(f.path), i) for i, f in enumerate(files)]
    )
    paths = "[" + ", ".join(literal(str(f.path)) for f in files) + "]"
    reader = READERS[fmt].format(files=paths)
    con.execute(f"CREATE OR REPLACE TEMP VIEW dap_raw AS SELECT * FROM {reader}")  # noqa: S608
    keys, outputs, action, ts = shape(con, fmt)
    columns = ", ".join(outputs)
    con.execute(
        f"""CREATE OR REPLACE TABLE {quote(name)} AS
        SELECT * EXCLUDE (dap_newest, dap_action) FROM (
            SELECT {columns}, {ts} AS dap_ts, {action} AS dap_action,
                row_number() OVER (
                    PARTITION BY {", ".join(keys)} ORDER BY dap_order DESC, {ts} DESC
                ) AS dap_newest
            FROM dap_raw JOIN dap_order USING (filename)
        ) WHERE dap_newest = 1 AND dap_action IS DISTINCT FROM 'D'"""  # noqa: S608
    )
    (rows,) = con.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()  # noqa: S608
    return int(rows)


def load(root: Path, database: str) -> int:
    try:
        import duckdb
    except ImportError:
        print("duckdb_load.py needs DuckDB: pip install 'dapctl[duckdb]'", file=sys.stderr)
        return 1
    try:
        tables = table_folders(root)
        if not tables:
            raise LayoutError(f"{root}: no dapctl output files ({{kind}}-{{timestamp}}.*) under it")
        with duckdb.connect(database) as con:
            con.begin()
            for name, files in tables.items():
                chosen = current(files)
                rows = load_table(con, name, chosen)
                print(f"{name}: {rows} rows from {len(chosen)} of {len(files)} files")
            con.commit()
    except (LayoutError, duckdb.Error) as exc:
        print(f"duckdb_load.py: {exc}; nothing changed", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the output root, e.g. data")
    parser.add_argument("database", help="the DuckDB file to write, e.g. canvas.duckdb")
    args = parser.parse_args(argv)
    return load(args.root, args.database)


if __name__ == "__main__":
    raise SystemExit(main())
