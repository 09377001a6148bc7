"""The config language: frozen pydantic models for one dapctl TOML file.

A config declares ``[settings]``, a ``[retry]`` policy, credential ``[profiles.NAME]`` (one per
institution), ``[databases.NAME]`` and ``[[targets]]`` (what to export and where). These models
are the single source of truth for the language: the loader validates raw TOML into them, the
planner and apply read only them, and ``schemas/dapctl.schema.json`` is generated from them.
They hold the file's own words; secrets named indirectly (``*_env``, ``*_file``) are resolved
later. Every name other modules use is importable from ``dapctl.config`` itself.

Module map:

- `fields`: name patterns, the constrained field types, ``PathError`` and the frozen base
  model every section derives from.
- `durations`: ``"6h"``-style durations and the ``freshness`` contract built from them.
- `settings`: ``[settings]`` and ``[retry]``.
- `connections`: ``[profiles.NAME]`` (a DAP credential) and ``[databases.NAME]``.
- `target`: ``[[targets]]``, its templates' rules, a step's address and database names.
- `model`: ``Config``, the whole file, with the rules across sections and targets.
"""

from __future__ import annotations

from dapctl.budgets import RateLimitSettings
from dapctl.config.connections import DEFAULT_BASE_URL, Database, Notify, Profile
from dapctl.config.durations import Freshness, parse_duration
from dapctl.config.fields import (
    ENV_NAME_PATTERN,
    FILE_MODE_PATTERN,
    IDENTIFIER_MAX_LENGTH,
    IDENTIFIER_PATTERN,
    NAME_PATTERN,
    EnvName,
    FileMode,
    Identifier,
    Name,
    PathError,
    PathText,
    StateNamespace,
)
from dapctl.config.model import Config
from dapctl.config.settings import RetrySettings, Settings
from dapctl.config.target import (
    DB_PLACEHOLDERS,
    DbTemplate,
    Format,
    Mode,
    Target,
    address_of,
    db_names,
    history_name,
)
from dapctl.template import DEFAULT_OUTPUT, PLACEHOLDERS, template_fields

__all__ = [
    "DB_PLACEHOLDERS",
    "DEFAULT_BASE_URL",
    "DEFAULT_OUTPUT",
    "ENV_NAME_PATTERN",
    "FILE_MODE_PATTERN",
    "IDENTIFIER_MAX_LENGTH",
    "IDENTIFIER_PATTERN",
    "NAME_PATTERN",
    "PLACEHOLDERS",
    "Config",
    "Database",
    "DbTemplate",
    "EnvName",
    "FileMode",
    "Format",
    "Freshness",
    "Identifier",
    "Mode",
    "Name",
    "Notify",
    "PathError",
    "PathText",
    "Profile",
    "RateLimitSettings",
    "RetrySettings",
    "Settings",
    "StateNamespace",
    "Target",
    "address_of",
    "db_names",
    "history_name",
    "parse_duration",
    "template_fields",
]
