"""The config language: frozen pydantic models for one dapctl TOML file.

A config declares ``[settings]``, a ``[retry]`` policy, credential ``[profiles.NAME]`` (one per
institution) and ``[[targets]]`` (what to export and where). These models are the single
source of truth for the language: the loader validates raw TOML into them, the planner and
apply read only them, and ``schemas/dapctl.schema.json`` is generated from them. They hold
the file's own words; secrets named indirectly (``*_env``, ``*_file``) are resolved later by
``loading.py``. Cross-field rules that need the whole file (unknown profile names, duplicate
targets, colliding outputs) live in ``Config``'s validators so every consumer gets them.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dapctl.buckets import is_url, parse_url
from dapctl.budgets import RateLimitSettings
from dapctl.identifiers import IDENTIFIER_RULE, is_identifier
from dapctl.redaction import holds_password
from dapctl.template import (
    ANY_TABLE,
    DEFAULT_OUTPUT,
    FORMAT_EXTENSIONS,
    PLACEHOLDERS,
    Claims,
    claimed_path,
    literal_extension,
    template_fields,
)

DEFAULT_BASE_URL = "https://api-gateway.instructure.com"

Format = Literal["jsonl", "csv", "tsv", "parquet"]
Mode = Literal["expanded", "condensed"]
NAME_PATTERN = r"^[a-z0-9_-]+$"
IDENTIFIER_PATTERN = r"^[A-Za-z0-9_]+$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=64)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN, max_length=256)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("a path cannot contain a NUL character")
    return value


PathText = Annotated[str, StringConstraints(min_length=1), AfterValidator(_no_nul)]


FILE_MODE_PATTERN = r"^0?[0-7]{3}$"


def _file_mode(value: str) -> str:
    bits = int(value, 8)
    if bits & 0o600 != 0o600:
        raise ValueError(f"{value}: the owner must keep read and write (0600 at least)")
    if bits & 0o111:
        raise ValueError(f"{value}: output files are data, never executable: no x bits")
    if bits & 0o002:
        raise ValueError(f"{value}: a file anyone may write could be changed under dapctl")
    return value


FileMode = Annotated[
    str,
    StringConstraints(pattern=FILE_MODE_PATTERN),
    AfterValidator(_file_mode),
]
StateNamespace = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$", max_length=128)]
# Namespaces and tables become path segments of output files: no separators, no dots.
IDENTIFIER_MAX_LENGTH = 128  # well under a file name's 255 bytes, prefixes and all
Identifier = Annotated[
    str, StringConstraints(pattern=IDENTIFIER_PATTERN, max_length=IDENTIFIER_MAX_LENGTH)
]


class PathError(ValueError):
    """A cross-field error that knows which key it is about (``loc``, for the loader)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class _Model(BaseModel):
    # Strict: a quoted number or boolean (concurrency = "4") is a mistake to point out, not
    # to coerce silently. Times stay lax: TOML writes them bare, but a string is a time too.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Settings(_Model):
    """``[settings]``: how dapctl runs. Every key is optional."""

    state: PathText = Field(
        "dapctl.state.json",
        description="State file (a relative path resolves against the config file's folder), "
        "or postgresql://host/db; no password in it.",
    )
    concurrency: int = Field(4, ge=1, le=64, description="Tables collected at once.")
    refresh_margin: float = Field(
        300.0, ge=0, le=3000, description="Renew a token when fewer seconds remain than this."
    )
    on_snapshot_required: Literal["snapshot", "fail"] = Field(
        "snapshot",
        description="When an incremental window is gone: take a fresh snapshot, or fail.",
    )
    state_env: EnvName | None = Field(
        None, description="Variable holding the state's whole URL (instead of state)."
    )
    state_namespace: StateNamespace | None = Field(
        None,
        description="This config's name among the states a shared backend (a database, a "
        "bucket) holds; default: the config file's name without its extension.",
    )
    lease_seconds: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="Workers sharing a PostgreSQL state: how long a claimed step stays one "
        "worker's without a heartbeat (sent every third of it); a worker frozen longer "
        "loses its steps to others.",
    )
    file_mode: FileMode = Field(
        "0600",
        description='Permissions of the output files dapctl writes, in octal: "0640" lets the '
        'group read them (folders it creates for them get the matching "0750"). Private by '
        "default; state, lock and log files stay private whatever this says.",
    )
    catch_up_after: Annotated[float, Field(ge=0)] | Literal["never"] = Field(
        3600.0,
        description="Seconds: after collecting a job an earlier apply started (with --no-wait, "
        "or by a run that was stopped), start an incremental that brings the table current "
        "in the same run only when that job's data is older than this at this apply's start "
        "(by the server's clock). Each one spends one of DAP's 5 job creations a minute, and "
        'DAP refreshes its data every few hours. 0: whenever the job ended before; "never": '
        "leave it to the next run.",
    )

    @property
    def file_mode_bits(self) -> int:
        return int(self.file_mode, 8)

    @field_validator("catch_up_after", mode="before")
    @classmethod
    def _catch_up_after(cls, value: object) -> object:
        # Checked before the union, whose per-branch errors would say nothing useful.
        if value == "never":
            return value
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return value
        shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
        raise ValueError(f'expected seconds, 0 or more, or "never"{shown}')

    @model_validator(mode="after")
    def _one_state(self) -> Settings:
        if self.state_env is not None and "state" in self.model_fields_set:
            raise PathError(("state_env",), "set only one of state and state_env")
        if holds_password(self.state):
            raise PathError(
                ("state",),
                "the URL holds a password, which must not sit in a config file; take it "
                "out and use PGPASSWORD, ~/.pgpass or state_env",
            )
        return self


class RetrySettings(_Model):
    """``[retry]``: how often and how patiently a failed call is tried again."""

    attempts: int = Field(5, ge=1, le=100, description="Tries per call, the first included.")
    initial_backoff: float = Field(1.0, gt=0, le=3600, description="First wait, in seconds.")
    max_backoff: float = Field(60.0, gt=0, le=3600, description="Longest wait, in seconds.")


class Profile(_Model):
    """``[profiles.NAME]``: one credential, usually one institution.

    A profile that names no credentials takes the official client's environment variables
    ``DAP_CLIENT_ID`` / ``DAP_CLIENT_SECRET`` (and ``DAP_API_URL`` for the base URL).
    """

    base_url: str | None = Field(None, description=f"API base URL; default {DEFAULT_BASE_URL}.")
    client_id: str | None = Field(None, min_length=1, description="Client ID (not a secret).")
    client_id_env: EnvName | None = Field(None, description="Variable with the ID.")
    client_secret: SecretStr | None = Field(
        None, description="The secret itself: accepted, with a warning; prefer _env or _file."
    )
    client_secret_env: EnvName | None = Field(None, description="Variable with it.")
    client_secret_file: PathText | None = Field(None, description="File holding it.")
    ca_bundle: PathText | None = Field(
        None,
        description="PEM file of CA certificates to trust instead of the system's, for "
        "networks behind a TLS-inspecting proxy. Verification is never switched off.",
    )
    emulator: bool = Field(False, description="Use the built-in emulator (demo credentials).")
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)

    @model_validator(mode="after")
    def _one_source_each(self) -> Profile:
        ids = [self.client_id, self.client_id_env]
        secrets = [self.client_secret, self.client_secret_env, self.client_secret_file]
        if sum(x is not None for x in ids) > 1:
            raise ValueError("set only one of client_id and client_id_env")
        if sum(x is not None for x in secrets) > 1:
            raise ValueError(
                "set only one of client_secret, client_secret_env and client_secret_file"
            )
        own = [*ids, *secrets, self.base_url, self.ca_bundle]
        if self.emulator and any(x is not None for x in own):
            raise ValueError(
                "emulator = true serves its own base URL and demo credentials; "
                "remove base_url, ca_bundle and the client_id/client_secret keys"
            )
        return self


class Database(_Model):
    """``[databases.NAME]``: a PostgreSQL or DuckDB database that targets keep tables in.

    The URL names no password: PostgreSQL takes it from libpq's own variables
    (``PGPASSWORD``), ``.pgpass`` or a service file; or the whole URL comes from
    ``url_env`` / ``url_file``, which may hold one.
    """

    url: str | None = Field(
        None,
        min_length=1,
        description="postgresql://user@host:port/db or duckdb:///path.duckdb (relative to "
        "the config's folder); no password in it.",
    )
    url_env: EnvName | None = Field(None, description="Variable holding the whole URL.")
    url_file: PathText | None = Field(None, description="File holding the whole URL.")

    @model_validator(mode="after")
    def _one_source(self) -> Database:
        given = [x for x in (self.url, self.url_env, self.url_file) if x is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of url, url_env and url_file")
        if self.url is not None and holds_password(self.url):
            raise PathError(
                ("url",),
                "the URL holds a password, which must not sit in a config file; take it "
                "out and use PGPASSWORD, ~/.pgpass, url_env or url_file",
            )
        return self


DB_PLACEHOLDERS = ("profile", "target", "namespace", "table")


def _db_template(value: str) -> str:
    for name in template_fields(value):
        if name not in DB_PLACEHOLDERS:
            known = " ".join("{" + p + "}" for p in DB_PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{name}}}; use {known}")
    return value


DbTemplate = Annotated[str, StringConstraints(min_length=1), AfterValidator(_db_template)]


class Target(_Model):
    """``[[targets]]``: tables to export from one namespace, and where to write them."""

    name: Name = Field(description="Unique name, [a-z0-9_-]+; part of every step's address.")
    profiles: list[Name] | None = Field(None, description="Profiles to run; default: all.")
    namespace: Identifier = Field("canvas", description="DAP namespace, such as canvas.")
    tables: list[Identifier] | Literal["all"] = Field(
        description='Table names, or "all": every table of the namespace, listed at apply.'
    )
    format: Format = Field("jsonl", description="Output format.")
    mode: Mode | None = Field(None, description="expanded or condensed nested fields.")
    sync: Literal["incremental", "snapshot"] = Field(
        "incremental",
        description="incremental: a snapshot, then chained incrementals; snapshot: every run.",
    )
    since: AwareDatetime | None = Field(
        None,
        strict=False,
        description="First run: an incremental from here instead of a snapshot; not in the "
        'future, and not with sync = "snapshot".',
    )
    output: PathText = Field(
        DEFAULT_OUTPUT,
        description="Output path template, or an s3://, gs:// or az:// URL template (objects "
        "written once). A target with a database writes files only when it sets output too.",
    )
    database: Name | None = Field(None, description="Keep the tables in this [databases] entry.")
    db_schema: DbTemplate = Field(
        "{namespace}", description="The database schema's name, a template."
    )
    db_table: DbTemplate = Field("{table}", description="The database table's name, a template.")

    @field_validator("tables")
    @classmethod
    def _tables_unique(cls, tables: list[str] | str) -> list[str] | str:
        if isinstance(tables, list):
            if not tables:
                raise ValueError('list at least one table, or write tables = "all"')
            duplicates = sorted({t for t in tables if tables.count(t) > 1})
            if duplicates:
                raise ValueError(f"table listed twice: {', '.join(duplicates)}")
        return tables

    @field_validator("namespace")
    @classmethod
    def _lowercase_namespace(cls, namespace: str) -> str:
        if namespace != namespace.lower():
            raise ValueError(f"namespaces are lowercase: did you mean {namespace.lower()!r}?")
        return namespace

    @field_validator("since")
    @classmethod
    def _since_not_in_future(cls, since: datetime | None, info: ValidationInfo) -> datetime | None:
        # The loader's clock comes in through the validation context; tests pass their own.
        context = info.context if isinstance(info.context, dict) else {}
        now = context.get("now") or datetime.now(UTC)
        if since is not None and since > now:
            raise ValueError(
                "since is in the future: the first incremental would start after its own end"
            )
        return since

    @field_validator("output")
    @classmethod
    def _known_placeholders(cls, output: str) -> str:
        if is_url(output):
            parse_url(output)  # says what is wrong with a bucket URL, never echoing it
        known = " ".join("{" + p + "}" for p in PLACEHOLDERS)
        for name in template_fields(output):
            if name not in PLACEHOLDERS:
                raise ValueError(f"unknown placeholder {{{name}}}; use {known}")
        for _, field_name, spec, conversion in string.Formatter().parse(output):
            if spec or conversion:
                raise ValueError(
                    f"write placeholders plainly, as {{{field_name}}}: no !conversion or :format"
                )
        segments = output.replace("\\", "/").split("/")
        if ".." in segments:
            raise ValueError("'..' is not allowed in an output path")
        if segments[-1] in ("", "."):
            raise ValueError("an output path must end in a file name, not a folder")
        return output

    @property
    def writes_files(self) -> bool:
        """Whether the target writes output files (a database target only if it says so)."""
        return self.database is None or "output" in self.model_fields_set

    @model_validator(mode="after")
    def _objects_written_once(self) -> Target:
        if (
            self.writes_files
            and is_url(self.output)
            and "timestamp" not in template_fields(self.output)
        ):
            raise PathError(
                ("output",),
                "an object in a bucket is written once and never replaced: put {timestamp} "
                "in output, so that each run writes objects of its own",
            )
        return self

    @model_validator(mode="after")
    def _incremental_keeps_history(self) -> Target:
        if self.since is not None and self.sync == "snapshot":
            raise PathError(
                ("since",),
                'since starts the first incremental; sync = "snapshot" takes none, so it '
                "would be ignored: remove one of them",
            )
        extension = literal_extension(self.output)
        if self.writes_files and FORMAT_EXTENSIONS.get(extension or "") not in (None, self.format):
            raise PathError(
                ("output",),
                f"the file name ends in .{extension} but format = {self.format!r}: write "
                f".{{format}}, or .{self.format}",
            )
        if self.database is not None and self.format != "jsonl":
            raise PathError(
                ("format",),
                'a target with a database loads JSON Lines: use format = "jsonl" (its files, '
                "if any, are JSON Lines too)",
            )
        if (
            self.writes_files
            and self.sync == "incremental"
            and "timestamp" not in template_fields(self.output)
        ):
            raise PathError(
                ("output",),
                "sync = incremental needs {timestamp} in output: without it each run "
                "would replace the previous run's changes",
            )
        return self


class Config(_Model):
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


def address_of(profile: str, target: str, namespace: str, table: str) -> str:
    """A step's address, ``profile/target/namespace.table``: the key of everything about it."""
    return f"{profile}/{target}/{namespace}.{table}"


def db_names(target: Target, profile: str, table: str) -> tuple[str, str]:
    """The (schema, table) a step keeps in its target's database."""
    fields = {"profile": profile, "target": target.name, "namespace": target.namespace}
    return (
        target.db_schema.format(**fields, table=table),
        target.db_table.format(**fields, table=table),
    )
