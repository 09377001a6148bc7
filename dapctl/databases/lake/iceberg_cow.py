"""An incremental's deletes in an Iceberg table: copy-on-write, file by file, matched by an
Arrow set lookup; and the data files a snapshot's stream is written into (`data_files`, in
chunks of about `CHUNK` bytes of Arrow, so a file is neither the whole table nor a batch).

pyiceberg deletes by an expression, and an expression naming a window's keys (tens of
thousands of literals) is bound, value by value in Python, once per manifest, file and
projection it is checked against: 6 s for 60k keys in a 1M-row table, most of an
incremental's time. `delete_keys` does what pyiceberg's delete does, the same way (each
data file that holds a key read, the rows kept written as new files, both swapped in one
overwrite snapshot of the same transaction), but finds the candidate files by the keys'
range only and the rows by ``pyarrow.compute.is_in`` over the whole key set at once.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
from pyiceberg.expressions import AlwaysTrue, And, GreaterThanOrEqual, LessThanOrEqual
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files
from pyiceberg.table import DataScan


def delete_keys(tx: Any, io: Any, keys: Sequence[str], gone: Any, marks: dict[str, str]) -> int:
    """Remove from the table in ``tx`` every row whose key is a row of ``gone``; return how
    many rows went."""
    meta = tx.table_metadata
    first = gone[keys[0]]
    span = And(
        GreaterThanOrEqual(term=keys[0], value=pc.min(first).as_py()),
        LessThanOrEqual(term=keys[0], value=pc.max(first).as_py()),
    )
    wanted = _key(gone, keys)
    scan = DataScan(table_metadata=meta, io=io, row_filter=span)
    whole = reader(meta, io)
    commit, counter = uuid.uuid4(), itertools.count(0)
    replaced, removed = [], 0
    for task in scan.plan_files():
        rows = whole.to_table(tasks=[task])
        found = _key(rows, keys)
        keep = pc.invert(pc.is_in(found, value_set=wanted.cast(found.type)))
        kept = rows.filter(keep)
        if kept.num_rows == rows.num_rows:
            continue
        removed += rows.num_rows - kept.num_rows
        written = _dataframe_to_data_files(
            table_metadata=meta, df=kept, io=io, write_uuid=commit, counter=counter
        ) if kept.num_rows else []  # fmt: skip
        replaced.append((task.file, list(written)))
    if replaced:
        with tx.update_snapshot(snapshot_properties=marks).overwrite() as snapshot:
            snapshot.commit_uuid = commit
            for original, new in replaced:
                snapshot.delete_data_file(original)
                for data_file in new:
                    snapshot.append_data_file(data_file)
    return removed


def reader(meta: Any, io: Any) -> Any:
    """What reads a data file's rows whole, in the table's current schema (a column added
    after the file was written reads as NULL)."""
    return ArrowScan(
        table_metadata=meta, io=io, projected_schema=meta.schema(), row_filter=AlwaysTrue()
    )


def _key(rows: Any, keys: Sequence[str]) -> Any:
    """One comparable array of ``rows``' keys (several key columns joined as text)."""
    if len(keys) == 1:
        return rows[keys[0]].combine_chunks()
    parts = [pc.cast(rows[k], pa.string()) for k in keys]
    return pc.binary_join_element_wise(*parts, "\x1f").combine_chunks()


CHUNK = 256 * 1024 * 1024  # bytes of Arrow written as one data file (of 40-90 MB of Parquet)


def chunks(batches: Iterable[Any]) -> Iterator[Any]:
    """``batches`` (Arrow record batches) gathered into tables of about `CHUNK` bytes."""
    held: list[Any] = []
    size = 0
    for batch in batches:
        held.append(batch)
        size += batch.nbytes
        if size >= CHUNK:
            yield pa.Table.from_batches(held)
            held, size = [], 0
    if held:
        yield pa.Table.from_batches(held)


def data_files(meta: Any, io: Any, tables: Iterable[Any]) -> list[Any]:
    """Each of ``tables`` written as data files of the table at ``meta`` (not yet in any
    snapshot)."""
    commit, counter = uuid.uuid4(), itertools.count(0)
    return [
        data_file
        for rows in tables
        for data_file in _dataframe_to_data_files(
            table_metadata=meta, df=rows, io=io, write_uuid=commit, counter=counter
        )
    ]


def shaped(rows: Any, tx: Any) -> Any:
    """``rows`` as the table's own Arrow schema (after this load's new columns): its column
    order and types (DAP's 16-bit integers are Iceberg ints), NULL for a column DAP no
    longer sends."""
    schema = tx.table_metadata.schema().as_arrow()
    arrays = [
        rows[f.name].cast(f.type) if f.name in rows.column_names
        else pa.nulls(rows.num_rows, f.type)
        for f in schema
    ]  # fmt: skip
    return pa.Table.from_arrays(arrays, schema=schema)
