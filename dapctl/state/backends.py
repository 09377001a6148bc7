"""The state backends dapctl knows: URL scheme -> constructor, the extra it needs, what it can do.

One ``Backend`` line per backend, as Terraform's backend map in ``init.go``: its name, the URL
schemes that choose it, an example for messages, its opener (``module:function``, imported only
when chosen), the package it needs and the extra that installs it, and its capabilities:
``leases`` (per-step leases, so many workers share one apply) and ``shares_budgets`` (the
rate-limit budgets every process spends) are PostgreSQL's alone. A state in a bucket is offered
for every object store of ``objects.registry``, so a new store brings its state with it. The
local file is what a value with no scheme chooses (a one-letter "scheme" is a Windows drive);
``memory`` has no scheme: it is for tests, and its line keeps it in the contract suite.

``store_at`` is the factory: a scheme no backend serves is refused with the examples of those
that exist, and a backend whose package is missing names the extra (``require``, which
``loading.require_extras`` calls too, so ``validate`` says it before anything runs).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dapctl.errors import ConfigError
from dapctl.objects.registry import STORES

if TYPE_CHECKING:
    from dapctl.loading import LoadedConfig
    from dapctl.state.store import StateStore

Importer = Callable[[str], object]


@dataclass(frozen=True)
class Backend:
    name: str
    schemes: tuple[str, ...]
    example: str
    opener: str  # "module:function", called as function(value, loaded=..., where=...)
    package: str | None = None  # the module it needs
    extra: str | None = None  # the dapctl extra that installs it
    what: str = ""  # for "{what} needs the {package} package"
    leases: bool = False
    shares_budgets: bool = False


BACKENDS: tuple[Backend, ...] = (
    Backend("file", (), "a local path", "dapctl.state.local:open_local"),
    Backend(
        "postgresql",
        ("postgresql", "postgres"),
        "postgresql://host/db",
        "dapctl.state.postgres:open_postgres",
        package="psycopg",
        extra="postgresql",
        what="a PostgreSQL state",
        leases=True,
        shares_budgets=True,
    ),
    *(
        Backend(
            store.name,
            store.schemes,
            store.example,
            "dapctl.state.objects:open_objects_state",
            package=store.package,
            extra=store.extra,
            what=f"a state in {store.schemes[0]}://",
        )
        for store in STORES
    ),
    Backend("memory", (), "in memory (tests only)", "dapctl.state.memory:open_memory"),
)
LOCAL = BACKENDS[0]


def backend_for(value: str, *, where: str) -> Backend:
    """The backend a state location chooses; ``ConfigError`` for a scheme none serves."""
    scheme = urlsplit(value).scheme.lower()
    if len(scheme) <= 1:  # no scheme, or a Windows drive
        return LOCAL
    for backend in BACKENDS:
        if scheme in backend.schemes:
            return backend
    examples = [b.example for b in BACKENDS if b.schemes or b is LOCAL]
    raise ConfigError(
        f"{where}: dapctl has no state backend for {scheme}:// URLs",
        hint=f"state may be {', '.join(examples)}",
    )


def require(backend: Backend, *, where: str, importer: Importer = importlib.import_module) -> None:
    """Raise ``ConfigError`` naming the extra unless the backend's package imports here."""
    if backend.package is None:
        return
    try:
        importer(backend.package)
    except ImportError:
        raise ConfigError(
            f"{where}: {backend.what} needs the {backend.package} package, which is not installed",
            hint=f"pip install 'dapctl[{backend.extra}]'",
        ) from None


def store_at(
    value: str,
    *,
    loaded: LoadedConfig,
    where: str,
    importer: Importer = importlib.import_module,
) -> StateStore:
    """The store at ``value``, a backend's URL or a path relative to the config's folder;
    ``where`` names the setting (or flag) it came from, for messages."""
    backend = backend_for(value, where=where)
    require(backend, where=where, importer=importer)
    module, _, function = backend.opener.partition(":")
    opener = getattr(importlib.import_module(module), function)
    store: StateStore = opener(value, loaded=loaded, where=where)
    return store


def state_namespace(loaded: LoadedConfig) -> str:
    """This config's name in a backend shared by several: ``state_namespace``, or the file's."""
    return loaded.config.settings.state_namespace or loaded.path.stem
