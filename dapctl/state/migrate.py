"""Moving a state to another backend: ``dapctl state migrate CONFIG --to URL_OR_PATH``.

``migrate`` holds both stores' locks (the source's first, so no apply changes it meanwhile),
reads the source and writes it whole to the destination with its lineage and serial, so it
stays the same state wherever it lives; then it reads the copy back and compares. A
destination that holds steps already is refused unless ``force``; one that holds an empty
state (or, with ``force``, any) is removed first, which needs a store that can ``discard``
(every backend here can). The source is left as it was, a backup until the config points at
the destination. ``destination`` checks the ``--to`` value: one holding a password, in any
form `dapctl.redaction.redact` knows, is refused (it would show in the process list and
the shell's history), and a path is taken relative to the working directory, as any path
typed on a command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from dapctl.errors import ConfigError, StateError
from dapctl.redaction import holds_password
from dapctl.state.model import State
from dapctl.state.store import StateStore
from dapctl.text import format_count

COMMAND = "dapctl state migrate"


@runtime_checkable
class Discarding(Protocol):
    def discard(self) -> None:
        """Remove the stored state whole, if it is still what this store last read."""
        ...


@dataclass(frozen=True)
class Migrated:
    source: str
    destination: str
    state: State
    replaced: State | None  # what the destination held before, if anything
    unchanged: bool  # the destination held this very state already

    def to_json(self) -> dict[str, Any]:
        replaced = self.replaced
        return {
            "from": self.source,
            "to": self.destination,
            "lineage": self.state.lineage,
            "serial": self.state.serial,
            "addresses": len(self.state.steps),
            "unchanged": self.unchanged,
            "replaced": None if replaced is None else _summary(replaced),
        }


def _summary(state: State) -> dict[str, Any]:
    return {"lineage": state.lineage, "serial": state.serial, "addresses": len(state.steps)}


def describe(state: State) -> str:
    count = len(state.steps)
    addresses = f"{format_count(count)} address{'' if count == 1 else 'es'}"
    return f"{addresses}, serial {state.serial}, lineage {state.lineage}"


def destination(value: str) -> str:
    """The ``--to`` value as a store location: a URL as given, a path made absolute."""
    if holds_password(value):  # user:pw@, ?password=, or a keyword string's password=
        raise ConfigError(
            "--to: the URL holds a password, which would show in the process list and the "
            "shell's history; take it out and use PGPASSWORD or ~/.pgpass"
        )
    try:
        scheme = urlsplit(value).scheme
    except ValueError as exc:
        raise ConfigError(f"--to: not a URL or path dapctl can read: {exc}") from None
    if len(scheme) <= 1:  # a path (a one-letter "scheme" is a Windows drive)
        return str(Path(value).expanduser().absolute())
    return value


def migrate(
    source: StateStore, target: StateStore, *, force: bool, lock_timeout: float
) -> Migrated:
    """Copy ``source``'s state to ``target`` under both locks; see the module docstring."""
    if source.location == target.location:
        raise ConfigError(f"--to: {target.location} is where the state is already")
    with (
        source.lock(timeout=lock_timeout, command=COMMAND),
        target.lock(timeout=lock_timeout, command=COMMAND),
    ):
        state = source.read()
        if state is None:
            raise StateError(f"{source.location}: no state yet (no apply has run): nothing to copy")
        existing = target.read()
        if existing == state:
            return Migrated(source.location, target.location, state, None, unchanged=True)
        if existing is not None:
            _clear(target, existing, force=force)
        target.write(state)
        if target.read() != state:
            raise StateError(f"{target.location}: the copy read back differs from the state")
    return Migrated(source.location, target.location, state, existing, unchanged=False)


def _clear(target: StateStore, existing: State, *, force: bool) -> None:
    if existing.steps and not force:
        raise StateError(
            f"{target.location}: holds a state already ({describe(existing)})",
            hint="pass --force to replace it, or migrate to another place (or namespace)",
        )
    if not isinstance(target, Discarding):
        raise StateError(
            f"{target.location}: holds a state, and this backend cannot remove one",
            hint="remove it by hand, then migrate again",
        )
    target.discard()
