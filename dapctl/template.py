"""The output template: how a target's ``output`` becomes one job's location.

An output template is a relative path or URL with placeholders ``{profile}`` ``{target}``
``{namespace}`` ``{table}`` ``{kind}`` ``{timestamp}`` ``{format}``. ``render`` fills it for
one job (``{timestamp}`` in the compact, sortable form); ``claimed_path`` fills it for one
step of one run, with ``{kind}`` and ``{timestamp}`` left literal and any table as
``ANY_TABLE``, so the config can find two steps that would write the same place;
``output_pattern`` turns a claim into a pattern of every location it may take. The config
validates templates with ``template_fields``.
"""

from __future__ import annotations

import os
import re
import string
from datetime import datetime
from typing import TYPE_CHECKING

from dapctl.text import compact_time

if TYPE_CHECKING:
    from dapctl.config import Target

DEFAULT_OUTPUT = "data/{profile}/{namespace}/{table}/{kind}-{timestamp}.{format}.gz"
PLACEHOLDERS = ("profile", "target", "namespace", "table", "kind", "timestamp", "format")
ANY_TABLE = "\x00table\x00"


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
    )


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
        )
    )


def output_pattern(target: Target, profile: str) -> re.Pattern[str]:
    """Every path (relative, normalised) the target's output may take for this profile."""
    path = claimed_path(target, profile, ANY_TABLE)
    return re.compile(
        re.escape(path)
        .replace(re.escape(ANY_TABLE), "[A-Za-z0-9_]+")
        .replace(re.escape("{kind}"), "(snapshot|incremental)")
        .replace(re.escape("{timestamp}"), "[0-9]{8}T[0-9]{6}Z")
    )


def template_fields(template: str) -> list[str]:
    """The placeholder names in an output template (``ValueError`` when malformed)."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"malformed output template: {exc}") from None
