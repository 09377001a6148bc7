"""``Config``: a whole dapctl config file, and the rules that need all of it.

The sections' own rules live with their models; what only the whole file can tell is checked
here, in ``Config``'s validators, so every consumer gets it: target names unique, every
profile and database a target names declared, no two steps writing the same output path or
keeping the same database table, database names that every engine takes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from dapctl.config.connections import Database, Notify, Profile
from dapctl.config.durations import Freshness
from dapctl.config.fields import FrozenModel, Name, PathError
from dapctl.config.settings import RetrySettings, Settings
from dapctl.config.target import Target, address_of, db_names
from dapctl.databases.registry import engine_of
from dapctl.errors import ConfigError
from dapctl.identifiers import IDENTIFIER_RULE, is_identifier
from dapctl.template import ANY_TABLE, Claims, claimed_path, template_fields


class Config(FrozenModel):
    """A whole dapctl config file."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="dapctl config",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    settings: Settings = Field(default_factory=Settings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    profiles: dict[Name, Profile] = Field(
        min_length=1,
        description="Credential profiles.",
        # pydantic states the name pattern as patternProperties only; without this a
        # misnamed profile would pass an editor's schema check unexamined.
        json_schema_extra={"additionalProperties": False},
    )
    targets: list[Target] = Field(min_length=1, description="What to export.")
    notify: list[Notify] = Field(
        default_factory=list, description="Webhooks told of failures, stale tables, recoveries."
    )
    databases: dict[Name, Database] = Field(
        default_factory=dict,
        description="Databases that targets keep tables in.",
        json_schema_extra={"additionalProperties": False},
    )

    @model_validator(mode="after")
    def _targets_consistent(self) -> Config:
        seen: set[str] = set()
        for index, target in enumerate(self.targets):
            if target.name in seen:
                raise PathError(
                    ("targets", index, "name"),
                    f"two targets are named {target.name!r}; names must be unique",
                )
            seen.add(target.name)
            if target.database is not None and target.database not in self.databases:
                known = ", ".join(sorted(self.databases)) or "none are declared"
                raise PathError(
                    ("targets", index, "database"),
                    f"target {target.name!r} names unknown database {target.database!r}; "
                    f"databases: {known}",
                )
            self._database_can(index, target)
            for name in target.profiles or ():
                if name not in self.profiles:
                    raise PathError(
                        ("targets", index, "profiles"),
                        f"target {target.name!r} names unknown profile {name!r}; "
                        f"profiles are: {', '.join(sorted(self.profiles))}",
                    )
        self._outputs_distinct()
        self._tables_distinct()
        return self

    def _database_can(self, index: int, target: Target) -> None:
        """History tables and soft deletes need a SQL database, not a lake (its URL written
        in the config; one from url_env or url_file is checked when the load starts)."""
        database = self.databases.get(target.database) if target.database else None
        if database is None or database.url is None:
            return
        try:
            sql = engine_of(database.url).capabilities.sql
        except ConfigError:
            return  # an unknown scheme is reported where the database is opened
        for key, asked in (("history", target.history), ("deletes", target.deletes == "soft")):
            if asked and not sql:
                raise PathError(
                    ("targets", index, key),
                    f"target {target.name!r}: {key} needs a SQL database (PostgreSQL, DuckDB "
                    f"or MySQL), and {target.database!r} is a lake; a lake table keeps its own "
                    "older versions (time travel)",
                )

    def _tables_distinct(self) -> None:
        """Two steps may not keep the same database table."""
        claimed: dict[tuple[str, str, str], str] = {}
        for index, target in enumerate(self.targets):
            if target.database is None:
                continue
            if target.tables == "all" and "table" not in template_fields(target.db_table):
                raise PathError(
                    ("targets", index, "db_table"),
                    'tables = "all" keeps many tables: add {table} to db_table',
                )
            tables = ["*"] if target.tables == "all" else target.tables
            for profile in self.target_profiles(target):
                for table in tables:
                    key = (target.database, *_db_identifiers(target, index, profile, table))
                    address = address_of(profile, target.name, target.namespace, table)
                    if key in claimed:
                        raise PathError(
                            ("targets", index, "db_table"),
                            f"steps {claimed[key]} and {address} would keep the same table "
                            f"{key[1]}.{key[2]} in database {key[0]}; add {{profile}} to "
                            "db_schema or db_table",
                        )
                    claimed[key] = address

    def _outputs_distinct(self) -> None:
        # {kind} and {timestamp} differ between runs, not between the steps of one run, so
        # they stay literal: two steps whose paths then agree would overwrite each other. A
        # target with tables = "all" claims every path its template gives for any table.
        claims = Claims()
        for index, target in enumerate(self.targets):
            tables = [ANY_TABLE] if target.tables == "all" else target.tables
            if not target.writes_files:
                continue
            for profile in self.target_profiles(target):
                _table_in_template(target, profile, index)
                for table in tables:
                    path = claimed_path(target, profile, table)
                    shown = "*" if table == ANY_TABLE else table
                    address = address_of(profile, target.name, target.namespace, shown)
                    clash = claims.holder(path)
                    if clash is not None:
                        shown_path = path.replace(ANY_TABLE, "*")
                        raise PathError(
                            ("targets", index, "output"),
                            f"steps {clash} and {address} would write the same output "
                            f"path {shown_path!r}; add {{table}}, {{target}} or {{profile}} "
                            "to output",
                        )
                    claims.add(path, address)

    def target(self, name: str) -> Target:
        """The target of that name (names are unique)."""
        return next(target for target in self.targets if target.name == name)

    def freshness(self, target: Target) -> Freshness | None:
        """The target's freshness contract, or the settings' default."""
        return target.freshness or self.settings.freshness

    def catch_up_after(self, target: Target) -> float | Literal["never"]:
        """``catch_up_after`` for the target: the setting when the file sets it, else the
        target's ``warn_after`` when it has one, else the setting's default."""
        fresh = self.freshness(target)
        if "catch_up_after" in self.settings.model_fields_set or fresh is None:
            return self.settings.catch_up_after
        return fresh.warn_after if fresh.warn_after is not None else self.settings.catch_up_after

    def target_profiles(self, target: Target) -> list[str]:
        """The profiles a target runs for, in the order the file declares them."""
        wanted = target.profiles
        return [p for p in self.profiles if wanted is None or p in wanted]


def _table_in_template(target: Target, profile: str, index: int) -> None:
    if target.tables == "all" and "table" not in template_fields(target.output):
        every = address_of(profile, target.name, target.namespace, "*")
        raise PathError(
            ("targets", index, "output"),
            f'tables = "all": the steps {every} would all write the same output '
            f"path {target.output!r}; add {{table}} to output",
        )


def _db_identifiers(target: Target, index: int, profile: str, table: str) -> tuple[str, str]:
    """A step's (schema, table) in its database, refused here, before any job, unless both
    are identifiers the database takes. ``table`` is ``*`` for every table of ``tables =
    "all"``, checked as a plain name stands in for it."""
    names = db_names(target, profile, table)
    checked = db_names(target, profile, "t") if table == "*" else names
    for key, shown, value in zip(("db_schema", "db_table"), names, checked, strict=True):
        if not is_identifier(value):
            address = address_of(profile, target.name, target.namespace, table)
            raise PathError(
                ("targets", index, key),
                f"{shown!r}, the {key} of step {address}, is not a plain SQL name: "
                f"{IDENTIFIER_RULE}",
            )
    return names
