"""``[[targets]]``: the tables to export from one namespace, and where each lands.

A target writes files (a path or bucket URL template, ``output``), keeps tables in a
database (``database``, with ``db_schema`` and ``db_table`` templates), or both. Rules within
one target are here: placeholders each template knows, a bucket object written once, an
incremental that keeps history, a file name that agrees with its format. A step's address
(``address_of``) and its database names (``db_names``) are derived here too, for everything
that keys on them. Rules across targets are ``model.Config``'s.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dapctl.buckets import is_url, parse_url
from dapctl.config.durations import Freshness
from dapctl.config.fields import FrozenModel, Identifier, Name, PathError, PathText
from dapctl.template import (
    DEFAULT_OUTPUT,
    FORMAT_EXTENSIONS,
    PLACEHOLDERS,
    literal_extension,
    template_fields,
)

Format = Literal["jsonl", "csv", "tsv", "parquet"]
Mode = Literal["expanded", "condensed"]

DB_PLACEHOLDERS = ("profile", "target", "namespace", "table")


def _db_template(value: str) -> str:
    for name in template_fields(value):
        if name not in DB_PLACEHOLDERS:
            known = " ".join("{" + p + "}" for p in DB_PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{name}}}; use {known}")
    return value


DbTemplate = Annotated[str, StringConstraints(min_length=1), AfterValidator(_db_template)]


class Target(FrozenModel):
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
    history: bool = Field(
        False,
        description="A database target: also keep every version of every row in the history "
        "table (db_history_table), written with each load.",
    )
    db_history_table: DbTemplate = Field(
        "{table}__history", description="The history table's name, a template as db_table."
    )
    append_only: bool | None = Field(
        None,
        description="A database target: rows are only added or replaced, never removed (logs "
        "kept past DAP's 30 days); default: true for the canvas_logs namespace.",
    )
    partition_by: Identifier | Literal[False] | None = Field(
        None,
        description="An append-only PostgreSQL table: the timestamp column its table is "
        "partitioned by day on, when dapctl creates it; false: one table. Default: timestamp "
        "for the canvas_logs namespace, else none.",
    )
    deletes: Literal["hard", "soft"] = Field(
        "hard",
        description='A database target: "hard" removes a row DAP deleted; "soft" keeps it with '
        "dap_deleted_at set to when it was deleted (cleared if the key comes back).",
    )
    freshness: Freshness | None = Field(
        None,
        description='How old its data may be: { warn_after = "6h", error_after = "1d" } '
        "(default: [settings] freshness).",
    )
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

    @property
    def appends(self) -> bool:
        """Whether its table is append-only: as it says, else for ``canvas_logs``."""
        if self.append_only is not None:
            return self.append_only
        return self.namespace == "canvas_logs"

    @property
    def partition_column(self) -> str | None:
        """The column an append-only table is partitioned by day on (PostgreSQL), if any."""
        if not self.appends or self.partition_by is False:
            return None
        if self.partition_by is None:
            return "timestamp" if self.namespace == "canvas_logs" else None
        return self.partition_by

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
        if self.history and self.database is None:
            raise PathError(
                ("history",),
                "history = true keeps every version in a database table: it needs database; "
                "files already keep every run's changes",
            )
        if self.append_only and self.database is None:
            raise PathError(
                ("append_only",),
                "append_only keeps a database table's rows: it needs database; files already "
                "keep every run's records",
            )
        if self.partition_by and not self.appends:
            raise PathError(
                ("partition_by",),
                "partition_by splits an append-only table by day: it needs append_only = true "
                "(the default for canvas_logs)",
            )
        if self.appends and self.deletes == "soft":
            raise PathError(
                ("deletes",),
                'an append-only table removes no row, so deletes = "soft" has nothing to mark: '
                "remove one of them (canvas_logs targets are append-only unless "
                "append_only = false)",
            )
        if self.deletes == "soft" and self.database is None:
            raise PathError(
                ("deletes",),
                'deletes = "soft" keeps deleted rows in a database table: it needs database; '
                "files already keep every change (each incremental's deletes are records)",
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


def address_of(profile: str, target: str, namespace: str, table: str) -> str:
    """A step's address, ``profile/target/namespace.table``: the key of everything about it."""
    return f"{profile}/{target}/{namespace}.{table}"


def history_name(target: Target, profile: str, table: str) -> str | None:
    """The history table a step keeps beside its table (in its schema), if any."""
    if not target.history:
        return None
    fields = {"profile": profile, "target": target.name, "namespace": target.namespace}
    return target.db_history_table.format(**fields, table=table)


def db_names(target: Target, profile: str, table: str) -> tuple[str, str]:
    """The (schema, table) a step keeps in its target's database."""
    fields = {"profile": profile, "target": target.name, "namespace": target.namespace}
    return (
        target.db_schema.format(**fields, table=table),
        target.db_table.format(**fields, table=table),
    )
