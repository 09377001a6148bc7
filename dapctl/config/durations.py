"""Durations in the config: ``"90m"``, ``"6h"``, ``"2d"`` (or seconds as a number), and the
``freshness`` contract built from them (dbt's shape: ``warn_after``, ``error_after``)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from dapctl.config.fields import FrozenModel

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(value: object) -> float:
    """Seconds from ``"90m"``-style text or a number; ValueError naming what is expected."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str) and (match := _DURATION.match(value)) and float(match[1]) > 0:
        return float(match[1]) * _UNITS[match[2]]
    shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
    raise ValueError(
        f'expected a duration such as "90m", "6h" or "2d" (s, m, h, d or w), or seconds{shown}'
    )


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Freshness(FrozenModel):
    """How old a table's data may be (now minus its watermark) before `dapctl status` warns
    or fails: durations such as "6h" or "1d"."""

    warn_after: Duration | None = Field(None, description='Warn beyond this age ("6h").')
    error_after: Duration | None = Field(None, description='Fail beyond this age ("1d").')

    @model_validator(mode="after")
    def _ordered(self) -> Freshness:
        if (
            self.warn_after is not None
            and self.error_after is not None
            and self.error_after < self.warn_after
        ):
            raise ValueError("error_after must not be shorter than warn_after")
        return self


def text(seconds: float) -> str:
    """A duration as the config writes it: ``"6h"``, ``"90m"``, ``"1d"``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
