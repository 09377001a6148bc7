"""Merging Parquet parts into one Parquet file, with pyarrow (the optional ``parquet`` extra).

Parquet parts cannot be concatenated like text: each carries its own schema and footer. The
parts are kept whole until the last one is in, their schemas unified (a column that is null
throughout one part but typed in another takes the type; int and float widen), and their
record batches rewritten, in order, through one ``ParquetWriter`` into the output, gzip
included when the path ends in ``.gz``. Memory holds one record batch at a time. Without
pyarrow the merger refuses before anything is downloaded.
"""

from __future__ import annotations

import importlib
import io
from pathlib import Path
from typing import Any

from dapctl.outputs.merge import GzipWriter, MergeError, MergeStats, PartCounter, Sink


class ParquetMerger:
    """``add`` each part (a Parquet file, kept on disk), then ``finish`` writes them all."""

    def __init__(self, *, out: Sink, compress: bool) -> None:
        try:
            self._pa: Any = importlib.import_module("pyarrow")
            self._pq: Any = importlib.import_module("pyarrow.parquet")
        except ImportError:
            raise MergeError(
                "format = \"parquet\" needs pyarrow: pip install 'dapctl[parquet]'",
            ) from None
        self._sink = _Sink(out, compress=compress)
        self._parts: list[Path] = []

    def add(self, part: Path, counted: PartCounter | None = None) -> None:
        """Keep the part until the last is in: Parquet files merge whole."""
        self._parts.append(part)

    def finish(self) -> MergeStats:
        if not self._parts:
            return MergeStats(0)
        try:
            schemas = [self._pq.read_schema(part) for part in self._parts]
            schema = self._pa.unify_schemas(schemas, promote_options="permissive")
            records = self._rewrite(schema)
        except (self._pa.ArrowException, OSError) as exc:
            raise MergeError(f"the parquet parts cannot be merged: {exc}") from None
        self._sink.finish()
        return MergeStats(records)

    def _rewrite(self, schema: Any) -> int:
        records = 0
        with self._pq.ParquetWriter(self._sink, schema) as writer:
            for part in self._parts:
                for batch in self._pq.ParquetFile(part).iter_batches():
                    table = self._pa.Table.from_batches([batch]).cast(schema)
                    writer.write_table(table)
                    records += batch.num_rows
        return records


class _Sink(io.RawIOBase):
    """The file object pyarrow writes to: the output, gzip-compressed when asked."""

    def __init__(self, out: Sink, *, compress: bool) -> None:
        super().__init__()
        self._out = out
        self._gzip = GzipWriter(out) if compress else None
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._position += len(chunk)
        (self._gzip or self._out).write(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        # pyarrow closes its sink when the writer closes; the output is committed elsewhere.
        pass

    def finish(self) -> None:
        if self._gzip is not None:
            self._gzip.close()
