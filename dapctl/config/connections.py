"""``[profiles.NAME]`` and ``[databases.NAME]``: what dapctl connects to, and with what.

A profile is one credential for DAP (usually one institution); a database is one PostgreSQL
or DuckDB database that targets keep tables in. Both may name a secret three ways (the value
itself, ``*_env``, ``*_file``) and these models allow exactly one; they hold the file's own
words, and ``secret_sources`` reads what an ``*_env`` or ``*_file`` names later. Neither
allows a password written into a URL.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from dapctl.budgets import RateLimitSettings
from dapctl.config.fields import EnvName, FrozenModel, PathError, PathText
from dapctl.redaction import holds_password

DEFAULT_BASE_URL = "https://api-gateway.instructure.com"


class Profile(FrozenModel):
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


class Database(FrozenModel):
    """``[databases.NAME]``: a database (PostgreSQL, MySQL, DuckDB) or a lake (Delta, Iceberg)
    that targets keep tables in.

    The URL names no password: PostgreSQL takes it from libpq's own variables
    (``PGPASSWORD``), ``.pgpass`` or a service file; or the whole URL comes from
    ``url_env`` / ``url_file``, which may hold one.
    """

    url: str | None = Field(
        None,
        min_length=1,
        description="postgresql://user@host:port/db, mysql://user@host:3306/db, "
        "duckdb:///path.duckdb (relative to the config's folder), or a lake: "
        "delta+file:///path, delta+s3://bucket/prefix, delta+az://container/prefix, "
        "iceberg+file:///path, iceberg+s3://bucket/prefix, iceberg+az://container/prefix (its "
        "catalog in PostgreSQL: ?catalog=postgresql://user@host/db); no password in it.",
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


NotifyOn = Literal["failure", "stale", "recovered"]


class Notify(FrozenModel):
    """``[[notify]]``: a webhook told once per apply when a step failed, a table went
    stale, or a failing table recovered. Its URL is a secret (it carries its own token):
    only ``url_env`` or ``url_file`` may give it, and it is never printed."""

    url: str | None = Field(
        None, description="Refused: a webhook URL is a secret; use url_env or url_file."
    )
    url_env: EnvName | None = Field(None, description="Variable holding the webhook's URL.")
    url_file: PathText | None = Field(None, description="File holding the webhook's URL.")
    on: list[NotifyOn] = Field(
        ["failure", "recovered"],
        min_length=1,
        description='When to send: "failure" (a step failed), "stale" (a table is beyond its '
        'freshness after the apply), "recovered" (a table that failed last run succeeded).',
    )
    format: Literal["slack", "json"] = Field(
        "json", description='"slack" (an incoming webhook\'s {text}) or "json" (the facts).'
    )

    @model_validator(mode="after")
    def _one_source(self) -> Notify:
        if self.url is not None:
            raise PathError(
                ("url",),
                "a webhook URL is a secret and must not sit in a config file; put it in a "
                "variable (url_env) or a private file (url_file)",
            )
        if (self.url_env is None) == (self.url_file is None):
            raise ValueError("set exactly one of url_env and url_file")
        return self
