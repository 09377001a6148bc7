"""TSV parts COPYed straight into PostgreSQL's typed staging, by helper connections at once.

DAP's ``tsv`` format is PostgreSQL's COPY text format (``\\N`` for NULL, backslash escapes),
and in ``condensed`` mode each nested object is one JSON column: its rows go into the typed
staging table as they are, with no JSON to parse, so a part costs what ``psql \\copy`` does.
`tsv_header` tells a TSV part from JSON Lines by its header row, whose dotted names
(``meta.ts``, ``key.id``, ``value.name``, ...) say which column each field is (`tsv_columns`;
a name the table's schema lacks is refused). `TsvStager.add_part` reads the part once to
count its lines and cut it at line ends into pieces of about `PIECE` bytes, then has
`Helpers` COPY the pieces in parallel, each in its own transaction, from the file opened
once (so the part may be removed meanwhile; it is closed when its last piece is in). Each
piece sets ``dapctl.part`` for its transaction, which the staging table's ``part`` column
defaults to (part index * `PIECES` + piece), and the staging sequence numbers the rows of one
COPY in order: so "the later line of the later part" still holds. A piece whose COPY stores
another number of rows than its lines is an error.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import psycopg
from psycopg import sql

from dapctl.databases import pg_sql
from dapctl.databases.columns import Column
from dapctl.databases.engine import DatabaseError
from dapctl.databases.pg_stage import BACKLOG, CHUNK, HELPERS, Helpers

if TYPE_CHECKING:
    from dapctl.databases.postgres import PostgresDatabase

PIECE = 1 << 20  # bytes: a 100k-row part is about 9 pieces, shared by the helpers
PIECES = 1 << 16  # pieces a part may have; part index * PIECES + piece orders them


def tsv_header(path: Path) -> list[str] | None:
    """The column names of a TSV part's header row; None for JSON Lines (or an empty part)."""
    with path.open("rb") as source:
        first = source.readline(1 << 16).rstrip(b"\r\n")
    if not first or first.startswith(b"{"):
        return None
    names = first.decode("utf-8", "replace").split("\t")
    return names if all("." in name for name in names) else None


def tsv_columns(
    header: Sequence[str], columns: Sequence[Column], part: str
) -> list[sql.Identifier]:
    """The staging columns a TSV header's names land in (``key.id`` in ``id``, and so on)."""
    by_name = {".".join(c.path): sql.Identifier(c.name) for c in columns}
    by_name["meta.action"] = pg_sql.ACTION
    unknown = [name for name in header if name not in by_name]
    if unknown:
        raise DatabaseError(
            f"cannot stage {part}: its column {unknown[0]!r} is not in the table's schema "
            "(the schema changed while the job ran, or the part is not condensed TSV)"
        )
    return [by_name[name] for name in header]


@dataclass(frozen=True)
class Piece:
    """Bytes [start, end) of a part's file: whole lines, ``rows`` of them."""

    start: int
    end: int
    rows: int


def cut(source: BinaryIO, size: int | None = None) -> list[Piece]:
    """The pieces of a TSV part's body (after its header row), cut at line ends after about
    ``size`` bytes (`PIECE`)."""
    size = size or PIECE
    source.seek(0)
    start = pos = len(source.readline())
    pieces, rows, last = [], 0, b"\n"
    while block := source.read(min(CHUNK, size)):
        rows += block.count(b"\n")
        pos += len(block)
        last = block[-1:]
        end = block.rfind(b"\n")
        if pos - start >= size and end >= 0:
            cut_at = pos - len(block) + end + 1
            pieces.append(Piece(start, cut_at, rows))
            start, rows = cut_at, 0
    if pos > start:
        pieces.append(Piece(start, pos, rows + (last != b"\n")))
    return pieces


class TsvStager:
    """COPY TSV parts into ``dapctl.<staging>`` on helper connections, pieces in parallel."""

    def __init__(
        self, db: PostgresDatabase, staging: str, columns: Sequence[Column], helpers: Helpers
    ) -> None:
        self.db, self.staging, self.columns = db, staging, list(columns)
        self._helpers = helpers
        self._parts = 0
        self._files: dict[BinaryIO, int] = {}  # open part file -> its pieces not yet COPYed
        self._lock = threading.Lock()

    def add_part(self, path: Path, header: Sequence[str]) -> int:
        """Queue the part's pieces for COPY; returns its records (lines after the header)."""
        self._helpers.settle(BACKLOG * HELPERS)
        copy = pg_sql.copy_typed(self.staging, tsv_columns(header, self.columns, path.name))
        source = path.open("rb")
        pieces = cut(source)
        with self._lock:
            self._files[source] = len(pieces)
        if len(pieces) >= PIECES:
            raise DatabaseError(f"cannot stage {path.name}: {len(pieces)} pieces is too many")
        number = self._parts * PIECES
        self._parts += 1
        self._done(source, 0)  # closes the file of a part with no rows
        for index, piece in enumerate(pieces):
            self._helpers.submit(self._copy, source, piece, copy, number + index, path.name)
        return sum(piece.rows for piece in pieces)

    def close(self) -> None:
        """Close the parts' files still open (call after the helpers are closed)."""
        with self._lock:
            for source in self._files:
                source.close()
            self._files.clear()

    def _done(self, source: BinaryIO, pieces: int) -> None:
        """``pieces`` more of ``source``'s pieces are in: close it once all are."""
        with self._lock:
            left = self._files.get(source)
            if left is not None:
                self._files[source] = left - pieces
                if left - pieces <= 0:
                    del self._files[source]
                    source.close()

    def _copy(
        self,
        conn: psycopg.Connection[Any],
        source: BinaryIO,
        piece: Piece,
        copy: sql.Composed,
        number: int,
        name: str,
    ) -> None:
        try:
            self._copy_piece(conn, source, piece, copy, number, name)
        finally:
            self._done(source, 1)

    def _copy_piece(
        self,
        conn: psycopg.Connection[Any],
        source: BinaryIO,
        piece: Piece,
        copy: sql.Composed,
        number: int,
        name: str,
    ) -> None:
        with self.db.guard(f"cannot stage {name}"), conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT set_config('dapctl.part', %s, true)", (str(number),))
            with cur.copy(copy) as writer:
                pos = piece.start
                while pos < piece.end:
                    data = os.pread(source.fileno(), min(CHUNK, piece.end - pos), pos)
                    if not data:
                        raise DatabaseError(f"cannot stage {name}: the file was cut short")
                    writer.write(data)
                    pos += len(data)
            if cur.rowcount != piece.rows:
                raise DatabaseError(
                    f"cannot stage {name}: {cur.rowcount} rows went in for {piece.rows} lines"
                )
