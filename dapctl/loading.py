"""Reading a config file: TOML in, a validated ``Config`` or one clear ``ConfigError`` out.

This is the boundary where raw input becomes trusted models. Every problem is reported
together, each naming the file, the line when it can be found, and the key path
(``targets[1].format``), with a "did you mean" for unknown keys. Nothing downstream sees a
raw dict. Relative paths in a config resolve against the config file's folder, never the
working directory (cron starts in ``$HOME``).
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from dapctl.buckets import is_url, parse_url
from dapctl.config import FILE_MODE_PATTERN, NAME_PATTERN, Config, PathError
from dapctl.errors import ConfigError
from dapctl.objects.registry import SCHEMES, install_hint, require
from dapctl.state.backends import backend_for
from dapctl.state.backends import require as require_backend
from dapctl.template import output_pattern

_HEADER = re.compile(r"^\[(\[)?\s*([^\]]+?)\s*\]")
_ASSIGN = re.compile(
    r"^((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*="
)
_UNION_TAG = re.compile(r"[\[\]()]")
_QUALIFIED_TABLE = re.compile(r"[A-Za-z0-9_]+\.[A-Za-z0-9_]+")
_URL_KEYS = frozenset({"url", "url_env", "url_file", "state", "state_env"})

Loc = tuple[str | int, ...]
Importer = Callable[[str], object]

# Formats that need an optional extra: the module to import, and how to install it.
EXTRAS = {"parquet": ("pyarrow.parquet", "pip install 'dapctl[parquet]'")}

_FRIENDLY = {
    "timezone_aware": "give the time zone, e.g. 2026-11-01T00:00:00Z or +02:00",
    "union_mismatch": 'expected a list of table names or "all"',
}


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where it came from."""

    path: Path
    config: Config
    warnings: tuple[str, ...] = field(default=())
    lines: Mapping[Loc, int] = field(default_factory=dict, repr=False)

    def locate(self, loc: Loc) -> str:
        """``file:line: key.path`` for a key of this config, for messages about it."""
        line = _line_of(self.lines, loc)
        return (
            f"{self.path}:{line}: {format_loc(loc)}" if line else f"{self.path}: {format_loc(loc)}"
        )

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve_path(self, value: str) -> Path:
        """A path from the config, made absolute against the config file's folder."""
        return (self.base_dir / Path(value).expanduser()).resolve()

    @property
    def state_path(self) -> Path:
        """The local state file (meaningful when ``state_is_local``)."""
        return self.resolve_path(self.config.settings.state)

    @property
    def state_is_local(self) -> bool:
        settings = self.config.settings
        return settings.state_env is None and len(urlsplit(settings.state).scheme) <= 1

    @property
    def state_location(self) -> str:
        """Where the state is, for people: the file, the URL (which holds no password), or
        the variable that holds the URL."""
        settings = self.config.settings
        if settings.state_env is not None:
            return f"${settings.state_env}"
        return str(self.state_path) if self.state_is_local else settings.state


def load_config(path: str | Path) -> LoadedConfig:
    """Read and validate a config file; raise ``ConfigError`` naming every problem."""
    path = Path(path).expanduser().absolute()
    text = _read_text(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    except RecursionError:
        # tomllib parses arrays and inline tables recursively: a few hundred levels of
        # nesting exhaust Python's stack. No dapctl setting nests more than three deep.
        raise ConfigError(
            f"{path}: malformed TOML: arrays or inline tables nested too deeply"
        ) from None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path=path, text=text, raw=raw)) from None
    loaded = LoadedConfig(
        path=path, config=config, warnings=tuple(_warnings(config, path)), lines=_key_lines(text)
    )
    _outputs_spare_own_files(loaded)
    return loaded


def _outputs_spare_own_files(loaded: LoadedConfig) -> None:
    """Refuse an output template that could name the config, the state or its companions.

    Data written there would replace the config, be overwritten by the next state write, or
    vanish with the lock.
    """
    own = [loaded.path]
    if loaded.state_is_local:
        state = loaded.state_path
        own += [state, state.with_name(state.name + ".backup")]
        own.append(state.with_name(state.name + ".lock"))
    for index, target in enumerate(loaded.config.targets):
        if not target.writes_files:
            continue
        for profile in loaded.config.target_profiles(target):
            pattern = output_pattern(target, profile)
            for file in own:
                relative = os.path.relpath(file, loaded.base_dir)
                if pattern.fullmatch(os.path.normpath(relative)) or pattern.fullmatch(str(file)):
                    raise ConfigError(
                        f"{loaded.locate(('targets', index, 'output'))}: the output path "
                        f"could be {file}, one of dapctl's own files; choose another path"
                    )


def require_extras(loaded: LoadedConfig, *, importer: Importer = importlib.import_module) -> None:
    """Refuse a format, or a bucket URL output, whose optional dependency cannot be imported.

    Checked by ``validate``, ``plan`` and ``apply`` before any job runs: otherwise the
    missing module is found only when the first output is merged, after every job ran.
    """
    state, located = loaded.config.settings.state, loaded.locate(("settings", "state"))
    require_backend(backend_for(state, where=located), where=located, importer=importer)
    for index, target in enumerate(loaded.config.targets):
        if target.writes_files and is_url(target.output):
            where = ("targets", index, "output")
            _require_bucket_module(loaded, where, parse_url(target.output).scheme, importer)
        if target.format not in EXTRAS:
            continue
        module, install = EXTRAS[target.format]
        try:
            importer(module)
        except ImportError:
            raise ConfigError(
                f"{loaded.locate(('targets', index, 'format'))}: format = "
                f'"{target.format}" needs {module.split(".")[0]}, which cannot be imported',
                hint=install,
            ) from None


def _require_bucket_module(loaded: LoadedConfig, loc: Loc, scheme: str, importer: Importer) -> None:
    try:
        require(scheme, importer)
    except ImportError:
        module = SCHEMES[scheme].package
        raise ConfigError(
            f"{loaded.locate(loc)}: {scheme}:// needs {module}, which cannot be imported",
            hint=install_hint(scheme),
        ) from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # a BOM, as some Windows editors write
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied reading the config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None


def _warnings(config: Config, path: Path) -> list[str]:
    warnings = [
        f"{path}: profiles.{name}.client_secret holds the secret in the config file; "
        "prefer client_secret_env or client_secret_file"
        for name, profile in config.profiles.items()
        if profile.client_secret is not None
    ]
    warnings += [
        f"{path}: profiles.{name}.rate_limits.status_per_minute is deprecated: it is "
        "job_status_per_minute now (table schema calls have schema_per_minute)"
        for name, profile in config.profiles.items()
        if profile.rate_limits.status_per_minute is not None
    ]
    return warnings


def _describe(exc: ValidationError, *, path: Path, text: str, raw: dict[str, Any]) -> str:
    lines = _key_lines(text)
    problems = []
    for error in _without_union_noise(exc.errors(), raw):
        loc = tuple(p for p in error["loc"] if not _is_union_tag(p))
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, PathError):
            loc = (*loc, *cause.loc)
        where = _line_of(lines, loc)
        prefix = f"{path}:{where}" if where else str(path)
        shown = format_loc(tuple(p for p in loc if p != "[key]")) or "(top level)"
        problems.append(f"{prefix}: {shown}: {_message(error, loc)}")
    count = len(problems)
    head = f"{count} problem{'s' if count != 1 else ''} in the config:"
    return "\n".join([head, *(f"  {p}" for p in problems)])


def format_loc(loc: Loc) -> str:
    """``('targets', 1, 'format')`` → ``targets[1].format``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error: ErrorDetails, loc: Loc) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind == "missing":
        return "required key is missing"
    if kind == "string_pattern_mismatch":
        return _bad_name(error, loc)
    if kind == "list_or_literal":
        return f'expected a list of table names or "all"; for one table, write [{_toml(value)}]'
    if kind == "list_type" and isinstance(value, dict) and len(loc) == 1:
        return (
            f"expected [[{loc[0]}]] (double brackets, one block per entry); "
            f"[{loc[0]}] makes a single table"
        )
    message = _FRIENDLY.get(error["type"], error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    sensitive = _sensitive(loc)
    if (
        error["type"] not in ("value_error", "assertion_error")
        and _is_scalar(value)
        and not sensitive
    ):
        message += f" (got {value!r})"
    return message


def _bad_name(error: ErrorDetails, loc: Loc) -> str:
    pattern = error.get("ctx", {}).get("pattern")
    value = error.get("input")
    if pattern == FILE_MODE_PATTERN:
        return f'expected an octal mode such as "0640" (got {value!r})'
    allowed = "lowercase letters, digits, _ and -" if pattern == NAME_PATTERN else None
    message = f"use only {allowed or 'letters, digits and _'}"
    if loc and loc[-1] == "[key]":  # a table name, such as the NAME of [profiles.NAME]
        return f"the name {value!r}: {message}"
    if _sensitive(loc):
        return message
    message += f" (got {value!r})"
    if len(loc) >= 2 and loc[-2] == "tables" and isinstance(value, str):
        message += _table_hint(value)
    return message


def _table_hint(value: str) -> str:
    """What to write instead of a table given as ``namespace.table``, or as a path."""
    if _QUALIFIED_TABLE.fullmatch(value):
        namespace, _, table = value.partition(".")
        return f"; write the table as {_toml(table)} and set namespace = {_toml(namespace.lower())}"
    if any(mark in value for mark in ("/", "\\", "..")):
        return (
            '; a table is a DAP table\'s name, such as "accounts", not a path (`dapctl '
            "tables CONFIG` lists them; output says where files go)"
        )
    return ""


def _toml(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _sensitive(loc: Loc) -> bool:
    # A mistyped secret is still a secret: never echo what a *secret* key holds. A database
    # or state URL may carry a password, and one pasted where its variable's name belongs too.
    return any("secret" in str(part) or str(part) in _URL_KEYS for part in loc)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool) and len(repr(value)) < 80


def _unknown_key(loc: Loc) -> str:
    key = str(loc[-1])
    valid = _fields_at(loc[:-1])
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listing = f" (valid keys: {', '.join(valid)})" if valid and not close else ""
    return f"unknown key {key!r}{hint}{listing}"


def _fields_at(loc: Loc) -> list[str]:
    """The valid key names of the model at a key path, walking the ``Config`` models."""
    model: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:  # a dict key, such as a profile name
            continue
        inner = _model_of(info.annotation)
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _is_union_tag(part: str | int) -> bool:
    return isinstance(part, str) and part != "[key]" and bool(_UNION_TAG.search(part))


def _without_union_noise(errors: Sequence[ErrorDetails], raw: dict[str, Any]) -> list[ErrorDetails]:
    """Keep, for a union such as ``list[str] | "all"``, only the branch the input was meant for.

    Pydantic reports every branch's failure; a user who wrote a list wants to hear about the
    list, not that it is not ``"all"``.
    """
    kept = []
    for error in errors:
        tags = [i for i, p in enumerate(error["loc"]) if _is_union_tag(p)]
        if tags:
            where = error["loc"][: tags[0]]
            value = _value_at(raw, where)
            tag = str(error["loc"][tags[0]])
            if isinstance(value, list) != tag.startswith("list["):
                continue
            if not isinstance(value, list | str):
                error = {**error, "type": "union_mismatch"}
            elif isinstance(value, str) and error["type"] == "literal_error":
                error = {**error, "type": "list_or_literal", "input": value}
        kept.append(error)
    return kept or list(errors)


def _value_at(raw: Any, loc: Loc) -> Any:
    for part in loc:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _split_key(key: str) -> Loc:
    parts = re.finditer(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", key)
    # A quoted key may be empty (`"" = 1`): take the group that matched, not a non-empty one.
    return tuple(match.group(match.lastindex or 0) for match in parts)


def _key_lines(text: str) -> dict[Loc, int]:
    """Map each table header and key the file assigns to the line it stands on.

    TOML parsers do not report key positions, so this reads the file's lines once more:
    headers (``[a.b]``, ``[[targets]]`` counted per array) and ``key =`` lines.
    """
    lines: dict[Loc, int] = {}
    header: Loc = ()
    counts: dict[Loc, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        match = _HEADER.match(line)
        if match:
            base = _split_key(match.group(2))
            if match.group(1):
                counts[base] = counts.get(base, -1) + 1
                lines.setdefault(base, number)
                base = (*base, counts[base])
            header = base
            lines.setdefault(header, number)
            continue
        match = _ASSIGN.match(line)
        if match:
            lines.setdefault((*header, *_split_key(match.group(1))), number)
    return lines


def _line_of(lines: Mapping[Loc, int], loc: Loc) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
