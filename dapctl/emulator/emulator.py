"""`Emulator`: one local stand-in for the DAP API, its lifecycle, and its test helpers.

Construct with `EmulatorSettings` (fixed), an injectable wall ``clock`` (token expiry, job
timing, URL expiry, rate limits) and optional `Faults` (live knobs). `start` binds a loopback
port (0 picks a free one) and serves from a daemon thread; `stop` shuts it down; the object
is also a context manager. The data clock is separate: it starts at ``settings.start`` (or
the clock's now truncated to the second) and moves only through `advance` and `change`;
with ``settings.live`` it is the wall ``clock`` itself (plus what `advance` added) and the
data changes with it (`live`).
`expected_snapshot` and `expected_changes` return the records, JSON Lines shaped and sorted by
key, that a snapshot now or an incremental over ``[since, until)`` would serve.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from dapctl.emulator.data import ChangeResult, DataStore, TableData
from dapctl.emulator.faults import Faults
from dapctl.emulator.jobs import JobStore
from dapctl.emulator.ratelimit import RateLimiter
from dapctl.emulator.server import EmulatorServer
from dapctl.emulator.settings import EmulatorSettings
from dapctl.emulator.stats import Stats


class Emulator:
    """See the module docstring."""

    def __init__(
        self,
        settings: EmulatorSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        faults: Faults | None = None,
    ) -> None:
        self.settings = settings or EmulatorSettings()
        self.clock = clock
        self.faults = faults or Faults()
        self.stats = Stats()
        # Per instance, so a token from one emulator is worthless at another.
        self.key = secrets.token_bytes(32)
        start = self.settings.start
        data_start = int(start.timestamp()) if start else int(clock())
        self.data = DataStore(self.settings, data_start, clock=clock)
        self.jobs = JobStore(self.data, self.settings.part_size, self.settings.gzip_level, self.key)
        self.limiter = RateLimiter(self.settings.limits, clock)
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Emulator:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._server = EmulatorServer((self.settings.host, self.settings.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"dapctl-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.jobs.close()

    def __enter__(self) -> Emulator:
        return self if self._server is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def credentials(self) -> tuple[str, str]:
        """The primary (client_id, client_secret)."""
        return self.settings.client_id, self.settings.client_secret

    @property
    def now(self) -> datetime:
        """The data clock's now."""
        return datetime.fromtimestamp(self.data.now, UTC)

    def advance(self, seconds: float) -> datetime:
        """Move the data clock forward; returns its new now."""
        self.data.advance(seconds)
        return self.now

    def change(
        self,
        namespace: str,
        table: str,
        inserts: int = 0,
        updates: int | Sequence[int] = 0,
        deletes: int | Sequence[int] = 0,
    ) -> ChangeResult:
        """Commit inserts/updates/deletes (counts or id lists) at the data clock's now."""
        return self.data.change(self._table(namespace, table), inserts, updates, deletes)

    def expected_snapshot(
        self, namespace: str, table: str, at: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The records a snapshot at ``at`` (default: now) serves."""
        data = self._table(namespace, table)
        rows = self.data.snapshot(data, self.data.now if at is None else _seconds(at))
        return [self.data.record(data, row) for row in rows]

    def expected_changes(
        self, namespace: str, table: str, since: datetime, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The records an incremental over ``[since, until)`` (default until: now) serves."""
        data = self._table(namespace, table)
        end = self.data.now if until is None else _seconds(until)
        rows = self.data.changes(data, _seconds(since), end)
        return [self.data.record(data, row) for row in rows]

    def _table(self, namespace: str, table: str) -> TableData:
        found = self.data.table(namespace, table)
        if found is None:
            raise KeyError(f"no table {namespace}.{table}; known: {sorted(self.data.tables)}")
        return found


def _seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    # Same rounding as the server applies to query bounds.
    return -int(-moment.timestamp() // 1)
