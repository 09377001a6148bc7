"""Where dapctl's log records go for one command: the console, a file, as text or JSON lines.

``logging_to(console, level=..., fmt=..., file=...)`` attaches handlers to the ``dapctl``
logger for one command and removes them after. Without a file, records at ``level`` go to
the console in ``fmt``; with one, they go to the file (created 0600 in folders created
0700, appended to) in
``fmt`` and the console keeps only warnings and errors (a failed step's record too), as
text. Without a file, a text console leaves out each step's ``finished`` record: the command
prints results itself. An error that ends the command and an interruption are logged for the
file (event ``fatal`` / ``interrupted``); the console prints those itself. A rate-limit
wait's notice (event ``rate_limit_wait``) is a warning where nothing else shows the wait, and
info (for the file and the console alike) while ``progress_shows()``: the live progress then
counts the wait down on its step's row. JSON lines carry
``time`` (UTC), ``level``, ``logger``, ``event``, ``address``, ``message`` and the record's
fields (``job_id``, ``status``, ``error_uuid``, ...). Every line passes through ``redact``,
a last guard that masks bearer tokens, JWTs and pre-signed URL signatures should one ever
reach a message; secrets themselves never do.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

from dapctl.api.ratelimit import WAIT_EVENT
from dapctl.errors import ConfigError
from dapctl.files import ensure_private_dir
from dapctl.text import format_time

Format = Literal["text", "json"]
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_SECRETS = (
    (re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]{16,}"), "Bearer <redacted>"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "<redacted-jwt>"),
    (re.compile(r"(https?://[^\s?\"']+)\?[^\s\"']+"), r"\1?<redacted>"),
)


class Console(Protocol):
    """Where console records go: anything a ``logging.StreamHandler`` can write to."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _time(record: logging.LogRecord) -> str:
    return format_time(datetime.fromtimestamp(record.created, tz=UTC), timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None),
            "address": getattr(record, "address", None),
            "message": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in document and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exception"] = redact(self.formatException(record.exc_info))
        return redact(json.dumps(document, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``LEVEL: message`` on a console; with ``stamped``, time and logger first (log files)."""

    def __init__(self, *, stamped: bool = False) -> None:
        super().__init__()
        self.stamped = stamped

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname}: {record.getMessage()}"
        if self.stamped:
            text = f"{_time(record)} {record.name} {text}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact(text)


def _printed_anyway(record: logging.LogRecord) -> bool:
    """Whether the command prints this record's news itself: an error that ends it, an
    interruption (and, without a log file, each step's result line)."""
    return getattr(record, "event", None) in ("fatal", "interrupted")


def _not_a_result(record: logging.LogRecord) -> bool:
    return getattr(record, "event", None) != "finished"


class _WaitShownAsProgress(logging.Filter):
    """A handler's threshold, applied after demoting a rate-limit wait's warning to info
    while the live progress shows that wait (a handler checks its own level before its
    filters run, so a demoted record is judged again here)."""

    def __init__(self, progress_shows: Callable[[], bool], level: int) -> None:
        super().__init__()
        self.progress_shows = progress_shows
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            getattr(record, "event", None) == WAIT_EVENT
            and record.levelno == logging.WARNING
            and self.progress_shows()
        ):
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return record.levelno >= self.level


def _formatter(fmt: Format, *, stamped: bool) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter(stamped=stamped)


def open_log_file(path: Path) -> TextIO:
    """Open ``path`` for appending, created 0600 (missing folders 0700): logs name
    institutions, jobs and files."""
    try:
        ensure_private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        raise ConfigError(f"--log-file {path}: cannot open it: {exc.strerror}") from None
    return os.fdopen(fd, "a", encoding="utf-8")


@contextlib.contextmanager
def logging_to(
    console: Console,
    *,
    level: int,
    fmt: Format = "text",
    file: Path | None = None,
    progress_shows: Callable[[], bool] = lambda: False,
) -> Iterator[None]:
    """Send the ``dapctl`` logger's records where the command line asked, for one command;
    ``progress_shows`` says whether a live progress display is on the console now."""
    logger = logging.getLogger("dapctl")
    with contextlib.ExitStack() as stack:
        handlers: list[logging.Handler] = []
        if file is not None:
            stream = stack.enter_context(open_log_file(file))
            to_file = logging.StreamHandler(stream)
            to_file.setFormatter(_formatter(fmt, stamped=True))
            to_file.setLevel(level)
            to_file.addFilter(_WaitShownAsProgress(progress_shows, level))
            handlers.append(to_file)
        to_console: logging.Handler = logging.StreamHandler(console)
        console_fmt: Format = "text" if file is not None else fmt
        to_console.setFormatter(_formatter(console_fmt, stamped=False))
        console_level = max(level, logging.WARNING) if file is not None else level
        to_console.setLevel(console_level)
        to_console.addFilter(_WaitShownAsProgress(progress_shows, console_level))
        to_console.addFilter(lambda record: not _printed_anyway(record))
        if console_fmt == "text" and file is None:
            to_console.addFilter(_not_a_result)
        handlers.append(to_console)
        saved = logger.level
        # Below INFO the rate limiter's waits (INFO) still reach apply's progress events.
        logger.setLevel(min(level, logging.INFO))
        for handler in handlers:
            logger.addHandler(handler)
        try:
            yield
        finally:
            for handler in handlers:
                logger.removeHandler(handler)
            logger.setLevel(saved)
