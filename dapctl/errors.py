"""The errors dapctl raises and the exit statuses it returns.

Every failure a user can act on is a ``DapctlError`` carrying a message that says what went
wrong, where (file, line, key path, step address) and what to do about it. Errors from the
server keep its error ``type`` and ``uuid``, which identify the failure in the server's logs.
Only the command line (``dapctl.cli``) catches these and turns them into an ``ExitStatus``;
no message ever holds a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit codes, stable for scripts (documented in the README)."""

    SUCCESS = 0
    ERROR = 1
    CHANGES_PENDING = 2  # ``plan --detailed-exitcode``: the plan has steps to run
    INTERNAL_ERROR = 3  # an unexpected exception: a bug in dapctl
    STALE_WARN = 4  # ``status``: a table's data is older than its warn_after
    STALE_ERROR = 5  # ``status``: older than error_after, or never applied
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM: docker stop, systemd, Kubernetes' deadline


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop the way Ctrl-C stops (a ``KeyboardInterrupt`` for that reason)."""


class DapctlError(Exception):
    """Root of every error meant for the user."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(DapctlError):
    """The config file (or the command line) is malformed or inconsistent."""


class StateError(DapctlError):
    """The state file cannot be read, parsed or written."""


class LockError(StateError):
    """The state file is locked by another dapctl process."""


class StateConflictError(StateError):
    """The stored state changed since this process read it, or belongs to another lineage."""


class OutputError(DapctlError):
    """An output file cannot be written where the config says."""


class NeedsReload(OutputError):
    """A destination cannot take an incremental in place (a table's schema changed in a way
    only a fresh snapshot can apply): apply takes a snapshot instead, in the same run."""

    def __init__(self, table: str, changes: Sequence[str]) -> None:
        super().__init__(
            f"table {table} cannot be updated in place: {'; '.join(changes)}",
            hint="load a fresh snapshot of the table (dapctl replaces it atomically)",
        )
        self.table = table
        self.changes = list(changes)


class DatabaseError(OutputError):
    """A database could not be reached, or refused a statement; the message is redacted."""


class ApiError(DapctlError):
    """The DAP API answered with an error, or could not be reached.

    ``status`` is the HTTP status (None when no response arrived), ``error_type`` and
    ``uuid`` come from the server's ``{"error": {...}}`` body when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        uuid: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error_type = error_type
        self.uuid = uuid

    def __str__(self) -> str:
        text = super().__str__()
        return text if not self.uuid else f"{text} (error uuid {self.uuid})"


class AuthError(ApiError):
    """Logging in to the Identity Service failed for good."""


class SnapshotRequiredError(ApiError):
    """The incremental window asked for is no longer available: a new snapshot is needed."""


class JobFailedError(ApiError):
    """The server ran the query job and reported it failed."""


class Interrupted(DapctlError):
    """The user interrupted the run (Ctrl-C); work in flight stopped at a safe point."""
