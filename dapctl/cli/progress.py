"""Live progress of an apply on a terminal: a few redrawn lines and an overall bar.

``Progress`` consumes apply's ``StepEvent``s and keeps one row per active step (waiting for
a rate-limit slot, starting its job, the job's status, bytes downloaded and their rate) under
an overall bar (steps done of those known, queued, bytes, rate, elapsed time). It redraws in
place with ANSI cursor moves, at most every ``interval`` seconds plus on a ticker thread so
timers move while nothing happens, truncated to the terminal's width; ``close`` erases it,
leaving the terminal as it was. Text that must appear while it is drawn (result lines, log
records) goes through ``write_above``, which erases the block, writes, and redraws. The
stream, clock and width are parameters, so tests render into a ``StringIO``. The caller
decides whether to show progress at all (only on a terminal, never with ``--no-progress``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TextIO

from dapctl.cli.style import PLAIN, Style
from dapctl.events import StepEvent
from dapctl.text import human_bytes

HIDE_CURSOR, SHOW_CURSOR, ERASE_DOWN = "\x1b[?25l", "\x1b[?25h", "\x1b[J"
BAR_WIDTH = 20
PHASE_COLOURS = {"waiting": "yellow", "starting": "dim", "running": "cyan", "downloading": "blue"}


@dataclass
class _Row:
    phase: str
    since: float
    status: str | None = None
    bytes: int = 0
    seconds: float | None = None
    download_started: float | None = None


def terminal_width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns or 80  # a pseudo-terminal nobody sized says 0


class Progress:
    def __init__(
        self,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 0.1,
        style: Style = PLAIN,
        width: Callable[[], int] | None = None,
        max_rows: int = 8,
        ticker: bool = True,
    ) -> None:
        self.stream = stream
        self.clock = clock
        self.interval = interval
        self.style = style
        self.width = width or (lambda: terminal_width(stream))
        self.max_rows = max_rows
        self._ticker = ticker
        self._lock = threading.RLock()
        self._rows: dict[str, _Row] = {}
        self._known: set[str] = set()
        self._finished: dict[str, str] = {}
        self._bytes: dict[str, int] = {}
        self._started = clock()
        self._drawn = 0  # lines on screen
        self._last_draw: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifetime ---------------------------------------------------------------------------

    def __enter__(self) -> Progress:
        if self._ticker:
            self._thread = threading.Thread(target=self._tick, name="dapctl-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._last_draw is not None:
                self._erase()
                self.stream.write(SHOW_CURSOR)
                self.stream.flush()
            self._last_draw = None

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    # -- input ------------------------------------------------------------------------------

    def handle(self, event: StepEvent) -> None:
        """Take one event from apply (any thread); redraw if the last draw is old enough."""
        with self._lock:
            self._update(event, self.clock())
            due = self._last_draw is None or self.clock() - self._last_draw >= self.interval
            if due and not self._stop.is_set():
                self._draw()

    def _update(self, event: StepEvent, now: float) -> None:
        address, phase = event.address, event.phase
        if phase == "listed":
            self._known.discard(address)
            self._rows.pop(address, None)
            return
        self._known.add(address)
        if phase == "finished":
            self._rows.pop(address, None)
            self._finished[address] = event.status or "ok"
            return
        row = self._rows.get(address)
        if row is None or row.phase != phase or (phase == "running" and row.status != event.status):
            started = row.download_started if row is not None else None
            row = self._rows[address] = _Row(phase, now, download_started=started)
        row.status, row.seconds = event.status, event.seconds
        if phase == "downloading":
            row.download_started = row.download_started or now
            row.bytes = event.bytes
            self._bytes[address] = event.bytes

    def refresh(self) -> None:
        with self._lock:
            if not self._stop.is_set():
                self._draw()

    def write_above(self, stream: TextIO, text: str) -> None:
        """Write ``text`` to ``stream`` (stdout or stderr) without tearing the display."""
        with self._lock:
            drawn = self._last_draw is not None
            if drawn:
                self._erase()
                self.stream.flush()
            stream.write(text)
            stream.flush()
            if drawn and not self._stop.is_set():
                self._draw()

    # -- output -----------------------------------------------------------------------------

    def render(self) -> list[str]:
        """The block's lines as they would be drawn now (no cursor codes)."""
        with self._lock:
            now, width = self.clock(), max(20, self.width() - 1)
            active = [(a, r) for a, r in self._rows.items() if r.phase != "queued"]
            shown = active[: self.max_rows]
            name_width = max((len(a) for a, _ in shown), default=0)
            lines = [self._row_line(a, r, now, name_width, width) for a, r in shown]
            if len(active) > len(shown):
                lines.append(f"  ... and {len(active) - len(shown)} more")
            lines.append(self.style(self._bar_line(now)[:width], "bold"))
            return lines

    def _row_line(self, address: str, row: _Row, now: float, name_width: int, width: int) -> str:
        text = f"  {address:<{name_width}}  {self._describe(row, now)}"[:width]
        return self.style(text, PHASE_COLOURS.get(row.phase, "dim"))

    @staticmethod
    def _describe(row: _Row, now: float) -> str:
        elapsed = _clock_text(now - row.since)
        if row.phase == "waiting":
            return f"waiting for a rate-limit slot  {elapsed}"
        if row.phase == "starting":
            return f"starting the query job  {elapsed}"
        if row.phase == "running" and row.status == "complete":
            return f"job complete, waiting for a download slot  {elapsed}"
        if row.phase == "running":
            return f"job {row.status or 'running'}  {elapsed}"
        began = row.download_started or row.since
        rate = row.bytes / max(now - began, 1e-3)
        return f"downloading  {human_bytes(row.bytes)}  {human_bytes(int(rate))}/s"

    def _bar_line(self, now: float) -> str:
        total, done = len(self._known), len(self._finished)
        filled = BAR_WIDTH * done // total if total else 0
        bar = "=" * filled + (">" if filled < BAR_WIDTH and total else "")
        queued = sum(1 for r in self._rows.values() if r.phase == "queued")
        failed = sum(1 for s in self._finished.values() if s in ("failed", "skipped"))
        size, elapsed = sum(self._bytes.values()), now - self._started
        parts = [
            f"[{bar:-<{BAR_WIDTH}}] {done}/{total} done",
            f"{len(self._rows) - queued} active",
            f"{queued} queued",
            *([f"{failed} failed"] if failed else []),
            human_bytes(size),
            f"{human_bytes(int(size / max(elapsed, 1e-3)))}/s",
            _clock_text(elapsed),
        ]
        return ", ".join(parts)

    def _draw(self) -> None:
        lines = self.render()
        prefix = HIDE_CURSOR if self._last_draw is None else ""
        self._erase()
        self.stream.write(prefix + "".join(line + "\n" for line in lines))
        self.stream.flush()
        self._drawn = len(lines)
        self._last_draw = self.clock()

    def _erase(self) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}A\r{ERASE_DOWN}")
        self._drawn = 0


def _clock_text(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"
