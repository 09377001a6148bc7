"""Looking at what a profile can read: its namespaces' tables and a table's schema.

``list_tables`` and ``describe_table`` log in as one profile (through ``connect``, so the
embedded emulator works too) and ask the Query API; the results are plain values that
render as text or JSON. A schema flattens into columns with dotted names (``key.id``,
``value.name``, ``meta.ts``) as the CSV/TSV headers name them, each with its JSON type,
format, enum and whether it may be missing (null) in a record. ``pick_profile`` chooses the
profile a command means: the one named, or the only one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dapctl.api.session import Connection, connect
from dapctl.config import Config
from dapctl.credentials import resolve_used
from dapctl.errors import ConfigError
from dapctl.loading import LoadedConfig
from dapctl.text import format_table, plural


def pick_profile(config: Config, name: str | None) -> str:
    """The profile named, or the config's only profile."""
    names = list(config.profiles)
    if name is None:
        if len(names) == 1:
            return names[0]
        raise ConfigError(
            f"this config has {len(names)} profiles; say which with --profile: {', '.join(names)}"
        )
    if name not in config.profiles:
        raise ConfigError(f"--profile {name}: no such profile; profiles are: {', '.join(names)}")
    return name


def default_namespaces(config: Config, profile: str) -> list[str]:
    """The namespaces of the targets that run for ``profile``, else ``canvas``."""
    found = [t.namespace for t in config.targets if profile in config.target_profiles(t)]
    return list(dict.fromkeys(found)) or ["canvas"]


def list_tables(
    loaded: LoadedConfig,
    *,
    profile: str,
    namespaces: Sequence[str],
    environ: Mapping[str, str],
    connection: Connection | None = None,
) -> dict[str, list[str]]:
    """Each namespace's tables, sorted, as the profile sees them."""
    credentials = resolve_used(loaded, [profile], environ=environ)
    with connect(loaded.config, credentials, connection=connection) as clients:
        client = clients[profile]
        return {ns: sorted(client.list_tables(ns)) for ns in namespaces}


def render_tables(profile: str, tables: Mapping[str, Sequence[str]]) -> str:
    blocks = [
        "\n".join(
            [f"{namespace}: {plural(len(names), 'table')} (profile {profile})"]
            + [f"  {name}" for name in names]
        )
        for namespace, names in tables.items()
    ]
    return "\n\n".join(blocks)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    format: str | None = None
    enum: tuple[str, ...] = ()
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "nullable": self.nullable,
            "enum": list(self.enum) or None,
            "description": self.description,
        }


@dataclass(frozen=True)
class TableDescription:
    namespace: str
    table: str
    version: int
    columns: tuple[Column, ...]
    schema: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "table": self.table,
            "version": self.version,
            "columns": [c.to_json() for c in self.columns],
            "schema": self.schema,
        }

    def render_text(self) -> str:
        rows = [
            (
                c.name,
                c.type + (f" ({c.format})" if c.format else ""),
                "yes" if c.nullable else "no",
                ", ".join(c.enum) or (c.description or "")[:60],
            )
            for c in self.columns
        ]
        head = (
            f"{self.namespace}.{self.table}: schema version {self.version}, "
            f"{len(self.columns)} columns"
        )
        table = format_table(("COLUMN", "TYPE", "NULLABLE", "VALUES / NOTE"), rows)
        return f"{head}\n\n{table}"


def split_table(text: str) -> tuple[str, str]:
    namespace, dot, table = text.partition(".")
    if not dot or not namespace or not table:
        raise ConfigError(f"{text!r}: name a table as NAMESPACE.TABLE, e.g. canvas.accounts")
    return namespace, table


def describe_table(
    loaded: LoadedConfig,
    *,
    profile: str,
    namespace: str,
    table: str,
    environ: Mapping[str, str],
    connection: Connection | None = None,
) -> TableDescription:
    """The table's schema version and columns, as the profile sees them."""
    credentials = resolve_used(loaded, [profile], environ=environ)
    with connect(loaded.config, credentials, connection=connection) as clients:
        schema = clients[profile].get_schema(namespace, table)
    columns = tuple(flatten(schema.schema_))
    return TableDescription(namespace, table, schema.version, columns, schema.schema_)


def flatten(schema: Mapping[str, Any]) -> Iterator[Column]:
    """Columns of a DAP table schema: ``key``, ``value`` and ``meta``, nested objects dotted.

    Objects without properties (free-form JSON) stay one column of type ``object``.
    """
    definitions = schema.get("definitions") or schema.get("$defs") or {}
    yield from _columns(schema, "", definitions, nullable=False)


def _columns(
    node: Mapping[str, Any], prefix: str, definitions: Mapping[str, Any], *, nullable: bool
) -> Iterator[Column]:
    node, optional = _resolve(node, definitions)
    properties = node.get("properties")
    if node.get("type") == "object" and isinstance(properties, Mapping) and properties:
        required = set(node.get("required") or ())
        # Whether a column may be null is said by its own object: every ``value.*`` column
        # is absent in a deletion record, which says nothing about the column.
        for name, child in properties.items():
            path = f"{prefix}.{name}" if prefix else name
            yield from _columns(child, path, definitions, nullable=name not in required)
        return
    yield Column(
        name=prefix,
        type=_type_name(node),
        nullable=nullable or optional,
        format=node.get("format"),
        enum=tuple(str(v) for v in node.get("enum") or ()),
        description=node.get("description"),
    )


def _resolve(node: Mapping[str, Any], definitions: Mapping[str, Any]) -> tuple[Any, bool]:
    """Follow a local ``$ref`` and unwrap ``oneOf``/``anyOf`` with null; say if null is allowed."""
    optional = False
    for _ in range(16):  # a bound, against reference cycles
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in definitions:
            node = definitions[ref.rsplit("/", 1)[-1]]
            continue
        choices = node.get("oneOf") or node.get("anyOf")
        if isinstance(choices, list):
            others = [c for c in choices if c.get("type") != "null"]
            optional = optional or len(others) < len(choices)
            if len(others) == 1:
                node = others[0]
                continue
        break
    types = node.get("type")
    if isinstance(types, list) and "null" in types:
        optional = True
    return node, optional


def _type_name(node: Mapping[str, Any]) -> str:
    types = node.get("type")
    if isinstance(types, list):
        return "|".join(str(t) for t in types if t != "null") or "null"
    if isinstance(types, str):
        return types
    if "oneOf" in node or "anyOf" in node:
        return "union"
    return "any"
