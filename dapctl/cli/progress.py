"""Live progress of an apply on a terminal: a few redrawn lines and an overall bar.

``Progress`` consumes apply's ``StepEvent``s and keeps one row per active step under an
overall bar (steps done of those known, active, queued, failed, bytes, download rate,
elapsed time). A row says what its step does now (starting its job, the job's status as
polled, parts downloaded of the job's parts with bytes and rate) and the step's own time
since it began, which does not restart with each phase. A wait is shown with a countdown
and its reason: a client-side rate-limit slot, or a retry's backoff after a 429, a 5xx or
a cut download; once the wait is over the row shows its phase again. The overall rate
counts only the time something was downloading, not the time spent waiting. The block
redraws in place with ANSI cursor moves, at most every ``interval`` seconds plus on a ticker
thread so timers move while nothing happens, truncated to the terminal's width; ``close``
erases it, leaving the terminal as it was. Text that must appear while it is drawn (result
lines, log records) goes through ``write_above``, which erases the block, writes, and
redraws. The stream, clock and width are parameters, so tests render into a ``StringIO``.
The caller decides whether to show progress at all (only on a terminal, never with
``--no-progress``).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TextIO

from dapctl.cli.style import PLAIN, Style
from dapctl.events import StepEvent
from dapctl.text import human_bytes, plural

HIDE_CURSOR, SHOW_CURSOR, ERASE_DOWN = "\x1b[?25l", "\x1b[?25h", "\x1b[J"
BAR_WIDTH = 20
PHASE_COLOURS = {"waiting": "yellow", "starting": "dim", "running": "cyan", "downloading": "blue"}
WAITS = ("waiting", "retrying")


@dataclass
class _Wait:
    """A countdown shown over a row's phase: a rate-limit slot, or a retry's backoff."""

    kind: str  # "waiting" or "retrying"
    ends: float
    detail: str | None = None


@dataclass
class _Row:
    phase: str
    began: float | None = None  # when the step first did something: never restarts
    status: str | None = None
    bytes: int = 0
    parts: int = 0
    part_count: int | None = None
    download_started: float | None = None
    wait: _Wait | None = None


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
        self._downloading: set[str] = set()
        self._download_time = 0.0  # seconds with at least one download under way, until...
        self._download_since: float | None = None  # ...this moment, when one began
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
        elif phase == "finished":
            self._known.add(address)
            self._rows.pop(address, None)
            self._finished[address] = event.status or "ok"
        else:
            self._known.add(address)
            self._row_update(address, event, now)
        row = self._rows.get(address)
        self._downloads(address, row is not None and row.phase == "downloading", now)

    def _row_update(self, address: str, event: StepEvent, now: float) -> None:
        row, phase = self._rows.get(address), event.phase
        if row is None or (phase == "queued" and row.phase != "queued"):
            row = self._rows[address] = _Row("queued")  # a step queued again starts anew
        if row.began is None and phase != "queued":
            row.began = now
        if phase in WAITS:
            row.wait = _Wait(phase, now + (event.seconds or 0.0), event.detail)
            return
        if phase != "downloading":
            row.wait = None  # the call that waited got its answer
        row.phase, row.status = phase, event.status
        if phase == "downloading":
            row.download_started = row.download_started or now
            row.bytes, row.parts = event.bytes, event.parts
            row.part_count = event.part_count if event.part_count is not None else row.part_count
            if row.part_count is not None and row.parts >= row.part_count:
                row.wait = None  # every part is in: no retry is pending
            self._bytes[address] = event.bytes

    def _downloads(self, address: str, downloading: bool, now: float) -> None:
        """Keep the time anything downloads, so the overall rate leaves out the waits."""
        was_any = bool(self._downloading)
        if downloading:
            self._downloading.add(address)
        else:
            self._downloading.discard(address)
        if self._downloading and not was_any:
            self._download_since = now
        elif was_any and not self._downloading and self._download_since is not None:
            self._download_time += now - self._download_since
            self._download_since = None

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
            active = [(a, r) for a, r in self._rows.items() if _shown(r, now)]
            shown = active[: self.max_rows]
            name_width = max((len(a) for a, _ in shown), default=0)
            lines = [self._row_line(a, r, now, name_width, width) for a, r in shown]
            if len(active) > len(shown):
                lines.append(f"  ... and {len(active) - len(shown)} more")
            lines.append(self.style(self._bar_line(now)[:width], "bold"))
            return lines

    def _row_line(self, address: str, row: _Row, now: float, name_width: int, width: int) -> str:
        timer = _clock_text(now - (row.began if row.began is not None else now))
        text = f"  {address:<{name_width}}  {timer}  {describe_row(row, now)}"[:width]
        waiting = row.wait is not None and row.wait.ends > now and row.phase != "downloading"
        colour = "yellow" if waiting else PHASE_COLOURS.get(row.phase, "dim")
        return self.style(text, colour)

    def _bar_line(self, now: float) -> str:
        total, done = len(self._known), len(self._finished)
        filled = BAR_WIDTH * done // total if total else 0
        bar = "=" * filled + (">" if filled < BAR_WIDTH and total else "")
        queued = sum(1 for r in self._rows.values() if not _shown(r, now))
        failed = sum(1 for s in self._finished.values() if s in ("failed", "skipped"))
        size = sum(self._bytes.values())
        parts = [
            f"[{bar:-<{BAR_WIDTH}}] {done}/{total} done",
            f"{len(self._rows) - queued} active",
            f"{queued} queued",
            *([f"{failed} failed"] if failed else []),
            human_bytes(size),
            f"{human_bytes(int(size / max(self._downloaded_for(now), 1e-3)))}/s",
            _clock_text(now - self._started),
        ]
        return ", ".join(parts)

    def _downloaded_for(self, now: float) -> float:
        since = self._download_since
        return self._download_time + (now - since if since is not None else 0.0)

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


def _shown(row: _Row, now: float) -> bool:
    """A queued step gets a row only while it waits for something (a rate-limit slot)."""
    return row.phase != "queued" or (row.wait is not None and row.wait.ends > now)


def describe_row(row: _Row, now: float) -> str:
    """What a step does now: its phase, or the wait it is in with a countdown."""
    wait = row.wait if row.wait is not None and row.wait.ends > now else None
    if wait is None:
        return _doing(row, now)
    left = _countdown(wait.ends - now)
    if row.phase == "downloading":  # the other parts go on meanwhile
        if wait.kind == "waiting":
            return f"{_doing(row, now)}; a part waits {left} for a URL slot"
        return f"{_doing(row, now)}; a part retries in {left}: {wait.detail}"
    if wait.kind == "waiting":
        return f"waiting for a client-side rate-limit slot, {left} left"
    return f"{wait.detail or 'failed'}; retrying in {left}"


def _doing(row: _Row, now: float) -> str:
    if row.phase == "starting":
        return "starting the query job"
    if row.phase == "running" and row.status == "complete":
        return "job complete, waiting for a download slot"
    if row.phase == "running":
        return f"job {row.status or 'running'}"
    if row.phase != "downloading":
        return "queued"
    size = human_bytes(row.bytes)
    if row.part_count is not None and row.parts >= row.part_count:
        return f"all {plural(row.part_count, 'part')} in ({size}), writing"
    began = row.download_started if row.download_started is not None else now
    rate = f"{human_bytes(int(row.bytes / max(now - began, 1e-3)))}/s"
    of = f"{row.parts} of {plural(row.part_count, 'part')}  " if row.part_count else ""
    return f"downloading {of}{size}  {rate}"


def _countdown(seconds: float) -> str:
    whole = max(0, math.ceil(seconds))
    return f"{whole} s" if whole < 60 else f"{whole // 60}:{whole % 60:02d}"


def _clock_text(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"
