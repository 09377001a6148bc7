"""The output template: how a target's ``output`` becomes one job's location.

An output template is a relative path or URL with placeholders ``{profile}`` ``{target}``
``{namespace}`` ``{table}`` ``{kind}`` ``{timestamp}`` ``{format}``, and the job's UTC date
as ``{date}`` (``2026-12-06``), ``{year}``, ``{month}`` and ``{day}``, for layouts that engines
reading Hive-style partitions understand (``dt={date}/``). ``render`` fills it for
one job (``{timestamp}`` in the compact, sortable form); ``claimed_path`` fills it for one
step of one run, with ``{kind}``, ``{timestamp}`` and the dates left literal and any table as
``ANY_TABLE``, so the config can find two steps that would write the same place;
``Claims`` finds an earlier step's claim on the same place (a claim for any table matching
as a pattern); ``output_pattern`` turns a claim into a pattern of every location it may
take; ``literal_folder`` is the folder all of them lie in. The config validates templates
with ``template_fields`` and checks the extension a file name spells out
(``literal_extension``) against the target's format.
"""

from __future__ import annotations

import os
import re
import string
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dapctl.text import compact_time

if TYPE_CHECKING:
    from dapctl.config import Target

DEFAULT_OUTPUT = "data/{profile}/{namespace}/{table}/{kind}-{timestamp}.{format}.gz"
PLACEHOLDERS = (
    "profile", "target", "namespace", "table", "kind", "timestamp", "format",
    "date", "year", "month", "day",
)  # fmt: skip
# A job's date placeholders (of its timestamp, UTC) and what each may render as.
DATES = {
    "date": "[0-9]{4}-[0-9]{2}-[0-9]{2}",
    "year": "[0-9]{4}",
    "month": "[0-9]{2}",
    "day": "[0-9]{2}",
}
ANY_TABLE = "\x00table\x00"
# Extensions that name a format; an output ending in another (.txt, .dat) contradicts none.
FORMAT_EXTENSIONS = {
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json": "jsonl",
    "csv": "csv",
    "tsv": "tsv",
    "parquet": "parquet",
}


def render(target: Target, *, profile: str, table: str, kind: str, timestamp: datetime) -> str:
    """The location one job's data goes to, as the template says (relative or a URL)."""
    return target.output.format(
        profile=profile,
        target=target.name,
        namespace=target.namespace,
        table=table,
        kind=kind,
        timestamp=compact_time(timestamp),
        format=target.format,
        **_dates(timestamp),
    )


def _dates(moment: datetime) -> dict[str, str]:
    day = moment.astimezone(UTC)
    return {
        "date": f"{day:%Y-%m-%d}",
        "year": f"{day:%Y}",
        "month": f"{day:%m}",
        "day": f"{day:%d}",
    }


def claimed_path(target: Target, profile: str, table: str) -> str:
    """The normalised location of one step, ``{kind}`` and ``{timestamp}`` left literal."""
    return os.path.normpath(
        target.output.format(
            profile=profile,
            target=target.name,
            namespace=target.namespace,
            table=table,
            format=target.format,
            kind="{kind}",
            timestamp="{timestamp}",
            **{name: "{" + name + "}" for name in DATES},
        )
    )


class Claims:
    """The places steps claimed so far (``claimed_path``), each with the step's address.

    Listed tables are looked up by path; only claims for any table (``tables = "all"``)
    need pattern matching, so 100 profiles x 100 tables are checked in moments.
    """

    def __init__(self) -> None:
        self._literal: dict[str, str] = {}
        self._wildcards: list[tuple[re.Pattern[str], str, str]] = []

    def add(self, path: str, address: str) -> None:
        if ANY_TABLE in path:
            self._wildcards.append((_any_table(path), address, path))
        else:
            self._literal[path] = address

    def holder(self, path: str) -> str | None:
        """The address of an earlier step that claims ``path`` (itself maybe any table's)."""
        if ANY_TABLE not in path:
            if path in self._literal:
                return self._literal[path]
            return next((a for pattern, a, _ in self._wildcards if pattern.fullmatch(path)), None)
        pattern = _any_table(path)
        for other, address in self._literal.items():
            if pattern.fullmatch(other):
                return address
        for other_pattern, address, other in self._wildcards:
            if other_pattern.fullmatch(path) or pattern.fullmatch(other):
                return address
        return None


def _any_table(path: str) -> re.Pattern[str]:
    return re.compile(re.escape(path).replace(re.escape(ANY_TABLE), "[^/]+"))


def output_pattern(target: Target, profile: str) -> re.Pattern[str]:
    """Every path (relative, normalised) the target's output may take for this profile."""
    path = claimed_path(target, profile, ANY_TABLE)
    pattern = (
        re.escape(path)
        .replace(re.escape(ANY_TABLE), "[A-Za-z0-9_]+")
        .replace(re.escape("{kind}"), "(snapshot|incremental)")
        .replace(re.escape("{timestamp}"), "[0-9]{8}T[0-9]{6}Z")
    )
    for name, shape in DATES.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), shape)
    return re.compile(pattern)


def literal_folder(output: str) -> str:
    """The folder every location of an output template lies in: its literal text before
    the first placeholder, up to the last ``/`` (``""`` when a placeholder comes first)."""
    literal = ""
    for text, field, _, _ in string.Formatter().parse(output):
        literal += text
        if field is not None:
            break
    return os.path.dirname(literal)


def template_fields(template: str) -> list[str]:
    """The placeholder names in an output template (``ValueError`` when malformed)."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"malformed output template: {exc}") from None


def literal_extension(output: str) -> str | None:
    """The extension an output template's file name spells out literally (``csv``, before
    any ``.gz``), or None when it has none or leaves it to ``{format}``."""
    name = output.replace("\\", "/").rsplit("/", 1)[-1]
    if "{format}" in name:
        return None
    match = re.search(r"\.([A-Za-z0-9]+)(?:\.gz)?$", name)
    return match.group(1).lower() if match else None
