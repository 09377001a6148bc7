"""Terminal colour, only where a person is looking.

``Style.for_stream(stream, environ, disabled)`` colours a stream only when it is a terminal,
``NO_COLOR`` is unset or empty (https://no-color.org), ``TERM`` is not ``dumb`` and the user
did not pass ``--no-color``; ``FORCE_COLOR`` (non-empty) turns it on for CI logs that render
ANSI. A disabled style returns text unchanged, so renderers call it unconditionally.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}
STATUS_COLOURS = {
    "ok": "green",
    "failed": "red",
    "skipped": "yellow",
    "started": "cyan",
    "held": "blue",
}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def wants_colour(stream: TextIO, environ: Mapping[str, str], *, disabled: bool = False) -> bool:
    if disabled or environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR"):
        return True
    return environ.get("TERM") != "dumb" and is_terminal(stream)


@dataclass(frozen=True)
class Style:
    enabled: bool = False

    @classmethod
    def for_stream(
        cls, stream: TextIO, environ: Mapping[str, str], *, disabled: bool = False
    ) -> Style:
        return cls(wants_colour(stream, environ, disabled=disabled))

    def __call__(self, text: str, *names: str) -> str:
        if not self.enabled or not names or not text:
            return text
        codes = ";".join(CODES[name] for name in names)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def status(self, text: str, status: str) -> str:
        """``text`` in the colour of a step status (ok, failed, skipped, started, held)."""
        colour = STATUS_COLOURS.get(status)
        return self(text, colour) if colour else text


PLAIN = Style()
