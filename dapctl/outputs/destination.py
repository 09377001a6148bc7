"""The ``Destination`` seam: where one job's data lands, one level above bytes.

A destination takes a collected job in three moves: ``begin(step, job, kind=, watermark=)``
returns a ``Load`` that names its ``location`` before a byte is written (apply records it as
the pending output, so a crash leaves nothing unaccounted for); the collector hands it each
downloaded part, in order, with ``add_part``; ``commit`` makes the whole job visible at once
and says what landed, ``abort`` leaves no trace. A destination's ``wire_format`` is the query
format it wants the job in (the target's, or what a table-only target's database loads
fastest); a wrapper forwards its inner one's. A load's ``part_mode`` says how it wants its
parts: ``gzip`` (the server's compressed bytes, records counted during the
download), ``body-csv`` / ``body-tsv`` (the text without its header row, counted and deflated
again during the download), ``text`` (decompressed) or ``raw`` (as served: Parquet). A job
with no parts, or an incremental with no records (``plan.publishes``), still commits: what
that means is the destination's to say (a file destination writes no file, and notes why).

``open_destination`` is the factory, from a target's config: files under the config's folder
(``files``) or objects in a bucket when ``output`` is a URL (``objects``), a database table
(``tables``), or both from one job. Apply never asks which kind it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from dapctl.api.wire import Format, Job, Mode
from dapctl.buckets import is_url
from dapctl.config import Target
from dapctl.outputs.merge import PartCounter
from dapctl.plan import Step
from dapctl.state import Kind, StepState

if TYPE_CHECKING:
    from dapctl.databases.loads import RunRow
    from dapctl.outputs.files import FileDestination
    from dapctl.outputs.objects import ObjectDestination
    from dapctl.outputs.tables import Databases, SchemaLookup

PartMode = Literal["gzip", "body-csv", "body-tsv", "text", "raw"]


@dataclass(frozen=True)
class Landed:
    """What a committed load left behind, for the state and the step's result."""

    locations: tuple[str, ...]  # as the state records them
    bytes: int
    records: int
    sha256: str | None
    shown: tuple[str, ...] = ()  # as a person or a script can open them (absolute, or URLs)
    notes: tuple[str, ...] = ()  # for the step's result: why nothing was written, say
    # False: nothing of the load's own to measure (a table); ``collect`` then puts the
    # bytes the job's download took in ``bytes``
    measured: bool = True

    @classmethod
    def nothing(cls, *notes: str) -> Landed:
        return cls((), 0, 0, None, notes=notes)


Settle = Callable[[Landed], StepState]


class Load(Protocol):
    """One job's data on its way into a destination."""

    @property
    def location(self) -> str: ...

    @property
    def part_mode(self) -> PartMode: ...

    def part_path(self, index: int) -> Path:
        """A local file for part ``index`` while it downloads (the collector removes it)."""
        ...

    def add_part(self, part: Path, counted: PartCounter | None) -> None:
        """The next part, in order; ``counted`` for ``gzip`` parts, else ``None``."""
        ...

    def commit(self, settle: Settle) -> Landed:
        """Make the whole job visible. ``settle(landed)`` is the step's state once it is in:
        a destination that keeps step records (a database) commits it with the data."""
        ...

    def abort(self) -> None: ...


class Destination(Protocol):
    def begin(self, step: Step, job: Job, *, kind: Kind, watermark: datetime) -> Load: ...

    def wire_format(self) -> tuple[Format, Mode | None]:
        """The query format to ask the server for: the target's own, or what a table-only
        target's database loads fastest. A wrapper forwards its inner destination's."""
        ...

    def check(self) -> None:
        """Fail now if this destination cannot take data (a bucket missing, unreachable or
        refusing these credentials; a local folder that cannot be made or written), before
        a job of the 5-a-minute quota is spent on it."""
        ...

    def exists(self, location: str) -> bool:
        """Whether something is published at ``location``."""
        ...

    def discard(self, location: str) -> None:
        """Remove what was published at ``location`` but never recorded (absent: no error)."""
        ...


def open_destination(
    target: Target,
    *,
    base_dir: Path,
    databases: Databases | None = None,
    schema_of: SchemaLookup | None = None,
    file_mode: int = 0o600,
    run: RunRow | None = None,
) -> Destination:
    """The destination a target's config declares: files, a database table, or both
    (``run``: the apply its table loads are recorded under)."""
    files = _files(target, base_dir, file_mode)
    if target.database is None:
        return files
    from dapctl.outputs.tables import BothDestination, TableDestination

    assert databases is not None and schema_of is not None, "a database target needs both"
    table = TableDestination(target, databases=databases, schema_of=schema_of, run=run)
    return BothDestination(files, table) if target.writes_files else table


def _files(target: Target, base_dir: Path, file_mode: int) -> FileDestination | ObjectDestination:
    """Where a target's files go: objects in a bucket for a URL output, else local files."""
    if is_url(target.output):
        from dapctl.outputs.objects import ObjectDestination

        return ObjectDestination(target)
    from dapctl.outputs.files import FileDestination

    return FileDestination(target, base_dir=base_dir, file_mode=file_mode)
